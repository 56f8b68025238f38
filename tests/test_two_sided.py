"""The two-sided filter of a recorded video (``crct track --lookahead``, on by default).

Generated faces as in tests/test_smoothing.py: 68 points of a fixed random shape (radius about
50 px) moved by a similarity per frame, with independent Gaussian jitter per point as a
localiser's. The filter must take out most of that jitter, pose and shape alike, on a still or
slowly moving head; leave steady motion, jerks and sudden expressions where they are (no lag,
nothing pulled across a jump); keep each run of a track, and each lost run, apart; hand every
frame back once, in order, at most its reach late; and be what ``Tracker.track`` and the
benchmark give by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# the same generated face, its moves and noisy networks as the causal filter's tests
from test_smoothing import FPS, SHAPE, NoisyNets, similarity

from crct_cli import Tracker
from crct_cli.bench.methods import FramePrediction, TrackerMethod
from crct_cli.bench.video_bench import STATE_ORDER, by_state, run_sequence
from crct_cli.errors import CrctError
from crct_cli.io.datasets import VideoSequence
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.multi import Face
from crct_cli.tracking.smoothing import TwoSidedConfig, TwoSidedSmoother
from crct_cli.tracking.tracker import TrackerConfig


def smooth_all(
    frames: list[np.ndarray | None],
    states: list[str] | None = None,
    config: TwoSidedConfig | None = None,
) -> list[np.ndarray | None]:
    """One face's points through push/flush; checks every frame comes back once, in order."""
    states = states or ["redetected"] + ["tracked"] * (len(frames) - 1)
    smoother: TwoSidedSmoother[int] = TwoSidedSmoother(config)
    done: list[tuple[int, list[Face]]] = []
    for i, (p, s) in enumerate(zip(frames, states, strict=True)):
        box = None if p is None else box_from_points(p)
        done += smoother.push(i, i / FPS, [Face(0, p, box, 0.9, s)])
    done += smoother.flush()
    assert [i for i, _ in done] == list(range(len(frames)))
    return [faces[0].points for _, faces in done]


def error(points: list[Any], truth: list[np.ndarray]) -> float:
    """Mean point-to-point distance (px)."""
    pairs = zip(points, truth, strict=True)
    return float(np.mean([np.linalg.norm(p - t, axis=1).mean() for p, t in pairs]))


def centre_error(points: list[Any], truth: list[np.ndarray]) -> float:
    """Mean distance (px) between the centres of the points: the pose's error alone."""
    pairs = zip(points, truth, strict=True)
    return float(np.mean([np.linalg.norm((p - t).mean(0)) for p, t in pairs]))


def test_jitter_on_a_slowly_moving_head_is_mostly_taken_out() -> None:
    rng = np.random.default_rng(1)
    # drifting 0.2 px and turning 0.1 degree a frame: well within the localiser's noise
    truth = [
        similarity(SHAPE, 0.002 * t, 1.0 + 0.001 * t, np.array([300.0 + 0.2 * t, 200.0]))
        for t in range(100)
    ]
    noisy = [p + rng.normal(0.0, 0.7, p.shape) for p in truth]
    out = smooth_all(list(noisy))
    inner = slice(10, 90)
    assert error(out[inner], truth[inner]) < 0.5 * error(noisy[inner], truth[inner])
    # the pose is steadied too: the centre's error, not only the shape's
    assert centre_error(out[inner], truth[inner]) < 0.6 * centre_error(noisy[inner], truth[inner])


def test_steady_motion_has_no_lag() -> None:
    """Without noise, a head moving, turning and growing steadily comes out as it went in:
    the average is centred on the frame."""
    truth = [
        similarity(SHAPE, 0.004 * t, 1.003**t, np.array([300.0 + 0.3 * t, 200.0 - 0.2 * t]))
        for t in range(60)
    ]
    out = smooth_all(list(truth))
    inner = slice(10, 50)  # a run's first and last frames have neighbours on one side only
    worst = max(np.abs(o - t).max() for o, t in zip(out[inner], truth[inner], strict=True))  # type: ignore[operator]
    assert worst < 1e-3


def test_a_jerk_is_kept_where_it_is() -> None:
    """A head that jumps a face radius between two frames: the frames on either side are not
    pulled towards each other (their poses are far apart, so they do not share an average)."""
    truth = [SHAPE + (300.0 if t < 20 else 350.0) for t in range(40)]
    out = smooth_all(list(truth))
    assert max(np.abs(o - t).max() for o, t in zip(out, truth, strict=True)) < 1e-3  # type: ignore[operator]
    # and with the bilateral weight off (pose_range huge), the jump is smeared: the test bites
    smeared = smooth_all(list(truth), config=TwoSidedConfig(pose_range=1e6))
    assert np.abs(smeared[19] - truth[19]).max() > 5  # type: ignore[operator]


