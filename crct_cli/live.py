"""Landmarks live from a camera or a stream: ``crct live``.

Frames come from OpenCV's capture (a camera by its number, a stream such as ``rtsp://...``, or
a video file read as if it were live, as fast as the tracker goes), each tracked as it arrives
by :meth:`crct_cli.api.Tracker.step`: the causal filter, nothing waits for later frames, as
OpenFace's and MediaPipe's live demos work. From a camera or a stream the tracker always takes
the newest frame, and those that came while it tracked the last are dropped (counted): frames
left waiting would be a delay that only grows. Each frame is shown with its faces' points; with
``out``, the session is written as ``crct track --no-pts`` writes a video (landmarks.csv and
track.json, overlay.mp4 with ``overlay``), each file under a temporary name renamed when the
session ends: q or Esc in the window, the window closed, Ctrl-C, ``max_frames``, or the end of
the stream.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crct_cli.draw import _text, draw_faces
from crct_cli.errors import CrctError, OptionError
from crct_cli.io.atomic import check_writable_folder, make_output_folder
from crct_cli.io.openface_csv import LandmarksCsvWriter
from crct_cli.io.track_json import SCHEMA_FACES, FaceRecord, FacesRecord, TrackJsonWriter
from crct_cli.io.video import VideoWriter
from crct_cli.tracking.orientation import AUTO, parse_rotate, turn
from crct_cli.tracking.pipeline import OVERLAY, check_max_frames

#: What a ``crct track`` run that this session replaces (``--overwrite``) leaves beside its
#: ``track.json``: its resume marker, and the folders of its points and crops.
_RUN_MARKER = ".crct-input.json"
_RUN_FOLDERS = ("annot", "faces", "crops")

#: The window's title (its keys: q or Esc end the session).
WINDOW = "crct live: q or Esc to stop"
#: Frames a second written for a camera that does not say (most webcams run at 30).
CAMERA_FPS = 30.0


@dataclass(frozen=True)
class LiveSummary:
    """A live session: frames tracked, those with a face's points, seconds, and what ended it
    (``ended``: "end of stream", "max frames", "key", "window closed" or "interrupted")."""

    source: str
    frames: int
    with_points: int
    seconds: float
    ended: str
    out: Path | None = None
    dropped: int = 0  #: a camera's or stream's frames that came while the last was tracked
    #: frames of another size than the first (a stream switching quality), scaled to fit it
    rescaled: int = 0
    cuts: int = 0  #: frames that start a new shot (``Tracker(shot_cuts=True)``)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's own log lines (each backend it tries on a missing camera says why it failed)
    and FFmpeg's (a stream that refuses) kept back: crct says it in one line. A user's own
    ``OPENCV_FFMPEG_LOGLEVEL`` is kept."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read at first use
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def open_capture(source: str) -> tuple[Any, bool]:
    """OpenCV's capture of ``source``: a camera by its number ("0"), else a stream address or a
    video file. The flag says whether frame times come from the file (else from the clock)."""
    text = source.strip()
    if text.isdigit():
        with _opencv_quiet():
            capture = cv2.VideoCapture(int(text))
        if not capture.isOpened():
            raise CrctError(f"camera {text}: cannot be opened (no such camera, or in use)")
        return capture, False
    is_file = "://" not in text
    if is_file:
        path = Path(text)
        if not path.exists():
            raise CrctError(f"{text}: no such camera, stream or video file")
        if path.is_dir():
            raise CrctError(f"{text}: a folder; crct live reads a camera, a stream or a video")
    with _opencv_quiet():
        capture = cv2.VideoCapture(text)
    if not capture.isOpened():
        raise CrctError(f"{text}: cannot be opened as a stream or video")
    return capture, is_file


def check_session(out: Path | None, overlay: bool, show: bool) -> None:
    """What a session can be asked for: ``overlay`` with ``out``, an ``out`` it can write
    into (said before the networks load and the camera opens); ``show`` on a display."""
    if overlay and out is None:
        raise OptionError("overlay", "needs --out, the folder to write overlay.mp4 into")
    if out is not None:
        check_writable_folder(out)
    if show:
        check_display()


def check_display() -> None:
    """A window needs a display: on Linux without one, OpenCV's Qt stops the whole process,
    so say so before it tries."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise CrctError(
            "no display to show the frames on (DISPLAY is not set): --no-show, with --out to "
            "write the landmarks"
        )


def check_live_rotate(rotate: Any) -> int:
    """A live session's turn is given, not looked for: its outputs start at its first frame."""
    angle = parse_rotate(rotate)
    if angle == AUTO:
        raise OptionError(
            "rotate",
            "auto looks at a video's first frames first; live, give the turn (0, 90, 180 or 270)",
        )
    return int(angle)


