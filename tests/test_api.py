"""The Python API and the batched engine with the shipped networks, on the bundled sample.

- ``Tracker(faces=1)`` gives the points of Algorithm 1 run face by face (the one-face path
  before the multi-track engine), frame by frame, and the command line writes those points;
- the batched network calls equal the one-face calls;
- on a generated clip with two astronauts side by side, ``Tracker(faces="all")`` follows both,
  with ids 0 (left) and 1 (right), and ``landmarks.csv`` reads back in pandas' terms.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clips import write_mirrored_pair
from test_pipeline import SKIN, FaceNets
from typer.testing import CliRunner

from crct_cli import Tracker
from crct_cli.cli import app
from crct_cli.errors import OptionError
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import read_pts
from crct_cli.io.openface_csv import COLUMNS, read_landmarks_csv
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import VideoWriter, iter_frames
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import check_min_face
from crct_cli.tracking.multi import Face
from crct_cli.tracking.orientation import parse_rotate
from crct_cli.tracking.smoothing import ShapeFilter, TwoSidedSmoother
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
VIDEO = SAMPLES / "astronaut.mp4"
N_FRAMES = 30


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    return Tracker(faces=1, device="cpu", backend="onnx")


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two astronauts side by side, drifting towards each other, 20 frames."""
    face = read_image(SAMPLES / "astronaut.jpg")[::2, ::2]
    return write_mirrored_pair(tmp_path_factory.mktemp("clips") / "two.mp4", face, 20)


def test_one_face_gives_algorithm_1s_points_run_face_by_face(tracker: Tracker) -> None:
    """... then smoothed (``smooth``, on by default): over the frames on both sides by
    ``track`` (``lookahead``, its default), by the shape's causal filter with ``lookahead=False``
    (as ``step`` always is)."""
    nets = tracker.networks
    reference = CRCTTracker(nets, TrackerConfig())
    causal = Tracker(networks=nets, lookahead=False)
    smoothing = ShapeFilter()
    two_sided: TwoSidedSmoother[int] = TwoSidedSmoother()
    frames = list(tracker.track(VIDEO, max_frames=N_FRAMES))
    causal_frames = list(causal.track(VIDEO, max_frames=N_FRAMES))
    assert [f.index for f in frames] == list(range(N_FRAMES))
    states, expected_ahead = [], []
    for decoded, got, got_causal in zip(
        iter_frames(VIDEO, N_FRAMES), frames, causal_frames, strict=True
    ):
        ref = reference.step(decoded.image)
        assert got.time == pytest.approx(decoded.time)
        (face,) = got.faces
        assert face.face_id == 0 and face.state == ref.state
        smoothed = smoothing(ref.points, decoded.time, ref.state == "tracked")
        expected = smoothed if ref.state == "tracked" else ref.points
        assert np.abs(got_causal.faces[0].points - expected).max() < 1e-3
        raw = Face(0, ref.points, ref.box, ref.score, ref.state)
        expected_ahead += two_sided.push(decoded.index, decoded.time, [raw])
        states.append(face.state)
    expected_ahead += two_sided.flush()
    for got, (index, (want,)) in zip(frames, expected_ahead, strict=True):
        assert got.index == index and np.abs(got.faces[0].points - want.points).max() < 1e-3
    assert states[0] == "redetected" and states.count("tracked") > N_FRAMES // 2


def dark_clip(tmp_path: Path) -> Path:
    """The astronaut clip's first 24 frames with frames 8-11 black: the face is lost there."""
    clip = tmp_path / "dark.mp4"
    frames = [f.image for f in iter_frames(VIDEO, 24)]
    with VideoWriter(clip, 25.0, frames[0].shape[1], frames[0].shape[0]) as w:
        for k, image in enumerate(frames):
            w.write(np.zeros_like(image) if 8 <= k < 12 else image)
    return clip


