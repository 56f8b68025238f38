"""The package's type hints hold: mypy, with the settings in pyproject.toml, finds no error.

Why a test: the hints are the Python API's documentation as much as the docstrings are, and a
hint that lies (an ``Optional`` unchecked, a return type that is not returned) is a bug a user
meets first. mypy is part of the ``test`` extra; without it (an install without the extra)
this test is skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error_in_the_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]' brings it)")
    if not (ROOT / "pyproject.toml").is_file() or not (ROOT / "crct_cli").is_dir():
        pytest.skip("not run from a crct checkout")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "no issues found" in done.stdout
