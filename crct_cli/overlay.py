"""``crct draw``: an overlay video of landmarks already computed, without tracking again.

A batch over an archive runs without ``--overlay`` (encoding a video per video takes time and
disk); the one video that needs a look is drawn afterwards from its ``track.json`` as ``crct
track --overlay`` would have drawn it (from the points as track.json keeps them, to 0.001 px).
``.pts`` folders in the 300-VW layout (a dataset's ground truth, dlib's points, another run's
``annot/``) are drawn beside it, each in its own colour and named in a legend, so two methods
or a method and the truth are compared frame by frame in one picture.

The frames drawn are the run's (its ``--skip-frames`` and ``--max-frames``) unless given, as
decoded (``--overlay`` draws on the frames after ``--temporal-denoise``, which are cleaner where
the video is noisy). A ``.pts`` file ``000001.pts`` is the first frame (``000000.pts`` in the
folder: numbered from 0); for a folder of frames, a ``.pts`` file named as an image goes with
that image. Points are drawn where the files put them (300-VW's files count pixel centres
from 1, crct's from 0: one pixel apart).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crct_cli.batch.discover import OUTPUT_MARKERS
from crct_cli.draw import _text, draw_faces
from crct_cli.errors import CrctError, OptionError
from crct_cli.io.landmarks import read_pts
from crct_cli.io.sequence import sequence_images
from crct_cli.io.track_json import (
    FacesRecord,
    TrackFile,
    header_pts_origin,
    load_track,
    pts_run,
    read_track_header,
)
from crct_cli.io.video import (
    VideoInfo,
    VideoWriter,
    count_packet_frames,
    is_video,
    is_writable_video,
    iter_frames,
    probe_video,
)
from crct_cli.pose import default_focal
from crct_cli.tracking.orientation import ROTATIONS, turn_frames, turned_size
from crct_cli.tracking.pipeline import OVERLAY, FrameRange

#: RGB colours of ``--pts`` folders, in order: none of them a face id's (draw.FACE_COLOURS).
#: Light enough to read on the legend's dark band.
PTS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 80, 80),
    (100, 150, 255),
    (170, 170, 170),
    (215, 165, 95),
    (255, 150, 220),
)
PTS_COLOUR_NAMES = ("white", "red", "blue", "grey", "tan", "pink")
#: after the six colours, the same colours again in these shapes
PTS_MARKERS = (
    ("crosses", cv2.MARKER_CROSS),
    ("x", cv2.MARKER_TILTED_CROSS),
    ("diamonds", cv2.MARKER_DIAMOND),
    ("squares", cv2.MARKER_SQUARE),
)


def pts_style(i: int) -> tuple[tuple[int, int, int], int, str]:
    """The i-th ``--pts`` folder's colour, marker and name (``white``, ..., ``white x``)."""
    colour = i % len(PTS_COLOURS)
    shape = (i // len(PTS_COLOURS)) % len(PTS_MARKERS)
    name = PTS_COLOUR_NAMES[colour] + ("" if shape == 0 else f" {PTS_MARKERS[shape][0]}")
    return PTS_COLOURS[colour], PTS_MARKERS[shape][1], name


#: the marker a run's folder keeps of the video it tracked (crct_cli.batch.resume.MARKER)
_MARKER = ".crct-input.json"
_NUMBERED = "numbered .pts files (000001.pts ...)"
#: folder names that say nothing alone in a legend (``faces/1/annot``: three parts)
_GENERIC = {"annot", "pts", "points", "landmarks"}


@dataclass(frozen=True)
class DrawSummary:
    """What :func:`draw_overlay` wrote: ``frames`` drawn, of which ``with_run`` had a record in
    the run's track.json and ``with_pts[i]`` a file in the i-th ``.pts`` folder; ``bad_pts``:
    the files that could not be read (left out, the others drawn)."""

    out: Path
    video: Path
    frames: int
    with_run: int
    with_pts: tuple[int, ...]
    bad_pts: tuple[str, ...] = ()


def _marker_input(run_dir: Path) -> dict:
    import json

    try:
        found = json.loads((run_dir / _MARKER).read_text(encoding="utf-8"))["input"]
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _bytes(path: Path) -> int:
    """A file's bytes, or a folder of frames' images' (as the resume marker counts them)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in sequence_images(path))
    return path.stat().st_size


def _differs(path: Path, track: TrackFile, size: int | None) -> str | None:
    """How ``path`` differs from the video ``track`` was made from (None: it can be that
    video): its frame size, rate and count as the header says, and its bytes as the resume
    marker counted them."""
    try:
        if size is not None and (found := _bytes(path)) != size:
            return f"has {found} bytes, but the run's video had {size}"
        info = _counted(probe_video(path, _sequence_fps(track.header)), track.header)
        return _mismatch(_turned(info, track.header), track.header, _run_length(track))
    except (CrctError, OSError) as exc:
        return str(exc)


def _sequence_fps(header: dict) -> float | None:
    return (header.get("config") or {}).get("sequence_fps")


def _rotation(header: dict) -> int:
    """The clockwise quarter turn the run gave its frames (``--rotate``; 0 before it)."""
    angle = header.get("rotate", 0)
    return angle if isinstance(angle, int) and angle in ROTATIONS else 0


def _turned(info: VideoInfo, header: dict) -> VideoInfo:
    """``info`` with the frame size of the frames the run read (turned by ``--rotate``)."""
    width, height = turned_size(info.width, info.height, _rotation(header))
    return dataclasses.replace(info, width=width, height=height)


def _run_length(track: TrackFile) -> int | None:
    """The frames the run's video had, where the run read it to its end (no ``max_frames``, or
    fewer frames written than it): those it passed over and those it wrote. A video whose
    container declares no count is checked by this one."""
    written = track.summary.get("frames_written")
    asked = track.header.get("max_frames")
    skipped = track.header.get("skip_frames", 0)
    if not isinstance(written, int) or not isinstance(skipped, int):
        return None
    if isinstance(asked, int) and written >= asked:  # it stopped where told, maybe before the end
        return None
    if track.header.get("live") and track.summary.get("ended") != "end of stream":
        return None  # a crct live session stopped before its file's end (keys, Ctrl-C, a count)
    return skipped + written


def _counted(info: VideoInfo, header: dict) -> VideoInfo:
    """``info`` with the frames its packets show where neither it nor the run's header
    declares a count (Matroska, WebM), so a same-sized other video is told apart before it
    is decoded."""
    if info.n_frames is not None or header.get("n_frames") is not None or info.path.is_dir():
        return info
    st = info.path.stat()
    count = _packet_count(str(info.path.resolve()), st.st_size, st.st_mtime_ns)
    return dataclasses.replace(info, n_frames=count)


@functools.lru_cache(maxsize=16)
def _packet_count(path: str, size: int, mtime_ns: int) -> int | None:
    """:func:`count_packet_frames` once per version of a file (size and time of change): a
    found video is counted when it is chosen and again before it is drawn."""
    return count_packet_frames(path)


def _mismatch(info: VideoInfo, header: dict, length: int | None = None) -> str | None:
    """How a video differs from the one a track.json header describes (None: it does not);
    ``length``: the frames the run read (:func:`_run_length`) where its header declares none."""
    ours = (info.width, info.height)
    if ours != (header.get("width"), header.get("height")):
        angle = _rotation(header)
        turned = f" once turned {angle} degrees as the run turned it" if angle else ""
        return (
            f"is {ours[0]}x{ours[1]}{turned}, but the run tracked a "
            f"{header['width']}x{header['height']} video"
        )
    frames = header.get("n_frames")
    if frames is not None and info.n_frames is not None and frames != info.n_frames:
        return f"has {info.n_frames} frames, but the run's video had {frames}"
    if frames is None and length is not None and info.n_frames not in (None, length):
        return f"has {info.n_frames} frames, but the run's video had {length}"
    fps = header.get("fps")
    if fps and abs(info.fps - float(fps)) > 1e-3 * float(fps):
        return f"runs at {info.fps:.3f} fps, but the run's video at {float(fps):.3f}"
    return None


def run_video(track: TrackFile, run_dir: Path) -> Path:
    """The video a run tracked, found where it was and checked to be the same video: the
    absolute path the header keeps (runs of session 46 on), the path as given to ``crct track``
    (relative to the folder it ran in, tried from here and from the run's folder's parent) and
    the resume marker's. A file of the same name that is not that video is never taken."""
    given = track.header.get("video_resolved")
    recorded = Path(track.video)
    marker = _marker_input(run_dir)
    size = marker.get("size") if isinstance(marker.get("size"), int) else None
    candidates = [Path(given)] if isinstance(given, str) else []
    candidates.append(recorded)
    if not recorded.is_absolute():
        candidates.append(run_dir.parent / recorded)
    if isinstance(marker.get("path"), str):
        candidates.append(Path(marker["path"]))
    why = None
    for path in dict.fromkeys(candidates):  # each place once
        if path.exists():
            differs = _differs(path, track, size)
            if differs is None:
                return path
            why = why or (path, differs)
    if why is not None:
        raise _not_the_runs(why[0], track, why[1], given=False)
    raise OptionError(
        "video", f"is needed: {recorded}, the video it tracked, is not found", where=str(track.path)
    )


