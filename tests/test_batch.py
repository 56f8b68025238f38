"""``crct track`` over folders and many videos: output mapping, worker processes, summary.csv,
resuming, a corrupt input and a killed worker among good ones.

The workers run the fake networks of test_pipeline (they find the cartoon face by its colour),
handed to them by name through ``crct_cli.batch.NETWORKS_FACTORY``; a clip's width tells the
fakes to find no face (:data:`NO_FACE_W`), to kill their own worker (:data:`KILL_W`) or to find
no face slowly (:data:`SLOW_W`).
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_synthetic_video
from test_pipeline import FaceNets
from typer.testing import CliRunner

import crct_cli.batch
import crct_cli.tracking.pipeline
from crct_cli.batch import WORKER_BYTES, default_workers, threads_per_worker
from crct_cli.batch.discover import VideoJob, discover
from crct_cli.batch.local import LocalEngine
from crct_cli.batch.resume import MARKER
from crct_cli.batch.runner import LOCK_NAME, plan_batch, run_batch
from crct_cli.batch.summary import COLUMNS, VideoResult, read_summary
from crct_cli.batch.worker import THREAD_VARIABLES, WorkerSpec, limit_threads, settings_of
from crct_cli.cli import app
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import read_pts
from crct_cli.io.track_json import read_track_json
from crct_cli.tracking.pipeline import FrameRange, missing_frames

W, H = 128, 96
NO_FACE_W = 112  # the fakes find no face in clips this wide
KILL_W = 80  # the fakes SIGKILL their own process on clips this wide
SLOW_W = 144  # the fakes take SLOW_S over each look for a face in clips this wide, find none
SLOW_S = 0.15


class ScriptedNets(FaceNets):
    """FaceNets that read an instruction in the frame width (see the module docstring)."""

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list:
        if image.shape[1] == KILL_W:
            os.kill(os.getpid(), signal.SIGKILL)
        if image.shape[1] == SLOW_W:
            time.sleep(SLOW_S)
            return []
        if image.shape[1] == NO_FACE_W:
            return []
        return super().detect(image)


def scripted_networks() -> ScriptedNets:
    return ScriptedNets()


def broken_networks() -> Any:
    raise CrctError("weights/bt.pt: no such file (the shipped weights are missing)")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", scripted_networks)


def crct(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def env_with_tests() -> dict[str, str]:
    """This process's environment with the tests' folder importable (for child processes that
    import these fakes)."""
    tests = str(Path(__file__).resolve().parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}


def crct_with_fakes(*args: object) -> list[str]:
    """The command line of a child process that runs ``crct ARGS`` with :func:`scripted_networks`
    (run it with :func:`env_with_tests`' environment)."""
    script = (
        "import sys\n"
        "import crct_cli.batch\n"
        "from test_batch import scripted_networks\n"
        "crct_cli.batch.NETWORKS_FACTORY = scripted_networks\n"
        "from crct_cli.cli import app\n"
        "sys.argv = ['crct', *sys.argv[1:]]\n"
        "app()\n"
    )
    return [sys.executable, "-c", script, *map(str, args)]


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


# -- discovery and output folders --------------------------------------------------------------


def test_folders_map_their_tree_and_files_their_stem(tmp_path: Path) -> None:
    src, out = tmp_path / "archive", tmp_path / "out"
    touch(src, "a.mp4", "sub/b.MOV", "sub/deeper/c.mkv", "notes.txt", ".hidden.mp4")
    touch(src, "sub/._b.mp4", ".cache/x.mp4", "old/track.json", "old/overlay.mp4")
    touch(tmp_path, "x/one.avi", "two.webm")
    jobs = discover([src], out)
    assert [(j.label, j.output) for j in jobs] == [
        (str(src / "a.mp4"), "a"),
        (str(src / "sub/b.MOV"), "sub/b"),
        (str(src / "sub/deeper/c.mkv"), "sub/deeper/c"),
    ]
    assert [j.out_dir for j in jobs] == [out / "a", out / "sub/b", out / "sub/deeper/c"]
    lone = discover([tmp_path / "x/one.avi"], out)  # one video alone: OUT itself
    assert [(j.out_dir, j.output) for j in lone] == [(out, ".")]
    named = discover([tmp_path / "x/one.avi", tmp_path / "two.webm", src / "a.mp4"], out)
    assert [j.out_dir for j in named] == [out / "one", out / "two", out / "a"]
    # the same file named twice to the same place is tracked once
    assert len(discover([src / "a.mp4", tmp_path / "two.webm", src / "a.mp4"], out)) == 2


def test_an_output_folder_inside_the_input_folder_is_not_walked(tmp_path: Path) -> None:
    touch(tmp_path, "a.mp4", "lm/a/overlay.mp4", "lm/b/.annot.partial/000001.pts")
    touch(tmp_path, "lm/b/overlay.mp4")  # killed between overlay and track.json
    assert [j.output for j in discover([tmp_path], tmp_path / "lm")] == ["a"]
    # OUT the input folder itself: the folders of its tracked videos are skipped as outputs
    touch(tmp_path, "v/a.mp4", "v/a/track.json", "v/a/overlay.mp4", "v/b.mp4")
    touch(tmp_path, "v/b/.track.partial.json", "v/b/overlay.mp4")  # a killed run
    assert [j.output for j in discover([tmp_path / "v"], tmp_path / "v")] == ["a", "b"]


@pytest.mark.parametrize(
    ("names", "inputs", "message"),
    [
        (["v/a.mp4", "v/a.mov"], ["v"], "would both write to"),
        (["v/A.mp4", "v/a.mov"], ["v"], "would both write to"),  # any file system
        (["v/x/a.mp4", "w/x/a.mp4"], ["v", "w"], "would both write to"),
        (["d/a.mp4", "e/a.avi"], ["d/a.mp4", "e/a.avi"], "would both write to"),
        (["v/sub.mp4", "v/sub/a.mp4"], ["v"], "inside the output folder of"),
        (["v/sub/a.mp4"], ["v", "v/sub"], "is named twice"),
        ([], ["missing.mp4"], "no such video file or folder"),
        (["out/f1.png", "out/f2.png"], ["out"], "--out is this image sequence's own folder"),
        (["empty/notes.txt"], ["empty"], "no video files"),
    ],
)
def test_clashing_or_missing_inputs_are_refused_up_front(
    tmp_path: Path, names: list[str], inputs: list[str], message: str
) -> None:
    touch(tmp_path, *names)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(CrctError, match=message.removeprefix("--")):  # Python: the keyword
        discover([tmp_path / i for i in inputs], tmp_path / "out")
    result = crct("track", *[tmp_path / i for i in inputs], "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # nothing written (no OUT made)


def test_bad_batch_options_are_one_line(tmp_path: Path) -> None:
    touch(tmp_path, "v/a.mp4", "v/b.mp4")
    for args, message in [
        (["--workers", "0"], "--workers"),
        (["--threads", "0"], "--threads"),
        (["--engine", "slurm"], "--engine"),
        (["--gpus-per-worker", "1"], "--engine ray"),
        (["--gpus-per-worker", "nan"], "--gpus-per-worker"),
        (["--ray-address", "10.0.0.1:6379"], "--engine ray"),
        (["--device", "tpu"], "--device"),
        (["--backend", "tf"], "--backend"),
        (["--reacquire", "-3"], "--reacquire"),
        (["--lost-points", "held"], "--lost-points"),
        (["--backfill", "-1"], "--backfill"),
        (["--bt-reuse", "0.9"], "--bt-reuse"),
        (["--gate-growth", "-1"], "--gate-growth"),
        (["--likeness", "2"], "--likeness"),
        (["--find-wide", "1"], "--find-wide"),
        (["--temporal-radius", "-1"], "--temporal-radius"),
        (["--noise-threshold", "-2"], "--noise-threshold"),
    ]:
        result = crct("track", tmp_path / "v", "--out", tmp_path / "out", *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_default_workers_and_thread_split() -> None:
    assert default_workers(cores=2, videos=10) == 2
    assert default_workers(cores=16, videos=3) == 3
    onnx = WORKER_BYTES["onnx"]
    assert default_workers(cores=16, videos=50, memory=4 * onnx + 1, per_worker=onnx) == 4
    assert default_workers(cores=16, videos=50, memory=onnx // 2, per_worker=onnx) == 1
    assert threads_per_worker(cores=16, workers=4) == 4
    assert threads_per_worker(cores=2, workers=3) == 1


@pytest.fixture
def thread_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what ``--threads`` does to this process (the variables, PyTorch's pool)."""
    import torch

    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, os.environ.get(name, ""))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_workers_leave_memory_for_the_frames_of_the_largest_video(
    make_video: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default worker count divides available memory by a worker's peak, which grows with
    the frames it holds: fewer workers for 720p videos than for small ones, fewer again with
    --overlay; an unreadable input counts for nothing."""
    from crct_cli.batch import largest_frame, worker_bytes
    from crct_cli.batch.runner import BatchOptions

    small = [make_video(f"s{k}.mp4", n_frames=2, width=96, height=72) for k in range(8)]
    large = [*small[:7], make_video("hd.mp4", n_frames=2, width=1280, height=720)]
    (tmp_path / "bad.mp4").write_text("not a video")
    assert largest_frame(small) == 96 * 72
    assert largest_frame([*large, tmp_path / "bad.mp4"]) == 1280 * 720
    fast = make_video("fast.mp4", n_frames=2, width=96, height=72, fps=60)
    assert largest_frame([*small, fast]) == 2 * 96 * 72  # its look-ahead holds twice the frames
    assert worker_bytes("onnx") == WORKER_BYTES["onnx"]
    assert worker_bytes("onnx", 1280 * 720) < worker_bytes("onnx", 1280 * 720, overlay=True)
    memory = 8 * worker_bytes("onnx", 96 * 72)
    monkeypatch.setattr(crct_cli.batch, "available_memory", lambda: memory)
    monkeypatch.setattr(crct_cli.batch, "cpu_count", lambda: 16)
    options = {"backend": "onnx", "device": "cpu"}

    def workers(videos: list[Path], overlay: bool = False) -> int:
        engine = BatchOptions().engine_for(
            options, overlay, len(videos), frame_pixels=largest_frame(videos)
        )
        return engine.workers

    assert workers(small) == 8
    assert workers(large) == memory // worker_bytes("onnx", 1280 * 720) < 8
    assert workers(large, overlay=True) < workers(large)
    # many videos: the largest files and a spread of the rest are read, not every header
    from crct_cli.batch import frame_probe_sample

    jobs = discover([*large], tmp_path / "out")
    sample = frame_probe_sample(jobs, limit=4)
    assert len(sample) == 4 and sample[0].source.name == "hd.mp4"
    assert largest_frame([job.source for job in sample]) == 1280 * 720
    assert frame_probe_sample(jobs, limit=50) == jobs


def test_limit_threads_sizes_every_pool(thread_settings: None) -> None:
    import torch

    limit_threads(1)
    assert all(os.environ[name] == "1" for name in THREAD_VARIABLES)
    assert torch.get_num_threads() == 1


# -- whole runs with worker processes ----------------------------------------------------------


@pytest.fixture
def archive(make_video: Callable[..., Path], tmp_path: Path) -> Path:
    """in/a.mp4 (8 frames), in/sub/b.mp4 (12), in/sub/c.mp4 (no face, 6), in/bad.mp4 (junk)."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    make_video("in/a.mp4", n_frames=8, width=W, height=H)
    make_video("in/sub/b.mp4", n_frames=12, width=W, height=H)
    make_video("in/sub/c.mp4", n_frames=6, width=NO_FACE_W, height=H)
    (tmp_path / "in" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated" * 20)
    return tmp_path / "in"


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    rows = read_summary(out / "summary.csv")
    assert all(list(row) == list(COLUMNS) for row in rows)
    return {row["output"]: row for row in rows}


def test_track_videos_is_crct_track_over_many_videos_from_python(
    archive: Path, tmp_path: Path, fakes: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crct_cli.track_videos`` writes what ``crct track IN --out OUT`` writes (the same
    folders, points and summary), hears of each video as it finishes, and skips on a re-run."""
    from crct_cli import track_videos

    cli = crct("track", archive, "--out", tmp_path / "cli", "--workers", "2", "--faces", "all")
    assert cli.exit_code == 2, cli.output
    heard: list[VideoResult] = []
    report = track_videos(archive, tmp_path / "py", workers=2, faces="all", on_result=heard.append)
    statuses = {r.output: r.status for r in report.results}
    assert statuses == {k: r["status"] for k, r in summary_rows(tmp_path / "cli").items()}
    assert statuses["bad"] == "failed" and report.failed == 1
    assert sorted(r.output for r in heard) == sorted(statuses)
    cli_files = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*.pts"))
    assert len([p for p in cli_files if p.parent in (Path("a/annot"), Path("sub/b/annot"))]) == 20
    assert sorted(p.relative_to(tmp_path / "py") for p in (tmp_path / "py").rglob("*.pts")) == (
        cli_files
    )
    for rel in cli_files:
        assert (tmp_path / "py" / rel).read_bytes() == (tmp_path / "cli" / rel).read_bytes()
    again = track_videos([archive], tmp_path / "py", workers=2, faces="all", progress=True)
    assert {r.output for r in again.results if r.skipped} == {"a", "sub/b", "sub/c"}
    said = capsys.readouterr().err  # progress=True: the command's lines on stderr
    assert "skipping 3 video(s) already tracked" in said
    assert said.count("crct: error:") == 1 and "bad.mp4" in said


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tb": float("nan")}, CrctError, "^tb "),
        ({"device": "gpu"}, CrctError, "^device "),
        ({"faces": 0}, CrctError, "^faces "),
        ({"crops": 3}, CrctError, "^crops "),
        ({"engine": "slurm"}, CrctError, "^engine "),
        ({"face": "all"}, TypeError, "face"),
    ],
)
def test_track_videos_refuses_bad_options_before_writing(
    archive: Path, tmp_path: Path, options: dict[str, Any], error: type, message: str
) -> None:
    from crct_cli import track_videos

    with pytest.raises(error, match=message):
        track_videos(archive, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_max_frames_tracks_each_video_s_first_frames_and_resumes_apart(
    archive: Path, tmp_path: Path, fakes: None
) -> None:
    """``--max-frames N``: each video's first N frames, numbered as in the whole video, with
    nothing said missing; a run without it is not taken for done, one with the same N is."""
    out = tmp_path / "out"
    first = crct("track", archive, "--out", out, "--workers", "2", "--max-frames", "5")
    assert first.exit_code == 2, first.output  # bad.mp4
    rows = summary_rows(out)
    assert [rows[k]["frames"] for k in ("a", "sub/b", "sub/c")] == ["5", "5", "5"]
    assert [rows[k]["missing_frames"] for k in ("a", "sub/b")] == ["", ""]  # none missing
    names = sorted(p.name for p in (out / "sub/b/annot").glob("*.pts"))
    assert names == [f"{k:06d}.pts" for k in range(1, 6)]
    track = read_track_json(out / "sub/b/track.json")
    assert len(track.frames) == 5 and track.header["max_frames"] == 5
    assert track.header["n_frames"] == 12
    same = crct("track", archive, "--out", out, "--workers", "2", "--max-frames", "5")
    assert "skipping 3 video(s) already tracked" in same.stderr
    whole = crct("track", archive, "--out", out, "--workers", "2")
    assert "skipping" not in whole.stderr
    assert [summary_rows(out)[k]["frames"] for k in ("a", "sub/b")] == ["8", "12"]
    assert "max_frames" not in read_track_json(out / "sub/b/track.json").header
    # the first frames' points are the whole run's (these fakes' points depend on no later
    # frame; the shipped tracker's smoothing reads a third of a second ahead)
    alone = crct("track", archive / "sub/b.mp4", "--out", tmp_path / "b5", "--max-frames", "5")
    assert alone.exit_code == 0, alone.output
    for k in range(1, 6):
        name = f"{k:06d}.pts"
        np.testing.assert_array_equal(
            read_pts(tmp_path / "b5/annot" / name), read_pts(out / "sub/b/annot" / name)
        )
    assert settings_of({}) == settings_of({}, None) and "max_frames" not in settings_of({})
    assert settings_of({}, FrameRange()) == settings_of({})
    bad = crct("track", archive / "a.mp4", "--out", tmp_path / "x", "--max-frames", "0")
    assert bad.exit_code == 2 and "--max-frames must be 1 or more" in bad.stderr


def _header_claims(extra: int) -> Callable[..., Any]:
    """probe_video, but the header claims ``extra`` frames more than the file holds."""
    import dataclasses

    from crct_cli.io.video import probe_video

    def probe(*args: Any, **kwargs: Any) -> Any:
        info = probe_video(*args, **kwargs)
        return dataclasses.replace(info, n_frames=info.n_frames + extra)

    return probe


def test_skip_frames_tracks_a_stretch_whose_frames_keep_their_numbers(
    archive: Path, tmp_path: Path, fakes: None, make_video: Callable[..., Path]
) -> None:
    """``--skip-frames S --max-frames N``: frames S+1..S+N as a whole run numbers and times
    them; another stretch is another run; more frames skipped than there are is one line."""
    video = archive / "sub/b.mp4"  # 12 frames
    whole = crct("track", video, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    stretch = ["--skip-frames", "4", "--max-frames", "5"]
    part = crct("track", video, "--out", tmp_path / "part", *stretch)
    assert part.exit_code == 0 and "never decoded" not in part.stderr, part.output
    names = sorted(p.name for p in (tmp_path / "part/annot").glob("*.pts"))
    assert names == [f"{k:06d}.pts" for k in range(5, 10)]
    track = read_track_json(tmp_path / "part/track.json")
    full = read_track_json(tmp_path / "whole/track.json")
    assert [f.index for f in track.frames] == list(range(4, 9))
    assert [f.time for f in track.frames] == [f.time for f in full.frames[4:9]]
    assert track.header["skip_frames"] == 4 and track.header["max_frames"] == 5
    rest = crct("track", video, "--out", tmp_path / "part", "--skip-frames", "6")
    assert rest.exit_code == 0 and "already tracked" not in rest.stderr, rest.output
    assert len(read_track_json(tmp_path / "part/track.json").frames) == 6  # frames 7-12
    # a header a frame or 1% off is not a cut, however many frames are skipped: 200 frames
    # under a header of 202 (1%) pass, under 203 they do not, with or without a skip
    long = make_video("long.mp4", n_frames=200, width=W, height=H)
    for extra, warned in ((2, False), (3, True)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(crct_cli.tracking.pipeline, "probe_video", _header_claims(extra))
            for args in ([], ["--skip-frames", "190"]):
                run = crct("track", long, "--out", tmp_path / f"h{extra}{len(args)}", *args)
                assert run.exit_code == 0 and ("never decoded" in run.stderr) == warned, args
    over = crct("track", video, "--out", tmp_path / "over", "--skip-frames", "12")
    assert over.exit_code == 2 and "--skip-frames 12, but the video has 12 frames" in over.stderr
    for bad in ("-1", "x"):
        refused = crct("track", video, "--out", tmp_path / "bad", "--skip-frames", bad)
        assert refused.exit_code == 2 and "--skip-frames" in refused.stderr


def test_track_videos_takes_what_tracker_takes_and_refuses_before_writing(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Devices as torch names them, a box as a 1x4 array and Python ints of any kind pass the
    check that runs before anything is written; a missing weights folder and --engine ray
    without ray do not."""
    import importlib.util

    from crct_cli import track_videos
    from crct_cli.api import check_tracker_options
    from crct_cli.tracking.pipeline import check_max_frames

    check_tracker_options({"device": "cpu:0", "init_box": np.array([[1.0, 2.0, 30.0, 40.0]])})
    assert settings_of({"init_box": [[1, 2, 30, 40]]})["init_box"] == [1.0, 2.0, 30.0, 40.0]
    assert check_max_frames(np.int64(5)) == 5 and type(check_max_frames(np.int64(5))) is int
    for bad in (0, 2.5, True):
        with pytest.raises(CrctError, match="^max_frames "):
            check_max_frames(bad)
    with pytest.raises(CrctError, match="no such folder"):
        track_videos(archive, tmp_path / "out", weights_dir=tmp_path / "nowhere")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    with pytest.raises(CrctError, match="needs the ray package"):
        track_videos(archive, tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()


def test_other_weights_are_another_run(tmp_path: Path) -> None:
    """The resume marker's settings name the networks: a folder of other weights (another
    manifest) does not pass for the one a video was tracked with."""
    from crct_cli.models.weights import WEIGHTS_DIR, weights_fingerprint

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "manifest.json").write_text('{"fll.pt": {"sha256": "1"}}')
    (tmp_path / "b" / "manifest.json").write_text('{"fll.pt": {"sha256": "2"}}')
    a = settings_of({"weights_dir": tmp_path / "a"})
    b = settings_of({"weights_dir": tmp_path / "b"})
    assert a["weights"] != b["weights"] and {**a, "weights": 0} == {**b, "weights": 0}
    assert settings_of({})["weights"] == weights_fingerprint(WEIGHTS_DIR)


def test_a_corrupt_video_fails_alone_and_the_others_are_complete(
    archive: Path, tmp_path: Path, fakes: None
) -> None:
    out = tmp_path / "out"
    result = crct("track", archive, "--out", out, "--workers", "2")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("crct: error:")]
    assert len(errors) == 1 and "bad.mp4" in errors[0]
    assert "sub/c.mp4: no face found in any of its 6 frames" in result.stderr
    # each video, whatever became of it, says how far the run got: [1/4] to [4/4] once each
    counts = re.findall(r"\[(\d)/4\]", result.stderr)
    assert sorted(counts) == ["1", "2", "3", "4"], result.stderr
    assert re.search(r"crct: error: \[\d/4\] .*bad\.mp4", result.stderr)
    rows = summary_rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        "a": "ok",
        "bad": "failed",
        "sub/b": "ok",
        "sub/c": "no_face",
    }
    assert [rows[k]["frames"] for k in ("a", "sub/b", "sub/c", "bad")] == ["8", "12", "6", "0"]
    assert rows["a"]["faces"] == "1" and rows["sub/c"]["faces"] == "0"
    assert "bad.mp4" in rows["bad"]["error"] and rows["a"]["error"] == ""
    assert rows["sub/b"]["input"] == str(archive / "sub" / "b.mp4")
    for name, frames in (("a", 8), ("sub/b", 12)):
        track = read_track_json(out / name / "track.json")
        assert track.summary["status"] == "ok" and len(track.frames) == frames
        assert len(list((out / name / "annot").glob("*.pts"))) == frames
    assert (out / "sub/c/track.json").is_file() and not any((out / "sub/c/annot").iterdir())
    assert not (out / "bad").exists()  # the folder made for it goes with its marker
    # each folder holds its own video's points: the same as that video tracked alone
    alone = crct("track", archive / "sub" / "b.mp4", "--out", tmp_path / "alone")
    assert alone.exit_code == 0, alone.output
    lone_bad = crct("track", archive / "bad.mp4", "--out", tmp_path / "lone" / "bad")
    assert lone_bad.exit_code == 2 and not (tmp_path / "lone").exists()  # nor what held it
    # a folder with an earlier run's files is kept when its video now fails
    (archive / "bad.mp4").rename(tmp_path / "bad.mp4")
    (archive / "a.mp4").rename(archive / "bad.mp4")
    assert crct("track", archive / "bad.mp4", "--out", tmp_path / "kept").exit_code == 0
    (tmp_path / "bad.mp4").replace(archive / "bad.mp4")
    again = crct("track", archive / "bad.mp4", "--out", tmp_path / "kept")
    assert again.exit_code == 2 and (tmp_path / "kept" / "landmarks.csv").is_file()
    for k in (1, 6, 12):
        name = f"{k:06d}.pts"
        np.testing.assert_array_equal(
            read_pts(out / "sub/b/annot" / name), read_pts(tmp_path / "alone/annot" / name)
        )


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(
    archive: Path, tmp_path: Path, make_video: Callable[..., Path], fakes: None
) -> None:
    out = tmp_path / "out"
    (archive / "bad.mp4").unlink()
    assert crct("track", archive, "--out", out, "--workers", "2").exit_code == 0

    def stamps() -> dict[str, int]:
        return {k: (out / k / "track.json").stat().st_mtime_ns for k in ("a", "sub/b", "sub/c")}

    first = stamps()
    again = crct("track", archive, "--out", out, "--workers", "2")
    assert again.exit_code == 0 and "skipping 3 video(s) already tracked" in again.stderr
    assert stamps() == first
    rows = summary_rows(out)
    assert all(r["skipped"] == "yes" for r in rows.values()) and rows["sub/b"]["frames"] == "12"
    assert not (out / LOCK_NAME).exists()  # the run's lock file goes with it
    assert rows["sub/c"]["status"] == "no_face"
    # an edited video is tracked again, alone
    make_video("in/sub/b.mp4", n_frames=9, width=W, height=H)
    edited = crct("track", archive, "--out", out, "--workers", "2")
    assert edited.exit_code == 0 and "skipping 2 video(s)" in edited.stderr
    now = stamps()
    assert now["a"] == first["a"] and now["sub/b"] != first["sub/b"]
    assert summary_rows(out)["sub/b"]["frames"] == "9"
    assert len(list((out / "sub/b/annot").glob("*.pts"))) == 9
    # other settings, or --overwrite: everything again
    other = crct("track", archive, "--out", out, "--tc", "0.6")
    assert other.exit_code == 0 and "skipping" not in other.stderr
    assert all(a != b for a, b in zip(stamps().values(), now.values(), strict=True))
    now = stamps()
    redo = crct("track", archive, "--out", out, "--tc", "0.6", "--overwrite")
    assert redo.exit_code == 0 and "skipping" not in redo.stderr
    assert all(a != b for a, b in zip(stamps().values(), now.values(), strict=True))


def test_one_video_alone_writes_into_out_and_resumes_too(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    clip = make_video("clip.mp4", n_frames=5, width=W, height=H)
    out = tmp_path / "lm"
    result = crct("track", clip, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(list((out / "annot").glob("*.pts"))) == 5 and (out / MARKER).is_file()
    assert not (out / "summary.csv").exists() and not (out / LOCK_NAME).exists()
    stamp = (out / "track.json").stat().st_mtime_ns
    again = crct("track", clip, "--out", out)
    assert again.exit_code == 0 and "already tracked" in again.stderr
    assert (out / "track.json").stat().st_mtime_ns == stamp
    overlay = crct("track", clip, "--out", out, "--overlay")  # asked for what is missing
    assert overlay.exit_code == 0 and (out / "overlay.mp4").is_file()
    unblended = crct("track", clip, "--out", out, "--no-blend")  # another setting: again
    assert unblended.exit_code == 0 and "already tracked" not in unblended.stderr
    assert read_track_json(out / "track.json").header["config"]["blend"] is False
    share = crct("track", clip, "--out", out, "--no-blend", "--min-face", "5.0%")  # another
    assert share.exit_code == 0 and "already tracked" not in share.stderr, share.output
    assert read_track_json(out / "track.json").header["config"]["min_face"] == "5%"
    same = crct("track", clip, "--out", out, "--no-blend", "--min-face", "5%")  # spelt otherwise
    assert same.exit_code == 0 and "already tracked" in same.stderr


def test_a_rerun_tracks_again_a_folder_whose_files_were_removed(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """The marker records the files the run wrote: a .pts, the whole annot/ or landmarks.csv
    deleted since is not "already tracked" but tracked again, and complete once more; a
    marker of before (no file counts) is taken as it is."""
    import json

    clip = make_video("clip.mp4", n_frames=5, width=W, height=H)
    out = tmp_path / "lm"
    assert crct("track", clip, "--out", out, "--faces", "all", "--crops", "64").exit_code == 0
    files = json.loads((out / MARKER).read_text())["files"]
    # one face in 5 frames: its .pts in annot/ and faces/0/annot/, its crop (.png + .pts) in
    # crops/ and faces/0/crops/
    assert (files["annot"], files["faces"], files["crops"]) == (5, 5 + 10, 10)
    for remove in ("annot/000003.pts", "annot", "landmarks.csv", "faces/0/crops/000002.png"):
        target = out / remove
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        again = crct("track", clip, "--out", out, "--faces", "all", "--crops", "64")
        assert again.exit_code == 0 and "already tracked" not in again.stderr, remove
        assert len(list((out / "annot").glob("*.pts"))) == 5 and (out / "landmarks.csv").is_file()
        assert json.loads((out / MARKER).read_text())["files"] == files
    for litter in ("annot/.DS_Store", "faces/0/annot/._000001.pts", "crops/Thumbs.db"):
        (out / litter).write_bytes(b"\0")  # a file browser's, not crct's: more files is done
    same = crct("track", clip, "--out", out, "--faces", "all", "--crops", "64")
    assert "already tracked" in same.stderr
    marker = json.loads((out / MARKER).read_text())
    del marker["files"]
    (out / MARKER).write_text(json.dumps(marker))
    (out / "annot" / "000001.pts").unlink()
    old = crct("track", clip, "--out", out, "--faces", "all", "--crops", "64")
    assert "already tracked" in old.stderr


def test_a_killed_worker_fails_its_video_and_a_rerun_completes_it(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        make_video(f"in/{name}.mp4", n_frames=6, width=W, height=H)
    make_video("in/poison.mp4", n_frames=6, width=KILL_W, height=H)
    out = tmp_path / "out"
    result = crct("track", tmp_path / "in", "--out", out, "--workers", "2")
    assert result.exit_code == 2, result.output
    rows = summary_rows(out)
    assert rows["poison"]["status"] == "failed"
    assert "worker process died (killed by SIGKILL)" in rows["poison"]["error"]
    assert [rows[k]["status"] for k in "abc"] == ["ok", "ok", "ok"]
    assert not (out / "poison" / "track.json").exists()  # nothing that looks finished
    # the same clip, now harmless (as after a lost node): the re-run does only it
    make_video("in/poison.mp4", n_frames=6, width=W, height=H)
    rerun = crct("track", tmp_path / "in", "--out", out, "--workers", "2")
    assert rerun.exit_code == 0 and "skipping 3 video(s)" in rerun.stderr
    assert summary_rows(out)["poison"]["status"] == "ok"
    assert read_track_json(out / "poison" / "track.json").summary["status"] == "ok"


def test_networks_that_cannot_load_stop_the_run_in_one_line(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", broken_networks)
    result = crct("track", archive, "--out", tmp_path / "out", "--workers", "2")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "crct: error: weights/bt.pt: no such file (the shipped weights are missing)"
    ]
    assert {r["status"] for r in summary_rows(tmp_path / "out").values()} == {"pending"}


@pytest.mark.parametrize("lone", [False, True], ids=["folder", "one video"])
def test_a_second_run_into_the_same_out_is_refused(
    archive: Path, tmp_path: Path, lone: bool
) -> None:
    """Two runs into one folder would delete each other's partial files: the second stops.
    Also for one video alone, which is tracked in the calling process."""
    fcntl = pytest.importorskip("fcntl", reason="file locks are POSIX")
    source = next(p for p in sorted(archive.rglob("*.mp4"))) if lone else archive
    out = tmp_path / "out"
    out.mkdir()
    with (out / LOCK_NAME).open("w") as held:
        held.write("pid 1 on elsewhere\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        result = crct("track", source, "--out", out)
    assert result.exit_code == 2
    assert "being written by another crct track run (pid 1 on elsewhere)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_a_run_that_locks_the_file_its_predecessor_removed_tries_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A ends (removing its lock file) while run B has the file open, about to lock it: B
    must not hold a lock on the removed file, or a run C would take OUT beside it."""
    import threading

    fcntl = pytest.importorskip("fcntl", reason="file locks are POSIX")
    from crct_cli.batch.runner import exclusive_out

    out = tmp_path / "out"
    out.mkdir()
    real = fcntl.flock
    a_in, a_out, b_locking, b_in, b_release = (threading.Event() for _ in range(5))

    def flock(handle: Any, operation: int) -> None:
        if threading.current_thread().name == "B" and not b_locking.is_set():
            b_locking.set()  # B opened the file A holds; A ends before B locks it
            assert a_out.wait(5)
        real(handle, operation)

    monkeypatch.setattr(fcntl, "flock", flock)

    def run_a() -> None:
        with exclusive_out(out):
            a_in.set()
            assert b_locking.wait(5)
        a_out.set()

    def run_b() -> None:
        with exclusive_out(out):
            b_in.set()
            assert b_release.wait(5)

    a = threading.Thread(target=run_a, name="A")
    a.start()
    assert a_in.wait(5)
    b = threading.Thread(target=run_b, name="B")
    b.start()
    try:
        assert b_in.wait(5)
        with pytest.raises(CrctError, match="being written by another crct track run"):
            with exclusive_out(out):
                pass
    finally:
        b_release.set()
        a.join(5)
        b.join(5)
    assert not (out / LOCK_NAME).exists()


class _InterruptAfterFirst:
    """A display whose first finished video is followed by Ctrl-C."""

    def __init__(self) -> None:
        self.done: list[VideoResult] = []

    def skipped(self, count: int) -> None: ...

    def started(self, slot: int, job: VideoJob) -> None: ...

    def frame(self, slot: int, done: int, total: int | None) -> None: ...

    def warned(self, slot: int, line: str) -> None: ...

    def finished(self, slot: int, job: VideoJob, result: VideoResult) -> None:
        self.done.append(result)
        raise KeyboardInterrupt


def run_interrupted(
    inputs: Path, out: Path, engine: Callable[[WorkerSpec], Any]
) -> tuple[list[VideoJob], _InterruptAfterFirst]:
    """The videos under ``inputs`` tracked by the fakes on ``engine(spec)`` into ``out``, with
    Ctrl-C once the first is finished; the jobs and what the display heard."""
    jobs = discover([inputs], out)
    options = {"mode": "crct"}
    spec = WorkerSpec(options, settings_of(options), threads=1, networks_factory=scripted_networks)
    plan = plan_batch(jobs, spec.settings, overlay=False, overwrite=False)
    display = _InterruptAfterFirst()
    with pytest.raises(KeyboardInterrupt):
        run_batch(plan, engine(spec), display, out / "summary.csv")
    return jobs, display


def test_ctrl_c_stops_the_workers_and_leaves_a_summary(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    for name in "abcd":
        make_video(f"in/{name}.mp4", n_frames=30, width=W, height=H)
    out = tmp_path / "out"
    jobs, display = run_interrupted(tmp_path / "in", out, lambda spec: LocalEngine(spec, 2))
    assert multiprocessing.active_children() == []
    statuses = [r["status"] for r in read_summary(out / "summary.csv")]
    assert statuses.count("ok") == 1 and statuses.count("pending") == 3
    finished = [j for j in jobs if (j.out_dir / "track.json").exists()]
    assert display.done[0].output in [j.output for j in finished]
    for job in finished:  # whatever looks finished is (a worker may finish as it is stopped)
        assert len(read_track_json(job.out_dir / "track.json").frames) == 30
    # the video a stopped worker was writing took its temporary files with it
    assert [p.name for p in out.rglob("*") if ".partial" in p.name] == []


def test_a_stopped_worker_removes_the_files_it_was_writing(tmp_path: Path) -> None:
    """The supervisor stops workers with SIGTERM; a worker leaves by an exception, so the
    write-then-rename of the file it was writing cleans up as Ctrl-C does in one process."""
    script = (
        "import signal, sys, time\n"
        "from pathlib import Path\n"
        "from crct_cli.batch.local import _stop_now\n"
        "from crct_cli.io.atomic import atomic_path\n"
        "signal.signal(signal.SIGTERM, _stop_now)\n"
        "with atomic_path(Path(sys.argv[1])) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    target = tmp_path / "track.json"
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    partial = Path(child.stdout.readline().strip())
    assert partial.exists()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    assert not partial.exists() and not target.exists()


def test_a_scheduler_s_sigterm_stops_one_video_as_ctrl_c_does(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """timeout, SLURM and docker stop send SIGTERM: one video's run ends as after Ctrl-C, one
    line and exit 130, its temporary files and its lock gone (they stayed, exit 143)."""
    clip = make_video("slow.mp4", n_frames=200, width=SLOW_W, height=H)  # 0.15 s a frame
    out = tmp_path / "out"
    env = env_with_tests()
    child = subprocess.Popen(
        crct_with_fakes("track", clip, "--out", out, "--overlay"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(".*partial*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(out.glob(".*partial*")), "the run never started writing"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr[-2000:]
    assert stderr.strip().endswith("crct: interrupted")
    left = [p.name for p in out.rglob("*")]
    assert not [n for n in left if "partial" in n or n == LOCK_NAME], left


def test_an_interrupted_batch_says_what_is_done_and_how_to_finish(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """Ctrl-C (here a scheduler's SIGTERM) on a batch said only "crct: interrupted"; it now
    says how many videos are done, where the rest are listed and that the same command
    tracks them (a rerun skips what is done)."""
    (tmp_path / "in").mkdir()
    make_video("in/quick.mp4", n_frames=3, width=W, height=H)
    make_video("in/slow.mp4", n_frames=400, width=SLOW_W, height=H)  # 0.15 s a frame
    out = tmp_path / "out"
    child = subprocess.Popen(
        crct_with_fakes("track", tmp_path / "in", "--out", out, "--workers", "2"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env_with_tests(),
    )
    deadline = time.monotonic() + 120
    while not (out / "quick" / "track.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (out / "quick" / "track.json").exists(), "the quick video was never done"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr[-2000:]
    summary = out / "summary.csv"
    assert stderr.strip().splitlines()[-1] == (
        f"crct: interrupted: 1 of 2 videos done, 1 pending in {summary}; the same command "
        "again tracks the rest"
    )
    assert "Traceback" not in stderr


def test_workers_of_a_run_killed_with_9_leave_quietly_and_tidy(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """``kill -9`` of ``crct track`` (the OOM killer, a scheduler) leaves its workers on their
    videos: each finds its supervisor gone at its next message, removes what it was writing
    and leaves, in silence (each printed a BrokenPipeError traceback on the terminal)."""
    (tmp_path / "in").mkdir()
    for name in "ab":
        make_video(f"in/{name}.mp4", n_frames=20, width=SLOW_W, height=H)  # 0.15 s a frame
    out = tmp_path / "out"
    child = subprocess.Popen(
        crct_with_fakes("track", tmp_path / "in", "--out", out, "--workers", "2"),
        stderr=subprocess.PIPE,  # the workers write to it too: read to its end, they are gone
        stdout=subprocess.DEVNULL,
        text=True,
        env=env_with_tests(),
    )
    deadline = time.monotonic() + 120

    def writing() -> bool:  # both workers are on their videos
        return all(list(out.glob(f"{name}/.track.partial.json")) for name in "ab")

    while not writing() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writing(), "the workers never started writing"
    child.kill()
    _, stderr = child.communicate(timeout=60)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr[-2000:]
    left = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    assert not [name for name in left if "partial" in name], left


@pytest.mark.parametrize("final", [False, True])
def test_a_second_sigterm_waits_for_the_first_one_s_clean_up(final: bool) -> None:
    """SIGTERM stops the block as Ctrl-C; a second one during the clean-up is not heard (it
    printed a traceback); afterwards a library's caller has its own handler back, while the
    command line, whose process is ending, stays deaf to it."""
    from crct_cli.batch.runner import sigterm_as_interrupt

    heard: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(final):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives here
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the clean-up
        time.sleep(0.1)
        assert heard == ([] if final else [signal.SIGTERM])
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_ray_actor_hears_the_stop_though_it_was_started_deaf_to_ctrl_c() -> None:
    """A cluster started from a background job (``nohup ... &``) gives its actors SIGINT
    ignored, where the driver's stop (``interrupt_main``) would do nothing and the actor be
    killed mid-write: the actor takes SIGINT back as Python's KeyboardInterrupt."""
    script = (
        "import signal, _thread, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from crct_cli.batch.ray_engine import _TrackerActor\n"
        "from crct_cli.batch.worker import WorkerSpec, settings_of\n"
        "from test_batch import scripted_networks\n"
        "options = {'mode': 'crct'}\n"
        "_TrackerActor(WorkerSpec(options, settings_of(options), threads=1,\n"
        "              networks_factory=scripted_networks))\n"
        "try:\n"
        "    _thread.interrupt_main()\n"
        "    time.sleep(5)\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    env = env_with_tests()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.strip() == "interrupted", done.stderr[-2000:]


def test_a_file_where_a_video_s_folder_goes_is_said_in_words(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    a, b = make_video("a.mp4", n_frames=3, width=W, height=H), make_video("b.mp4", n_frames=3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("in the way")  # a file, not a folder
    result = crct("track", a, b, "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 2
    rows = {r["output"]: r for r in read_summary(tmp_path / "out" / "summary.csv")}
    assert rows["a"]["status"] == "failed" and rows["b"]["status"] == "ok"
    assert "cannot create output folder" in rows["a"]["error"] and "Error" not in rows["a"]["error"]


def test_points_crct_did_not_write_are_never_replaced_without_overwrite(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """A 300-VW sequence's ground truth beside its video in the folder a video would be
    written to: refused in one line, the files untouched; --overwrite replaces them. A batch
    fails that video alone. An empty annot/ loses nothing, and crct's own run of another
    video is tracked over with a warning (a folder reused run after run)."""
    seq = tmp_path / "001"
    (seq / "annot").mkdir(parents=True)
    clip = make_video("001/vid.mp4", n_frames=4, width=W, height=H)
    empty = tmp_path / "empty"
    (empty / "annot").mkdir(parents=True)
    assert crct("track", clip, "--out", empty).exit_code == 0
    assert len(list((empty / "annot").glob("*.pts"))) == 4
    truth = [seq / "annot" / f"{k:06d}.pts" for k in range(1, 7)]
    for path in truth:
        path.write_text("ground truth\n")
    refused = crct("track", clip, "--out", seq)
    assert refused.exit_code == 2 and "annot/ that crct did not write" in refused.stderr
    assert "--overwrite" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert sorted((seq / "annot").iterdir()) == truth and not (seq / "track.json").exists()
    # a batch: that video fails alone, the other one is tracked
    other = make_video("b.mp4", n_frames=3, width=W, height=H)
    out = tmp_path / "many"
    (out / "vid" / "annot").mkdir(parents=True)
    (out / "vid" / "annot" / "000001.pts").write_text("theirs\n")
    batch = crct("track", clip, other, "--out", out, "--workers", "1")
    assert batch.exit_code == 2 and "skipping" not in batch.stderr
    assert "crct: error:" in batch.stderr and "did not write" in batch.stderr
    rows = {r["output"]: r for r in read_summary(out / "summary.csv")}
    assert rows["vid"]["status"] == "failed" and "did not write" in rows["vid"]["error"]
    assert rows["b"]["status"] == "ok"
    assert (out / "vid" / "annot" / "000001.pts").read_text() == "theirs\n"
    from crct_cli import track_videos

    heard: list[str] = []  # from Python too: the refused video is heard of, b was done
    report = track_videos([clip, other], out, workers=1, on_result=lambda r: heard.append(r.input))
    assert heard == [str(clip)]
    assert [(r.status, r.skipped) for r in report.results] == [("failed", False), ("ok", True)]
    assert "(overwrite=True replaces them, or choose another out folder)" in str(
        report.results[0].error
    )
    # --overwrite replaces the ground truth
    assert crct("track", clip, "--out", seq, "--overwrite").exit_code == 0
    assert len(list((seq / "annot").glob("*.pts"))) == 4
    # another video's run in the folder: tracked over, said
    run = tmp_path / "run"
    assert crct("track", other, "--out", run).exit_code == 0
    elsewhere = crct("track", clip, "--out", run)
    assert elsewhere.exit_code == 0 and "held crct's tracking of" in elsewhere.stderr
    assert read_track_json(run / "track.json").header["video"].endswith("vid.mp4")
    assert len(list((run / "annot").glob("*.pts"))) == 4


def test_a_sequence_is_known_by_its_folder_s_name_however_it_is_typed(
    tmp_path: Path, fakes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crct track . --out ../o`` from inside a folder of frames, then ``crct track frames
    --out o`` from beside it: the same sequence (done, skipped); another folder's frames
    typed as ``.`` into the same --out: another input, said in a warning."""
    from conftest import draw_face

    from crct_cli.io.images import write_image

    for name in ("frames", "others"):
        (tmp_path / name).mkdir()
        for k in range(4):
            write_image(tmp_path / name / f"{k:03d}.png", draw_face(W, H, k / 25.0))
    monkeypatch.chdir(tmp_path / "frames")
    assert crct("track", ".", "--out", "../o").exit_code == 0
    monkeypatch.chdir(tmp_path)
    again = crct("track", "frames", "--out", "o")
    assert again.exit_code == 0 and "already tracked" in again.stderr
    monkeypatch.chdir(tmp_path / "others")
    other = crct("track", ".", "--out", "../o")
    assert other.exit_code == 0 and "held crct's tracking of" in other.stderr
    assert "already tracked" not in other.stderr


def test_a_folder_a_crct_of_before_was_stopped_in_is_still_crct_s(tmp_path: Path) -> None:
    """Before session 45 a rerun removed the marker first: a folder it was stopped in holds
    annot/ and a partial file, no marker; it is crct's, not refused."""
    from crct_cli.batch.resume import foreign_outputs

    job = VideoJob(tmp_path / "v.mp4", tmp_path / "o", "v.mp4", ".")
    (job.out_dir / "annot").mkdir(parents=True)
    (job.out_dir / "annot" / "000001.pts").write_text("a point file\n")
    assert foreign_outputs(job) is not None
    (job.out_dir / ".annot.partial").mkdir()
    assert foreign_outputs(job) is None


def test_a_run_stopped_while_tracking_again_is_still_crct_s_folder(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """Tracking again first marks the folder unfinished, not foreign: a rerun after a stop
    there goes on without --overwrite."""
    from crct_cli.batch.resume import check_done, clear_done, foreign_outputs

    clip = make_video("clip.mp4", n_frames=4, width=W, height=H)
    out = tmp_path / "lm"
    assert crct("track", clip, "--out", out).exit_code == 0
    job = discover([clip], out)[0]
    clear_done(job)  # as a worker does before tracking again; then the run stops
    assert (out / "annot").is_dir() and not (out / "track.json").exists()
    assert foreign_outputs(job) is None and check_done(job, {}, False) == "new"
    again = crct("track", clip, "--out", out)
    assert again.exit_code == 0 and (out / "track.json").is_file()


def test_load_track_gives_a_run_s_points_as_arrays(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """``crct_cli.load_track(OUT)``: the points of annot/, the times and states of
    landmarks.csv, row by row, NaN where a frame has none."""
    from crct_cli import load_track
    from crct_cli.io.openface_csv import read_landmarks_csv

    clip = make_video("clip.mp4", n_frames=6, width=W, height=H)
    out = tmp_path / "lm"
    assert crct("track", clip, "--out", out).exit_code == 0
    run = load_track(out)
    assert run.face_ids == [0] and load_track(out / "track.json").face_ids == [0]
    face = run.arrays()
    assert face.points.shape == (6, 68, 2) and list(face.index) == list(range(6))
    for k in range(6):
        pts = out / "annot" / f"{k + 1:06d}.pts"
        if pts.exists():
            np.testing.assert_allclose(face.points[k], read_pts(pts), atol=1e-3)
        else:
            assert np.isnan(face.points[k]).all()
    rows = read_landmarks_csv(out / "landmarks.csv")
    assert [r.frame - 1 for r in rows] == list(np.flatnonzero(~np.isnan(face.points[:, 0, 0])))
    np.testing.assert_allclose(face.time[[r.frame - 1 for r in rows]], [r.timestamp for r in rows])
    assert list(face.found[[r.frame - 1 for r in rows]]) == [bool(r.success) for r in rows]
    absent = run.arrays(face_id=7)  # no such face: every frame absent
    assert set(absent.states) == {"absent"} and np.isnan(absent.points).all()
    with pytest.raises(CrctError, match="no track.json"):
        load_track(tmp_path)


def test_no_pts_writes_the_csv_and_json_alone_and_resumes_apart(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """``--no-pts``: no file a frame, the same points in track.json as a run with them; a run
    asking for .pts files tracks such a folder again, one without them takes a folder that
    has them as done. From Python, ``pts=False``, several faces and crops too."""
    from crct_cli import load_track, track_videos

    clip = make_video("clip.mp4", n_frames=5, width=W, height=H)
    out, ref = tmp_path / "np", tmp_path / "ref"
    assert crct("track", clip, "--out", ref).exit_code == 0
    bare = crct("track", clip, "--out", out, "--no-pts")
    assert bare.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "landmarks.csv", "track.json"]
    np.testing.assert_array_equal(load_track(out).arrays().points, load_track(ref).arrays().points)
    again = crct("track", clip, "--out", out)  # .pts files asked for: tracked again
    assert again.exit_code == 0 and "already tracked" not in again.stderr
    assert len(list((out / "annot").glob("*.pts"))) == 5
    done = crct("track", clip, "--out", out, "--no-pts")
    assert done.exit_code == 0 and "already tracked" in done.stderr
    scored = crct("benchmark", "--pred", tmp_path / "np2" / "annot", "--gt", ref / "annot")
    assert scored.exit_code == 2 and "no such prediction folder" in scored.stderr
    assert crct("track", clip, "--out", tmp_path / "np2", "--no-pts").exit_code == 0
    scored = crct("benchmark", "--pred", tmp_path / "np2" / "annot", "--gt", ref / "annot")
    assert scored.exit_code == 2 and "a crct track --no-pts run" in scored.stderr
    many = tmp_path / "many"
    other = make_video("other.mp4", n_frames=4, width=W, height=H)
    report = track_videos([clip, other], many, pts=False, crops=32, faces="all", workers=1)
    assert [r.status for r in report.results] == ["ok", "ok"]
    assert not list(many.rglob("*annot*")) and list((many / "clip" / "faces").rglob("*.png"))
    assert (many / "clip" / "crops" / "000001.pts").is_file()  # the crop's own points stay
    bare_many = tmp_path / "bare"  # several faces, no .pts, no crops: no empty faces/ folders
    assert track_videos([clip], bare_many, pts=False, faces="all").results[0].status == "ok"
    assert sorted(p.name for p in bare_many.iterdir()) == [
        ".crct-input.json",
        "landmarks.csv",
        "summary.csv",
        "track.json",
    ]


def test_missing_frames_allows_a_header_a_frame_or_a_percent_off() -> None:
    assert [missing_frames(None, 10), missing_frames(30, 30), missing_frames(30, 29)] == [0, 0, 0]
    assert missing_frames(30, 28) == 2 and missing_frames(300, 297) == 0
    assert missing_frames(300, 296) == 4


def _whole_and_cut(tmp_path: Path) -> tuple[Path, Path]:
    """A 30-frame MP4 with its index at the front, and a copy cut off at 85% of its bytes (a
    download or copy stopped early: it decodes up to the cut without an error)."""
    whole = write_synthetic_video(
        tmp_path / "whole.mp4", n_frames=30, width=W, height=H,
        container_options={"movflags": "faststart"},
    )  # fmt: skip
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.85)])
    return whole, cut


def test_summary_says_the_turn_and_the_frames_missing_also_of_videos_done_before(
    tmp_path: Path, fakes: None
) -> None:
    """summary.csv's ``rotate`` and ``missing_frames`` come from the run that tracked each
    video, so a resumed run, which skips the videos done, still says them."""
    whole, cut = _whole_and_cut(tmp_path)
    out = tmp_path / "out"
    for skipped in ("", "yes"):
        result = crct("track", cut, whole, "--out", out, "--workers", "1", "--rotate", "90")
        assert result.exit_code == 0, result.output
        rows = {r["output"]: r for r in read_summary(out / "summary.csv")}
        assert [rows[k]["skipped"] for k in ("cut", "whole")] == [skipped, skipped]
        assert [rows[k]["rotate"] for k in ("cut", "whole")] == ["90", "90"]
        decoded = len(read_track_json(out / "cut" / "track.json").frames)
        assert 0 < decoded < 28 and rows["cut"]["missing_frames"] == str(30 - decoded)
        assert rows["whole"]["missing_frames"] == ""
    plain = crct("track", cut, whole, "--out", tmp_path / "plain", "--workers", "1")
    rows = {r["output"]: r for r in read_summary(tmp_path / "plain" / "summary.csv")}
    assert plain.exit_code == 0 and [rows[k]["rotate"] for k in ("cut", "whole")] == ["", ""]


def test_a_file_cut_short_is_tracked_to_the_cut_with_a_warning(tmp_path: Path, fakes: None) -> None:
    """An MP4 whose index sits at the front (a download, a copy cut off) decodes up to the cut
    without an error: the frames before it are tracked, and the run says what is missing."""
    whole, cut = _whole_and_cut(tmp_path)
    alone = crct("track", cut, "--out", tmp_path / "one")
    assert alone.exit_code == 0, alone.output
    decoded = len(read_track_json(tmp_path / "one" / "track.json").frames)
    assert 0 < decoded < 28
    assert f"{30 - decoded} frames its header promises never decoded" in alone.stderr
    both = crct("track", cut, whole, "--out", tmp_path / "two", "--workers", "1")
    assert both.exit_code == 0 and both.stderr.count("never decoded") == 1, both.output
    rows = {r["output"]: r for r in read_summary(tmp_path / "two" / "summary.csv")}
    assert rows["cut"]["missing_frames"] == str(30 - decoded)
    assert rows["whole"]["missing_frames"] == "" and rows["whole"]["frames"] == "30"
    # --max-frames past the cut: the header's count is what the warning counts from, as
    # without it; after --skip-frames, the frames it promises after them
    past = crct("track", cut, "--out", tmp_path / "past", "--max-frames", str(decoded + 2))
    assert f"{30 - decoded} frames its header promises never decoded" in past.stderr
    skipped = crct("track", cut, "--out", tmp_path / "skipped", "--skip-frames", "3")
    assert f"{30 - decoded} frames its header promises never decoded" in skipped.stderr
    assert f"the {decoded - 3} before the cut are tracked" in skipped.stderr
    short = crct("track", cut, "--out", tmp_path / "short", "--max-frames", str(decoded))
    assert short.exit_code == 0 and "never decoded" not in short.stderr, short.output


def test_a_missing_video_among_several_fails_alone(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    good = make_video("good.mp4", n_frames=5, width=W, height=H)
    missing = tmp_path / "missing.mp4"
    result = crct("track", good, missing, "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 2
    assert result.stderr.count("no such video file") == 1
    rows = {r["output"]: r for r in read_summary(tmp_path / "out" / "summary.csv")}
    assert rows["good"]["status"] == "ok" and rows["missing"]["status"] == "failed"
    assert (tmp_path / "out" / "good" / "track.json").exists()


@pytest.mark.parametrize("bad", ["empty", "documents", "dir.mp4"])
def test_a_folder_with_nothing_to_track_among_several_fails_alone(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None, bad: str
) -> None:
    """An empty folder, one of documents, or a folder named like a video, given beside a good
    video: that input fails in its turn (a line, a summary.csv row); the good one is tracked."""
    good = make_video("good.mp4", n_frames=5, width=W, height=H)
    folder = tmp_path / bad
    folder.mkdir()
    if bad == "documents":
        touch(folder, "notes.txt", "code.ts")  # a TypeScript source is no transport stream
    result = crct("track", good, folder, "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 2
    assert result.stderr.count(f"{folder}: no video files") == 1, result.output
    rows = {r["output"]: r for r in read_summary(tmp_path / "out" / "summary.csv")}
    assert rows["good"]["status"] == "ok" and rows[bad]["status"] == "failed"
    assert "no folder of images" in rows[bad]["error"]
    assert (tmp_path / "out" / "good" / "track.json").exists()
    alone = crct("track", folder, "--out", tmp_path / "alone")  # alone: refused before a run
    assert alone.exit_code == 2 and not (tmp_path / "alone").exists()


def test_a_folder_walk_takes_camcorder_phone_and_broadcast_files(tmp_path: Path) -> None:
    """AVCHD, 3GP, Flash, Windows Media... are found in a folder as the common suffixes are; a
    ``.ts`` only when it starts as an MPEG transport stream (188- or 192-byte packets)."""
    touch(tmp_path, "v/cam.MTS", "v/b.m2ts", "v/phone.3gp", "v/old.flv", "v/w.wmv", "v/code.ts")
    packet = bytes([0x47]) + bytes(187)
    (tmp_path / "v" / "news.ts").write_bytes(packet * 5)
    (tmp_path / "v" / "avchd.ts").write_bytes((bytes(4) + packet) * 5)
    (tmp_path / "v" / "code.ts").write_text("export const x: number = 1;\n" * 100)
    (tmp_path / "v" / "cut.ts").write_bytes(bytes(77) + packet * 5)  # begun mid-packet
    found = [j.output for j in discover([tmp_path / "v"], tmp_path / "out")]
    assert found == ["avchd", "b", "cam", "cut", "news", "old", "phone", "w"]


# -- the shipped networks ----------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"


def test_two_real_workers_track_the_sample_as_one_process_does(
    tmp_path: Path, thread_settings: None
) -> None:
    """The command line's real path: two worker processes load the shipped networks; their
    points equal those of the sample tracked alone in this process, with the same threads."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/a.mp4", "in/sub/b.mp4"):
        (tmp_path / name).write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out"
    result = crct("track", tmp_path / "in", "--out", out, "--workers", "2", "--threads", "1")
    assert result.exit_code == 0, result.output
    alone = crct("track", SAMPLE, "--out", tmp_path / "alone", "--threads", "1")
    assert alone.exit_code == 0, alone.output
    expected = sorted((tmp_path / "alone" / "annot").glob("*.pts"))
    assert len(expected) == 75
    for folder in (out / "a", out / "sub/b"):
        assert read_track_json(folder / "track.json").summary["status"] == "ok"
        for path in expected:
            assert (folder / "annot" / path.name).read_bytes() == path.read_bytes()
    assert [r["status"] for r in read_summary(out / "summary.csv")] == ["ok", "ok"]


def test_options_left_nothing_to_do_are_said_to_change_nothing(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """--backtrack without --lookahead, --tc where no validator runs: a warning line each, the
    run done as asked; the same values where they count, no warning."""
    clip = make_video("clip.mp4", n_frames=3, width=W, height=H)
    cases = (
        (["--no-lookahead", "--backtrack", "5"], "--backtrack changes nothing without --lookahead"),
        (["--mode", "fll-mt", "--tc", "0.9"], "--tc changes nothing with --mode fll-mt"),
        (["--mode", "bt", "--tc", "0.9"], "--tc changes nothing with --mode bt"),
        (["--backtrack", "5", "--tc", "0.9"], None),
        (["--no-lookahead", "--mode", "fll-mt"], None),
    )
    for i, (args, said) in enumerate(cases):
        result = crct("track", clip, "--out", tmp_path / str(i), *args)
        assert result.exit_code == 0, result.output
        assert ("changes nothing" in result.stderr) == (said is not None), args
        assert said is None or said in result.stderr


def test_a_run_inside_another_run_s_out_is_refused_either_way(
    archive: Path, tmp_path: Path, fakes: None
) -> None:
    """A run into OUT/sub while another writes OUT is refused in one line; a run into OUT
    while another writes OUT/sub fails the videos that go there, each in its line, and
    tracks the others (flock: a lock held through another open file is another run's)."""
    from crct_cli.batch.runner import exclusive_out

    out = tmp_path / "out"
    out.mkdir()
    with exclusive_out(out):
        inner = crct("track", archive / "sub", "--out", out / "sub")
        assert inner.exit_code == 2 and f"{out / 'sub'} is inside {out}" in inner.stderr
        assert "being written by another crct track run" in inner.stderr
    (out / "sub").mkdir(exist_ok=True)
    with exclusive_out(out / "sub"):
        outer = crct("track", archive, "--out", out, "--workers", "1")
    assert outer.exit_code == 2
    rows = summary_rows(out)
    assert rows["a"]["status"] == "ok"
    for name in ("sub/b", "sub/c"):
        assert rows[name]["status"] == "failed"
        assert "is being written by another crct track run" in rows[name]["error"]
    assert not (out / "sub" / "b").exists()
    assert crct("track", archive, "--out", out).exit_code == 2  # bad.mp4 fails; sub/ done now
    assert summary_rows(out)["sub/b"]["status"] == "ok"


def test_links_in_a_folder_walked_are_one_video_each_and_a_broken_one_fails_alone(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """A video linked into the folder it is in (or twice) is one job, as a folder linked
    twice is; a link whose video is gone is a job that fails in its row, not a silent gap."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    make_video("in/a.mp4", n_frames=2, width=W, height=H)
    (folder / "sub" / "alias.mp4").symlink_to(folder / "a.mp4")
    (folder / "sub" / "again.mp4").symlink_to(folder / "a.mp4")
    (folder / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    jobs = discover([folder], tmp_path / "out")
    assert [job.output for job in jobs] == ["a", "gone"]


def test_more_threads_than_cores_is_warned_of(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    clip = make_video("clip.mp4", n_frames=2, width=W, height=H)
    cores = os.cpu_count() or 1
    many = crct("track", clip, "--out", tmp_path / "a", "--threads", str(cores + 1))
    assert many.exit_code == 0 and f"--threads {cores + 1} x 1 worker(s) is more" in many.stderr
    fits = crct("track", clip, "--out", tmp_path / "b", "--threads", "1")
    assert fits.exit_code == 0 and "is more than this machine" not in fits.stderr


@pytest.mark.parametrize("width", [40, 60, 79, 100, 160])
def test_the_batch_bars_keep_counts_and_rates_whole_at_any_width(width: int) -> None:
    """A worker's line on a terminal of any width: its frames and rate whole, a long path cut
    from its start so the file's name stays (rich cut every column to "…" at 40)."""
    import io
    import re

    from rich.console import Console

    from crct_cli.ui import BatchProgress

    buffer = io.StringIO()
    bars = BatchProgress(Console(file=buffer, width=width, force_terminal=True), 9)
    label = "archive/2019/a very long folder name/talk_with_a_long_name.mp4"
    with bars:
        bars.started(0, VideoJob(Path("x.mp4"), Path("o"), label, "x"))
        bars.progress.update(bars.slots[0], completed=57, total=472, rate="25.3 fps")
        bars.progress.refresh()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue()).split("\r")[-2]
    lines = shown.strip("\n").split("\n")
    assert all(len(line) <= width for line in lines)
    worker = lines[-1]
    assert "57/472" in worker and "25.3 fps" in worker and "0/9" in lines[0]
    assert "…" not in worker.replace("  …", "", 1)  # only the name's start is cut
    assert worker.split()[0].endswith("mp4") or "talk_with" in worker


def test_csv_style_openface_writes_feature_extraction_s_layout(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """``--csv-style openface``: ", " between names and values, a row for every frame (zeros
    and success 0 where no face has points), the same points as crct's own style; a folder
    tracked in one style is tracked again in the other, and both read back alike."""
    from crct_cli import track_videos
    from crct_cli.io.openface_csv import read_landmarks_csv

    clip = make_video("clip.mp4", n_frames=6, width=W, height=H)
    blank = make_video("blank.mp4", n_frames=4, width=NO_FACE_W, height=H)
    plain, openface = tmp_path / "plain", tmp_path / "of"
    assert crct("track", clip, "--out", plain).exit_code == 0
    assert crct("track", clip, "--out", openface, "--csv-style", "openface").exit_code == 0
    with open(openface / "landmarks.csv", newline="") as fh:
        header = next(csv.reader(fh))  # read as OpenFace's own scripts read it
        rows = list(csv.reader(fh))
    assert header[:6] == ["frame", " face_id", " timestamp", " confidence", " success", " x_0"]
    assert [int(r[0]) for r in rows] == list(range(1, 7))  # every frame, numbered from 1
    ours = {r.frame: r for r in read_landmarks_csv(plain / "landmarks.csv")}
    theirs = {r.frame: r for r in read_landmarks_csv(openface / "landmarks.csv")}
    assert ours.keys() == theirs.keys() and ours
    for frame, row in ours.items():
        np.testing.assert_array_equal(theirs[frame].points, row.points)
        assert theirs[frame].success == row.success
    for cells in rows:  # the frames crct found no face in: OpenFace's row of zeros
        if int(cells[0]) not in ours:
            assert cells[4] == " 0" and {float(c) for c in cells[5:]} == {0.0}
    # one style's folder is not done for the other: tracked again, then skipped as done
    again = crct("track", clip, "--out", plain, "--csv-style", "openface")
    assert again.exit_code == 0 and "already tracked" not in again.stderr
    assert (plain / "landmarks.csv").read_bytes() == (openface / "landmarks.csv").read_bytes()
    done = crct("track", clip, "--out", plain, "--csv-style", "openface")
    assert "already tracked" in done.stderr
    bad = crct("track", clip, "--out", tmp_path / "x", "--csv-style", "OpenFace")
    assert bad.exit_code == 2 and "--csv-style must be crct or openface" in bad.stderr
    # from Python, over several videos: a video without a face has a row a frame all the same
    report = track_videos([clip, blank], tmp_path / "many", csv_style="openface", workers=1)
    assert [r.status for r in report.results] == ["ok", "no_face"]
    with open(tmp_path / "many" / "blank" / "landmarks.csv", newline="") as fh:
        blank_rows = list(csv.reader(fh))[1:]
    assert len(blank_rows) == 4 and all(r[4] == " 0" for r in blank_rows)
    assert read_landmarks_csv(tmp_path / "many" / "blank" / "landmarks.csv") == []


def test_another_video_of_the_same_name_is_said_to_replace_the_run(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """300-VW names every video vid.mp4: another one tracked into a folder is said to replace
    the run there; the same video moved or copied as it was is not another one."""
    for folder in ("001", "002"):
        (tmp_path / folder).mkdir()
    first = make_video("001/vid.mp4", n_frames=4, width=W, height=H)
    second = make_video("002/vid.mp4", n_frames=6, width=W, height=H)
    out = tmp_path / "v"
    assert crct("track", first, "--out", out).exit_code == 0
    other = crct("track", second, "--out", out)
    assert other.exit_code == 0 and f"held crct's tracking of {first}" in other.stderr
    moved = tmp_path / "003" / "vid.mp4"
    moved.parent.mkdir()
    shutil.copy2(second, moved)  # the same bytes and times
    again = crct("track", moved, "--out", out)
    assert again.exit_code == 0 and "held crct's tracking of" not in again.stderr
    edited = make_video("002/vid.mp4", n_frames=5, width=W, height=H)  # this very file, edited
    assert edited == second
    redone = crct("track", second, "--out", out)
    assert redone.exit_code == 0 and "held crct's tracking of" not in redone.stderr
    assert "already tracked" not in redone.stderr


def test_a_worker_given_absolute_paths_names_them_as_typed(
    make_video: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray worker reads the job at absolute paths (its working folder is not the user's):
    track.json's header and summary, and errors, name the video and folder as typed."""
    from dataclasses import replace

    from crct_cli.batch.discover import discover
    from crct_cli.batch.worker import VideoWorker, WorkerSpec, settings_of

    (tmp_path / "in").mkdir()
    make_video("in/a.mp4", n_frames=4, width=W, height=H)
    monkeypatch.chdir(tmp_path)
    jobs = discover([Path("in/a.mp4"), Path("in/missing.mp4")], Path("out"))
    worker = VideoWorker(WorkerSpec({}, settings_of({}), networks_factory=scripted_networks))
    results = []
    for job in jobs:
        where = replace(job, source=job.source.absolute(), out_dir=job.out_dir.absolute())
        results.append(worker.run(where, named=job))
    assert [r.status for r in results] == ["ok", "failed"]
    assert results[1].error.startswith("in/missing.mp4: ")
    doc = json.loads((tmp_path / "out" / "a" / "track.json").read_text())
    assert doc["video"] == doc["summary"]["video"] == os.path.join("in", "a.mp4")
    assert doc["summary"]["out_dir"] == os.path.join("out", "a")
    assert doc["video_resolved"] == str(tmp_path / "in" / "a.mp4")
