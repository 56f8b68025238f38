"""Crop geometry, the tiny-config networks, weight files and the flip augmentation.

Models are built with a very small trunk so each test runs in a fraction of a second. The
Aligner is checked end to end with a model whose head outputs a fixed shape: the points it
returns are then predictable from first principles (crop units -> crop pixels -> image).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crct_cli import geometry
from crct_cli.aligner import AlignConfig, Aligner
from crct_cli.errors import CrctError
from crct_cli.io.video import has_encoder
from crct_cli.landmarks import FLIP_PERMUTATION, REGIONS, box_from_points
from crct_cli.models.backbone import BackboneConfig
from crct_cli.models.bt import BTConfig, RecurrentTracker
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer, load_localizer
from crct_cli.models.fv import FaceValidator, FVConfig, fv_crop
from crct_cli.models.weights import (
    load_weights,
    read_manifest,
    save_weights,
    sha256_file,
    update_manifest,
)
from crct_cli.train.data import (
    COMPRESSION_CRF,
    NO_AUGMENT,
    Face,
    augmented_crop,
    motion_blur_length,
    motion_smear,
    photometric,
    shadow_band,
    shape_warp,
    small_face_scale,
)

SMALL = BackboneConfig(stem=(8, 8, 16), width_a=16, width_b=32, width_c=64)
SMALL = dataclasses.replace(SMALL, blocks_a=1, blocks_b=1, blocks_c=1)
FLL_CFG = FLLConfig(input_size=64, context=1.35, hidden=16, backbone=SMALL)
PERM = list(FLIP_PERMUTATION)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The machine is shared with training jobs: stay on one core here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ibug_template() -> np.ndarray:
    """A frontal 68-point face in the iBUG markup, written from the markup's semantics.

    Image-left first (contour 0, brow 17, eye corner 36, mouth corner 48), mirror-symmetric
    about x = 0, so it checks FLIP_PERMUTATION independently of how that was written.
    """
    t = np.linspace(0.0, np.pi, 17)
    contour = np.stack([-40 * np.cos(t), 5 + 35 * np.sin(t)], axis=1)
    brows = [(-30, -20), (-24, -24), (-18, -25), (-12, -24), (-6, -21)]
    brows += [(6, -21), (12, -24), (18, -25), (24, -24), (30, -20)]
    nose = [(0, -15), (0, -9), (0, -3), (0, 3), (-8, 8), (-4, 9), (0, 10), (4, 9), (8, 8)]
    eyes = [(-28, -10), (-22, -13), (-16, -13), (-10, -10), (-16, -7), (-22, -7)]
    eyes += [(10, -10), (16, -13), (22, -13), (28, -10), (22, -7), (16, -7)]
    mouth = [(-18, 20), (-11, 16), (-4, 15), (0, 16), (4, 15), (11, 16), (18, 20)]
    mouth += [(11, 25), (4, 27), (0, 28), (-4, 27), (-11, 25)]
    mouth += [(-14, 20), (-5, 19), (0, 19), (5, 19), (14, 20), (5, 22), (0, 22), (-5, 22)]
    rest = np.array(brows + nose + eyes + mouth, dtype=np.float64)
    return np.concatenate([contour, rest])


def mirrored(points: np.ndarray, axis_x: float = 0.0) -> np.ndarray:
    out = points[PERM].copy()
    out[:, 0] = 2 * axis_x - out[:, 0]
    return out


def test_template_is_symmetric_under_the_flip_permutation() -> None:
    template = ibug_template()
    assert template.shape == (68, 2)
    assert np.allclose(mirrored(template), template, atol=1e-9)
    assert sorted(PERM) == list(range(68))
    assert all(PERM[PERM[i]] == i for i in range(68))  # an involution


# ---------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize(("angle", "flip"), [(0.0, False), (30.0, False), (-20.0, True)])
def test_crop_matrix_round_trip_and_centre(angle: float, flip: bool) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-50, 300, (68, 2))
    centre, size, side = np.array([120.5, 80.25]), 64, 90.0
    m = geometry.crop_matrix(centre, side, size, angle, flip)
    assert np.allclose(geometry.apply(geometry.invert(m), geometry.apply(m, points)), points)
    half = (size - 1) / 2
    assert np.allclose(geometry.apply(m, centre[None]), [[half, half]])
    # scale: distances shrink by size / side whatever the rotation and flip
    d_img = np.linalg.norm(points[1] - points[0])
    d_crop = np.linalg.norm(geometry.apply(m, points[1:2]) - geometry.apply(m, points[:1]))
    assert d_crop == pytest.approx(d_img * size / side)


def test_box_centre_lands_at_crop_centre() -> None:
    box = np.array([30.0, 20.0, 40.0, 60.0])  # centre (50, 50), square side 60
    centre, side = geometry.box_center_size(box)
    assert np.allclose(centre, [50, 50]) and side == 60
    image = np.zeros((100, 120, 3), np.uint8)
    image[50, 50] = 255
    crop, m = geometry.crop_box(image, box, 33 / 60, 33)  # one crop pixel per image pixel
    assert crop.shape == (33, 33, 3)
    assert np.argwhere(crop[:, :, 0] == 255).tolist() == [[16, 16]]
    assert np.allclose(geometry.apply(m, centre[None]), [[16, 16]])


def test_flip_mirrors_points_and_pixels() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)
    centre, side, size = np.array([55.0, 47.0]), 70.0, 48
    m = geometry.crop_matrix(centre, side, size)
    mf = geometry.crop_matrix(centre, side, size, flip=True)
    points = rng.uniform(20, 80, (10, 2))
    plain, flipped = geometry.apply(m, points), geometry.apply(mf, points)
    assert np.allclose(flipped[:, 0], (size - 1) - plain[:, 0])
    assert np.allclose(flipped[:, 1], plain[:, 1])
    a = geometry.warp(image, m, size).astype(int)
    b = geometry.warp(image, mf, size).astype(int)
    assert np.abs(b - a[:, ::-1]).max() <= 1


# ---------------------------------------------------------------------------------------------
# Aligner (FLL + geometry)


def fixed_shape_model(units: np.ndarray) -> LandmarkLocalizer:
    """A localiser that outputs ``units`` (68, 2) for any crop: zero weights, bias = shape."""
    model = LandmarkLocalizer(FLL_CFG)
    last = model.head[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.as_tensor(units, dtype=torch.float32).reshape(-1))
    return model


def expected_points(box: np.ndarray, units: np.ndarray, refine: int = 0) -> np.ndarray:
    """Crop units (centre of pixel grid, side 1) -> crop pixels -> image, from first principles."""
    size, context = FLL_CFG.input_size, FLL_CFG.context
    for _ in range(refine + 1):
        x, y, w, h = box
        centre = np.array([x + w / 2, y + h / 2])
        side = max(w, h, 1.0) * context
        crop_px = (units.astype(np.float32).astype(np.float64) + 0.5) * size
        points = centre + (crop_px - (size - 1) / 2) * side / size
        box = box_from_points(points)
    return points


def test_untrained_aligner_returns_points_in_image_pixels() -> None:
    torch.manual_seed(0)
    image = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 30.0, 50.0, 60.0], [100.0, 10.0, 40.0, 40.0]])
    aligner = Aligner(LandmarkLocalizer(FLL_CFG), "cpu", AlignConfig(refine=0))
    points = aligner(image, boxes)
    assert points.shape == (2, 68, 2) and np.all(np.isfinite(points))
    for pts, (x, y, w, h) in zip(points, boxes, strict=True):  # near-zero output: box centre
        assert np.all(np.abs(pts - [x + w / 2, y + h / 2]) < 0.1 * max(w, h))
    assert aligner(image, np.zeros((0, 4))).shape == (0, 68, 2)
    assert Aligner(LandmarkLocalizer(FLL_CFG))(image, boxes[0]).shape == (1, 68, 2)


@pytest.mark.parametrize("refine", [0, 1, 2])
def test_aligner_maps_a_fixed_shape_back_exactly(refine: int) -> None:
    units = np.random.default_rng(3).uniform(-0.3, 0.3, (68, 2))
    aligner = Aligner(fixed_shape_model(units), "cpu", AlignConfig(refine=refine))
    image = np.random.default_rng(4).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    boxes = np.array([[30.0, 40.0, 60.0, 80.0], [120.5, 20.25, 50.0, 36.0]])
    points = aligner(image, boxes)
    for pts, box in zip(points, boxes, strict=True):
        assert np.allclose(pts, expected_points(box, units, refine), atol=1e-3)
    if refine:  # refinement really re-crops: the answer differs from the first estimate
        assert not np.allclose(points[0], expected_points(boxes[0], units, 0), atol=0.5)


def test_flip_averaging_keeps_a_symmetric_shape() -> None:
    """A constant shape symmetric about the crop centre is its own mirror: flip changes nothing.

    The crop is mirrored about pixel (size - 1) / 2, so the mirror in crop units is
    x -> -x - 1/size, not -x (which would shift every answer by half a crop pixel).
    """
    size = FLL_CFG.input_size
    crop_px = ibug_template() * 0.5 + (size - 1) / 2  # symmetric about the crop's centre
    units = crop_px / size - 0.5
    image = np.random.default_rng(5).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    box = np.array([40.0, 30.0, 70.0, 90.0])
    plain = Aligner(fixed_shape_model(units), "cpu", AlignConfig(refine=0, flip=False))
    both = Aligner(fixed_shape_model(units), "cpu", AlignConfig(refine=0, flip=True))
    a, b = plain(image, box[None])[0], both(image, box[None])[0]
    assert np.allclose(b, a, atol=1e-3)
    assert np.allclose(b, mirrored(b, axis_x=box[0] + box[2] / 2), atol=1e-3)
    assert np.allclose(a, expected_points(box, units), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# FV


def test_face_validator_patch_and_output_shapes() -> None:
    cfg = FVConfig(crop_size=32, context=2.0, patch=4, width=8)
    fv = FaceValidator(cfg).eval()
    crops = torch.zeros(2, 3, 32, 32)
    crops[:, :, 16:, :] = 1.0  # white bottom half
    points = torch.empty(2, 68, 2)
    points[:, :34] = torch.tensor([5.0, 25.0])  # (x, y) in the white half
    points[:, 34:] = torch.tensor([25.0, 5.0])  # in the black half
    patches = fv.patches(crops, points)
    assert patches.shape == (2, 68, 4, 4)
    assert patches[:, :34].min() > patches[:, 34:].max()  # x and y are not swapped
    with torch.no_grad():
        assert fv(crops, points).shape == (2,)
    image = np.random.default_rng(6).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    shape = ibug_template() * 0.4 + [45, 40]
    crop, pts = fv_crop(image, shape, cfg)
    assert crop.shape == (32, 32, 3)
    x, y, w, h = box_from_points(pts)
    assert np.allclose([x + w / 2, y + h / 2], [15.5, 15.5])
    assert max(w, h) == pytest.approx(32 / cfg.context)
    assert 0.0 <= fv.score(image, shape) <= 1.0


# ---------------------------------------------------------------------------------------------
# BT


BT_CFG = BTConfig(input_size=64, reduced=8, embedding=16, hidden=8, backbone=SMALL)


def test_recurrent_tracker_shapes_and_state() -> None:
    torch.manual_seed(0)
    bt = RecurrentTracker(BT_CFG).eval()
    prev, cur = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pred, (h, c) = bt(prev, cur)
        assert pred.shape == (2, 68, 2)
        assert h.shape == c.shape == (BT_CFG.lstm_layers, 2, BT_CFG.hidden)
        _, (h2, _) = bt(prev, cur, (h, c))
        _, (h_fresh, _) = bt(prev, cur)
    assert torch.equal(h_fresh, h)  # no hidden state is kept inside the module
    assert not torch.allclose(h2, h)  # the state passed in is used
    with torch.no_grad():  # the same in two steps: each crop's features, then the rest
        fp, fc = bt.features(prev), bt.features(cur)
        two_step, (h3, _) = bt.track_features(fp, fc, (h, c))
        one_step, (h4, _) = bt(prev, cur, (h, c))
    assert fp.shape == (2, BT_CFG.reduced * BT_CFG.backbone.out_grid**2)
    assert torch.allclose(two_step, one_step, atol=1e-6) and torch.allclose(h3, h4, atol=1e-6)


def test_region_heads_map_back_to_markup_order() -> None:
    bt = RecurrentTracker(BT_CFG).eval()
    prev = cur = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for head in bt.heads.values():
            head.weight.zero_()
            head.bias.zero_()
        for name, idx in REGIONS.items():
            values = torch.arange(1, 2 * len(idx) + 1, dtype=torch.float32)
            bt.heads[name].bias.copy_(values)
            pred = bt(prev, cur)[0][0].numpy()
            bt.heads[name].bias.zero_()
            moved = sorted(set(np.nonzero(pred)[0].tolist()))
            assert moved == list(idx), name
            assert np.array_equal(pred[list(idx)], values.view(-1, 2).numpy())


def test_mean_shape_initialises_every_point_in_markup_order() -> None:
    mean = ibug_template() / 200.0
    bt = RecurrentTracker(BT_CFG, mean_shape=mean).eval()
    with torch.no_grad():
        pred, _ = bt(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert np.allclose(pred[0].numpy(), mean, atol=0.02)


# ---------------------------------------------------------------------------------------------
# weight files


def _saved(tmp_path: Path) -> tuple[LandmarkLocalizer, Path, str]:
    torch.manual_seed(1)
    model = LandmarkLocalizer(FLL_CFG)
    path = tmp_path / "weights" / "fll.pt"
    config = {"model": dataclasses.asdict(FLL_CFG)}
    sha = save_weights(path, "fll", config, model.state_dict())
    return model, path, sha


def test_save_load_round_trip_fp16(tmp_path: Path) -> None:
    model, path, sha = _saved(tmp_path)
    assert sha == sha256_file(path) and len(sha) == 64
    assert [p.name for p in path.parent.iterdir()] == ["fll.pt"]  # no temporary left
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["head.4.weight"].dtype == torch.float16
    blob = load_weights(path, "fll")
    assert blob["path"] == str(path) and blob["kind"] == "fll"
    original = model.state_dict()
    for key, value in blob["state_dict"].items():
        if original[key].is_floating_point():
            assert value.dtype == torch.float32
            assert torch.equal(value, original[key].half().float()), key
        else:
            assert torch.equal(value, original[key]), key
    restored = load_localizer(blob)
    assert restored.config == FLL_CFG
    assert torch.equal(restored.head[-1].bias, original["head.4.bias"].half().float())


def test_manifest_name_lookup_and_sha_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path, sha = _saved(tmp_path)
    folder = path.parent
    update_manifest("fll.pt", {"sha256": sha, "command": "crct train fll"}, weights_dir=folder)
    entry = read_manifest(folder)["weights"]["fll.pt"]
    assert entry["sha256"] == sha and "date" in entry
    # what a file was trained under: elsewhere a retraining can give another sha256
    assert entry["versions"]["torch"] == torch.__version__
    assert entry["versions"]["numpy"] == np.__version__
    assert entry["versions"]["cpu"]  # the CPU's model: training differs between CPUs too
    monkeypatch.chdir(tmp_path)  # a bare name is looked up in weights_dir, not the cwd
    assert load_weights("fll.pt", "fll", weights_dir=folder)["path"] == str(path)
    # "weights/fll.pt", as the manifest's commands write it, from a folder without weights/
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_weights("weights/fll.pt", "fll", weights_dir=folder)["path"] == str(path)
    with pytest.raises(
        CrctError, match="weights/none.pt: no such weight file .*'crct train fll or bt'"
    ):
        load_weights("weights/none.pt", ("fll", "bt"), weights_dir=folder)
    with pytest.raises(CrctError, match="is missing; reinstall crct"):  # a shipped one, gone
        (folder / "fll.pt").rename(folder / "kept.pt")
        load_weights("weights/fll.pt", "fll", weights_dir=folder)
    (folder / "kept.pt").rename(folder / "fll.pt")
    monkeypatch.chdir(tmp_path)
    update_manifest("fll.pt", {"sha256": "0" * 64}, weights_dir=folder)
    with pytest.raises(CrctError, match="is not the one .* lists") as info:
        load_weights(path, "fll")
    assert str(path) in str(info.value)
    update_manifest("fll.pt", {"sha256": sha}, weights_dir=folder)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # damaged after the fact
    with pytest.raises(CrctError, match=r"fll\.pt is not the one"):
        load_weights(path, "fll")


def test_missing_unreadable_and_wrong_kind_weights(tmp_path: Path) -> None:
    _, path, _ = _saved(tmp_path)
    with pytest.raises(CrctError, match="holds 'fll' weights, expected 'bt'"):
        load_weights(path, "bt")
    missing = tmp_path / "weights" / "bt.pt"
    with pytest.raises(CrctError, match="missing") as info:
        load_weights(missing, "bt")
    assert str(missing) in str(info.value)
    junk = tmp_path / "weights" / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CrctError, match="cannot be read"):
        load_weights(junk, "fll")
    (tmp_path / "weights" / "manifest.json").write_text("{ nope")
    with pytest.raises(CrctError, match="corrupt manifest"):
        load_weights(path, "fll")


# ---------------------------------------------------------------------------------------------
# training crops


MARKED = (0, 16, 17, 26, 31, 35, 36, 45, 48, 54, 8, 57)


def _marked_face() -> tuple[Face, dict[int, tuple[int, int, int]]]:
    """A grey picture with a coloured square on each marked landmark of the template."""
    points = ibug_template() * 1.5 + 100.0
    image = np.full((200, 200, 3), 90, np.uint8)
    colours = {}
    for k, j in enumerate(MARKED):
        colour = (40 + 17 * k, 250 - 19 * k, (60 + 97 * k) % 256)
        colours[j] = colour
        x, y = (int(round(v)) for v in points[j])
        cv2.rectangle(image, (x - 4, y - 4), (x + 4, y + 4), colour, -1)
    return Face("marks", image, points), colours


@pytest.mark.parametrize("flip", [False, True])
def test_augmented_crop_points_sit_on_their_marks(flip: bool) -> None:
    face, colours = _marked_face()
    aug = dataclasses.replace(NO_AUGMENT, flip=1.0 if flip else 0.0)
    crop, points = augmented_crop(face, np.random.default_rng(0), 96, 1.35, aug)
    assert crop.shape == (96, 96, 3) and points.shape == (68, 2)
    for j, colour in colours.items():
        i = PERM[j] if flip else j  # after a flip, point i shows what was landmark PERM[i]
        x, y = (int(round(v)) for v in points[i])
        assert np.abs(crop[y, x].astype(int) - colour).max() <= 3, (i, j)
    # the markup's semantics survive: 36 and 0 stay on the image left of 45 and 16
    assert points[36, 0] < points[45, 0] and points[0, 0] < points[16, 0]
    assert points[48, 0] < points[54, 0] and points[17, 0] < points[26, 0]
    plain_crop, plain = augmented_crop(face, np.random.default_rng(0), 96, 1.35, NO_AUGMENT)
    assert np.allclose(points, plain, atol=1e-6)  # a symmetric face flips onto itself
    if flip:
        assert np.abs(crop.astype(int) - plain_crop[:, ::-1].astype(int)).max() <= 1


@pytest.mark.parametrize("flip", [False, True])
def test_a_bent_crop_moves_its_points_with_its_marks(flip: bool) -> None:
    """``--shape-warp``: the crop is bent, every point goes where its mark went (not where
    it was), the face's shape changes (not a similarity), and at share 0 nothing is drawn."""
    face, colours = _marked_face()
    flipped = dataclasses.replace(NO_AUGMENT, flip=1.0 if flip else 0.0)
    bent = dataclasses.replace(flipped, shape_warp=1.0, shape_warp_std=0.04)
    moves = []
    for seed in range(4):
        crop, points = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, bent)
        _, plain = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, flipped)
        for j, colour in colours.items():
            i = PERM[j] if flip else j
            x, y = (int(round(v)) for v in points[i])
            assert np.abs(crop[y, x].astype(int) - colour).max() <= 12, (seed, j)
        moved = points - plain
        moves.append(np.linalg.norm(moved, axis=1).mean())
        # not one shift, scale and turn of the whole shape: residual after the best similarity
        similarity, _ = cv2.estimateAffinePartial2D(plain, points, method=cv2.LMEDS)
        fitted = geometry.apply(similarity, plain)
        assert np.linalg.norm(points - fitted, axis=1).mean() > 0.3
    assert 1.0 < np.mean(moves) < 6.0
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    off = augmented_crop(face, a, 96, 1.35, NO_AUGMENT)
    same = augmented_crop(face, b, 96, 1.35, dataclasses.replace(NO_AUGMENT, shape_warp_std=0.1))
    assert np.array_equal(off[0], same[0]) and a.random() == b.random()


