"""``crct live``: a camera or stream tracked frame by frame, shown, and written with --out.

No camera here: OpenCV reads a video file as it reads a stream, so the astronaut clip stands
for one (the shipped networks: its points are ``Tracker.step``'s on the same frames), and
generated clips with the fake networks of test_pipeline check turning, Ctrl-C and failures.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import assert_one_line_error, crct
from test_pipeline import FaceNets, box_centre, skin_centre

import crct_cli.batch
from crct_cli.api import Tracker
from crct_cli.errors import CrctError
from crct_cli.io.openface_csv import read_landmarks_csv
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.live import LiveSummary, run_live
from crct_cli.tracking.orientation import turn

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
VIDEO = SAMPLES / "astronaut.mp4"


def test_a_stream_is_tracked_frame_by_frame_as_step_tracks_it(tmp_path: Path) -> None:
    out = tmp_path / "session"
    result = crct("live", VIDEO, "--no-show", "--out", out, "--overlay", "--max-frames", 12)
    assert result.exit_code == 0, result.output
    assert "12 frames from" in result.stderr and "ended: max frames" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["landmarks.csv", "overlay.mp4", "track.json"]
    track = read_track_json(out / "track.json")
    assert track.header["live"] is True and track.header["n_frames"] is None
    assert (track.header["width"], track.header["height"], track.header["fps"]) == (360, 360, 25)
    assert track.summary["ended"] == "max frames" and track.summary["frames_written"] == 12
    # what step() does: nothing read ahead (a session recorded crct track's look-ahead as on)
    config = track.header["config"]
    assert (config["lookahead"], config["backtrack"], config["bridge_lost"]) == (False, 0, False)
    assert config["backfill"] == 0 and config["smooth"] == Tracker().smooth
    rows = read_landmarks_csv(out / "landmarks.csv")
    assert [r.frame for r in rows] == list(range(1, 13))
    assert [r.timestamp for r in rows] == pytest.approx([i / 25 for i in range(12)], abs=1e-3)
    # the same frames decoded by PyAV, one by one through Tracker.step at the same times
    tracker = Tracker(device="cpu")
    for row, frame in zip(rows, iter_frames(VIDEO, 12), strict=True):
        (face,) = tracker.step(frame.image, frame.time).faces
        assert np.abs(row.points - face.points).max() < 1.0  # two decoders of one file
    assert probe_video(out / "overlay.mp4").n_frames == 12


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", FaceNets)


def test_a_camera_on_its_side_is_turned(make_video, tmp_path: Path, fakes: None) -> None:
    video = make_video("clip.mp4", n_frames=6, width=128, height=96)
    out = tmp_path / "session"
    result = crct("live", video, "--no-show", "--out", out, "--rotate", "90", "--overlay")
    assert result.exit_code == 0, result.output
    header = read_track_json(out / "track.json").header
    assert (header["width"], header["height"], header["rotate"]) == (96, 128, 90)
    overlay = probe_video(out / "overlay.mp4")
    assert (overlay.width, overlay.height) == (96, 128)
    rows = read_landmarks_csv(out / "landmarks.csv")
    for row, frame in zip(rows, iter_frames(video), strict=True):
        assert np.linalg.norm(box_centre(row.points) - skin_centre(turn(frame.image, 90))) < 1.5


class StopsAt:
    """A Tracker whose ``step`` raises ``error`` at frame ``at`` (from 1)."""

    def __init__(self, at: int, error: BaseException) -> None:
        self.inner = Tracker(networks=FaceNets(), smooth=False)
        self.at, self.error, self.calls = at, error, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, rgb: np.ndarray, time_s: float | None = None) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return self.inner.step(rgb, time_s)


def test_ctrl_c_keeps_the_session_so_far_and_a_failure_leaves_nothing(
    make_video, tmp_path: Path
) -> None:
    video = make_video("clip.mp4", n_frames=8)
    out = tmp_path / "stopped"
    out.mkdir()
    summary = run_live(str(video), StopsAt(5, KeyboardInterrupt()), out, show=False)
    assert summary == LiveSummary(str(video), 4, 4, summary.seconds, "interrupted", out)
    track = read_track_json(out / "track.json")
    assert track.summary["ended"] == "interrupted" and len(track.frames) == 4
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(RuntimeError, match="exploded"):
        run_live(str(video), StopsAt(3, RuntimeError("exploded")), broken, show=False)
    assert list(broken.iterdir()) == []  # no partial file left behind
    auto = Tracker(networks=FaceNets(), rotate="auto")
    with pytest.raises(CrctError, match="rotate auto looks at a video's first frames"):
        run_live(str(video), auto, broken, show=False)  # its files would change size
    assert run_live(str(video), auto, None, show=False).frames == 8  # shown only: it may turn


def test_bad_sources_and_options_are_one_clear_line(
    make_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: None
) -> None:
    video = make_video("clip.mp4", n_frames=2)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "track.json").write_text("{}")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cases = [
        (["99", "--no-show"], "camera 99: cannot be opened"),
        ([tmp_path / "none.mp4", "--no-show"], "none.mp4: no such camera, stream or video file"),
        ([tmp_path, "--no-show"], "a folder; crct live reads a camera"),
        ([SAMPLES.parent / "README.md", "--no-show"], "cannot be opened as a stream or video"),
        ([video, "--no-show", "--overlay"], "--overlay needs --out"),
        ([video, "--no-show", "--rotate", "auto"], "--rotate auto looks at a video's first"),
        ([video, "--no-show", "--max-frames", "0"], "--max-frames must be 1 or more"),
        ([video, "--no-show", "--out", tmp_path / "done"], "--overwrite replaces a session"),
    ]
    if sys.platform.startswith("linux"):
        cases.append(([video, "--max-frames", "1"], "no display to show the frames on"))
    for args, message in cases:
        line = assert_one_line_error(crct("live", *args))
        assert message in line, line
    again = crct("live", video, "--no-show", "--out", tmp_path / "done", "--overwrite")
    assert again.exit_code == 0 and read_track_json(tmp_path / "done" / "track.json").frames
    # a source that cannot be opened leaves no empty session folder (it was made, and left)
    for source in ("99", SAMPLES.parent / "README.md"):
        line = assert_one_line_error(crct("live", source, "--no-show", "--out", tmp_path / "s"))
        assert "cannot be opened" in line and not (tmp_path / "s").exists()


class Slow:
    """A Tracker that takes ``seconds`` a frame, and keeps the shape of each frame given."""

    def __init__(self, seconds: float) -> None:
        self.inner = Tracker(networks=FaceNets(), smooth=False)
        self.seconds = seconds
        self.shapes: list[tuple[int, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, rgb: np.ndarray, time_s: float | None = None) -> Any:
        import time

        time.sleep(self.seconds)
        self.shapes.append(rgb.shape)
        return self.inner.step(rgb, time_s)


def test_a_stream_faster_than_the_tracker_drops_what_came_meanwhile(
    make_video, tmp_path: Path
) -> None:
    """Taking the newest frame (a camera's, a stream's), a slow tracker skips frames rather
    than falling behind: each frame read is tracked or counted dropped, the times increase, and
    the frames tracked are frames of the stream in order. A file is read frame by frame."""
    video = make_video("clip.mp4", n_frames=40, width=64, height=48)
    out = tmp_path / "s"
    out.mkdir()
    summary = run_live(str(video), Slow(0.03), out, show=False, newest=True)
    assert summary.dropped > 0 and summary.frames + summary.dropped == 40
    times = [r.timestamp for r in read_landmarks_csv(out / "landmarks.csv")]
    assert len(times) == summary.frames and times == sorted(times) and times[0] >= 0.0
    every = run_live(str(video), Slow(0.0), None, show=False)
    assert (every.frames, every.dropped) == (40, 0)


def test_the_window_shows_the_frame_and_its_rate_and_leaves_the_file_s_frame(
    face_image,
) -> None:
    """No display here, so the window's picture is checked, not the window: the drawn frame in
    OpenCV's BGR with the rate written top right, the frame overlay.mp4 gets untouched."""
    from crct_cli.live import window_picture

    picture = face_image(640, 360, 0.0)
    kept = picture.copy()
    shown = window_picture(picture, 1 / 25)
    assert np.array_equal(picture, kept) and shown.shape == picture.shape
    changed = np.abs(shown.astype(int) - picture[..., ::-1]).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert len(xs) > 50 and xs.min() >= 640 - 80 and ys.max() < 30  # the text, top right only