def test_a_sudden_expression_is_not_smeared() -> None:
    """A mouth that opens by 8 px from one frame to the next (and stays open), under the
    localiser's noise: the frames either side keep their own mouth, and the noise on each
    stretch is still averaged out."""
    rng = np.random.default_rng(4)
    opened = SHAPE.copy()
    opened[48:68, 1] += 8.0
    truth = [(SHAPE if t < 30 else opened) + 300.0 for t in range(60)]
    noisy = [p + rng.normal(0.0, 0.5, p.shape) for p in truth]
    out = smooth_all(list(noisy))
    for t in (28, 29, 30, 31):  # beside the change
        mouth = out[t][48:68] - truth[t][48:68]  # type: ignore[index]
        assert np.abs(mouth.mean(axis=0)).max() < 1.0
    inner = [*range(5, 25), *range(35, 55)]
    assert error([out[t] for t in inner], [truth[t] for t in inner]) < 0.7 * error(
        [noisy[t] for t in inner], [truth[t] for t in inner]
    )
    # a filter blind to the change (no shape range) smears it: the test bites
    blind = smooth_all(list(noisy), config=TwoSidedConfig(shape_range=1e6))
    assert np.abs((blind[29][48:68] - truth[29][48:68]).mean(axis=0)).max() > 2.0  # type: ignore[index]


def test_each_run_of_the_track_and_each_lost_run_is_smoothed_apart() -> None:
    rng = np.random.default_rng(2)
    before = [SHAPE + 300 + rng.normal(0.0, 1.0, SHAPE.shape) for _ in range(15)]
    # a lost run: FLL in the held box, another mouth (5 px lower), its own noise
    mouth = np.zeros_like(SHAPE)
    mouth[48:68, 1] = 5.0
    lost_run = [SHAPE + 300 + mouth + rng.normal(0.0, 1.0, SHAPE.shape) for _ in range(6)]
    lone = SHAPE + 280  # a lost frame on its own
    after = [SHAPE + 300.5 for _ in range(15)]  # a re-detection half a pixel away, no noise
    frames: list[np.ndarray | None] = [*before, *lost_run, None, lone, *after]
    states = ["redetected"] + ["tracked"] * 14 + ["lost"] * 8 + ["redetected"] + ["tracked"] * 14
    out = smooth_all(frames, states)
    # the lost run is steadied among its own frames, its mouth kept, nothing pulled across
    smoothed_lost = [p for p in out[15:21] if p is not None]
    assert error(smoothed_lost, [SHAPE + 300 + mouth] * 6) < 0.8 * error(
        lost_run, [SHAPE + 300 + mouth] * 6
    )
    assert all(abs((p - SHAPE - 300)[48:68, 1].mean() - 5.0) < 0.5 for p in smoothed_lost)
    assert abs((out[14] - SHAPE - 300)[48:68, 1].mean()) < 0.5  # type: ignore[operator]
    assert out[21] is None and out[22] is lone  # a lost frame on its own keeps its points
    # the frames after the re-detection only read each other: exactly their own points
    assert all(np.abs(o - a).max() < 1e-9 for o, a in zip(out[23:], after, strict=True))  # type: ignore[operator]
    # without the break they would have read the noisy run before
    joined = smooth_all([*before, *after], ["redetected"] + ["tracked"] * 29)
    assert np.abs(joined[15] - after[0]).max() > 1e-3  # type: ignore[operator]


def test_frames_come_back_in_order_at_most_the_reach_late() -> None:
    config = TwoSidedConfig()
    reach_frames = int(np.ceil(config.reach * FPS))
    smoother: TwoSidedSmoother[int] = TwoSidedSmoother(config)
    out: list[int] = []
    for i in range(50):
        faces = [Face(k, SHAPE + 100 * k, None, 0.9, "tracked") for k in range(2)]
        out += [j for j, got in smoother.push(i, i / FPS, faces) if len(got) == 2]
        assert out == list(range(len(out))) and len(out) >= i + 1 - reach_frames - 1
    # time going back (a new video) gives out the old frames first
    got = smoother.push(0, 0.0, [])
    assert [j for j, _ in got] == list(range(len(out), 50))
    assert [j for j, _ in smoother.flush()] == [0]


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(CrctError, match="two-sided"):
        TwoSidedSmoother(TwoSidedConfig(shape_sigma=-1.0))


