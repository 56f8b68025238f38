"""CRCT Algorithm 1 control flow, driven by scripted fake networks that record every call.

Frames are tiny arrays whose value is their index, so the fakes know which frame they see.
The fake BT moves the box it is given by ``BT_SHIFT`` and the fake FLL by ``FLL_SHIFT``, so
every box in the assertions can be traced back to the step that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import pytest

from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.tracker import (
    CRCTTracker,
    TrackerConfig,
    TrackResult,
    box_distance_ratio,
    gate_detections,
)

BT_SHIFT = np.array([2.0, 0.0, 0.0, 0.0])
FLL_SHIFT = np.array([0.0, 1.0, 0.0, 0.0])
BOX = np.array([100.0, 100.0, 30.0, 40.0])  # diagonal 50: ratios are easy to reckon
#: Re-detection from the frame after the loss, as in the paper (``redetect_on_loss`` off).
PAPER_TIMING = TrackerConfig(redetect_on_loss=False)

_UNIT = np.random.default_rng(7).uniform(0.0, 1.0, (68, 2))
_UNIT = (_UNIT - _UNIT.min(axis=0)) / (_UNIT.max(axis=0) - _UNIT.min(axis=0))


def shape_in(box: np.ndarray) -> np.ndarray:
    """68 points whose tight box is exactly ``box``."""
    box = np.asarray(box, dtype=np.float64)
    return box[:2] + _UNIT * box[2:]


def frame(t: int) -> np.ndarray:
    return np.full((2, 2, 3), t, dtype=np.uint8)


def fid(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def det(box: np.ndarray, score: float = 0.99) -> Detection:
    box = np.asarray(box, dtype=np.float64)
    return Detection(box, box.copy(), score)


def moved(box: np.ndarray, dx: float) -> np.ndarray:
    return np.asarray(box, dtype=np.float64) + np.array([dx, 0.0, 0.0, 0.0])


def moved_det(d: Detection, dx: float) -> Detection:
    return det(moved(d.box, dx), d.score)


@dataclass
class FakeNets:
    """Scripted Networks: detections (strict and relaxed) and FV scores per frame; every call
    recorded."""

    detections: dict[int, list[Detection]] = field(default_factory=dict)
    relaxed: dict[int, list[Detection]] = field(default_factory=dict)
    scores: dict[int, float | list[float]] = field(default_factory=dict)  # a list: per call
    calls: list[tuple[str, int]] = field(default_factory=list)
    bt_calls: list[dict[str, Any]] = field(default_factory=list)
    fll_boxes: dict[int, np.ndarray] = field(default_factory=dict)  # the frame's last FLL box
    fll_calls: list[tuple[int, np.ndarray]] = field(default_factory=list)  # every one
    bt_points: dict[int, np.ndarray] = field(default_factory=dict)
    fll_points: dict[int, np.ndarray] = field(default_factory=dict)
    mirrored: list[tuple[int, bool]] = field(default_factory=list)  # (frame, mirrored) per FLL

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        if relaxed:
            self.calls.append(("relaxed", fid(image)))
            return list(self.relaxed.get(fid(image), []))
        self.calls.append(("detect", fid(image)))
        return list(self.detections.get(fid(image), []))

    def bt_step(
        self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        t = fid(cur)
        self.calls.append(("bt", t))
        self.bt_calls.append({"t": t, "prev": fid(prev), "box": np.array(box), "state": state})
        self.bt_points[t] = shape_in(np.asarray(box) + BT_SHIFT)
        return self.bt_points[t], f"h{t}"

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        self.calls.append(("fv", fid(image)))
        score = self.scores.get(fid(image), 0.9)
        return score.pop(0) if isinstance(score, list) else score

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        t = fid(image)
        self.calls.append(("fll", t))
        self.mirrored.append((t, mirrored))
        self.fll_boxes[t] = np.array(box)
        self.fll_calls.append((t, np.array(box)))
        self.fll_points[t] = shape_in(np.asarray(box) + FLL_SHIFT)
        return self.fll_points[t]

    def frames_of(self, name: str) -> list[int]:
        return [t for n, t in self.calls if n == name]

    def bt_at(self, t: int) -> dict[str, Any]:
        (call,) = [c for c in self.bt_calls if c["t"] == t]
        return call


def run(tracker: CRCTTracker, n: int) -> list[TrackResult]:
    return [tracker.step(frame(t)) for t in range(n)]


def reset_frames(nets: FakeNets) -> list[int]:
    return [c["t"] for c in nets.bt_calls if c["state"] is None]


# ---------------------------------------------------------------------------------------------
# eq. 8


def test_box_distance_ratio_is_centre_distance_over_previous_diagonal() -> None:
    prev = np.array([0.0, 0.0, 30.0, 40.0])  # centre (15, 20), diagonal 50
    assert box_distance_ratio(prev, np.array([0.0, 0.0, 30.0, 40.0])) == pytest.approx(0.0)
    assert box_distance_ratio(prev, np.array([30.0, 40.0, 30.0, 40.0])) == pytest.approx(1.0)
    # the candidate's size changes its centre, not the denominator
    assert box_distance_ratio(prev, np.array([10.0, 20.0, 10.0, 0.0])) == pytest.approx(0.0)
    assert box_distance_ratio(prev, np.array([-9.0, 20.0, 0.0, 0.0])) == pytest.approx(24 / 50)


def test_gate_keeps_the_nearest_below_tb_strictly() -> None:
    near, far = det(moved(BOX, 20.0), 0.5), det(moved(BOX, 45.0), 0.99)
    assert np.array_equal(gate_detections([far, near], BOX, 1.0), near.box)
    assert gate_detections([], BOX, 1.0) is None
    # with no previous box, the most confident one, whatever the order the detector gave
    assert np.array_equal(gate_detections([near, far], None, 1.0), far.box)
    exactly_tb = det(moved(BOX, 50.0))  # ratio 1.0
    assert gate_detections([exactly_tb], BOX, 1.0) is None
    assert np.array_equal(gate_detections([exactly_tb], BOX, 1.01), exactly_tb.box)


# ---------------------------------------------------------------------------------------------
# initialisation


def test_init_from_most_confident_detection_of_first_frame_with_one() -> None:
    weak, strong = det(moved(BOX, 200.0), 0.91), det(BOX, 0.99)
    nets = FakeNets(detections={2: [weak, strong], 3: [weak]})
    results = run(CRCTTracker(nets), 5)

    for r in results[:2]:
        assert r.state == "lost" and r.points is None and r.box is None and r.score is None
    assert nets.frames_of("detect") == [0, 1, 2]  # none after initialisation
    assert nets.frames_of("bt")[0] == 3 and nets.frames_of("fll")[0] == 2
    assert np.array_equal(nets.fll_boxes[2], strong.box)
    assert results[2].state == "redetected"
    assert np.allclose(results[2].box, strong.box + FLL_SHIFT)
    first_bt = nets.bt_at(3)
    assert first_bt["prev"] == 2 and first_bt["state"] is None
    assert np.allclose(first_bt["box"], results[2].box)
    assert all(r.points is not None for r in results[2:])


def test_init_box_skips_detection() -> None:
    nets = FakeNets(detections={0: [det(moved(BOX, 5.0))]})
    results = run(CRCTTracker(nets, init_box=BOX), 6)
    assert nets.frames_of("detect") == []
    assert np.array_equal(nets.fll_boxes[0], BOX)
    assert results[0].state == "redetected"
    assert [r.state for r in results[1:]] == ["tracked"] * 5


def test_unknown_mode_raises() -> None:
    with pytest.raises(ValueError, match="mode"):
        CRCTTracker(FakeNets(), TrackerConfig(mode="kalman"))


# ---------------------------------------------------------------------------------------------
# one tracked frame: BT -> FV -> FLL


def test_fll_runs_in_bt_box_and_new_valid_box_is_fll_box() -> None:
    """The paper's frame (``check_refined=False``): BT, FV on its estimate, FLL in its box."""
    nets = FakeNets()
    tracker = CRCTTracker(nets, TrackerConfig(check_refined=False), init_box=BOX)
    results = run(tracker, 4)
    for t in (1, 2, 3):
        assert nets.frames_of("fv").count(t) == 1
        bt_box = box_from_points(nets.bt_points[t])
        assert np.allclose(nets.fll_boxes[t], bt_box)
        assert np.allclose(results[t].box, box_from_points(nets.fll_points[t]))
        assert np.allclose(results[t].points, nets.fll_points[t])
        assert results[t].score == pytest.approx(0.9)
        # the next BT starts from this frame's valid box, on (this frame, next frame)
        if t < 3:
            assert np.allclose(nets.bt_at(t + 1)["box"], results[t].box)
            assert nets.bt_at(t + 1)["prev"] == t
    assert np.allclose(results[3].box, BOX + 3 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT)
    assert np.allclose(tracker.box, results[3].box)
    # order within a frame: BT, then FV, then FLL
    assert nets.calls[-3:] == [("bt", 3), ("fv", 3), ("fll", 3)]