def test_following_back_changes_no_frame_but_those_it_revises(
    tracker: Tracker, tmp_path: Path
) -> None:
    """The astronaut clip with four black frames: the face is lost there and found again
    after. The backward pass from the re-found face runs the same networks over frames already
    tracked; it must leave the forward run as it was (BT's reusable crops, ``aside``), so every
    frame it does not revise has the points of a run without it, to the last digit."""
    clip = dark_clip(tmp_path)
    nets = tracker.networks
    with_back = list(Tracker(networks=nets, smooth=False).track(clip))
    without = list(Tracker(networks=nets, smooth=False, backtrack=0).track(clip))
    states = [f.faces[0].state if f.faces else None for f in without]
    assert {states[k] for k in range(8, 12)} == {"lost"} and "redetected" in states[12:]
    for a, b in zip(with_back, without, strict=True):
        if a.faces and b.faces and a.faces[0].state == b.faces[0].state:
            assert np.array_equal(a.faces[0].points, b.faces[0].points)


def test_bridging_lost_frames_changes_only_their_points(tracker: Tracker, tmp_path: Path) -> None:
    """The same clip: with ``bridge_lost`` the four black frames, lost, take the shape between
    the frames around them, placed between where their own points put the face and where that
    shape is; every other frame and every state is as without it."""
    clip = dark_clip(tmp_path)
    nets = tracker.networks
    plain = list(Tracker(networks=nets, smooth=False, backtrack=0, bridge_lost=False).track(clip))
    bridged_tracker = Tracker(networks=nets, smooth=False, backtrack=0)  # on by default
    assert bridged_tracker.describe()["bridge_lost"] is True
    bridged = list(bridged_tracker.track(clip))
    states = [f.faces[0].state if f.faces else None for f in plain]
    assert {states[k] for k in range(8, 12)} == {"lost"} and states[7] != "lost"
    changed = []
    for k, (a, b) in enumerate(zip(plain, bridged, strict=True)):
        assert [f.state for f in a.faces] == [f.state for f in b.faces]
        if a.faces and not np.array_equal(a.faces[0].points, b.faces[0].points):
            changed.append(k)
            t = (k - 7) / 5  # the run is frames 8-11, followed at 7 and 12
            between = (1 - t) * plain[7].faces[0].points + t * plain[12].faces[0].points
            got = b.faces[0].points
            assert np.allclose(got - got.mean(0), between - between.mean(0))
            own, far = a.faces[0].points.mean(0), between.mean(0)
            assert np.all(got.mean(0) >= np.minimum(own, far) - 1e-6)
            assert np.all(got.mean(0) <= np.maximum(own, far) + 1e-6)
    assert changed and set(changed) <= {k for k, s in enumerate(states) if s == "lost"}
    assert not Tracker(networks=nets, bridge_lost=True, lookahead=False).bridge_lost


def test_aside_puts_back_bt_s_reusable_crops(tracker: Tracker) -> None:
    nets = tracker.networks
    a, b = (f.image for f in iter_frames(VIDEO, 2))
    box = np.array([[150.0, 150.0, 200.0, 200.0]])
    nets.bt_batch(a, b, box, [None])
    forward = nets.cut
    assert forward is not None and forward.image is b
    with nets.aside():
        nets.bt_batch(b, a, box, [None])  # a backward step
        assert nets.cut is not forward and nets.cut.image is a
    assert nets.cut is forward


def test_batched_calls_equal_one_face_calls(tracker: Tracker) -> None:
    nets = tracker.networks
    image = next(iter_frames(VIDEO)).image
    (det,) = nets.detect(image)[:1]
    boxes = np.stack([det.box, det.box + [8, -5, 4, 4], det.box + [-10, 6, -6, -6]])
    batch = nets.localize_batch(image, boxes)
    for box, points in zip(boxes, batch, strict=True):
        assert np.abs(nets.localize(image, box) - points).max() < 0.01  # float32 sums differ
    scores = nets.validate_batch(image, batch)
    assert all(abs(nets.validate(image, p) - s) < 1e-5 for p, s in zip(batch, scores, strict=True))
    prev = image
    cur = next(iter(iter_frames(VIDEO, 2))).image
    pts, states = nets.bt_batch(prev, cur, boxes, [None, None, None])
    pts2, _ = nets.bt_batch(prev, cur, boxes, states)  # carried state, per track
    for k, box in enumerate(boxes):
        one, state = nets.bt_step(prev, cur, box, None)
        assert np.abs(one - pts[k]).max() < 0.01
        again, _ = nets.bt_step(prev, cur, box, state)
        assert np.abs(again - pts2[k]).max() < 0.01