def _not_the_runs(video: Path, track: TrackFile, why: str, *, given: bool) -> OptionError:
    """A video that is not the one the run tracked: given (``video=``), or found by the run."""
    if given:
        return OptionError("video", f"{why} ({track.path})", where=str(video))
    return OptionError(
        "video",
        f"is needed: {video} is not the video the run tracked ({why})",
        where=str(track.path),
    )


def _numbered(stem: str) -> int | None:
    return int(stem) if stem.isdecimal() else None


def _crct_annot(folder: Path) -> bool:
    """A crct track run's own ``annot/`` (``RUN/annot``, ``RUN/faces/<id>/annot``): numbered by
    frame, whatever its images are called."""
    if folder.name != "annot":
        return False
    run = folder.parent
    if run.parent.name == "faces":
        run = run.parent.parent
    return (run / "track.json").is_file()


def _run_origin(folder: Path) -> int:
    """The coordinate a crct track run's own ``.pts`` folder gives the first pixel's centre, as
    its track.json records it (``--pts-origin``), so that its points are drawn where the run
    put them; 0 for any other folder (drawn as written)."""
    run = pts_run(folder)
    if run is None:
        return 0
    try:
        return header_pts_origin(read_track_header(run))
    except CrctError:
        return 0


def _pts_frames(folder: Path, images: Sequence[Path] | None) -> dict[int, Path]:
    """A folder's ``.pts`` files by frame index: for a folder of frames, each file by its
    image's name where they share names (a gap in the images keeps them paired), except in a
    crct run's own ``annot/``; else by number, ``000001.pts`` the first frame (``000000.pts``
    there: numbered from 0)."""
    if not folder.is_dir():
        why = "no such folder" if not folder.exists() else "not a folder"
        raise OptionError("pts", f"takes folders of {_NUMBERED}: {why}", where=str(folder))
    files = {
        Path(e.name).stem: Path(e.path)
        for e in os.scandir(folder)
        if e.name.lower().endswith(".pts") and e.is_file()
    }
    if images and not _crct_annot(folder):
        by_image = {i: files[p.stem] for i, p in enumerate(images) if p.stem in files}
        if by_image:
            return by_image
    numbers = {n: path for stem, path in files.items() if (n := _numbered(stem)) is not None}
    if not numbers:
        raise OptionError("pts", f"takes folders of {_NUMBERED}: none here", where=str(folder))
    first = 0 if 0 in numbers else 1
    return {n - first: path for n, path in numbers.items()}


