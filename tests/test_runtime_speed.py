"""``crct benchmark --speed``'s machinery: engines, whole-process measures, tables, dlib's peer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crct_cli.bench import dlib_peer
from crct_cli.bench.speed import (
    DLIB,
    DeviceSpeed,
    ProcessRun,
    Timing,
    VideoSpeed,
    one_frame_copy,
    run_measured,
    speed_engines,
)
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.runtime.backend import Engine


def test_auto_times_every_backend_that_runs_on_the_cpu() -> None:
    assert speed_engines("cpu", "auto") == [Engine("torch", "cpu"), Engine("onnx", "cpu")]
    assert speed_engines("cpu", "onnx") == [Engine("onnx", "cpu")]


def test_a_command_s_peak_memory_is_its_own_not_the_benchmark_s() -> None:
    """The benchmark holds PyTorch; a small command must not report the benchmark's size."""
    pytest.importorskip("torch")
    big = "import numpy as np; a = np.ones(250_000_000 // 8); print(a.sum())"
    seconds, peak_mb, error = run_measured([sys.executable, "-c", big])
    assert error is None and seconds > 0 and 250 < peak_mb < 400
    _, small_mb, _ = run_measured([sys.executable, "-c", "pass"])
    assert small_mb < 60
    _, _, error = run_measured([sys.executable, "-c", "import sys; sys.exit('it broke')"])
    assert error == "it broke"


def test_the_start_up_video_is_the_first_frame_alone(make_video, tmp_path: Path) -> None:
    video = make_video(n_frames=6, width=64, height=48)
    one = one_frame_copy(video, tmp_path / "first.mp4")
    frames = [f.image for f in iter_frames(one)]
    assert len(frames) == 1 and probe_video(one).width == 64
    first = next(iter(iter_frames(video, 1))).image
    assert abs(frames[0].astype(int) - first).mean() < 3  # the same picture, re-encoded


def _run(backend: str, seconds: float, peak: float) -> DeviceSpeed:
    timing = Timing(5.0, 5.5, 10)
    process = ProcessRun("crct track", ["crct", "track"], seconds, 100, peak, 1.5, peak - 20)
    return DeviceSpeed(
        "crct", "cpu", "a CPU", {"fll": timing}, {}, 100, 4.0, backend=backend, process=process
    )


def test_tables_show_each_backend_and_the_whole_commands_against_dlib() -> None:
    from rich.console import Console

    from crct_cli.bench.report import speed_tables

    video = VideoSpeed(
        "v.mp4", 640, 360, 100, 1.0, [_run("torch", 20.0, 900), _run("onnx", 8.0, 230)]
    )
    video.peers.append(ProcessRun(DLIB, ["python"], 10.0, 100, 136))
    console = Console(width=250, record=True)
    for table in speed_tables([video]):
        console.print(table)
    text = console.export_text()
    rows = [line for line in text.splitlines() if "crct track crct" in line]
    assert len(rows) == 2
    assert "onnx" in rows[1] and "12.5" in rows[1] and "230" in rows[1] and "1.25" in rows[1]
    assert "torch" in rows[0] and "0.50" in rows[0]  # 10 s of dlib against 20 s
    assert any(DLIB in line and "10.0" in line for line in text.splitlines())
    payload = video.to_json()
    whole = payload["runs"][1]["whole_process"]  # type: ignore[index]
    assert whole["fps"] == 12.5 and whole["startup"]["seconds"] == 1.5
    assert payload["peers"][0]["tool"] == DLIB  # type: ignore[index]


@pytest.mark.skipif(not dlib_peer.available(), reason="dlib or face_recognition_models missing")
def test_dlib_s_peer_reads_every_frame_and_writes_pts(tmp_path: Path) -> None:
    video = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
    cut = tmp_path / "cut.mp4"
    from crct_cli.io.video import VideoWriter

    info = probe_video(video)
    with VideoWriter(cut, info.fps, info.width, info.height) as writer:
        for frame in iter_frames(video, 8):
            writer.write(frame.image)
    out = tmp_path / "pts"
    done = subprocess.run(
        [sys.executable, "-m", "crct_cli.bench.dlib_peer", str(cut), str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "8"
    written = sorted(out.glob("*.pts"))
    assert written and all(p.read_text().count("\n") == 72 for p in written)


def test_whole_commands_alternate_with_dlib_and_compare_pair_by_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load that comes and goes hits both tools of a pair alike: the ratio is taken pair by
    pair, the seconds shown are medians, a failed run is reported rather than averaged away."""
    from crct_cli.bench import speed

    calls: list[str] = []
    dlib_seconds = iter([12.0, 15.0, 11.0])
    crct_seconds = iter([10.0, 14.0, 8.0])

    def dlib(video: Path, frames: int) -> ProcessRun:
        calls.append("dlib")
        return ProcessRun(DLIB, ["python"], next(dlib_seconds), frames, 140)

    def crct(video: Path, frames: int, *args: object) -> ProcessRun:
        calls.append("crct")
        peak = 270 + len(calls)
        return ProcessRun("crct track", ["crct"], next(crct_seconds), frames, peak, 1.0, 220)

    monkeypatch.setattr(speed, "measure_dlib_process", dlib)
    monkeypatch.setattr(speed, "measure_crct_process", crct)
    peers: list[ProcessRun] = []
    run = speed.measure_pairs(Path("v.mp4"), 100, None, None, 2, True, 3, peers)  # type: ignore[arg-type]
    assert calls == ["dlib", "crct"] * 3
    assert run.runs == [10.0, 14.0, 8.0] and run.seconds == 10.0  # the median
    assert run.x_dlib == pytest.approx([1.2, 15 / 14, 11 / 8])
    assert run.peak_mb == 276  # the largest of the three
    dlib_run = speed.combine_runs(peers)
    assert dlib_run.seconds == 12.0 and dlib_run.runs == [12.0, 15.0, 11.0]
    # pair by pair (median 1.2), not the medians' ratio (12 / 10)
    assert run.speed_against(dlib_run) == pytest.approx(1.2)

    from rich.console import Console

    from crct_cli.bench.report import process_table

    video = VideoSpeed("v.mp4", 640, 360, 100, 1.0, [_run("onnx", 10.0, 276)], [dlib_run])
    video.runs[0].process = run
    console = Console(width=250, record=True)
    console.print(process_table([video]))
    row = next(ln for ln in console.export_text().splitlines() if "crct track crct" in ln)
    assert "1.20 (1.07-1.38)" in row and " 3 " in row
    whole = video.to_json()["runs"][0]["whole_process"]  # type: ignore[index]
    assert whole["runs_seconds"] == [10.0, 14.0, 8.0]
    assert whole["x_dlib_speed"]["median"] == 1.2 and len(whole["x_dlib_speed"]["pairs"]) == 3

    broken = ProcessRun("crct track", ["crct"], 3.0, 100, 200, error="crct: error: no face")
    assert speed.combine_runs([run, broken]).error == "crct: error: no face"
    assert broken.speed_against(dlib_run) is None


def test_pairs_is_an_option_of_speed_alone() -> None:
    from typer.testing import CliRunner

    from crct_cli.cli import app

    result = CliRunner().invoke(app, ["benchmark", "--pred", "a", "--gt", "b", "--pairs", "5"])
    assert result.exit_code != 0 and "--pairs: only with --speed" in result.output
    result = CliRunner().invoke(app, ["benchmark", "--speed", "v.mp4", "--pairs", "0"])
    assert result.exit_code != 0