def test_the_command_line_writes_the_api_points(tracker: Tracker, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["track", str(VIDEO), "--out", str(tmp_path), "--device", "cpu", "--backend", "onnx"]
    )
    assert result.exit_code == 0, result.output
    api = {f.index: f.faces[0] for f in tracker.track(VIDEO) if f.faces}
    names = sorted(p.name for p in (tmp_path / "annot").iterdir())
    assert names == [f"{i + 1:06d}.pts" for i in sorted(api)]
    for i, face in api.items():
        assert np.abs(read_pts(tmp_path / "annot" / f"{i + 1:06d}.pts") - face.points).max() < 2e-3
    rows = read_landmarks_csv(tmp_path / "landmarks.csv")
    assert [r.frame for r in rows] == [i + 1 for i in sorted(api)]
    assert all(r.face_id == 0 and r.confidence is not None for r in rows)
    assert [r.success for r in rows] == [api[r.frame - 1].state != "lost" for r in rows]
    track = read_track_json(tmp_path / "track.json")
    assert track.schema == "crct.track/2" and track.summary["status"] == "ok"
    assert not (tmp_path / "faces").exists()  # one face: annot/ alone, as before


def test_every_face_of_a_two_face_clip(two_faces: Path, tmp_path: Path) -> None:
    tracker = Tracker(faces="all", device="cpu", backend="onnx")
    frames = list(tracker.track(two_faces))
    assert len(frames) == 20
    for frame in frames[1:]:
        ids = [f.face_id for f in frame.faces if f.state != "lost"]
        assert ids == [0, 1], frame.index
        left, right = frame.face(0), frame.face(1)
        assert left is not None and right is not None
        assert box_from_points(left.points)[0] < box_from_points(right.points)[0]
    # the same from the command line, per-face files and the CSV
    result = CliRunner().invoke(
        app, ["track", str(two_faces), "--out", str(tmp_path), "--faces", "all", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == ["0", "1"]
    assert len(list((tmp_path / "faces" / "1" / "annot").iterdir())) >= 19
    with open(tmp_path / "landmarks.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == COLUMNS
    assert header[:5] == ["frame", "face_id", "timestamp", "confidence", "success"]
    rows = read_landmarks_csv(tmp_path / "landmarks.csv")
    assert {r.face_id for r in rows} == {0, 1}
    per_frame = [r.frame for r in rows]
    assert per_frame == sorted(per_frame)
    assert rows[2].timestamp == pytest.approx((rows[2].frame - 1) / 25.0, abs=1e-3)


def test_step_and_reset_for_frames_the_caller_decoded(tracker: Tracker) -> None:
    images = [f.image for f in iter_frames(VIDEO, 5)]
    tracker.reset()
    first = [tracker.step(im, time_s=i / 10) for i, im in enumerate(images)]
    tracker.reset()
    again = [tracker.step(im, time_s=i / 10) for i, im in enumerate(images)]
    assert [f.index for f in first] == [f.index for f in again] == list(range(5))
    assert [f.time for f in first] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.faces[0].points, b.faces[0].points)
    tracker.reset()  # without times, the seconds since the first frame (and the smoothing's)
    clocked = [tracker.step(im) for im in images[:2]]
    assert clocked[0].time == 0.0 and clocked[1].time > 0.0
    assert np.array_equal(clocked[0].faces[0].points, first[0].faces[0].points)


def test_step_copies_a_frame_decoded_into_the_previous_frame_s_buffer(tracker: Tracker) -> None:
    """A capture loop that decodes every frame into one buffer gives the same points as one
    that hands over fresh arrays: the tracker keeps its own copy of the previous frame."""
    images = [f.image for f in iter_frames(VIDEO, 6)]
    tracker.reset()
    fresh = [tracker.step(im.copy(), time_s=i / 25) for i, im in enumerate(images)]
    tracker.reset()
    buffer = np.empty_like(images[0])
    reused = []
    for i, im in enumerate(images):
        buffer[...] = im
        reused.append(tracker.step(buffer, time_s=i / 25))
    assert [f.faces[0].state for f in fresh][1:].count("tracked") >= 3  # BT ran on them
    for a, b in zip(fresh, reused, strict=True):
        assert np.array_equal(a.faces[0].points, b.faces[0].points)


def test_align_on_a_still(tracker: Tracker) -> None:
    faces = tracker.align(SAMPLES / "astronaut.jpg")
    assert len(faces) == 1 and faces[0].points.shape == (68, 2)
    assert faces[0].score is not None and faces[0].score > 0.5
    boxed = tracker.align(read_image(SAMPLES / "astronaut.jpg"), boxes=faces[0].box)
    assert np.abs(boxed[0].points - faces[0].points).max() < 5.0


def test_a_sideways_phone_photo_gets_the_points_of_the_upright_one(
    tracker: Tracker, tmp_path: Path
) -> None:
    """The astronaut stored a quarter turn anticlockwise with EXIF orientation 6, as a phone
    writes a portrait photo: crct finds the face as a viewer sees it, where the upright file
    has it (within the two JPEG encodings' difference)."""
    from test_align import jpeg_with_orientation

    upright = read_image(SAMPLES / "astronaut.jpg")
    (tmp_path / "upright.jpg").write_bytes(jpeg_with_orientation(upright, 1))
    (tmp_path / "sideways.jpg").write_bytes(jpeg_with_orientation(np.rot90(upright).copy(), 6))
    (want,) = tracker.align(tmp_path / "upright.jpg")
    (got,) = tracker.align(tmp_path / "sideways.jpg")
    diagonal = float(np.hypot(*want.box[2:]))
    assert np.abs(got.points - want.points).max() < 0.02 * diagonal


def test_a_photo_lying_on_its_side_without_a_tag_is_read_turned(tracker: Tracker) -> None:
    """The astronaut photo stored turned with no EXIF tag: ``align(rotate="auto")`` finds the
    turn that sets it upright and gives exactly the upright photo's points, in the lying
    photo's own pixels; read as it lies (a quarter turn), MTCNN finds no face in it."""
    from crct_cli.tracking.orientation import turn, turn_points

    upright = read_image(SAMPLES / "astronaut.jpg")
    h, w = upright.shape[:2]
    (want,) = tracker.align(upright)
    for lying in (90, 180, 270):
        photo = np.ascontiguousarray(turn(upright, -lying))
        (got,) = tracker.align(photo, rotate="auto")
        assert tracker.rotation == lying
        assert np.abs(got.points - turn_points(want.points, 360 - lying, w, h)).max() < 1e-3
        assert got.score == pytest.approx(want.score, abs=1e-6)
    assert tracker.align(np.ascontiguousarray(turn(upright, -90)), rotate=0) == []


def test_min_face_leaves_smaller_faces_unfound(tracker: Tracker) -> None:
    """The astronaut's face is an 88-px MTCNN box: found from the default 20 px on, not when
    MTCNN looks only for faces of 300 px and more (in photos and in video alike)."""
    photo = read_image(SAMPLES / "astronaut.jpg")
    big_only = Tracker(faces=1, device="cpu", backend="onnx", min_face=300)
    assert big_only.min_face == 300 and big_only.describe()["min_face"] == 300
    assert len(tracker.align(photo)) == 1 and big_only.align(photo) == []
    assert not any(f.faces for f in big_only.track(VIDEO, max_frames=3))
    for bad in (8, 20.5, True, "40px", "0%", "101%", "nan%", "%", "5 %%"):
        with pytest.raises(OptionError, match="min_face must be"):
            Tracker(networks=_NoNetworks(), min_face=bad)


def test_min_face_as_a_share_of_the_frame(tracker: Tracker) -> None:
    """``min_face="N%"`` is that share of each picture's shorter side: the astronaut's 88-px
    face is found at 15% (77 px of the 512-px photo; 38 px of it at half size) and missed at
    60% (307 px; 154 px); the same spelling comes back for resume settings and track.json."""
    photo = read_image(SAMPLES / "astronaut.jpg")
    half = np.ascontiguousarray(photo[::2, ::2])
    share = Tracker(faces=1, device="cpu", backend="onnx", min_face="15.0%")
    assert share.min_face == "15%" and share.describe()["min_face"] == "15%"
    assert len(share.align(photo)) == 1 and len(share.align(half)) == 1
    wide = Tracker(faces=1, device="cpu", backend="onnx", min_face="60%")
    assert wide.align(photo) == [] and wide.align(half) == []
    # the clip's 115-px face (360-px frames): 85% is 306 px, as min_face=300 above
    wider = Tracker(faces=1, device="cpu", backend="onnx", min_face="85%")
    assert not any(f.faces for f in wider.track(VIDEO, max_frames=3))
    assert all(f.faces for f in share.track(VIDEO, max_frames=3))
    assert Tracker(networks=_NoNetworks(), min_face=" 40 ").min_face == 40  # as the flag gives


class _NoNetworks:
    """Networks never called: a Tracker built only to check its options."""


def test_auto_turns_the_astronaut_lying_on_its_side_upright(tracker: Tracker) -> None:
    """The astronaut clip turned a quarter anticlockwise (as a camera on its side films it):
    ``rotate="auto"`` turns it back, and the points are those of the upright clip, exactly;
    upright, auto keeps the clip as it is."""
    upright = np.stack([f.image for f in iter_frames(VIDEO, 12)])
    lying = np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2)))
    auto = Tracker(faces=1, device="cpu", backend="onnx", rotate="auto")
    assert auto.orientation(lying) == 90 and auto.orientation(upright) == 0
    assert auto.orientation(np.ascontiguousarray(np.rot90(upright, 2, axes=(1, 2)))) == 180
    want = list(tracker.track(upright))
    got = list(auto.track(lying))
    assert auto.rotation == 90 and len(got) == len(want) == 12
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a.faces[0].points, b.faces[0].points)
    as_it_came = list(tracker.track(lying, max_frames=3))  # lying, crct finds no face
    assert all(not f.faces or f.faces[0].state == "lost" for f in as_it_came)


