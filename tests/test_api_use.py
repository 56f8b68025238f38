"""How a Python caller can misuse a :class:`~crct_cli.Tracker` and what it is told: results it
may edit without reaching the tracker, one video at a time, one frame size a video, and the
keywords and paths that used to slip through (a review of the API, session 51)."""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from test_cli import assert_one_line_error, crct
from test_live import Slow
from test_pipeline import SKIN, FaceNets

import crct_cli.tracking.networks
from crct_cli import Face, Tracker, load_track
from crct_cli.errors import CrctError, OptionError
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import iter_frames
from crct_cli.live import run_live
from crct_cli.tracking.pipeline import TrackSummary
from crct_cli.ui import print_track_summary

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
VIDEO = SAMPLES / "astronaut.mp4"


def fake_tracker(**options: Any) -> Tracker:
    return Tracker(networks=FaceNets(), smooth=False, **options)


def test_editing_a_face_s_box_or_points_does_not_reach_the_tracker() -> None:
    """The astronaut clip tracked twice with the shipped networks, once turning every box
    returned into corners in place (a drawing helper's habit) and scaling the points: the
    points of every frame are the same, by step() and by track()."""
    frames = [f.image for f in iter_frames(VIDEO, 8)]

    def run(edit: bool, by_step: bool) -> list[np.ndarray]:
        tracker = Tracker(device="cpu", lookahead=False)
        out = []
        got = (tracker.step(im, i / 25) for i, im in enumerate(frames)) if by_step else None
        for frame in got if got is not None else tracker.track(np.stack(frames)):
            (face,) = frame.faces
            out.append(face.points.copy())
            if edit:
                face.box[2:] += face.box[:2]
                face.points[...] *= 2.0
        return out

    for by_step in (True, False):
        plain, edited = run(False, by_step), run(True, by_step)
        assert all(np.array_equal(a, b) for a, b in zip(plain, edited, strict=True))


def test_one_video_at_a_time(make_video) -> None:
    """Two track() runs of one tracker side by side, or a step() inside a track(), would mix
    the faces' state of two videos: the second is refused with one line saying what to do,
    and once the first is finished or closed the tracker is free again."""
    clip = make_video(n_frames=6)
    tracker = fake_tracker()
    alone = [f.faces[0].points for f in tracker.track(clip)]
    with pytest.raises(CrctError, match="already tracking a video.*its own Tracker"):
        list(zip(tracker.track(clip), tracker.track(clip), strict=True))
    first = tracker.track(clip)
    next(first)
    with pytest.raises(CrctError, match="already tracking"):
        tracker.step(np.zeros((72, 96, 3), np.uint8))
    with pytest.raises(CrctError, match="already tracking"):
        next(tracker.track(clip))
    with pytest.raises(CrctError, match="already tracking"):
        tracker.reset()  # the paused run would go on from nothing
    first.close()
    again = [f.faces[0].points for f in tracker.track(clip)]
    assert all(np.array_equal(a, b) for a, b in zip(alone, again, strict=True))
    for _ in tracker.track(clip):
        break  # a loop left early frees the tracker as the generator goes
    assert len(list(tracker.track(clip))) == 6


def test_two_threads_on_one_tracker_one_is_refused(make_video) -> None:
    """While one thread's track() runs, another thread's track() or step() is refused."""
    clip = make_video(n_frames=20)
    tracker = fake_tracker()
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow() -> None:
        for _ in tracker.track(clip):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=slow)
    thread.start()
    assert started.wait(10)
    for attempt in (
        lambda: list(tracker.track(clip)),
        lambda: tracker.step(np.zeros((72, 96, 3), np.uint8)),
    ):
        try:
            attempt()
        except CrctError as exc:
            errors.append(exc)
    release.set()
    thread.join(10)
    assert len(errors) == 2 and all("already tracking" in str(e) for e in errors)


