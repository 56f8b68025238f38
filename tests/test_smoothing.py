"""The shape's One Euro filter (``crct track --smooth``), on generated faces.

A face is 68 points (a fixed random shape, radius about 50 px) moved by a random similarity
each frame; "noise" is independent Gaussian jitter per point, as a localiser's. The filter must
leave a face that only moves exactly where it is (the pose is never delayed), take out most of
the noise of a still expression, follow a sudden expression within a few frames, and start
afresh whenever the track does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from crct_cli import Tracker
from crct_cli.bench.methods import TrackerMethod
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.multi import Face
from crct_cli.tracking.smoothing import FaceSmoother, ShapeFilter, SmoothConfig
from crct_cli.tracking.tracker import TrackerConfig

FPS = 25.0
SHAPE = np.random.default_rng(0).normal(0.0, 35.0, (68, 2))
MOUTH = slice(48, 68)


def similarity(points: np.ndarray, angle: float, scale: float, shift: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, s], [-s, c]]) + shift


def random_motion(n: int, seed: int) -> list[tuple[float, float, np.ndarray]]:
    """A jerky head: each frame up to 20 degrees, 30% of scale and 40 px away from the last."""
    rng = np.random.default_rng(seed)
    angle, scale, shift = 0.0, 1.0, np.array([300.0, 200.0])
    out = []
    for _ in range(n):
        angle += rng.uniform(-0.35, 0.35)
        scale = float(np.clip(scale * rng.uniform(0.77, 1.3), 0.5, 2.0))
        shift = shift + rng.uniform(-40, 40, 2)
        out.append((angle, scale, shift))
    return out


def run(filt: ShapeFilter, frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([filt(p, i / FPS, continued=True) for i, p in enumerate(frames)])


def test_a_face_that_only_moves_is_never_delayed() -> None:
    truth = [similarity(SHAPE, *m) for m in random_motion(60, seed=1)]
    out = run(ShapeFilter(), truth)
    assert np.abs(out - np.stack(truth)).max() < 1e-9


def test_noise_on_a_still_expression_is_mostly_taken_out() -> None:
    motion = random_motion(200, seed=2)
    truth = np.stack([similarity(SHAPE, *m) for m in motion])
    # about 1% of the face's radius per point, as FLL's frame-to-frame noise on video
    noisy = truth + np.random.default_rng(3).normal(0.0, 0.5, truth.shape)
    out = run(ShapeFilter(), list(noisy))
    raw_error = np.linalg.norm(noisy - truth, axis=-1)[20:].mean()
    error = np.linalg.norm(out - truth, axis=-1)[20:].mean()
    assert error < 0.7 * raw_error

    def jitter(pred: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(pred - truth, axis=0), axis=-1)[20:].mean())

    assert jitter(out) < 0.55 * jitter(noisy)


def test_a_sudden_expression_is_followed_within_a_few_frames() -> None:
    opened = SHAPE.copy()
    opened[MOUTH, 1] += 0.3 * np.sqrt((SHAPE**2).sum(axis=1).mean())  # the mouth drops
    frames = [SHAPE] * 20 + [opened] * 10
    step = np.abs(opened - SHAPE)[MOUTH, 1].mean()

    def left(config: SmoothConfig) -> np.ndarray:
        """The share of the step still to go at each frame after it."""
        out = run(ShapeFilter(config), [similarity(f, 0.0, 1.0, np.zeros(2)) for f in frames])
        return np.abs(out[20:] - opened)[:, MOUTH, 1].mean(axis=1) / step

    default = left(SmoothConfig())
    assert default[0] < 0.2 and default[3] < 0.01
    still = left(SmoothConfig(beta=0.0))  # without beta the cutoff stays at min_cutoff
    assert still[0] > 2 * default[0]


def test_the_filter_starts_afresh_with_the_track_and_after_a_pause() -> None:
    rng = np.random.default_rng(4)
    a, b, c, d = (SHAPE + rng.normal(0, 2, SHAPE.shape) for _ in range(4))
    filt = ShapeFilter()
    assert np.array_equal(filt(a, 0.0, continued=True), a)  # nothing to go on from
    assert not np.allclose(filt(b, 0.04, continued=True), b)
    assert np.array_equal(filt(c, 0.08, continued=False), c)  # a re-detection
    assert np.array_equal(filt(d, 5.0, continued=True), d)  # 4.9 s later
    assert np.array_equal(filt(a, 4.0, continued=True), a)  # time went back
    flat = np.zeros((68, 2))
    assert np.array_equal(filt(flat, 4.04, continued=True), flat)  # no shape: passed through


def test_face_smoother_keeps_each_face_s_own_filter() -> None:
    rng = np.random.default_rng(5)
    smoother = FaceSmoother()
    far = SHAPE + 500.0

    def faces(t: int, states: tuple[str, str]) -> list[Face]:
        out = []
        for face_id, (base, state) in enumerate(zip((SHAPE, far), states, strict=True)):
            p = base + rng.normal(0.0, 2.0, base.shape)
            out.append(Face(face_id, p, box_from_points(p), 0.9, state))
        return out

    smoother(faces(0, ("redetected", "redetected")), 0.0)
    for t in range(1, 5):
        given = faces(t, ("tracked", "tracked"))
        got = smoother(given, t / FPS)
        for g, s in zip(given, got, strict=True):
            assert s.face_id == g.face_id and s.state == "tracked"
            assert not np.allclose(s.points, g.points)
            assert np.array_equal(s.box, box_from_points(s.points))
            assert np.abs(s.points - g.points).max() < 10  # each near its own face
    given = faces(5, ("lost", "tracked"))
    got = smoother(given, 5 / FPS)
    assert got[0] is given[0]  # a lost frame's points are as the tracker gave them
    # face 1 leaves for a frame: its filter goes, and it starts afresh when it is back
    smoother(given[:1], 6 / FPS)
    back = faces(7, ("tracked", "tracked"))
    assert np.array_equal(smoother(back, 7 / FPS)[1].points, back[1].points)


@dataclass
class NoisyNets:
    """A still face whose every FLL answer is the truth plus fresh noise; FV always accepts."""

    rng: np.random.Generator

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        box = box_from_points(SHAPE + 300)
        return [Detection(box, box.copy(), 0.99)]

    def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return SHAPE + 300 + self.rng.normal(0, 0.5, SHAPE.shape), state

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return 0.9

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return SHAPE + 300 + self.rng.normal(0, 0.5, SHAPE.shape)


def steps(tracker: Tracker, n: int) -> list[Face]:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    return [tracker.step(image, time_s=i / FPS).faces[0] for i in range(n)]


def test_the_tracker_smooths_by_default_and_not_with_smooth_false() -> None:
    raw = steps(Tracker(networks=NoisyNets(np.random.default_rng(6)), smooth=False), 40)
    smooth = steps(Tracker(networks=NoisyNets(np.random.default_rng(6))), 40)
    assert [f.state for f in raw] == [f.state for f in smooth]
    assert raw[0].state == "redetected" and {f.state for f in raw[1:]} == {"tracked"}
    assert np.array_equal(raw[0].points, smooth[0].points)

    def error(faces: list[Face]) -> float:
        distances = [np.linalg.norm(f.points - SHAPE - 300, axis=1).mean() for f in faces]
        return float(np.mean(distances))

    assert error(smooth[10:]) < 0.7 * error(raw[10:])
    # the same filter as ShapeFilter over the raw points
    filt = ShapeFilter()
    expected = [filt(f.points, i / FPS, f.state == "tracked") for i, f in enumerate(raw)]
    assert all(np.allclose(e, f.points) for e, f in zip(expected[1:], smooth[1:], strict=True))
    described = Tracker(networks=object(), smooth_cutoff=1.0, smooth_beta=2.0).describe()
    assert described["smooth"] is True and described["smooth_cutoff"] == 1.0
    assert described["smooth_beta"] == 2.0
    assert Tracker(networks=object(), smooth=False).describe()["smooth_cutoff"] is None
    from crct_cli.batch.worker import settings_of  # a change of it re-runs a batch's videos

    assert settings_of({})["smooth"] is True
    assert settings_of({"smooth_beta": 1.0})["smooth_beta"] == 1.0


def test_the_benchmark_s_tracker_method_smooths_as_crct_track() -> None:
    @dataclass
    class Decoded:
        index: int
        time: float
        image: np.ndarray

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    frames = [Decoded(i, i / FPS, image) for i in range(30)]
    api = steps(Tracker(networks=NoisyNets(np.random.default_rng(8))), 30)
    method = TrackerMethod(NoisyNets(np.random.default_rng(8)), TrackerConfig(), SmoothConfig())
    method.start(None, None)  # type: ignore[arg-type]
    got = [method.step(f) for f in frames]  # type: ignore[arg-type]
    for a, g in zip(api, got, strict=True):
        assert np.allclose(a.points, g.points) and np.allclose(a.box, g.box)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"smooth_cutoff": 0.0}, "^smooth_cutoff "), ({"smooth_beta": -1.0}, "^smooth_beta ")],
)
def test_bad_settings_are_clear_errors(options: dict[str, float], message: str) -> None:
    from crct_cli.errors import CrctError

    with pytest.raises(CrctError, match=message):
        Tracker(networks=object(), **options)  # type: ignore[arg-type]