def draw_points(
    image: np.ndarray,
    points: np.ndarray,
    colour: tuple[int, int, int],
    scale: int,
    marker: int = cv2.MARKER_CROSS,
) -> None:
    """Small crosses, so that a folder's points stay apart from a run's dots beneath them;
    points far outside the picture (a method that diverged) are left out."""
    height, width = image.shape[:2]
    inside = np.all(np.abs(points - [width / 2, height / 2]) < [width, height], axis=1)
    for x, y in np.round(points[inside]).astype(int):
        cv2.drawMarker(image, (int(x), int(y)), colour, marker, 3 * scale + 3, scale)


def draw_legend(image: np.ndarray, names: Sequence[str], scale: int) -> None:
    """The ``--pts`` folders' names in their colours, bottom left, on a dark band that keeps
    them readable on any picture."""
    step = 14 * scale
    top = image.shape[0] - 8 - step * len(names) - 2 * scale
    width = max(len(n) for n in names) * 9 * scale + 24
    band = image[max(0, top) :, : min(image.shape[1], width)]
    band[:] = band // 4
    for i, name in enumerate(names):
        y = image.shape[0] - 8 - step * (len(names) - 1 - i)
        colour, marker, _ = pts_style(i)
        cv2.drawMarker(image, (12, y - 4 * scale), colour, marker, 3 * scale + 3, scale)
        _text(image, name, (22, y), colour, scale)