def test_a_frame_of_another_size_in_step_is_refused_until_reset() -> None:
    """step() after 360x360 frames given a 720x720 one: an error, not points read at the old
    scale; reset() starts a new video of any size. After track() likewise: step() would go on
    from its faces."""
    tracker = fake_tracker()
    small = [f.image for f in iter_frames(VIDEO, 3)]
    for image in small:
        tracker.step(image)
    big = np.ascontiguousarray(np.repeat(np.repeat(small[0], 2, axis=0), 2, axis=1))
    with pytest.raises(CrctError, match=r"frame 3: 720x720, but the frames before were 360x360"):
        tracker.step(big)
    tracker.reset()
    assert tracker.step(big).index == 0
    tracker.reset()
    assert len(list(tracker.track(np.stack(small)))) == 3
    with pytest.raises(CrctError, match=r"720x720, but the frames before were 360x360"):
        tracker.step(big)


def test_a_frame_of_another_aspect_is_fitted_not_stretched() -> None:
    """A 4:3 stream that turns 16:9: scaled by one factor into the first size, centred on black
    bars, so a round face stays round."""
    from crct_cli.live import fit_frame

    wide = np.full((90, 160, 3), 200, np.uint8)
    fitted = fit_frame(wide, (120, 160))
    assert fitted.shape == (120, 160, 3)
    assert (fitted[15:105] == 200).all() and (fitted[:15] == 0).all() and (fitted[105:] == 0).all()
    tall = fit_frame(np.full((200, 100, 3), 90, np.uint8), (100, 100))
    assert (tall[:, 25:75] == 90).all() and (tall[:, :25] == 0).all() and (tall[:, 75:] == 0).all()


def test_live_scales_a_stream_that_changes_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that switches quality mid-session (HLS, a camera renegotiating) goes on: its
    frames are scaled to the first frame's size and counted, as step() needs one size."""
    import crct_cli.live

    pictures = [f.image[..., ::-1] for f in iter_frames(VIDEO, 6)]  # BGR, as OpenCV reads
    pictures[3:] = [np.ascontiguousarray(p[::2, ::2]) for p in pictures[3:]]

    class Capture:
        def __init__(self) -> None:
            self.i = 0

        def read(self) -> tuple[bool, np.ndarray | None]:
            if self.i == len(pictures):
                return False, None
            self.i += 1
            return True, np.ascontiguousarray(pictures[self.i - 1])

        def get(self, prop: int) -> float:
            return 25.0 if prop == crct_cli.live.cv2.CAP_PROP_FPS else self.i * 40.0

        def set(self, prop: int, value: float) -> bool:
            return True

        def release(self) -> None:
            pass

    monkeypatch.setattr(crct_cli.live, "open_capture", lambda source: (Capture(), True))
    seen = Slow(0.0)
    summary = run_live("stream", seen, None, show=False)
    assert (summary.frames, summary.rescaled) == (6, 3)
    assert seen.shapes == [(360, 360, 3)] * 6


def test_counts_are_whole_numbers_and_paths_are_checked(tmp_path: Path) -> None:
    """A count given as 2.5 or True is refused, not truncated (detect_every=2.5 looked on every
    fifth frame); a weights folder that is not there is one error, before any warning about
    what it lacks; a path as bytes is a path; max_frames=0 still checks the path."""
    for options in ({"faces": 2.5}, {"faces": True}, {"detect_every": 2.5}, {"max_lost": 1.5}):
        with pytest.raises(OptionError, match="must be"):
            Tracker(networks=object(), **options)
    whole = Tracker(networks=object(), faces=np.int64(2), detect_every=np.int32(3))
    assert (whole.multi.faces, whole.multi.detect_every) == (2, 3)
    as_before = Tracker(networks=object(), faces=2.0, detect_every=5.0, backfill=50.0)
    assert (as_before.multi.faces, as_before.multi.detect_every, as_before.backfill) == (2, 5, 50)
    assert type(as_before.multi.detect_every) is int
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no face finder in ..." first
        with pytest.raises(CrctError, match="weights_dir .*nowhere: no such folder"):
            Tracker(device="cpu", weights_dir=tmp_path / "nowhere")
    tracker = fake_tracker()
    assert len(list(tracker.track(os.fsencode(VIDEO), max_frames=2))) == 2
    with pytest.raises(CrctError, match="no such file or folder"):
        list(tracker.track(tmp_path / "typo.mp4", max_frames=0))
    assert list(tracker.track(VIDEO, max_frames=0)) == []
    with pytest.raises(OptionError, match="max_frames must be 0 or more"):
        list(tracker.track(VIDEO, max_frames=-1))


