"""iBUG .pts reading and writing (crct_cli/io/landmarks.py) on generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crct_cli.errors import CrctError
from crct_cli.io.landmarks import format_pts, read_pts, write_pts


def _points(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-5, 500, size=(68, 2)).round(3)


def _pts_text(points: np.ndarray, version: str = "1", newline: str = "\n") -> str:
    lines = [f"version: {version}", f"n_points:  {len(points)}", "{"]
    lines += [f"{x} {y}" for x, y in points]
    lines += ["}"]
    return newline.join(lines) + newline


def test_round_trip(tmp_path: Path) -> None:
    points = _points()
    write_pts(tmp_path / "a.pts", points)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), points, atol=5e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pts"]  # no temporary file left


def test_version_1_0_crlf_and_blank_lines(tmp_path: Path) -> None:
    points = _points(1)
    text = _pts_text(points, version="1.0", newline="\r\n")
    text = text.replace("{\r\n", "{\r\n\r\n").replace("\r\n}", "\r\n\r\n}") + "\r\n\r\n"
    path = tmp_path / "crlf.pts"
    path.write_bytes(("\r\n" + text).encode())
    np.testing.assert_allclose(read_pts(path), points)


def test_format_is_the_ibug_layout() -> None:
    text = format_pts(np.arange(136, dtype=float).reshape(68, 2))
    lines = text.splitlines()
    assert lines[0] == "version: 1"
    assert lines[1].split() == ["n_points:", "68"]
    assert lines[2] == "{" and lines[-1] == "}"
    assert lines[3] == "0.000 1.000" and len(lines) == 68 + 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_pts_text(_points()[:67]).replace("67", "68", 1), "expected 68 points, found 67"),
        (_pts_text(np.vstack([_points(), [[1.0, 2.0]]])), "expected 68 points, found 69"),
        (_pts_text(_points()).replace("{", ""), "no '{ ... }' block"),
        (_pts_text(_points()).replace("n_points:  68", "n_points: 70"), "n_points is 70"),
        ("", "no '{ ... }' block"),
        (_pts_text(_points()).replace("{\n", "{ "), "must each stand on a line of their own"),
        ('{"version": 1, "points": [[1, 2]]}', "no '{ ... }' block"),  # JSON named .pts
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.pts"
    path.write_text(content)
    with pytest.raises(CrctError) as err:
        read_pts(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert message in str(err.value)


def test_non_numeric_and_non_finite(tmp_path: Path) -> None:
    rows = [f"{x} {y}" for x, y in _points()]
    rows[10] = "12.5 abc"
    path = tmp_path / "text.pts"
    path.write_text("version: 1\nn_points: 68\n{\n" + "\n".join(rows) + "\n}\n")
    with pytest.raises(CrctError, match="non-numeric"):
        read_pts(path)
    rows[10] = "nan 3"
    path.write_text("version: 1\nn_points: 68\n{\n" + "\n".join(rows) + "\n}\n")
    with pytest.raises(CrctError, match="not finite"):
        read_pts(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CrctError, match="no such landmark file"):
        read_pts(tmp_path / "nope.pts")


def test_write_rejects_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_pts(tmp_path / "a.pts", np.zeros((68, 3)))
    assert list(tmp_path.iterdir()) == []
