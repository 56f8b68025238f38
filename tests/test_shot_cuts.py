"""Shot cuts: what the detector calls a cut on generated pictures, and what a cut does to
one track (scripted networks), to several (the multi-track layer's scripted world), and to a
real clip of two shots (the shipped networks, the command line, track.json)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_multi_tracker import World, box_at, ids_on
from test_multi_tracker import frame as world_frame
from test_tracker import BOX, FakeNets, det, frame, moved, run
from typer.testing import CliRunner

from crct_cli import Tracker
from crct_cli.cli import app
from crct_cli.errors import OptionError
from crct_cli.io.images import read_image
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import VideoWriter
from crct_cli.tracking.multi import Face, MultiConfig, MultiTracker
from crct_cli.tracking.shots import ShotCutConfig, ShotCutDetector
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def scene(seed: int, height: int = 240, width: int = 320) -> np.ndarray:
    """A made-up picture: smooth blobs of colour, its palette drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (height + 40, width + 40, 3)).astype(np.float32)
    blobs = cv2.GaussianBlur(noise, (0, 0), 9)
    blobs = (blobs - blobs.min()) / (blobs.max() - blobs.min())
    palette = rng.uniform(0.2, 1.0, 3) * 255
    return np.clip(blobs * palette + rng.uniform(0, 60, 3), 0, 255).astype(np.uint8)