def test_track_takes_a_stretch_and_nothing_for_no_frames(tracker: Tracker) -> None:
    """``track(video, max_frames, skip_frames)``: the frames asked for, with their indices in
    the whole video; ``max_frames=0`` asks for none (as before skip_frames existed)."""
    frames = list(tracker.track(SAMPLES / "astronaut.mp4", max_frames=3, skip_frames=70))
    assert [f.index for f in frames] == [70, 71, 72] and all(f.faces for f in frames)
    assert list(tracker.track(SAMPLES / "astronaut.mp4", max_frames=0)) == []


def test_grey_and_rgba_frames_are_read_as_their_rgb(tracker: Tracker) -> None:
    """A grey camera's (H, W) or (H, W, 1) frames and RGBA arrays need no conversion first:
    the same faces as the RGB picture they stand for."""
    rgb = read_image(SAMPLES / "astronaut.jpg")
    grey = rgb.mean(axis=2).astype(np.uint8)
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    pairs = [
        (grey, np.repeat(grey[..., None], 3, axis=2)),
        (grey[..., None], np.repeat(grey[..., None], 3, axis=2)),
        (np.concatenate([rgb, alpha], axis=2), rgb),
    ]
    for given, as_rgb in pairs:
        (want,) = tracker.align(as_rgb)
        (got,) = tracker.align(given)
        np.testing.assert_array_equal(got.points, want.points)
        tracker.reset()
        stepped = tracker.step(as_rgb).faces[0].points
        tracker.reset()
        np.testing.assert_array_equal(tracker.step(given).faces[0].points, stepped)
        tracker.reset()


