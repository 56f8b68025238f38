"""The multi-face scorer on constructed runs whose numbers can be worked out by hand, and
``crct benchmark --dataset multi`` / ``--pred landmarks.csv`` through the command line with a
scripted tracker.

Every ground-truth face is the fixed unit shape in a 30 x 40 box (diagonal exactly 50, see
``bench_fakes``), so a prediction moved by (dx, dy) pixels has NME hypot(dx, dy) / 50.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench_fakes import SIZE, shape_in
from typer.testing import CliRunner

import crct_cli.bench.runner as bench_runner
from crct_cli.bench.methods import MethodSpec
from crct_cli.bench.multi_face import (
    MatchConfig,
    combine,
    hungarian,
    match,
    read_multi_gt,
    read_predictions,
    score_runs,
    score_sequence,
)
from crct_cli.cli import app
from crct_cli.io.landmarks import write_pts
from crct_cli.io.openface_csv import COLUMNS

runner = CliRunner()


def box_at(x: float, y: float) -> np.ndarray:
    return np.array([x, y, *SIZE])


def write_gt(
    folder: Path,
    faces: dict[str, dict[int, np.ndarray]],
    frames: int,
    hidden: dict[str, dict[int, np.ndarray]] | None = None,
) -> Path:
    """``faces/<id>/NNNNNN.pts`` for the visible boxes; ``faces.json`` with every box."""
    records: dict[str, list[dict[str, Any]]] = {k: [] for k in faces}
    for gid, boxes in faces.items():
        (folder / "faces" / gid).mkdir(parents=True, exist_ok=True)
        for n, box in boxes.items():
            write_pts(folder / "faces" / gid / f"{n:06d}.pts", shape_in(box))
            records[gid].append({"frame": n, "box": box.tolist(), "visible": True})
    for gid, boxes in (hidden or {}).items():
        for n, box in boxes.items():
            records.setdefault(gid, []).append({"frame": n, "box": box.tolist(), "visible": False})
    doc = {"frames": frames, "faces": [{"gt_id": k, "frames": v} for k, v in records.items()]}
    (folder / "faces.json").write_text(json.dumps(doc))
    return folder


Row = tuple[int, int, int, np.ndarray]  # frame, face_id, success, box of the unit shape


def write_csv(path: Path, rows: list[Row], offsets: dict[tuple[int, int], tuple[float, float]]):
    """An OpenFace-layout CSV written with the csv module (independently of crct's writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for frame, face_id, success, box in rows:
            pts = shape_in(box) + np.asarray(offsets.get((frame, face_id), (0.0, 0.0)))
            out.writerow(
                [frame, face_id, f"{(frame - 1) / 25:.3f}", "0.9", success]
                + [f"{v:.3f}" for v in pts[:, 0]]
                + [f"{v:.3f}" for v in pts[:, 1]]
            )
    return path


def face0(n: int) -> np.ndarray:
    return box_at(10.0 + 2 * n, 10.0)  # moves 2 px right per frame


def face1(n: int) -> np.ndarray:
    return box_at(100.0, 10.0 - n)  # moves 1 px up per frame


@pytest.fixture
def worked_case(tmp_path: Path) -> tuple[Path, Path]:
    """Two faces over four frames; face 1 is present but hidden on frame 4.

    Face 0: predicted by id 7 with offsets (0,0), (0,1), (0,1), (3,4): NME 0, .02, .02, .1;
    a second prediction (id 11) sits on it on frame 1 (a duplicate), a lost row (id 10) on
    frame 3. Face 1: id 8 on frames 1-2, id 9 on frame 3 (one switch); on frame 4 a prediction
    over its hidden box (don't care). Frame 2 has a prediction on no face (a ghost).
    """
    gt = write_gt(
        tmp_path / "001",
        {"0": {n: face0(n) for n in range(1, 5)}, "1": {n: face1(n) for n in range(1, 4)}},
        frames=4,
        hidden={"1": {4: face1(4)}},
    )
    rows: list[Row] = [(n, 7, 1, face0(n)) for n in range(1, 5)]
    rows += [(1, 11, 1, face0(1)), (3, 10, 0, face0(3))]
    rows += [(1, 8, 1, face1(1)), (2, 8, 1, face1(2)), (3, 9, 1, face1(3)), (4, 9, 1, face1(4))]
    rows += [(2, 12, 1, box_at(300.0, 300.0))]
    offsets = {(2, 7): (0.0, 1.0), (3, 7): (0.0, 1.0), (4, 7): (3.0, 4.0), (1, 11): (1.0, 0.0)}
    pred = write_csv(
        tmp_path / "run" / "001" / "landmarks.csv", sorted(rows, key=lambda r: r[:2]), offsets
    )
    return pred, gt


def test_scores_of_a_worked_case(worked_case: tuple[Path, Path]) -> None:
    pred, gt = worked_case
    score = score_sequence(read_predictions(pred), read_multi_gt(gt))
    # face 0 then face 1 per frame: 0, 0 | .02, 0 | .02, 0 | .1
    np.testing.assert_allclose(score.errors, [0, 0, 0.02, 0, 0.02, 0, 0.1], atol=1e-9)
    assert score.face_frames == 7 and score.matched == 7
    assert score.id_switches == 1 and score.id_switches_on_return == 0
    assert score.faces["1"].ids == [8, 9] and score.faces["0"].ids == [7]
    assert (score.ghosts, score.duplicates, score.dont_care) == (2, 1, 1)
    assert (score.rows, score.lost_rows) == (10, 1)
    # face 0: offset changes (0,0)->(0,1)->(0,1)->(3,4): 1/50, 0, hypot(3,3)/50;
    # face 1: ids 8, 8 (0), then 8 -> 9 is a switch, not a jitter pair
    np.testing.assert_allclose(
        sorted(score.jitter), sorted([0.02, 0.0, math.hypot(3, 3) / 50, 0.0]), atol=1e-9
    )
    doc = score.to_json(0.08)
    assert doc["auc"] == pytest.approx((1 + 1 + 0.75 + 1 + 0.75 + 1 + 0) / 7)
    assert doc["failure_rate"] == pytest.approx(1 / 7)
    assert doc["coverage"] == 1.0
    assert doc["jitter"] == pytest.approx((0.02 + math.hypot(3, 3) / 50) / 4)
    assert doc["jitter_ok"] == pytest.approx(0.02 / 3)  # the pair with frame 4 (NME .1) is out


def test_unmatched_faces_are_failures_and_lost_rows_count_only_in_all_rows(tmp_path: Path) -> None:
    gt = write_gt(tmp_path / "s", {"0": {n: face0(n) for n in range(1, 5)}}, frames=4)
    rows: list[Row] = [(1, 0, 1, face0(1)), (2, 0, 0, face0(2)), (3, 0, 0, face0(3))]
    rows += [(4, 0, 1, box_at(200.0, 200.0))]  # far from the face: a ghost, the face missed
    score = score_sequence(
        read_predictions(write_csv(tmp_path / "p.csv", rows, {})), read_multi_gt(gt)
    )
    assert np.isinf(score.errors).tolist() == [False, True, True, True]
    assert np.isinf(score.errors_all_rows).tolist() == [False, False, False, True]
    assert score.ghosts == 1 and score.lost_rows == 2 and score.matched == 1
    doc = score.to_json(0.08)
    assert doc["coverage"] == 0.25 and doc["failure_rate"] == 0.75
    assert doc["jitter_pairs"] == 0  # no two consecutive matched frames


def test_a_crossing_with_swapped_ids_is_two_switches(tmp_path: Path) -> None:
    """Two faces pass each other; the tracker swaps their ids when they overlap."""
    xa = {n: 20.0 + 10 * n for n in range(1, 11)}
    xb = {n: 130.0 - 10 * n for n in range(1, 11)}
    gt = write_gt(
        tmp_path / "s",
        {"a": {n: box_at(xa[n], 10.0) for n in xa}, "b": {n: box_at(xb[n], 30.0) for n in xb}},
        frames=10,
    )
    kept = [(n, 0, 1, box_at(xa[n], 10.0)) for n in xa] + [
        (n, 1, 1, box_at(xb[n], 30.0)) for n in xb
    ]
    swapped = [(n, 0 if n <= 5 else 1, 1, box_at(xa[n], 10.0)) for n in xa]
    swapped += [(n, 1 if n <= 5 else 0, 1, box_at(xb[n], 30.0)) for n in xb]
    truth = read_multi_gt(gt)
    good = score_sequence(read_predictions(write_csv(tmp_path / "k.csv", kept, {})), truth)
    bad = score_sequence(read_predictions(write_csv(tmp_path / "s.csv", swapped, {})), truth)
    assert good.id_switches == 0 and good.ghosts == 0 and good.matched == 20
    assert bad.id_switches == 2 and bad.id_switches_on_return == 0 and bad.matched == 20
    assert good.jitter.size == 18 and bad.jitter.size == 16  # the swap breaks one pair per face


def test_a_pair_still_inside_the_gate_is_kept_as_clear_mot_keeps_it(tmp_path: Path) -> None:
    """Two tracks drift over each other's faces on frame 2 while each still overlaps its own
    (IoU 0.48 and 0.54, gate 0.3): CLEAR MOT keeps last frame's pairs, so no switch, and
    each face's error is its own track's, though the swapped pairing overlaps more (0.82,
    0.90)."""
    gt = write_gt(
        tmp_path / "s",
        {"a": {n: box_at(0.0, 10.0) for n in (1, 2, 3)},
         "b": {1: box_at(90.0, 10.0), 2: box_at(12.0, 10.0), 3: box_at(90.0, 10.0)}},
        frames=3,
    )  # fmt: skip
    rows: list[Row] = [(1, 1, 1, box_at(0.0, 10.0)), (1, 2, 1, box_at(90.0, 10.0))]
    rows += [(2, 1, 1, box_at(10.5, 10.0)), (2, 2, 1, box_at(3.0, 10.0))]
    rows += [(3, 1, 1, box_at(0.0, 10.0)), (3, 2, 1, box_at(90.0, 10.0))]
    score = score_sequence(
        read_predictions(write_csv(tmp_path / "p.csv", rows, {})), read_multi_gt(gt)
    )
    assert score.id_switches == 0 and score.faces["a"].ids == [1] and score.faces["b"].ids == [2]
    # frame 2: face a's own track 10.5 px off, face b's 9 px off (NME = distance / 50)
    np.testing.assert_allclose(score.errors, [0, 0, 10.5 / 50, 9 / 50, 0, 0], atol=1e-9)
    assert score.jitter.size == 4
    # pairs that leave the gate (IoU 0.2) are matched afresh: the swap then counts, twice
    # for each face (to the other track on frame 2, back on frame 3)
    rows[2:4] = [(2, 1, 1, box_at(20.0, 10.0)), (2, 2, 1, box_at(0.0, 10.0))]
    truth = read_multi_gt(gt)
    truth.visible["b"][2] = shape_in(box_at(20.0, 10.0))
    moved = score_sequence(read_predictions(write_csv(tmp_path / "q.csv", rows, {})), truth)
    assert moved.faces["a"].ids == [1, 2] and moved.id_switches == 4


def test_a_face_coming_back_with_a_new_id_is_a_switch_on_return(tmp_path: Path) -> None:
    boxes = {n: box_at(10.0, 10.0) for n in (1, 2, 3, 7, 8)}  # out of view on frames 4-6
    gt = write_gt(tmp_path / "s", {"0": boxes}, frames=8)
    rows = [(n, 0 if n < 4 else 1, 1, b) for n, b in boxes.items()]
    score = score_sequence(
        read_predictions(write_csv(tmp_path / "p.csv", rows, {})), read_multi_gt(gt)
    )
    assert score.id_switches == 1 and score.id_switches_on_return == 1
    assert score.jitter.size == 3  # 1-2, 2-3, 7-8


def test_an_id_passed_from_a_leaving_face_to_a_newcomer_is_counted(tmp_path: Path) -> None:
    """Face a leaves after frame 4 and face b comes in on frame 5 elsewhere; a tracker whose
    lost track re-found b keeps a's id 0 for b. No switch: each face has one id. The id on
    two people was counted nowhere; ``ids_on_several_faces`` counts it. The swapped crossing
    shares two ids; a tracker giving b a new id shares none."""
    a = {n: box_at(10.0, 10.0) for n in (1, 2, 3, 4)}
    b = {n: box_at(80.0, 10.0) for n in (5, 6, 7, 8)}
    truth = read_multi_gt(write_gt(tmp_path / "s", {"a": a, "b": b}, frames=8))
    passed = [(n, 0, 1, box) for n, box in {**a, **b}.items()]
    fresh = [(n, 0 if n < 5 else 1, 1, box) for n, box in {**a, **b}.items()]
    one = score_sequence(read_predictions(write_csv(tmp_path / "p.csv", passed, {})), truth)
    two = score_sequence(read_predictions(write_csv(tmp_path / "f.csv", fresh, {})), truth)
    assert one.id_switches == two.id_switches == 0 and one.matched == two.matched == 8
    assert one.shared_ids == 1 and two.shared_ids == 0
    assert one.to_json(0.08)["ids_on_several_faces"] == 1
    assert combine("crct", [one, two, one], 0.08).to_json()["ids_on_several_faces"] == 2


def test_hungarian_finds_the_cheapest_assignment() -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 3), (2, 4), (4, 2), (5, 5), (3, 6)]:
        for _ in range(20):
            cost = rng.uniform(0, 1, shape).round(2)
            pairs = hungarian(cost)
            assert len(pairs) == min(shape)
            assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == min(shape)
            n, m = shape
            if n <= m:
                best = min(
                    sum(cost[i, p[i]] for i in range(n))
                    for p in itertools.permutations(range(m), n)
                )
            else:
                best = min(
                    sum(cost[p[j], j] for j in range(m))
                    for p in itertools.permutations(range(n), m)
                )
            assert sum(cost[r, c] for r, c in pairs) == pytest.approx(best)


