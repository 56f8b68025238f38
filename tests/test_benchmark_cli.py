"""``crct benchmark --dataset`` / ``--speed`` through the command line: tables, results.json,
plots (and their absence without matplotlib), one-line errors. Methods and networks are fakes
injected through the factories of ``crct_cli.bench.runner`` and ``crct_cli.bench.speed``."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench_fakes import OffsetAligner, make_sequence, make_still_set, shape_in, tracker_factory
from typer.testing import CliRunner

import crct_cli.bench.methods as bench_methods
import crct_cli.bench.runner as bench_runner
import crct_cli.bench.speed as bench_speed
from crct_cli import __version__
from crct_cli.bench.methods import MethodSpec, build_networks
from crct_cli.cli import app
from crct_cli.tracking.detector import Detection

runner = CliRunner()


def crct(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def vw(tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 300-VW tree with category-3 sequence 410 (5 frames) and a fake crct 1 px off in y."""
    root = tmp_path / "300VW"
    make_sequence(make_video, root, "410", 5, seq=1)
    (root / "411").mkdir()  # listed as missing: no video
    weight = tmp_path / "fake.pt"
    weight.write_bytes(b"fake weights")
    offsets = {"crct": {("410", k): (0.0, 1.0) for k in range(1, 6)}}
    factory, _ = tracker_factory(offsets, {"410": 1}, weight)
    monkeypatch.setattr(bench_runner, "make_video_factory", lambda *args, **options: factory)
    return root


