"""Video in and out with PyAV, as a stream: one decoded frame in memory at a time.

Reading: :func:`probe_video` describes a file, :func:`iter_frames` yields RGB frames with
their presentation time in seconds (a folder of images is read as a video:
:mod:`crct_cli.io.sequence`). Rotation metadata (the display matrix that phones write)
is applied, so frames come out the way a player shows them; grayscale, full-range (``yuvj``)
and odd-sized sources all come out as (H, W, 3) RGB uint8.

Writing: :class:`VideoWriter` encodes RGB frames at a given frame rate (H.264 where the PyAV
build has an encoder for it, else MPEG-4) to a temporary name and renames it on success.
"""

from __future__ import annotations

import bisect
import io
import logging
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import av
import av.error
import cv2
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from crct_cli.errors import CrctError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
)

#: Read (named or found in a folder) but never written: camcorders' AVCHD (``.mts``,
#: ``.m2ts``), broadcast transport streams (``.ts``; in a folder only a file that starts as
#: one, not a TypeScript source), phones' 3GP, Flash, Windows Media, MXF, Ogg and DVD video.
READ_ONLY_SUFFIXES: tuple[str, ...] = (
    ".mts",
    ".m2ts",
    ".ts",
    ".3gp",
    ".flv",
    ".wmv",
    ".mxf",
    ".ogv",
    ".vob",
)

#: Encoders tried in order when the caller names none: H.264 first (plays everywhere), then
#: MPEG-4 part 2 (in every FFmpeg build), then VP9/VP8 for containers such as WebM that take
#: neither of those.
DEFAULT_CODECS: tuple[str, ...] = ("libx264", "mpeg4", "libvpx-vp9", "libvpx")

#: Encoder options per codec: visually lossless enough for overlays, fast enough for long videos.
_CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "20", "preset": "veryfast"},
    "libvpx-vp9": {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8"},
    "libvpx": {"crf": "10", "b": "2M", "deadline": "realtime", "cpu-used": "8"},
}

#: ``VideoWriter(lossless=True)``: the encoders that can keep every pixel (in 4:4:4 YUV, so
#: colour keeps full resolution), tried in this order, and their options.
_LOSSLESS_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "0", "preset": "veryfast"},
    "libvpx-vp9": {"lossless": "1", "deadline": "realtime", "cpu-used": "8"},
}

#: FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser scale times this.
_QP2LAMBDA = 118


def is_video(path: str | os.PathLike[str]) -> bool:
    """True when the suffix is one crct reads: :data:`VIDEO_SUFFIXES` or
    :data:`READ_ONLY_SUFFIXES` (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    return suffix in VIDEO_SUFFIXES or suffix in READ_ONLY_SUFFIXES


def is_writable_video(path: str | os.PathLike[str]) -> bool:
    """True when crct writes videos of this suffix (:data:`VIDEO_SUFFIXES`): where an output
    keeps its input's suffix (``crct degrade``, ``crct denoise``) or is named (``crct draw``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_transport_stream(path: str | os.PathLike[str]) -> bool:
    """Whether a file reads as an MPEG transport stream: the sync byte 0x47 every 188 bytes (or
    192: AVCHD's, a time code before each packet) for four packets in a row, from any of the
    first bytes (a capture cut mid-packet). Tells a ``.ts`` video from a TypeScript source of
    the same suffix, whose text has no such rhythm."""
    try:
        with open(path, "rb") as file:
            head = file.read(5 * 192)
    except OSError:
        return True  # unreadable: kept, so that it fails alone and says why
    for size in (188, 192):
        for start in range(size):
            if len(head) < start + 3 * size + 1:
                break
            if all(head[start + k * size] == 0x47 for k in range(4)):
                return True
    return False


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns without decoding the whole file.

    ``width`` and ``height`` are those of the frames :func:`iter_frames` yields, i.e. after
    rotation. ``rotation`` is the counter-clockwise angle (0, 90, 180 or 270) applied to the
    decoded pictures. ``n_frames`` and ``duration`` are ``None`` when the container does not
    say (Matroska/WebM often store no frame count).
    """

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int | None
    rotation: int
    duration: float | None


@dataclass
class Frame:
    """One decoded picture.

    ``index`` counts from 0 in decoding (= presentation) order, so 300-VW's file
    ``%06d.pts`` of frame ``k`` is ``index + 1``. ``time`` is in seconds from the start of the
    stream, taken from the frame's pts (``index / fps`` when the file has no timestamps).
    """

    index: int
    time: float
    image: np.ndarray


# --------------------------------------------------------------------------------------------
# Reading


def _open_for_reading(path: Path) -> InputContainer:
    """``av.open`` for reading, metadata in broken encodings tolerated: PyAV before 15 needs
    ``metadata_errors="ignore"`` for it, later releases do it always and refuse the word."""
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except TypeError:
        return av.open(str(path), mode="r")


def _open_input(path: Path) -> InputContainer:
    """Open ``path`` for reading, turning every failure into one CrctError line."""
    if not path.exists():
        raise CrctError(f"{path}: no such video file")
    if not path.is_file():
        raise CrctError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CrctError(f"{path}: empty file, not a video")
    try:
        return _open_for_reading(path)
    except PermissionError:
        raise CrctError(f"{path}: cannot read (permission denied)") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CrctError(f"{path}: not a readable video ({reason})") from None


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    """The file's video, as FFmpeg picks it (``av_find_best_stream``): not a cover picture
    stored as a video stream before it (a tagger's or a downloader's thumbnail)."""
    if not container.streams.video:
        raise CrctError(f"{path}: no video stream (audio-only or not a video)")
    stream = main_video_stream(container)
    stream.thread_type = "AUTO"
    return stream


def main_video_stream(container: InputContainer) -> VideoStream:
    """The container's main video stream (it has one): FFmpeg's best, else the first."""
    best = container.streams.best("video")
    return best if isinstance(best, VideoStream) else container.streams.video[0]


def _stream_fps(stream: VideoStream) -> float:
    """Frame rate from the container; 25 when it says nothing usable."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    if stream.duration and stream.frames and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
        if seconds > 0:
            return stream.frames / seconds
    return 25.0