class _Outputs:
    """landmarks.csv, track.json and overlay.mp4 of a session, opened on its first frame (the
    frame size is known then) and renamed into place by :meth:`close`."""

    def __init__(self, out: Path, source: str, tracker: Any, fps: float, overlay: bool) -> None:
        self.out, self.source, self.tracker = out, source, tracker
        self.fps, self.overlay = fps, overlay
        self.csv: Any = None
        self.json: Any = None
        self.video: Any = None

    def add(self, frame: Any, image: np.ndarray, picture: np.ndarray | None) -> None:
        """``frame``'s faces, on ``image`` (the frame as tracked); ``picture``: it drawn."""
        if self.json is None:
            height, width = image.shape[:2]
            angle = int(self.tracker.rotation)
            header = {
                "video": self.source,
                "width": width,
                "height": height,
                "fps": self.fps,
                "n_frames": None,
                **({"rotate": angle} if angle else {}),
                "live": True,
                "method": self.tracker.config.mode,
                "faces": self.tracker.multi.faces,
                "config": self.tracker.describe(stepwise=True),  # nothing read ahead
            }
            self.json = TrackJsonWriter(self.out / "track.json", header, SCHEMA_FACES)
            self.csv = LandmarksCsvWriter(
                self.out / "landmarks.csv", pose=self.tracker.pose is not None
            )
            if self.overlay:
                self.video = VideoWriter(self.out / OVERLAY, self.fps, width, height)
        records = [
            FaceRecord(f.face_id, f.box, f.points, f.score, f.state, f.pose) for f in frame.faces
        ]
        self.json.add(FacesRecord(frame.index, frame.time, records, frame.cut))
        self.csv.add(frame.index, frame.time, frame.faces)
        if self.video is not None and picture is not None:
            self.video.write(picture, time=frame.time)  # a dropped frame: the last one held

    def close(self, summary: dict[str, Any]) -> None:
        if self.video is not None:
            self.video.close()
        if self.csv is not None:
            self.csv.close()
        if self.json is not None:
            self.json.close(summary)
            self._drop_stale()

    def _drop_stale(self) -> None:
        """What an earlier session or run in ``out`` wrote that this session did not and would
        be read as its own: an overlay.mp4 (of other frames), and a ``crct track`` run's
        ``.pts`` folders and resume marker (of another video; only where its marker says the
        folders are crct's, so that a dataset's ground truth beside a session is kept)."""
        if self.video is None and (self.out / OVERLAY).is_file():
            (self.out / OVERLAY).unlink()
        if (self.out / _RUN_MARKER).is_file():
            for name in _RUN_FOLDERS:
                if (self.out / name).is_dir():
                    shutil.rmtree(self.out / name)
            (self.out / _RUN_MARKER).unlink()

    def abort(self) -> None:
        for writer in (self.video, self.csv, self.json):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.abort()


def window_picture(picture: np.ndarray, interval: float) -> np.ndarray:
    """What the window shows: the drawn RGB frame as OpenCV's BGR, a new array (the one
    overlay.mp4 gets is left as it is), with the frame rate, one frame every ``interval``
    seconds, top right."""
    shown = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    scale = max(1, round(min(shown.shape[:2]) / 360))
    corner = (shown.shape[1] - 80 * scale, 18 * scale)
    _text(shown, f"{1.0 / max(interval, 1e-6):.1f} fps", corner, (255, 255, 255), scale)
    return shown


class _FileFrames:
    """Every frame of a video file in turn, at the file's times; where they go back (files
    joined end to end, a stream's clock restarted), one frame at ``fps`` after the frame
    before instead, as ``Tracker.step`` refuses a time that goes back."""

    def __init__(self, capture: Any, fps: float = CAMERA_FPS) -> None:
        self.capture = capture
        self.dropped = 0
        self.fps = fps
        self._last: float | None = None

    def next(self) -> tuple[np.ndarray, float | None] | None:
        ok, bgr = self.capture.read()
        if not ok or bgr is None:
            return None
        seconds = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not math.isfinite(seconds) or (self._last is not None and seconds < self._last):
            seconds = 0.0 if self._last is None else self._last + 1.0 / self.fps
        self._last = seconds
        return bgr, seconds

    def close(self) -> None:
        self.capture.release()


