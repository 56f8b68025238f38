"""``crct benchmark --pred/--gt --nearest --common-with``: scoring a tool that writes one file per
face found (``NAME.pts``, ``NAME_1.pts``...) on the faces a peer also answered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_geometry_models import ibug_template
from typer.testing import CliRunner

from crct_cli.bench.pts_compare import compare_pts_folders, face_candidates
from crct_cli.cli import app
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import write_pts


def face_at(x: float, y: float, scale: float = 1.0) -> np.ndarray:
    return scale * ibug_template() + np.array([x, y])


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """afw-like ground truth (IMG_1 and IMG_2 are two faces of one picture, each with its own
    file), a tool that found two faces in each picture, and a peer that answered one picture."""
    gt, pred, peer = tmp_path / "gt", tmp_path / "pred", tmp_path / "peer"
    for folder in (gt, pred, peer):
        folder.mkdir()
    truth = {"IMG_1": face_at(100, 100), "IMG_2": face_at(300, 120), "solo": face_at(50, 60)}
    for name, points in truth.items():
        write_pts(gt / f"{name}.pts", points)
    rng = np.random.default_rng(0)
    # most confident first: the other person, then the annotated one (0.5 px off)
    write_pts(pred / "IMG_1.pts", truth["IMG_2"])
    write_pts(pred / "IMG_1_1.pts", truth["IMG_1"] + rng.normal(0, 0.5, (68, 2)))
    write_pts(pred / "IMG_2.pts", truth["IMG_2"] + rng.normal(0, 0.5, (68, 2)))
    write_pts(pred / "IMG_2_1.pts", truth["IMG_1"])
    write_pts(pred / "solo.pts", truth["solo"] + 3.0)
    write_pts(peer / "IMG_1.pts", truth["IMG_1"])
    write_pts(peer / "solo.pts", truth["solo"])
    return gt, pred, peer


def test_candidates_never_take_another_ground_truth_file(folders: tuple[Path, Path, Path]) -> None:
    gt, pred, _ = folders
    from crct_cli.bench.pts_compare import find_pts

    found = face_candidates(find_pts(pred), find_pts(gt))
    assert found == {
        "IMG_1.pts": ["IMG_1.pts", "IMG_1_1.pts"],
        "IMG_2.pts": ["IMG_2.pts", "IMG_2_1.pts"],
        "solo.pts": ["solo.pts"],
    }


def test_nearest_scores_the_annotated_face_not_the_first_one(
    folders: tuple[Path, Path, Path],
) -> None:
    gt, pred, _ = folders
    first = {r.rel: r.nme for r in compare_pts_folders(pred, gt).per_file}
    near = compare_pts_folders(pred, gt, nearest=True)
    nme = {r.rel: r.nme for r in near.per_file}
    assert first["IMG_1.pts"] > 0.5  # the neighbour, far away
    assert nme["IMG_1.pts"] < 0.01 and nme["IMG_2.pts"] < 0.01
    assert nme["solo.pts"] == pytest.approx(first["solo.pts"])
    assert near.unmatched_predictions == 0  # IMG_1_1 and IMG_2_1 were used as candidates


def test_common_with_keeps_the_peer_s_faces(folders: tuple[Path, Path, Path]) -> None:
    gt, pred, peer = folders
    result = compare_pts_folders(pred, gt, nearest=True, common_with=peer)
    assert [r.rel for r in result.per_file] == ["IMG_1.pts", "solo.pts"]
    assert result.summary.count == 2


def test_cli_options_and_their_misuse(folders: tuple[Path, Path, Path]) -> None:
    gt, pred, peer = folders
    runner = CliRunner()
    args = ["benchmark", "--pred", str(pred), "--gt", str(gt), "--nearest"]
    ok = runner.invoke(app, [*args, "--common-with", str(peer), "--out", str(gt.parent / "r")])
    assert ok.exit_code == 0, ok.output
    assert '"count": 2' in (gt.parent / "r" / "results.json").read_text()
    for bad, message in (
        ([*args, "--common-with", str(gt.parent / "nowhere")], "no such folder"),
        (["benchmark", "--dataset", "300w", "--nearest"], "only with --pred/--gt"),
    ):
        result = runner.invoke(app, bad)
        assert result.exit_code == 2 and message in result.output, result.output


def test_common_with_scores_both_tools_on_the_faces_both_answered(tmp_path: Path) -> None:
    """A answers faces 1-4 and B faces 3-6, both exactly: scored beside each other, either
    way round, on faces 3 and 4 alone (a tool's own misses among the peer's faces would
    otherwise count against it in one direction and not in the other)."""
    for name in ("gt", "a", "b"):
        (tmp_path / name).mkdir()
    for k in range(1, 7):
        truth = face_at(10.0 * k, 20.0)
        write_pts(tmp_path / "gt" / f"face{k}.pts", truth)
        if k <= 4:
            write_pts(tmp_path / "a" / f"face{k}.pts", truth)
        if k >= 3:
            write_pts(tmp_path / "b" / f"face{k}.pts", truth)
    for pred, peer in (("a", "b"), ("b", "a")):
        result = compare_pts_folders(tmp_path / pred, tmp_path / "gt", common_with=tmp_path / peer)
        assert [r.rel for r in result.per_file] == ["face3.pts", "face4.pts"]
        assert result.summary.missing == 0 and result.summary.auc == pytest.approx(1.0)
        doc = result.to_json()["common_with"]
        assert doc == {"peer": str(tmp_path / peer), "gt_files": 6, "pred_answered": 4,
                       "peer_answered": 4}  # fmt: skip
    (tmp_path / "c").mkdir()
    write_pts(tmp_path / "c" / "face6.pts", face_at(60.0, 20.0))
    with pytest.raises(CrctError, match="answered by both"):
        compare_pts_folders(tmp_path / "a", tmp_path / "gt", common_with=tmp_path / "c")
    shown = CliRunner().invoke(
        app,
        [
            "benchmark",
            "--pred",
            str(tmp_path / "a"),
            "--gt",
            str(tmp_path / "gt"),
            "--common-with",
            str(tmp_path / "b"),
        ],
        env={"COLUMNS": "200"},
    )
    assert shown.exit_code == 0, shown.output
    assert "the 2 files both answered: of 6" in " ".join(shown.output.split())