def test_low_fv_score_marks_lost_and_only_the_next_frame_detects() -> None:
    """The paper's lost frame (``lost_points="bt"``, re-detection from the next frame): BT's
    rejected estimate is kept."""
    nets = FakeNets(scores={3: 0.2})
    config = TrackerConfig(lost_points="bt", redetect_on_loss=False)
    results = run(CRCTTracker(nets, config, init_box=BOX), 7)
    lost = results[3]
    assert lost.state == "lost" and lost.score == pytest.approx(0.2)
    assert np.allclose(lost.points, nets.bt_points[3])  # BT's rejected estimate is kept
    assert np.allclose(lost.box, box_from_points(nets.bt_points[3]))
    assert 3 not in nets.frames_of("fll")
    assert nets.frames_of("detect") == [4]
    # no detection at frame 4: BT gets the last valid box (frame 2's), not BT's lost box
    assert np.allclose(nets.bt_at(4)["box"], results[2].box)
    assert [r.state for r in results[4:]] == ["tracked"] * 3


def test_a_lost_frame_carries_fll_in_the_held_box_by_default() -> None:
    """FLL in the last valid box answers the lost frame, with FV's score on its points; the
    frame stays lost (even when FV would accept FLL's points) and the next one re-detects, BT
    starting from the same held box as with BT's points (re-detection from the next frame)."""
    for fll_score in (0.3, 0.8):
        nets = FakeNets(scores={3: [0.2, fll_score]})
        results = run(CRCTTracker(nets, PAPER_TIMING, init_box=BOX), 7)
        lost = results[3]
        assert lost.state == "lost" and lost.score == pytest.approx(fll_score)
        assert np.allclose(nets.fll_boxes[3], results[2].box)  # the held box, not BT's
        assert np.allclose(lost.points, nets.fll_points[3])
        assert np.allclose(lost.box, box_from_points(nets.fll_points[3]))
        assert nets.calls[nets.calls.index(("bt", 3)) :][:4] == [
            ("bt", 3),
            ("fv", 3),
            ("fll", 3),
            ("fv", 3),
        ]
        assert nets.frames_of("detect") == [4]
        assert np.allclose(nets.bt_at(4)["box"], results[2].box)
        assert [r.state for r in results[4:]] == ["tracked"] * 3


