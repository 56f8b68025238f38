"""``--rotate`` / ``Tracker(rotate=...)``: a video lying on its side is turned before tracking.

Fake networks (``test_pipeline.FaceNets``) put their points on the cartoon face's skin, so the
points written tell which picture, turned which way, the tracker read. For ``auto`` the fake
detector is surest where a red mark sits top left, as the real MTCNN is surest of an upright
face (test_api checks the real one on the astronaut turned).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import SKIN, FaceNets, box_centre, skin_centre

from crct_cli.align_images import align_images
from crct_cli.api import Tracker
from crct_cli.batch.worker import settings_of
from crct_cli.errors import CrctError, OptionError
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import read_pts, write_pts
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import Frame, iter_frames, probe_video
from crct_cli.overlay import draw_overlay
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.orientation import (
    MARGIN,
    ROTATIONS,
    SEARCH_EVERY,
    SEARCH_FRAMES,
    certainty,
    choose_rotation,
    look_for_turn,
    orient_still,
    parse_rotate,
    turn,
    turn_points,
    turned_size,
    unturn_points,
)
from crct_cli.tracking.pipeline import track_video

W, H, N = 128, 96, 8


def marked(image: np.ndarray) -> np.ndarray:
    """``image`` with a red mark in its top-left corner: which way is up."""
    out = image.copy()
    out[:8, :8] = (255, 0, 0)
    return out


def mark_is_top_left(image: np.ndarray) -> bool:
    h, w = image.shape[:2]
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    ys, xs = np.nonzero(red)
    return len(xs) > 0 and xs.mean() < w / 2 and ys.mean() < h / 2


def has_skin(image: np.ndarray) -> bool:
    return bool((np.abs(image.astype(np.int32) - SKIN).sum(axis=2) < 60).any())


class UprightNets(FaceNets):
    """FaceNets whose detector is sure of the face (0.99999) only with the mark top left, and
    takes it for a face less surely (0.95) in any other turn, as MTCNN does a face on its side."""

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        if not has_skin(image):
            self.n_detect += 1
            return []
        found = super().detect(image, relaxed)
        score = 0.99999 if mark_is_top_left(image) else 0.95
        return [Detection(d.box, d.raw_box, score) for d in found]


@pytest.fixture
def upright(face_image: Callable[..., np.ndarray]) -> np.ndarray:
    """(N, H, W, 3): the cartoon face drifting, marked top left."""
    return np.stack([marked(face_image(W, H, i / 25.0)) for i in range(N)])


def test_rotate_takes_quarter_turns_and_auto_only() -> None:
    assert [parse_rotate(v) for v in (0, 90, "180", " 270 ", "AUTO", np.int64(90))] == [
        0,
        90,
        180,
        270,
        "auto",
        90,
    ]
    for bad in (45, -90, 360, "sideways", 90.0, True, None):
        with pytest.raises(CrctError, match="rotate must be 0, 90, 180, 270"):
            parse_rotate(bad)


def test_a_clockwise_turn_and_its_size() -> None:
    image = np.zeros((2, 3), np.uint8)
    image[0, 0] = 1  # top left
    turned = turn(image, 90)
    assert turned.shape == (3, 2) and turned[0, 1] == 1  # top left goes top right
    assert turn(image, 180)[1, 2] == 1 and turn(image, 270)[2, 0] == 1
    assert turn(image, 0) is image
    assert turned_size(640, 360, 90) == (360, 640) == turned_size(640, 360, 270)
    assert turned_size(640, 360, 180) == (640, 360)


def test_certainty_spreads_the_probabilities_near_one() -> None:
    def finds(*scores: float) -> Callable[[np.ndarray], list[Detection]]:
        box = np.array([0.0, 0.0, 1.0, 1.0])
        return lambda image: [Detection(box, box, s) for s in scores]

    image = np.zeros((4, 4, 3), np.uint8)
    assert certainty(finds(), image) == 0.0
    assert certainty(finds(0.95, 0.5), image) == pytest.approx(np.log(19.0))
    assert certainty(finds(0.9999), image) - certainty(finds(0.99), image) > MARGIN
    assert certainty(finds(1.0), image) == pytest.approx(np.log(1e6), rel=1e-3)  # capped


@pytest.mark.parametrize("lying", [0, 90, 180, 270])
def test_the_turn_that_shows_the_face_surest_is_chosen(upright: np.ndarray, lying: int) -> None:
    nets = UprightNets()
    images = [turn(image, -lying) for image in upright[:3]]  # lying `lying` degrees anticlockwise
    assert choose_rotation(images, nets.detect) == (lying, True)
    assert nets.n_detect == 2 * 4  # one turn far ahead after two images: the third not looked at


def test_the_look_goes_on_while_no_turn_is_far_ahead(upright: np.ndarray) -> None:
    """Upright at 0.999 against 0.95 in the other turns (logits 6.9 and 2.9): ahead, but not by
    DECISIVE, so every image is looked at in every turn, and the upright turn is still taken."""

    class Closer(UprightNets):
        def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
            score = 0.999 if mark_is_top_left(image) else 0.95
            return [Detection(d.box, d.raw_box, score) for d in super().detect(image, relaxed)]

    nets = Closer()
    images = [turn(image, -90) for image in upright[:3]]
    assert choose_rotation(images, nets.detect) == (90, True)
    assert nets.n_detect == 3 * 4


def test_no_face_or_no_clear_winner_keeps_the_video_as_it_came(upright: np.ndarray) -> None:
    assert choose_rotation([], FaceNets().detect) == (0, False)
    assert choose_rotation(list(upright[:2]), FaceNets(find_faces=False).detect) == (0, False)
    # every turn as sure as another (a face tilted 45 degrees reads either way): as it came
    assert choose_rotation([turn(upright[0], 90)], FaceNets().detect) == (0, True)


def frames_of(images: list[np.ndarray]) -> Iterator[Frame]:
    return (Frame(i, i / 25.0, image) for i, image in enumerate(images))


def test_the_look_waits_for_a_face_that_comes_later_and_gives_back_every_frame(
    upright: np.ndarray,
) -> None:
    """A lying face that comes into view only after 200 frames of an empty room is still found
    (the look goes on about once a second while no turn shows a face), every frame read comes
    back, in order, and frames with no face in any turn count for no turn."""
    empty = np.full_like(upright[0], (40, 70, 110))
    images = [empty] * 200 + [turn(image, 270) for image in upright] * 4
    nets = UprightNets()
    angle, frames = look_for_turn(frames_of(images), nets.detect)
    assert angle == 90
    assert [f.index for f in frames] == list(range(len(images)))
    assert nets.n_detect < 4 * (6 + 150 // SEARCH_EVERY + 3)  # every 30th frame after the first 51
    # no face before SEARCH_FRAMES: as it came, and the look stops there
    nets = UprightNets()
    never = [empty] * (SEARCH_FRAMES + 20) + [turn(upright[0], 270)]
    angle, frames = look_for_turn(frames_of(never), nets.detect, hold=False)
    assert angle == 0 and [f.index for f in frames] == list(range(SEARCH_FRAMES, len(never)))


def test_frames_held_while_looking_are_bounded(
    upright: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames that cannot be read twice are held while looked at, never more than SAMPLE_BYTES:
    the look stops there with what it saw."""
    import crct_cli.tracking.orientation as orientation

    empty = np.full_like(upright[0], (40, 70, 110))
    monkeypatch.setattr(orientation, "SAMPLE_BYTES", 30 * empty.nbytes)
    images = [empty] * 40 + [turn(image, 270) for image in upright]
    angle, frames = look_for_turn(frames_of(images), UprightNets().detect)
    assert angle == 0  # the face came after the 30 frames it could hold
    assert [f.index for f in frames] == list(range(len(images)))


