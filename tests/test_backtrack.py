"""Following a re-found face backwards into the frames it was lost in (``--backtrack``).

Scripted networks: each frame is a flat grey picture whose level says its index. The face
stands still at one place; BT run forwards over frames 3-6 (a fast, smeared move) lands far
off it, so the validator rejects and the detector finds nothing there: the track is lost until
frame 7 finds the face again. Run backwards, BT follows it. The revised frames must be exactly
those the backward run's validator accepts, no more than ``--backtrack`` of them, with every
frame handed back once and in order, and frames go straight through while no face is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crct_cli import Tracker
from crct_cli.bench.methods import TrackerMethod
from crct_cli.errors import CrctError
from crct_cli.io.video import VideoWriter
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.backtrack import Backtracker
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.multi import Face
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig

SHAPE = np.random.default_rng(0).normal(0.0, 12.0, (68, 2)) + 48.0
SMEARED = range(3, 7)  # frames where the forward track is lost
N = 12


def frame(index: int) -> np.ndarray:
    return np.full((96, 96, 3), 20 + 15 * index, dtype=np.uint8)


def index_of(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 20) / 15))


class ScriptedNets:
    """One still face; BT forwards into a smeared frame goes 40 px off; no detection there."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        if index_of(image) in SMEARED:
            return []
        box = box_from_points(SHAPE)
        return [Detection(box, box.copy(), 0.99)]

    def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        k = index_of(cur)
        self.calls.append(("bt", k))
        forward = index_of(cur) > index_of(prev)
        return SHAPE + (40.0 if forward and k in SMEARED else 0.0), state

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return 0.9 if np.abs(points - SHAPE).max() < 5 else 0.05

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return SHAPE + (box[:2] - box_from_points(SHAPE)[:2])


def forward_faces() -> list[list[Face]]:
    """Algorithm 1 forwards over the N frames, as the multi-face engine gives one face."""
    tracker = CRCTTracker(ScriptedNets(), TrackerConfig())
    out = []
    for k in range(N):
        r = tracker.step(frame(k))
        out.append([Face(0, r.points, r.box, r.score, r.state)])
    return out


def run(max_frames: int) -> tuple[list[list[Face]], list[int], Backtracker[int]]:
    back: Backtracker[int] = Backtracker(ScriptedNets(), TrackerConfig(), max_frames)
    done, ready_at = [], []
    for k, faces in enumerate(forward_faces()):
        got = back.push(k, frame(k), faces)
        ready_at += [k] * len(got)
        done += got
    done += back.flush()
    assert [i for i, _ in done] == list(range(N))  # every frame once, in order
    return [faces for _, faces in done], ready_at, back


def test_the_forward_track_is_lost_over_the_smeared_frames() -> None:
    states = [f[0].state for f in forward_faces()]
    assert states[:3] == ["redetected", "tracked", "tracked"]
    assert all(states[k] == "lost" for k in SMEARED)
    assert states[7] == "redetected" and states[8:] == ["tracked"] * (N - 8)


def test_a_re_found_face_is_followed_back_over_its_lost_frames() -> None:
    faces, ready_at, back = run(10)
    states = [f[0].state for f in faces]
    assert states[:3] == ["redetected", "tracked", "tracked"]
    assert all(states[k] == "tracked" for k in SMEARED) and back.revised == len(SMEARED)
    for k in SMEARED:
        assert np.abs(faces[k][0].points - SHAPE).max() < 1e-9
        assert faces[k][0].score == pytest.approx(0.9)
    assert states[7] == "redetected"
    # held only while lost: frames 0-2 went straight out, 3-7 waited for the re-detection
    assert ready_at[:3] == [0, 1, 2] and ready_at[3:8] == [7] * 5
    assert ready_at[8:] == list(range(8, N))


def test_no_more_than_backtrack_frames_are_revised() -> None:
    faces, _, back = run(2)
    states = [f[0].state for f in faces]
    assert [states[k] for k in SMEARED] == ["lost", "lost", "tracked", "tracked"]
    assert back.revised == 2
    faces, _, back = run(0)
    assert [faces[k][0].state for k in SMEARED] == ["lost"] * 4 and back.revised == 0


