"""What a user of an installed crct meets outside its inputs, as one line and exit 2, never a
traceback: a required package that is not installed (``pip install --no-deps``), and an output
folder it cannot write into (``crct denoise`` said so once per file, after denoising each).

The commands run in a subprocess, as a user runs them: ``python -m crct_cli`` with the missing
package blocked in ``sys.modules``, or without the capability that lets root write anywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import pytest
from test_still_inputs import _unprivileged as unprivileged

from crct_cli.io.images import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def crct_without(module: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``crct ARGS`` in a process where ``import MODULE`` fails as if it were not installed."""
    code = (
        "import runpy, sys\n"
        f"sys.modules[{module!r}] = None\n"
        "sys.argv = ['crct', *sys.argv[1:]]\n"
        "runpy.run_module('crct_cli', run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("crct: error: ")
    return line


@pytest.mark.parametrize("args", [["--help"], ["track", "--help"], ["--version"]])
def test_without_typer_the_command_says_which_package_is_missing(
    tmp_path: Path, args: list[str]
) -> None:
    line = one_error_line(crct_without("typer", *args, cwd=tmp_path))
    assert "typer" in line and "not installed" in line and "--no-deps" in line


def test_a_package_missing_when_a_command_runs_is_one_line(tmp_path: Path) -> None:
    photo = tmp_path / "face.png"
    photo.write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    run = crct_without(
        "numpy", "degrade", photo, "--out", tmp_path / "out", "-t", "blur", "-l", "1", cwd=tmp_path
    )
    line = one_error_line(run)
    assert "numpy" in line and "not installed" in line
    assert not (tmp_path / "out").exists()


def test_every_required_package_is_named_by_its_module() -> None:
    """Each of pyproject.toml's dependencies has its module in DEPENDENCY_MODULES."""
    from crct_cli.errors import DEPENDENCY_MODULES

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    assert required == set(DEPENDENCY_MODULES.values())


def run_with_locked_folder(locked: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` run as a user who cannot write into ``locked`` (made read-only for the run;
    root drops the capability that lets it write anywhere), or the test skipped where that
    cannot be arranged."""
    prefix = unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: every folder is writable")
    locked.chmod(0o555)
    try:
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=300)
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(os.name != "posix", reason="folder permissions are POSIX's")
@pytest.mark.parametrize("made", [True, False], ids=["existing", "to-be-made"])
def test_denoise_into_an_unwritable_folder_is_one_line_before_any_work(
    tmp_path: Path, made: bool
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    small = cv2.resize(read_image(SAMPLES / "astronaut.jpg"), (96, 96))
    for name in ("a.png", "b.png"):
        write_image(photos / name, small)
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked if made else locked / "new" / "out"
    run = run_with_locked_folder(
        locked,
        [sys.executable, "-m", "crct_cli", "denoise", str(photos), "--out", str(out)]
        + ["--variant", "d", "--backend", "onnx", "--device", "cpu"],
    )
    line = one_error_line(run)  # (it said "cannot write" for a.png, then for b.png)
    assert str(out) in line and "not writable" in line
    assert sorted(p.name for p in locked.rglob("*")) == []


@pytest.mark.skipif(os.name != "posix", reason="folder permissions are POSIX's")
def test_track_into_an_unwritable_folder_says_so_in_words(tmp_path: Path) -> None:
    """It said ``locked/.crct-track.lock: Read-only file system`` (or "Permission denied"):
    the lock file's name, which the user never chose."""
    locked = tmp_path / "locked"
    locked.mkdir()
    run = run_with_locked_folder(
        locked,
        [sys.executable, "-m", "crct_cli", "track", str(SAMPLES / "astronaut.mp4")]
        + ["--out", str(locked), "--max-frames", "2"],
    )
    line = one_error_line(run)
    assert line == f"crct: error: {locked}: output folder is not writable"
    assert list(locked.iterdir()) == []


def test_benchmark_given_a_file_for_a_folder_says_so(tmp_path: Path) -> None:
    """It said "no such ground-truth folder" of a file that is there."""
    from typer.testing import CliRunner

    from crct_cli.cli import app
    from crct_cli.io.landmarks import write_pts

    one = tmp_path / "000001.pts"
    write_pts(one, [[float(i), float(i)] for i in range(68)])
    folder = tmp_path / "run"
    folder.mkdir()
    for args, label in (
        (["--pred", folder, "--gt", one], "ground-truth"),
        (["--pred", one, "--gt", folder], "prediction"),
    ):
        result = CliRunner().invoke(app, ["benchmark", *map(str, args)])
        assert result.exit_code == 2 and "Traceback" not in result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"crct: error: {one}: a {label} folder is needed, not a file")


@pytest.mark.skipif(os.name != "posix", reason="folder permissions are POSIX's")
def test_live_into_an_unwritable_folder_is_refused_before_it_starts(tmp_path: Path) -> None:
    """An existing folder it cannot write into was refused only once the networks had loaded
    and the first frame was tracked (here the networks are never built: the refusal comes
    first)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    code = (
        "import sys, crct_cli.cli as cli\n"
        "def loading(*a, **k):\n"
        "    raise SystemExit('the networks were asked for')\n"
        "import crct_cli.api\n"
        "crct_cli.api.Tracker = loading\n"
        "sys.argv = ['crct', *sys.argv[1:]]\n"
        "cli.app(prog_name='crct')\n"
    )
    run = run_with_locked_folder(
        locked,
        [sys.executable, "-c", code, "live", str(SAMPLES / "astronaut.mp4")]
        + ["--out", str(locked), "--no-show"],
    )
    line = one_error_line(run)
    assert line == f"crct: error: {locked}: output folder is not writable"
    assert list(locked.iterdir()) == []
