"""A bad option names what its reader typed: Python's keyword (``faces must be ...``) from the
Python API, the flag (``--faces must be ...``) on the command line, from the same check.

The checks raise :class:`~crct_cli.errors.OptionError`; ``str()`` is Python's wording and the
CLI's one error line (and a worker's failure line, for a run the command started) the flag's.
The last tests keep the keyword-to-flag mapping honest: every option an ``OptionError`` names
is a keyword of the Python API and, mapped, a flag of ``crct track``.
"""

from __future__ import annotations

import ast
import inspect
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_pipeline import FaceNets
from typer.main import get_command
from typer.testing import CliRunner

import crct_cli
import crct_cli.batch
from crct_cli import Tracker, track_videos
from crct_cli.batch.summary import read_summary
from crct_cli.cli import app
from crct_cli.denoise import run_plan
from crct_cli.errors import CLI_FLAGS, CrctError, OptionError, cli_flag, error_text
from crct_cli.overlay import draw_overlay

W, H = 128, 96


def crct(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result: Any) -> str:
    """The command's single error line, after checking it failed with exit code 2."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def face_networks() -> FaceNets:
    """The fake networks for workers (a module-level name: spawned workers import it)."""
    return FaceNets()


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", face_networks)


def test_tracker_faces_names_the_keyword_and_the_command_its_flag(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as caught:
        Tracker(faces=0, networks=object())
    assert str(caught.value) == "faces must be a positive number, 'all' or None, got 0"
    assert "--faces" not in str(caught.value)
    line = one_line(crct("track", tmp_path / "a.mp4", "--out", tmp_path / "o", "--faces", "0"))
    assert line == "crct: error: --faces must be a positive number or 'all', got '0'"


#: (Tracker keywords, crct track arguments, Python's message starts, the command's line holds)
TRACKER_CASES: list[tuple[dict[str, Any], list[str], str, str]] = [
    ({"lost_points": "held"}, ["--lost-points", "held"], "lost_points must be 'fll' or 'bt'",
     "--lost-points must be fll or bt, got 'held'"),
    ({"gate_growth": -1.0}, ["--gate-growth", "-1"], "gate_growth must be >= 0",
     "--gate-growth must be >= 0 (0: the paper's fixed gate), got -1.0"),
    ({"bt_reuse": 0.9}, ["--bt-reuse", "0.9"], "bt_reuse must be from 0 to 0.5",
     "--bt-reuse must be from 0 to 0.5"),
    ({"backtrack": -1}, ["--backtrack", "-1"], "backtrack must be >= 0 frames",
     "--backtrack must be >= 0 frames (0: never), got -1"),
    ({"find_wide": 9.0}, ["--find-wide", "9"], "find_wide must be 0 (no second look)",
     "--find-wide must be 0 (no second look) or from 1.25 to 4, got 9.0"),
    ({"sequence_fps": 0.0}, ["--sequence-fps", "0"], "sequence_fps must be a positive number",
     "--sequence-fps must be a positive number of frames a second, got 0.0"),
    ({"seq_bt": 0}, ["--seq-bt", "0"], "seq_bt must be a whole number of frames >= 1",
     "--seq-bt must be a whole number of frames >= 1, got 0"),
    ({"smooth_cutoff": 0.0}, ["--smooth-cutoff", "0"], "smooth_cutoff must be > 0 Hz",
     "--smooth-cutoff must be > 0 Hz, got 0.0"),
    ({"temporal_strength": 0.0}, ["--temporal-strength", "0"], "temporal_strength must be > 0",
     "--temporal-strength must be > 0, got 0.0"),
    ({"detect_every": 0}, ["--detect-every", "0"], "detect_every must be a whole number >= 1",
     "--detect-every must be a whole number >= 1, got 0"),
    ({"mode": "fast"}, ["--mode", "fast"], "mode must be one of crct, fll-mt, bt",
     "--mode must be one of crct, fll-mt, bt, got 'fast'"),
    # the command line writes the box as text, Python as numbers: each is told its own form
    ({"init_box": (1, 2, 3)}, ["--init-box", "1,2,3"],
     "init_box must be 4 finite numbers (x, y, w, h) in pixels with w, h > 0, got (1, 2, 3)",
     "--init-box must be 4 finite numbers X,Y,W,H with W, H > 0, got [1.0, 2.0, 3.0]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "args", "python", "cli"),
    TRACKER_CASES,
    ids=[next(iter(c[0])) for c in TRACKER_CASES],
)
def test_tracker_options_name_the_keyword_and_the_command_the_flag(
    tmp_path: Path, options: dict[str, Any], args: list[str], python: str, cli: str
) -> None:
    with pytest.raises(OptionError) as caught:
        Tracker(networks=object(), **options)
    assert str(caught.value).startswith(python) and "--" not in str(caught.value)
    line = one_line(crct("track", tmp_path / "a.mp4", "--out", tmp_path / "o", *args))
    assert line.startswith("crct: error: --") and cli in line


#: (track_videos keywords, crct track arguments, Python's message starts, the command's holds)
BATCH_CASES: list[tuple[dict[str, Any], list[str], str, str]] = [
    ({"workers": 0}, ["--workers", "0"], "workers must be 1 or more",
     "--workers must be 1 or more, got 0"),
    ({"engine": "slurm"}, ["--engine", "slurm"], "engine must be local or ray",
     "--engine must be local or ray, got 'slurm'"),
    ({"gpus_per_worker": 1.0}, ["--gpus-per-worker", "1"],
     "gpus_per_worker is for engine='ray'", "--gpus-per-worker is for --engine ray"),
    ({"max_frames": 0}, ["--max-frames", "0"], "max_frames must be 1 or more (None: every",
     "--max-frames must be 1 or more (unset: every frame), got 0"),
    ({"skip_frames": -1}, ["--skip-frames", "-1"], "skip_frames must be 0 or more",
     "--skip-frames must be 0 or more, got -1"),
    ({"crops": 3}, ["--crops", "3"], "crops must be 0 (none) or a side of 16 to 1024",
     "--crops must be 0 (none) or a side of 16 to 1024 pixels, got 3"),
    ({"device": "tpu"}, ["--device", "tpu"], "device must be auto, cpu or cuda",
     "--device must be auto, cpu or cuda, got 'tpu'"),
    ({"backend": "tf"}, ["--backend", "tf"], "backend must be auto, torch or onnx",
     "--backend must be auto, torch or onnx, got 'tf'"),
    ({"denoise": "q"}, ["--denoise", "q"], "denoise must be one of none, d, s, m",
     "--denoise must be one of none, d, s, m, got 'q'"),
    ({"focal_length": 0.0}, ["--focal-length", "0"], "focal_length must be > 0 pixels",
     "--focal-length must be > 0 pixels, got 0.0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "args", "python", "cli"), BATCH_CASES, ids=[next(iter(c[0])) for c in BATCH_CASES]
)
def test_track_videos_options_name_the_keyword_and_the_command_the_flag(
    tmp_path: Path, options: dict[str, Any], args: list[str], python: str, cli: str
) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    with pytest.raises(OptionError) as caught:
        track_videos(tmp_path / "v", tmp_path / "py", **options)
    assert str(caught.value).startswith(python) and "--" not in str(caught.value)
    line = one_line(crct("track", tmp_path / "v", "--out", tmp_path / "cli", *args))
    assert line.startswith("crct: error: --") and cli in line
    assert not (tmp_path / "py").exists() and not (tmp_path / "cli").exists()


#: Tracker keywords given what a config file, argparse without ``type=`` or a slip hands
#: over: each failed as a bare TypeError in a comparison, or was taken (a fraction of frames
#: failed mid-track, a string switch was read by its truth: "False" turned cuts on)
WRONG_KINDS: list[tuple[str, Any]] = [
    ("tb", "1"), ("tb", None), ("tb", True), ("tc", "0.5"), ("tc", None),
    ("gate_growth", None), ("likeness", "x"), ("find_wide", "x"), ("bt_reuse", "x"),
    ("smooth_cutoff", None), ("smooth_beta", "x"), ("temporal_strength", "x"),
    ("noise_threshold", "x"), ("sequence_fps", "30"), ("sequence_fps", True),
    ("cut_correlation", "x"), ("cut_histogram", "x"), ("focal_length", "x"),
    ("backtrack", "5"), ("backtrack", 2.5), ("backtrack", True),
    ("temporal_radius", "2"), ("temporal_radius", 2.5), ("temporal_radius", True),
    ("shot_cuts", "False"), ("bridge_lost", "no"), ("int8", "no"), ("smooth", None),
    ("pose", "yes"), ("lookahead", 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value"), WRONG_KINDS, ids=[f"{o}={v!r}" for o, v in WRONG_KINDS]
)
def test_a_keyword_given_the_wrong_kind_of_value_is_refused_by_name(
    tmp_path: Path, option: str, value: Any
) -> None:
    with pytest.raises(OptionError) as caught:
        Tracker(networks=object(), **{option: value})
    assert caught.value.option == option and str(caught.value).startswith(f"{option} must be ")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    with pytest.raises(OptionError) as caught:  # every worker's Tracker: before any is written
        track_videos(tmp_path / "v", tmp_path / "out", **{option: value})
    assert caught.value.option == option and not (tmp_path / "out").exists()


def test_numbers_from_numpy_and_whole_floats_are_taken_as_python_s_own() -> None:
    """A parameter sweep's ``np.arange`` and ``np.float32``: tracked as the same numbers, and
    ``describe()`` (track.json's configuration) stays JSON; 3.0 frames is 3 frames."""
    tracker = Tracker(
        networks=object(),
        seq_bt=np.int64(3),
        tb=np.float32(1.5),
        gate_growth=np.float32(0.25),
        backtrack=np.int64(5),
        temporal_radius=3.0,
        reacquire=np.int32(7),
        init_box=np.array([10, 20, 30, 40]),
        lookahead=np.bool_(True),
        shot_cuts=0,
    )
    described = tracker.describe()
    assert json.loads(json.dumps(described)) == described
    want = {"seq_bt": 3, "tb": 1.5, "gate_growth": 0.25, "backtrack": 5, "temporal_radius": 3}
    assert {k: described[k] for k in want} == want
    assert {k: type(described[k]) for k in want} == {k: type(v) for k, v in want.items()}
    assert described["init_box"] == [10.0, 20.0, 30.0, 40.0] and described["shot_cuts"] is False
    assert (described["reacquire"], described["lookahead"]) == (7, True)
    assert type(tracker.frame_denoise.radius) is int  # counted with range(): 3.0 failed there


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"workers": 2.5}, "workers must be a whole number, got 2.5"),
        ({"workers": "2"}, "workers must be a whole number, got '2'"),
        ({"workers": True}, "workers must be a whole number, got True"),
        ({"workers": 1, "threads": 1.5}, "threads must be a whole number, got 1.5"),
        ({"gpus_per_worker": "1"}, "gpus_per_worker must be a number, got '1'"),
    ],
)
def test_track_videos_counts_are_whole_numbers_before_anything_is_written(
    tmp_path: Path, options: dict[str, Any], words: str
) -> None:
    """``workers=2.5`` wrote summary.csv, then raised a TypeError; ``workers=True`` ran one."""
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    with pytest.raises(OptionError) as caught:
        track_videos(tmp_path / "v", tmp_path / "out", **options)
    assert str(caught.value) == words and not (tmp_path / "out").exists()