def test_matching_prefers_more_pairs_over_one_better_pair() -> None:
    """Prediction 0 overlaps both faces, prediction 1 only face 0: both faces are matched."""
    faces = [box_at(0.0, 0.0), box_at(20.0, 0.0)]
    preds = [box_at(10.0, 0.0), box_at(-5.0, 0.0)]
    assert match(preds, faces, 0.3) == {0: 1, 1: 0}
    assert match(preds, faces, 0.95) == {}
    assert match([], faces, 0.3) == {} and match(preds, [], 0.3) == {}


def test_a_looser_gate_turns_a_ghost_into_a_failure(tmp_path: Path) -> None:
    gt = write_gt(tmp_path / "s", {"0": {1: box_at(0.0, 0.0)}}, frames=1)
    rows: list[Row] = [(1, 0, 1, box_at(12.0, 0.0))]  # IoU 18*40 / (2*1200 - 720) = 0.43
    preds = read_predictions(write_csv(tmp_path / "p.csv", rows, {}))
    strict = score_sequence(preds, read_multi_gt(gt), cfg=MatchConfig(iou=0.5))
    loose = score_sequence(preds, read_multi_gt(gt), cfg=MatchConfig(iou=0.3))
    assert strict.matched == 0 and strict.ghosts == 1
    assert loose.matched == 1 and loose.ghosts == 0
    assert loose.errors[0] == pytest.approx(12 / 50)