def test_lost_follow_reads_a_lost_run_where_its_last_points_were() -> None:
    """``lost_follow``: from a lost run's second frame FLL also reads the box of the last lost
    frame's points, and FV's score picks between that and the held box. The held box itself,
    BT's start and eq. 8's centre, does not move; a valid frame ends the run."""
    held = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # after frame 2
    scores = {3: [0.1, 0.2], 4: [0.1, 0.2, 0.3], 5: [0.1, 0.3, 0.2], 6: [0.1, 0.2, 0.3]}
    scores[9] = [0.1, 0.2]
    nets = FakeNets(scores=scores)
    results = run(CRCTTracker(nets, PAPER_TIMING, init_box=BOX), 11)  # on by default
    assert [r.state for r in results[3:8]] == ["lost"] * 4 + ["tracked"]

    def fll_boxes(t: int) -> list[np.ndarray]:
        return [box for f, box in nets.fll_calls if f == t]

    assert len(fll_boxes(3)) == 1 and np.allclose(fll_boxes(3)[0], held)  # first: held box
    # frame 4: the held box, then where frame 3's points were; FV prefers the second
    assert np.allclose(fll_boxes(4), [held, held + FLL_SHIFT])
    assert np.allclose(results[4].points, shape_in(held + 2 * FLL_SHIFT))
    assert results[4].score == pytest.approx(0.3)
    # frame 5: FV prefers the held box's answer, and frame 6 follows from there
    assert np.allclose(fll_boxes(5), [held, held + 2 * FLL_SHIFT])
    assert np.allclose(results[5].points, shape_in(held + FLL_SHIFT))
    assert np.allclose(fll_boxes(6), [held, held + FLL_SHIFT])
    for t in (4, 5, 6, 7):
        assert np.allclose(nets.bt_at(t)["box"], held)
    # a new lost run starts from the held box again, with one FLL call
    assert results[9].state == "lost"
    assert len(fll_boxes(9)) == 1 and np.allclose(fll_boxes(9)[0], results[8].box)
    # off: one FLL call per lost frame, always in the held box
    nets = FakeNets(scores={3: [0.1, 0.2], 4: [0.1, 0.2], 5: [0.1, 0.3]})
    config = replace(PAPER_TIMING, lost_follow=False)
    results = run(CRCTTracker(nets, config, init_box=BOX), 6)
    assert [len([1 for f, _ in nets.fll_calls if f == t]) for t in (3, 4, 5)] == [1, 1, 1]
    assert np.allclose(results[4].points, shape_in(held + FLL_SHIFT))


def test_lost_points_is_checked() -> None:
    with pytest.raises(ValueError, match="lost_points"):
        CRCTTracker(FakeNets(), TrackerConfig(lost_points="held"))


def test_fv_also_checks_fll_s_refined_points_by_default() -> None:
    """``check_refined``: after FLL, FV looks again, at FLL's points; below TC the frame is
    lost with those points, the box held, and the next frame re-detects. Accepted, the frame
    is the paper's (its score is FV's on BT's estimate)."""
    nets = FakeNets(scores={3: [0.9, 0.2]})  # BT's estimate passes, FLL's points do not
    results = run(CRCTTracker(nets, init_box=BOX), 6)
    assert nets.calls[nets.calls.index(("bt", 2)) :][:4] == [
        ("bt", 2),
        ("fv", 2),
        ("fll", 2),
        ("fv", 2),
    ]
    assert [r.state for r in results] == ["redetected", "tracked", "tracked", "lost"] + [
        "tracked"
    ] * 2
    lost = results[3]
    assert lost.score == pytest.approx(0.2) and np.allclose(lost.points, nets.fll_points[3])
    assert nets.frames_of("detect") == [4]  # re-detection on the next frame
    assert np.allclose(nets.bt_at(4)["box"], results[2].box)  # from the held box
    assert results[2].score == pytest.approx(0.9)
    # without it, the same frame is tracked (the paper's)
    nets = FakeNets(scores={3: [0.9, 0.2]})
    results = run(CRCTTracker(nets, TrackerConfig(check_refined=False), init_box=BOX), 6)
    assert results[3].state == "tracked" and nets.frames_of("fv").count(3) == 1
    assert nets.frames_of("detect") == []


def test_score_exactly_tc_is_valid_and_tc_changes_behaviour() -> None:
    nets = FakeNets(scores={2: 0.5})
    assert run(CRCTTracker(nets, init_box=BOX), 3)[2].state == "tracked"
    nets = FakeNets(scores={2: 0.4})
    assert run(CRCTTracker(nets, TrackerConfig(tc=0.5), init_box=BOX), 3)[2].state == "lost"
    nets = FakeNets(scores={2: 0.4})
    assert run(CRCTTracker(nets, TrackerConfig(tc=0.3), init_box=BOX), 3)[2].state == "tracked"


# ---------------------------------------------------------------------------------------------
# re-detection and TB gating


def _lost_at_3(detections: list[Detection], config: TrackerConfig | None = None) -> tuple:
    """Frame 3 is lost; ``detections`` are what MTCNN finds at frame 4 (re-detection from the
    next frame, the paper's timing: ``redetect_on_loss`` is tested on its own)."""
    nets = FakeNets(scores={3: 0.1}, detections={4: detections})
    config = replace(config or TrackerConfig(), redetect_on_loss=False)
    tracker = CRCTTracker(nets, config, init_box=BOX)
    results = run(tracker, 6)
    return nets, tracker, results


def test_near_detection_is_taken() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # valid box after frame 2
    near = det(moved(prev, 20.0))  # ratio 0.4
    nets, tracker, results = _lost_at_3([near])
    assert np.allclose(results[2].box, prev)
    assert np.array_equal(nets.bt_at(4)["box"], near.box)
    assert results[4].state == "redetected"
    assert np.allclose(results[4].box, near.box + BT_SHIFT + FLL_SHIFT)
    assert tracker.redetections == 1
    assert nets.frames_of("detect") == [4]
    assert results[5].state == "tracked"


