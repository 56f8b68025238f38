"""The face finder: its training windows, its answer's geometry, and where the tracker asks it.

Scripted networks (tests/test_tracker.py's fakes) drive Algorithm 1; a fake finder answers
with logits built by hand, so the window-to-frame geometry is checked exactly; the training
samples are checked against a face whose points are known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tracker import BOX, FakeNets, det, fid, frame, moved, moved_det

from crct_cli import geometry
from crct_cli.models.finder import FaceFinder, FinderConfig
from crct_cli.runtime.nets import (
    FinderSpec,
    check_find_wide,
    decode_finder,
    find_faces,
    finder_window,
    wide_size,
)
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.multi import MultiConfig, MultiTracker, PerFaceBatch
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig
from crct_cli.train.data import NO_AUGMENT, Face
from crct_cli.train.finder import (
    FINDER_AUGMENT,
    TrainFinderConfig,
    finder_loss,
    finder_sample,
    make_finder_batch,
    soft_target,
)

SPEC = FinderSpec()


def face_on_canvas(rng: np.random.Generator) -> Face:
    """A bright disc with 68 points on it, on a dark canvas."""
    image = np.full((400, 400, 3), 30, np.uint8)
    centre = np.array([210.0, 190.0])
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    radius = 40 + 10 * rng.random(68)
    points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    yy, xx = np.mgrid[0:400, 0:400]
    image[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 50**2] = 220
    return Face(name="disc", image=image, points=points)


# --------------------------------------------------------------------------- training windows


def test_a_window_s_target_is_where_the_face_lies_in_it() -> None:
    rng = np.random.default_rng(0)
    face = face_on_canvas(rng)
    aug = replace(NO_AUGMENT, big_rotation=0.0, small_rotation_std=0.0)
    cfg = FinderConfig()
    seen = 0
    for _ in range(40):
        s = finder_sample(face, rng, cfg, aug)
        if s.cell == cfg.grid**2:
            assert np.isnan(s.centre).all()
            continue
        seen += 1
        # the target cell holds the centre, and the centre is the disc's, drawn bright
        assert s.cell == int(s.centre[1]) * cfg.grid + int(s.centre[0])
        x, y = (s.centre * cfg.stride).astype(int)
        assert s.window[y, x].mean() > 150
        # size: the disc's landmark box against the last box, drawn within exp(+-0.5) of it
        assert np.all((np.exp(s.size) > 0.55) & (np.exp(s.size) < 1.8))
    assert seen > 25  # most faces stay in the window; ABSENT share is left


def test_soft_targets_sum_to_one_and_peak_at_the_centre() -> None:
    rng = np.random.default_rng(1)
    face = face_on_canvas(rng)
    samples = [finder_sample(face, rng, FinderConfig(), FINDER_AUGMENT) for _ in range(12)]
    target = soft_target(samples, FinderConfig().grid)
    assert np.allclose(target.sum(1), 1.0)
    for s, t in zip(samples, target, strict=True):
        assert int(np.argmax(t)) == s.cell


def test_a_few_steps_lower_the_loss_on_one_batch() -> None:
    rng = np.random.default_rng(2)
    faces = [face_on_canvas(rng) for _ in range(3)]
    cfg = TrainFinderConfig(train=[], val=[], out=Path("unused.pt"))
    batch = make_finder_batch(faces, cfg, np.random.default_rng(3), 16)
    torch.manual_seed(0)
    model = FaceFinder(cfg.model)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    losses = []
    for _ in range(15):
        loss, logged = finder_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    assert set(logged) == {"ce", "place", "size", "cell"}


# ---------------------------------------------------------------------------- its answer


def logits_at(cell: int, spec: FinderSpec = SPEC, sure: float = 12.0) -> np.ndarray:
    z = np.zeros(spec.grid**2 + 1, np.float32)
    z[cell] = sure
    return z


def test_decode_reads_the_best_cell_or_says_absent() -> None:
    g = SPEC.grid
    boxes = np.zeros((g * g, 4), np.float32)
    boxes[5 * g + 7] = [0.25, 0.75, np.log(1.5), 0.0]
    score, centre, size = decode_finder(logits_at(5 * g + 7), boxes, SPEC)
    assert score > 0.99
    assert np.allclose(centre, [(7 + 0.25) / g, (5 + 0.75) / g])
    assert np.allclose(size, [1.5, 1.0])
    score, _, _ = decode_finder(logits_at(g * g), boxes, SPEC)  # "not in this window"
    assert score == 0.0


@dataclass
class HandFinder:
    """A finder that answers, for every window, the cell holding ``target`` (frame pixels)
    mapped through that window's crop, with the exact place in the cell."""

    target: np.ndarray
    config: FinderSpec = field(default_factory=FinderSpec)
    last: list[np.ndarray] = field(default_factory=list)  # the boxes it was given
    sizes: list[int] = field(default_factory=list)  # the windows' sides, call by call

    def window_points(self, box: np.ndarray, wide: float = 1.0) -> np.ndarray:
        _, m = finder_window(np.zeros((8, 8, 3), np.uint8), box, self.config, wide)
        return geometry.apply(m, self.target[None])[0] / self.config.stride

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = windows.shape[1]
        self.sizes.append(size)
        g = size // self.config.stride
        logits = np.zeros((len(windows), g * g + 1), np.float32)
        boxes = np.zeros((len(windows), g * g, 4), np.float32)
        wide = size / self.config.input_size
        for i, box in enumerate(self.last[: len(windows)]):
            at = self.window_points(box, wide)
            if np.all((at >= 0) & (at < g)):
                cell = int(at[1]) * g + int(at[0])
                logits[i, cell] = 12.0
                boxes[i, cell] = [*(at - np.floor(at)), np.log(0.8), np.log(1.2)]
            else:
                logits[i, -1] = 12.0
        return logits, boxes


