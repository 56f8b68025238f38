"""``--bridge-lost``: a lost run's shape from the frames around it, placed where the run's own
points put the face along the axes they read well (:mod:`crct_cli.tracking.bridge`)."""

from __future__ import annotations

import numpy as np
import pytest

from crct_cli.landmarks import box_from_points
from crct_cli.tracking.bridge import (
    BRIDGE_AXIS_TOLERANCE,
    BRIDGE_MAX_RUN,
    LostShapeBridge,
    max_run_for,
    placed_between,
)
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


def placed(shape: np.ndarray, reading: np.ndarray) -> np.ndarray:
    return placed_between(shape, reading, BRIDGE_AXIS_TOLERANCE)


def test_a_reading_that_spreads_as_the_shape_gives_its_place_and_the_shape_its_size() -> None:
    reading = SHAPE_A * 0.98 + np.array([300.0, 200.0])  # the same spread, 2% smaller
    got = placed(SHAPE_A + 7.0, reading)
    assert np.allclose(got - got.mean(0), SHAPE_A - SHAPE_A.mean(0))  # shape and size kept
    # within 2% the reading's place counts almost fully (log ratio 0.02, t = 0.15)
    assert np.allclose(got.mean(0), reading.mean(0), atol=0.01 * 300)
    assert np.linalg.norm(got.mean(0) - reading.mean(0)) < 0.01 * np.linalg.norm(
        reading.mean(0) - (SHAPE_A + 7.0).mean(0)
    )


def test_a_reading_squeezed_along_one_axis_gives_up_its_place_along_it() -> None:
    """Under a horizontal band FLL reads the face squeezed in y: across the band (x) its place
    still counts, along it (y) the shape's from the frames around the run does. A reading
    spread wider (the face came nearer) keeps its place."""
    shape = SHAPE_A + np.array([100.0, 100.0])
    c = SHAPE_A.mean(0)
    squeezed = (SHAPE_A - c) * np.array([1.0, 0.5]) + c + np.array([130.0, 80.0])
    got = placed(shape, squeezed).mean(0)
    assert got[0] == pytest.approx(squeezed.mean(0)[0], abs=1e-6)
    assert got[1] == pytest.approx(shape.mean(0)[1], abs=0.01)
    nearer = (SHAPE_A - c) * 1.5 + c + np.array([130.0, 80.0])
    assert np.allclose(placed(shape, nearer).mean(0), nearer.mean(0))
    # halfway in between for a log ratio of -t * sqrt(2 ln 2)
    r = BRIDGE_AXIS_TOLERANCE * np.sqrt(2 * np.log(2))
    half = (SHAPE_A - c) * np.array([1.0, np.exp(-r)]) + c + np.array([130.0, 80.0])
    assert placed(shape, half).mean(0)[1] == pytest.approx(
        0.5 * (shape.mean(0)[1] + half.mean(0)[1])
    )
    with pytest.raises(ValueError, match="axis_tolerance"):
        LostShapeBridge(axis_tolerance=0.0)


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
        between = (1 - t) * (SHAPE_A + 100) + t * (SHAPE_B + 120)
        expected = placed(between, where[k])
        assert np.allclose(got.points, expected)
        assert got.state == "lost" and np.allclose(got.box, box_from_points(expected))
        assert centre_size(got.points)[1] == pytest.approx(centre_size(between)[1])
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
    assert np.allclose(frame1[1].points, placed(0.5 * (SHAPE_A + SHAPE_B) + 300, MISREAD + 300))
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
