"""``--pts-origin 1`` (``crct track``, ``crct align``, ``track_videos``): every ``.pts`` file
crct writes counts pixel centres from 1, as 300-W's files and the readers made for them
(menpo, eos) do; the other outputs keep crct's 0; and crct's own readers of those files (the
benchmark's ``--pred``, ``--gt`` and ``--common-with``, ``crct draw``, the multi-face ground
truth) take the 1 off again where the run's track.json records it.

The tracking runs on the fake networks of test_pipeline (test_batch's ``scripted_networks``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_align import Fakes
from test_batch import NO_FACE_W, H, W, crct, scripted_networks

import crct_cli.batch
from crct_cli.align_images import align_images
from crct_cli.errors import OptionError
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import format_pts, read_pts, write_pts
from crct_cli.io.track_json import read_track_json


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", scripted_networks)


def _numbers(path: Path) -> list[Decimal]:
    """A .pts file's coordinates as written (decimal text, no float rounding)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = lines[lines.index("{") + 1 : lines.index("}")]
    return [Decimal(v) for row in rows for v in row.split()]


def _pts_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.pts"))}


def _assert_one_more(zero: Path, one: Path) -> int:
    """Every .pts file under ``one`` is the same file under ``zero`` with exactly 1 added to
    each number as written; returns how many files were compared."""
    files0, files1 = _pts_files(zero), _pts_files(one)
    assert files0.keys() == files1.keys() and files0
    for rel, path in files0.items():
        assert _numbers(files1[rel]) == [v + 1 for v in _numbers(path)], rel
    return len(files0)


def _frames(track_json: Path) -> list[Any]:
    return json.loads(track_json.read_text(encoding="utf-8"))["frames"]


def test_format_adds_the_origin_to_the_numbers_as_written() -> None:
    """Origin 1 is origin 0's text plus exactly 1 (also where a float sum would round the
    other way at the third decimal); origin 0 is what crct always wrote."""
    rng = np.random.default_rng(3)
    points = rng.uniform(-3, 600, (68, 2))
    points[:4] = [[0.0005, 2.0015], [-0.0004, 10.4445], [1e-9, -0.9995], [599.9995, 0.0]]
    plain, shifted = format_pts(points), format_pts(points, 1)
    assert plain == format_pts(points, 0)
    body = [ln.split() for ln in plain.splitlines()[3:-1]]
    body1 = [ln.split() for ln in shifted.splitlines()[3:-1]]
    assert [[Decimal(v) + 1 for v in row] for row in body] == [
        [Decimal(v) for v in row] for row in body1
    ]
    assert shifted.splitlines()[:3] == plain.splitlines()[:3]


@pytest.mark.parametrize("value", [2, -1, True, 0.5, 1.0, "1", None])
def test_a_bad_pts_origin_is_refused_by_name(value: object) -> None:
    from crct_cli.io.landmarks import check_pts_origin

    with pytest.raises(OptionError, match=r"^pts_origin must be 0 or 1") as caught:
        check_pts_origin(value)
    assert caught.value.for_cli().startswith("--pts-origin must be 0 or 1")
    assert check_pts_origin(np.int64(1)) == 1 and check_pts_origin(0) == 0