def test_bad_frames_and_options_are_clear_errors(tracker: Tracker) -> None:
    from crct_cli.errors import CrctError

    for frame in (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2), np.uint8)):
        with pytest.raises(CrctError, match="a frame must be a uint8 array"):
            tracker.step(frame)
    with pytest.raises(CrctError, match="^faces "):
        Tracker(faces="some", networks=object())
    with pytest.raises(CrctError, match="^faces "):
        Tracker(faces=0, networks=object())
    with pytest.raises(CrctError, match="^reacquire "):
        Tracker(reacquire=-1, networks=object())
    with pytest.raises(CrctError, match="^lost_points "):
        Tracker(lost_points="held", networks=object())
    for share in (-0.1, 0.6):
        with pytest.raises(CrctError, match="^bt_reuse "):
            Tracker(bt_reuse=share, networks=object())
    for growth in (-0.1, float("nan"), float("inf")):
        with pytest.raises(CrctError, match="^gate_growth "):
            Tracker(gate_growth=growth, networks=object())
    for r in (-0.1, 1.5, float("nan")):
        with pytest.raises(CrctError, match="^likeness "):
            Tracker(likeness=r, networks=object())
    for wide in (-1.0, 1.0, 5.0, float("nan")):
        with pytest.raises(CrctError, match="^find_wide "):
            Tracker(find_wide=wide, networks=object())
    for option, values in {"tb": (-1.0, 0.0, float("nan")), "tc": (1.5, float("nan"))}.items():
        for value in values:
            with pytest.raises(CrctError, match=f"^{option} "):
                Tracker(**{option: value}, networks=object())
    for frames in (0, float("nan"), 2.5):
        with pytest.raises(CrctError, match="^seq_bt "):
            Tracker(seq_bt=frames, networks=object())
    for box in ((1, 2, 3), (1, 2, float("nan"), 4), (1, 2, -3, 4), "box"):
        with pytest.raises(CrctError, match="^init_box "):
            Tracker(init_box=box, networks=object())
    with pytest.raises(CrctError, match="2x2"):
        tracker.step(np.zeros((0, 0, 3), dtype=np.uint8))
    with pytest.raises(CrctError, match="time_s"):
        tracker.step(np.zeros((20, 20, 3), dtype=np.uint8), time_s=float("nan"))
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    for boxes in ([1, 2, 3], [[1, 2, 3, 4, 5]], [[1, 2, 0, 4]], [[1, float("inf"), 3, 4]]):
        with pytest.raises(CrctError, match="boxes"):
            tracker.align(image, boxes=boxes)


