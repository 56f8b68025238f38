"""``--bridge-lost``: a lost run's shape from the frames around it, placed where the run's own
points put the face (:mod:`crct_cli.tracking.bridge`)."""

from __future__ import annotations

import numpy as np
import pytest

from crct_cli.landmarks import box_from_points
from crct_cli.tracking.bridge import BRIDGE_MAX_RUN, LostShapeBridge, max_run_for, placed_like
from crct_cli.tracking.lookahead import LookAhead
from crct_cli.tracking.multi import Face
from crct_cli.tracking.tracker import TrackerConfig

RNG = np.random.default_rng(0)
SHAPE_A = RNG.normal(0.0, 20.0, (68, 2))
SHAPE_B = SHAPE_A * np.array([1.2, 0.9]) + RNG.normal(0.0, 1.0, (68, 2))
MISREAD = RNG.normal(0.0, 20.0, (68, 2))  # what FLL reads under a band: another shape


def face(points: np.ndarray, state: str, face_id: int = 0) -> Face:
    return Face(face_id, points, box_from_points(points), 0.9, state)


def centre_size(points: np.ndarray) -> tuple[np.ndarray, float]:
    c = points.mean(0)
    return c, float(np.sqrt(((points - c) ** 2).sum(1).mean()))


def test_placed_like_keeps_the_shape_and_takes_the_centre_and_size() -> None:
    where = MISREAD * 0.5 + np.array([300.0, 200.0])
    placed = placed_like(SHAPE_A, where)
    c, s = centre_size(placed)
    cw, sw = centre_size(where)
    assert np.allclose(c, cw) and s == pytest.approx(sw)
    ca, sa = centre_size(SHAPE_A)
    assert np.allclose((placed - c) / s, (SHAPE_A - ca) / sa)


def test_a_lost_run_takes_the_shape_between_the_frames_around_it() -> None:
    bridge: LostShapeBridge[int] = LostShapeBridge(max_run=10)
    out: list[tuple[int, list[Face]]] = []
    out += bridge.push(0, [face(SHAPE_A + 100, "tracked")])
    assert [n for n, _ in out] == [0]  # nothing open: out at once
    where = [MISREAD * (1 + 0.1 * k) + 100 + 5 * k for k in range(3)]
    for k in range(3):
        out += bridge.push(1 + k, [face(where[k], "lost")])
    assert [n for n, _ in out] == [0]  # the run waits for the face to be followed again
    out += bridge.push(4, [face(SHAPE_B + 120, "redetected")])
    assert [n for n, _ in out] == [0, 1, 2, 3, 4]
    for k in range(3):
        (got,) = out[1 + k][1]
        t = (k + 1) / 4
        expected = placed_like((1 - t) * (SHAPE_A + 100) + t * (SHAPE_B + 120), where[k])
        assert np.allclose(got.points, expected)
        assert got.state == "lost" and np.allclose(got.box, box_from_points(expected))
        assert np.allclose(centre_size(got.points)[0], centre_size(where[k])[0])
    assert np.array_equal(out[4][1][0].points, SHAPE_B + 120)  # the frames around: as they were
    assert bridge.flush() == []


def test_runs_too_long_never_followed_again_or_without_a_start_stay_as_they_were() -> None:
    bridge: LostShapeBridge[int] = LostShapeBridge(max_run=2)
    frames = [
        face(MISREAD, "lost"),  # lost from the start: nothing before it to borrow
        face(SHAPE_A, "tracked"),
        face(MISREAD + 1, "lost"),
        face(MISREAD + 2, "lost"),
        face(MISREAD + 3, "lost"),  # the third lost frame: longer than max_run
        face(SHAPE_B, "tracked"),
        face(MISREAD + 4, "lost"),  # open when the video ends
    ]
    out = [d for n, f in enumerate(frames) for d in bridge.push(n, [f])] + bridge.flush()
    assert [n for n, _ in out] == list(range(len(frames)))
    for (_, (got,)), sent in zip(out, frames, strict=True):
        assert np.array_equal(got.points, sent.points)


def test_only_the_lost_face_is_bridged_and_a_dropped_face_is_left() -> None:
    bridge: LostShapeBridge[int] = LostShapeBridge()
    out = bridge.push(0, [face(SHAPE_A, "tracked", 0), face(SHAPE_A + 300, "tracked", 1)])
    out += bridge.push(1, [face(SHAPE_A + 1, "tracked", 0), face(MISREAD + 300, "lost", 1)])
    out += bridge.push(2, [face(SHAPE_A + 2, "lost", 0), face(SHAPE_B + 300, "tracked", 1)])
    assert [n for n, _ in out] == [0, 1]  # face 0's run (frame 2) is still open
    out += bridge.push(3, [face(SHAPE_B + 300, "tracked", 1)])  # face 0 dropped
    assert [n for n, _ in out] == [0, 1, 2, 3]
    frame1 = {f.face_id: f for f in out[1][1]}
    assert np.array_equal(frame1[0].points, SHAPE_A + 1)
    assert np.allclose(
        frame1[1].points, placed_like(0.5 * (SHAPE_A + SHAPE_B) + 300, MISREAD + 300)
    )
    assert np.array_equal(out[2][1][0].points, SHAPE_A + 2)  # dropped face: as it was


def test_lookahead_bridges_after_its_other_stages() -> None:
    """LookAhead with ``bridge`` alone (no backtracking, no filter) gives each frame once, in
    order, the lost run bridged; without it the points are untouched."""
    states = ["tracked", "lost", "lost", "tracked"]
    shapes = [SHAPE_A, MISREAD, MISREAD + 3, SHAPE_B]
    image = np.zeros((8, 8, 3), np.uint8)
    for bridge, changed in ((5, True), (0, False)):
        ahead: LookAhead[int] = LookAhead(None, TrackerConfig(), 0, None, bridge)
        out = []
        for n, (s, p) in enumerate(zip(states, shapes, strict=True)):
            out += ahead.push(n, float(n), image, [face(p, s)])
        out += ahead.flush()
        assert [n for n, _ in out] == [0, 1, 2, 3]
        assert (not np.array_equal(out[1][1][0].points, MISREAD)) is changed
    with pytest.raises(ValueError, match="max_run"):
        LostShapeBridge(0)


def test_large_frames_shorten_the_longest_run() -> None:
    """The run's frames wait with their pictures: 2 s of small frames, fewer of large ones."""
    small = np.zeros((360, 640, 3), np.uint8)
    huge = np.zeros((2160, 3840, 3), np.uint8)
    assert max_run_for(small) == BRIDGE_MAX_RUN
    assert 1 <= max_run_for(huge) < BRIDGE_MAX_RUN
    assert max_run_for(huge) * huge.nbytes <= 200 * 2**20
    ahead: LookAhead[int] = LookAhead(None, TrackerConfig(), 0, None, BRIDGE_MAX_RUN)
    ahead.push(0, 0.0, huge, [face(SHAPE_A, "tracked")])
    assert ahead.bridge is not None and ahead.bridge.max_run == max_run_for(huge)