def test_the_bent_points_invert_the_field() -> None:
    """A point's new place q satisfies q + d(q) = p: a bright dot drawn at p is found at q."""
    rng = np.random.default_rng(3)
    grid_y, grid_x = np.mgrid[0:112, 0:112]
    for seed in range(10):
        p = rng.uniform(20, 92, (1, 2)).astype(np.float32)
        dot = np.exp(-((grid_x - p[0, 0]) ** 2 + (grid_y - p[0, 1]) ** 2) / 4.5)
        image = np.repeat((dot * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        out, q = shape_warp(image, p, np.random.default_rng(seed), 0.03)
        weight = out[:, :, 0].astype(float) / out[:, :, 0].sum()
        found = np.array([(weight * grid_x).sum(), (weight * grid_y).sum()])
        assert np.linalg.norm(found - q[0]) < 0.35, seed


def test_basic_conv_is_facenet_pytorchs_unit() -> None:
    """Ours has facenet-pytorch's parameter names and BN epsilon: its state loads, same output."""
    from facenet_pytorch.models.inception_resnet_v1 import BasicConv2d as FacenetUnit

    from crct_cli.models.backbone import BasicConv2d

    torch.manual_seed(5)
    theirs = FacenetUnit(4, 6, kernel_size=(1, 3), stride=1, padding=(0, 1)).eval()
    with torch.no_grad():
        theirs.bn.running_var.uniform_(0.001, 0.01)  # small variances: epsilon matters
        theirs.bn.running_mean.uniform_(-0.1, 0.1)
    ours = BasicConv2d(4, 6, kernel_size=(1, 3), stride=1, padding=(0, 1)).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_fused_batchnorm_gives_the_same_landmarks() -> None:
    """Inference folds each BasicConv2d's batch norm into its convolution: same outputs."""
    import copy

    from crct_cli.models.backbone import BasicConv2d, fuse_batchnorm

    torch.manual_seed(3)
    model = LandmarkLocalizer(FLL_CFG)
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    fused = fuse_batchnorm(copy.deepcopy(model))
    blocks = [m for m in fused.modules() if isinstance(m, BasicConv2d)]
    assert blocks and all(isinstance(m.bn, torch.nn.Identity) for m in blocks)
    x = torch.rand(2, 3, FLL_CFG.input_size, FLL_CFG.input_size)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)
    with pytest.raises(AssertionError, match="eval"):
        fuse_batchnorm(LandmarkLocalizer(FLL_CFG).train())


def test_a_shadow_darkens_one_band_across_the_crop_and_keeps_what_lies_under_it() -> None:
    """``--shadow``: a band at any angle, its pixels at 5-50% of their light, not flat."""
    texture = np.random.default_rng(0).integers(60, 256, (96, 96, 3), dtype=np.uint8)
    darkened = []
    for seed in range(20):
        out = shadow_band(texture, np.random.default_rng(seed))
        inside = (out != texture).any(axis=2)
        assert 0.02 < inside.mean() < 0.75  # a band, not the whole crop
        ratio = out[inside].astype(float) / texture[inside]
        assert ratio.max() <= 0.5 + 1e-6 and np.ptp(ratio.mean(axis=1)) < 0.05  # one gain
        assert np.corrcoef(out[inside][:, 0], texture[inside][:, 0])[0, 1] > 0.95  # readable
        darkened.append(inside)
    assert not all(np.array_equal(darkened[0], d) for d in darkened[1:])  # placed at random
    # photometric draws for the band only when asked: at 0 the random stream is the one
    # earlier training commands drew; any chance above 0 draws once more
    plain = dataclasses.replace(NO_AUGMENT, color=1.0)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    never = photometric(texture, a, plain)
    rare = photometric(texture, b, dataclasses.replace(plain, shadow=1e-9))
    assert np.array_equal(never, rare) and a.random() != b.random()
    always = photometric(texture, np.random.default_rng(3), dataclasses.replace(plain, shadow=1))
    assert (always < never).any() and (always <= never).all()


def test_a_dark_share_of_shadows_is_as_deep_as_the_strip_of_hard_footage() -> None:
    """``--shadow-dark``: that share of bands keeps 5-15% of the light; the others 5-50%, drawn
    from the same stream as before when the share is 0."""
    texture = np.random.default_rng(0).integers(60, 256, (96, 96, 3), dtype=np.uint8)

    def gain(out: np.ndarray) -> float:
        inside = (out != texture).any(axis=2)
        return float((out[inside].astype(float) / texture[inside]).mean())

    plain = [gain(shadow_band(texture, np.random.default_rng(s))) for s in range(40)]
    zero = [gain(shadow_band(texture, np.random.default_rng(s), 0.0)) for s in range(40)]
    deep = [gain(shadow_band(texture, np.random.default_rng(s), 1.0)) for s in range(40)]
    half = [gain(shadow_band(texture, np.random.default_rng(s), 0.5)) for s in range(200)]
    assert plain == zero and max(plain) > 0.3  # 0 is the old draw, bright bands included
    assert max(deep) <= 0.15 + 0.01 and min(deep) >= 0.05 - 0.01
    share = np.mean(np.array(half) <= 0.15 + 0.01)
    assert 0.5 < share < 0.7  # half drawn dark, and a fifth of the rest falls there too


@pytest.mark.skipif(not has_encoder("libx264"), reason="this PyAV build has no libx264")
def test_compression_comes_last_and_draws_nothing_when_off() -> None:
    """``--compression``: the crop, its band included, goes through one H.264 frame at a CRF
    drawn in range; at 0 the random stream and the crop are those of earlier commands."""
    texture = np.random.default_rng(0).integers(60, 256, (96, 96, 3), dtype=np.uint8)
    plain = dataclasses.replace(NO_AUGMENT, shadow=1.0)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    never = photometric(texture, a, plain)
    rare = photometric(texture, b, dataclasses.replace(plain, compression=1e-9))
    assert np.array_equal(never, rare) and a.random() != b.random()
    squeezed = dataclasses.replace(plain, compression=1.0)
    always = photometric(texture, np.random.default_rng(3), squeezed)
    assert np.array_equal(always, photometric(texture, np.random.default_rng(3), squeezed))
    assert always.shape == never.shape and not np.array_equal(always, never)
    # the same band, what the codec keeps of it: close to the picture, never the same
    band = (never != texture).any(axis=2)
    assert np.abs(always[~band].astype(float) - never[~band]).mean() < 40
    assert np.abs(always[band].astype(float).mean() - never[band].mean()) < 10
    assert 10 <= COMPRESSION_CRF[0] < COMPRESSION_CRF[1] <= 51  # H.264's CRF scale


def test_a_small_face_keeps_its_points_on_their_marks_and_loses_detail() -> None:
    """``--small-face``: the picture is brought down to a 40-140 px face before the
    degradations; the crop frames the same square and its points still sit on their marks."""
    marked, colours = _marked_face()  # the photographs' size: brought down almost every draw
    image = cv2.resize(marked.image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    fine = (np.indices(image.shape[:2]).sum(axis=0) % 2 == 1) & (image == 90).all(axis=2)
    image[fine] = 30  # a one-pixel texture on the grey: the detail a smaller face cannot keep
    face = Face("marks", image, (marked.points + 0.5) * 2 - 0.5)
    side = float(max(box_from_points(face.points)[2:]))
    assert side > 160
    small = dataclasses.replace(NO_AUGMENT, small_face=1.0)
    detail = []
    for seed in range(8):
        crop, points = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, small)
        clean, plain = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, NO_AUGMENT)
        # the same square, up to the resized grid's rounding: well under a crop pixel
        assert np.abs(points - plain).max() < 0.5
        for j, colour in colours.items():
            x, y = (int(round(v)) for v in points[j])
            near = crop[y - 1 : y + 2, x - 1 : x + 2].astype(int)
            assert np.abs(near - colour).max(axis=2).min() <= 24, (seed, j)
        grey = [c[np.abs(c.astype(int) - 60).max(axis=2) <= 30] for c in (crop, clean)]
        detail.append(grey[0].std() / grey[1].std())
    assert max(detail) < 0.5  # the texture averaged away, as on a smaller face
    # the drawn side lies in the range; a face already smaller is left as it is; at 0 nothing
    # is drawn, so earlier training commands reproduce their batches
    for seed in range(20):
        scale = small_face_scale(face.points, np.random.default_rng(seed), small)
        assert 40.0 - 1e-6 <= scale * side <= 140.0 + 1e-6
    tiny = Face("tiny", face.image, face.points * 0.1)
    assert small_face_scale(tiny.points, np.random.default_rng(0), small) == 1.0
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert small_face_scale(face.points, a, NO_AUGMENT) == 1.0 and a.random() == b.random()


