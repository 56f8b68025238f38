"""Image sequences: a folder of frames read as one video (``crct track FRAMES/``).

Face datasets often come as one image per frame (CK+, BP4D, 300-VW's extracted frames), and
OpenFace reads such folders too. A folder that holds images and no video file is a sequence:
its images, in the natural order of their names (``frame2.png`` before ``frame10.png``), are
the frames, ``index`` counting from 0 in that order and ``time`` ``index / fps``. The folder
stores no frame rate, so it is given one (:data:`SEQUENCE_FPS`, ``crct track --sequence-fps``); it
sets the ``time`` written beside each frame and the seconds the smoothing and the look-ahead
count in. Every frame must have the first one's size: an image of another size stops that
sequence with one line naming the file. An image that cannot be read (damaged, cut short) is
passed over with a warning, as a video's damaged frame is: its frame number stays a gap, and
the frames after it keep theirs.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from crct_cli.errors import CrctError, OptionError, option_error
from crct_cli.io.images import UnreadableImage, is_image, read_deep_image

if TYPE_CHECKING:  # PyAV stays unloaded until a video is read (``import crct_cli`` is light)
    from crct_cli.io.video import Frame, VideoInfo

log = logging.getLogger(__name__)

#: Frames a second given to an image sequence when none is said (OpenFace's for image folders).
SEQUENCE_FPS = 30.0


def check_fps(fps: float, error: type[Exception] = CrctError) -> None:
    """``--sequence-fps`` is a positive, finite number of frames a second."""
    if not (0 < fps < math.inf):
        raise option_error(
            error, "sequence_fps", f"must be a positive number of frames a second, got {fps}"
        )


def skip_error(path: Path, skip: int, there: str) -> OptionError:
    """``skip_frames`` / ``--skip-frames`` passes over every frame ``path`` has (``there``
    says how many)."""
    return OptionError(
        "skip_frames", f"is {skip}, but {there}", cli=f"{skip}, but {there}", where=str(path)
    )


def _rate(fps: float | None) -> float:
    rate = SEQUENCE_FPS if fps is None else float(fps)
    check_fps(rate)
    return rate


def _natural_key(name: str) -> list[int | str]:
    """``frame10`` after ``frame9``: runs of digits compare as numbers."""
    return [int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", name.casefold())]


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return [e for e in os.scandir(folder) if not e.name.startswith(".")]
    except OSError as exc:
        raise CrctError(f"{folder}: cannot list this folder ({exc.strerror})") from None


def sequence_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The images directly in ``folder`` (hidden files skipped), in natural name order."""
    folder = Path(folder)
    images = [Path(e.path) for e in _entries(folder) if is_image(e.name) and e.is_file()]
    return sorted(images, key=lambda p: _natural_key(p.name))


def _images_or_error(folder: Path) -> list[Path]:
    images = sequence_images(folder)
    if not images:
        raise CrctError(f"{folder}: no images in this folder to read as an image sequence")
    return images


def _first_readable(folder: Path, images: list[Path]) -> tuple[tuple[int, ...], float | None]:
    """The shape of the first image that can be read (the sequence's size) and the value read
    as white in it (how deep every frame is read)."""
    for path in images:
        try:
            image, white = read_deep_image(path)
        except UnreadableImage:
            continue
        return image.shape, white
    raise CrctError(f"{folder}: none of its {len(images)} images can be read (corrupt?)")


def probe_sequence(folder: str | os.PathLike[str], fps: float | None = None) -> VideoInfo:
    """A sequence's :class:`VideoInfo`: the first readable image's size, the count of images."""
    from crct_cli.io.video import VideoInfo

    folder = Path(folder)
    fps = _rate(fps)
    images = _images_or_error(folder)
    height, width = _first_readable(folder, images)[0][:2]
    return VideoInfo(
        path=folder,
        width=int(width),
        height=int(height),
        fps=fps,
        n_frames=len(images),
        rotation=0,
        duration=len(images) / fps,
    )


def iter_sequence(
    folder: str | os.PathLike[str],
    max_frames: int | None = None,
    fps: float | None = None,
    skip: int = 0,
) -> Iterator[Frame]:
    """The frames of an image sequence, one image read at a time; ``skip``: the first
    images are not read, the others keep their frame numbers."""
    from crct_cli.io.video import Frame

    folder = Path(folder)
    fps = _rate(fps)
    images = _images_or_error(folder)
    if skip and skip >= len(images):
        count = len(images)
        raise skip_error(folder, skip, f"the sequence has {count} images")
    stop = None if max_frames is None else skip + max(0, max_frames)
    # every frame the size of the first image, the one the header gives, also after a skip,
    # and as deep (the value read as white: a 12-bit camera's frames alike)
    size: tuple[int, ...] | None = None
    white: float | None = None
    if skip:
        size, white = _first_readable(folder, images)
    for index, path in enumerate(images[:stop]):
        if index < skip:
            continue
        try:
            image, white = read_deep_image(path, white)
        except UnreadableImage as exc:  # a damaged frame: passed over, its number a gap
            log.warning("%s; frame %d passed over", exc, index + 1)
            continue
        if size is None:
            size = image.shape
        elif image.shape != size:
            raise CrctError(
                f"{path}: {image.shape[1]}x{image.shape[0]}, but the sequence's first image "
                f"is {size[1]}x{size[0]} (the frames of one sequence share a size; for "
                "separate photographs, crct align)"
            )
        yield Frame(index=index, time=index / fps, image=image)


def stamp(folder: str | os.PathLike[str]) -> dict[str, int]:
    """What tells an edited sequence from the one tracked: the images' count, total bytes,
    and the newest modification time among them and the folder (an image added or removed)."""
    folder = Path(folder)
    images = sequence_images(folder)
    stats = [p.stat() for p in images]
    newest = max([folder.stat().st_mtime_ns, *(s.st_mtime_ns for s in stats)])
    return {"size": sum(s.st_size for s in stats), "mtime_ns": newest, "images": len(images)}