def test_nearest_detection_wins_over_more_confident_one() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    confident = det(moved(prev, 40.0), 0.999)  # ratio 0.8
    nearest = det(moved(prev, -10.0), 0.90)  # ratio 0.2
    nets, tracker, results = _lost_at_3([confident, nearest])
    assert np.array_equal(nets.bt_at(4)["box"], nearest.box)
    assert tracker.redetections == 1


def test_far_detection_is_refused_and_the_last_valid_box_held() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    far = det(moved(prev, 60.0))  # ratio 1.2: another face
    nets, tracker, results = _lost_at_3([far])
    assert np.allclose(nets.bt_at(4)["box"], prev)
    assert results[4].state == "tracked"
    assert tracker.redetections == 0


def test_tb_changes_behaviour() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    mid = det(moved(prev, 40.0))  # ratio 0.8
    nets, tracker, _ = _lost_at_3([mid], TrackerConfig(tb=1.0))
    assert np.array_equal(nets.bt_at(4)["box"], mid.box) and tracker.redetections == 1
    nets, tracker, _ = _lost_at_3([mid], TrackerConfig(tb=0.5))
    assert np.allclose(nets.bt_at(4)["box"], prev) and tracker.redetections == 0


def _relaxed_at_4(
    strict: list[Detection], relaxed: list[Detection], config: TrackerConfig | None = None
) -> tuple:
    """Frame 3 is lost; at frame 4 MTCNN finds ``strict``, its sensitive look ``relaxed``
    (re-detection from the next frame)."""
    nets = FakeNets(scores={3: 0.1}, detections={4: strict}, relaxed={4: relaxed})
    config = replace(config or TrackerConfig(), redetect_on_loss=False)
    tracker = CRCTTracker(nets, config, init_box=BOX)
    return nets, tracker, run(tracker, 6)


def test_relaxed_look_refinds_a_face_the_strict_detection_missed() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    faint = det(moved(prev, 15.0), 0.75)  # ratio 0.3, a score only the sensitive look keeps
    nets, tracker, results = _relaxed_at_4([], [faint])
    assert [(n, t) for n, t in nets.calls if n in ("detect", "relaxed")] == [
        ("detect", 4),
        ("relaxed", 4),
    ]
    assert np.array_equal(nets.bt_at(4)["box"], faint.box)
    assert results[4].state == "redetected" and tracker.redetections == 1
    # the paper's re-detection alone holds the last valid box and never asks again
    nets, tracker, results = _relaxed_at_4([], [faint], TrackerConfig(relaxed_redetect=False))
    assert nets.frames_of("relaxed") == []
    assert np.allclose(nets.bt_at(4)["box"], prev) and tracker.redetections == 0


def test_relaxed_look_is_gated_by_eq8_and_skipped_when_detection_succeeds() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    far = det(moved(prev, 60.0), 0.8)  # ratio 1.2: not this face
    nets, tracker, results = _relaxed_at_4([], [far])
    assert nets.frames_of("relaxed") == [4]
    assert np.allclose(nets.bt_at(4)["box"], prev) and tracker.redetections == 0
    near = det(moved(prev, 10.0))
    nets, tracker, _ = _relaxed_at_4([near], [far])
    assert nets.frames_of("relaxed") == []  # the strict detection answered
    assert np.array_equal(nets.bt_at(4)["box"], near.box)
    # a strict detection beyond the gate does not stop the sensitive look
    nets, tracker, _ = _relaxed_at_4([far], [det(moved(prev, -5.0), 0.72)])
    assert nets.frames_of("relaxed") == [4] and tracker.redetections == 1


def test_a_track_lost_for_reacquire_frames_takes_the_nearest_detection_wherever() -> None:
    """FV low for frames 3-4 and 6-8, the face seen far from the held box; reacquire 4."""
    valid = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # after frame 2
    there = det(moved(valid, 200.0))  # ratio 4: beyond eq. 8's gate
    further = det(moved(valid, 400.0), 0.999)
    scores = {t: 0.05 for t in (3, 4, 6, 7, 8)}
    detections = {t: [further, there] for t in range(4, 12)}
    nets = FakeNets(scores=scores, detections=detections)
    tracker = CRCTTracker(nets, TrackerConfig(reacquire=4), init_box=BOX)
    results = run(tracker, 11)
    # lost 3, 4; valid 5 (takes one off); lost 6, 7, 8: four net, so frame 9's gate is open
    assert [r.state for r in results[3:9]] == ["lost", "lost", "tracked"] + ["lost"] * 3
    for t, held in ((4, valid), (5, valid), (7, results[5].box), (8, results[5].box)):
        assert np.allclose(nets.bt_at(t)["box"], held)
    assert np.array_equal(nets.bt_at(9)["box"], there.box)  # nearest, not most confident
    assert results[9].state == "redetected" and tracker.redetections == 1
    assert tracker.lost_run == 0 and tracker.gate == 1.0
    # the paper's gate alone holds the box for good
    nets = FakeNets(scores=scores, detections=detections)
    tracker = CRCTTracker(nets, TrackerConfig(reacquire=0), init_box=BOX)
    results = run(tracker, 11)
    assert not np.allclose(nets.bt_at(9)["box"], there.box) and tracker.redetections == 0
    with pytest.raises(ValueError, match="reacquire"):
        CRCTTracker(nets, TrackerConfig(reacquire=-1))