def _folders(pts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(pts, (str, os.PathLike)):  # one folder, not its letters
        return [Path(pts)]
    return [Path(p) for p in pts]


def _load_run(run: str | os.PathLike[str]) -> tuple[TrackFile, Path]:
    """The run's track.json and folder; a video or a .pts folder given in its place is told
    where it goes."""
    path = Path(run)
    if is_video(path) and not path.is_dir():
        raise OptionError("video", f"takes a video; {path} is given as the run")
    if path.is_dir() and not (path / "track.json").is_file():
        if any(e.name.lower().endswith(".pts") for e in os.scandir(path)):
            raise OptionError("pts", f"takes a folder of .pts files; {path} is given as the run")
        raise CrctError(f"{path}: no track.json (not a finished crct track output folder)")
    return load_track(path), path if path.is_dir() else path.parent


def draw_overlay(
    run: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None = None,
    *,
    video: str | os.PathLike[str] | None = None,
    pts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
    max_frames: int | None = None,
    skip_frames: int | None = None,
    overwrite: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> DrawSummary:
    """Draw a run (its folder or ``track.json``; None: only ``pts``) and ``.pts`` folders on
    their video into ``out`` (default: ``draw.mp4`` in the run's folder).

    ``video``: the frames to draw on (default: the run's own video, found and checked); it must
    match the run's frame size, count and rate. ``skip_frames`` and ``max_frames``: which frames
    (default: the run's; a new start keeps the run's last frame). The video is written under a
    temporary name and renamed when complete; an existing ``out`` is refused unless
    ``overwrite``. A ``.pts`` file that cannot be read is left out and named in ``bad_pts``.
    """
    track, run_dir = _load_run(run) if run is not None else (None, None)
    folders = _folders(pts)
    if track is None and not folders:
        raise OptionError("pts", "or a crct track run (its folder) is needed: nothing to draw")
    given = video is not None
    if video is not None:
        video = Path(video)
        if not video.exists():
            raise CrctError(f"{video}: no such video or folder of frames")
    elif track is not None and run_dir is not None:
        video = run_video(track, run_dir)
    else:
        raise OptionError("video", "is needed: without a run, .pts folders have no video")
    if not video.is_dir() and not is_video(video):
        raise CrctError(f"{video}: not a video (an image sequence is a folder of frames)")
    if out is None:
        if run_dir is None:
            raise OptionError(
                "out", "is needed: without a run, the overlay has no folder (FILE.mp4)"
            )
        out = run_dir / "draw.mp4"
    out = Path(out)
    if not is_writable_video(out):
        raise OptionError("out", "is the video to write (FILE.mp4)", where=str(out))
    if out.name == OVERLAY and any((out.resolve().parent / m).exists() for m in OUTPUT_MARKERS):
        raise OptionError(
            "out",
            f"is a run's {OVERLAY}, which crct track --overlay writes and a run again replaces "
            "or removes: draw to another name (the default is draw.mp4)",
            where=str(out),
        )
    if out.exists() and out.resolve() == video.resolve():
        raise CrctError(f"{out}: is the video drawn on; write the overlay elsewhere")
    if out.is_dir():
        raise OptionError("out", "is the video to write, not a folder", where=str(out))
    if out.exists() and not overwrite:
        raise OptionError(
            "overwrite",
            "is False, and the file is already there",
            cli="replaces the file already there",
            where=str(out),
        )

    header = track.header if track is not None else {}
    info = _turned(_counted(probe_video(video, _sequence_fps(header)), header), header)
    length = None if track is None else _run_length(track)
    problem = None if track is None else _mismatch(info, header, length)
    if track is not None and problem is not None:  # (a problem is a track's)
        raise _not_the_runs(video, track, problem, given=given)
    if track is not None and length is None and track.header.get("live"):
        # a live session stopped early read the frames it wrote: those are the run's frames
        written = track.summary.get("frames_written")
        header = {**header, "max_frames": written} if isinstance(written, int) else header
    span = _frames_to_draw(header, skip_frames, max_frames)
    images = sequence_images(video) if video.is_dir() else None
    pts_frames = [_pts_frames(f, images) for f in folders]
    origins = [_run_origin(f) for f in folders]  # a --pts-origin 1 run's annot/: 1 taken off
    names = _legend_names(folders)
    records: dict[int, FacesRecord] = {r.index: r for r in track.faces} if track else {}
    focal = (header.get("config") or {}).get("focal_length")
    focal = float(focal) if focal else default_focal(info.width, info.height)
    total = span.expected(info.n_frames)

    with_run, with_pts, frames, bad = 0, [0] * len(folders), 0, []
    try:  # as every command's --out: its folders are made
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrctError(f"{out.parent}: cannot create folder ({exc.strerror})") from None
    with VideoWriter(out, info.fps, info.width, info.height) as writer:
        frames_in = iter_frames(video, span.count, _sequence_fps(header), span.skip)
        for frame in turn_frames(frames_in, _rotation(header)):
            record = records.get(frame.index)
            faces = record.faces if record is not None else []
            with_run += any(f.points is not None for f in faces)  # a frame with no face: none
            image = draw_faces(frame.image, faces, f"{frame.index + 1}", focal)
            scale = max(1, round(min(image.shape[:2]) / 360))
            for i, files in enumerate(pts_frames):
                path = files.get(frame.index)
                if path is None:
                    continue
                try:
                    points = read_pts(path, None) - origins[i]  # any number of points
                except CrctError as exc:
                    bad.append(str(exc))
                    continue
                colour, marker, _ = pts_style(i)
                draw_points(image, points, colour, scale, marker)
                with_pts[i] += 1
            if names:
                draw_legend(image, names, scale)
            writer.write(image, frame.index, frame.time)
            frames += 1
            if on_frame is not None:
                on_frame(frames, total)
        ended = span.count is None or frames < span.count  # the video's end was reached
        if track is not None and length is not None and ended and span.skip + frames != length:
            # as decoded, the run's video had another length: not it (the file is not kept)
            raise _not_the_runs(
                video,
                track,
                f"has {span.skip + frames} frames, but the run's video had {length}",
                given=given,
            )
    return DrawSummary(out, video, frames, with_run, tuple(with_pts), tuple(bad))


def _frames_to_draw(header: dict, skip: int | None, count: int | None) -> FrameRange:
    """The run's frames unless told: a new start keeps the run's last frame, a new count the
    run's first."""
    run_skip = header.get("skip_frames", 0)
    run_count = header.get("max_frames")
    if count is not None and not _at_least_one(count):  # left out, it is the run's count
        raise OptionError(
            "max_frames",
            f"must be a whole number, 1 or more (None: the run's frames), got {count!r}",
            cli=f"must be 1 or more (unset: the run's frames), got {count!r}",
        )
    if skip is not None and count is None and run_count is not None:
        left = run_skip + run_count - FrameRange.of(skip).skip
        return FrameRange.of(skip, left if left >= 1 else None)
    return FrameRange.of(run_skip if skip is None else skip, run_count if count is None else count)


def _at_least_one(count: object) -> bool:
    try:
        return not isinstance(count, bool) and operator.index(count) >= 1  # type: ignore[arg-type]
    except TypeError:
        return False


def _legend_names(folders: Sequence[Path]) -> list[str]:
    """A folder's name, with its parents' while they say nothing alone (``faces/1/annot``) or
    two folders would read the same (``a/annot``, ``b/annot``)."""
    parts = [folder.resolve().parts for folder in folders]
    depth = []
    for p in parts:
        k = 1
        while k < len(p) and (p[-k].lower() in _GENERIC or p[-k].isdecimal()):
            k += 1
        depth.append(k)
    while True:
        names = ["/".join(p[-k:]) for p, k in zip(parts, depth, strict=True)]
        twins = {i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])}
        if not twins:
            return names
        for i in twins:
            depth[i] += 1


__all__ = [
    "PTS_COLOURS",
    "PTS_COLOUR_NAMES",
    "DrawSummary",
    "draw_overlay",
    "run_video",
]