def test_find_faces_maps_the_answer_back_into_the_frame() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    target = np.array([250.0, 140.0])
    boxes = np.array([[180.0, 100.0, 40.0, 60.0], [0.0, 0.0, 20.0, 20.0]])
    finder = HandFinder(target)
    finder.last = list(boxes)
    found = find_faces(finder, image, boxes, wide=0.0)
    assert len(found) == 2 and found[1] == []  # far away: not in the second window
    (d,) = found[0]
    centre = d.box[:2] + d.box[2:] / 2
    assert np.allclose(centre, target, atol=1e-6)
    side = np.sqrt(40.0 * 60.0)
    assert np.allclose(d.box[2:], [0.8 * side, 1.2 * side])
    assert d.score > 0.99


def test_a_wide_window_is_the_usual_one_widened_at_the_same_scale() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    box = np.array([180.0, 100.0, 40.0, 60.0])
    usual, m1 = finder_window(image, box, SPEC)
    wide, m2 = finder_window(image, box, SPEC, 2.0)
    assert usual.shape == (96, 96, 3) and wide.shape == (192, 192, 3)
    assert wide_size(SPEC, 2.0) == 192 and wide_size(SPEC, 1.3) % SPEC.stride == 0
    assert np.allclose(m1[:, :2], m2[:, :2])  # pixels per frame pixel: the same
    centre = (box[:2] + box[2:] / 2)[None]
    assert np.allclose(geometry.apply(m1, centre), 47.5)  # pixel centres: (96 - 1) / 2
    assert np.allclose(geometry.apply(m2, centre), 95.5)