def test_align_refuses_a_box_outside_the_photo(tmp_path: Path) -> None:
    """A box that covers none of the photo would give points in FLL's padding with a state and
    a score as if a face were there: from Python an error naming the box, on the command line
    (a .pts of another photo beside it) that photo's one line, the others aligned."""
    photo = read_image(SAMPLES / "astronaut.jpg")
    tracker = fake_tracker()
    with pytest.raises(CrctError, match=r"boxes\[1\] \(5000, 5000, 100, 100\) lies outside"):
        tracker.align(photo, boxes=[[150, 60, 100, 120], [5000, 5000, 100, 100]])
    assert len(tracker.align(photo, boxes=[[-50, -50, 100, 100]])) == 1  # overlapping: kept
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, shift in (("good", 0.0), ("far", 4000.0)):
        (folder / f"{name}.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
        points = np.stack(np.meshgrid(np.linspace(180, 260, 17), [90, 200]), -1).reshape(-1, 2)
        write_pts(folder / f"{name}.pts", np.resize(points, (68, 2)) + shift)
    result = crct("align", folder, "--out", tmp_path / "out", "--box-from-pts")
    assert result.exit_code == 2
    assert "far.jpg: the box of far.pts lies outside the photo" in result.stderr
    assert (tmp_path / "out" / "good.pts").is_file() and not (tmp_path / "out" / "far.pts").exists()
    with pytest.raises(CrctError, match="a folder, not an image"):
        tracker.align(folder)


def test_a_run_s_arrays_want_an_int_id_and_a_batch_folder_says_where_runs_are(
    make_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crct_cli.batch

    monkeypatch.setattr(crct_cli.batch, "NETWORKS_FACTORY", FaceNets)
    (tmp_path / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(name, n_frames=3).rename(tmp_path / "in" / name)
    out = tmp_path / "runs"
    assert crct("track", tmp_path / "in", "--out", out).exit_code == 0
    with pytest.raises(CrctError, match="a run of several videos"):
        load_track(out)
    run = load_track(out / "a")
    with pytest.raises(TypeError, match=r"face_id must be an int \(one of \[0\]\)"):
        run.arrays("0")  # type: ignore[arg-type]
    assert run.arrays(np.int64(0)).points.shape == (3, 68, 2)
    bad = assert_one_line_error(crct("track", tmp_path / "in", "--out", out, "--faces", "2.5"))
    assert "--faces must be a positive number or 'all', got '2.5'" in bad


# -- the review of session 55 ------------------------------------------------------------


class _SeesPrevious(FaceNets):
    """FaceNets noting, at each BT step, whether the previous frame BT reads is blank."""

    def __init__(self) -> None:
        super().__init__()
        self.blank: list[bool] = []

    def bt_step(self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any) -> tuple:
        self.blank.append(not prev.any())
        return super().bt_step(prev, cur, box, state)


@pytest.mark.parametrize(
    "options",
    [{"lookahead": False}, {"backtrack": 0, "bridge_lost": False}],
    ids=["causal", "ahead"],
)
def test_drawing_on_a_frame_s_image_does_not_reach_bt(make_video, options: dict) -> None:
    """An overlay loop draws onto ``frame.image``; where a frame comes out as soon as it is
    tracked (no look ahead, or nothing to look ahead for), that picture was BT's previous
    frame for the next one, and the drawing moved its points."""
    clip = make_video(n_frames=8)
    nets = _SeesPrevious()
    for frame in Tracker(networks=nets, smooth=False, **options).track(clip):
        assert frame.image is not None and frame.image.any()
        frame.image[...] = 0
    assert len(nets.blank) >= 6 and not any(nets.blank)


def _noisy(clean: int, noisy: int) -> np.ndarray:
    """A still face on grey, ``clean`` frames as they are, then ``noisy`` with noise of 8 grey
    levels: from there the temporal filter averages each frame with the ones before it."""
    rng = np.random.default_rng(5)
    still = np.full((48, 64, 3), 120, np.uint8)
    still[16:32, 24:40] = SKIN
    noise = [np.clip(still + rng.normal(0, 8, still.shape), 0, 255) for _ in range(noisy)]
    return np.stack([still] * clean + [n.astype(np.uint8) for n in noise])


def test_drawing_on_a_frame_s_image_does_not_reach_the_temporal_filter() -> None:
    """Noise from frame 5: the first frame filtered (the 24th noisy one) is averaged with the
    two before it, which passed untouched and were given out; blanking them darkened it."""
    frames = _noisy(5, 30)

    def run(blank: bool) -> list[np.ndarray]:
        out = []
        for frame in fake_tracker(lookahead=False).track(frames.copy()):
            assert frame.image is not None
            out.append(frame.image.copy())
            if blank:
                frame.image[...] = 0
        return out

    plain = run(False)
    assert not np.array_equal(plain[-1], frames[-1])  # the filter ran
    assert all(np.array_equal(a, b) for a, b in zip(plain, run(True), strict=True))


def test_a_whole_float_radius_filters_noisy_footage() -> None:
    """``temporal_radius=2.0`` was kept a float, and ``range()`` failed on it once the filter
    ran: on noisy footage only, mid-track."""
    frames = _noisy(0, 30)
    assert len(list(fake_tracker(temporal_radius=2.0).track(frames))) == 30


def test_track_s_max_frames_says_what_track_takes() -> None:
    """``track`` takes 0 (nothing) and numpy's counts; -1 from numpy said "1 or more"."""
    tracker = fake_tracker()
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    for bad in (-1, np.int64(-1)):
        with pytest.raises(OptionError, match=r"^max_frames must be 0 or more \(0: none, None"):
            list(tracker.track(frames, max_frames=bad))
    assert list(tracker.track(frames, max_frames=np.int64(0))) == []
    with pytest.raises(OptionError, match="^skip_frames must be 0 or more"):
        list(tracker.track(frames, max_frames=0, skip_frames=-1))


def test_faces_and_frames_compare_by_value(make_video) -> None:
    """Two runs give equal frames and faces (``==`` asked an array's truth and raised), so a
    face is found in a list of them; another point, box or picture makes them differ."""
    clip = make_video(n_frames=6)
    first, second = list(fake_tracker().track(clip)), list(fake_tracker().track(clip))
    assert first == second and first[2] != first[3]
    face = first[3].faces[0]
    assert face == copy.deepcopy(face) and face in second[3].faces
    assert second[3].faces.index(face) == 0
    assert face != dataclasses.replace(face, points=face.points + 0.5)
    assert face != dataclasses.replace(face, box=None) and face != "face"
    assert first[3] != dataclasses.replace(first[3], image=np.zeros_like(first[3].image))
    lost = Face(1, np.full((68, 2), np.nan), None, None, "lost")
    assert lost == copy.deepcopy(lost)


def test_timings_keep_the_latest_calls_count_them_all_and_start_afresh_on_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A webcam's step() loop kept every call's seconds (14 MB an hour); ``timings`` was the
    live record and reset() kept it. The closing table of ``crct track`` still counts all."""
    monkeypatch.setattr(crct_cli.tracking.networks, "TIMINGS_KEPT", 3, raising=False)
    tracker = Tracker(device="cpu", lookahead=False)
    for i, image in enumerate(iter_frames(VIDEO, 8)):
        tracker.step(image.image, i / 25)
    timings = tracker.timings
    fll = timings["fll"]
    assert 3 <= len(fll) < 6 and fll.calls >= 8 and fll == tracker.timings["fll"]
    assert fll.seconds >= sum(fll) > 0
    console = Console(record=True, width=300)
    print_track_summary(console, TrackSummary("v", "o", 8, 8, 8, 0, 0, 1, 1.0), timings)
    assert f" ms x{fll.calls}" in console.export_text()
    timings.clear()
    assert tracker.timings["fll"].calls == fll.calls  # a copy: the tracker's record goes on
    tracker.reset()
    assert tracker.timings == {}


# -- the review's doubtful points (session 55) ---------------------------------------------


def test_track_s_arguments_are_refused_at_the_call(make_video, tmp_path: Path) -> None:
    """``g = tracker.track(...)`` in a notebook cell said nothing of a typo until ``next(g)``,
    cells later; the arguments are checked at the call. The tracker is still held only once
    the frames are asked for: a generator never started holds nothing."""
    clip = make_video(n_frames=4)
    tracker = fake_tracker()
    with pytest.raises(CrctError, match=r"typo\.mp4: no such file or folder"):
        tracker.track(tmp_path / "typo.mp4")
    with pytest.raises(OptionError, match=r"^max_frames must be 0 or more"):
        tracker.track(clip, max_frames=-1)
    with pytest.raises(OptionError, match=r"^max_frames must be a whole number"):
        tracker.track(clip, max_frames=2.5)
    with pytest.raises(OptionError, match=r"^skip_frames must be 0 or more"):
        tracker.track(clip, skip_frames=-1)
    with pytest.raises(OptionError, match=r"^skip_frames must be 0 or more"):
        tracker.track(clip, max_frames=0, skip_frames=-1)
    with pytest.raises(CrctError, match=r"^rotate must be 0, 90, 180, 270"):
        tracker.track(clip, rotate=45)
    with pytest.raises(CrctError, match=r"^rotate must be 0, 90, 180, 270"):
        tracker.track(clip, max_frames=0, rotate=45)
    unstarted = tracker.track(clip)  # not iterated: the tracker is free
    assert len(list(tracker.track(clip))) == 4
    tracker.step(next(iter_frames(clip)).image)
    assert len(list(unstarted)) == 4
    assert list(tracker.track(clip, max_frames=0)) == []


def test_several_videos_or_photos_given_as_one_are_refused_in_words() -> None:
    """``track([path])``, ``track({...})`` and ``align([path, path])`` were read as frames in
    memory and refused one item at a time ("a frame must be a uint8 array ... got <U32 ()"):
    one line says what was given and what takes several. Frames in a list are still frames,
    and an image's rows in a list still an image."""
    tracker = fake_tracker()
    several = "track_videos\\(paths, out\\)"
    for given, what in (
        ([VIDEO], "a list of 1 path"),
        ((str(VIDEO), os.fsencode(VIDEO)), "a tuple of 2 paths"),
        ({"clip": VIDEO}, "a dict"),
    ):
        with pytest.raises(
            CrctError, match=f"^track\\(\\) takes one video, got {what}: .*{several}"
        ):
            tracker.track(given)
    with pytest.raises(
        CrctError, match=r"^track\(\) takes one video, its path or its frames .*got int"
    ):
        tracker.track(3)  # type: ignore[arg-type]
    photo = read_image(SAMPLES / "astronaut.jpg")
    once = "call align\\(\\) once per image"
    for given, what in (
        ([SAMPLES / "astronaut.jpg"] * 2, "a list of 2 paths"),
        ([photo, photo], "a list of 2 arrays"),
        (photo[None], r"an array of 1 image, shape \(1, 512, 512, 3\)"),
    ):
        with pytest.raises(CrctError, match=f"^align\\(\\) takes one image, .*got {what}: {once}"):
            tracker.align(given)
    assert len(tracker.align(list(photo))) == len(tracker.align(photo)) == 1
    assert len(list(tracker.track([photo, photo]))) == 2


@pytest.mark.parametrize("lookahead", [False, True], ids=["causal", "ahead"])
def test_frames_kept_without_their_pictures(make_video, lookahead: bool) -> None:
    """``list(tracker.track(video))`` held every decoded picture (6 MB a 1080p frame, the
    README's own example); ``images=False`` keeps the frames' faces alone: the same points,
    ``image`` None, and no memory held for the pictures once the frames are out."""
    import tracemalloc

    clip = make_video(n_frames=30, width=320, height=240)
    with_images = list(fake_tracker(lookahead=lookahead).track(clip))
    assert all(f.image is not None and f.image.shape == (240, 320, 3) for f in with_images)
    tracker = fake_tracker(lookahead=lookahead)
    kept: dict[bool, int] = {}
    for images in (True, False):
        tracemalloc.start()
        frames = list(tracker.track(clip, images=images))
        kept[images] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        if not images:
            assert all(f.image is None for f in frames)
            assert [f.faces for f in frames] == [f.faces for f in with_images]
            assert [(f.index, f.time) for f in frames] == [(f.index, f.time) for f in with_images]
        del frames
    picture = 320 * 240 * 3
    assert kept[True] > 25 * picture and kept[False] < picture  # not one picture kept
    with pytest.raises(CrctError, match="^images must be True or False"):
        tracker.track(clip, images="no")  # type: ignore[arg-type]


def test_a_refused_step_leaves_the_tracker_as_it_was() -> None:
    """``step(frame, time_s=nan)`` was refused after the tracker had taken the frame's size and
    started its clock, so the next frame, of another size, was refused too; a first box
    outside the first frame likewise. A frame refused changes nothing."""
    small = [f.image for f in iter_frames(VIDEO, 2)]
    big = np.ascontiguousarray(np.repeat(np.repeat(small[0], 2, axis=0), 2, axis=1))
    tracker = fake_tracker()
    for bad in (float("nan"), float("inf"), "soon"):
        with pytest.raises(CrctError, match="^time_s must be a finite number of seconds"):
            tracker.step(small[0], time_s=bad)  # type: ignore[arg-type]
    first = tracker.step(big)
    assert (first.index, first.time) == (0, 0.0)  # the clock starts at this frame
    assert tracker.step(big, time_s=0.04).index == 1
    boxed = fake_tracker(init_box=[500, 500, 100, 100])
    with pytest.raises(OptionError, match=r"^init_box \(500, 500, 100, 100\) lies outside"):
        boxed.step(small[0])
    assert boxed.step(big).index == 0


# -- the review's doubtful points left after session 55 (session 56) -----------------------


class _Jittery(FaceNets):
    """FaceNets whose FLL answers shake by about a pixel, as a real localiser's do: what the
    smoothing takes out (the same shakes, call by call, for every tracker made)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        self.calls += 1
        shake = np.random.default_rng(self.calls).normal(0.0, 1.0, (68, 2))
        return super().localize(image, box, mirrored) + shake


def test_step_times_go_forward_and_a_repeated_one_is_still_smoothed(make_video) -> None:
    """``step(frame, time_s=...)`` with a time equal to the frame before's turned the One Euro
    filter off for that frame (it starts afresh where no time has passed: the raw points), and
    a time going back turned it off for good (the review's t08: 0.00 px of smoothing). A
    repeated stamp is now read one interval (the last one seen) after the frame before; a
    time going back is refused, changing nothing, and says what starts a new video."""
    frames = [f.image for f in iter_frames(make_video(n_frames=6))]

    def run(times: list[float], **options: Any) -> list[Any]:
        tracker = Tracker(networks=_Jittery(), **options)
        return [tracker.step(frames[i], t) for i, t in enumerate(times)]

    def points(run: list[Any]) -> list[np.ndarray]:
        return [f.faces[0].points for f in run]

    raw = points(run([i / 25 for i in range(6)], smooth=False))
    even = points(run([0.0, 0.04, 0.08, 0.12, 0.16, 0.2]))
    repeated = run([0.0, 0.04, 0.08, 0.08, 0.12, 0.16])
    assert [f.time for f in repeated] == [0.0, 0.04, 0.08, 0.08, 0.12, 0.16]  # as given
    assert np.abs(repeated[3].faces[0].points - raw[3]).max() > 0.1  # smoothed, not raw
    assert all(np.allclose(a, b) for a, b in zip(points(repeated), even, strict=True))
    # two first frames stamped alike: 1 / sequence_fps apart, as frames with no times are
    at_start = points(run([0.0, 0.0, 0.04], sequence_fps=25))
    assert all(np.allclose(a, b) for a, b in zip(at_start, even[:3], strict=True))
    tracker = Tracker(networks=_Jittery())
    for i in range(3):
        tracker.step(frames[i], i / 25)
    with pytest.raises(
        CrctError, match=r"^frame 3: time_s=0.01 is before the frame before's time, 0.08 s; "
    ) as refused:
        tracker.step(frames[3], 0.01)
    assert "reset() starts a new video" in str(refused.value)
    on = [tracker.step(frames[i], i / 25) for i in range(3, 6)]  # as if never refused
    assert [f.index for f in on] == [3, 4, 5]
    assert all(np.array_equal(a.faces[0].points, b) for a, b in zip(on, even[3:], strict=True))
    tracker.reset()
    assert tracker.step(frames[0], 0.0).index == 0  # a new video's times start anew


def test_a_file_read_live_whose_times_go_back_goes_on_at_its_rate() -> None:
    """``crct live`` on a file passes OpenCV's times to ``step``, which now refuses a time
    that goes back: a file whose clock goes back (recordings joined end to end) goes on one
    frame at the file's rate after the frame before."""
    from crct_cli.live import CAMERA_FPS, _FileFrames

    class Capture:
        stamps = iter([0.0, 40.0, 80.0, 0.0, 40.0, float("nan")])  # ms

        def read(self) -> tuple[bool, np.ndarray]:
            self.now = next(self.stamps)
            return True, np.zeros((4, 4, 3), np.uint8)

        def get(self, prop: int) -> float:
            return self.now

    frames = _FileFrames(Capture())  # run_live gives the file's rate; 30 where none
    times = [frames.next()[1] for _ in range(6)]  # type: ignore[index]
    assert times == pytest.approx([0.0, 0.04, 0.08] + [0.08 + i / CAMERA_FPS for i in (1, 2, 3)])


def test_orientation_reads_a_list_of_frames_again(face_image) -> None:
    """``orientation(list_of_frames)`` was refused as "frames from an iterator", though a list
    (as an array) can be read again; it now says the turn ``track`` takes, and only a one-shot
    iterator, which the look would use up, is refused, in words saying what to do."""
    from test_orientation import UprightNets, marked

    from crct_cli.tracking.orientation import turn

    lying = [turn(marked(face_image(128, 96, i / 25)), 270) for i in range(6)]
    tracker = Tracker(networks=UprightNets(), rotate="auto", smooth=False)
    assert tracker.orientation(lying) == tracker.orientation(tuple(lying)) == 90
    assert tracker.orientation(np.stack(lying)) == 90
    tracked = list(tracker.track(lying))
    assert tracker.rotation == 90 and len(tracked) == 6
    assert np.array_equal(tracked[0].image, marked(face_image(128, 96, 0.0)))  # upright
    for one_shot in (iter(lying), (f for f in lying)):
        with pytest.raises(CrctError, match=r"^orientation\(\) reads .* or a list of frames; a "):
            tracker.orientation(one_shot)
    with pytest.raises(CrctError, match=r"can be read only once: give it to track\(frames"):
        tracker.orientation(iter(lying))
    with pytest.raises(CrctError, match=r"^orientation\(\) takes one video, got a list of 2"):
        tracker.orientation([VIDEO, VIDEO])


def test_paths_where_frames_belong_are_refused_in_one_line(make_video) -> None:
    """A generator of image paths given to ``track()`` was refused once iterated as "frame 0:
    a frame must be a uint8 array ... got <U43 ()", which does not say what was wrong. The
    first path read now says it is a path and what to give instead; an iterator is still not
    read at the call (a camera's generator starts nothing until its frames are asked for)."""
    tracker = fake_tracker()
    paths = [str(VIDEO), str(VIDEO)]
    for given in ((p for p in paths), iter(paths), map(Path, paths)):
        tracked = tracker.track(given)
        with pytest.raises(
            CrctError,
            match=r"^frame 0: a frame must be an image's pixels \(a uint8 array\), got a path, "
            r"'.*astronaut.mp4': read it first .* or give track\(\) the folder of images",
        ):
            next(tracked)
    images = [f.image for f in iter_frames(make_video(n_frames=5))]
    read: list[int] = []

    def frames() -> Any:
        for i, image in enumerate(images):
            read.append(i)
            yield image

    given = tracker.track(frames())
    assert read == []  # nothing read at the call
    streamed = list(given)
    assert [f.index for f in streamed] == list(range(5)) and read == list(range(5))
    assert [f.faces for f in streamed] == [f.faces for f in tracker.track(np.stack(images))]
    with pytest.raises(CrctError, match=r"^no frames to track"):
        list(tracker.track(iter([])))
    with pytest.raises(
        CrctError, match=r"^frame 1: a frame must be an image's pixels .* got a path, '.*mp4'"
    ):
        list(tracker.track([images[0], str(VIDEO)]))


def test_a_second_track_is_refused_at_the_call(make_video) -> None:
    """``track()`` checks its arguments at the call (session 55), but a second ``track()``
    while the first was paused in its loop was refused only once iterated."""
    clip = make_video(n_frames=4)
    tracker = fake_tracker()
    first = tracker.track(clip)
    next(first)
    with pytest.raises(CrctError, match="^this Tracker is already tracking a video"):
        tracker.track(clip)  # not iterated
    with pytest.raises(CrctError, match="^this Tracker is already tracking a video"):
        tracker.track(iter([np.zeros((72, 96, 3), np.uint8)]))
    assert len(list(first)) == 3
    assert len(list(tracker.track(clip))) == 4


def test_align_during_a_track_leaves_the_track_s_rotation(make_video, face_image) -> None:
    """``align()`` between two frames of a paused ``track()`` set ``tracker.rotation`` to the
    photo's turn (90 became 0 mid-track), which a caller reads to draw on the track's frames.
    It now changes nothing of the track; the track's points are the same; after the track,
    ``rotation`` is align's turn again."""
    clip = make_video(n_frames=5)
    photo = face_image(128, 96, 0.0)
    alone = [f.faces for f in fake_tracker(rotate=90).track(clip)]
    tracker = fake_tracker(rotate=90)
    mixed = []
    for frame in tracker.track(clip):
        mixed.append(frame.faces)
        assert len(tracker.align(photo, rotate=0)) == 1
        assert tracker.rotation == 90
    assert mixed == alone
    tracker.align(photo, rotate=180)
    assert tracker.rotation == 180


UNGUARDED = """
import sys
from crct_cli import track_videos
from crct_cli.errors import CrctError
try:
    track_videos([{video!r}], {out!r}, workers=2, max_frames=2, device="cpu")
except CrctError as exc:
    print("error:", exc)
    sys.exit(3)
"""


def test_track_videos_in_a_script_without_the_main_guard_says_so_quietly(tmp_path: Path) -> None:
    """Each spawned worker imports the script; unguarded, each ran ``track_videos`` again and
    printed a long traceback ("... is being written by another crct track run", which misled)
    before the run's own error. The workers now leave at once, printing nothing, and the run
    stops at the first with the one error that names the guard."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(video=str(VIDEO), out=str(tmp_path / "out")))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("error: worker processes start by importing this script")
    assert 'if __name__ == "__main__":' in done.stdout
    assert done.stderr == ""
