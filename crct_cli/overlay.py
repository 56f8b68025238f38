"""``crct draw``: an overlay video of landmarks already computed, without tracking again.

A batch over an archive runs without ``--overlay`` (encoding a video per video takes time and
disk); the one video that needs a look is drawn afterwards from its ``track.json`` as ``crct
track --overlay`` would have drawn it (from the points as track.json keeps them, to 0.001 px).
``.pts`` folders in the 300-VW layout (a dataset's ground truth, dlib's points, another run's
``annot/``) are drawn beside it, each in its own colour and named in a legend, so two methods
or a method and the truth are compared frame by frame in one picture.

The frames drawn are the run's (its ``--skip-frames`` and ``--max-frames``) unless given; a
``.pts`` file ``000001.pts`` is frame 1, the first decoded frame. Points are drawn where the
files put them (300-VW's files count pixel centres from 1, crct's from 0: one pixel apart).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crct_cli.draw import _text, draw_faces
from crct_cli.errors import CrctError, OptionError
from crct_cli.io.landmarks import read_pts
from crct_cli.io.track_json import FacesRecord, TrackFile, load_track
from crct_cli.io.video import VideoWriter, is_video, iter_frames, probe_video
from crct_cli.pose import default_focal
from crct_cli.tracking.pipeline import FrameRange

#: RGB colours of ``--pts`` folders, in order: none of them a face id's (draw.FACE_COLOURS).
PTS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 40, 40),
    (40, 40, 255),
    (120, 120, 120),
)
PTS_COLOUR_NAMES = ("white", "red", "blue", "grey")
#: the marker a run's folder keeps of the video it tracked (crct_cli.batch.resume.MARKER)
_MARKER = ".crct-input.json"
_NUMBERED = "numbered .pts files (000001.pts ...)"


@dataclass(frozen=True)
class DrawSummary:
    """What :func:`draw_overlay` wrote: ``frames`` drawn, of which ``with_run`` had a record in
    the run's track.json and ``with_pts[i]`` a file in the i-th ``.pts`` folder."""

    out: Path
    video: Path
    frames: int
    with_run: int
    with_pts: tuple[int, ...]


def run_video(track: TrackFile, run_dir: Path) -> Path:
    """The video a run tracked: its header's path (as given to ``crct track``: relative to the
    folder it ran in), else the absolute path its resume marker keeps."""
    recorded = Path(track.video)
    candidates = [recorded]
    marker = run_dir / _MARKER
    if marker.is_file():
        import json

        try:
            path = json.loads(marker.read_text(encoding="utf-8"))["input"]["path"]
            candidates.append(Path(path))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    for path in candidates:
        if path.exists():
            return path
    raise OptionError(
        "video", f"is needed: its video {recorded} is not there any more", where=str(track.path)
    )


def _pts_frames(folder: Path) -> dict[int, Path]:
    """``.pts`` files by frame index from 0 (``000001.pts`` is 0); other names are left out."""
    if not folder.is_dir():
        raise OptionError("pts", f"takes folders of {_NUMBERED}; this is none", where=str(folder))
    frames: dict[int, Path] = {}
    for entry in os.scandir(folder):
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() == ".pts" and stem.isdigit() and int(stem) >= 1:
            frames[int(stem) - 1] = Path(entry.path)
    if not frames:
        raise OptionError("pts", f"takes folders of {_NUMBERED}; here are none", where=str(folder))
    return frames


def draw_points(
    image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], scale: int
) -> None:
    """Small crosses, so that a folder's points stay apart from a run's dots beneath them."""
    for x, y in np.round(points).astype(int):
        cv2.drawMarker(image, (int(x), int(y)), colour, cv2.MARKER_CROSS, 3 * scale + 3, scale)


def draw_legend(image: np.ndarray, names: Sequence[str], scale: int) -> None:
    """The ``--pts`` folders' names in their colours, bottom left."""
    step = 14 * scale
    for i, name in enumerate(names):
        y = image.shape[0] - 8 - step * (len(names) - 1 - i)
        _text(image, f"+ {name}", (8, y), PTS_COLOURS[i % len(PTS_COLOURS)], scale)