def test_where_the_window_holds_no_face_the_finder_looks_again_wider() -> None:
    """A face 2.2 sides from the last box is outside the usual window (1.5 sides each way) and
    inside one twice as wide: found there, mapped back exactly; a face in the usual window
    costs no second look, and ``wide`` 0 never looks again."""
    image = np.zeros((600, 800, 3), np.uint8)
    box = np.array([300.0, 250.0, 40.0, 60.0])
    side = np.sqrt(40.0 * 60.0)
    target = box[:2] + box[2:] / 2 + [2.2 * side, 0.3 * side]
    finder = HandFinder(target, last=[box])
    assert find_faces(finder, image, box[None], wide=0.0) == [[]] and finder.sizes == [96]
    finder = HandFinder(target, last=[box])
    (d,) = find_faces(finder, image, box[None], wide=2.0)[0]
    assert finder.sizes == [96, 192]
    assert np.allclose(d.box[:2] + d.box[2:] / 2, target, atol=1e-6)
    assert np.allclose(d.box[2:], [0.8 * side, 1.2 * side])
    near = HandFinder(box[:2] + box[2:] / 2 + [0.5 * side, 0.0], last=[box])
    assert len(find_faces(near, image, box[None], wide=2.0)[0]) == 1 and near.sizes == [96]
    with pytest.raises(ValueError, match="^find_wide "):
        check_find_wide(1.1)
    check_find_wide(0.0)


def test_the_finder_is_a_network_of_the_declared_shape() -> None:
    cfg = FinderConfig()
    logits, boxes = FaceFinder(cfg).eval()(torch.rand(2, 3, cfg.input_size, cfg.input_size))
    assert logits.shape == (2, cfg.grid**2 + 1) and boxes.shape == (2, cfg.grid**2, 4)


# ------------------------------------------------------------------------- the tracker asks


