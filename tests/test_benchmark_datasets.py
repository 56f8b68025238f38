"""``crct benchmark --dataset``: categories, data resolution, exact scores on generated data.

The methods are fakes whose predictions are the ground truth plus known offsets (see
``bench_fakes``), so AUC, failure rate and box success AUC have exact expected values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench_fakes import (
    OffsetAligner,
    gt_shape,
    make_sequence,
    make_still_set,
    seq_gt,
    shape_in,
    tracker_factory,
)

from crct_cli.bench.catalog import (
    CATEGORIES,
    CATEGORY_1,
    CATEGORY_2,
    CATEGORY_3,
    DATA_ENV,
    category_of,
    resolve_root,
    select_sequences,
)
from crct_cli.bench.methods import (
    MethodSpec,
    TrackerMethod,
    parse_methods,
)
from crct_cli.bench.runner import DatasetRequest, run_dataset
from crct_cli.bench.still_bench import ALL_SETS, parse_noise, select_images
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import read_pts, write_pts
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import iou, success_auc
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.tracker import TrackerConfig

T = 0.08


def expected_auc(errors: list[float]) -> float:
    """AUC@0.08 by its definition: mean of max(0, T - e) / T (inf contributes 0)."""
    return sum(max(0.0, T - e) for e in errors) / T / len(errors)


# --------------------------------------------------------------------------------------------
# Categories and data resolution


def test_official_categories_are_built_in() -> None:
    assert (len(CATEGORY_1), len(CATEGORY_2), len(CATEGORY_3)) == (31, 19, 14)
    assert CATEGORY_1[:3] == ("114", "124", "125") and CATEGORY_1[-1] == "548"
    assert {"203", "412", "553"} <= set(CATEGORY_2)
    assert CATEGORY_3 == tuple("410 411 516 517 526 528 529 530 531 533 557 558 559 562".split())
    everything = CATEGORY_1 + CATEGORY_2 + CATEGORY_3
    assert len(set(everything)) == 64  # no sequence in two categories
    assert set(CATEGORIES) == {"300vw-cat1", "300vw-cat2", "300vw-cat3"}
    assert category_of("114") == "300vw-cat1" and category_of("562") == "300vw-cat3"
    assert category_of("001") is None


def test_root_comes_from_crct_data(tmp_path: Path) -> None:
    (tmp_path / "300VW").mkdir()
    (tmp_path / "300W").mkdir()
    env = {DATA_ENV: str(tmp_path)}
    assert resolve_root("300vw-cat3", None, env) == tmp_path / "300VW"
    assert resolve_root("300w", None, env) == tmp_path / "300W"
    assert resolve_root("300vw", tmp_path / "300W", env) == tmp_path / "300W"  # --root wins

    with pytest.raises(CrctError) as missing:
        resolve_root("menpo", None, env)
    message = str(missing.value)
    assert str(tmp_path / "menpo") in message and "menpo.org" in message and "put" in message

    with pytest.raises(CrctError) as unset:
        resolve_root("300vw-cat1", None, {})
    message = str(unset.value)
    assert DATA_ENV in message and "https://ibug.doc.ic.ac.uk/resources/300-VW/" in message
    assert "\n" not in message

    with pytest.raises(CrctError, match="needs --root"):
        resolve_root("images", None, env)


def test_missing_sequences_of_a_category_are_listed(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    root = tmp_path / "300vw"
    make_sequence(make_video, root, "410", 3)
    make_sequence(make_video, root, "411", 3)
    (root / "516" / "annot").mkdir(parents=True)  # a folder without its video
    make_sequence(make_video, root, "517", 3, annotated=[])
    (root / "517" / "annot").rmdir()  # a video without annotations
    selection = select_sequences("300vw-cat3", root)
    assert [s.name for s in selection.sequences] == ["410", "411"]
    reasons = {m.name: m.reason for m in selection.missing}
    assert len(reasons) == 12 and set(reasons) | {"410", "411"} == set(CATEGORY_3)
    assert "vid.avi" in reasons["516"] and "annot" in reasons["517"]
    assert "no folder" in reasons["562"]
    assert selection.groups == {"300vw-cat3": ["410", "411"]}


@pytest.mark.parametrize("layout", ["empty", "only-missing", "file"])
def test_bad_layout_is_one_line(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "300vw"
    if layout == "file":
        root.write_text("not a folder")
        with pytest.raises(CrctError, match="not a folder"):
            resolve_root("300vw", root)
        return
    root.mkdir()
    if layout == "only-missing":
        (root / "114").mkdir()
    dataset = "300vw" if layout == "empty" else "300vw-cat1"
    with pytest.raises(CrctError) as error:
        select_sequences(dataset, resolve_root(dataset, root))
    message = str(error.value)
    assert "\n" not in message and "ibug.doc.ic.ac.uk/resources/300-VW" in message
    assert ("no 300-VW sequence" if layout == "empty" else "none of the 31") in message


def test_method_specs() -> None:
    specs = parse_methods("crct, fll-mt,bt", "video")
    assert [s.name for s in specs] == ["crct", "fll-mt", "bt"]
    assert parse_methods("crct+denoise-m", "video", denoise_ok=True) == [MethodSpec("crct", "m")]
    assert parse_methods("fll+denoise-none", "still") == [MethodSpec("fll")]
    with pytest.raises(CrctError, match="fadenn"):
        parse_methods("crct+denoise-m", "video", denoise_ok=False)
    for bad, message in [
        ("crct+denoise-x", "VARIANT"),
        ("crct+blur", "VARIANT"),
        ("magic", "unknown method"),
        ("crct,crct", "twice"),
        ("crct+denoise-s+denoise-m", "twice"),
        (" , ", "at least one"),
    ]:
        with pytest.raises(CrctError, match=message):
            parse_methods(bad, "video", denoise_ok=True)
    with pytest.raises(CrctError, match="still images"):
        parse_methods("crct", "still")


# --------------------------------------------------------------------------------------------
# 300-VW scoring with exactly known errors


@pytest.fixture
def vw_root(tmp_path: Path, make_video: Callable[..., Path]) -> Path:
    """001: 6 frames, all annotated; 002: 4 frames, annotated 1..5 (frame 5 is past the end)."""
    root = tmp_path / "300vw"
    make_sequence(make_video, root, "001", 6, seq=1)
    make_sequence(make_video, root, "002", 4, annotated=[1, 2, 3, 4, 5], seq=2)
    return root


SEQ_IDS = {"001": 1, "002": 2}
#: crct: offsets per (sequence, frame); None = no prediction
CRCT_OFFSETS = {
    ("001", 2): (3.0, 4.0),
    ("001", 3): (0.0, 1.0),
    ("001", 4): (0.0, 2.0),
    ("001", 5): None,
    ("001", 6): (30.0, 40.0),
    ("002", 3): (0.0, 1.0),
    ("002", 4): (0.0, 3.0),
}
CRCT_ERRORS_001 = [0.0, 0.1, 0.02, 0.04, np.inf, 1.0]
CRCT_ERRORS_002 = [0.0, 0.0, 0.02, 0.06, np.inf]  # frame 5: the video ended


def shifted_iou(dx: float, dy: float) -> float:
    inter = (30 - abs(dx)) * (40 - abs(dy)) if abs(dx) < 30 and abs(dy) < 40 else 0.0
    return inter / (2 * 1200 - inter)


def test_300vw_scores_are_exact(vw_root: Path) -> None:
    factory, made = tracker_factory({"crct": CRCT_OFFSETS}, SEQ_IDS)
    req = DatasetRequest("300vw", root=vw_root, methods="crct,bt")
    result = run_dataset(req, video_factory=factory).result
    assert list(result.groups) == ["all"]  # 001 and 002 are in no official category

    crct = result.groups["all"]["crct"]
    errors = CRCT_ERRORS_001 + CRCT_ERRORS_002
    assert crct.summary.count == 11 and crct.summary.missing == 2
    assert crct.summary.auc == pytest.approx(expected_auc(errors))
    assert crct.summary.auc == pytest.approx(0.42 / 0.08 / 11)
    assert crct.summary.failure_rate == pytest.approx(4 / 11)  # 0.1, 1.0 and two missing
    assert crct.summary.mean_nme == pytest.approx(np.mean([e for e in errors if e < np.inf]))
    offsets = [CRCT_OFFSETS.get(("001", k), (0, 0)) for k in range(1, 7)] + [
        CRCT_OFFSETS.get(("002", k), (0, 0)) for k in range(1, 5)
    ]
    ious = [0.0 if o is None else shifted_iou(*o) for o in offsets] + [0.0]
    assert crct.success_auc == pytest.approx(success_auc(ious))

    bt = result.groups["all"]["bt"]  # no offsets: exact on every decoded frame
    assert bt.summary.auc == pytest.approx(10 / 11) and bt.summary.failure_rate == pytest.approx(
        1 / 11
    )
    assert bt.success_auc == pytest.approx(success_auc([1.0] * 10 + [0.0]))

    # the papers' protocol: every method starts from the first frame's ground-truth box
    for fake in made.values():
        assert [name for name, _ in fake.starts] == ["001", "002"]
        for name, box in fake.starts:
            np.testing.assert_allclose(box, box_from_points(seq_gt(SEQ_IDS[name], 1)))
    per_seq = {(r.sequence, r.method): r for r in result.runs}
    assert per_seq[("002", "crct")].frames == 4
    np.testing.assert_array_equal(per_seq[("002", "crct")].numbers, [1, 2, 3, 4, 5])
    assert per_seq[("001", "crct")].errors.tolist() == pytest.approx(CRCT_ERRORS_001)


def test_300vw_ground_truth_counted_from_one_scores_alike_with_its_origin_off(
    vw_root: Path,
) -> None:
    """300-VW's own files count pixels from 1: ``gt_origin=1`` takes that off every frame's
    points (and the box the trackers start from) before scoring; recorded in the results."""
    for annot in vw_root.glob("*/annot"):
        for pts in annot.glob("*.pts"):
            write_pts(pts, read_pts(pts) + 1.0)
    factory, made = tracker_factory({"crct": CRCT_OFFSETS}, SEQ_IDS)
    req = DatasetRequest("300vw", root=vw_root, methods="crct", gt_origin=1.0)
    result = run_dataset(req, video_factory=factory).result
    crct = result.groups["all"]["crct"]
    assert crct.summary.auc == pytest.approx(expected_auc(CRCT_ERRORS_001 + CRCT_ERRORS_002))
    for name, box in made["crct"].starts:
        np.testing.assert_allclose(box, box_from_points(seq_gt(SEQ_IDS[name], 1)))
    assert result.to_json()["protocol"]["gt_origin"] == 1.0


def test_unreadable_video_is_listed_not_fatal(vw_root: Path) -> None:
    (vw_root / "002" / "vid.mp4").write_bytes(b"not a video")
    factory, made = tracker_factory({}, SEQ_IDS)
    result = run_dataset(DatasetRequest("300vw", root=vw_root), video_factory=factory).result
    assert [m.name for m in result.missing] == ["002"]
    assert "not a readable video" in result.missing[0].reason
    assert result.groups["all"]["crct"].items == 1 and result.group_members["all"] == ["001"]
    assert all(name == "001" for name, _ in made["crct"].starts)


def test_300vw_init_and_max_frames(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    root = tmp_path / "300vw"
    make_sequence(make_video, root, "114", 6, annotated=[3, 4, 5, 6], seq=1)  # category 1
    factory, made = tracker_factory({}, {"114": 1})
    result = run_dataset(
        DatasetRequest("300vw", root=root, methods="crct"), video_factory=factory
    ).result
    assert list(result.groups) == ["all", "300vw-cat1"]
    # init gt starts at the first annotated frame, from its ground-truth box
    assert made["crct"].fed == [("114", k) for k in (3, 4, 5, 6)]
    np.testing.assert_allclose(made["crct"].starts[0][1], box_from_points(seq_gt(1, 3)))

    result = run_dataset(
        DatasetRequest("300vw", root=root, methods="crct", init="detect", max_frames=4),
        video_factory=factory,
    ).result
    assert made["crct"].starts == [("114", None)]  # detect: no box given
    assert made["crct"].fed == [("114", k) for k in (1, 2, 3, 4)]
    assert result.groups["all"]["crct"].summary.count == 2  # frames 3 and 4


class DriftingNets:
    """Fake networks for the real TrackerMethod: FLL puts the shape in its box; BT drifts 3 px
    right per step; a static face, detected where the ground truth is."""

    def __init__(self, face: np.ndarray) -> None:
        self.face = face

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        box = box_from_points(self.face)
        return [Detection(box, box, 0.99)]

    def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return shape_in(box) + np.array([3.0, 0.0]), state

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return 0.9

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return shape_in(box)


def test_real_tracker_method_runs_algorithm_1(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    root = tmp_path / "300vw"
    folder = make_sequence(make_video, root, "001", 4, annotated=[])
    face = gt_shape(5.0, 2.0)
    for k in range(1, 5):
        write_pts(folder / "annot" / f"{k:06d}.pts", face)
    nets = DriftingNets(face)

    def factory(spec: MethodSpec) -> TrackerMethod:
        return TrackerMethod(nets, TrackerConfig(mode=spec.mode))

    result = run_dataset(
        DatasetRequest("300vw", root=root, methods="bt,fll-mt"), video_factory=factory
    ).result
    bt = result.groups["all"]["bt"].summary  # BT alone drifts: 0, 3, 6, 9 px over 50
    assert bt.auc == pytest.approx(expected_auc([0.0, 0.06, 0.12, 0.18]))
    assert bt.failure_rate == pytest.approx(0.5)
    fll_mt = result.groups["all"]["fll-mt"]  # detection + FLL every frame: exact
    assert fll_mt.summary.auc == pytest.approx(1.0) and fll_mt.summary.failure_rate == 0.0
    assert fll_mt.success_auc == pytest.approx(20 / 21)  # IoU 1 passes every threshold < 1


# --------------------------------------------------------------------------------------------
# Still images


def test_noise_sets() -> None:
    assert [s.name for s in parse_noise(None)] == ["clean"]
    assert [s.name for s in parse_noise("none")] == ["clean"]
    names = [s.name for s in parse_noise("all")]
    assert len(names) == 13 and names[0] == "clean" and names[-1] == "scale-3"
    assert [s.name for s in parse_noise("blur-3,clean,blur-3")] == ["blur-3", "clean"]
    assert len(ALL_SETS) == 13
    for bad in ("fog-1", "blur-4", "blur", "3"):
        with pytest.raises(CrctError):
            parse_noise(bad)


POSITIONS = [(10.0, 10.0), (20.0, 12.0), (30.0, 14.0)]
STILL_OFFSETS = {10: (0.0, 0.0), 20: (0.0, 1.0), 30: (30.0, 40.0)}
STILL_ERRORS = [0.0, 0.02, 1.0]


def test_still_images_from_the_ground_truth_box(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_still_set(root, POSITIONS)
    fake = OffsetAligner(STILL_OFFSETS)
    req = DatasetRequest("images", root=root, box_from_pts=True)
    result = run_dataset(req, image_factory=lambda spec: fake).result
    assert result.methods == ["fll"] and result.sets == ["clean"]
    clean = result.scores["clean"]["fll"].summary
    assert clean.count == 3 and clean.missing == 0
    assert clean.auc == pytest.approx(expected_auc(STILL_ERRORS))
    assert clean.failure_rate == pytest.approx(1 / 3)
    for box, (x, y) in zip(fake.boxes, POSITIONS, strict=True):  # the ground-truth box, exactly
        np.testing.assert_allclose(box, [x, y, 30.0, 40.0])


def test_still_ground_truth_counted_from_one_scores_alike_with_its_origin_off(
    tmp_path: Path,
) -> None:
    root = tmp_path / "faces"
    make_still_set(root, [(x + 1.0, y + 1.0) for x, y in POSITIONS])  # as 300-W writes them
    fake = OffsetAligner(STILL_OFFSETS)
    req = DatasetRequest("images", root=root, box_from_pts=True, gt_origin=1.0)
    result = run_dataset(req, image_factory=lambda spec: fake).result
    assert result.scores["clean"]["fll"].summary.auc == pytest.approx(expected_auc(STILL_ERRORS))
    for box, (x, y) in zip(fake.boxes, POSITIONS, strict=True):
        np.testing.assert_allclose(box, [x, y, 30.0, 40.0])
    assert result.to_json()["protocol"]["gt_origin"] == 1.0


def test_still_images_all_noise_sets_on_the_fly(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_still_set(root, POSITIONS)
    before = sorted(p.name for p in root.iterdir())

    def run(seed: int | None) -> Any:
        fake = OffsetAligner(STILL_OFFSETS, darkness=1 / 20)
        req = DatasetRequest("images", root=root, box_from_pts=True, noise="all", seed=seed)
        return run_dataset(req, image_factory=lambda spec: fake).result

    result = run(None)
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written
    assert len(result.sets) == 13
    auc = {s: result.scores[s]["fll"].summary.auc for s in result.sets}
    clean = auc["clean"]
    assert clean == pytest.approx(expected_auc(STILL_ERRORS))
    for kind in ("blur", "downsample"):  # a uniform image is unchanged by them
        assert all(auc[f"{kind}-{lv}"] == pytest.approx(clean) for lv in (1, 2, 3))
    # intensity x0.8 -> gray 160: 2 px more; x0.5 -> 100: 5 px; x0.2 -> 40: 8 px
    assert auc["scale-1"] == pytest.approx(expected_auc([0.04, np.hypot(2, 1) / 50, 1.0]))
    assert auc["scale-3"] == 0.0
    assert result.scores["scale-3"]["fll"].summary.failure_rate == 1.0
    assert all(auc[f"noise-{lv}"] == pytest.approx(clean, abs=0.02) for lv in (1, 2, 3))
    mean = result.mean_degraded()["fll"]
    assert mean["sets"] == 12
    assert mean["auc"] == pytest.approx(np.mean([auc[s] for s in result.sets[1:]]))
    # a fixed seed: the same noise again; another seed: other noise
    again = run(0)
    assert again.scores["noise-3"]["fll"].summary == result.scores["noise-3"]["fll"].summary
    other = run(7)
    assert other.scores["noise-3"]["fll"].summary != result.scores["noise-3"]["fll"].summary


def test_still_images_from_detection_and_skipped_markup(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_still_set(root, POSITIONS)
    write_pts(root / "profile.pts", np.zeros((39, 2)) + np.arange(39)[:, None])
    (root / "profile.png").write_bytes((root / "img_0.png").read_bytes())
    selection = select_images(root)
    assert [str(i.rel) for i in selection.items] == ["img_0.png", "img_1.png", "img_2.png"]
    assert selection.skipped == [("profile.png", "39-point markup, not 68")]

    detections = {
        0: np.array([11.0, 10.0, 30.0, 40.0]),  # 1 px off the ground-truth box
        1: np.array([200.0, 200.0, 30.0, 40.0]),  # far from the face: no overlap, missing
        2: None,  # nothing detected: missing
    }
    fake = OffsetAligner({}, detections=detections)
    result = run_dataset(
        DatasetRequest("images", root=root), image_factory=lambda spec: fake
    ).result
    clean = result.scores["clean"]["fll"].summary
    assert clean.missing == 2 and clean.failure_rate == pytest.approx(2 / 3)
    assert clean.auc == pytest.approx(expected_auc([1 / 50, np.inf, np.inf]))
    assert len(fake.boxes) == 1 and iou(fake.boxes[0], detections[0])[0] == 1.0
    assert result.skipped == selection.skipped


def test_still_set_without_pairs_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "faces").mkdir()
    with pytest.raises(CrctError) as error:
        run_dataset(DatasetRequest("300w", root=tmp_path / "faces"))
    assert "no image with a .pts" in str(error.value) and "300-W" in str(error.value)
