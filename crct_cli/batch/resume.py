"""Resuming a run: which output folders are complete, for this very input and these settings.

``track.json`` is the pipeline's completion marker (written last, renamed into place). Beside
it, after it, a run writes ``.crct-input.json``: the input's path, size and modification time,
the settings that change the points (``--mode``, ``--faces``, thresholds, ``--denoise``...),
the size of the ``track.json`` it describes and the video's result. A folder counts as done
only when both agree with the input on disk and the command being run; anything else (no
marker, a killed run, an edited video, other settings, an overlay or face crops asked for and
missing) is tracked again. Before a video is tracked again its old ``track.json`` is removed
and its marker says the run is unfinished, so a run interrupted at any moment leaves nothing
that looks finished, and the folder is still known as crct's.

The marker also keeps crct from replacing what it did not write (:func:`foreign_outputs`): a
folder with ``annot/`` (or another output) and no marker (a 300-VW sequence's ground truth,
another tool's points) is refused unless ``--overwrite``; crct's own run of another video is
tracked over, with a warning (:func:`other_input`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crct_cli.batch.discover import VideoJob
from crct_cli.errors import CrctError
from crct_cli.io.atomic import write_text_atomic

MARKER = ".crct-input.json"
#: The file a run holds locked in its --out (:func:`crct_cli.batch.runner.exclusive_out`).
LOCK_NAME = ".crct-track.lock"
SCHEMA = "crct.input/1"
TRACK_JSON = "track.json"

#: Why a video is (re)tracked, as :func:`check_done` reports it.
NEW, CHANGED, OTHER_SETTINGS, NO_OVERLAY = "new", "changed", "other settings", "no overlay"
NO_CROPS = "no crops of that size"
NO_PTS = "no .pts files"
INCOMPLETE = "outputs removed since"


def output_files(out_dir: Path) -> dict[str, int]:
    """What a run left in ``out_dir``: the files under annot/, faces/ and crops/ (counted from
    the directory entries, no stat a file: an archive's resume stays quick) and the bytes of
    landmarks.csv. The marker records it; a folder whose files were deleted since (a .pts, a
    whole annot/, the CSV) is not taken as done."""
    counts: dict[str, int] = {}
    for name in ("annot", "faces", "crops"):
        folder = out_dir / name
        if folder.is_dir():
            counts[name] = _entries(folder)
    with contextlib.suppress(OSError):
        counts["landmarks.csv"] = (out_dir / "landmarks.csv").stat().st_size
    return counts


def _files_removed(out_dir: Path, recorded: dict[str, int]) -> bool:
    """Whether files the run wrote are gone: a folder with fewer files than it left (more is
    fine: a viewer's .DS_Store or Thumbs.db, an SMB share's ._ files), or a landmarks.csv
    of another size; a folder that cannot be read counts as gone (it is tracked again)."""
    try:
        now = output_files(out_dir)
    except OSError:
        return True
    for name, count in recorded.items():
        if name == "landmarks.csv":
            if now.get(name) != count:
                return True
        elif now.get(name, 0) < count:
            return True
    return False


def _entries(folder: Path) -> int:
    """Files under ``folder``, at any depth (faces/<id>/annot/...)."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            total += _entries(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else 1
    return total


@dataclass(frozen=True)
class Done:
    """An output folder's marker: the result of the run that completed it."""

    status: str
    frames: int
    faces: int
    face_frames: int
    seconds: float
    missing_frames: int = 0  #: frames the file's header promised that never decoded
    rotate: int = 0  #: the clockwise quarter turn the frames were read in
    cuts: int = 0  #: frames that start a new shot
    warnings: tuple[str, ...] = ()  #: what the reader warned of (a damaged frame passed over)


def input_stamp(video: Path) -> dict[str, int]:
    """What tells an edited or replaced video from the one tracked: size and mtime (ns); for
    an image sequence, its images' (:func:`crct_cli.io.sequence.stamp`)."""
    if video.is_dir():
        from crct_cli.io.sequence import stamp

        return stamp(video)
    st = video.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_done(
    job: VideoJob, settings: dict[str, Any], overlay: bool, crops: int = 0, pts: bool = True
) -> Done | str:
    """The earlier result when ``job``'s outputs are complete for this input and these
    settings, else why not (:data:`NEW`, :data:`CHANGED`, :data:`OTHER_SETTINGS`,
    :data:`NO_OVERLAY`, :data:`NO_PTS`: ``pts`` asked for and the run wrote none,
    :data:`NO_CROPS`: ``crops`` px face crops asked for, and the run wrote
    none or another size, :data:`INCOMPLETE`: files it wrote are gone)."""
    track_json = job.out_dir / TRACK_JSON
    try:
        marker = json.loads((job.out_dir / MARKER).read_text(encoding="utf-8"))
        track_bytes = track_json.stat().st_size
        stamp = input_stamp(job.source)
    except (OSError, ValueError):
        return NEW
    try:
        if marker.get("schema") != SCHEMA or marker["track_json_bytes"] != track_bytes:
            return NEW  # the track.json beside it is not the one this marker describes
        if {k: marker["input"].get(k) for k in stamp} != stamp:
            return CHANGED
        if _canonical(marker["settings"]) != _canonical(settings):
            return OTHER_SETTINGS
        if overlay and not (job.out_dir / "overlay.mp4").is_file():
            return NO_OVERLAY
        if crops and marker.get("crops", 0) != crops:
            return NO_CROPS
        if pts and not marker.get("pts", True):
            return NO_PTS
        files = marker.get("files")  # markers before session 51 have none: taken as they are
        if files is not None and _files_removed(job.out_dir, files):
            return INCOMPLETE
        result = marker["result"]
        return Done(
            str(result["status"]),
            int(result["frames"]),
            int(result["faces"]),
            int(result["face_frames"]),
            float(result["seconds"]),
            int(result.get("missing_frames", 0)),  # markers before session 50 have neither
            int(result.get("rotate", 0)),
            int(result.get("cuts", 0)),  # markers before session 53 have none
            tuple(str(w) for w in result.get("warnings", ())),  # nor before session 54
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return NEW


#: What a run writes into a video's folder, and would replace there.
OUTPUT_NAMES: tuple[str, ...] = (
    "annot",
    "faces",
    "crops",
    TRACK_JSON,
    "landmarks.csv",
    "overlay.mp4",
)


#: What a run leaves while it writes (crct once removed its marker before tracking again, so a
#: folder such a run was stopped in has these and no marker).
PARTIAL_NAMES: tuple[str, ...] = (".annot.partial", ".faces.partial", ".track.partial.json")


def input_name(job: VideoJob) -> str:
    """The input's own name, however it was typed (``.`` for a sequence is its folder's)."""
    return Path(os.path.abspath(job.source)).name


def _holds(path: Path) -> bool:
    """A file, or a folder with something in it (an empty one loses nothing)."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def foreign_outputs(job: VideoJob, flags: bool = True) -> str | None:
    """Why tracking ``job`` would replace files crct did not write (one line that names
    ``--overwrite``; ``flags`` off: Python's ``overwrite=True``), else None: outputs in its
    folder without crct's marker (nor the partial files of a crct run stopped there)."""
    present = [name for name in OUTPUT_NAMES if _holds(job.out_dir / name)]
    if not present or (job.out_dir / MARKER).exists():
        return None
    if any((job.out_dir / name).exists() for name in PARTIAL_NAMES):
        return None  # a run of crct stopped there
    listed = ", ".join(f"{name}/" if (job.out_dir / name).is_dir() else name for name in present)
    how = (
        "--overwrite replaces them, or choose another --out"
        if flags
        else "overwrite=True replaces them, or choose another out folder"
    )
    if _live_session(job.out_dir / "track.json"):
        return f"{job.out_dir} holds a crct live session ({listed}; {how})"
    return f"{job.out_dir} holds {listed} that crct did not write ({how})"


def _live_session(path: Path) -> bool:
    """Whether ``path`` is the track.json of a ``crct live`` session (crct wrote it, though
    without the marker of a ``crct track`` run)."""
    from crct_cli.io.track_json import read_track_header

    if not path.is_file():
        return False
    try:
        return read_track_header(path).get("live") is True
    except CrctError:
        return False


def other_input(job: VideoJob) -> str | None:
    """The input of the crct run ``job``'s folder holds when that is another one, else None:
    a folder reused for another video is tracked over, said in a warning. Another one: another
    name, or the same name at another path with other contents (300-VW names every video
    ``vid.avi``); a video moved, or copied as it was, is the same one."""
    try:
        marker = json.loads((job.out_dir / MARKER).read_text(encoding="utf-8"))
        given = marker["input"]
        before = str(given["path"])
        name = str(given.get("name") or Path(before).name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if name in ("", ".", ".."):  # a marker written before names were kept: not known
        return None
    if name != input_name(job):
        return before
    if os.path.abspath(before) == os.path.abspath(job.source):
        return None  # this very file, perhaps edited since: tracked again without a word
    try:
        now = input_stamp(job.source)
    except (OSError, CrctError):
        return None
    recorded = {k: given[k] for k in now if k in given}
    return before if recorded and recorded != {k: now[k] for k in recorded} else None


def clear_done(job: VideoJob) -> None:
    """Make an output folder look unfinished before it is tracked again, still marked as
    crct's for this video (:func:`foreign_outputs`). A file where the folder goes is left for
    the tracking to report."""
    if not job.out_dir.exists():
        job.out_dir.mkdir(parents=True, exist_ok=True)
    if not job.out_dir.is_dir():
        return
    try:
        os.unlink(job.out_dir / TRACK_JSON)
    except FileNotFoundError:
        pass
    unfinished = {
        "schema": SCHEMA,
        "input": {"path": job.label, "name": input_name(job)},
        "unfinished": True,
    }
    write_text_atomic(job.out_dir / MARKER, json.dumps(unfinished, indent=1) + "\n")


def held_by(folder: Path) -> str | None:
    """Who holds ``folder``'s run lock (another crct track writing into it), or None: a lock
    file left by a run killed with -9 is not held."""
    path = folder / LOCK_NAME
    if not path.is_file():
        return None
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks to ask
        return None
    try:
        with path.open("r", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return handle.read().strip() or "another process"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def inside_other_run(job: VideoJob) -> str | None:
    """Why ``job`` must not be written: a folder of its output below the run's --out (a
    run of ``crct track ... --out OUT/sub`` started before this one's ``--out OUT``) is held
    by another run, which writes it; or None."""
    depth = 0 if job.output == "." else len(Path(job.output).parts)
    folder = job.out_dir
    for _ in range(depth):
        holder = held_by(folder)
        if holder is not None:
            return f"{job.label}: {folder} is being written by another crct track run ({holder})"
        folder = folder.parent
    return None


def first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (what making it
    creates), or None when it exists."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def forget_failed(job: VideoJob, made: Path | None) -> None:
    """A video that failed in a folder made for it leaves no folder behind: only the marker
    :func:`clear_done` wrote is there (a bad file fails before anything is written), so the
    folder goes, and the empty folders above it up to ``made`` (:func:`first_missing` before
    it was made). A folder that holds anything else (an earlier run's files) is kept."""
    if made is None:
        return
    try:
        if [entry.name for entry in os.scandir(job.out_dir)] != [MARKER]:
            return
        os.unlink(job.out_dir / MARKER)
        folder = job.out_dir
        while True:
            os.rmdir(folder)  # fails on a folder another video has written into: kept
            if folder == made or folder.parent == folder:
                return
            folder = folder.parent
    except OSError:
        pass  # not there, or not ours to tidy: leave it


def mark_done(
    job: VideoJob,
    stamp: dict[str, int],
    settings: dict[str, Any],
    result: Done,
    crops: int = 0,
    pts: bool = True,
) -> None:
    """Write the marker after ``track.json``; ``stamp`` is the input as it was when read,
    ``crops`` the size of the face crops written (0: none), ``pts`` whether annot/ was."""
    marker = {
        "schema": SCHEMA,
        "input": {"path": job.label, "name": input_name(job), **stamp},
        "settings": settings,
        "crops": crops,
        "pts": pts,
        "track_json_bytes": (job.out_dir / TRACK_JSON).stat().st_size,
        "files": output_files(job.out_dir),
        "result": {
            "status": result.status,
            "frames": result.frames,
            "faces": result.faces,
            "face_frames": result.face_frames,
            "seconds": round(result.seconds, 3),
            "missing_frames": result.missing_frames,
            "rotate": result.rotate,
            "cuts": result.cuts,
            "warnings": list(result.warnings),
        },
    }
    write_text_atomic(job.out_dir / MARKER, json.dumps(marker, indent=1, default=str) + "\n")