def test_tracker_track_looks_ahead_by_default_and_step_never_does(make_video: Any) -> None:
    video = make_video(n_frames=30)

    def points(**options: Any) -> list[np.ndarray]:
        tracker = Tracker(networks=NoisyNets(np.random.default_rng(3)), **options)
        frames = list(tracker.track(video))
        assert [f.index for f in frames] == list(range(30))
        return [f.faces[0].points for f in frames]

    raw, causal, ahead = points(smooth=False), points(lookahead=False), points()
    assert error(ahead, [SHAPE + 300] * 30) < error(causal, [SHAPE + 300] * 30)
    assert error(causal, [SHAPE + 300] * 30) < error(raw, [SHAPE + 300] * 30)
    expected = smooth_all(list(raw))  # the same filter over the raw points
    assert all(np.allclose(e, a) for e, a in zip(expected, ahead, strict=True))  # type: ignore[arg-type]
    assert Tracker(networks=object()).describe()["lookahead"] is True
    assert Tracker(networks=object(), lookahead=False).describe()["lookahead"] is False
    assert Tracker(networks=object(), smooth=False).two_sided is None
    from crct_cli.batch.worker import settings_of  # a change of it re-runs a batch's videos

    assert settings_of({})["lookahead"] is True


def still_face_clip(
    make_video: Any, tmp_path: Path, n_frames: int
) -> tuple[VideoSequence, dict[int, np.ndarray]]:
    """A clip of ``n_frames`` and its truth: the fake networks' face, still, in every frame."""
    video = make_video(n_frames=n_frames)
    annotations = {k: SHAPE + 300 for k in range(1, n_frames + 1)}
    return VideoSequence("clip", video, tmp_path), annotations


def test_the_benchmark_scores_the_two_sided_answers_as_crct_track_writes_them(
    make_video: Any, tmp_path: Path
) -> None:
    sequence, annotations = still_face_clip(make_video, tmp_path, 30)

    def score(two_sided: TwoSidedConfig | None) -> tuple[float, TrackerMethod]:
        nets = NoisyNets(np.random.default_rng(4))
        method = TrackerMethod(nets, TrackerConfig(), None, two_sided)
        run = run_sequence(sequence, method, "crct", annotations, init="detect")
        return float(np.nanmean(run.errors)), method

    raw, _ = score(None)
    ahead, method = score(TwoSidedConfig())
    assert ahead < 0.6 * raw
    assert method.finish() == {}  # its frames were given out and forgotten

    class Fixed:
        """A method that answers the truth at once and revises frame 5 (index 4) at the end."""

        def start(self, sequence: Any, init_box: Any) -> None: ...

        def step(self, frame: Any) -> FramePrediction:
            return FramePrediction(SHAPE + 300, None)

        def finish(self) -> dict[int, FramePrediction]:
            return {4: FramePrediction(SHAPE + 330, None)}

    run = run_sequence(sequence, Fixed(), "fixed", annotations)  # type: ignore[arg-type]
    assert run.errors[4] > 0.1 and np.nanmax(np.delete(run.errors, 4)) == 0.0


def test_the_benchmark_keeps_the_trackers_states_and_their_revisions(
    make_video: Any, tmp_path: Path
) -> None:
    sequence, annotations = still_face_clip(make_video, tmp_path, 12)
    for two_sided in (None, TwoSidedConfig()):
        nets = NoisyNets(np.random.default_rng(4))
        method = TrackerMethod(nets, TrackerConfig(), None, two_sided)
        run = run_sequence(sequence, method, "crct", annotations, init="detect")
        assert len(run.states) == 12 and set(run.states) <= set(STATE_ORDER)
        assert run.states[0] == "redetected" and run.states[1:] == ["tracked"] * 11

    class Revised:
        """Follows the truth, then says at the end that frame 5 (index 4) was lost, 30 px off."""

        def start(self, sequence: Any, init_box: Any) -> None: ...

        def step(self, frame: Any) -> FramePrediction:
            return FramePrediction(SHAPE + 300, None, "tracked")

        def finish(self) -> dict[int, FramePrediction]:
            return {4: FramePrediction(SHAPE + 330, None, "lost")}

    run = run_sequence(sequence, Revised(), "revised", annotations)  # type: ignore[arg-type]
    assert run.states == ["tracked"] * 4 + ["lost"] + ["tracked"] * 7
    states = by_state([run], 0.08)
    assert states["tracked"].count == 11 and states["tracked"].auc == pytest.approx(1.0)
    assert states["lost"].count == 1 and states["lost"].failure_rate == 1.0