def view(picture: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """The camera's 320x240 view of ``picture``, moved by (dx, dy) pixels."""
    return np.ascontiguousarray(picture[20 + dy : 260 + dy, 20 + dx : 340 + dx])


def cuts_in(frames: list[np.ndarray], config: ShotCutConfig | None = None) -> list[int]:
    detector = ShotCutDetector(config)
    found = [i for i, f in enumerate(frames) if detector(f)]
    assert detector.cuts == len(found)
    return found


def test_a_cut_between_two_scenes_is_found_and_nothing_else() -> None:
    a, b = scene(1), scene(2)
    frames = [view(a, t, t // 2) for t in range(8)] + [view(b, -t, 0) for t in range(8)]
    assert cuts_in(frames) == [8]
    # the first frame is never a cut, and reset() starts a new video
    detector = ShotCutDetector()
    assert [detector(f) for f in (view(a), view(b), view(a))] == [False, True, True]
    detector.reset()
    assert (detector(view(b)), detector.cuts) == (False, 0)


def test_light_noise_blur_low_resolution_a_strip_and_a_pan_are_no_cut() -> None:
    """What hard footage does within one shot (the degradations issue 16 tracks through)."""
    a = view(scene(3)).astype(np.float32)
    rng = np.random.default_rng(0)
    dark = a.copy()
    dark[80:160] *= 0.2  # a dark strip over a third of the frame
    small = cv2.resize(cv2.resize(a, (40, 30), interpolation=cv2.INTER_AREA), (320, 240))
    changed = [
        a * 0.25,  # the light drops to a quarter at once
        a * 0.25 + 40,  # and comes back washed out
        a + rng.normal(0, 14, a.shape),  # strong sensor noise
        cv2.GaussianBlur(a, (0, 0), 4),  # motion or focus blur
        small,  # a low-resolution burst
        dark,
    ]
    for frame_after in changed:
        frames = [a, np.clip(frame_after, 0, 255)]
        assert cuts_in([f.astype(np.uint8) for f in frames]) == []
    pan = [view(scene(3), dx=3 * t) for t in range(7)]  # 3 px a frame: a steady pan
    assert cuts_in(pan) == []


def test_grey_video_and_a_fade_through_black() -> None:
    a, b = (cv2.cvtColor(scene(s), cv2.COLOR_RGB2GRAY) for s in (4, 5))
    assert cuts_in([view(a), view(a, 2), view(b), view(b, 1)]) == [2]
    # a fade out to black and in to another shot: one cut, where the new shot shows
    out = [(view(scene(4)) * k).astype(np.uint8) for k in (1.0, 0.6, 0.3, 0.0, 0.0)]
    fade = out + [(view(scene(5)) * k).astype(np.uint8) for k in (0.3, 0.6, 1.0)]
    assert cuts_in(fade) == [5]
    # ... and back into the same shot: none
    same = out + [(view(scene(4)) * k).astype(np.uint8) for k in (0.3, 1.0)]
    assert cuts_in(same) == []


def _plain_wall(wall: tuple[int, int, int], seed: int, x: int) -> np.ndarray:
    """A speaker (a patch of blobs) at ``x`` before a plain wall, as in a reverse shot."""
    frame = np.empty((240, 320, 3), dtype=np.uint8)
    frame[:] = wall
    frame[60:170, x : x + 110] = scene(seed)[:110, :110]
    return frame


def test_a_reverse_shot_between_plain_walls_is_a_cut_and_dimmed_light_is_not() -> None:
    """Too few blocks are textured in both frames for the layout to have a say: hue and
    saturation decide alone, at a higher bar."""
    a = [_plain_wall((40, 60, 160), 1, 20 + t) for t in range(4)]
    b = [_plain_wall((200, 120, 40), 2, 190 + t) for t in range(4)]
    assert cuts_in(a + b) == [4]
    dimmed = [a[0], (a[0] * 0.3).astype(np.uint8), a[0]]  # the lights go down and up again
    assert cuts_in(dimmed) == []
    # a plain grey wall has no hue to tell by: one shot
    grey = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in a + b]
    assert cuts_in(grey) == []


def test_odd_frames() -> None:
    detector = ShotCutDetector()
    tall = np.zeros((2000, 8, 3), dtype=np.uint8)
    assert detector._picture(tall).grey.shape == (256, 64)  # at most four widths
    a, b = (cv2.cvtColor(view(scene(k)), cv2.COLOR_RGB2GRAY)[..., None] for k in (4, 5))
    assert cuts_in([a, a, b]) == [2]  # (H, W, 1) is read as grey


def test_thresholds_decide() -> None:
    frames = [view(scene(1)), view(scene(2))]
    assert cuts_in(frames) == [1]
    # two scenes of like colours (a Bhattacharyya distance of 0.39) are one shot by default
    assert cuts_in([view(scene(6)), view(scene(7))]) == []
    assert cuts_in([view(scene(6)), view(scene(7))], ShotCutConfig(histogram=0.3)) == [1]
    assert cuts_in(frames, ShotCutConfig(histogram=1.0)) == []  # no colours lie that far
    assert cuts_in(frames, ShotCutConfig(correlation=-1.0)) == []  # nothing correlates below
    with pytest.raises(OptionError, match="cut_histogram"):
        Tracker(cut_histogram=1.5, networks=FakeNets())
    with pytest.raises(OptionError, match="cut_correlation"):
        Tracker(cut_correlation=2.0, networks=FakeNets())


def test_batch_runs_record_whether_cuts_were_looked_for() -> None:
    """Runs from before shot cuts recorded nothing and looked for none: a marker without the
    key is a --no-shot-cuts run's, kept by such a run only."""
    from crct_cli.batch.worker import settings_of

    on, off = settings_of({}), settings_of({"shot_cuts": False})
    assert on["shot_cuts"] is True and "shot_cuts" not in off
    assert "cut_histogram" not in on
    assert settings_of({"cut_histogram": 0.5})["cut_histogram"] == 0.5
    assert "cut_histogram" not in settings_of({"shot_cuts": False, "cut_histogram": 0.5})


# -- one track: Algorithm 1 ------------------------------------------------------------------


def test_after_a_cut_the_single_target_is_looked_for_anywhere_for_one_frame() -> None:
    far = moved(BOX, 400)  # 8 box diagonals away: far beyond eq. 8's gate
    nets = FakeNets(detections={0: [det(BOX)], 3: [det(far)], 4: [det(moved(BOX, -300))]})
    tracker = CRCTTracker(nets, TrackerConfig())
    run(tracker, 3)
    assert nets.frames_of("detect") == [0]  # followed by BT: no detection
    tracker.cut()
    result = tracker.step(frame(3))
    assert nets.frames_of("detect") == [0, 3]
    assert result.state == "redetected"
    assert np.allclose(nets.bt_at(3)["box"], far) and nets.bt_at(3)["state"] is None
    assert tracker.step(frame(4)).state == "tracked"  # the gate is open for one frame only
    assert nets.frames_of("detect") == [0, 3]
    # without the cut, frame 3 is BT's from the held box
    nets = FakeNets(detections={0: [det(BOX)], 3: [det(far)]})
    results = run(CRCTTracker(nets, TrackerConfig()), 4)
    assert nets.frames_of("detect") == [0] and results[3].state == "tracked"


def test_bt_alone_looks_at_the_cut_s_frame_only() -> None:
    far = moved(BOX, 400)
    nets = FakeNets(detections={0: [det(BOX)], 3: [det(far)], 4: [det(BOX)], 5: [det(BOX)]})
    tracker = CRCTTracker(nets, TrackerConfig(mode="bt"))
    run(tracker, 3)
    tracker.cut()
    states = [tracker.step(frame(t)).state for t in (3, 4, 5)]
    assert states == ["redetected", "tracked", "tracked"]
    assert nets.frames_of("detect") == [0, 3]
    assert np.allclose(nets.bt_at(3)["box"], far) and nets.bt_at(5)["state"] == "h4"
    assert tracker.redetections == 1


def test_a_cut_where_no_face_is_found_goes_on_from_the_held_box() -> None:
    """A camera's jump within a shot can look like a cut: the face is still followed."""
    nets = FakeNets(detections={0: [det(BOX)]})
    tracker = CRCTTracker(nets, TrackerConfig())
    results = run(tracker, 3)
    held = tracker.box.copy()
    tracker.cut()
    after = tracker.step(frame(3))
    assert after.state == "tracked" and after.points is not None
    assert np.allclose(nets.bt_at(3)["box"], held) and nets.bt_at(3)["state"] is None
    assert results[2].state == "tracked"
    # before the first face, a cut changes nothing: the tracker looks anyway
    nets = FakeNets(detections={2: [det(BOX)]})
    tracker = CRCTTracker(nets, TrackerConfig())
    tracker.cut()
    assert [r.state for r in run(tracker, 3)] == ["lost", "lost", "redetected"]


def test_crct_benchmark_s_tracker_looks_for_cuts_as_crct_track_does() -> None:
    """``crct benchmark``'s one-face tracker (TrackerMethod) finds the same cuts."""
    from crct_cli.bench.methods import TrackerMethod
    from crct_cli.io.video import Frame

    far = moved(BOX, 400)
    shots = [view(scene(1), t) for t in range(4)] + [view(scene(2), t) for t in range(4)]
    for t, image in enumerate(shots):
        image[0, 0, 0] = t  # the fake networks read the frame's number there
    for cuts, detected, state in ((ShotCutConfig(), [0, 4], "redetected"), (None, [0], "tracked")):
        nets = FakeNets(detections={0: [det(BOX)], 4: [det(far)]})
        method = TrackerMethod(nets, TrackerConfig(), shot_cuts=cuts)
        method.start(None, None)  # type: ignore[arg-type]  # the sequence is not read
        answers = [method.step(Frame(t, t / 25, image)) for t, image in enumerate(shots)]
        assert nets.frames_of("detect") == detected
        assert answers[4].state == state
        detector = method.cut_detector
        assert (detector.cuts if detector is not None else 0) == len(detected) - 1


# -- several tracks ------------------------------------------------------------------------


def _with_cut(world: World, n: int, cut_at: int, faces: int | None) -> list[list[Face]]:
    options = MultiConfig(faces=faces, detect_every=5, max_lost=20)
    tracker = MultiTracker(world, TrackerConfig(), options)
    results = []
    for t in range(n):
        if t == cut_at:
            tracker.cut()
        results.append(tracker.step(world_frame(t)))
    return results


def _two_people_one_place() -> World:
    """A stands at x=50 until frame 12; the next shot shows B where A stood."""
    return World(
        {
            "a": lambda t: box_at(50) if t < 12 else None,
            "b": lambda t: box_at(60) if t >= 12 else None,
        }
    )


def test_a_cut_ends_every_track_and_the_new_shot_s_faces_get_new_ids() -> None:
    world = _two_people_one_place()
    results = _with_cut(world, 18, -1, None)
    assert ids_on(results, world, "b")[12:] == [0] * 6  # no cut: A's track takes B, and id 0
    world = _two_people_one_place()
    results = _with_cut(world, 18, 12, None)
    assert ids_on(results, world, "a")[:12] == [0] * 12
    assert ids_on(results, world, "b")[12:] == [1] * 6
    assert 12 in world.per_frame("detect")  # MTCNN looked at the cut's frame (not a 5th)
    assert all(f.face_id == 1 for faces in results[12:] for f in faces)  # A ended there


def test_a_cut_gives_the_single_target_the_face_of_the_new_shot_at_once() -> None:
    world = World(
        {
            "a": lambda t: box_at(50) if t < 12 else None,
            "b": lambda t: box_at(420) if t >= 12 else None,  # far from where A stood
        }
    )
    results = _with_cut(world, 16, 12, 1)
    assert ids_on(results, world, "b")[12:] == [0] * 4
    world = World(dict(world.paths))
    results = _with_cut(world, 16, -1, 1)
    assert ids_on(results, world, "b")[12:] == [None] * 4  # beyond eq. 8's gate for now


# -- a real clip: the shipped networks ------------------------------------------------------


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interview cut: shot 1, the astronaut on a grey wall; shot 2, another face (her
    mirror image, colours turned) in the same place before a wall of coloured blobs."""
    face = read_image(SAMPLES / "astronaut.jpg")[::2, ::2]
    other = np.ascontiguousarray(face[:, ::-1, ::-1])
    h, w = face.shape[:2]
    wall = cv2.resize(scene(8), (w + 160, h + 40))
    path = tmp_path_factory.mktemp("clips") / "interview.mp4"
    with VideoWriter(path, 25.0, w + 160, h + 40) as writer:
        for t in range(16):
            if t < 8:
                canvas = np.full((h + 40, w + 160, 3), 90, dtype=np.uint8)
                canvas[20 : 20 + h, 40 + t : 40 + t + w] = face
            else:
                canvas = wall.copy()
                canvas[20 : 20 + h, 48 + t : 48 + t + w] = other
            writer.write(canvas)
    return path


def test_a_real_cut_is_marked_and_the_new_face_gets_a_new_id(two_shots: Path) -> None:
    tracker = Tracker(faces="all", device="cpu", backend="onnx")
    frames = list(tracker.track(two_shots))
    assert [f.index for f in frames if f.cut] == [8]
    assert tracker.cuts == 1
    ids = [sorted(f.face_id for f in frame.faces if f.state != "lost") for frame in frames]
    assert ids[:8] == [[0]] * 8 and ids[8:] == [[1]] * 8
    # one shot: the track of the first face takes the second, who stands where she stood
    tracker = Tracker(faces="all", device="cpu", backend="onnx", shot_cuts=False)
    frames = list(tracker.track(two_shots))
    assert not any(f.cut for f in frames) and tracker.cuts == 0
    assert {f.face_id for frame in frames for f in frame.faces} == {0}


def test_track_json_marks_the_cut_and_counts_it(two_shots: Path, tmp_path: Path) -> None:
    for flag, marked in (("--shot-cuts", [8]), ("--no-shot-cuts", [])):
        out = tmp_path / flag
        result = CliRunner().invoke(
            app,
            ["track", str(two_shots), "--out", str(out), "--device", "cpu", flag]
            + ["--cut-histogram", "0.45" if marked else "0.5"],
        )
        assert result.exit_code == 0, result.output
        unused = "--cut-histogram changes nothing with --no-shot-cuts"
        assert (unused in result.output) is (not marked)
        data = json.loads((out / "track.json").read_text(encoding="utf-8"))
        assert [f["index"] for f in data["frames"] if f.get("cut")] == marked
        assert data["summary"]["cuts"] == len(marked)
        assert data["config"]["shot_cuts"] is (flag == "--shot-cuts")
        assert read_track_json(out / "track.json").cuts == marked
    # crct live on a stream (the clip played as one) marks the same frame
    for flag, marked in (("--shot-cuts", [8]), ("--no-shot-cuts", [])):
        out = tmp_path / f"live{flag}"
        result = CliRunner().invoke(
            app, ["live", str(two_shots), "--out", str(out), "--no-show", "--device", "cpu", flag]
        )
        assert result.exit_code == 0, result.output
        assert read_track_json(out / "track.json").cuts == marked
        assert json.loads((out / "track.json").read_text("utf-8"))["summary"]["cuts"] == len(marked)