def test_a_one_origin_run_differs_from_the_default_in_its_pts_files_alone(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """annot/, faces/<id>/annot/ and the crops' .pts files are the default run's + 1 exactly;
    track.json's points and landmarks.csv are byte for byte the default run's, its header
    records ``pts_origin``; a bad value is one line, exit 2, before anything is written."""
    clip = make_video("clip.mp4", n_frames=6, width=W, height=H)
    zero, one = tmp_path / "zero", tmp_path / "one"
    extra = ("--faces", "all", "--crops", "32")
    assert crct("track", clip, "--out", zero, *extra).exit_code == 0
    ran = crct("track", clip, "--out", one, *extra, "--pts-origin", "1")
    assert ran.exit_code == 0, ran.stderr
    compared = _assert_one_more(zero, one)
    assert {"annot", "faces", "crops"} <= {Path(r).parts[0] for r in _pts_files(one)}
    assert compared == 4 * 6  # annot/, crops/ and faces/0/'s two: a file a frame
    assert (one / "landmarks.csv").read_bytes() == (zero / "landmarks.csv").read_bytes()
    assert _frames(one / "track.json") == _frames(zero / "track.json")
    header0 = read_track_json(zero / "track.json").header
    header1 = read_track_json(one / "track.json").header
    assert "pts_origin" not in header0 and header1["pts_origin"] == 1
    header1.pop("pts_origin")
    assert {k: v for k, v in header1.items() if k != "video_resolved"} == {
        k: v for k, v in header0.items() if k != "video_resolved"
    }
    for bad in ("2", "-1"):
        refused = crct("track", clip, "--out", tmp_path / "bad", "--pts-origin", bad)
        assert refused.exit_code == 2
        assert refused.stderr.startswith("crct: error: --pts-origin must be 0 or 1")
        assert refused.stderr.count("\n") == 1
    assert not (tmp_path / "bad").exists()
    refused = crct("align", clip, "--out", tmp_path / "bad", "--pts-origin", "2")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "--pts-origin must be 0 or 1" in refused.stderr


def test_a_folder_tracked_at_another_origin_is_tracked_again(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """The origin is one of the run's settings, as --csv-style: a folder tracked at 0 is not
    done for 1 (nor the other way), one tracked at 1 is done for 1; over several videos from
    Python too."""
    from crct_cli import track_videos

    clip = make_video("clip.mp4", n_frames=5, width=W, height=H)
    out, reference = tmp_path / "run", tmp_path / "reference"
    assert crct("track", clip, "--out", reference).exit_code == 0
    assert crct("track", clip, "--out", out).exit_code == 0
    again = crct("track", clip, "--out", out, "--pts-origin", "1")
    assert again.exit_code == 0 and "already tracked" not in again.stderr
    _assert_one_more(reference, out)
    done = crct("track", clip, "--out", out, "--pts-origin", "1")
    assert "already tracked" in done.stderr
    back = crct("track", clip, "--out", out, "--pts-origin", "0")
    assert back.exit_code == 0 and "already tracked" not in back.stderr
    assert all(_numbers(p) == _numbers(reference / rel) for rel, p in _pts_files(out).items())
    # several videos from Python: pts_origin=1 written, then kept, then redone at 0
    blank = make_video("blank.mp4", n_frames=3, width=NO_FACE_W, height=H)
    many = tmp_path / "many"
    first = track_videos([clip, blank], many, pts_origin=1, workers=1)
    assert [r.status for r in first.results] == ["ok", "no_face"]
    _assert_one_more(reference, many / "clip")
    assert read_track_json(many / "clip" / "track.json").header["pts_origin"] == 1
    kept = track_videos([clip, blank], many, pts_origin=1, workers=1)
    assert all(r.skipped for r in kept.results)
    redone = track_videos([clip, blank], many, workers=1)
    assert not any(r.skipped for r in redone.results)
    assert _numbers(many / "clip" / "annot" / "000001.pts") == _numbers(
        reference / "annot" / "000001.pts"
    )
    for bad in (True, 2, "1"):
        with pytest.raises(OptionError, match="pts_origin must be 0 or 1"):
            track_videos(clip, tmp_path / "bad", pts_origin=bad)


def test_align_writes_its_pts_files_at_the_origin_asked(
    tmp_path: Path, face_image: Callable[..., np.ndarray]
) -> None:
    """crct align's NAME.pts and NAME_crop.pts: + 1 with pts_origin=1; faces.csv alike."""
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", face_image(64, 48))
    outs = {}
    for origin in (0, 1):
        outs[origin] = tmp_path / f"out{origin}"
        fakes = Fakes()
        align_images([src], outs[origin], fakes.detect, fakes.localize, crops=24, pts_origin=origin)
    assert _assert_one_more(outs[0], outs[1]) == 2  # a.pts, a_crop.pts
    assert (outs[0] / "faces.csv").read_bytes() == (outs[1] / "faces.csv").read_bytes()


def _ground_truth(run: Path, gt: Path, seed: int = 0) -> None:
    """A 300-VW style folder of ground truth near a run's face 0 (counted from 0)."""
    gt.mkdir()
    rng = np.random.default_rng(seed)
    for frame in _frames(run / "track.json"):
        face = next(f for f in frame["faces"] if f["face_id"] == 0)
        points = np.asarray(face["points"]) + rng.normal(0, 0.3, (68, 2))
        write_pts(gt / f"{frame['index'] + 1:06d}.pts", points)


def _scores(out: Path) -> dict[str, Any]:
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    keep = ("count", "missing", "mean_nme", "median_nme", "auc", "failure_rate")
    return {k: doc[k] for k in keep} | {
        k: v for k, v in doc.items() if k.startswith("jitter") and "shared" in k
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        v == pytest.approx(b[k], abs=1e-9) if isinstance(v, float) else v == b[k]
        for k, v in a.items()
    )


def test_the_benchmark_reads_a_one_origin_run_as_it_records(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """--pred of a --pts-origin 1 run scores as the default run's, with a note; --pred-origin
    given wins, with a warning where it disagrees; the run given as --gt or --common-with is
    read at its origin too; a bad value is one line."""
    clip = make_video("clip.mp4", n_frames=8, width=W, height=H)
    zero, one = tmp_path / "zero", tmp_path / "one"
    assert crct("track", clip, "--out", zero).exit_code == 0
    assert crct("track", clip, "--out", one, "--pts-origin", "1").exit_code == 0
    gt = tmp_path / "gt"
    _ground_truth(zero, gt)

    def bench(name: str, *args: object) -> tuple[Any, dict[str, Any]]:
        result = crct("benchmark", *args, "--out", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        return result, _scores(tmp_path / name)

    _, expected = bench("zero", "--pred", zero / "annot", "--gt", gt)
    assert expected["median_nme"] > 0
    said, scores = bench("auto", "--pred", one / "annot", "--gt", gt)
    assert _same(scores, expected)
    notes = [ln for ln in said.stderr.splitlines() if "pts-origin 1" in ln]
    assert len(notes) == 1 and notes[0].startswith("crct: note:") and "warning" not in said.stderr
    # told: what the user gave, and a warning where the run records otherwise
    said, scores = bench("told1", "--pred", one / "annot", "--gt", gt, "--pred-origin", "1")
    assert _same(scores, expected) and "crct:" not in said.stderr  # no note, no warning
    said, scores = bench("told0", "--pred", one / "annot", "--gt", gt, "--pred-origin", "0")
    assert scores["median_nme"] > expected["median_nme"] + 0.01  # a pixel off
    warned = [ln for ln in said.stderr.splitlines() if ln.startswith("crct: warning:")]
    assert len(warned) == 1 and "--pred-origin 0" in warned[0] and "count from 1" in warned[0]
    said, scores = bench("off", "--pred", zero / "annot", "--gt", gt, "--pred-origin", "1")
    assert scores["median_nme"] > expected["median_nme"] + 0.01
    assert "--pred-origin 1" in said.stderr and "count from 0" in said.stderr
    # the run's folder is read from its track.json, which counts from 0: no note
    said, scores = bench("folder", "--pred", one, "--gt", gt)
    assert _same(scores, expected) and "note" not in said.stderr
    # the run as ground truth, and as the peer of --common-with (its jitter over shared pairs)
    _, as_gt0 = bench("gt0", "--pred", gt, "--gt", zero / "annot")
    said, as_gt1 = bench("gt1", "--pred", gt, "--gt", one / "annot")
    assert _same(as_gt1, as_gt0) and "--gt-origin 0 scores" in said.stderr
    common = ("--pred", zero / "annot", "--gt", gt, "--threshold", "0.02")  # a pixel off
    _, peer0 = bench("peer0", *common, "--common-with", zero / "annot")  # takes the peer's
    _, peer1 = bench("peer1", *common, "--common-with", one / "annot")  # faces past 0.02
    assert peer0["jitter_ok_shared_pairs"] > 0 and _same(peer1, peer0)
    # bad values, and places it does not belong: one line, exit 2
    for args in (
        ("--pred", one / "annot", "--gt", gt, "--pred-origin", "2"),
        ("--pred", one / "annot", "--gt", gt, "--pred-origin", "nan"),
        ("--dataset", "300w", "--pred-origin", "1"),
    ):
        refused = crct("benchmark", *args)
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
        assert "--pred-origin" in refused.stderr


def test_a_folder_of_runs_at_both_origins_is_not_scored_as_one(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """A batch's --out holding runs at 0 and at 1 cannot take one origin off every file: one
    line says so unless --pred-origin is given."""
    clip = make_video("clip.mp4", n_frames=4, width=W, height=H)
    runs = tmp_path / "runs"
    assert crct("track", clip, "--out", runs / "a").exit_code == 0
    assert crct("track", clip, "--out", runs / "b", "--pts-origin", "1").exit_code == 0
    gt = tmp_path / "gt"
    _ground_truth(runs / "a", gt)
    refused = crct("benchmark", "--pred", runs, "--gt", gt)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "count from 0 and others from 1" in refused.stderr


def test_crct_s_own_readers_take_a_runs_origin_off(
    make_video: Callable[..., Path],
    tmp_path: Path,
    fakes: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """crct draw --pts of a run's annot/ draws its points where the run put them, and a
    --faces run read as multi-face ground truth gives the same points at either origin."""
    import crct_cli.overlay
    from crct_cli.bench.multi_face import read_multi_gt
    from crct_cli.overlay import draw_overlay

    clip = make_video("clip.mp4", n_frames=4, width=W, height=H)
    runs = {origin: tmp_path / f"run{origin}" for origin in (0, 1)}
    for origin, out in runs.items():
        ran = crct("track", clip, "--out", out, "--faces", "all", "--pts-origin", origin)
        assert ran.exit_code == 0, ran.stderr
    truth = {origin: read_multi_gt(out) for origin, out in runs.items()}
    assert truth[0].visible.keys() == truth[1].visible.keys()
    for face, frames in truth[0].visible.items():
        assert frames.keys() == truth[1].visible[face].keys()
        for frame, points in frames.items():
            np.testing.assert_allclose(truth[1].visible[face][frame], points, atol=1e-9)
    drawn: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for origin, out in runs.items():
        monkeypatch.setattr(
            crct_cli.overlay, "draw_points", lambda _i, p, *_a, o=origin: drawn[o].append(p)
        )
        for folder in (out / "annot", out / "faces" / "0" / "annot"):
            draw_overlay(
                None, tmp_path / f"d{origin}{folder.parent.name}.mp4", video=clip, pts=folder
            )
    assert len(drawn[0]) == len(drawn[1]) == 8
    for a, b in zip(drawn[0], drawn[1], strict=True):
        np.testing.assert_allclose(b, a, atol=1e-9)
    assert read_pts(runs[1] / "annot" / "000001.pts")[0, 0] != drawn[1][0][0, 0]