def test_a_first_box_outside_the_frame_is_one_clear_error() -> None:
    from crct_cli.errors import CrctError

    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[20:40, 65:78] = SKIN  # the fakes' face, at the frame's right edge
    outside = Tracker(init_box=(100, 10, 20, 20), networks=FaceNets(), smooth=False)
    with pytest.raises(CrctError, match="outside the 80x60 frame"):
        outside.step(image)
    inside = Tracker(init_box=(70, 10, 20, 20), networks=FaceNets(), smooth=False)
    assert len(inside.step(image).faces) == 1  # half in the frame: tracked from there


def test_the_command_line_s_defaults_are_the_tracker_s() -> None:
    """Every option of ``crct track`` that is a keyword of ``Tracker`` has its default there
    (``faces``, taken as text by the command, aside), and so has every ``crct benchmark``
    option that means what ``crct track``'s does: the command line, the Python API, the
    benchmark and the batch resume settings (read from ``Tracker``) cannot drift apart."""
    import inspect

    from crct_cli.cli import benchmark, track

    def defaults(fn: Any) -> dict[str, Any]:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()}

    api, cli_track, cli_bench = defaults(Tracker), defaults(track), defaults(benchmark)
    # the options both the command and the benchmark's methods must carry
    lost = {"redetect_on_loss", "lost_follow", "lost_flip", "gate_growth", "stretched_look"}
    lost |= {"likeness", "lost_doubted", "find_wide"}
    smoothing = {"smooth", "smooth_cutoff", "smooth_beta"}
    smoothing |= {"temporal_denoise", "temporal_radius", "temporal_strength", "noise_threshold"}
    shared = (set(api) & set(cli_track)) - {"faces", "rotate", "min_face"}
    assert parse_rotate(cli_track["rotate"]) == api["rotate"]  # text on the command line
    assert check_min_face(cli_track["min_face"]) == api["min_face"]  # "20" is 20
    assert check_min_face(cli_bench["min_face"]) == api["min_face"]
    assert {"bt_reuse", "blend", "flip", "check_refined", "backfill", "reacquire"} <= shared
    assert lost | smoothing <= shared
    assert {k: cli_track[k] for k in shared} == {k: api[k] for k in shared}
    tracked = (set(api) & set(cli_bench)) - {"faces", "seq_bt", "min_face"}  # per method
    assert {"bt_reuse", "blend", "check_refined", "lost_points", "int8"} <= tracked
    assert lost | smoothing <= tracked
    assert {k: cli_bench[k] for k in tracked} == {k: api[k] for k in tracked}