def test_track_turns_frames_and_points_follow_the_turned_face(upright: np.ndarray) -> None:
    lying = np.stack([turn(image, 270) for image in upright])  # a quarter anticlockwise
    tracker = Tracker(networks=FaceNets(), rotate=90, smooth=False)
    frames = list(tracker.track(lying))
    assert tracker.rotation == 90 and len(frames) == N
    for frame, want in zip(frames, upright, strict=True):
        assert frame.image is not None and np.array_equal(frame.image, want)
        centre = box_centre(frame.faces[0].points)
        assert np.linalg.norm(centre - skin_centre(want)) < 0.5
    # a turn given to track() is that video's; auto chooses it from the first frames
    auto = Tracker(networks=UprightNets(), rotate="auto", smooth=False)
    assert auto.orientation(lying) == 90
    with pytest.raises(CrctError, match="can be read only once: give it to track"):
        auto.orientation(iter(lying))  # it would use them up
    assert Tracker(networks=FaceNets(), rotate=270).orientation(iter(lying)) == 270
    again = list(auto.track(lying))
    assert auto.rotation == 90
    for a, b in zip(frames, again, strict=True):
        assert np.array_equal(a.faces[0].points, b.faces[0].points)
    streamed = list(auto.track(iter(list(lying))))  # an iterator: held while looked at
    assert auto.rotation == 90 and len(streamed) == N
    for a, b in zip(frames, streamed, strict=True):
        assert np.array_equal(a.faces[0].points, b.faces[0].points)
    fixed = Tracker(networks=UprightNets(), smooth=False)  # rotate=0, "auto" for one video
    asked = list(fixed.track(lying, rotate="auto"))
    assert fixed.rotation == 90 and np.array_equal(
        asked[0].faces[0].points, frames[0].faces[0].points
    )
    kept = list(auto.track(upright, rotate=0))
    assert auto.rotation == 0 and np.array_equal(kept[0].image, upright[0])


