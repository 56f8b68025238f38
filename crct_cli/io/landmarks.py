"""iBUG ``.pts`` files: the 68-point format of 300-W, 300-VW and Menpo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.errors import CrctError, OptionError, whole_number
from crct_cli.io.atomic import write_text_atomic
from crct_cli.landmarks import N_POINTS

#: The coordinate 300-W's (and 300-VW's) .pts files give the centre of the first pixel: they
#: count from 1, as Matlab does. crct's geometry counts pixel centres from 0 (as OpenCV).
PTS_ORIGIN = 1.0
#: ``crct track --pts-origin`` / ``crct align --pts-origin``: the coordinate the ``.pts`` files
#: crct writes give the first pixel's centre: 0 (crct's own, the default) or 1 (300-W's, what
#: menpo's importer and eos's ``read_pts_landmarks`` take off)
PTS_ORIGINS: tuple[int, ...] = (0, 1)


def check_pts_origin(value: Any) -> int:
    """``pts_origin`` / ``--pts-origin`` as an int, 0 or 1: a bool, a fraction or a string is
    refused by name (True would have read as 1)."""
    whole = whole_number(value)
    if whole not in PTS_ORIGINS:
        raise OptionError(
            "pts_origin",
            f"must be 0 or 1 (the coordinate the .pts files give the first pixel's centre: 1 "
            f"for 300-W's convention, as menpo and eos read them), got {value!r}",
        )
    return int(whole)


def read_pts(path: str | os.PathLike[str], n_points: int | None = N_POINTS) -> np.ndarray:
    """Read a ``.pts`` file into an (n_points, 2) float array of pixel coordinates
    (``n_points`` None: as many as the file declares, 68 where it does not say).

    Tolerates ``version: 1.0``, CRLF line ends and blank lines, and reads the first two
    numbers of a row (x, y of a 3D file's x y z); anything else that is off (missing braces,
    wrong count, non-numbers) raises :class:`CrctError` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise CrctError(f"{path}: no such landmark file") from None
    except OSError as exc:
        raise CrctError(f"{path}: cannot read ({exc.strerror})") from None
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    try:
        start = lines.index("{")
        end = lines.index("}", start)
    except ValueError:
        shared = [ln for ln in lines if ln not in "{}" and (ln[0] == "{" or ln[-1] == "}")]
        if any(_numbers(ln.removeprefix("{").removesuffix("}")) for ln in shared):
            raise CrctError(
                f"{path}: '{{' and '}}' must each stand on a line of their own"
            ) from None
        raise CrctError(f"{path}: not a .pts file (no '{{ ... }}' block)") from None
    declared = None
    for ln in lines[:start]:
        if ln.lower().startswith("n_points"):
            try:
                declared = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise CrctError(f"{path}: bad n_points line {ln!r}") from None
    rows = lines[start + 1 : end]
    if n_points is None:
        n_points = N_POINTS if declared is None else declared
    try:
        points = np.array([[float(v) for v in row.split()[:2]] for row in rows], dtype=np.float64)
    except ValueError:
        raise CrctError(f"{path}: non-numeric coordinates") from None
    if points.ndim != 2 or points.shape != (n_points, 2) or any(len(r.split()) < 2 for r in rows):
        raise CrctError(f"{path}: expected {n_points} points, found {len(rows)}")
    if declared is not None and declared != n_points:
        raise CrctError(f"{path}: n_points is {declared}, expected {n_points}")
    if not np.all(np.isfinite(points)):
        raise CrctError(f"{path}: coordinates are not finite")
    return points


def _numbers(text: str) -> bool:
    """Whether ``text`` is two or more numbers (a point's row), and nothing else."""
    words = text.split()
    try:
        return len([float(w) for w in words]) >= 2
    except ValueError:
        return False


def format_pts(points: np.ndarray, origin: int = 0) -> str:
    """A ``.pts`` file's text, three decimals; ``origin`` (``--pts-origin``) is added to every
    x and y, to the numbers as written at three decimals, so that a file of origin 1 reads
    exactly 1 more than the file of origin 0 of the same points."""
    points = np.asarray(points, dtype=np.float64)
    if origin:
        points = np.array([[float(f"{v:.3f}") for v in row] for row in points]) + origin
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    return f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n"


def write_pts(path: str | os.PathLike[str], points: np.ndarray, origin: int = 0) -> None:
    """Write points as a ``.pts`` file (atomically: temporary name, then rename), ``origin``
    added to them (:func:`format_pts`)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {points.shape}")
    write_text_atomic(path, format_pts(points, origin))