class _NewestFrames:
    """A camera's or a stream's newest frame: a thread reads on while a frame is tracked, and
    a frame that a newer one replaced before it was taken is dropped (counted), for a queue
    of frames waiting is a delay that only grows. Times are seconds from the first frame read."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture
        self.dropped = 0
        self._newest: tuple[np.ndarray, float] | None = None
        self._ended = self._stop = False
        self._start: float | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="crct-live-read", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            ok, bgr = self.capture.read()
            now = time.perf_counter()
            with self._ready:
                if not ok or bgr is None:
                    self._ended = True
                else:
                    self._start = now if self._start is None else self._start
                    self.dropped += self._newest is not None
                    self._newest = (bgr, now - self._start)
                self._ready.notify()
            if not ok or bgr is None:
                return

    def next(self) -> tuple[np.ndarray, float | None] | None:
        with self._ready:
            while self._newest is None and not self._ended:
                self._ready.wait(0.1)  # in steps, so that Ctrl-C gets through
            newest, self._newest = self._newest, None
        return newest

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)  # a stalled stream: released under its read after all
        self.capture.release()


@contextlib.contextmanager
def _whole_frame() -> Iterator[None]:
    """Ctrl-C or SIGTERM while a frame is counted and written waits until it is: the frame is
    in every file and in the count, or in none (a frame in track.json and not in
    landmarks.csv, or counted and written nowhere, was a session cut in the middle of a
    frame). The signal then goes to the handler it would have gone to, which ends the
    session. Signals are the main thread's alone: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held: dict[int, Any] = {}
    for number in (int(signal.SIGINT), int(signal.SIGTERM)):
        handler = signal.getsignal(number)
        if callable(handler):  # Python's own handlers: SIG_IGN and SIG_DFL are left alone
            held[number] = handler
            signal.signal(number, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
    for number in caught[:1]:
        held[number](number, None)


def fit_frame(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` scaled by one factor to fit ``size`` (H, W) and centred on black: a stream that
    changes size mid-session keeps its first frame size (the tracker's, the outputs') and
    its faces their shape, whatever the new aspect."""
    height, width = size
    scale = min(height / rgb.shape[0], width / rgb.shape[1])
    h = min(height, max(1, round(rgb.shape[0] * scale)))
    w = min(width, max(1, round(rgb.shape[1] * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    out[top : top + h, left : left + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return out


def run_live(
    source: str,
    tracker: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    overlay: bool = False,
    show: bool = True,
    max_frames: int | None = None,
    newest: bool | None = None,
) -> LiveSummary:
    """Track ``source`` frame by frame with ``tracker`` (a :class:`crct_cli.api.Tracker`) until
    the stream ends, ``max_frames`` are tracked, q or Esc, the window is closed or Ctrl-C;
    show each frame (``show``) and write the session into ``out`` (None: nothing written).
    ``newest``: take the newest frame each time, dropping those that came while the last was
    tracked (None: a camera's or a stream's newest, every frame of a file in turn)."""
    max_frames = check_max_frames(max_frames)
    out = None if out is None else Path(out)
    check_session(out, overlay, show)
    if out is not None:  # the files' frame size is the first frame's
        check_live_rotate(getattr(tracker, "rotate", 0))
        make_output_folder(out)  # as the command does: not only once a frame is tracked
    capture, from_file = open_capture(source)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0 < fps < 1000 else CAMERA_FPS
    outputs = None if out is None else _Outputs(out, source, tracker, fps, overlay)
    poser = getattr(tracker, "pose", None)
    focal = None if poser is None else poser.focal
    tracker.reset()
    frames = with_points = rescaled = 0
    size: tuple[int, int] | None = None  # the session's frame size: its first frame's
    ended = "end of stream"
    t0 = time.perf_counter()
    if not from_file:
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a camera's own queue short, where it can be
    last, interval = t0, 0.0  # the window's frame rate, smoothed over about ten frames
    take_newest = not from_file if newest is None else newest
    source_frames: Any = _NewestFrames(capture) if take_newest else _FileFrames(capture, fps)
    try:
        while max_frames is None or frames < max_frames:
            got = source_frames.next()
            if got is None:
                break
            rgb = cv2.cvtColor(got[0], cv2.COLOR_BGR2RGB)
            if size is None:
                size = (rgb.shape[0], rgb.shape[1])
            elif rgb.shape[:2] != size:  # an adaptive stream changed quality: same picture
                rgb = fit_frame(rgb, size)
                rescaled += 1
            frame = tracker.step(rgb, got[1])
            with _whole_frame():
                image = turn(rgb, tracker.rotation) if tracker.rotation else rgb
                picture = None  # drawn once, for the window and overlay.mp4
                if show or overlay:
                    picture = draw_faces(image, frame.faces, f"{frame.index + 1}", focal)
                if outputs is not None:
                    outputs.add(frame, image, picture)
                frames += 1
                with_points += any(f.points is not None for f in frame.faces)
            if show and picture is not None:
                now = time.perf_counter()
                interval = now - last if frames == 1 else 0.9 * interval + 0.1 * (now - last)
                last = now
                cv2.imshow(WINDOW, window_picture(picture, interval))
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    ended = "key"
                    break
                if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    ended = "window closed"
                    break
        else:
            ended = "max frames"
    except KeyboardInterrupt:
        ended = "interrupted"  # the usual end of a session without a window: keep what came
    except BaseException:
        if outputs is not None:
            outputs.abort()
        raise
    finally:
        source_frames.close()
        if show:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(WINDOW)
    seconds = time.perf_counter() - t0
    summary = LiveSummary(
        source,
        frames,
        with_points,
        seconds,
        ended,
        out,
        source_frames.dropped,
        rescaled,
        getattr(tracker, "cuts", 0),
    )
    if outputs is not None:
        outputs.close(
            {
                "frames": frames,
                "dropped": summary.dropped,
                "with_points": with_points,
                "runtime_s": seconds,
                "fps": summary.fps,
                "ended": ended,
                "cuts": summary.cuts,
                "status": "ok" if with_points else "no_face",
            }
        )
    return summary