def test_auto_in_a_frame_by_frame_stream_waits_for_a_face(upright: np.ndarray) -> None:
    """``step``: the turn is chosen on the first frame some turn shows a face in, then kept."""
    nets = UprightNets(find_faces=False)  # no face in the first frame, in any turn
    tracker = Tracker(networks=nets, rotate="auto", smooth=False)
    lying = [turn(image, 180) for image in upright]
    first = tracker.step(lying[0], 0.0)
    assert first.faces == [] and tracker.rotation == 0
    nets.find_faces = True
    second = tracker.step(lying[1], 0.04)
    assert tracker.rotation == 180
    assert np.linalg.norm(box_centre(second.faces[0].points) - skin_centre(upright[1])) < 0.5
    looks = nets.n_detect
    tracker.step(lying[2], 0.08)
    assert nets.n_detect - looks <= 1  # decided: no more looks in four turns
    tracker.reset()
    tracker.step(upright[0], 0.0)
    assert tracker.rotation == 0  # a new video, looked at again


def test_a_run_with_rotate_writes_turned_frames_and_is_drawn_again(
    make_video, tmp_path: Path
) -> None:
    """A 128x96 video turned a quarter: a 96x128 run whose header says so, points on the
    turned face, an overlay of that size, and ``crct draw`` turns the video the same way."""
    video = make_video("clip.mp4", n_frames=N, width=W, height=H, fps=25)
    out = tmp_path / "run"
    tracker = Tracker(networks=FaceNets(), rotate=90, smooth=False)
    summary = track_video(video, out, tracker, overlay=True)
    assert summary.with_points == N
    header = read_track_json(out / "track.json").header
    assert (header["width"], header["height"], header["rotate"]) == (H, W, 90)
    assert header["config"]["rotate"] == 90
    overlay = probe_video(out / "overlay.mp4")
    assert (overlay.width, overlay.height) == (H, W)
    for frame in iter_frames(video):
        turned = turn(frame.image, 90)
        points = read_pts(out / "annot" / f"{frame.index + 1:06d}.pts")
        assert np.linalg.norm(box_centre(points) - skin_centre(turned)) < 1.0
    drawn = draw_overlay(out)
    assert drawn.frames == N and drawn.with_run == N
    wrong = "is 128x96 once turned 90 degrees as the run turned it, but the run tracked a 96x128"
    with pytest.raises(CrctError, match=wrong):  # an upright copy: the run turned its frames
        draw_overlay(out, tmp_path / "x.mp4", video=make_video("upright.mp4", width=H, height=W))
    info = probe_video(drawn.out)
    assert (info.width, info.height) == (H, W)
    # a run as it came is 128x96 and has no rotate in its header (files of before read alike)
    plain = tmp_path / "plain"
    track_video(video, plain, Tracker(networks=FaceNets(), smooth=False))
    assert "rotate" not in read_track_json(plain / "track.json").header