def test_dataset_run_prints_tables_and_writes_results(
    vw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["crct", "benchmark", "--dataset", "300vw-cat3", "--root", str(vw)]
    monkeypatch.setattr(sys, "argv", [*argv, "--methods", "crct,bt", "--out", "res"])
    out = tmp_path / "res"
    result = crct(*argv[1:], "--methods", "crct,bt", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert "AUC" in result.stdout and "crct" in result.stdout and "success" in result.stdout
    assert "missing 13 of 14 sequences" in result.stderr and "411 (no vid.avi" in result.stderr

    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "crct.benchmark/1" and doc["kind"] == "video"
    assert doc["command"].startswith("crct benchmark --dataset 300vw-cat3")
    assert doc["versions"]["crct"] == __version__
    assert {"torch", "python", "numpy"} <= set(doc["versions"])
    assert doc["device"]["name"] == "cpu" and doc["device"]["description"]
    assert doc["methods"] == ["crct", "bt"] and doc["protocol"]["init"] == "gt"
    assert doc["protocol"]["seq_bt"] == 2 and doc["protocol"]["threshold"] == 0.08
    assert len(doc["missing_sequences"]) == 13
    crct_cell = doc["landmarks"]["300vw-cat3"]["crct"]
    assert crct_cell["auc"] == pytest.approx((0.08 - 0.02) / 0.08)  # 1 px / diagonal 50
    assert crct_cell["failure_rate"] == 0.0 and crct_cell["count"] == 5
    assert doc["landmarks"]["300vw-cat3"]["bt"]["auc"] == pytest.approx(1.0)
    box_iou = 30 * 39 / (2 * 1200 - 30 * 39)  # a 30 x 40 box moved 1 px down
    expected = np.mean([box_iou > t for t in np.linspace(0, 1, 21)])
    assert doc["boxes"]["300vw-cat3"]["crct"]["success_auc"] == pytest.approx(expected)
    assert [(r["sequence"], r["method"]) for r in doc["sequences"]] == [
        ("410", "crct"),
        ("410", "bt"),
    ]
    assert len(doc["curves"]["ced_thresholds"]) == len(doc["curves"]["ced"]["300vw-cat3"]["crct"])
    [weights] = doc["weights"]
    assert weights["sha256"] == hashlib.sha256(b"fake weights").hexdigest()
    assert weights["methods"] == ["crct", "bt"]
    for name in ("ced_300vw-cat3.png", "success_300vw-cat3.png"):  # matplotlib is a dependency
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "wrote 2 plot(s)" in result.stderr


def test_a_trackers_frames_are_scored_by_its_state_too(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames 1-3 followed 1 px off, frame 4 lost 5 px off (a failure), frame 5 found again on
    the truth: each state's own AUC, in results.json per method and per sequence, and a table;
    a method that says no state (bt) gets none."""
    root = tmp_path / "300VW"
    make_sequence(make_video, root, "410", 5, seq=1)
    said = ["tracked"] * 3 + ["lost", "redetected"]
    offsets = {("410", k): (0.0, 1.0) for k in (1, 2, 3)} | {("410", 4): (3.0, 4.0)}
    offsets[("410", 5)] = (0.0, 0.0)
    states = {"crct": {("410", k): s for k, s in enumerate(said, start=1)}}
    factory, _ = tracker_factory({"crct": offsets}, {"410": 1}, states=states)
    monkeypatch.setattr(bench_runner, "make_video_factory", lambda *args, **options: factory)
    out = tmp_path / "res"
    result = crct(
        "benchmark",
        "--dataset",
        "300vw-cat3",
        "--root",
        root,
        "--methods",
        "crct,bt",
        "--device",
        "cpu",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    crct_states = doc["by_state"]["crct"]
    assert list(crct_states) == ["tracked", "redetected", "lost"]  # track.json's order
    assert crct_states["tracked"]["frames"] == 3
    assert crct_states["tracked"]["auc"] == pytest.approx((0.08 - 0.02) / 0.08)
    assert crct_states["tracked"]["median_nme"] == pytest.approx(0.02)
    assert crct_states["lost"]["frames"] == 1 and crct_states["lost"]["failure_rate"] == 1.0
    assert crct_states["redetected"]["auc"] == pytest.approx(1.0)
    assert "bt" not in doc["by_state"]
    runs = {r["method"]: r for r in doc["sequences"]}
    assert runs["crct"]["by_state"] == crct_states and "by_state" not in runs["bt"]
    assert "by the tracker's state" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "lost" in line)
    assert "100.0%" in row and "20.0%" in row  # all its frames failed; a fifth of the frames


def test_plots_are_skipped_without_matplotlib(
    vw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "res"
    result = crct(
        "benchmark", "--dataset", "300vw", "--root", vw, "--methods", "crct", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "matplotlib is not installed" in result.stderr and "plots skipped" in result.stderr
    assert "count pixel centres from 1" not in result.stderr  # any folder: crct's own sets
    assert (out / "results.json").is_file() and not list(out.glob("*.png"))


def test_still_dataset_with_noise_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "300W"
    make_still_set(root, [(10.0, 10.0), (20.0, 12.0)])
    monkeypatch.setenv("CRCT_DATA", str(tmp_path))  # --root from $CRCT_DATA/300W
    fake = OffsetAligner({20: (3.0, 4.0)})
    monkeypatch.setattr(bench_runner, "make_image_factory", lambda device: lambda spec: fake)
    out = tmp_path / "res"
    result = crct(
        "benchmark", "--dataset", "300w", "--box-from-pts", "--noise", "all", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "scale-3" in result.stdout and "mean of 12 degraded" in result.stdout
    # 300-W's own files count pixels from 1: said where --gt-origin 1 is not given
    assert "count pixel centres from 1" in " ".join(result.stderr.split())
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "still" and doc["root"] == str(root)
    assert len(doc["sets"]) == 13 and doc["protocol"]["noise_seed"] == 0
    assert doc["sets"]["clean"]["fll"]["auc"] == pytest.approx(0.5)  # errors 0 and 0.1
    assert doc["sets"]["clean"]["fll"]["failure_rate"] == pytest.approx(0.5)
    assert doc["mean_degraded"]["fll"]["sets"] == 12
    assert (out / "auc_by_set.png").is_file() and (out / "ced_clean.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "300vw", "--root", "{tmp}/nowhere"], "300-VW/"),
        (["--dataset", "300vw", "--root", "{tmp}"], "no 300-VW sequence"),
        (["--dataset", "300vw-cat1"], "CRCT_DATA"),
        (["--dataset", "imagenet"], "--dataset"),
        (["--dataset", "300vw", "--pred", "{tmp}", "--gt", "{tmp}"], "different benchmarks"),
        (["--dataset", "300vw", "--root", "{tmp}", "--noise", "all"], "still-image"),
        (["--dataset", "300vw", "--root", "{tmp}", "--init", "box"], "--init"),
        (["--dataset", "images", "--root", "{tmp}", "--seq-bt", "4"], "video datasets"),
        (["--dataset", "images", "--root", "{tmp}", "--noise", "fog-2"], "fog"),
        (["--dataset", "300vw", "--root", "{tmp}", "--methods", "crct,magic"], "magic"),
        (["--root", "{tmp}", "--pred", "{tmp}", "--gt", "{tmp}"], "only with --dataset"),
        (["{tmp}/clip.mp4"], "--speed"),
        (["--speed"], "VIDEO"),
        (["--speed", "{tmp}/missing.mp4"], "no such video"),
        (["--speed", "{tmp}/clip.mp4", "--noise", "all"], "not for --speed"),
    ],
)
def test_bad_benchmark_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.delenv("CRCT_DATA", raising=False)
    line = one_line_error(crct("benchmark", *[a.format(tmp=tmp_path) for a in args]))
    assert line.startswith("crct: error: ") and message in line


def test_denoise_methods_need_the_denoiser(
    vw: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_methods, "denoiser_available", lambda: False)
    line = one_line_error(
        crct("benchmark", "--dataset", "300vw", "--root", vw, "--methods", "crct+denoise-m")
    )
    assert "FADeNN denoiser" in line and "fadenn.py" in line


def test_methods_ask_the_networks_for_mode_denoiser_and_alignment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crct_cli.tracking.networks as networks
    from crct_cli.aligner import STILL_ALIGN
    from crct_cli.bench.methods import image_factory

    made: list[tuple[Any, ...]] = []

    class Recording:
        def __init__(
            self,
            device: Any,
            mode: str,
            align: Any = None,
            denoise: str = "",
            denoise_smoothing: float = -1.0,
            video_fll: bool | None = None,
        ) -> None:
            made.append((device, mode, align, denoise, denoise_smoothing, video_fll))

    monkeypatch.setattr(networks, "CRCTNetworks", Recording)
    build_networks(MethodSpec("crct", "s"), "cpu")
    # trackers: FLL as the tracker runs it, the noise class smoothed over frames (its default)
    assert made[-1] == ("cpu", "crct", None, "s", -1.0, None)
    image_factory("cpu")(MethodSpec("fll", "m"))
    # still images: FLL and the detector only, run as crct align runs it by default
    # and no noise class carried from one unrelated image to the next, and FLL's still-image
    # first stage (fll.pt), never the one for video
    assert made[-1] == ("cpu", "fll-mt", STILL_ALIGN, "m", 0.0, False)
    assert STILL_ALIGN.flip


class SlowNets:
    """Fake networks with known costs: BT sleeps 3 ms; a denoiser is timed inside FLL."""

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.weight_files: dict[str, str] = {}

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        box = np.array([8.0, 6.0, 16.0, 12.0])
        self.timings["detect"].append(0.001)
        return [Detection(box, box, 0.99)]

    def bt_step(self, prev: Any, cur: Any, box: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        time.sleep(0.003)
        self.timings["bt"].append(0.003)
        return shape_in(box), state

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return 0.9

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        self.timings["denoise"].append(0.002)
        return shape_in(box)


def test_speed_reports_every_stage(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    video = make_video("clip.mp4", n_frames=6, width=32, height=24)
    built: list[tuple[str, str]] = []

    def fake_build(
        spec: MethodSpec, device: str, backend: str, int8: bool, bt_reuse: float
    ) -> SlowNets:
        assert int8 and bt_reuse == 0.05  # crct track's defaults
        built.append((spec.name, device))
        return SlowNets()

    monkeypatch.setattr(bench_speed, "build_networks", fake_build)
    monkeypatch.setattr(bench_speed, "WHOLE_PROCESSES", False)  # no real crct track, no dlib
    out = tmp_path / "res"
    result = crct(
        "benchmark", "--speed", video, "--device", "cpu", "--backend", "onnx", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert built == [("crct", "cpu")]
    for column in ("decode fps", "detect ms", "BT ms", "FV ms", "FLL ms", "denoise ms"):
        assert column in result.stdout
    assert "end-to-end" in result.stdout and "temp dir" in result.stdout
    doc = json.loads((out / "results.json").read_text())
    [clip] = doc["speed"]["videos"]
    assert clip["frames"] == 6 and clip["decode_fps"] > 0
    [run] = clip["runs"]
    assert run["device"] == "cpu" and run["method"] == "crct"
    assert set(run["ms_per_call"]) == {"detect", "bt", "fv", "fll"}
    assert run["ms_per_call"]["bt"]["ms"] >= 3.0 and run["ms_per_call"]["bt"]["calls"] == 5
    assert run["end_to_end"]["frames"] == 6 and run["end_to_end"]["fps"] > 0
    assert "temporary folder" in run["end_to_end"]["measures"]
    assert run["in_run_ms_per_call"]["denoise"]["ms"] == pytest.approx(2.0)
    assert run["in_run_ms_per_call"]["bt"]["calls"] == 5  # frames 2..6 of the tracked video


def test_speed_times_several_faces_beside_one(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    video = make_video("clip.mp4", n_frames=6, width=32, height=24)
    monkeypatch.setattr(
        bench_speed, "build_networks", lambda spec, device, backend, int8, bt_reuse: SlowNets()
    )
    monkeypatch.setattr(bench_speed, "WHOLE_PROCESSES", False)
    out = tmp_path / "res"
    args = ("benchmark", "--speed", video, "--device", "cpu", "--backend", "onnx")
    result = crct(*args, "--faces", "all", "--out", out)
    assert result.exit_code == 0, result.output
    assert "faces / frame" in result.stdout and "ms / frame" in result.stdout
    [clip] = json.loads((out / "results.json").read_text())["speed"]["videos"]
    one, every = (run["end_to_end"] for run in clip["runs"])
    assert (one["faces"], every["faces"]) == ("1", "all")
    assert one["frames"] == every["frames"] == 6 and one["face_frames"] == 6
    assert crct("benchmark", "--pred", out, "--gt", out, "--faces", "2").exit_code == 2


def test_tables_redirected_to_a_file_keep_every_digit(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table

    from crct_cli.bench.console import print_tables

    table = Table(title="wide")
    for i in range(14):
        table.add_column(f"method number {i} AUC")
    table.add_row(*[f"0.{7000 + i}" for i in range(14)])
    print_tables([table])  # captured stdout is not a terminal, as with `> table.txt`
    out = capsys.readouterr().out
    assert "…" not in out and all(f"0.{7000 + i}" in out for i in range(14))


def test_lost_points_for_video_datasets_is_checked(tmp_path: Path) -> None:
    args = ("benchmark", "--dataset", "300vw", "--root", tmp_path, "--lost-points", "held")
    assert "--lost-points must be fll or bt" in one_line_error(crct(*args))
    args = ("benchmark", "--dataset", "300vw", "--root", tmp_path, "--bt-reuse", "-1")
    assert "--bt-reuse must be from 0 to 0.5" in one_line_error(crct(*args))
    args = ("benchmark", "--dataset", "300vw", "--root", tmp_path, "--gate-growth", "-0.5")
    assert "--gate-growth must be >= 0" in one_line_error(crct(*args))
    args = ("benchmark", "--dataset", "300vw", "--root", tmp_path, "--find-wide", "9")
    assert "--find-wide must be 0" in one_line_error(crct(*args))
    args = ("benchmark", "--dataset", "300vw", "--root", tmp_path, "--temporal-strength", "0")
    assert "--temporal-strength must be > 0" in one_line_error(crct(*args))


def test_video_methods_take_the_papers_thresholds_as_crct_track_does(
    vw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tb`` and ``--tc`` reach the video methods' trackers as ``crct track``'s do (the
    papers' 1.0 and 0.5 when left out), beside the re-detection options."""
    asked: list[dict[str, Any]] = []
    factory = bench_runner.make_video_factory  # the vw fixture's fake

    def recording(*args: Any, **options: Any) -> Any:
        asked.append(options)
        return factory(*args, **options)

    monkeypatch.setattr(bench_runner, "make_video_factory", recording)
    base = ("benchmark", "--dataset", "300vw-cat3", "--root", vw, "--methods", "crct")
    result = crct(
        *base, "--tb", "0.4", "--tc", "0.7", "--gate-growth", "0.3", "--out", tmp_path / "a"
    )
    assert result.exit_code == 0, result.output
    assert (asked[-1]["tb"], asked[-1]["tc"], asked[-1]["gate_growth"]) == (0.4, 0.7, 0.3)
    result = crct(*base, "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert (asked[-1]["tb"], asked[-1]["tc"]) == (1.0, 0.5)


def test_a_track_runs_annot_folder_is_scored_by_its_state_too(tmp_path: Path) -> None:
    """``--pred OUT/annot`` of a ``crct track`` run: its frames also by the state track.json
    gives them (face 0 there, face 1 for ``OUT/faces/1/annot``); a folder without track.json
    gets no split; an unreadable track.json is one line and the files are still scored."""
    from bench_fakes import gt_shape

    from crct_cli.io.landmarks import write_pts
    from crct_cli.io.track_json import SCHEMA_FACES, FaceRecord, FacesRecord, TrackJsonWriter

    gt, run = tmp_path / "gt", tmp_path / "run"
    zero = ["tracked", "tracked", "redetected", "lost", "lost", "tracked"]
    one = ["redetected", "lost", "tracked", "tracked", "tracked", "tracked"]
    offsets = [(0.0, 1.0), (0.0, 2.0), (3.0, 4.0), (0.0, 0.0), None, (0.0, 1.0)]  # /50 each
    header = {"video": "v.mp4", "width": 200, "height": 100, "fps": 25.0, "n_frames": 6}
    header |= {"method": "crct", "faces": None, "config": {}}
    for folder in (gt, run / "annot", run / "faces" / "1" / "annot"):
        folder.mkdir(parents=True)
    with TrackJsonWriter(run / "track.json", header, SCHEMA_FACES) as writer:
        for k, offset in enumerate(offsets):
            truth = gt_shape(10.0 + k, 20.0)
            write_pts(gt / f"{k + 1:06d}.pts", truth)
            faces = []
            for face_id, states in ((0, zero), (1, one)):
                folder = run / ("annot" if face_id == 0 else "faces/1/annot")
                points = None if offset is None else truth + offset
                if face_id == 1 and points is None:  # face 1 is always seen
                    points = truth + (0.0, 2.0)
                if points is not None:
                    write_pts(folder / f"{k + 1:06d}.pts", points)
                box = None if points is None else np.array([0.0, 0.0, 30.0, 40.0])
                faces.append(FaceRecord(face_id, box, points, None, states[k]))
            writer.add(FacesRecord(k, k / 25.0, faces))

    def scored(pred: Path) -> tuple[dict[str, Any], Any]:
        out = tmp_path / "res" / pred.relative_to(tmp_path).as_posix().replace("/", "-")
        result = crct("benchmark", "--pred", pred, "--gt", gt, "--out", out)
        assert result.exit_code == 0, result.output
        return json.loads((out / "results.json").read_text()), result

    doc, result = scored(run / "annot")
    by_state = doc["by_state"]
    assert list(by_state) == ["tracked", "redetected", "lost"]
    assert by_state["tracked"]["frames"] == 3 and by_state["tracked"]["missing"] == 0
    assert by_state["tracked"]["median_nme"] == pytest.approx(0.02)  # 0.02, 0.04, 0.02
    assert by_state["tracked"]["auc"] == pytest.approx(1 - np.mean([0.02, 0.04, 0.02]) / 0.08)
    assert by_state["redetected"]["auc"] == 0.0  # 5 px of 50: 0.1, a failure
    assert by_state["redetected"]["failure_rate"] == 1.0
    assert by_state["lost"] == {
        "frames": 2,
        "missing": 1,
        "median_nme": 0.0,  # over the frames with points
        "auc": pytest.approx(0.5),
        "failure_rate": 0.5,
    }
    assert Path(doc["states_from"]) == (run / "track.json").resolve()
    assert "by the tracker's state" in result.stdout
    face_one = scored(run / "faces" / "1" / "annot")[0]["by_state"]
    assert {s: v["frames"] for s, v in face_one.items()} == {
        "tracked": 4,
        "redetected": 1,
        "lost": 1,
    }
    assert face_one["lost"]["failure_rate"] == 0.0  # frame 2: 2 px off
    plain = tmp_path / "plain"
    (run / "annot").rename(plain)
    doc, result = scored(plain)
    assert "by_state" not in doc and "by the tracker's state" not in result.stdout
    plain.rename(run / "annot")
    (run / "track.json").write_text("{not json", encoding="utf-8")
    doc, result = scored(run / "annot")
    assert "by_state" not in doc and doc["auc"] > 0
    assert result.stderr.count("not split by state") == 1 and "Traceback" not in result.output


def test_a_run_of_some_frames_and_a_run_folder_are_pointed_out(tmp_path: Path) -> None:
    """``--pred`` a ``--max-frames`` run against a whole video's ground truth: a warning that
    the frames never tracked count as failures, and what scores its own; ``--pred`` the run's
    folder instead of its annot/: the error says where the points are."""
    from bench_fakes import gt_shape

    from crct_cli.io.landmarks import write_pts
    from crct_cli.io.track_json import SCHEMA_FACES, FaceRecord, FacesRecord, TrackJsonWriter

    gt, run = tmp_path / "gt", tmp_path / "run"
    (run / "annot").mkdir(parents=True)
    gt.mkdir()
    header = {"video": "v.mp4", "width": 200, "height": 100, "fps": 25.0, "n_frames": 6}
    header |= {"method": "crct", "faces": None, "config": {}, "max_frames": 3}
    with TrackJsonWriter(run / "track.json", header, SCHEMA_FACES) as writer:
        for k in range(6):
            truth = gt_shape(10.0 + k, 20.0)
            write_pts(gt / f"{k + 1:06d}.pts", truth)
            if k < 3:
                write_pts(run / "annot" / f"{k + 1:06d}.pts", truth + 0.5)
                face = FaceRecord(0, np.array([0.0, 0.0, 30.0, 40.0]), truth + 0.5, None, "tracked")
                writer.add(FacesRecord(k, k / 25.0, [face]))
    whole = crct("benchmark", "--pred", run / "annot", "--gt", gt)
    assert whole.exit_code == 0, whole.output
    warning = " ".join(whole.stderr.split())
    assert "--max-frames 3" in warning and "the 3 ground-truth files it never tracked" in warning
    assert f"--common-with {run / 'annot'}" in warning
    own = crct("benchmark", "--pred", run / "annot", "--gt", gt, "--common-with", run / "annot")
    assert own.exit_code == 0 and "never tracked" not in own.stderr
    # the same run scored by its landmarks.csv: the track.json beside it says it is a part run
    from crct_cli.io.openface_csv import LandmarksCsvWriter
    from crct_cli.tracking.multi import Face

    with LandmarksCsvWriter(run / "landmarks.csv") as rows:
        for k in range(3):
            points = gt_shape(10.0 + k, 20.0) + 0.5
            rows.add(k, k / 25.0, [Face(0, points, None, 0.9, "tracked")])
    by_csv = crct("benchmark", "--pred", run / "landmarks.csv", "--gt", gt)
    assert by_csv.exit_code == 0, by_csv.output
    assert "the 3 ground-truth files it never tracked" in " ".join(by_csv.stderr.split())
    # another tool's CSV saved beside the run (other frames, or another name) is its own
    (run / "landmarks.csv").rename(run / "peer.csv")
    with LandmarksCsvWriter(run / "landmarks.csv") as rows:
        for k in range(6):
            rows.add(k, k / 25.0, [Face(0, gt_shape(10.0 + k, 20.0), None, 0.9, "tracked")])
    for foreign in ("landmarks.csv", "peer.csv"):
        alone = crct("benchmark", "--pred", run / foreign, "--gt", gt)
        assert alone.exit_code == 0 and "never tracked" not in alone.stderr, foreign
    # a run of every frame, some without a face, is no part run whatever --max-frames said
    header["max_frames"] = 500
    with TrackJsonWriter(run / "track.json", header, SCHEMA_FACES) as writer:
        for k in range(6):
            face = FaceRecord(0, None, None, None, "lost")
            if k < 3:
                points = gt_shape(10.0 + k, 20.0) + 0.5
                face = FaceRecord(0, np.array([0.0, 0.0, 30.0, 40.0]), points, None, "tracked")
            writer.add(FacesRecord(k, k / 25.0, [face]))
    covered = crct("benchmark", "--pred", run / "annot", "--gt", gt)
    assert covered.exit_code == 0 and "never tracked" not in covered.stderr
    (run / "track.json").unlink()  # not a crct run: no such guess
    plain = crct("benchmark", "--pred", run / "annot", "--gt", gt)
    assert plain.exit_code == 0 and "never tracked" not in plain.stderr
    folder = crct("benchmark", "--pred", run, "--gt", gt)
    assert folder.exit_code != 0 and f"--pred {run / 'annot'}?" in one_line_error(folder)


def test_frames_numbered_from_another_origin_are_pointed_out(tmp_path: Path) -> None:
    """Files pair by name: a tool that numbers frames from 000000.pts scored against truth from
    000001.pts meets every frame's neighbour. The score stands as defined; a warning and
    results.json say so. A run that skipped frames (from 000301.pts) is not such a case, nor is
    a file name of digits int() cannot read (a traceback before)."""
    from crct_cli.io.landmarks import write_pts

    rng = np.random.default_rng(0)
    truth = [shape_in(np.array([20.0 + k, 30.0, 60.0, 70.0])) for k in range(4)]
    gt, zero, later = tmp_path / "gt", tmp_path / "zero", tmp_path / "later"
    for folder in (gt, zero, later):
        folder.mkdir()
    for k, shape in enumerate(truth):
        write_pts(gt / f"{k + 1:06d}.pts", shape)
        write_pts(zero / f"{k:06d}.pts", shape + rng.normal(0, 0.1, shape.shape))
        if k >= 2:
            write_pts(later / f"{k + 1:06d}.pts", shape)
    done = crct("benchmark", "--pred", zero, "--gt", gt, "--out", tmp_path / "z")
    assert done.exit_code == 0, done.output
    assert "numbers its frames from 000000.pts and" in done.stderr and "000001.pts" in done.stderr
    doc = json.loads((tmp_path / "z" / "results.json").read_text())
    assert doc["numbered_from"] == {"pred": 0, "gt": 1} and doc["evaluated"] == 3
    fine = crct("benchmark", "--pred", later, "--gt", gt, "--out", tmp_path / "l")
    assert fine.exit_code == 0 and "numbers its frames" not in fine.stderr
    assert "numbered_from" not in json.loads((tmp_path / "l" / "results.json").read_text())
    write_pts(gt / "\u00b2.pts", truth[0])  # a superscript two: a digit to str.isdigit only
    write_pts(zero / "\u00b2.pts", truth[0])
    odd = crct("benchmark", "--pred", zero, "--gt", gt)
    assert odd.exit_code == 0 and "Traceback" not in odd.output


def test_a_run_without_pts_files_is_scored_as_its_annot_would_be(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """``--no-pts`` runs and ``crct live`` sessions keep their points in track.json and
    landmarks.csv: ``--pred`` takes the run's folder or either file (face 0) and scores them as
    the .pts files a run with them writes (their points to the thousandth of a pixel), by
    state where track.json says it; results.json names the --pred given."""
    from test_pipeline import FaceNets

    from crct_cli.api import Tracker
    from crct_cli.io.landmarks import read_pts, write_pts
    from crct_cli.tracking.pipeline import FrameRange, track_video

    video = make_video("clip.mp4", n_frames=10, width=128, height=96)
    runs = {}
    for name, pts in (("with", True), ("without", False)):
        tracker = Tracker(networks=FaceNets(), smooth=False)
        track_video(video, tmp_path / name, tracker, frames_in=FrameRange(), pts=pts)
        runs[name] = tmp_path / name
    assert not (runs["without"] / "annot").exists()
    gt = tmp_path / "gt"
    gt.mkdir()
    rng = np.random.default_rng(0)
    for path in sorted((runs["with"] / "annot").glob("*.pts"))[:9]:  # frame 10 has none
        write_pts(gt / path.name, read_pts(path) + rng.normal(0, 1.5, (68, 2)))

    def scored(pred: Path, name: str) -> dict[str, Any]:
        result = crct("benchmark", "--pred", pred, "--gt", gt, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / name / "results.json").read_text())

    want = scored(runs["with"] / "annot", "annot")
    assert "by_state" in want
    for pred in (
        runs["without"],
        runs["without"] / "track.json",
        runs["without"] / "landmarks.csv",
    ):
        got = scored(pred, pred.name)
        assert got["pred"] == str(pred) and got["count"] == want["count"] == 9
        for key in ("mean_nme", "median_nme", "auc", "failure_rate", "jitter"):
            assert got[key] == pytest.approx(want[key], abs=1e-4), key
        assert got["by_state"] == want["by_state"]  # the csv's from the track.json beside it


def test_min_face_reaches_the_video_methods_networks(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crct benchmark --min-face`` is crct track's: the video methods' MTCNN is built with it
    (20 where not given), and a value MTCNN cannot take is one line."""
    root = tmp_path / "300VW"
    make_sequence(make_video, root, "410", 3, seq=1)
    factory, _ = tracker_factory({"crct": {}}, {"410": 1})
    asked: list[dict[str, Any]] = []

    def capture(*args: Any, **options: Any) -> Any:
        asked.append(options)
        return factory

    monkeypatch.setattr(bench_runner, "make_video_factory", capture)
    for extra in ([], ["--min-face", "80"]):
        result = crct(
            "benchmark", "--dataset", "300vw", "--root", root, "--methods", "crct",
            "--device", "cpu", "--out", tmp_path / f"res{len(extra)}", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert [options["min_face"] for options in asked] == [20, 80]
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(bench_methods, "build_networks", lambda *a, **kw: built.append(kw))
    bench_methods.video_factory("cpu", min_face=64)(MethodSpec("crct"))
    assert built[0]["min_face"] == 64
    bad = crct("benchmark", "--dataset", "300vw", "--root", root, "--min-face", "4")
    assert bad.exit_code == 2 and "--min-face must be >= 12" in one_line_error(bad)


def test_a_run_that_found_no_face_scores_every_frame_a_failure(tmp_path: Path) -> None:
    """``--pred RUN/annot`` of a crct track run whose status is no_face (an empty annot/) is an
    answer: every ground-truth frame a failure; an empty folder that is no such run is still
    the one line that asks whether the folder is the right one."""
    from crct_cli.io.landmarks import write_pts
    from crct_cli.io.video import VideoWriter

    video, gt = tmp_path / "black.mp4", tmp_path / "gt"
    with VideoWriter(video, 25.0, 96, 72) as writer:
        for i in range(6):
            writer.write(np.zeros((72, 96, 3), np.uint8), i)
    gt.mkdir()
    for i in range(6):
        write_pts(gt / f"{i + 1:06d}.pts", shape_in((20.0, 10.0, 50.0, 50.0)))
    assert crct("track", video, "--out", tmp_path / "run").exit_code == 0
    scored = crct("benchmark", "--pred", tmp_path / "run" / "annot", "--gt", gt, "--out",
                  tmp_path / "res")  # fmt: skip
    assert scored.exit_code == 0, scored.output
    summary = json.loads((tmp_path / "res" / "results.json").read_text())
    assert (summary["count"], summary["missing"], summary["failure_rate"]) == (6, 6, 1.0)
    (tmp_path / "empty").mkdir()
    assert "no .pts file in" in one_line_error(crct("benchmark", "--pred", tmp_path / "empty",
                                                    "--gt", gt))  # fmt: skip


def test_predictions_a_frame_off_in_some_folders_are_pointed_out(tmp_path: Path) -> None:
    """Two sequences of a face moving 3 px a frame. A tool numbering one of them from
    000000.pts, or from 000000.pts but without a file for its first frame (no face found
    there: the folder starts at 000001.pts like the truth's), is scored against each frame's
    neighbour: the uniform case alone was said before. A tool right to 0.3 px is not
    pointed at, nor is a still face, which no shift changes."""
    from crct_cli.io.landmarks import write_pts

    rng = np.random.default_rng(0)
    moving = [shape_in(np.array([20.0 + 3 * k, 30.0, 60.0, 70.0])) for k in range(10)]
    still = [shape_in(np.array([20.0, 30.0, 60.0, 70.0])) for _ in range(10)]
    gt, good, mixed, late, calm = (tmp_path / n for n in ("gt", "good", "mixed", "late", "calm"))
    for folder in (gt, good, mixed, late):
        for seq in ("s1", "s2"):
            (folder / seq).mkdir(parents=True)
    (calm / "gt").mkdir(parents=True)
    (calm / "pred").mkdir()
    for seq in ("s1", "s2"):
        for k, shape in enumerate(moving):
            write_pts(gt / seq / f"{k + 1:06d}.pts", shape)
            noisy = shape + rng.normal(0, 0.3, shape.shape)
            write_pts(good / seq / f"{k + 1:06d}.pts", noisy)
            write_pts(mixed / seq / f"{k + (seq == 's1'):06d}.pts", noisy)
            if not (seq == "s2" and k == 0):
                write_pts(late / seq / f"{k + (seq == 's1'):06d}.pts", noisy)
    for k, shape in enumerate(still):
        write_pts(calm / "gt" / f"{k + 1:06d}.pts", shape)
        write_pts(calm / "pred" / f"{k:06d}.pts", shape + rng.normal(0, 0.3, shape.shape))
    for pred, folder, shift in ((mixed, "s2", 1), (late, "s2", 1)):
        done = crct("benchmark", "--pred", pred, "--gt", gt, "--out", tmp_path / pred.name)
        assert done.exit_code == 0, done.output
        said = " ".join(done.stderr.split())
        assert f"{pred / folder}: its points fit the next frame's ground truth" in said, said
        assert "numbers its frames from" not in said and f"{pred / 's1'}:" not in said
        doc = json.loads((tmp_path / pred.name / "results.json").read_text())
        assert [(o["folder"], o["shift"]) for o in doc["frame_offsets"]] == [(folder, shift)]
    for pred, truth in ((good, gt), (calm / "pred", calm / "gt")):
        done = crct("benchmark", "--pred", pred, "--gt", truth, "--out", tmp_path / "ok")
        assert done.exit_code == 0 and "fit the" not in done.stderr, done.stderr
        assert "frame_offsets" not in json.loads((tmp_path / "ok" / "results.json").read_text())


def test_a_ced_plot_names_the_normalisation_it_was_scored_with() -> None:
    """--norm interocular scores by the eye corners; a figure saying "box diagonal" under
    those numbers would be taken into a paper as it is."""
    from crct_cli.bench.report import NORM_LABELS, _ced_figure, _pyplot
    from crct_cli.metrics import NORMALIZATIONS

    plt = _pyplot()
    x = np.linspace(0.0, 0.08, 5)
    labels = set()
    for norm in NORMALIZATIONS:
        fig = _ced_figure(plt, "t", x, {"m": x / 0.08}, {"m": 0.5}, norm)
        labels.add(fig.axes[0].get_xlabel())
        assert fig.axes[0].get_xlabel() == NORM_LABELS[norm]
        plt.close(fig)
    assert len(labels) == len(NORMALIZATIONS) and "eye corners" in NORM_LABELS["interocular"]


def test_a_run_of_a_300vw_style_folder_is_scored_against_it(tmp_path: Path) -> None:
    """``crct track ROOT --out RUNS`` over ROOT/001/vid.mp4 + ROOT/001/annot/ writes
    RUNS/001/vid/annot/: scored against ROOT as it is, each sequence with its own truth (and
    a peer's run of the same folder beside it), where before nothing paired."""
    from crct_cli.io.landmarks import write_pts

    root, runs, peer = tmp_path / "300vw", tmp_path / "runs", tmp_path / "peer"
    for seq, dx in (("001", 0.0), ("002", 2.0)):
        for folder in (
            root / seq / "annot",
            runs / seq / "vid" / "annot",
            peer / seq / "vid" / "annot",
        ):
            folder.mkdir(parents=True)
        for k in range(3):
            truth = shape_in(np.array([20.0 + k, 30.0, 60.0, 70.0]))
            write_pts(root / seq / "annot" / f"{k + 1:06d}.pts", truth)
            write_pts(runs / seq / "vid" / "annot" / f"{k + 1:06d}.pts", truth + dx)
            if k:
                write_pts(peer / seq / "vid" / "annot" / f"{k + 1:06d}.pts", truth)
    done = crct("benchmark", "--pred", runs, "--gt", root, "--out", tmp_path / "o")
    assert done.exit_code == 0, done.output
    assert "paired" in done.stderr and "SEQ/annot/" in done.stderr
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["count"] == 6 and doc["missing"] == 0 and doc["runs_as_sequences"] is True
    assert doc["median_nme"] == pytest.approx(np.hypot(1.0, 1.0) / np.hypot(60.0, 70.0))
    both = crct(
        "benchmark", "--pred", runs, "--gt", root, "--common-with", peer, "--out", tmp_path / "p"
    )
    assert both.exit_code == 0, both.output
    doc = json.loads((tmp_path / "p" / "results.json").read_text())
    assert doc["count"] == 4 and doc["common_with"]["peer_answered"] == 4