def test_gate_growth_widens_eq8_per_lost_frame_and_a_valid_frame_narrows_it() -> None:
    """``gate_growth``: TB + growth x the lost run; a face found at ratio 1.5 (beyond the
    paper's gate) is taken from the third lost frame with growth 0.3, never without."""
    valid = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # after frame 2
    there = det(moved(valid, 75.0))  # ratio 1.5 of the held box's diagonal (50)
    scores = {t: 0.05 for t in (3, 4)}
    detections = {t: [there] for t in range(4, 9)}
    nets = FakeNets(scores=scores, detections=detections)
    config = replace(PAPER_TIMING, gate_growth=0.3, reacquire=0)
    tracker = CRCTTracker(nets, config, init_box=BOX)
    gates = []
    for t in range(8):
        gates.append(tracker.gate)
        tracker.step(frame(t))
    # lost at 3 and 4: frame 4 looks with 1.3, frame 5 with 1.6 and takes the face
    assert gates[:6] == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.3, 1.6])
    assert not np.allclose(nets.bt_at(4)["box"], there.box)
    assert np.array_equal(nets.bt_at(5)["box"], there.box) and tracker.redetections == 1
    assert tracker.gate == 1.0 and tracker.lost_run == 0  # found again: the paper's gate
    nets = FakeNets(scores=scores, detections=detections)
    tracker = CRCTTracker(nets, replace(config, gate_growth=0.0), init_box=BOX)
    run(tracker, 8)
    assert tracker.redetections == 0
    with pytest.raises(ValueError, match="^gate_growth "):
        CRCTTracker(nets, TrackerConfig(gate_growth=-1.0))


def test_a_rejected_redetection_falls_back_to_fll_in_the_detection_box() -> None:
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    found = det(moved(prev, 20.0))
    # frame 4: FV rejects BT's estimate from the detection, then accepts FLL's in it
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.8]}, detections={4: [found]})
    tracker = CRCTTracker(nets, init_box=BOX)
    results = run(tracker, 6)
    assert [n for n, t in nets.calls if t == 4] == ["detect", "bt", "fv", "fll", "fv"]
    assert np.array_equal(nets.fll_boxes[4], found.box)
    assert results[4].state == "redetected" and results[4].score == pytest.approx(0.8)
    assert np.allclose(results[4].box, found.box + FLL_SHIFT)
    assert nets.bt_at(5)["state"] is None and np.allclose(nets.bt_at(5)["box"], results[4].box)
    assert results[5].state == "tracked"
    # both rejected: lost, with FLL's points in the detection when FV scores them above
    # FLL's in the held box and in the last lost points' box (or BT's estimate)
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.3, 0.25, 0.1]}, detections={4: [found]})
    results = run(CRCTTracker(nets, init_box=BOX), 6)
    assert [n for n, t in nets.calls if t == 4] == ["detect", "bt"] + ["fv", "fll"] * 3 + ["fv"]
    assert results[4].state == "lost" and results[4].score == pytest.approx(0.3)
    assert np.allclose(results[4].points, shape_in(found.box + FLL_SHIFT))
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.3]}, detections={4: [found]})
    results = run(CRCTTracker(nets, TrackerConfig(lost_points="bt"), init_box=BOX), 6)
    assert [n for n, t in nets.calls if t == 4] == ["detect", "bt", "fv", "fll", "fv"]
    assert results[4].state == "lost" and np.allclose(results[4].points, nets.bt_points[4])
    # without the fallback FV's verdict on FLL's points is not taken: the frame stays lost
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.8, 0.3, 0.1]}, detections={4: [found]})
    results = run(CRCTTracker(nets, TrackerConfig(redetect_fallback=False), init_box=BOX), 6)
    assert [n for n, t in nets.calls if t == 4] == ["detect", "bt"] + ["fv", "fll"] * 3 + ["fv"]
    assert results[4].state == "lost" and results[4].score == pytest.approx(0.8)
    assert np.allclose(results[4].points, shape_in(found.box + FLL_SHIFT))
    # and the paper's rule never asks FLL
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.8]}, detections={4: [found]})
    config = TrackerConfig(redetect_fallback=False, lost_points="bt")
    results = run(CRCTTracker(nets, config, init_box=BOX), 6)
    assert [n for n, t in nets.calls if t == 4] == ["detect", "bt", "fv"]
    assert results[4].state == "lost"


def test_a_rejected_redetection_writes_the_held_boxs_answer_when_fv_prefers_it() -> None:
    """FV turns down both BT's estimate from a detection and FLL's points in it: a false
    detection near a face that is only hard to see. The lost frame's points are FLL's in the
    held box (the last valid one) if FV scores them higher, and the held box stays."""
    held = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # the valid box after frame 2
    found = det(moved(held, 20.0))
    # frame 3 lost; frame 4: BT from the detection 0.2, FLL in it 0.3, in the held box 0.7,
    # in the box of frame 3's lost points 0.1
    nets = FakeNets(scores={3: 0.1, 4: [0.2, 0.3, 0.7, 0.1]}, detections={4: [found]})
    tracker = CRCTTracker(nets, init_box=BOX)
    results = run(tracker, 5)
    fll_boxes_4 = [b for t, b in nets.fll_calls if t == 4]
    assert np.array_equal(fll_boxes_4[0], found.box) and np.allclose(fll_boxes_4[1], held)
    assert results[4].state == "lost" and results[4].score == pytest.approx(0.7)
    assert np.allclose(results[4].points, shape_in(held + FLL_SHIFT))
    # still a lost frame, though FV passes the held box's answer: the held box is still the
    # last valid one, and the next frame re-detects around it
    assert np.allclose(tracker.box, held) and tracker.redetect
    # the box of the points written is where the next lost frame's FLL also reads
    assert np.allclose(tracker.lost_box, box_from_points(results[4].points))