def test_re_detection_options_reach_algorithm_1_and_track_json() -> None:
    paper = Tracker(networks=object(), relaxed_redetect=False, reacquire=0, redetect_fallback=False)
    assert paper.config == TrackerConfig(
        relaxed_redetect=False, reacquire=0, redetect_fallback=False
    )
    described = Tracker(networks=object(), reacquire=12).describe()
    assert described["reacquire"] == 12 and described["relaxed_redetect"] is True
    assert described["redetect_fallback"] is True and described["lost_points"] == "fll"
    assert Tracker(networks=object(), lost_points="bt").config.lost_points == "bt"
    assert described["redetect_on_loss"] is True
    paper_timing = Tracker(networks=object(), redetect_on_loss=False)
    assert paper_timing.config.redetect_on_loss is False
    assert paper_timing.describe()["redetect_on_loss"] is False
    from crct_cli.batch.worker import settings_of  # a change of it re-runs a batch's videos

    assert settings_of({})["redetect_on_loss"] is True
    assert settings_of({"stretched_look": True})["stretched_look"] is True
    assert Tracker(networks=object(), stretched_look=True).describe()["stretched_look"] is True
    assert settings_of({"redetect_on_loss": False})["redetect_on_loss"] is False
    held = Tracker(networks=object(), lost_follow=False, gate_growth=0.3)
    assert held.config.lost_follow is False and held.config.gate_growth == 0.3
    assert held.describe()["lost_follow"] is False and held.describe()["gate_growth"] == 0.3
    assert settings_of({})["lost_follow"] is True
    assert settings_of({"gate_growth": 0.3})["gate_growth"] == 0.3
    doubted = Tracker(networks=object(), lost_doubted=False, find_wide=0.0)
    assert doubted.config.lost_doubted is False and doubted.describe()["lost_doubted"] is False
    assert doubted.describe()["find_wide"] == 0.0
    assert settings_of({})["lost_doubted"] is True and settings_of({})["find_wide"] == 2.0
    alike = Tracker(networks=object(), likeness=0.25)
    assert alike.config.likeness == 0.25 and alike.describe()["likeness"] == 0.25
    assert settings_of({})["likeness"] == 0.0
    assert settings_of({"likeness": 0.25})["likeness"] == 0.25
    plain = Tracker(networks=object(), lost_flip=False)
    assert plain.config.lost_flip is False and plain.describe()["lost_flip"] is False
    assert settings_of({})["lost_flip"] is True
    assert settings_of({"lost_flip": False})["lost_flip"] is False


def test_blend_writes_the_mean_of_fll_s_two_stages(tracker: Tracker) -> None:
    """By default the tracker's FLL answers with the mean of its first stage (in the box) and
    its second (around the first's points), as ``crct align`` does; ``blend=False`` gives the
    second stage's alone, ``flip=True`` adds the mirrored pass. Both options reach track.json
    and the resume settings."""
    from crct_cli.batch.worker import settings_of

    nets = tracker.networks
    image = next(iter_frames(VIDEO)).image
    box = nets.detect(image)[0].box
    aligner = nets.aligner
    assert aligner.config.blend and aligner.config.refine == 1
    blended = nets.localize(image, box)
    config = aligner.config
    try:
        aligner.config = dataclasses.replace(config, refine=0)
        first = nets.localize(image, box)
        aligner.config = dataclasses.replace(config, blend=False)
        second = nets.localize(image, box)
    finally:
        aligner.config = config
    assert np.abs(first - second).max() > 0.1  # two different answers...
    assert np.abs(blended - 0.5 * (first + second)).max() < 1e-3  # ...and their mean
    alone = Tracker(faces=1, device="cpu", backend="onnx", blend=False)
    assert not alone.networks.aligner.config.blend
    assert np.abs(alone.networks.localize(image, box) - second).max() < 1e-3
    assert tracker.describe()["blend"] is True and alone.describe()["blend"] is False
    assert settings_of({})["blend"] is True and settings_of({"blend": False})["blend"] is False
    # flip: the mirrored crops too (off by default): close to the plain answer, not equal
    mirrored = Tracker(faces=1, device="cpu", backend="onnx", flip=True)
    assert mirrored.networks.aligner.config.flip and not aligner.config.flip
    shift = np.abs(mirrored.networks.localize(image, box) - blended)
    assert 0.01 < shift.mean() < 2.0
    assert mirrored.describe()["flip"] is True and tracker.describe()["flip"] is False
    assert settings_of({})["flip"] is False and settings_of({"flip": True})["flip"] is True