def test_the_backward_run_stops_at_the_first_frame_it_does_not_accept() -> None:
    class HalfSmeared(ScriptedNets):
        def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> Any:
            points, state = super().bt_step(prev, cur, box, state)
            return (points + 40.0 if index_of(cur) == 5 else points), state  # both ways

    back: Backtracker[int] = Backtracker(HalfSmeared(), TrackerConfig(), 10)
    done = []
    for k, faces in enumerate(forward_faces()):
        done += back.push(k, frame(k), faces)
    done += back.flush()
    assert [done[k][1][0].state for k in SMEARED] == ["lost", "lost", "lost", "tracked"]


def test_the_backward_run_keeps_the_networks_forward_state_aside() -> None:
    class WithState(ScriptedNets):
        """Networks with per-video state (as BT's reusable crops): ``aside`` must wrap every
        backward call."""

        inside = False
        backward_calls = 0

        @contextmanager
        def aside(self) -> Iterator[None]:
            self.inside = True
            yield
            self.inside = False

        def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> Any:
            if index_of(cur) < index_of(prev):
                assert self.inside
                self.backward_calls += 1
            return super().bt_step(prev, cur, box, state)

    nets = WithState()
    back: Backtracker[int] = Backtracker(nets, TrackerConfig(), 10)
    for k, faces in enumerate(forward_faces()):
        back.push(k, frame(k), faces)
    assert nets.backward_calls == len(SMEARED) and not nets.inside


def test_networks_with_only_batch_calls_are_followed_back_the_same() -> None:
    from crct_cli.tracking.multi import PerFaceBatch

    batch_only = PerFaceBatch(ScriptedNets())
    assert not hasattr(batch_only, "bt_step")
    back: Backtracker[int] = Backtracker(batch_only, TrackerConfig(), 10)
    done = []
    for k, faces in enumerate(forward_faces()):
        done += back.push(k, frame(k), faces)
    done += back.flush()
    assert [done[k][1][0].state for k in SMEARED] == ["tracked"] * len(SMEARED)
    assert all(np.abs(done[k][1][0].points - SHAPE).max() < 1e-9 for k in SMEARED)


def test_bad_backtrack_is_a_clear_error() -> None:
    with pytest.raises(CrctError, match="^backtrack "):
        Tracker(networks=object(), backtrack=-1)


@pytest.fixture
def grey_video(tmp_path: Path) -> Path:
    path = tmp_path / "grey.mp4"
    with VideoWriter(path, 25.0, 96, 96) as writer:
        for k in range(N):
            writer.write(frame(k))
    return path


def test_tracker_track_and_the_benchmark_follow_back_by_default(grey_video: Path) -> None:
    def states(**options: Any) -> list[str]:
        tracker = Tracker(networks=ScriptedNets(), **options)
        return [f.faces[0].state for f in tracker.track(grey_video)]

    assert all(states()[k] == "tracked" for k in SMEARED)
    assert all(states(backtrack=0)[k] == "lost" for k in SMEARED)
    assert all(states(lookahead=False)[k] == "lost" for k in SMEARED)
    assert Tracker(networks=object()).describe()["backtrack"] == 10
    assert Tracker(networks=object(), lookahead=False).describe()["backtrack"] == 0
    from crct_cli.batch.worker import settings_of  # a change of it re-runs a batch's videos

    assert settings_of({})["backtrack"] == 10

    # a lost frame's points are BT's here, so the answers given at once are off the face
    config = TrackerConfig(lost_points="bt")
    method = TrackerMethod(ScriptedNets(), config, None, None, backtrack=10)
    method.start(None, None)  # type: ignore[arg-type]
    from crct_cli.io.video import iter_frames

    answered = [method.step(f) for f in iter_frames(grey_video)]
    assert all(np.abs(answered[k].points - SHAPE).max() > 30 for k in SMEARED)
    revised = method.finish()
    assert sorted(revised) == list(range(N))
    assert all(np.abs(revised[k].points - SHAPE).max() < 1e-6 for k in SMEARED)
