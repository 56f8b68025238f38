"""The JSON file ``crct track`` writes: one record per frame, schemas ``crct.track/1`` and ``/2``.

``crct track`` writes ``crct.track/2`` (every face of each frame); ``crct.track/1`` (one face)
is still read and written, so files and readers from before several faces keep working.
Layout of version 1 (both documented with an example in ``docs/formats.md``)::

    {"schema": "crct.track/1", "video": str, "width": int, "height": int, "fps": float,
     "n_frames": int | null, "method": str, "config": {...},
     "frames": [{"index": int, "time": float, "box": [x, y, w, h] | null,
                 "points": [[x, y] x 68] | null, "score": float | null,
                 "state": "tracked" | "redetected" | "lost"}, ...],
     "summary": {...}}

Version 2 has the same header plus ``faces`` (the face count asked for, ``null`` for all), and
frames ``{"index", "time", "faces": [{"face_id": int, "box", "points", "score", "state"}]}``
(and each face's ``pose`` with ``crct track --pose``; ``"cut": true`` on a frame that starts a
new shot).

:class:`TrackJsonWriter` streams frames to a temporary file as they come (memory stays flat
for any video length) and renames it at :meth:`~TrackJsonWriter.close`;
:func:`read_track_json` loads and validates a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeGuard

import numpy as np

from crct_cli.errors import CrctError
from crct_cli.landmarks import N_POINTS
from crct_cli.pose import pose_values

SCHEMA = "crct.track/1"
SCHEMA_FACES = "crct.track/2"
SCHEMAS: tuple[str, ...] = (SCHEMA, SCHEMA_FACES)

#: Frame states. tracked: the tracker's estimate passed the face validator and was refined;
#: redetected: the tracker was re-initialised from a fresh face detection this frame;
#: lost: no accepted face (points are the last estimate, or null).
STATES: tuple[str, ...] = ("tracked", "redetected", "lost")

#: Header fields every file has, with the JSON types they must have.
HEADER_FIELDS: tuple[str, ...] = ("video", "width", "height", "fps", "n_frames", "method", "config")

#: The header key of ``crct track --pts-origin 1``: the run's ``.pts`` files count pixel
#: centres from 1 (absent: from 0, as every coordinate in the JSON and the CSV always does).
PTS_ORIGIN_KEY = "pts_origin"
#: The folders of a run that hold ``.pts`` files (``faces/<id>/`` holds ``annot/``, ``crops/``).
PTS_FOLDERS: tuple[str, ...] = ("annot", "faces", "crops")

_POINT_DECIMALS = 3  # a thousandth of a pixel: far below any landmark error
_TIME_DECIMALS = 6


@dataclass
class FrameRecord:
    """One frame of tracking output.

    ``index`` counts frames from 0 in decoding order; ``time`` is in seconds; ``box`` is
    ``(x, y, w, h)`` in pixels; ``points`` is (68, 2) pixel coordinates; ``score`` the face
    validator's probability that the box holds a face. ``tracked`` and ``redetected`` frames
    must carry points and a box; a ``lost`` frame may have them (the last estimate) or not.
    """

    index: int
    time: float
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    score: float | None = None
    state: str = "lost"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; raises ValueError for a record that breaks the schema."""
        problem = _record_problem(self)
        if problem:
            raise ValueError(f"frame {self.index}: {problem}")
        box = None if self.box is None else [_round(v, _POINT_DECIMALS) for v in self.box]
        points = None
        if self.points is not None:
            points = [
                [_round(x, _POINT_DECIMALS), _round(y, _POINT_DECIMALS)]
                for x, y in np.asarray(self.points, dtype=np.float64)
            ]
        return {
            "index": int(self.index),
            "time": _round(self.time, _TIME_DECIMALS),
            "box": box,
            "points": points,
            "score": None if self.score is None else _round(self.score, _TIME_DECIMALS),
            "state": self.state,
        }