def test_a_video_s_own_failure_names_the_keyword_or_the_flag(
    make_video: Callable[..., Path], tmp_path: Path, fakes: None
) -> None:
    """A check that needs the video (the first box inside its frame, a skip shorter than it)
    fails in the worker: its line names the flag when the command started the run, the
    keyword when Python did, in the results and in summary.csv alike."""
    (tmp_path / "in").mkdir()
    video = make_video("in/a.mp4", n_frames=6, width=W, height=H)
    make_video("in/b.mp4", n_frames=6, width=W, height=H)
    far = ["--init-box", "1000,10,20,20"]
    alone = one_line(crct("track", video, "--out", tmp_path / "alone", *far))
    assert alone == f"crct: error: --init-box 1000,10,20,20 lies outside the {W}x{H} frame"
    many = crct("track", tmp_path / "in", "--out", tmp_path / "cli", "--workers", "1", *far)
    assert many.exit_code == 2, many.output
    errors = {row["output"]: row["error"] for row in read_summary(tmp_path / "cli/summary.csv")}
    assert errors == {k: f"--init-box 1000,10,20,20 lies outside the {W}x{H} frame" for k in "ab"}
    report = track_videos(tmp_path / "in", tmp_path / "py", workers=1, init_box=(1000, 10, 20, 20))
    want = f"init_box (1000, 10, 20, 20) lies outside the {W}x{H} frame"
    assert [r.error for r in report.results] == [want, want]
    errors = {row["output"]: row["error"] for row in read_summary(tmp_path / "py/summary.csv")}
    assert errors == {"a": want, "b": want}

    tracker = Tracker(networks=FaceNets(), smooth=False)
    with pytest.raises(OptionError) as caught:
        list(tracker.track(video, skip_frames=6))
    assert str(caught.value) == f"{video}: skip_frames is 6, but the video has 6 frames"
    skipped = one_line(crct("track", video, "--out", tmp_path / "skip", "--skip-frames", "6"))
    assert skipped == f"crct: error: {video}: --skip-frames 6, but the video has 6 frames"