# --------------------------------------------------------------------------------------------
# Through the command line


@dataclass
class FakeFace:
    face_id: int
    points: np.ndarray
    box: np.ndarray
    score: float | None
    state: str


@dataclass
class FakeFrame:
    index: int
    time: float
    faces: list[FakeFace]


class ScriptedTracker:
    """Reads the ground truth of the sequence it is given and reports each visible face with
    a fixed id and offset per method: ``crct`` exact, ``fll-mt`` 1 px off and swapping ids."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.weight_files: dict[str, str] = {}

    def track(self, video: Path, max_frames: int | None = None) -> Iterator[FakeFrame]:
        truth = read_multi_gt(Path(video).parent)
        for n in range(1, truth.frames + 1):
            if max_frames is not None and n > max_frames:
                return
            faces = []
            for k, gid in enumerate(truth.visible):
                if n in truth.visible[gid]:
                    face_id = k if self.mode == "crct" or n < 3 else 1 - k
                    dy = 0.0 if self.mode == "crct" else 1.0
                    pts = truth.visible[gid][n] + [0.0, dy]
                    faces.append(FakeFace(face_id, pts, pts.min(0), 0.9, "tracked"))
            yield FakeFrame(n - 1, (n - 1) / 25, faces)


def multi_root(tmp_path: Path, make_video: Callable[..., Path]) -> Path:
    root = tmp_path / "multi"
    for name, frames in (("001", 4), ("002", 3)):
        folder = write_gt(
            root / name,
            {
                "0": {n: face0(n) for n in range(1, frames + 1)},
                "1": {n: face1(n) for n in range(1, frames + 1)},
            },
            frames=frames,
        )
        make_video(
            str((folder / "vid.mp4").relative_to(tmp_path)), n_frames=frames, width=32, height=24
        )
    (root / "003").mkdir()  # listed as missing
    (root / "003" / "vid.mp4").write_bytes(b"")
    return root


def test_dataset_multi_runs_every_method_and_rescoring_its_csv_agrees(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = multi_root(tmp_path, make_video)
    made: list[str] = []

    def factory(
        device: str,
        seq_bt: int,
        int8: bool,
        blend: bool,
        flip: bool,
        bt_reuse: float,
        stretched_look: bool,
        find_wide: float,
        video_fll: bool,
        smooth: bool,
        smooth_cutoff: float,
        smooth_beta: float,
        lookahead: bool,
        backtrack: int,
        bridge_lost: bool,
        temporal_denoise: bool,
        temporal_radius: int,
        temporal_strength: float,
        noise_threshold: float,
        min_face: int,
        shot_cuts: bool,
        cut_correlation: float,
        cut_histogram: float,
        **redetection: Any,
    ) -> Callable[[MethodSpec], ScriptedTracker]:
        assert redetection == bench_runner.DatasetRequest("multi").redetection  # the defaults
        assert min_face == 20
        assert shot_cuts and (cut_correlation, cut_histogram) == (0.9, 0.45)
        assert temporal_denoise and (temporal_radius, temporal_strength) == (2, 0.8)
        assert noise_threshold == 2.5
        assert blend and not flip and bt_reuse == 0.05  # crct track's defaults
        assert stretched_look is False and find_wide == 2.0 and video_fll is True
        assert smooth and (smooth_cutoff, smooth_beta) == (2.5, 5.0) and lookahead
        assert backtrack == 10 and bridge_lost is True

        def make(spec: MethodSpec) -> ScriptedTracker:
            made.append(spec.name)
            return ScriptedTracker(spec.mode)

        return make

    monkeypatch.setattr(bench_runner, "make_multi_factory", factory)
    out = tmp_path / "res"
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--dataset",
            "multi",
            "--root",
            str(root),
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert made == ["crct", "fll-mt"]  # the default methods
    assert "missing 1 of 3 sequences" in result.stderr and "003 (no faces/" in result.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "multi" and doc["methods"] == ["crct", "fll-mt"]
    crct, fllmt = doc["totals"]["crct"], doc["totals"]["fll-mt"]
    assert crct["count"] == 14 and crct["auc"] == pytest.approx(1.0) and crct["coverage"] == 1.0
    assert crct["id_switches"] == 0 and crct["ghosts"] == 0 and crct["jitter"] == pytest.approx(0)
    # fll-mt: 1 px off (NME 0.02) everywhere, ids swapped from frame 3 on in both sequences
    assert fllmt["auc"] == pytest.approx(0.75) and fllmt["id_switches"] == 4
    assert (
        fllmt["jitter"] == pytest.approx(0) and fllmt["jitter_pairs"] == 6
    )  # pairs 1-2 (x2 faces) and 3-4
    assert "crct" in result.stdout and "fll-mt" in result.stdout and "coverage" in result.stdout
    csv_path = out / "predictions" / "fll-mt" / "001" / "landmarks.csv"
    assert csv_path.is_file()

    rescored = runner.invoke(
        app,
        [
            "benchmark",
            "--pred",
            str(out / "predictions" / "fll-mt"),
            "--gt",
            str(root),
            "--out",
            str(tmp_path / "re"),
        ],
        env={"COLUMNS": "200"},
    )
    assert rescored.exit_code == 0, rescored.output
    again = json.loads((tmp_path / "re" / "results.json").read_text())["totals"]["fll-mt"]
    for key in ("count", "auc", "failure_rate", "coverage", "id_switches", "ghosts", "jitter"):
        assert again[key] == pytest.approx(fllmt[key]), key


def test_pred_csv_for_one_sequence_and_bad_input(
    worked_case: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, gt = worked_case
    result = score_runs(pred, gt)
    assert result.totals["001"].id_switches == 1 and result.totals["001"].summary.count == 7
    cli = runner.invoke(
        app, ["benchmark", "--pred", str(pred), "--gt", str(gt)], env={"COLUMNS": "200"}
    )
    assert cli.exit_code == 0, cli.output
    assert "0.7857" in cli.stdout  # AUC 5.5 / 7
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,face_id\n1,0\n")
    cli = runner.invoke(app, ["benchmark", "--pred", str(bad), "--gt", str(gt)])
    assert cli.exit_code == 2 and "not a landmarks CSV" in cli.stderr
    bad.write_bytes(b"garbage\x00\xff\n")  # not text at all
    cli = runner.invoke(app, ["benchmark", "--pred", str(bad), "--gt", str(gt)])
    assert cli.exit_code == 2 and "not UTF-8" in cli.stderr
    good = [line.split(",") for line in pred.read_text().splitlines()]
    x0 = good[0].index("x_0")
    for column, value, message in ((0, "0", "frame 0"), (x0, "nan", "finite")):
        row = list(good[1])
        row[column] = value
        bad.write_text("\n".join(",".join(r) for r in [good[0], row, *good[2:]]) + "\n")
        cli = runner.invoke(app, ["benchmark", "--pred", str(bad), "--gt", str(gt)])
        assert cli.exit_code == 2 and message in cli.stderr and "line 2" in cli.stderr
    cli = runner.invoke(app, ["benchmark", "--pred", str(tmp_path / "none"), "--gt", str(gt)])
    assert cli.exit_code == 2 and "no such prediction" in cli.stderr


def test_dataset_multi_refuses_still_and_init_options(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    root = multi_root(tmp_path, make_video)
    cli = runner.invoke(
        app, ["benchmark", "--dataset", "multi", "--root", str(root), "--init", "gt"]
    )
    assert cli.exit_code == 2 and "not for --dataset multi" in cli.stderr
    cli = runner.invoke(app, ["benchmark", "--dataset", "multi"])
    assert cli.exit_code == 2 and "needs --root" in cli.stderr


def test_a_crct_track_run_of_several_faces_is_ground_truth_too(
    worked_case: tuple[Path, Path], tmp_path: Path
) -> None:
    """``crct track --faces all`` writes faces/<id>/annot/NNNNNN.pts: read as the ground
    truth's faces/<id>/NNNNNN.pts, so that two runs score each other."""
    import shutil

    from crct_cli.bench.multi_face import read_multi_gt

    pred, gt = worked_case
    run = tmp_path / "track-run"
    for face in (gt / "faces").iterdir():
        shutil.copytree(face, run / "faces" / face.name / "annot")
    as_gt, as_run = read_multi_gt(gt), read_multi_gt(run)
    assert as_run.visible.keys() == as_gt.visible.keys() == {"0", "1"}
    for gid, frames in as_gt.visible.items():
        assert frames.keys() == as_run.visible[gid].keys()
    cli = runner.invoke(app, ["benchmark", "--pred", str(pred), "--gt", str(run)])
    assert cli.exit_code == 0, cli.output