def test_rotate_composes_with_a_phones_rotation_tag(make_video, tmp_path: Path) -> None:
    """A video tagged to be shown a quarter turn round is decoded turned; --rotate 180 turns
    what the player shows."""
    video = make_video("tagged.mp4", n_frames=4, width=W, height=H, rotation=90)
    shown = [f.image for f in iter_frames(video)]
    assert shown[0].shape[:2] == (W, H)
    out = tmp_path / "run"
    track_video(video, out, Tracker(networks=FaceNets(), rotate=180, smooth=False))
    header = read_track_json(out / "track.json").header
    assert (header["width"], header["height"]) == (H, W)  # 180 keeps the shown frame's size
    points = read_pts(out / "annot" / "000001.pts")
    assert np.linalg.norm(box_centre(points) - skin_centre(turn(shown[0], 180))) < 1.0


def test_a_run_turned_is_a_different_run_and_runs_of_before_stay_done() -> None:
    assert "rotate" not in settings_of({})
    assert "rotate" not in settings_of({"rotate": "0"})
    assert settings_of({"rotate": "auto"})["rotate"] == "auto"
    assert settings_of({"rotate": 270})["rotate"] == 270
    # --min-face likewise: another run only when asked for
    assert "min_face" not in settings_of({"min_face": 20})
    assert settings_of({"min_face": 80})["min_face"] == 80
    assert "min_face" not in settings_of({"min_face": "20"})  # the flag's spelling of 20
    assert settings_of({"min_face": "5.0%"})["min_face"] == "5%"


def test_the_command_line_refuses_a_turn_that_is_not_a_quarter(make_video, tmp_path) -> None:
    from test_cli import assert_one_line_error, crct

    video = make_video("clip.mp4", n_frames=2)
    line = assert_one_line_error(crct("track", video, "--out", tmp_path / "o", "--rotate", "45"))
    assert "--rotate must be 0, 90, 180, 270 or auto, got '45'" in line
    assert not (tmp_path / "o").exists()