def test_a_motion_smear_spreads_a_dot_along_one_line_centred_where_it_was() -> None:
    """``--motion-blur``: the exposure's path is a straight line of the drawn length, centred
    on the face (the truth is the middle of the exposure), and no light is lost."""
    dot = np.zeros((121, 121, 3), np.float32)  # float: no rounding of the spread light
    dot[60, 60] = 255
    directions = []
    for length in (4.0, 12.0, 40.0):
        for seed in range(4):
            out = motion_smear(dot, length, np.random.default_rng(seed))[..., 0].astype(float)
            ys, xs = np.nonzero(out > 1e-4)
            w = out[ys, xs]
            assert abs(w.sum() - 255) < 0.05 * 255  # the light is kept
            centre = np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()
            assert np.abs(centre - 60).max() < 0.05  # centred where the dot was
            spread = np.linalg.eigh(np.cov(np.stack([xs, ys]), aweights=w))
            extent = np.sqrt(12 * spread[0])  # a uniform segment's length from its variance
            assert length - 1 < extent[1] < length + 3 and extent[0] < 2.5  # one thin line
            directions.append(np.abs(spread[1][:, 1]))
    assert np.ptp(np.array(directions)[:, 0]) > 0.5  # drawn in different directions


def test_a_smeared_crop_keeps_its_points_and_loses_sharpness() -> None:
    """A smeared face's crop frames the same square with the same points; the smear takes
    away edges; its length is drawn in range; at share 0 nothing is drawn."""
    face, _ = _marked_face()
    side = float(max(box_from_points(face.points)[2:]))
    smeared = dataclasses.replace(NO_AUGMENT, motion_blur=1.0, motion_blur_len=(0.1, 0.3))

    def edges(c: np.ndarray) -> float:  # gradient energy: any blur lowers it
        c = c.astype(float)
        return float((np.diff(c, axis=0) ** 2).sum() + (np.diff(c, axis=1) ** 2).sum())

    for seed in range(6):
        crop, points = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, smeared)
        clean, plain = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, NO_AUGMENT)
        assert np.array_equal(points, plain)
        assert edges(crop) < 0.6 * edges(clean)
        length = motion_blur_length(face.points, np.random.default_rng(seed), smeared)
        assert 0.1 * side - 1e-6 <= length <= 0.3 * side + 1e-6
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert motion_blur_length(face.points, a, NO_AUGMENT) == 0.0 and a.random() == b.random()


def test_stacked_degradations_degrade_more_and_keep_the_points() -> None:
    """``stack``: a degraded face may be degraded again (blur, then noise, then darkening...)."""
    face, _ = _marked_face()
    once = dataclasses.replace(NO_AUGMENT, degradation=1.0)
    again = dataclasses.replace(once, stack=0.9)
    diffs = {}
    for name, aug in (("once", once), ("again", again)):
        errors = []
        for seed in range(12):
            crop, points = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, aug)
            clean, plain = augmented_crop(face, np.random.default_rng(seed), 96, 1.35, NO_AUGMENT)
            assert np.allclose(points, plain)  # only the pixels change
            errors.append(np.abs(crop.astype(int) - clean.astype(int)).mean())
        diffs[name] = float(np.mean(errors))
    assert diffs["again"] > diffs["once"] > 0