@dataclass
class FaceRecord:
    """One face in one frame of a ``crct.track/2`` file; fields as :class:`FrameRecord`."""

    face_id: int
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    score: float | None = None
    state: str = "lost"
    #: ``(Tx, Ty, Tz, Rx, Ry, Rz)`` with ``crct track --pose`` (:mod:`crct_cli.pose`)
    pose: np.ndarray | None = None

    def as_frame(self, index: int, time: float) -> FrameRecord:
        return FrameRecord(index, time, self.box, self.points, self.score, self.state)

    def to_json(self) -> dict[str, Any]:
        if not _is_int(self.face_id) or self.face_id < 0:
            raise ValueError(f"face_id must be an integer >= 0, got {self.face_id!r}")
        fields = {"face_id": int(self.face_id), **_face_fields(self.as_frame(0, 0.0).to_json())}
        if self.pose is not None:
            fields["pose"] = pose_values(self.pose)
        return fields


@dataclass
class FacesRecord:
    """One frame of a ``crct.track/2`` file: its faces, by ``face_id``; ``cut``: the frame
    starts a new shot (``crct track --shot-cuts``; written only where true)."""

    index: int
    time: float
    faces: list[FaceRecord]
    cut: bool = False

    def to_json(self) -> dict[str, Any]:
        problem = _record_problem(FrameRecord(self.index, self.time))
        if problem:
            raise ValueError(f"frame {self.index}: {problem}")
        ids = [f.face_id for f in self.faces]
        if len(set(ids)) != len(ids):
            raise ValueError(f"frame {self.index}: a face_id appears twice")
        return {
            "index": int(self.index),
            "time": _round(self.time, _TIME_DECIMALS),
            **({"cut": True} if self.cut else {}),
            "faces": [f.to_json() for f in self.faces],
        }

    def face(self, face_id: int) -> FrameRecord:
        """This frame as a one-face record of ``face_id`` (lost, no points, if absent)."""
        for f in self.faces:
            if f.face_id == face_id:
                return f.as_frame(self.index, self.time)
        return FrameRecord(self.index, self.time)


def _face_fields(frame_json: dict[str, Any]) -> dict[str, Any]:
    return {k: frame_json[k] for k in ("box", "points", "score", "state")}


@dataclass
class TrackFile:
    """A validated track file: its header fields, frame records and summary.

    ``frames`` holds one record per frame for face 0 in both versions (readers of version 1
    keep working); ``faces`` holds every face of every frame (version 1: face 0's records).
    """

    path: Path
    header: dict[str, Any]
    frames: list[FrameRecord]
    summary: dict[str, Any]
    faces: list[FacesRecord] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return str(self.header["schema"])

    @property
    def video(self) -> str:
        return str(self.header["video"])

    @property
    def fps(self) -> float:
        return float(self.header["fps"])

    @property
    def method(self) -> str:
        return str(self.header["method"])

    @property
    def face_ids(self) -> list[int]:
        """Every face id in the file, in order."""
        return sorted({f.face_id for record in self.faces for f in record.faces})

    @property
    def cuts(self) -> list[int]:
        """The frames (indices) that start a new shot (``crct track --shot-cuts``): with
        several faces no id goes on across one (the single target stays face 0), so each
        shot's faces can be read apart."""
        return [record.index for record in self.faces if record.cut]

    def arrays(self, face_id: int = 0) -> FaceArrays:
        """One face's track as arrays over the file's frames, for analysis with numpy:
        NaN where the face has no points, box, score or pose in a frame. An id the run does not
        have (:attr:`face_ids` lists those it has) is absent from every frame, so that runs
        compare row for row whichever faces each found."""
        if isinstance(face_id, bool) or not isinstance(face_id, int | np.integer):
            raise TypeError(f"face_id must be an int (one of {self.face_ids}), got {face_id!r}")
        n = len(self.faces)
        points = np.full((n, N_POINTS, 2), np.nan)
        boxes = np.full((n, 4), np.nan)
        scores = np.full(n, np.nan)
        poses = np.full((n, 6), np.nan)
        states = np.full(n, "absent", dtype=object)
        for i, record in enumerate(self.faces):
            for face in record.faces:
                if face.face_id != face_id:
                    continue
                states[i] = face.state
                if face.points is not None:
                    points[i] = face.points
                if face.box is not None:
                    boxes[i] = face.box
                if face.score is not None:
                    scores[i] = face.score
                if face.pose is not None:
                    poses[i] = face.pose
        return FaceArrays(
            face_id=face_id,
            index=np.array([r.index for r in self.faces], dtype=np.int64),
            time=np.array([r.time for r in self.faces], dtype=np.float64),
            points=points,
            boxes=boxes,
            scores=scores,
            states=states.astype(str),
            poses=poses,
        )


