"""Dataset layouts: 300-W / Menpo image folders and 300-VW video sequences.

300-W / Menpo: any folder tree where an image and its ``.pts`` share a stem side by side
(``indoor_001.png`` + ``indoor_001.pts``).

300-VW: ``ROOT/NNN/vid.avi`` (or ``vid.mp4``) with ``ROOT/NNN/annot/000001.pts``, ... one file
per frame, numbered from 1 in decoding order (frame ``k`` of the file is
:attr:`crct_cli.io.video.Frame.index` ``k - 1``). crct writes its own tracking output in the
same layout, so a result folder can be scored like the ground truth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crct_cli.errors import CrctError
from crct_cli.io.images import is_image
from crct_cli.io.landmarks import read_pts
from crct_cli.io.video import VIDEO_SUFFIXES

#: Video file names of a 300-VW sequence folder, in order of preference.
SEQUENCE_VIDEO_NAMES: tuple[str, ...] = ("vid.avi", "vid.mp4") + tuple(
    f"vid{s}" for s in VIDEO_SUFFIXES if s not in (".avi", ".mp4")
)

#: Name of the per-frame annotation folder inside a sequence (or a crct output folder).
ANNOT_DIR = "annot"


def _is_hidden(path: Path, root: Path) -> bool:
    """Dot-files and dot-folders (temporary ``.x.partial.png`` files, ``.git``) are skipped."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _require_dir(root: Path, what: str) -> None:
    if not root.exists():
        raise CrctError(f"{root}: no such {what} folder")
    if not root.is_dir():
        raise CrctError(f"{root}: not a folder")


def _pts_for(image: Path) -> Path | None:
    for suffix in (".pts", ".PTS"):
        candidate = image.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _scan_images(root: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    _require_dir(root, "dataset")
    pairs: list[tuple[Path, Path]] = []
    unpaired: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or not is_image(path):
                continue
            pts = _pts_for(path)
            if pts is None:
                unpaired.append(path)
            else:
                pairs.append((path, pts))
    pairs.sort(key=lambda pair: pair[0])
    unpaired.sort()
    return pairs, unpaired


def find_image_pts_pairs(root: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """All (image, ``.pts``) pairs under ``root``, recursively, sorted by image path.

    An image pairs with the ``.pts`` of the same stem in the same folder; images without
    one are skipped (see :func:`find_images_without_pts`). Hidden files and folders are
    ignored. Raises :class:`CrctError` when ``root`` is not a folder.
    """
    return _scan_images(Path(root))[0]


def find_images_without_pts(root: str | os.PathLike[str]) -> list[Path]:
    """Images under ``root`` that :func:`find_image_pts_pairs` skips for lack of a ``.pts``."""
    return _scan_images(Path(root))[1]


@dataclass
class VideoSequence:
    """One 300-VW sequence: its name (``"001"``), video file and annotation folder, if any."""

    name: str
    video: Path
    annot_dir: Path | None


def _natural_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdecimal() else (1, name)


def _sequence_video(folder: Path) -> Path | None:
    for name in SEQUENCE_VIDEO_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _looks_like_sequence(folder: Path) -> bool:
    """A numbered folder, or any folder holding ``vid.*`` or ``annot/``."""
    return (
        folder.name.isdecimal()
        or _sequence_video(folder) is not None
        or (folder / ANNOT_DIR).is_dir()
    )


def _make_sequence(folder: Path) -> VideoSequence:
    video = _sequence_video(folder)
    if video is None:
        raise CrctError(
            f"{folder}: 300-VW sequence folder without a video (expected vid.avi or vid.mp4)"
        )
    annot = folder / ANNOT_DIR
    return VideoSequence(name=folder.name, video=video, annot_dir=annot if annot.is_dir() else None)


def find_300vw_sequences(
    root: str | os.PathLike[str], names: Sequence[str] | None = None
) -> tuple[list[VideoSequence], list[str]]:
    """Sequences of a 300-VW style tree, and the requested names that are not there.

    With ``names`` (e.g. the 300-VW category lists ``["114", "124", ...]``; ``"1"`` also finds
    ``001``), only those are returned, in the given order, and the absent ones are listed
    rather than fatal. Without, every sequence folder under ``root`` is returned in numeric
    order; then ``root`` may also be a single sequence folder (one that holds ``vid.*``).

    Raises :class:`CrctError` for a bad layout: ``root`` missing or not a folder, a sequence
    folder without a video, or (without ``names``) no sequence at all.
    """
    root = Path(root)
    _require_dir(root, "300-VW")
    if names is None and _sequence_video(root) is not None:
        return [_make_sequence(root)], []
    if names is not None:
        found: list[VideoSequence] = []
        missing: list[str] = []
        for name in names:
            folder = root / str(name)
            if not folder.is_dir() and str(name).isdecimal():
                folder = root / str(name).zfill(3)
            if folder.is_dir():
                found.append(_make_sequence(folder))
            else:
                missing.append(str(name))
        return found, missing
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: _natural_key(p.name),
    )
    sequences = [_make_sequence(p) for p in folders if _looks_like_sequence(p)]
    if not sequences:
        raise CrctError(f"{root}: no 300-VW sequences found (expected NNN/vid.avi or NNN/vid.mp4)")
    return sequences, []


_FRAME_PTS = re.compile(r"^(\d+)\.pts$", re.IGNORECASE)


def annotation_filename(frame_number: int) -> str:
    """300-VW file name of a frame numbered from 1: ``1 -> "000001.pts"``."""
    if frame_number < 1:
        raise ValueError(f"300-VW frames are numbered from 1, got {frame_number}")
    return f"{frame_number:06d}.pts"


def read_annotations(
    annot_dir: str | os.PathLike[str], origin: float = 0.0
) -> dict[int, np.ndarray]:
    """Read every ``NNNNNN.pts`` of a 300-VW annot folder: frame number (from 1) -> (68, 2).

    Frames without a file are simply absent from the dict. Other files are ignored; a
    ``.pts`` whose name is not a frame number, a frame 0, two files for one frame or a
    malformed file raise :class:`CrctError` naming the file.
    """
    annot_dir = Path(annot_dir)
    _require_dir(annot_dir, "annotation")
    result: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    for path in sorted(annot_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".pts":
            continue
        match = _FRAME_PTS.match(path.name)
        if match is None:
            raise CrctError(f"{path}: not a frame number (expected e.g. 000001.pts)")
        number = int(match.group(1))
        if number < 1:
            raise CrctError(f"{path}: 300-VW frames are numbered from 1")
        if number in result:
            raise CrctError(f"{path}: frame {number} is annotated twice (also {names[number]})")
        result[number] = read_pts(path) - origin
        names[number] = path.name
    return dict(sorted(result.items()))
