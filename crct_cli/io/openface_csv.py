"""``landmarks.csv``: every face of every frame in OpenFace 2.x FeatureExtraction's layout.

Downstream tools in face analysis read OpenFace's CSV (py-feat's ``read_openface``, R
packages, lab scripts), so crct writes the same columns for what it measures::

    frame,face_id,timestamp,confidence,success,x_0,...,x_67,y_0,...,y_67

- one row per face per frame in which that face has points, in frame order, then by face_id;
- ``frame`` numbered from 1 (like the ``.pts`` files), ``timestamp`` in seconds;
- ``confidence``: the face validator's p(face), empty where the method has no validator
  (``--mode fll-mt`` and ``bt``);
- ``success``: 1 for tracked and re-detected frames, 0 for lost ones (the points are then the
  tracker's unaccepted estimate, as in ``track.json``);
- with ``crct track --pose``, OpenFace's ``pose_Tx, pose_Ty, pose_Tz`` (mm) and ``pose_Rx,
  pose_Ry, pose_Rz`` (radians) after the points (:mod:`crct_cli.pose`).

OpenFace separates its header names with ", "; crct writes plain commas, so ``pandas.read_csv``
gives the bare names (py-feat strips the spaces of OpenFace's own files to the same names).
``--csv-style openface`` (:data:`OPENFACE`) writes FeatureExtraction's own layout for scripts
written against it: ", " between every name and value, the pose columns before ``x_0``, and a
row for every frame, one with ``success`` 0 and zeros where no face has points (as OpenFace
writes a frame it found no face in); ``confidence`` is then 0 where the method has none.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from crct_cli.errors import CrctError, OptionError
from crct_cli.landmarks import N_POINTS
from crct_cli.pose import POSE_COLUMNS, pose_text

COLUMNS: tuple[str, ...] = (
    "frame",
    "face_id",
    "timestamp",
    "confidence",
    "success",
    *(f"x_{i}" for i in range(N_POINTS)),
    *(f"y_{i}" for i in range(N_POINTS)),
)
SUCCESS_STATES = ("tracked", "redetected")
#: ``--csv-style``: crct's plain CSV, or OpenFace FeatureExtraction's own layout
CRCT, OPENFACE = "crct", "openface"
CSV_STYLES: tuple[str, ...] = (CRCT, OPENFACE)


def check_csv_style(style: Any) -> str:
    """``style`` as given, if it is one of :data:`CSV_STYLES`."""
    if style not in CSV_STYLES:
        raise OptionError("csv_style", f"must be {' or '.join(CSV_STYLES)}, got {style!r}")
    return str(style)


class FaceLike(Protocol):
    """What :meth:`LandmarksCsvWriter.add` reads of a face (and its ``pose``, if it has one)."""

    @property
    def face_id(self) -> int: ...
    @property
    def points(self) -> np.ndarray | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True)
class CsvRow:
    """One row of ``landmarks.csv`` read back: ``points`` is (68, 2)."""

    frame: int
    face_id: int
    timestamp: float
    confidence: float | None
    success: bool
    points: np.ndarray


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.stem}.partial{target.suffix}")


class LandmarksCsvWriter:
    """Stream rows to a temporary file; :meth:`close` renames it, :meth:`abort` drops it.

    ``pose``: OpenFace's six ``pose_*`` columns (``crct track --pose``), after the points;
    ``style``: :data:`CRCT`, or :data:`OPENFACE` for FeatureExtraction's own layout (see the
    module's docstring)."""

    def __init__(self, path: str | os.PathLike[str], pose: bool = False, style: str = CRCT) -> None:
        self.path = Path(path)
        self.pose = pose
        self.openface = check_csv_style(style) == OPENFACE
        self._tmp = _temp_name(self.path)
        try:
            self._fh: IO[str] = open(self._tmp, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise CrctError(f"{self.path}: cannot write ({exc.strerror})") from None
        self._csv = csv.writer(self._fh, lineterminator="\n")
        head, points = COLUMNS[:5], COLUMNS[5:]
        pose_columns = POSE_COLUMNS if pose else ()
        if self.openface:  # FeatureExtraction: the pose comes before the landmarks
            self._write([*head, *pose_columns, *points])
        else:
            self._write([*COLUMNS, *pose_columns])
        self.rows = 0

    def _write(self, cells: list[Any]) -> None:
        if self.openface:  # numbers and names only: nothing to quote
            self._fh.write(", ".join(map(str, cells)) + "\n")
        else:
            self._csv.writerow(cells)

    def add(self, frame_index: int, time: float, faces: Iterable[FaceLike]) -> None:
        """The faces of decoded frame ``frame_index`` (from 0) that have points (with the
        OpenFace style, a row of zeros with ``success`` 0 when none has)."""
        timestamp = f"{time:.3f}"
        no_score = "0" if self.openface else ""  # OpenFace's readers expect a number
        written = 0
        for face in sorted(faces, key=lambda f: f.face_id):
            if face.points is None:
                continue
            pts = np.asarray(face.points, dtype=np.float64)
            head = [
                frame_index + 1,
                face.face_id,
                timestamp,
                no_score if face.score is None else f"{face.score:.4f}",
                int(face.state in SUCCESS_STATES),
            ]
            points = [*(f"{v:.3f}" for v in pts[:, 0]), *(f"{v:.3f}" for v in pts[:, 1])]
            pose_cells: list[str] = []
            if self.pose:
                pose = getattr(face, "pose", None)
                pose_cells = [no_score] * 6 if pose is None else pose_text(pose)
            self._write(
                [*head, *pose_cells, *points] if self.openface else [*head, *points, *pose_cells]
            )
            written += 1
        if self.openface and not written:  # as FeatureExtraction writes a frame without a face
            zeros = ["0"] * (2 * N_POINTS + (len(POSE_COLUMNS) if self.pose else 0))
            self._write([frame_index + 1, 0, timestamp, "0", 0, *zeros])
            written = 1
        self.rows += written

    def close(self) -> None:
        self._fh.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> LandmarksCsvWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_landmarks_csv(path: str | os.PathLike[str]) -> list[CsvRow]:
    """Rows of a ``landmarks.csv`` (crct's in either style, or OpenFace's own); a row of zeros
    with ``success`` 0 is a frame without a face, and is left out.

    A file without a ``face_id`` column is one face, ``face_id`` 0: OpenFace 2.0's first
    releases wrote ``frame, timestamp, confidence, success, ...`` (the header its wiki's
    Output-Format page still shows), one row a frame of FeatureExtraction's single face."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in COLUMNS if c not in header and c != "face_id"]
            if missing:
                raise CrctError(f"{path}: not a landmarks CSV (no column {missing[0]})")
            at = {c: header.index(c) for c in COLUMNS if c in header}
            xs = [at[f"x_{i}"] for i in range(N_POINTS)]
            ys = [at[f"y_{i}"] for i in range(N_POINTS)]
            rows = []
            for line_no, row in enumerate(reader, start=2):
                try:
                    conf = row[at["confidence"]].strip()
                    parsed = CsvRow(
                        frame=int(row[at["frame"]]),
                        face_id=int(row[at["face_id"]]) if "face_id" in at else 0,
                        timestamp=float(row[at["timestamp"]]),
                        confidence=float(conf) if conf else None,
                        success=bool(int(float(row[at["success"]]))),
                        points=np.stack(
                            [[float(row[i]) for i in xs], [float(row[i]) for i in ys]], axis=1
                        ),
                    )
                except (ValueError, IndexError):
                    raise CrctError(f"{path}: line {line_no} is not a landmarks row") from None
                if parsed.frame < 1 or not np.all(np.isfinite(parsed.points)):
                    raise CrctError(
                        f"{path}: line {line_no}: frames count from 1 and points are finite "
                        f"numbers (frame {parsed.frame})"
                    )
                if not parsed.success and not parsed.points.any():
                    continue  # a frame without a face, as OpenFace and its style write it
                rows.append(parsed)
            return rows
    except UnicodeDecodeError:
        raise CrctError(f"{path}: not a landmarks CSV (not UTF-8 text)") from None
    except FileNotFoundError:
        raise CrctError(f"{path}: no such landmarks CSV") from None
    except OSError as exc:
        raise CrctError(f"{path}: cannot read ({exc.strerror})") from None