@dataclass
class FindingNets(FakeNets):
    """Scripted networks with a finder: per frame, what it finds (any last box)."""

    finds: dict[int, list[Detection]] = field(default_factory=dict)
    find_boxes: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def find(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        self.calls.append(("find", fid(image)))
        self.find_boxes.append((fid(image), np.array(box)))
        return list(self.finds.get(fid(image), []))


def _lost_at_3(nets: FakeNets, config: TrackerConfig) -> tuple[CRCTTracker, list]:
    tracker = CRCTTracker(nets, replace(config, redetect_on_loss=False), init_box=BOX)
    return tracker, [tracker.step(frame(t)) for t in range(6)]


def test_the_finder_refinds_a_face_mtcnn_misses() -> None:
    prev = BOX + 2 * (np.array([2.0, 0, 0, 0]) + np.array([0, 1.0, 0, 0])) + [0, 1.0, 0, 0]
    there = det(moved(prev, 20.0), 0.8)
    nets = FindingNets(scores={3: 0.1}, finds={4: [there]})
    tracker, results = _lost_at_3(nets, TrackerConfig(find=True))
    # frame 4 re-detects: MTCNN, its sensitive look, and the finder around the held box
    assert [n for n, t in nets.calls if t == 4][:3] == ["detect", "relaxed", "find"]
    assert np.allclose(nets.find_boxes[0][1], prev)
    assert np.array_equal(nets.bt_at(4)["box"], there.box)
    assert results[4].state == "redetected" and tracker.redetections == 1
    # off: never asked, the held box stays
    nets = FindingNets(scores={3: 0.1}, finds={4: [there]})
    tracker, results = _lost_at_3(nets, TrackerConfig(find=False))
    assert nets.frames_of("find") == [] and tracker.redetections == 0
    # MTCNN found it, and so did the finder (a little nearer): the same face, MTCNN's box read
    nets = FindingNets(scores={3: 0.1}, detections={4: [there]}, finds={4: [moved_det(there, -4)]})
    _lost_at_3(nets, TrackerConfig(find=True))
    assert nets.frames_of("find") == [4] and np.array_equal(nets.bt_at(4)["box"], there.box)


def test_eq8_takes_the_nearer_of_mtcnn_s_face_and_the_finder_s() -> None:
    """MTCNN finds only a neighbour (a face it sees, the followed one smeared); the finder
    finds a face nearer the held box: that one is taken. A finder's answer further away than
    MTCNN's face is not."""
    prev = BOX + 2 * (np.array([2.0, 0, 0, 0]) + np.array([0, 1.0, 0, 0])) + [0, 1.0, 0, 0]
    neighbour, smeared = det(moved(prev, 40.0), 0.99), det(moved(prev, -15.0), 0.6)
    nets = FindingNets(scores={3: 0.1}, detections={4: [neighbour]}, finds={4: [smeared]})
    _, results = _lost_at_3(nets, TrackerConfig(find=True))
    assert np.array_equal(nets.bt_at(4)["box"], smeared.box) and results[4].state == "redetected"
    nets = FindingNets(scores={3: 0.1}, detections={4: [smeared]}, finds={4: [neighbour]})
    _lost_at_3(nets, TrackerConfig(find=True))
    assert np.array_equal(nets.bt_at(4)["box"], smeared.box)
    nets = FindingNets(scores={3: 0.1}, detections={4: [neighbour]}, finds={4: [smeared]})
    _lost_at_3(nets, TrackerConfig(find=False))  # without the finder: MTCNN's neighbour
    assert np.array_equal(nets.bt_at(4)["box"], neighbour.box)


def test_what_the_finder_finds_is_gated_and_networks_without_one_answer_nothing() -> None:
    far = det(moved(BOX, 400.0), 0.99)
    nets = FindingNets(scores={3: 0.1}, finds={4: [far]})
    tracker, _ = _lost_at_3(nets, TrackerConfig(find=True))
    assert nets.frames_of("find") == [4] and tracker.redetections == 0
    plain = FakeNets(scores={3: 0.1})  # no ``find``: the request is answered with nothing
    tracker, results = _lost_at_3(plain, TrackerConfig(find=True))
    assert tracker.redetections == 0  # BT goes on from the held box
    assert np.allclose(plain.bt_at(4)["box"], results[2].box)


def test_several_faces_ask_the_finder_in_one_batch() -> None:
    prev = BOX + 2 * (np.array([2.0, 0, 0, 0]) + np.array([0, 1.0, 0, 0])) + [0, 1.0, 0, 0]
    there = det(moved(prev, 20.0), 0.8)
    nets = FindingNets(scores={3: 0.1}, finds={4: [there]})
    asked = PerFaceBatch(FindingNets(finds={4: [there]})).find_batch(frame(4), np.stack([BOX, BOX]))
    assert [len(found) for found in asked] == [1, 1]
    assert PerFaceBatch(FakeNets()).find_batch(frame(4), BOX[None]) == [[]]
    engine = MultiTracker(
        nets, replace(TrackerConfig(find=True), redetect_on_loss=False), MultiConfig(1), BOX
    )
    faces = [engine.step(frame(t)) for t in range(6)]
    assert nets.frames_of("find") == [4]
    assert faces[4][0].state == "redetected"


@pytest.mark.parametrize("score", [0.0, 0.3])
def test_a_doubtful_answer_is_no_detection(score: float) -> None:
    g = SPEC.grid
    logits = np.zeros((1, g * g + 1), np.float32)
    logits[0, -1] = 5.0 if score == 0.0 else 0.0  # "absent", or spread thin over the grid

    class Flat:
        config = SPEC

        def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return logits, np.zeros((1, g * g, 4), np.float32)

    image = np.zeros((100, 100, 3), np.uint8)
    assert find_faces(Flat(), image, BOX[None], wide=0.0) == [[]]


# ------------------------------------------------------------------------------- runtimes


def test_the_onnx_finder_answers_as_torch_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import asdict

    from crct_cli.models import weights
    from crct_cli.runtime import Runtime

    monkeypatch.setenv("CRCT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(3)
    model = FaceFinder(FinderConfig()).eval()
    sha = weights.save_weights(
        tmp_path / "w" / "finder.pt", "finder", {"model": asdict(model.config)}, model.state_dict()
    )
    weights.update_manifest("finder.pt", {"kind": "finder", "sha256": sha}, tmp_path / "w")
    onnx = Runtime("onnx", "cpu", tmp_path / "w").finder()
    plain = Runtime("torch", "cpu", tmp_path / "w").finder()
    windows = np.random.default_rng(4).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    (la, ba), (lb, bb) = onnx(windows), plain(windows)
    assert la.shape == (3, 577) and ba.shape == (3, 576, 4)
    assert np.abs(la - lb).max() < 1e-3 and np.abs(ba - bb).max() < 1e-3
    wide = np.random.default_rng(6).integers(0, 256, (2, 192, 192, 3), dtype=np.uint8)
    (la, ba), (lb, bb) = onnx(wide), plain(wide)  # --find-wide's window: any whole grid
    assert la.shape == (2, 48 * 48 + 1) and ba.shape == (2, 48 * 48, 4)
    assert np.abs(la - lb).max() < 1e-3 and np.abs(ba - bb).max() < 1e-3
    image = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[100.0, 80.0, 50.0, 60.0]])
    assert [len(f) for f in find_faces(onnx, image, boxes, 0.0)] == [1]  # any answer at 0