def test_bt_reuse_cuts_at_the_last_box_and_runs_the_trunk_once(tracker: Tracker) -> None:
    """With ``bt_reuse`` (on by default), a box within that share of its side of the box the
    last frame was cut at is replaced by it: the last frame's current crop is then this frame's
    previous crop, BT's trunk runs on one crop instead of two, and the answer is BT's own at
    that box, as without reuse. A box that moved further, or another previous frame, is cut
    afresh. The setting reaches track.json and the resume settings."""
    from crct_cli.batch.worker import settings_of

    nets = tracker.networks
    plain = Tracker(faces=1, device="cpu", backend="onnx", bt_reuse=0.0).networks
    assert nets.bt_reuse == 0.05 and plain.bt_reuse == 0.0
    images = [f.image for f in iter_frames(VIDEO, 5)]
    box = nets.detect(images[0])[0].box
    side = max(box[2], box[3])
    near, far = box + [0.02 * side, -0.01 * side, 0, 0], box + [0.2 * side, 0, 0, 0]
    trunk = nets.bt.features
    crops_seen: list[int] = []

    def counted(crops: np.ndarray) -> np.ndarray:
        crops_seen.append(len(crops))
        return trunk(crops)

    nets.bt.features = counted
    try:
        nets.cut = None
        p1, s1 = nets.bt_step(images[0], images[1], box, None)
        p2, s2 = nets.bt_step(images[1], images[2], near, s1)  # cut at `box` again
        p3, _ = nets.bt_step(images[2], images[3], far, s2)  # moved too far: afresh
        p4, _ = nets.bt_step(images[1], images[4], far, None)  # not the last frame: afresh
    finally:
        nets.bt.features = trunk
    assert crops_seen == [2, 1, 2, 2]
    q1, t1 = plain.bt_step(images[0], images[1], box, None)
    q2, t2 = plain.bt_step(images[1], images[2], box, t1)
    q3, _ = plain.bt_step(images[2], images[3], far, t2)
    q4, _ = plain.bt_step(images[1], images[4], far, None)
    for got, want in ((p1, q1), (p2, q2), (p3, q3), (p4, q4)):
        assert np.abs(got - want).max() < 1e-3
    assert np.abs(p2 - plain.bt_step(images[1], images[2], near, t1)[0]).max() > 0.01
    assert tracker.describe()["bt_reuse"] == 0.05
    assert settings_of({})["bt_reuse"] == 0.05 and settings_of({"bt_reuse": 0})["bt_reuse"] == 0


def test_the_readme_names_every_keyword_of_tracker() -> None:
    """The README's Python API section lists Tracker's settings: each one named there."""
    import inspect

    readme = (SAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    names = [p for p in inspect.signature(Tracker.__init__).parameters if p != "self"]
    assert len(names) > 30
    assert [name for name in names if f"`{name}`" not in section] == []


def test_the_readme_example_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The README's Python API block, run as written from the repository root."""
    readme = (SAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(SAMPLES.parent)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 70 and all(len(line.split()) == 5 for line in lines)


def test_the_readme_many_videos_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The README's ``track_videos`` block, run as a script from a folder holding samples/."""
    import runpy

    readme = (SAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = next(b for b in section.split("```python\n")[1:] if "track_videos(" in b)
    (tmp_path / "samples").symlink_to(SAMPLES)
    script = tmp_path / "many.py"
    script.write_text(code.split("```", 1)[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.split() == [str(Path("samples") / "astronaut.mp4"), "ok", "75"]
    rows = (tmp_path / "runs/samples/summary.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 and (tmp_path / "runs/samples/astronaut/landmarks.csv").is_file()
    # then the block that reads the run back
    load = next(b for b in section.split("```python\n")[1:] if "load_track(" in b)
    scope: dict[str, Any] = {}
    exec(compile(load.split("```", 1)[0], "README.md", "exec"), scope)
    assert scope["face"].points.shape == (75, 68, 2) and scope["face"].found.all()