def test_an_option_error_crosses_processes_and_reads_as_either_side() -> None:
    error = OptionError("skip_frames", "is 6, but x", cli="6, but x", where="a.mp4")
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, OptionError) and str(back) == "a.mp4: skip_frames is 6, but x"
    assert error_text(back, flags=True) == "a.mp4: --skip-frames 6, but x"
    plain = CrctError("a.mp4: cannot read")
    assert error_text(plain) == error_text(plain, flags=True) == "a.mp4: cannot read"


#: modules whose options are another command's: (the Python function, the crct command)
OTHER_COMMANDS = {"overlay.py": (draw_overlay, "draw"), "denoise.py": (run_plan, "denoise")}


#: functions that raise an ``OptionError`` for the option their caller names: by a literal
#: argument at this position, or (None) by the names of its keyword arguments (api.py's checks
#: of Tracker's numbers and switches, ``_option_numbers(tb=tb, ...)``; batch/runner.py's)
NAMING_HELPERS: dict[str, int | None] = {
    "_option_frames": 0,
    "_option_numbers": None,
    "_option_switches": None,
    "_option_count": 0,
}


def _named_options(only: str | None = None) -> dict[str, str]:
    """Every option an ``OptionError`` (or ``option_error``, or one of
    :data:`NAMING_HELPERS`) names in crct_cli, with where: in module ``only``, or (None) in
    every module but :data:`OTHER_COMMANDS`'."""
    root = Path(crct_cli.__file__).parent
    named: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "errors.py":  # the class itself passes the name through
            continue
        if (path.name != only) if only else (path.name in OTHER_COMMANDS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        passed_on = {  # the helpers' own OptionError: the name their caller gave
            id(call)
            for helper in ast.walk(tree)
            if isinstance(helper, ast.FunctionDef) and helper.name in NAMING_HELPERS
            for call in ast.walk(helper)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in passed_on:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            where = f"{path.relative_to(root)}:{node.lineno}"
            if name in NAMING_HELPERS and NAMING_HELPERS[str(name)] is None:
                assert node.keywords and all(k.arg for k in node.keywords), where
                for keyword in node.keywords:
                    named.setdefault(str(keyword.arg), where)
                continue
            position = {"OptionError": 0, "option_error": 1, **NAMING_HELPERS}.get(str(name))
            if position is None:
                continue
            arg = node.args[position] if len(node.args) > position else None
            # a literal, so that this test sees every name there is
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), where
            named.setdefault(arg.value, where)
    return named


def _track_flags(name: str = "track") -> set[str]:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    return {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}


def test_every_option_named_is_a_python_keyword_and_a_crct_track_flag() -> None:
    named = _named_options()
    assert {"faces", "init_box", "skip_frames", "engine", "device"} <= set(named)
    keywords = (
        set(inspect.signature(Tracker).parameters)
        | set(inspect.signature(Tracker.track).parameters)
        | set(inspect.signature(track_videos).parameters)
    )
    flags = _track_flags()
    for option, where in named.items():
        assert option in keywords, f"{where}: {option} is no keyword of the Python API"
        assert cli_flag(option) in flags, f"{where}: {cli_flag(option)} is no flag of crct track"
    for option, flag in CLI_FLAGS.items():  # the table of exceptions, should it grow
        assert flag in flags and option in keywords, (option, flag)


@pytest.mark.parametrize("module", sorted(OTHER_COMMANDS))
def test_other_commands_name_their_own_keywords_and_flags(module: str) -> None:
    function, command = OTHER_COMMANDS[module]
    named = _named_options(module)
    assert named, f"{module} names no option"
    keywords, flags = set(inspect.signature(function).parameters), _track_flags(command)
    for option, where in named.items():
        assert option in keywords, f"{where}: {option} is no keyword of {function.__name__}"
        assert cli_flag(option) in flags, f"{where}: {cli_flag(option)} is no flag of {command}"


def test_options_named_mid_sentence_are_each_readers_words(tmp_path: Path) -> None:
    """An image sequence's own folder as out: Python is told ``out``, the command ``--out``."""
    from crct_cli.batch.discover import discover
    from crct_cli.errors import WordedError

    (tmp_path / "seq").mkdir()
    for name in ("f1.png", "f2.png"):
        (tmp_path / "seq" / name).write_bytes(b"")
    with pytest.raises(WordedError) as caught:
        discover([tmp_path / "seq"], tmp_path / "seq")
    assert "out is this image sequence's own folder" in str(caught.value)
    assert "--" not in str(caught.value)
    assert "--out is this image sequence's own folder" in error_text(caught.value, flags=True)
    back = pickle.loads(pickle.dumps(caught.value))  # from a worker process, whole
    assert (str(back), back.for_cli()) == (str(caught.value), caught.value.for_cli())


def test_a_bad_focal_length_is_refused_without_pose_too() -> None:
    """The command line refuses --focal-length 0 whatever --pose says; so does Tracker."""
    with pytest.raises(OptionError, match="focal_length must be > 0 pixels"):
        Tracker(networks=FaceNets(), focal_length=-5.0)