def test_face_leaving_view_is_awaited_where_it_was() -> None:
    """FV low for frames 3-8, only a far face meanwhile; the face comes back at frame 9."""
    valid = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # after frame 2
    other_face = det(moved(valid, 300.0), 0.999)
    back = det(moved(valid, -15.0), 0.95)
    scores = {t: 0.05 for t in range(3, 9)}
    detections = {t: [other_face] for t in range(4, 9)} | {9: [other_face, back]}
    nets = FakeNets(scores=scores, detections=detections)
    tracker = CRCTTracker(nets, PAPER_TIMING, init_box=BOX)
    results = run(tracker, 11)

    assert [r.state for r in results[3:9]] == ["lost"] * 6
    assert nets.frames_of("detect") == [4, 5, 6, 7, 8, 9]
    for t in range(4, 9):
        assert np.allclose(nets.bt_at(t)["box"], valid)  # held, never the other face
    assert np.array_equal(nets.bt_at(9)["box"], back.box)
    assert results[9].state == "redetected" and tracker.redetections == 1
    assert np.allclose(results[9].box, back.box + BT_SHIFT + FLL_SHIFT)
    assert results[10].state == "tracked"
    assert all(r.points is not None for r in results)


# ---------------------------------------------------------------------------------------------
# LSTM state resets (line 11: redetect OR SeqT > SeqBT)


@pytest.mark.parametrize(
    ("seq_bt", "expected"),
    [(2, [1, 4, 7, 10]), (4, [1, 6, 11])],
)
def test_lstm_reset_pattern(seq_bt: int, expected: list[int]) -> None:
    nets = FakeNets()
    run(CRCTTracker(nets, TrackerConfig(seq_bt=seq_bt), init_box=BOX), 12)
    assert reset_frames(nets) == expected
    for call in nets.bt_calls:  # otherwise the state is the one BT returned a frame ago
        if call["state"] is not None:
            assert call["state"] == f"h{call['t'] - 1}"


def test_lstm_reset_on_reinitialisation_even_without_detection() -> None:
    nets = FakeNets(scores={2: 0.1})
    run(CRCTTracker(nets, TrackerConfig(seq_bt=2), init_box=BOX), 10)
    # frame 1 starts fresh; 2 is lost -> 3 re-initialises; then every SeqBT + 1 frames
    assert reset_frames(nets) == [1, 3, 6, 9]


def test_lstm_reset_after_initialisation_by_detection() -> None:
    nets = FakeNets(detections={1: [det(BOX)]})
    run(CRCTTracker(nets, TrackerConfig(seq_bt=2)), 8)
    assert reset_frames(nets) == [2, 5]


# ---------------------------------------------------------------------------------------------
# baselines


def test_mode_bt_never_validates_refines_or_redetects() -> None:
    nets = FakeNets(scores={t: 0.0 for t in range(8)}, detections={3: [det(BOX)]})
    results = run(CRCTTracker(nets, TrackerConfig(mode="bt"), init_box=BOX), 8)
    assert nets.frames_of("fv") == []
    assert nets.frames_of("detect") == []
    assert nets.frames_of("fll") == [0]  # the initial frame only: b0 -> first shape
    assert nets.frames_of("bt") == list(range(1, 8))
    for t in range(1, 8):
        assert results[t].state == "tracked" and results[t].score is None
        assert np.allclose(results[t].points, nets.bt_points[t])
        if t < 7:  # BT alone follows its own box
            assert np.allclose(nets.bt_at(t + 1)["box"], box_from_points(nets.bt_points[t]))


def test_mode_fll_mt_detects_every_frame_and_holds_box_without_detection() -> None:
    a = det(BOX)
    near = det(moved(BOX + FLL_SHIFT, 10.0))
    far = det(moved(BOX, 400.0), 0.999)
    detections = {0: [a], 1: [far, near], 2: [], 3: [far], 4: [moved_det(near, 5.0)]}
    nets = FakeNets(detections=detections)
    tracker = CRCTTracker(nets, TrackerConfig(mode="fll-mt"))
    results = run(tracker, 4)
    assert np.allclose(tracker.box, near.box + FLL_SHIFT)
    results.append(tracker.step(frame(4)))
    assert nets.frames_of("detect") == [0, 1, 2, 3, 4]
    assert nets.frames_of("bt") == [] and nets.frames_of("fv") == []
    assert np.array_equal(nets.fll_boxes[1], near.box)
    assert results[1].state == "tracked"
    held = near.box + FLL_SHIFT
    assert np.allclose(results[1].box, held)
    for t in (2, 3):  # nothing acceptable: FLL at the held box, flagged lost, box kept
        assert results[t].state == "lost"
        assert np.allclose(nets.fll_boxes[t], held)
        assert results[t].points is not None
    assert np.array_equal(nets.fll_boxes[4], moved(near.box, 5.0))
    assert results[4].state == "tracked"


# ---------------------------------------------------------------------------------------------
# redetect_on_loss: the frame where FV first rejects BT's estimate looks for the face at once


def test_a_face_lost_in_a_fast_move_is_found_in_the_same_frame() -> None:
    """FV rejects BT at frame 3; MTCNN runs on frame 3 itself, FLL reads the detection there
    and FV accepts it: the frame is re-detected, not lost, and BT starts afresh from it."""
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # valid box after frame 2
    jumped = det(moved(prev, 20.0))  # ratio 0.4: within eq. 8's gate
    nets = FakeNets(scores={3: [0.1, 0.9]}, detections={3: [jumped]})
    tracker = CRCTTracker(nets, init_box=BOX)
    results = run(tracker, 6)
    assert nets.calls[nets.calls.index(("bt", 3)) :][:5] == [
        ("bt", 3),
        ("fv", 3),
        ("detect", 3),
        ("fll", 3),
        ("fv", 3),
    ]
    assert np.allclose(nets.fll_boxes[3], jumped.box)
    assert results[3].state == "redetected" and results[3].score == pytest.approx(0.9)
    assert np.allclose(results[3].points, nets.fll_points[3])
    assert tracker.redetections == 1
    assert nets.frames_of("detect") == [3]  # nothing lost afterwards: no more detection
    assert nets.bt_at(4)["state"] is None  # BT's state starts afresh
    assert np.allclose(nets.bt_at(4)["box"], results[3].box)
    assert [r.state for r in results[4:]] == ["tracked"] * 2
    # the paper's timing: frame 3 is lost, frame 4 re-detects
    nets = FakeNets(scores={3: 0.1}, detections={3: [jumped]})
    results = run(CRCTTracker(nets, PAPER_TIMING, init_box=BOX), 6)
    assert results[3].state == "lost" and nets.frames_of("detect") == [4]