def test_weights_without_a_finder_track_without_it_and_say_so(tmp_path: Path) -> None:

    from crct_cli import Tracker
    from crct_cli.models.weights import WEIGHTS_DIR, read_manifest
    from crct_cli.tracking.networks import finder_shipped

    assert not finder_shipped(tmp_path)
    # a weights folder from before the finder: the shipped files, less finder.pt
    old = tmp_path / "old"
    old.mkdir()
    manifest = read_manifest(WEIGHTS_DIR)
    manifest["weights"].pop("finder.pt", None)
    for name in manifest["weights"]:
        (old / name).symlink_to(WEIGHTS_DIR / name)
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert not finder_shipped(old)
    with pytest.warns(UserWarning, match="no face finder"):
        tracker = Tracker(weights_dir=old)
    assert tracker.networks.finder is None and tracker.config.find is False
    assert tracker.describe()["find"] is False
    assert sorted(p.name for p in old.iterdir()) == sorted([*manifest["weights"], "manifest.json"])


def test_crct_train_finder_records_a_command_that_makes_the_same_weights(tmp_path: Path) -> None:
    import json
    import shlex

    from test_stage2 import write_generated_faces
    from typer.testing import CliRunner

    from crct_cli.cli import app

    data = write_generated_faces(tmp_path / "faces")
    out = tmp_path / "w" / "finder.pt"
    args = ["train", "finder", str(data), "--val", str(data), "--steps", "2", "--batch", "4"]
    args += ["--out", str(out), "--checkpoint", str(tmp_path / "a.ckpt")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    entry = json.loads((out.parent / "manifest.json").read_text())["weights"]["finder.pt"]
    assert entry["kind"] == "finder" and 0.0 <= entry["val_metrics"]["found_within_quarter_side"]
    command = shlex.split(entry["command"])
    assert command[:3] == ["crct", "train", "finder"]
    again = tmp_path / "again" / "finder.pt"
    command[command.index("--out") + 1] = str(again)
    rerun = CliRunner().invoke(app, [*command[1:], "--checkpoint", str(tmp_path / "b.ckpt")])
    assert rerun.exit_code == 0, rerun.output
    redo = json.loads((again.parent / "manifest.json").read_text())["weights"]["finder.pt"]
    assert redo["sha256"] == entry["sha256"]


def test_the_shipped_finder_finds_the_sample_s_face_from_a_box_it_has_left() -> None:
    from crct_cli.io.video import iter_frames
    from crct_cli.runtime import Runtime

    repo = Path(__file__).resolve().parents[1]
    image = next(iter(iter_frames(repo / "samples" / "astronaut.mp4", 1))).image
    rt = Runtime("onnx", "cpu")
    face = rt.detector()(image)[0].box
    centre, side = face[:2] + face[2:] / 2, float(np.sqrt(face[2] * face[3]))
    finder = rt.finder()
    for direction in ((1, 0), (0, 1), (-0.7, -0.7)):
        last = face + np.array([*(0.6 * side * np.array(direction)), 0.0, 0.0])
        (found,) = find_faces(finder, image, last[None])[0]
        assert np.linalg.norm(found.box[:2] + found.box[2:] / 2 - centre) < 0.25 * side
        assert 0.7 < np.sqrt(found.box[2] * found.box[3]) / side < 1.4
