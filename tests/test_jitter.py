"""Jitter: frame-to-frame point motion less the ground truth's, per box diagonal, in the video
benchmark (``crct benchmark --dataset 300vw``) and as a function."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bench_fakes import gt_shape, make_sequence, tracker_factory

from crct_cli.bench.runner import DatasetRequest, run_dataset
from crct_cli.bench.scores import point_jitter, summarize_jitter

#: as in test_benchmark_datasets: the ground truth moves 1 px right per frame
OFFSETS = {
    ("001", 2): (3.0, 4.0),
    ("001", 3): (0.0, 1.0),
    ("001", 4): (0.0, 2.0),
    ("001", 5): None,
    ("001", 6): (30.0, 40.0),
    ("002", 3): (0.0, 1.0),
    ("002", 4): (0.0, 3.0),
}


def test_point_jitter_ignores_a_constant_offset_and_the_face_s_own_motion() -> None:
    g0 = gt_shape(0.0, 0.0)  # 30 x 40 box: diagonal 50
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    g1 = (g0 - g0.mean(0)) @ turn.T + g0.mean(0) + 7.0  # the face turns and moves
    assert point_jitter(g0 + 2.0, g1 + 2.0, g0, g1)[0] == pytest.approx(0.0, abs=1e-12)
    # a prediction that stays put while the face moves 5 px: 5 / 50
    h1 = g0 + [3.0, 4.0]
    assert point_jitter(g0, g0, g0, h1)[0] == pytest.approx(0.1)
    assert np.isnan(point_jitter(np.full_like(g0, np.nan), g0, g0, g0)[0])
    assert point_jitter(g0, g0 + [0.0, 1.0], g0, g0, "interocular")[0] > 0.02
    s = summarize_jitter(np.array([0.1, np.nan, 0.02]), np.array([0.09, 0.0, 0.01]), 0.08)
    assert (s.pairs, s.pairs_ok) == (2, 1)
    assert s.mean == pytest.approx(0.06) and s.mean_ok == pytest.approx(0.02)


def test_video_benchmark_reports_jitter(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    root = tmp_path / "300vw"
    make_sequence(make_video, root, "001", 6, seq=1)
    make_sequence(make_video, root, "002", 4, annotated=[1, 2, 3, 4, 5], seq=2)
    factory, _ = tracker_factory({"crct": OFFSETS}, {"001": 1, "002": 2})
    result = run_dataset(DatasetRequest("300vw", root=root, methods="crct,bt"), factory).result
    crct = result.groups["all"]["crct"].jitter
    # 001: (0,0)->(3,4)->(0,1)->(0,2), then missing; 002: (0,0)->(0,0)->(0,1)->(0,3), then none
    pairs = [0.1, math.hypot(3, 3) / 50, 0.02, 0.0, 0.02, 0.04]
    assert crct.pairs == 6 and crct.mean == pytest.approx(np.mean(pairs))
    # on the face: pairs whose two frames have NME <= 0.08 (not the two next to frame 2's 0.1)
    assert crct.pairs_ok == 4 and crct.mean_ok == pytest.approx(np.mean([0.02, 0.0, 0.02, 0.04]))
    bt = result.groups["all"]["bt"].jitter
    assert bt.pairs == 8 and bt.mean == pytest.approx(0.0, abs=1e-9)
    doc = result.to_json()
    assert doc["landmarks"]["all"]["crct"]["jitter"] == pytest.approx(np.mean(pairs))
    per_seq = {(s["sequence"], s["method"]): s for s in doc["sequences"]}
    assert per_seq[("002", "crct")]["jitter_pairs"] == 3


def test_a_run_of_several_methods_gives_the_jitter_on_the_pairs_all_have_on_the_face(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    """Each method's "on face" mean runs over its own pairs; beside it, the mean over the pairs
    every method of the run has on the face, where they compare like with like."""
    from crct_cli.bench.report import video_tables

    root = tmp_path / "300vw"
    make_sequence(make_video, root, "001", 6, seq=1)
    make_sequence(make_video, root, "002", 4, annotated=[1, 2, 3, 4, 5], seq=2)
    factory, _ = tracker_factory({"crct": OFFSETS}, {"001": 1, "002": 2})
    result = run_dataset(DatasetRequest("300vw", root=root, methods="crct,bt"), factory).result
    crct, bt = (result.groups["all"][m].jitter for m in ("crct", "bt"))
    # bt sits on the truth: every pair of its own is on the face, 4 of them for crct too
    assert bt.pairs_ok == 8 and bt.pairs_shared == 4 and bt.mean_shared == pytest.approx(0.0)
    assert crct.pairs_shared == 4 and crct.mean_shared == pytest.approx(crct.mean_ok)
    assert result.to_json()["landmarks"]["all"]["crct"]["jitter_ok_shared_pairs"] == 4
    headers = [c.header for c in video_tables(result)[-1].columns]
    assert "all on face, shared" in headers
    alone = run_dataset(DatasetRequest("300vw", root=root, methods="crct"), factory).result
    assert alone.groups["all"]["crct"].jitter.pairs_shared is None
    assert "all on face, shared" not in [c.header for c in video_tables(alone)[-1].columns]


def test_pts_folders_of_video_frames_report_jitter(tmp_path: Path) -> None:
    """``crct benchmark --pred DIR --gt DIR`` on frame files (a per-frame tool's output)."""
    from crct_cli.bench.pts_compare import compare_pts_folders
    from crct_cli.io.landmarks import write_pts

    offsets = {1: (0.0, 0.0), 2: (0.0, 1.0), 3: (0.0, 1.0), 5: (3.0, 4.0), 6: (0.0, 0.0)}
    for name in ("gt", "pred", "stills"):
        (tmp_path / name).mkdir()
    for k in range(1, 7):
        write_pts(tmp_path / "gt" / f"{k:06d}.pts", gt_shape(float(k), 0.0))
        if k in offsets:  # frame 4: no face found
            write_pts(tmp_path / "pred" / f"{k:06d}.pts", gt_shape(float(k), 0.0) + offsets[k])
    result = compare_pts_folders(tmp_path / "pred", tmp_path / "gt")
    assert result.jitter is not None
    # pairs 1-2: 0.02, 2-3: 0, 5-6: 0.1 (3-4 and 4-5 have no prediction on frame 4)
    assert result.jitter.pairs == 3 and result.jitter.mean == pytest.approx(0.04)
    assert result.jitter.pairs_ok == 2 and result.jitter.mean_ok == pytest.approx(0.01)
    assert result.to_json()["jitter"] == pytest.approx(0.04)
    write_pts(tmp_path / "stills" / "a.pts", gt_shape(0.0, 0.0))  # not frames: no jitter
    assert compare_pts_folders(tmp_path / "stills", tmp_path / "stills").jitter is None


def test_a_peer_s_folder_gives_the_jitter_on_the_pairs_both_tools_have_on_the_face(
    tmp_path: Path,
) -> None:
    """``--common-with PEER``: each tool's "on face" mean runs over its own pairs, so one that
    keeps hard frames on the face adds hard pairs; the shared pairs compare like with like."""
    from crct_cli.bench.pts_compare import compare_pts_folders, results_tables
    from crct_cli.io.landmarks import write_pts

    ours = {1: (0.0, 0.0), 2: (0.0, 1.0), 3: (0.0, 1.0), 4: (0.0, 1.0), 5: (0.0, 3.0)}
    peer = {1: (30.0, 40.0), 2: (0.0, 0.0), 3: (0.0, 0.0), 4: (0.0, 0.0), 5: (30.0, 40.0)}
    for name in ("gt", "ours", "peer"):
        (tmp_path / name).mkdir()
    for k in range(1, 6):
        write_pts(tmp_path / "gt" / f"{k:06d}.pts", gt_shape(float(k), 0.0))
        write_pts(tmp_path / "ours" / f"{k:06d}.pts", gt_shape(float(k), 0.0) + ours[k])
        write_pts(tmp_path / "peer" / f"{k:06d}.pts", gt_shape(float(k), 0.0) + peer[k])
    result = compare_pts_folders(tmp_path / "ours", tmp_path / "gt", common_with=tmp_path / "peer")
    j = result.jitter
    assert j is not None
    # ours on the face everywhere: pairs 1-2 (0.02), 2-3, 3-4 (0), 4-5 (0.04)
    assert j.pairs_ok == 4 and j.mean_ok == pytest.approx(0.015)
    # the peer is off the face on frames 1 and 5: 2-3 and 3-4 remain
    assert j.pairs_shared == 2 and j.mean_shared == pytest.approx(0.0)
    doc = result.to_json()
    assert doc["jitter_ok_shared_pairs"] == 2 and doc["jitter_ok_shared"] == pytest.approx(0.0)
    assert "on face, shared" in [c.header for c in results_tables(result)[1].columns]
    alone = compare_pts_folders(tmp_path / "ours", tmp_path / "gt")
    assert alone.jitter is not None and alone.jitter.pairs_shared is None
    assert "jitter_ok_shared" not in alone.to_json()
    assert "on face, shared" not in [c.header for c in results_tables(alone)[1].columns]