@dataclass(frozen=True)
class FaceArrays:
    """One face over a run's frames (:meth:`TrackFile.arrays`), row ``i`` frame ``index[i]``.

    ``states`` is ``tracked``, ``redetected``, ``lost`` or ``absent`` (the face has no record in
    that frame: before it appears, after it leaves, or another face's frame).
    """

    face_id: int
    index: np.ndarray  #: (n,) frame numbers from 0 (the .pts file of frame k is k + 1)
    time: np.ndarray  #: (n,) seconds
    points: np.ndarray  #: (n, 68, 2) pixels, NaN where none
    boxes: np.ndarray  #: (n, 4) x, y, w, h, NaN where none
    scores: np.ndarray  #: (n,) the face validator's p(face), NaN where none
    states: np.ndarray  #: (n,) str
    poses: np.ndarray  #: (n, 6) Tx, Ty, Tz, Rx, Ry, Rz (crct track --pose), NaN where none

    @property
    def found(self) -> np.ndarray:
        """(n,) bool: frames where the face was tracked or re-detected (OpenFace's success)."""
        return np.isin(self.states, ("tracked", "redetected"))


def _round(value: Any, decimals: int) -> float:
    return round(float(value), decimals)


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return math.isfinite(float(value))
    return False


def _numeric_array(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as a float array of ``shape`` if it is one made of finite numbers, else None.

    Strict on purpose: strings and booleans, which numpy would happily convert, are refused.
    """
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        arr = value.astype(np.float64)
    else:
        try:
            obj = np.asarray(value, dtype=object)
        except ValueError:
            return None
        if obj.shape != shape or not all(_is_number(v) for v in obj.ravel()):
            return None
        arr = obj.astype(np.float64)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        return None
    return arr


def _record_problem(record: FrameRecord) -> str | None:
    """What is wrong with a record, or None. Shared by the writer and the reader."""
    if not _is_int(record.index) or record.index < 0:
        return f"index must be an integer >= 0, got {record.index!r}"
    if not _is_number(record.time):
        return f"time must be a finite number of seconds, got {record.time!r}"
    if record.state not in STATES:
        return f"state must be one of {', '.join(STATES)}, got {record.state!r}"
    if record.box is not None:
        box = _numeric_array(record.box, (4,))
        if box is None:
            return "box must be [x, y, w, h] (4 finite numbers) or null"
        if box[2] < 0 or box[3] < 0:
            return "box width and height must be >= 0"
    if record.points is not None and _numeric_array(record.points, (N_POINTS, 2)) is None:
        return f"points must be {N_POINTS} [x, y] pairs of finite numbers or null"
    if record.score is not None and (not _is_number(record.score) or not 0 <= record.score <= 1):
        return f"score must be a probability in [0, 1] or null, got {record.score!r}"
    if record.state in ("tracked", "redetected") and (record.points is None or record.box is None):
        return f"a {record.state!r} frame needs points and a box"
    return None


def _header_problem(header: Mapping[str, Any]) -> str | None:
    missing = [k for k in HEADER_FIELDS if k not in header]
    if missing:
        return f"missing header field(s): {', '.join(missing)}"
    if not isinstance(header["video"], str):
        return "video must be a string"
    for key in ("width", "height"):
        if not _is_int(header[key]) or header[key] <= 0:
            return f"{key} must be a positive integer, got {header[key]!r}"
    if not _is_number(header["fps"]) or header["fps"] <= 0:
        return f"fps must be a positive number, got {header['fps']!r}"
    n_frames = header["n_frames"]
    if n_frames is not None and (not _is_int(n_frames) or n_frames < 0):
        return f"n_frames must be an integer >= 0 or null, got {n_frames!r}"
    if not isinstance(header["method"], str):
        return "method must be a string"
    if not isinstance(header["config"], dict):
        return "config must be an object"
    origin = header.get(PTS_ORIGIN_KEY, 0)
    if isinstance(origin, bool) or origin not in (0, 1):
        return f"{PTS_ORIGIN_KEY} must be 0 or 1, got {origin!r}"
    return None


def _temp_name(target: Path) -> Path:
    """Same naming as :func:`crct_cli.io.atomic.atomic_path`."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


class TrackJsonWriter:
    """Write a ``crct.track/1`` file frame by frame.

    ``TrackJsonWriter(path, header)``: ``header`` holds the :data:`HEADER_FIELDS` (``video``,
    ``width``, ``height``, ``fps``, ``n_frames``, ``method``, ``config``) and may add more keys;
    ``schema`` is set by the writer. Each :meth:`add` appends one line to a temporary file, so
    nothing accumulates in memory; :meth:`close` writes the summary and renames the file onto
    ``path``. Used as a context manager, an exception inside the block removes the temporary
    file instead. Frame indices must increase strictly.

    The summary always holds ``frames_written`` and ``states`` (a count per state); the dict
    given to :meth:`close` adds to it (e.g. ``runtime_s``).
    """

    def __init__(
        self, path: str | os.PathLike[str], header: Mapping[str, Any], schema: str = SCHEMA
    ) -> None:
        self.path = Path(path)
        if schema not in SCHEMAS:
            raise ValueError(f"unknown track schema {schema!r}")
        self.schema = schema
        problem = _header_problem(header)
        if problem:
            raise ValueError(f"track header: {problem}")
        reserved = {"schema", "frames", "summary"} & set(header)
        if reserved - {"schema"} or header.get("schema", schema) != schema:
            raise ValueError(f"track header must not set {sorted(reserved)}")
        full = {"schema": schema, **{k: v for k, v in header.items() if k != "schema"}}
        try:
            header_text = json.dumps(full, indent=2, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"track header is not JSON-serialisable: {exc}") from None
        folder = self.path.parent
        if not folder.exists():
            raise CrctError(f"{self.path}: cannot write, folder {folder} does not exist")
        if not folder.is_dir():
            raise CrctError(f"{self.path}: cannot write, {folder} is not a folder")
        self._tmp = _temp_name(self.path)
        try:
            self._fh: IO[str] = open(self._tmp, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise CrctError(f"{self.path}: cannot write ({exc.strerror})") from None
        self._closed = False
        self._last_index = -1
        self._frames = 0
        self.counts = dict.fromkeys(STATES, 0)  # version 2: face-frames per state
        # The header minus its closing brace, then the frames array opened.
        self._write(header_text[: header_text.rstrip().rfind("}")].rstrip() + ',\n  "frames": [')

    @property
    def frames_written(self) -> int:
        return self._frames

    def _write(self, text: str) -> None:
        try:
            self._fh.write(text)
        except OSError as exc:
            self.abort()
            raise CrctError(f"{self.path}: cannot write ({exc.strerror})") from None

    def add(self, record: FrameRecord | FacesRecord) -> None:
        """Append one frame record (validated; ValueError if it breaks the schema)."""
        if self._closed:
            raise ValueError("add() on a closed TrackJsonWriter")
        expected = FrameRecord if self.schema == SCHEMA else FacesRecord
        if not isinstance(record, expected):
            raise ValueError(
                f"{self.schema} takes {expected.__name__}, got {type(record).__name__}"
            )
        line = json.dumps(record.to_json(), separators=(", ", ": "), allow_nan=False)
        if record.index <= self._last_index:
            raise ValueError(
                f"frame indices must increase: {record.index} after {self._last_index}"
            )
        sep = "\n    " if self.frames_written == 0 else ",\n    "
        self._write(sep + line)
        self._last_index = int(record.index)
        self._frames += 1
        for state in _states_of(record):
            self.counts[state] += 1

    def close(self, summary: Mapping[str, Any] | None = None) -> None:
        """Write the summary, close the file and rename it onto its final name."""
        if self._closed:
            return
        full = {"frames_written": self.frames_written, "states": dict(self.counts)}
        full.update(summary or {})
        try:
            text = json.dumps(full, indent=2, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            self.abort()
            raise ValueError(f"track summary is not JSON-serialisable: {exc}") from None
        text = text.replace("\n", "\n  ")
        end = "\n  ]" if self.frames_written else "]"
        self._write(f'{end},\n  "summary": {text}\n}}\n')
        try:
            self._fh.close()
            self._closed = True
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise CrctError(f"{self.path}: cannot write ({exc.strerror})") from None

    def abort(self) -> None:
        """Discard the file being written."""
        self._closed = True
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> TrackJsonWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _states_of(record: FrameRecord | FacesRecord) -> list[str]:
    if isinstance(record, FrameRecord):
        return [record.state]
    return [f.state for f in record.faces]


def _json_default(value: Any) -> Any:
    """Let numpy scalars, arrays and paths appear in a header's config or the summary."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def load_track(path: str | os.PathLike[str]) -> TrackFile:
    """A ``crct track`` run, by its output folder (its ``track.json``) or the file itself:
    ``load_track("runs/talk").arrays().points`` is face 0's (frames, 68, 2) points."""
    path = Path(path)
    if path.is_dir():
        if not (path / "track.json").is_file():
            if (path / "summary.csv").is_file():  # the --out of several videos
                raise CrctError(
                    f"{path}: a run of several videos (summary.csv): load each video's folder "
                    "(its output column)"
                )
            raise CrctError(f"{path}: no track.json (not a crct track output folder)")
        path = path / "track.json"
    return read_track_json(path)


def read_track_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A track file's header (its keys before ``frames``), without reading its frames where
    it is laid out as :class:`TrackJsonWriter` writes it (a long video's file is megabytes);
    any other layout is read whole. Raises :class:`CrctError` naming the file."""
    path = Path(path)
    head = ""
    try:
        with open(path, encoding="utf-8") as fh:
            while '\n  "frames": [' not in head:
                chunk = fh.read(1 << 16)
                if not chunk:
                    break
                head += chunk
    except OSError as exc:
        raise CrctError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise CrctError(f"{path}: not valid JSON ({exc})") from None
    cut = head.find('\n  "frames": [')
    if cut > 0:
        with contextlib.suppress(ValueError):
            header = json.loads(head[:cut].rstrip().removesuffix(",") + "}")
            if isinstance(header, dict):
                return header
    return read_track_json(path).header


def header_pts_origin(header: Mapping[str, Any]) -> int:
    """The coordinate a run's ``.pts`` files give the first pixel's centre (``--pts-origin``,
    recorded as :data:`PTS_ORIGIN_KEY`; runs without it wrote 0)."""
    origin = header.get(PTS_ORIGIN_KEY, 0)
    return origin if origin in (0, 1) and not isinstance(origin, bool) else 0


def pts_run(folder: str | os.PathLike[str]) -> Path | None:
    """The ``track.json`` of the ``crct track`` run one of whose ``.pts`` folders ``folder``
    is (``RUN/annot``, ``RUN/crops``, ``RUN/faces``, ``RUN/faces/<id>``,
    ``RUN/faces/<id>/annot``...), None otherwise (the run's own folder too)."""
    given = Path(os.path.abspath(folder))
    run = given
    if run.name in ("annot", "crops"):
        run = run.parent
    if run.parent.name == "faces" and run.name.isdecimal():
        run = run.parent.parent
    elif run.name == "faces":
        run = run.parent
    track = run / "track.json"
    return track if run != given and track.is_file() else None


def recorded_pts_origins(folder: str | os.PathLike[str]) -> dict[Path, int]:
    """What the ``crct track`` runs whose ``.pts`` files lie in ``folder`` recorded as their
    origin (:func:`header_pts_origin`), by ``track.json``: the run ``folder`` is part of
    (:func:`pts_run`), else every run below it that wrote ``.pts`` files (a run's own folder,
    a batch's ``--out``). Empty where none is a crct run's; a ``track.json`` that cannot be
    read is passed over (said where the points are scored by state)."""
    root = Path(folder)
    own = pts_run(root)
    if own is not None:
        runs = [own]
    elif root.is_dir():
        runs = [
            p
            for p in sorted(root.rglob("track.json"))
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
            and any((p.parent / name).is_dir() for name in PTS_FOLDERS)
        ]
    else:
        runs = []
    found: dict[Path, int] = {}
    for track in runs:
        with contextlib.suppress(CrctError):
            found[track] = header_pts_origin(read_track_header(track))
    return found


def read_track_json(path: str | os.PathLike[str]) -> TrackFile:
    """Load a ``crct.track/1`` or ``/2`` file, checking it against the schema.

    Raises :class:`CrctError` naming the file and the first problem (wrong schema, missing
    field, malformed frame, indices out of order).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise CrctError(f"{path}: no such track file") from None
    except OSError as exc:
        raise CrctError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrctError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CrctError(f"{path}: not a crct track file (top level is not an object)")
    schema = data.get("schema")
    if schema not in SCHEMAS:
        raise CrctError(
            f"{path}: not a crct track file (schema {schema!r}, expected one of "
            f"{', '.join(SCHEMAS)})"
        )
    problem = _header_problem(data)
    if problem:
        raise CrctError(f"{path}: {problem}")
    frames_json = data.get("frames")
    if not isinstance(frames_json, list):
        raise CrctError(f"{path}: frames must be a list")
    summary = data.get("summary")
    if not isinstance(summary, dict):
        raise CrctError(f"{path}: summary must be an object")
    frames: list[FrameRecord] = []
    faces: list[FacesRecord] = []
    last = -1
    for i, item in enumerate(frames_json):
        if schema == SCHEMA:
            record = _record_from_json(item, path, i)
            faces.append(FacesRecord(record.index, record.time, [_as_face(record)]))
        else:
            faces.append(_faces_from_json(item, path, i))
            record = faces[-1].face(0)
        if record.index <= last:
            raise CrctError(f"{path}: frames[{i}]: index {record.index} after {last}")
        last = record.index
        frames.append(record)
    header = {k: v for k, v in data.items() if k not in ("frames", "summary")}
    return TrackFile(path=path, header=header, frames=frames, summary=summary, faces=faces)


def _as_face(record: FrameRecord, face_id: int = 0) -> FaceRecord:
    return FaceRecord(face_id, record.box, record.points, record.score, record.state)


def _faces_from_json(item: Any, path: Path, i: int) -> FacesRecord:
    where = f"{path}: frames[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("faces"), list):
        raise CrctError(f"{where}: not an object with a faces list")
    faces = []
    for k, face in enumerate(item["faces"]):
        if not isinstance(face, dict):
            raise CrctError(f"{where}: faces[{k}]: not an object")
        face_id = face.get("face_id")
        if not _is_int(face_id) or face_id < 0:
            raise CrctError(f"{where}: faces[{k}]: face_id must be an integer >= 0")
        record = _record_from_json(
            {"index": item.get("index"), "time": item.get("time"), **face}, path, i
        )
        pose = None
        if face.get("pose") is not None:
            try:
                pose = np.array(pose_values(face["pose"]))
            except (TypeError, ValueError):
                raise CrctError(f"{where}: faces[{k}]: pose must be 6 numbers") from None
        faces.append(dataclasses.replace(_as_face(record, int(face_id)), pose=pose))
    ids = [f.face_id for f in faces]
    if len(set(ids)) != len(ids):
        raise CrctError(f"{where}: a face_id appears twice")
    cut = item.get("cut", False)
    if not isinstance(cut, bool):
        raise CrctError(f"{where}: cut must be true or false")
    if not faces:
        record = _record_from_json(
            {
                "index": item.get("index"),
                "time": item.get("time"),
                "box": None,
                "points": None,
                "score": None,
                "state": "lost",
            },
            path,
            i,
        )
    return FacesRecord(record.index, record.time, faces, cut)


_FRAME_KEYS = ("index", "time", "box", "points", "score", "state")


def _record_from_json(item: Any, path: Path, i: int) -> FrameRecord:
    where = f"{path}: frames[{i}]"
    if not isinstance(item, dict):
        raise CrctError(f"{where}: not an object")
    missing = [k for k in _FRAME_KEYS if k not in item]
    if missing:
        raise CrctError(f"{where}: missing {', '.join(missing)}")
    record = FrameRecord(
        index=item["index"],
        time=item["time"],
        box=item["box"],
        points=item["points"],
        score=item["score"],
        state=item["state"],
    )
    problem = _record_problem(record)
    if problem:
        raise CrctError(f"{where}: {problem}")
    record.time = float(record.time)
    if record.box is not None:
        record.box = np.asarray(record.box, dtype=np.float64)
    if record.points is not None:
        record.points = np.asarray(record.points, dtype=np.float64)
    if record.score is not None:
        record.score = float(record.score)
    return record