def test_a_video_with_no_face_as_it_came_is_told_of_rotate(tmp_path: Path) -> None:
    """The shipped networks on a faceless video: the warning names --rotate auto, as a video
    lying on its side finds no face either; once turned, it is not named again."""
    from test_cli import crct

    from crct_cli.io.video import VideoWriter

    video = tmp_path / "wall.mp4"
    with VideoWriter(video, 25.0, 64, 48) as writer:
        for _ in range(3):
            writer.write(np.full((48, 64, 3), 128, np.uint8))
    result = crct("track", video, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "no face found in any of its 3 frames (a video lying on its side: --rotate auto)" in (
        result.stderr
    )
    result = crct("track", video, "--out", tmp_path / "b", "--rotate", "auto")
    assert result.exit_code == 0 and "no face found in any of its 3 frames" in result.stderr
    assert "--rotate auto)" not in result.stderr
    tiny = tmp_path / "tiny.mp4"  # no face fits in 16x16: turning it is no advice
    with VideoWriter(tiny, 25.0, 16, 16) as writer:
        for _ in range(3):
            writer.write(np.full((16, 16, 3), 128, np.uint8))
    result = crct("track", tiny, "--out", tmp_path / "c")
    assert result.exit_code == 0 and "--rotate auto" not in result.stderr
    assert "(its frames are 16x16 pixels, too small to hold a face)" in result.stderr


def test_points_turn_with_the_picture_and_back() -> None:
    """A pixel's centre lands on the centre of the pixel :func:`turn` moves it to."""
    rng = np.random.default_rng(3)
    for clockwise in ROTATIONS:
        for x, y in zip(rng.integers(0, 11, 6), rng.integers(0, 7, 6), strict=True):
            image = np.zeros((7, 11), np.uint8)
            image[y, x] = 255
            (row, col), *_ = np.argwhere(turn(image, clockwise) == 255)
            moved = turn_points([[x, y]], clockwise, 11, 7)
            assert np.array_equal(moved, [[col, row]]), (clockwise, x, y)
            assert np.array_equal(unturn_points(moved, clockwise, 11, 7), [[x, y]])


class ReadingNets(UprightNets):
    """UprightNets whose localiser says whether it was given the picture upright."""

    def __init__(self) -> None:
        super().__init__()
        self.upright_reads: list[bool] = []
        self.boxes: list[np.ndarray] = []

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        self.upright_reads.append(mark_is_top_left(image))
        self.boxes.append(np.array(box))
        return super().localize(image, box)


@pytest.mark.parametrize("lying", [90, 180, 270])
def test_align_reads_a_photo_lying_on_its_side_turned_and_points_at_its_own_pixels(
    upright: np.ndarray, tmp_path: Path, lying: int
) -> None:
    """``crct align --rotate``: the networks read the photo turned upright, and NAME.pts has
    the face where it lies in the file; as it came, the photo is read lying."""
    photo = turn(upright[0], -lying)  # a turn of `lying` clockwise sets it upright
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    write_image(path, photo)
    runs = {}
    for rotate in ("auto", lying, 0):
        nets = ReadingNets()
        out = tmp_path / f"out_{rotate}"
        summary = align_images([path], out, nets.detect, nets.localize, rotate=rotate)
        assert nets.upright_reads == [rotate != 0]
        assert summary.turned == ({} if rotate == 0 else {str(path): lying})
        runs[rotate] = read_pts(out / "photo.pts")
        assert np.linalg.norm(box_centre(runs[rotate]) - skin_centre(photo)) < 1.0
    assert np.array_equal(runs["auto"], runs[lying])
    h, w = photo.shape[:2]
    upright_points = turn_points(runs[lying], lying, w, h)  # the shape as read upright
    assert box_centre(upright_points)[0] == pytest.approx(skin_centre(upright[0])[0], abs=1.0)

    # --box-from-pts: the box of the .pts beside the photo (in its pixels) is turned with it
    write_pts(path.with_suffix(".pts"), runs[lying])
    nets = ReadingNets()
    align_images([path], tmp_path / "boxed", nets.detect, nets.localize, True, rotate=lying)
    read_box = nets.boxes[0]
    assert nets.upright_reads == [True]
    assert np.linalg.norm(read_box[:2] + read_box[2:] / 2 - skin_centre(upright[0])) < 1.0
    with pytest.raises(OptionError, match="rotate 'auto' finds the turn"):
        align_images([path], tmp_path / "x", nets.detect, nets.localize, True, rotate="auto")


def test_tracker_align_turns_a_lying_photo_and_its_boxes(upright: np.ndarray) -> None:
    photo = turn(upright[0], -90)
    tracker = Tracker(networks=ReadingNets(), rotate="auto")
    (face,) = tracker.align(photo)
    assert tracker.rotation == 90 and tracker.networks.upright_reads == [True]
    assert np.linalg.norm(box_centre(face.points) - skin_centre(photo)) < 1.0
    assert np.allclose(face.box, [*face.points.min(axis=0), *np.ptp(face.points, axis=0)])
    (boxed,) = tracker.align(photo, boxes=face.box, rotate=90)  # the box in the photo's pixels
    assert np.allclose(boxed.points, face.points)
    with pytest.raises(OptionError, match="with boxes given"):
        tracker.align(photo, boxes=face.box)  # the tracker's auto
    (as_it_lies,) = tracker.align(photo, rotate=0)
    assert tracker.rotation == 0 and not tracker.networks.upright_reads[-1]


class SureNets(UprightNets):
    """UprightNets that are as sure of the upright face as MTCNN's float32 gets (1.0)."""

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        found = super().detect(image, relaxed)
        return [Detection(d.box, d.raw_box, 1.0 if d.score > 0.999 else d.score) for d in found]


@pytest.mark.parametrize("lying", [0, 90, 180, 270])
def test_a_photo_s_turn_is_the_vote_s_and_a_sure_face_as_it_lies_needs_one_look(
    upright: np.ndarray, lying: int
) -> None:
    """``orient_still`` chooses as :func:`choose_rotation` does on the one picture, and gives
    the faces found in the turn it chose; a face found at the cap as the photo lies ends the
    look at once (no other turn could beat it by MARGIN)."""
    photo = turn(upright[0], -lying)
    for nets, looks in ((UprightNets(), 4), (SureNets(), 1 if lying == 0 else 4)):
        angle, found = orient_still(photo, nets.detect)
        assert nets.n_detect == looks
        assert angle == choose_rotation([photo], type(nets)().detect)[0] == lying
        (want,) = type(nets)().detect(turn(photo, lying))
        assert len(found) == 1 and np.allclose(found[0].box, want.box)
