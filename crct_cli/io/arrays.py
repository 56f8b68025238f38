"""Frames handed over in memory, read like a video: ``Tracker.track(frames)``.

Users who decode with their own library (decord, imageio, OpenCV's capture, a dataset loader)
hold frames as numpy arrays; ``Tracker.step`` takes them one at a time but answers each at
once, so it cannot look ahead or back. Turned into :class:`crct_cli.io.video.Frame` records
here, they go through everything ``track`` does for a file (backfill, the two-sided filter,
backtracking, the temporal denoiser). Their times are ``index / fps``, as a folder of frames'.
They are read on the caller's thread (a file is decoded in a thread of its own): a source bound
to its thread (a database cursor, some camera APIs) works as it is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from crct_cli.errors import CrctError
from crct_cli.io.video import Frame

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing's own from Python 3.13


def is_frame_source(video: object) -> TypeIs[np.ndarray | Iterable[np.ndarray]]:
    """Frames in memory (an array or an iterable of arrays), not a path to decode."""
    return not isinstance(video, (str, bytes)) and not hasattr(video, "__fspath__")


def iter_arrays(
    frames: Iterable[Any] | np.ndarray,
    fps: float,
    check: Callable[[Any], np.ndarray],
    max_frames: int | None = None,
    skip: int = 0,
) -> Generator[Frame, None, None]:
    """``frames`` (a (T, H, W, C) array or an iterable of (H, W[, C]) arrays) as decoded
    frames, each checked and copied by ``check`` (a capture loop may reuse one buffer); the
    first ``skip`` passed over and at most ``max_frames`` after them, numbered as in the input.
    Every frame must have the first one's size, as a video's do."""
    if isinstance(frames, np.ndarray) and not (
        frames.ndim == 4 or (frames.ndim == 3 and frames.shape[2] not in (3, 4))
    ):
        raise CrctError(
            "frames in memory are a (frames, H, W, 3) array, a grey (frames, H, W) one or an "
            f"iterable of (H, W, 3) arrays, got an array of shape {frames.shape} (one image: "
            "step() or align())"
        )
    try:
        source = iter(frames)
    except TypeError:
        raise CrctError(
            f"track() takes a video's path or its frames, got {type(frames).__name__}"
        ) from None
    if max_frames is not None:  # never asks the source for a frame more (a camera would wait)
        source = itertools.islice(source, skip + max_frames)
    size: tuple[int, int] | None = None
    for index, array in enumerate(source):
        if index < skip:
            continue
        try:
            image = check(array)
            if not isinstance(array, np.ndarray) or np.may_share_memory(image, array):
                image = image.copy()  # a grey or RGBA frame was already made anew by check
        except CrctError as exc:
            raise CrctError(f"frame {index}: {exc}") from None
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise CrctError(
                f"frame {index}: {image.shape[1]}x{image.shape[0]}, but frame {skip} was "
                f"{size[1]}x{size[0]} (the frames of one video have one size)"
            )
        yield Frame(index=index, time=index / fps, image=image)
    if size is None:
        raise CrctError(
            "no frames to track" if skip == 0 else f"no frames after skip_frames={skip}"
        )