def test_ctrl_c_while_a_frame_is_written_keeps_it_whole(
    make_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between a frame's tracking and its last file waits for the frame: it is in the
    count, track.json, landmarks.csv and overlay.mp4 alike (it was counted and in no file)."""
    import signal

    import crct_cli.live as live

    video = make_video("clip.mp4", n_frames=10)
    drawn = []

    def draw_then_ctrl_c(*args: Any, **kwargs: Any) -> np.ndarray:
        drawn.append(1)
        if len(drawn) == 5:
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    original = live.draw_faces
    monkeypatch.setattr(live, "draw_faces", draw_then_ctrl_c)
    out = tmp_path / "session"
    out.mkdir()
    tracker = Tracker(networks=FaceNets(), smooth=False)
    # Ctrl-C as Python handles it: a suite started in the background (nohup, CI) ignores it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = run_live(str(video), tracker, out, overlay=True, show=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert summary.ended == "interrupted" and summary.frames == 5
    track = read_track_json(out / "track.json")
    assert len(track.frames) == track.summary["frames"] == 5
    assert len(read_landmarks_csv(out / "landmarks.csv")) == 5
    assert probe_video(out / "overlay.mp4").n_frames == 5


def test_a_session_over_a_run_leaves_none_of_the_run_s_files(
    make_video, tmp_path: Path, fakes: None
) -> None:
    """--overwrite over a crct track run or an earlier session: its overlay.mp4 (of other
    frames), and a run's .pts folders and resume marker (of another video), go; a folder's
    annot/ that no crct run wrote (a dataset's labels) stays."""
    video = make_video("clip.mp4", n_frames=6)
    other = make_video("other.mp4", n_frames=4)
    out = tmp_path / "run"
    assert crct("track", video, "--out", out, "--overlay").exit_code == 0
    assert (out / "annot").is_dir() and (out / ".crct-input.json").is_file()
    result = crct("live", other, "--no-show", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["landmarks.csv", "track.json"]
    labelled = tmp_path / "labelled"
    (labelled / "annot").mkdir(parents=True)
    (labelled / "annot" / "000001.pts").write_text("truth")
    assert crct("live", other, "--no-show", "--out", labelled, "--overlay").exit_code == 0
    again = crct("live", other, "--no-show", "--out", labelled, "--overwrite")
    assert again.exit_code == 0, again.output
    names = sorted(p.name for p in labelled.iterdir())
    assert names == ["annot", "landmarks.csv", "track.json"]  # the old overlay.mp4 gone
    assert (labelled / "annot" / "000001.pts").read_text() == "truth"
    # crct track over the session: refused as a session, not as files "crct did not write"
    refused = crct("track", video, "--out", out)
    line = assert_one_line_error(refused)
    assert f"{out} holds a crct live session (track.json, landmarks.csv; --overwrite" in line


def test_run_live_takes_a_folder_by_its_name_and_makes_it(make_video, tmp_path: Path) -> None:
    """``out`` as a string, and a folder not there yet (a TypeError and, once a frame was
    tracked, a missing folder before)."""
    video = make_video("clip.mp4", n_frames=3)
    out = tmp_path / "new" / "session"
    summary = run_live(str(video), Tracker(networks=FaceNets()), str(out), show=False)
    assert summary.frames == 3 and summary.out == out
    assert len(read_track_json(out / "track.json").frames) == 3


def test_the_overlay_shows_each_frame_at_its_time(make_video, tmp_path: Path, fakes: None) -> None:
    """A video whose frames are 0.1 s apart in a 25 fps time base (a phone's variable rate, a
    camera's dropped frames): overlay.mp4 shows each frame at its time in track.json, as
    crct track's does (it played them one tick of its rate apart, too fast)."""
    import av

    from crct_cli.io.video import VideoWriter

    video = tmp_path / "vfr.mp4"
    with VideoWriter(video, 25, 96, 72) as writer:
        for frame in iter_frames(make_video("clip.mp4", n_frames=8)):
            writer.write(frame.image, time=0.1 * frame.index)
    out = tmp_path / "session"
    result = crct("live", video, "--no-show", "--out", out, "--overlay")
    assert result.exit_code == 0, result.output
    times = [r.time for r in read_track_json(out / "track.json").frames]
    assert times == pytest.approx([0.1 * i for i in range(8)], abs=1e-3)
    with av.open(str(out / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        shown = [float(f.pts * f.time_base) for f in container.decode(stream)]
    assert shown == pytest.approx(times, abs=0.005)


def test_a_session_stopped_early_is_drawn_on_its_file(
    make_video, tmp_path: Path, fakes: None
) -> None:
    """crct draw on a crct live session of a file cut short (--max-frames, Ctrl-C): its
    frames, on that file (refused before: the file had more frames than the session)."""
    video = make_video("clip.mp4", n_frames=12)
    out = tmp_path / "session"
    assert crct("live", video, "--no-show", "--out", out, "--max-frames", 5).exit_code == 0
    result = crct("draw", out)
    assert result.exit_code == 0, result.output
    assert probe_video(out / "draw.mp4").n_frames == 5