def test_a_detection_found_at_loss_must_pass_the_gate_and_fv() -> None:
    """Beyond eq. 8's gate the detection is not read; read but rejected by FV, the frame is
    lost with FLL's points in the held box, and the next frame re-detects as usual."""
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    far = det(moved(prev, 60.0))  # ratio 1.2
    nets = FakeNets(scores={3: [0.1, 0.3]}, detections={3: [far]})
    results = run(CRCTTracker(nets, init_box=BOX), 5)
    assert results[3].state == "lost"
    assert np.allclose(nets.fll_boxes[3], results[2].box)  # only the held box was read
    assert nets.frames_of("detect") == [3, 4]
    near = det(moved(prev, 20.0))
    nets = FakeNets(scores={3: [0.1, 0.2, 0.3]}, detections={3: [near]})
    tracker = CRCTTracker(nets, init_box=BOX)
    results = run(tracker, 5)
    assert results[3].state == "lost" and results[3].score == pytest.approx(0.3)
    assert nets.frames_of("fll")[:4] == [0, 1, 2, 3]
    assert [n for n, t in nets.calls if t == 3] == ["bt", "fv", "detect", "fll", "fv", "fll", "fv"]
    assert np.allclose(results[3].points, nets.fll_points[3])  # the held box's, read last
    assert np.allclose(nets.fll_boxes[3], results[2].box)
    assert tracker.redetections == 0 and nets.frames_of("detect") == [3, 4]


def test_a_look_at_once_fv_doubts_gives_the_lost_frame_its_points_when_it_scores_best() -> None:
    """``lost_doubted``: FV turned the look at once down, but scored it above the held box's
    answer: the lost frame's points are FLL's in the detection (and a lost run follows them
    from there); the held box stays the one FV last accepted. Off: the held box's points."""
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    near = det(moved(prev, 20.0))
    in_detection = shape_in(near.box + FLL_SHIFT)
    nets = FakeNets(scores={3: [0.1, 0.3, 0.2]}, detections={3: [near]})
    tracker = CRCTTracker(nets, init_box=BOX)
    results = run(tracker, 3)
    results.append(tracker.step(frame(3)))
    assert results[3].state == "lost" and results[3].score == pytest.approx(0.3)
    assert np.allclose(results[3].points, in_detection)
    assert np.allclose(tracker.box, results[2].box)  # eq. 8's centre and BT's start
    assert np.allclose(tracker.lost_box, box_from_points(in_detection))
    assert tracker.redetections == 0
    nets = FakeNets(scores={3: [0.1, 0.3, 0.2]}, detections={3: [near]})
    results = run(CRCTTracker(nets, TrackerConfig(lost_doubted=False), init_box=BOX), 4)
    assert results[3].score == pytest.approx(0.2)
    assert np.allclose(results[3].points, shape_in(results[2].box + FLL_SHIFT))


def test_a_face_too_faint_for_the_usual_look_at_loss_is_found_by_the_sensitive_one() -> None:
    """With ``relaxed_redetect`` the look at once asks for the detector's more sensitive look
    when the usual one has nothing within the gate, as re-detection does; that look's
    detections pass eq. 8's gate and FV the same way."""
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    faint = det(moved(prev, 20.0), 0.75)
    nets = FakeNets(scores={3: [0.1, 0.9]}, relaxed={3: [faint]})
    results = run(CRCTTracker(nets, init_box=BOX), 5)
    assert [n for n, t in nets.calls if t == 3] == ["bt", "fv", "detect", "relaxed", "fll", "fv"]
    assert results[3].state == "redetected" and np.allclose(nets.fll_boxes[3], faint.box)
    assert nets.frames_of("relaxed") == [3]  # tracked again: no look after it
    far = det(moved(prev, 60.0), 0.75)  # beyond the gate: not read, the frame is lost
    nets = FakeNets(scores={3: [0.1, 0.3]}, relaxed={3: [far]})
    results = run(CRCTTracker(nets, init_box=BOX), 4)
    assert results[3].state == "lost" and np.allclose(nets.fll_boxes[3], results[2].box)
    nets = FakeNets(scores={3: [0.1, 0.3]}, relaxed={3: [faint]})
    results = run(CRCTTracker(nets, TrackerConfig(relaxed_redetect=False), init_box=BOX), 4)
    assert results[3].state == "lost" and nets.frames_of("relaxed") == []


def test_a_lost_run_detects_once_per_frame() -> None:
    """Only the first rejection looks at once: frames already re-detecting do not ask twice."""
    nets = FakeNets(scores={t: 0.1 for t in range(3, 7)})
    results = run(CRCTTracker(nets, init_box=BOX), 8)
    assert [r.state for r in results[3:7]] == ["lost"] * 4
    assert nets.frames_of("detect") == [3, 4, 5, 6, 7]