def _metadata_rotation(stream: VideoStream) -> int | None:
    """Old-style ``rotate`` tag (degrees clockwise) as a counter-clockwise angle."""
    tag = stream.metadata.get("rotate")
    if tag is None:
        return None
    try:
        return -int(float(tag))
    except ValueError:
        return None


def _frame_rotation(frame: VideoFrame, fallback: int | None) -> int:
    """Counter-clockwise display rotation of ``frame``, snapped to 0/90/180/270.

    PyAV reports the display matrix (container side data propagated to frames) as
    ``frame.rotation``: the angle the picture must turn counter-clockwise to be shown upright.
    """
    degrees: float = 0.0
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - older PyAV
        degrees = 0.0
    if degrees == 0 and fallback:
        degrees = float(fallback)
    return normalize_rotation(degrees)


def normalize_rotation(degrees: float) -> int:
    """Snap an angle to the nearest multiple of 90 in [0, 360)."""
    return int(round(degrees / 90.0)) % 4 * 90


def apply_rotation(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn ``image`` counter-clockwise by ``rotation`` degrees (a multiple of 90).

    ``np.rot90`` with k=1 turns a picture (row 0 at the top) a quarter counter-clockwise,
    which is the convention of FFmpeg's display matrix as PyAV reports it.
    """
    k = normalize_rotation(rotation) // 90
    if k == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k))


def probe_video(path: str | os.PathLike[str], fps: float | None = None) -> VideoInfo:
    """Describe a video, decoding only its first frame (to check it really has one).

    A folder is an image sequence (:mod:`crct_cli.io.sequence`), given ``fps`` frames a
    second (a video file's own rate is read from it). Raises :class:`CrctError` (one line
    naming the file) when the path is missing, not a video, corrupt, has no video stream or
    no decodable frame.
    """
    path = Path(path)
    if path.is_dir():
        from crct_cli.io.sequence import probe_sequence

        return probe_sequence(path, fps)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream)
        first = _first_frame(container, stream, path)
        rotation = _frame_rotation(first, _metadata_rotation(stream))
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        n_frames = int(stream.frames) if stream.frames else None
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if duration is not None and duration <= 0:
            duration = None
        return VideoInfo(
            path=path,
            width=int(width),
            height=int(height),
            fps=fps,
            n_frames=n_frames,
            rotation=rotation,
            duration=duration,
        )
    finally:
        container.close()


def _first_frame(container: InputContainer, stream: VideoStream, path: Path) -> VideoFrame:
    for frame in _decode(container, stream, path):
        return frame
    raise CrctError(f"{path}: the video has no decodable frame (empty or corrupt)")


class _Shown:
    """Whether a packet of ``path`` has failed to decode, and then every shown packet's
    timestamp, in order (the file's packets walked once, on the first damage; None where
    :func:`_walk_packets` cannot say which packet is which frame)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.damaged = False
        self._order: list[int] | None = None
        self._walked = False

    def rank(self, pts: int) -> int | None:
        """The number of the frame shown at ``pts``: its timestamp's rank among the shown
        packets', as seeking numbers it (:func:`_seek_point`); None where not known."""
        if not self._walked:
            self._walked = True
            try:
                walked = _walk_packets(self.path)
            except CrctError:
                walked = None
            if walked is not None and len(set(walked[1])) == len(walked[1]):
                self._order = sorted(walked[1])
        if self._order is None:
            return None
        at = bisect.bisect_left(self._order, pts)
        return at if at < len(self._order) and self._order[at] == pts else None


def _decode(
    container: InputContainer,
    stream: VideoStream,
    path: Path,
    shown: _Shown | None = None,
) -> Iterator[VideoFrame]:
    """Decode packet by packet; a corrupt packet is skipped (as players do), not fatal.

    A read error after some frames ends the stream with a warning (a truncated file); one
    before any frame is a :class:`CrctError`. ``shown`` is told when a packet fails to
    decode, so that the frames after it keep their numbers (:func:`_numbered`).
    """
    bad = 0
    n_out = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = stream.decode(packet)
            except av.error.InvalidDataError:
                bad += 1
                if shown is not None:
                    shown.damaged = True
                continue
            for frame in frames:
                n_out += 1
                yield frame
    except av.error.FFmpegError as exc:
        if n_out == 0:
            raise CrctError(f"{path}: cannot read the video ({exc.strerror or exc})") from None
        # A truncated file: keep what decoded, as a player would.
        log.warning("%s: stopped after %d frames (%s)", path, n_out, exc.strerror or exc)
    if bad and n_out:
        log.warning("%s: skipped %d corrupt packet(s)", path, bad)
    elif bad:
        raise CrctError(f"{path}: no decodable frame ({bad} corrupt packets)")


def _numbered(
    frames: Iterator[VideoFrame], shown: _Shown | None, first: int = 0
) -> Iterator[tuple[int, VideoFrame]]:
    """``(index, frame)``: frames counted on from ``first``, until a packet fails to decode;
    from then on each frame is numbered by its timestamp's rank among the packets', as seeking
    numbers it (:meth:`_Shown.rank`), so a lost frame keeps its number and the frames after it
    are not renumbered one lower. A frame the decoder gives out of order after the damage (one
    shown before a lost keyframe comes out after later frames) is dropped: its place has
    passed. Where ``shown`` is None (a packet need not be a frame) frames are counted."""
    index = first - 1
    for frame in frames:
        rank = None
        if shown is not None and shown.damaged and frame.pts is not None:
            rank = shown.rank(int(frame.pts))
        if rank is None:
            index += 1
        elif rank > index:
            index = rank
        else:
            continue
        yield index, frame


def _one_frame_per_packet(container: InputContainer, stream: VideoStream) -> bool:
    """Whether each of this video's packets is one shown frame (:data:`_SEEK_FORMATS`,
    :data:`_SEEK_CODECS`), so that a packet that fails to decode is a frame missing."""
    formats = set(container.format.name.split(","))
    codec = stream.codec_context.name
    if "avi" in formats:  # a frame of an intra-only codec is one packet in AVI too
        return codec in _INTRA_CODECS
    return bool(formats & _SEEK_FORMATS) and (codec in _SEEK_CODECS or codec in _INTRA_CODECS)


#: ``skip`` from which :func:`iter_frames` seeks instead of decoding through the frames passed
#: over (at 640x360 FFmpeg decodes about 2,000 frames a second here, at 1080p far fewer).
SEEK_MIN_SKIP = 250

#: Containers (FFmpeg's demuxer names) and codecs where a video packet is one shown frame, so
#: that frame ``k`` is the packet with the ``k``-th smallest timestamp (AVI with
#: :data:`_INTRA_CODECS` only). Elsewhere (AVI's packed MPEG-4 frames, VP8's hidden frames,
#: transport streams) a skip decodes through.
_SEEK_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})
_SEEK_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video", "mjpeg", "vp9"})

