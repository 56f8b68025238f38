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