def draw_overlay(
    source: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None = None,
    *,
    video: str | os.PathLike[str] | None = None,
    pts: Sequence[str | os.PathLike[str]] = (),
    max_frames: int | None = None,
    skip_frames: int | None = None,
    overwrite: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> DrawSummary:
    """Draw a run (its folder or ``track.json``; None: only ``pts``) and ``.pts`` folders on
    their video into ``out`` (default: the run's ``overlay.mp4``).

    ``video``: the frames to draw on (default: the run's own video); ``max_frames`` and
    ``skip_frames``: which frames (default: the run's). The video is written under a temporary
    name and renamed when complete; an existing ``out`` is refused unless ``overwrite``.
    """
    track = run_dir = None
    if source is not None:
        run_dir = Path(source) if Path(source).is_dir() else Path(source).parent
        track = load_track(source)
    if track is None and not pts:
        raise OptionError("pts", "or a crct track run (its folder) is needed: nothing to draw")
    if video is not None:
        video = Path(video)
    elif track is not None and run_dir is not None:
        video = run_video(track, run_dir)
    else:
        raise OptionError("video", "is needed: without a run, .pts folders have no video")
    if not video.exists():
        raise CrctError(f"{video}: no such video or folder of frames")
    if not video.is_dir() and not is_video(video):
        raise CrctError(f"{video}: not a video (an image sequence is a folder of frames)")
    if out is None:
        if run_dir is None:
            raise OptionError(
                "out", "is needed: without a run, the overlay has no folder (FILE.mp4)"
            )
        out = run_dir / "overlay.mp4"
    out = Path(out)
    if not is_video(out):
        raise OptionError("out", "is the video to write (FILE.mp4)", where=str(out))
    if out.is_dir() or (out.exists() and not overwrite):
        raise OptionError(
            "overwrite",
            "(True) replaces the file already there",
            cli="replaces the file already there",
            where=str(out),
        )
    if out.resolve() == video.resolve():
        raise CrctError(f"{out}: is the video drawn on; write the overlay elsewhere")
    folders = [Path(p) for p in pts]
    pts_frames = [_pts_frames(f) for f in folders]
    names = _legend_names(folders)

    header = track.header if track is not None else {}
    sequence_fps = (header.get("config") or {}).get("sequence_fps")
    info = probe_video(video, sequence_fps)
    if track is not None and (header.get("width"), header.get("height")) != (
        info.width,
        info.height,
    ):
        raise OptionError(
            "video",
            f"is {info.width}x{info.height}, but {track.path} tracked a "
            f"{header.get('width')}x{header.get('height')} video",
            where=str(video),
        )
    span = FrameRange.of(
        header.get("skip_frames", 0) if skip_frames is None else skip_frames,
        header.get("max_frames") if max_frames is None else max_frames,
    )
    skip, count = span.skip, span.count
    records: dict[int, FacesRecord] = {r.index: r for r in track.faces} if track else {}
    focal = (header.get("config") or {}).get("focal_length")
    focal = float(focal) if focal else default_focal(info.width, info.height)
    total = None if info.n_frames is None else max(0, info.n_frames - skip)
    if total is not None and count is not None:
        total = min(total, int(count))

    with_run, with_pts, frames = 0, [0] * len(folders), 0
    with VideoWriter(out, info.fps, info.width, info.height) as writer:
        for frame in iter_frames(video, count, sequence_fps, skip):
            record = records.get(frame.index)
            faces = record.faces if record is not None else []
            with_run += record is not None
            image = draw_faces(frame.image, faces, f"{frame.index + 1}", focal)
            scale = max(1, round(min(image.shape[:2]) / 360))
            for i, files in enumerate(pts_frames):
                path = files.get(frame.index)
                if path is not None:
                    draw_points(image, read_pts(path), PTS_COLOURS[i % len(PTS_COLOURS)], scale)
                    with_pts[i] += 1
            if names:
                draw_legend(image, names, scale)
            writer.write(image)
            frames += 1
            if on_frame is not None:
                on_frame(frames, total)
        if frames == 0:
            raise OptionError("skip_frames", f"is {skip}: no frames after it", where=str(video))
    return DrawSummary(out, video, frames, with_run, tuple(with_pts))


def _legend_names(folders: Sequence[Path]) -> list[str]:
    """A folder's name, or its parent's too where the name alone says nothing (``annot``)."""
    names = []
    for folder in folders:
        parts = folder.resolve().parts
        name = parts[-1] if parts else str(folder)
        if name.lower() in ("annot", "pts", "points") and len(parts) > 1:
            name = f"{parts[-2]}/{name}"
        names.append(name)
    return names


__all__ = ["PTS_COLOURS", "PTS_COLOUR_NAMES", "DrawSummary", "draw_overlay", "run_video"]