#: Codecs whose every frame stands alone: one packet, one frame, in AVI as well (a webcam's or a
#: lab recorder's MJPEG, raw and lossless video), where packed MPEG-4 keeps AVI out otherwise.
_INTRA_CODECS = frozenset({"mjpeg", "rawvideo", "ffv1", "huffyuv", "ffvhuff", "utvideo", "dvvideo"})

#: Packets read past frame ``skip`` in decoding order: B-frames show up to a few frames out of
#: order, and none of the last half of these may show before frame ``skip``.
_SEEK_MARGIN = 64


@dataclass(frozen=True)
class _SeekPoint:
    """Frame ``skip``'s presentation timestamp ``pts``, and the timestamps to seek to, in turn,
    until the demuxer lands at or before it: its own, its keyframe's, the keyframe's before."""

    starts: tuple[int, ...]
    pts: int


#: (pts, dts, keyframe) of a video's packets in decoding order, the timestamps of the frames
#: shown, and whether the packets ended (not cut at ``limit`` frames shown)
_Walk = tuple[list[tuple[int, int | None, bool]], list[int], bool]


def _walk_packets(path: Path, limit: int | None = None) -> _Walk | None:
    """Demux a video's packets without decoding, up to ``limit`` + 1 frames shown. None where
    a packet is not surely one frame as decoding numbers them: no timestamp, a first packet that
    is not a keyframe or one shown before it (frames a decoder drops), a packet marked corrupt
    (a truncated file), a container or codec outside :data:`_SEEK_FORMATS` /
    :data:`_SEEK_CODECS`, a demuxer error. Raises :class:`CrctError` when it is no video."""
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        if not _one_frame_per_packet(container, stream):
            return None
        stamps: list[tuple[int, int | None, bool]] = []
        shown: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's empty packet at the end
                continue
            if packet.pts is None or packet.is_corrupt or (not stamps and not packet.is_keyframe):
                return None
            if stamps and packet.pts < stamps[0][0]:  # a leading frame of an open GOP
                return None
            stamps.append((int(packet.pts), packet.dts, bool(packet.is_keyframe)))
            if not packet.is_discard:
                shown.append(int(packet.pts))
            if limit is not None and len(shown) > limit:
                return stamps, shown, False
        return stamps, shown, True
    except av.error.FFmpegError:
        return None
    finally:
        container.close()