def test_lost_flip_reads_mirrored_where_fv_rejects_bts_estimate() -> None:
    """``lost_flip`` (on by default): on a frame where FV rejects BT's estimate, every FLL read
    is asked mirrored (the look at once, the held box, the follow box); frames FV accepts are
    read once, plainly; off, nothing is mirrored."""
    held = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    found = det(moved(held, 10.0))
    # frame 3: FV rejects BT, the look at once finds a detection FV turns down, the held box
    # is read; frame 4: rejected again, held and follow boxes read; frame 5 back
    scores = {3: [0.1, 0.2, 0.3], 4: [0.1, 0.2, 0.3]}
    nets = FakeNets(scores=scores, detections={3: [found]})
    results = run(CRCTTracker(nets, init_box=BOX), 7)
    states = ["redetected", "tracked", "tracked", "lost", "lost", "tracked", "tracked"]
    assert [r.state for r in results] == states
    flags = {t: {m for u, m in nets.mirrored if u == t} for t in range(7)}
    assert flags[3] == flags[4] == {True} and len([u for u, _ in nets.mirrored if u == 4]) == 2
    assert all(flags[t] == {False} for t in (0, 1, 2, 5, 6))
    scores = {3: [0.1, 0.2, 0.3], 4: [0.1, 0.2, 0.3]}
    nets = FakeNets(scores=scores, detections={3: [found]})
    run(CRCTTracker(nets, TrackerConfig(lost_flip=False), init_box=BOX), 7)
    assert not any(m for _, m in nets.mirrored)


# ---------------------------------------------------------------------------------------------
# likeness: a re-found face must look like the one followed


def _patch(seed: int, side: int) -> np.ndarray:
    """A face-sized picture of its own: smooth random blobs, the same for the same seed."""
    small = np.random.default_rng(seed).uniform(0, 255, (6, 6, 3)).astype(np.float32)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def scene(t: int, faces: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Frame ``t`` (its first pixel, for the fakes) of grey with each (box, seed) face drawn
    over twice its box, centred, so every crop around the box's points lies on it."""
    image = np.full((320, 320, 3), 128.0, np.float32)
    for box, seed in faces:
        side = int(2 * max(box[2:]))
        x0 = int(box[0] + box[2] / 2 - side / 2)
        y0 = int(box[1] + box[3] / 2 - side / 2)
        image[y0 : y0 + side, x0 : x0 + side] = _patch(seed, side)
    out = image.astype(np.uint8)
    out[0, 0, 0] = t
    return out


def _refound(neighbour_seed: int, likeness: float) -> tuple[FakeNets, list[TrackResult]]:
    """Frames 0-2 follow face 1 at BOX; frame 3 is lost; at frame 4 MTCNN finds only a face
    of picture ``neighbour_seed`` beside where face 1 was (face 1 itself now unseen)."""
    prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
    other = moved(prev, 30.0)
    nets = FakeNets(scores={3: 0.1}, detections={4: [det(other)]})
    config = TrackerConfig(redetect_on_loss=False, likeness=likeness)
    tracker = CRCTTracker(nets, config, init_box=BOX)
    frames = []
    for t in range(6):
        box = BOX + t * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
        faces = [(box, 1)] if t < 4 else [(other + BT_SHIFT, neighbour_seed)]
        frames.append(scene(t, faces))
    return nets, [tracker.step(f) for f in frames]


def test_a_re_detection_that_does_not_look_like_the_followed_face_is_turned_down() -> None:
    from crct_cli.tracking.likeness import face_thumbnail, likeness

    # the cue itself: the same picture moved and blurred keeps its likeness, another does not
    box = np.array([100.0, 100.0, 40.0, 40.0])
    pts = shape_in(box)
    a = face_thumbnail(scene(0, [(box, 1)]), pts)
    moved_face = scene(0, [(moved(box, 25.0), 1)])
    blurred = cv2.GaussianBlur(moved_face, (0, 0), 2.0)
    assert likeness(a, face_thumbnail(blurred, shape_in(moved(box, 25.0)))) > 0.8
    assert likeness(a, face_thumbnail(scene(0, [(box, 2)]), pts)) < 0.25
    assert face_thumbnail(np.zeros((64, 64, 3), np.uint8), pts) is None  # off the picture
    assert likeness(None, a) == 1.0  # no evidence: no objection

    # in Algorithm 1: a neighbour is turned down as FV's rejection would be, the same face
    # (drawn where the detection is) is taken, and 0 switches the check off
    nets, results = _refound(neighbour_seed=2, likeness=0.25)
    assert results[4].state == "lost"
    held = results[2].box  # the lost frame's points: FLL in the held box, not on the neighbour
    assert box_distance_ratio(held, results[4].box) < box_distance_ratio(
        moved(held, 30.0), results[4].box
    )
    _, same = _refound(neighbour_seed=1, likeness=0.25)
    assert same[4].state == "redetected"
    _, unchecked = _refound(neighbour_seed=2, likeness=0.0)
    assert unchecked[4].state == "redetected"


def test_a_stranger_standing_in_the_held_box_is_not_taken_for_the_followed_face() -> None:
    """Lost at frame 3; at 4 MTCNN finds nothing and another face stands where face 1 was: BT
    from the held box lands on it and FV accepts a face. With ``likeness`` that frame is a
    re-find like a re-detection, and a stranger is turned down; the same face is taken back."""

    def held_by(seed: int, likeness: float) -> list[TrackResult]:
        prev = BOX + 2 * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT  # frame 2's box: the held box
        nets = FakeNets(scores={3: 0.1})
        config = TrackerConfig(redetect_on_loss=False, likeness=likeness, lost_follow=False)
        tracker = CRCTTracker(nets, config, init_box=BOX)
        frames = []
        for t in range(6):
            box = BOX + t * (BT_SHIFT + FLL_SHIFT) + FLL_SHIFT
            frames.append(scene(t, [(box, 1)] if t < 3 else [(prev + BT_SHIFT, seed)]))
        return [tracker.step(f) for f in frames]

    assert held_by(2, 0.25)[4].state == "lost"
    assert held_by(1, 0.25)[4].state == "tracked"
    assert held_by(2, 0.0)[4].state == "tracked"  # the check off: as before