def _seek_point(path: Path, skip: int) -> _SeekPoint | None:
    """Frame ``skip``'s timestamp and the keyframe before it, read from the packets alone.

    Demuxing without decoding reads a 13-minute 1080p file in about a second. Packets the
    demuxer marks to be dropped (those before an edit list's start: a file trimmed without
    re-encoding) are not frames. ``None`` where the packets cannot say for sure which frame
    is frame ``skip``, as decoding from the start numbers them: no timestamps, a first packet
    that is not a keyframe or one shown before it (frames a decoder drops), a packet marked
    corrupt (a truncated file), repeated timestamps, a container or codec outside
    :data:`_SEEK_FORMATS` / :data:`_SEEK_CODECS`. Then the frames are decoded through, as for
    a short skip. Raises :class:`CrctError` (one line) when the file is no video or has no
    frame ``skip``.
    """
    walked = _walk_packets(path, skip + _SEEK_MARGIN)
    if walked is None:
        return None
    stamps, shown, ended = walked
    if len(shown) <= skip:
        if ended:
            from crct_cli.io.sequence import skip_error

            raise skip_error(path, skip, f"the video has {len(shown)} frames")
        return None  # pragma: no cover - more than skip + margin packets were read
    order = sorted(shown)
    if len(set(order)) != len(order):
        return None
    target = order[skip]
    if not ended and min(pts for pts, _, _ in stamps[-_SEEK_MARGIN // 2 :]) <= target:
        return None
    # the last keyframe in decoding order at or before the target (pts), none of whose
    # predecessors shows after the target
    at = next(i for i, (pts, _, _) in enumerate(stamps) if pts == target)
    keys = [i for i in range(at + 1) if stamps[i][2] and stamps[i][0] <= target]
    if not keys:  # pragma: no cover - the first packet is a keyframe
        return None
    key = keys[-1]
    if key and max(pts for pts, _, _ in stamps[:key]) >= target:
        return None
    # the demuxer lands on the keyframe before the time asked for, by its own timestamps
    # (MP4's are decoding times shifted by the edit list): first the target's own, as
    # ffmpeg -ss seeks, then its keyframe's, then the keyframe's before
    starts = [target, stamps[key][0]] if stamps[key][0] != target else [target]
    if len(keys) > 1:
        pts, dts, _ = stamps[keys[-2]]
        starts.append(pts if dts is None else min(pts, int(dts)))
    return _SeekPoint(starts=tuple(starts), pts=target)


def count_packet_frames(path: str | os.PathLike[str]) -> int | None:
    """The frames a video shows, counted from its packets without decoding, for a container
    that declares no count (Matroska, WebM); None where a packet is not surely one shown frame
    (the cases :func:`_seek_point` decodes through) or the file cannot be read."""
    try:
        walked = _walk_packets(Path(path))
    except CrctError:
        return None
    return None if walked is None else len(walked[1])


def _frames_after(
    path: Path, skip: int
) -> Generator[tuple[int, VideoFrame, VideoStream], None, None]:
    """``(index, frame, stream)`` for the frames from ``skip`` on, in presentation order.

    For a long skip the file is sought to the keyframe before frame ``skip`` (found by
    :func:`_seek_point`) and decoded from there; should the first frame decoded at or after
    the target not be the target itself (from the keyframe before that too), the file is
    read again from the start and decoded through, so a frame's number never depends on
    whether it was reached by seeking.
    """
    point = _seek_point(path, skip) if skip >= SEEK_MIN_SKIP else None
    starts, target = (point.starts, point.pts) if point is not None else ((), 0)
    for start in starts:
        container = _open_input(path)
        try:
            stream = _video_stream(container, path)
            try:
                container.seek(start, backward=True, any_frame=False, stream=stream)
            except av.error.FFmpegError:
                break
            shown = _Shown(path)
            decoded = _decode(container, stream, path, shown)
            landed = False
            try:
                for frame in decoded:
                    if frame.pts is None or frame.pts > target:
                        break  # landed past the target
                    if frame.pts == target:
                        landed = True
                        break
            except CrctError:
                continue  # nothing decodes from there: a missed seek
            if not landed:
                continue
            yield skip, frame, stream
            for index, frame in _numbered(decoded, shown, skip + 1):
                yield index, frame, stream
            return
        finally:
            container.close()
    if starts:
        log.debug("%s: seeking to frame %d missed it; decoding through", path, skip)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        ranked = _Shown(path) if _one_frame_per_packet(container, stream) else None
        index = -1
        for index, frame in _numbered(_decode(container, stream, path, ranked), ranked):
            if index >= skip:
                yield index, frame, stream
        index += 1  # the frames seen, their numbers from 0
        if index == 0:
            raise CrctError(f"{path}: the video has no decodable frame (empty or corrupt)")
        if index <= skip:
            from crct_cli.io.sequence import skip_error

            raise skip_error(path, skip, f"the video has {index} frames")
    finally:
        container.close()


def iter_frames(
    path: str | os.PathLike[str],
    max_frames: int | None = None,
    fps: float | None = None,
    skip: int = 0,
) -> Generator[Frame, None, None]:
    """Yield the frames of ``path`` one by one, as RGB uint8 with rotation applied.

    A generator over a PyAV stream: memory stays flat however long the video. ``skip``: the
    first frames are passed over, and the others keep their numbers and times; from
    :data:`SEEK_MIN_SKIP` frames on, the file is sought to the keyframe before them where its
    packets number the frames for sure (MP4/MOV, Matroska/WebM), else they are decoded but
    not converted. A frame lost to a packet that fails to decode keeps its number where each
    packet is one frame (those containers and codecs): the frames after it are not renumbered,
    and their numbers do not depend on whether they were reached by seeking. Then at most
    ``max_frames`` frames when given. A folder is an image
    sequence, its frames ``1 / fps`` seconds apart (:mod:`crct_cli.io.sequence`). Raises
    :class:`CrctError` when the file is missing, unreadable or yields no frame at all.
    """
    path = Path(path)
    if path.is_dir():
        from crct_cli.io.sequence import iter_sequence

        yield from iter_sequence(path, max_frames, fps, skip)
        return
    if max_frames is not None and max_frames <= 0:
        _open_input(path).close()
        return
    frames = _frames_after(path, skip)
    seen: VideoStream | None = None
    # every frame at the size the video began with (the header's, track.json's, the overlay's)
    size = _header_size(path) if skip else None  # else the first frame's
    resized = False
    try:
        for index, frame, stream in frames:
            if stream is not seen:  # a second reading after a missed seek has its own
                seen, rate, time_base = stream, _stream_fps(stream), stream.time_base
                start, fallback_rotation = stream.start_time or 0, _metadata_rotation(stream)
            if max_frames is not None and index >= skip + max_frames:
                return  # past the range asked for (frames lost to damage leave gaps)
            rotation = _frame_rotation(frame, fallback_rotation)
            if frame.pts is not None and time_base is not None:
                time = float((frame.pts - start) * time_base)
            else:
                time = index / rate
            # sizes compared as decoded, before any turn: the turn (a display matrix, per
            # frame) applies to every frame alike
            image = frame.to_ndarray(format="rgb24")
            decoded = (frame.width, frame.height)
            if size is None:
                size = decoded
            elif decoded != size:
                if not resized:
                    resized = True
                    log.warning(
                        "%s: the picture changes size at frame %d (%dx%d as stored; the video "
                        "began at %dx%d): frames of another size are scaled into the first "
                        "size, their points given there",
                        path,
                        index + 1,
                        *decoded,
                        *size,
                    )
                image = fit_into(image, size)
            image = apply_rotation(image, rotation)
            yield Frame(index=index, time=time, image=image)
            if max_frames is not None and index + 1 >= skip + max_frames:
                return
    finally:
        frames.close()


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a video's first pictures as stored (before any turn), as its header
    gives them, read without decoding; None where the header has none."""
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        width, height = stream.width, stream.height
    finally:
        container.close()
    if not width or not height:
        return None
    return (width, height)


def fit_into(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) whole, its shape kept, centred on black.

    Why: a recording joined from parts of two sizes (a camera switched mid-stream, a stream's
    resolution stepped down) is still one video with one size in its header, its overlay and
    its points; FFmpeg scales such frames to the first size too. The shape is kept so that a
    face is not squeezed for the networks."""
    height, width = image.shape[:2]
    scale = min(size[0] / width, size[1] / height)
    new_w = min(size[0], max(1, round(width * scale)))
    new_h = min(size[1], max(1, round(height * scale)))
    shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (new_w, new_h), interpolation=shrink)
    if (new_w, new_h) == size:
        return scaled
    out = np.zeros((size[1], size[0], 3), np.uint8)
    top, left = (size[1] - new_h) // 2, (size[0] - new_w) // 2
    out[top : top + new_h, left : left + new_w] = scaled
    return out


def prefetch_frames(frames: Iterator[Frame], depth: int = 4) -> Iterator[Frame]:
    """``frames``, decoded ahead by a background thread (at most ``depth`` waiting).

    PyAV decodes and converts to RGB outside the GIL, so the next frames are ready while the
    networks run on this one. Errors of the decoder are raised here, in order; closing this
    generator stops the thread.
    """
    import queue
    import threading

    done = object()
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=decode, name="crct-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Writing


#: Containers whose time base is the frame rate: frames are written one a tick.
_UNTIMED_SUFFIXES = frozenset({".avi", ".mpg", ".mpeg"})


def _ticks_per_frame(rate: Fraction, codec: str) -> int:
    """Ticks of the overlay's time base in one frame at ``rate``: about a millisecond each, so a
    variable-frame-rate source's times are kept to a millisecond, while a steady source's frames
    stay exactly ``1 / rate`` apart. MPEG-4 part 2 takes no time base finer than 1/65535 s."""
    ticks = max(1, math.ceil(1000 / float(rate)))
    if codec == "mpeg4":
        ticks = max(1, min(ticks, 65535 // rate.numerator))
    return ticks


def rate_fraction(fps: float | Fraction) -> Fraction:
    """Exact frame rate for a time base: 23.976 -> 24000/1001, 25.0 -> 25, 12.5 -> 25/2."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        fps = float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"frame rate must be positive, got {fps}")
        rate = Fraction(fps).limit_denominator(1001)
        for base in (24, 30, 48, 60, 120, 240):
            ntsc = Fraction(base * 1000, 1001)
            if abs(fps - float(ntsc)) < 1e-3:
                rate = ntsc
                break
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {rate}")
    return rate


def has_encoder(name: str) -> bool:
    """True when this PyAV build can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        return False
    return True


def h264_roundtrip(image: np.ndarray, crf: float) -> np.ndarray:
    """``image`` (H, W, 3) RGB uint8 as one H.264 frame (yuv420p, ``crf``) decodes: what a
    video's compression leaves of a picture, above all of a dim, noisy one, whose faint
    detail goes first. Odd sides are padded by their last row or column and cut back.
    Raises :class:`CrctError` where PyAV has no libx264 encoder."""
    if not has_encoder("libx264"):
        raise CrctError("this PyAV build has no libx264 encoder to compress frames with")
    h, w = image.shape[:2]
    even = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = even.shape[1], even.shape[0]
        stream.pix_fmt = "yuv420p"
        # one thread and no look-ahead: a picture this small is encoded at once, the same
        # every time
        stream.codec_context.options = {
            "crf": f"{crf:.1f}",
            "preset": "veryfast",
            "tune": "zerolatency",
            "threads": "1",
        }
        for packet in stream.encode(VideoFrame.from_ndarray(np.ascontiguousarray(even), "rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r", format="h264") as back:
        frame = next(back.decode(video=0))
        return frame.to_ndarray(format="rgb24")[:h, :w]


def _temp_name(target: Path) -> Path:
    """Same naming as :func:`crct_cli.io.atomic.atomic_path`; the suffix picks the muxer."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


class VideoWriter:
    """Encode RGB frames into a video file at the source frame rate.

    ``VideoWriter(path, fps, width, height, codec=None)`` is a context manager; frames given
    to :meth:`write` must be (height, width, 3) RGB uint8 (a (height, width) gray image is
    accepted too). With no ``codec`` it uses H.264 (libx264, yuv420p) when the build has it and
    the container takes it, else MPEG-4 part 2 (VP9/VP8 for WebM).

    yuv420p needs even sizes, so an odd width or height is *padded* by one pixel (the last
    column / row repeated) rather than cropped: no picture content is lost, and points drawn
    in source pixel coordinates stay where they are. :attr:`out_width` / :attr:`out_height`
    give the encoded size.

    The file is written under a temporary name in the same folder and renamed onto ``path``
    by :meth:`close`; if the block raises (or :meth:`abort` is called) the temporary file is
    removed, so a half-written video never looks finished. An unwritable or missing folder
    raises :class:`CrctError` at construction. Closing without any frame written raises
    :class:`CrctError` and leaves nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        width: int,
        height: int,
        codec: str | None = None,
        lossless: bool = False,
    ) -> None:
        self.path = Path(path)
        #: asked for ``lossless``, and an encoder that keeps every pixel took this container
        #: (False where none did: the file is then written as without it)
        self.lossless = lossless
        if width <= 0 or height <= 0:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        self.width = int(width)
        self.height = int(height)
        self.out_width = self.width + self.width % 2
        self.out_height = self.height + self.height % 2
        self.rate = rate_fraction(fps)
        self.n_written = 0
        self._last: tuple[int, VideoFrame] | None = None  # write()'s last index and frame
        self._ticks = 1  # ticks of the time base a frame (set by _add_stream)
        self._pts = -1  # the last frame's tick (set by _add_stream)
        self._first_time: float | None = None  # the first frame's time, when given
        self._last_time: float | None = None  # the last frame's, when given
        #: frames placed at their times: not in AVI and MPEG program streams, whose time base
        #: is the frame rate itself (every frame one tick; a finer one reads as the rate)
        self.timed = self.path.suffix.lower() not in _UNTIMED_SUFFIXES
        self._closed = False
        folder = self.path.parent
        if not folder.exists():
            raise CrctError(f"{self.path}: cannot write, folder {folder} does not exist")
        if not folder.is_dir():
            raise CrctError(f"{self.path}: cannot write, {folder} is not a folder")
        if not os.access(folder, os.W_OK):
            raise CrctError(f"{self.path}: cannot write, folder {folder} is not writable")
        if not is_writable_video(self.path):
            raise CrctError(
                f"{self.path}: unknown video suffix (use one of {', '.join(VIDEO_SUFFIXES)})"
            )
        self._tmp = _temp_name(self.path)
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except (OSError, av.error.FFmpegError, ValueError) as exc:
            self._remove_tmp()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CrctError(f"{self.path}: cannot write ({reason})") from None
        try:
            self.codec = self._add_stream(codec)
        except BaseException:
            self._container.close()
            self._remove_tmp()
            raise

    def _add_stream(self, codec: str | None) -> str:
        candidates = (codec,) if codec else DEFAULT_CODECS
        # lossless asked: the encoders that can keep every pixel first, at 4:4:4; where none
        # is in this build or taken by the container, the usual ones (``lossless`` False)
        tries = [(n, True) for n in candidates if self.lossless and n in _LOSSLESS_OPTIONS]
        tries += [(n, False) for n in candidates]
        tried: list[str] = []
        for name, exact in tries:
            if not has_encoder(name):
                tried.append(f"{name} (no encoder in this build)")
                continue
            try:
                # a video encoder's stream (``codec`` names one, as the class says)
                stream = cast(VideoStream, self._container.add_stream(name, rate=self.rate))
            except (ValueError, av.error.FFmpegError):
                tried.append(f"{name} (not allowed in {self.path.suffix})")
                continue
            stream.width = self.out_width
            stream.height = self.out_height
            stream.pix_fmt = "yuv444p" if exact else "yuv420p"
            self._ticks = _ticks_per_frame(self.rate, name) if self.timed else 1
            self._pts = -self._ticks  # the first frame at 0
            stream.time_base = 1 / (self.rate * self._ticks)
            stream.codec_context.time_base = stream.time_base  # the encoder's ticks the same
            stream.thread_type = "AUTO"
            ctx = stream.codec_context
            if exact:
                ctx.options = dict(_LOSSLESS_OPTIONS[name])
            elif name in _CODEC_OPTIONS:
                ctx.options = dict(_CODEC_OPTIONS[name])
            elif name == "mpeg4":
                ctx.qscale = True  # constant quality: quantiser 3 looks clean at any size
                ctx.global_quality = 3 * _QP2LAMBDA
            self.lossless = exact
            self._stream = stream
            return stream.codec_context.name
        reasons = ", ".join(dict.fromkeys(tried))  # a lossless try's reason said once
        raise CrctError(f"{self.path}: no usable video encoder: {reasons}")

    def write(
        self, image_rgb: np.ndarray, index: int | None = None, time: float | None = None
    ) -> None:
        """Encode one (height, width, 3) RGB uint8 frame. ``index``: the source frame's number;
        where frames between it and the last one written are missing (lost to a packet that
        failed to decode), the last picture is written again for each, so the video keeps the
        source's timing and its frame ``k`` stays the source's frame ``k``. ``time``: the
        source frame's time in seconds; the frame is shown at it (counted from the first
        frame.s, to the nearest tick: about a millisecond), so the overlay of a variable-frame-rate
        video (a phone's, a screen recording) plays in step with its source."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        image = np.asarray(image_rgb)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                f"got {image.shape} {image.dtype}"
            )
        if (self.out_width, self.out_height) != (self.width, self.height):
            pad = ((0, self.out_height - self.height), (0, self.out_width - self.width), (0, 0))
            image = np.pad(image, pad, mode="edge")
        # from_ndarray copies the pixels: the caller may reuse its buffer, and the frame held
        # for a gap is this one, encoded again (no second conversion, no copy of our own)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if not self.timed:
            time = None
        if index is not None:
            if self._last is not None:
                last_index, last = self._last
                missing = index - last_index - 1
                for k in range(missing):  # each at its share of the time between, if known
                    between = None
                    if time is not None and self._last_time is not None:
                        between = self._last_time + (time - self._last_time) * (k + 1) / (
                            missing + 1
                        )
                    self._encode(last, between)
            self._last = (int(index), frame)
        self._encode(frame, time)
        if time is not None:
            self._last_time = time

    def _encode(self, frame: VideoFrame, time: float | None = None) -> None:
        """Encode at the next tick, or at ``time``'s when that is later (never earlier: each
        frame keeps a tick of its own)."""
        pts = self._pts + self._ticks  # a frame's time at the rate
        if time is not None:
            if self._first_time is None:
                self._first_time = time
            pts = max(self._pts + 1, round((time - self._first_time) * self.rate * self._ticks))
        frame.pts = pts
        frame.time_base = 1 / (self.rate * self._ticks)
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.abort()
            raise CrctError(f"{self.path}: cannot write the video ({reason})") from None
        self.n_written += 1
        self._pts = pts

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it onto its final name."""
        if self._closed:
            return
        if self.n_written == 0:
            self.abort()
            raise CrctError(f"{self.path}: no frame to write, no video saved")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._closed = True
            os.replace(self._tmp, self.path)
        except (OSError, av.error.FFmpegError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.abort()
            raise CrctError(f"{self.path}: cannot write the video ({reason})") from None

    def abort(self) -> None:
        """Drop everything written so far; the temporary file is removed."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except (OSError, av.error.FFmpegError, ValueError):
                pass  # closing a broken muxer may fail; its output is discarded anyway
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - best effort clean-up
            log.warning("could not remove temporary file %s", self._tmp)

    def __enter__(self) -> VideoWriter:
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
