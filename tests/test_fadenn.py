"""FADeNN's models: shapes, pass-through of clean input, routing, the Aligner's denoiser,
training pairs and losses, validation sets made as ``crct degrade`` makes them, and tiny
end-to-end runs of both trainers (weight file + manifest entry).

Networks are built with a few channels so each test runs in well under a second; behaviour
that depends on a decision (the classifier's class, a DAE's output) is scripted by setting
the last layer's weights, so the expected result follows from first principles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from crct_cli.aligner import AlignConfig, Aligner, fadenn_aligner
from crct_cli.degrade import plan_degrade
from crct_cli.errors import CrctError
from crct_cli.io.images import read_image, write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.landmarks import box_from_points
from crct_cli.models.backbone import BackboneConfig
from crct_cli.models.fadenn import (
    CLASS_NAMES,
    DAE,
    IID,
    ClassifierConfig,
    CropDenoiser,
    DAEConfig,
    FADeNN,
    IIDConfig,
    NoiseClassifier,
    fadenn_weight_config,
    iid_weight_config,
    load_fadenn,
    load_iid,
)
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
from crct_cli.models.weights import load_weights, read_manifest, save_weights, sha256_file
from crct_cli.train.data import NO_AUGMENT, Face
from crct_cli.train.fadenn import (
    TrainFADeNNConfig,
    TrueClassDenoiser,
    ValImage,
    degraded_like_cli,
    gt_box_noise_benchmark,
    train_fadenn,
)
from crct_cli.train.fadenn import make_batch as joint_batch
from crct_cli.train.iid import TrainIIDConfig, iid_loss, noisy_crop_pair, train_iid

TINY = (4, 6, 8)
SMALL = BackboneConfig(stem=(8, 8, 16), width_a=16, width_b=32, width_c=64)
SMALL = dataclasses.replace(SMALL, blocks_a=1, blocks_b=1, blocks_c=1)
FLL_CFG = FLLConfig(input_size=64, context=1.35, hidden=16, backbone=SMALL)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from threads, and on a busy 2-core machine OpenMP's
    hand-offs make every small call wait; one thread keeps each test well under a second."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(variant: str) -> IIDConfig:
    return IIDConfig(variant, DAEConfig(TINY), ClassifierConfig(TINY, hidden=8))


def script_classifier(classifier: NoiseClassifier, cls: int) -> None:
    """Make the classifier say ``cls`` whatever the input."""
    last = classifier.head[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[cls] = 10.0


def script_dae(dae: DAE, shift: float) -> None:
    """Make a DAE add ``shift`` to every pixel (its residual is the last layer's bias)."""
    with torch.no_grad():
        dae.decoder.out.weight.zero_()
        dae.decoder.out.bias.fill_(shift)


class ScriptedClassifier(nn.Module):
    """Says classes[i] for image i and counts its calls."""

    def __init__(self, classes: list[int]) -> None:
        super().__init__()
        self.classes = torch.tensor(classes)
        self.calls = 0

    def forward(self, x: torch.Tensor, reconstruct: bool = False):
        self.calls += 1
        return nn.functional.one_hot(self.classes, len(CLASS_NAMES)).float() * 5, None


class ConstantDAE(nn.Module):
    """Returns ``value`` everywhere and records the batch sizes it saw."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        return torch.full_like(x, self.value)


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("variant", ["d", "s", "m"])
@pytest.mark.parametrize("shape", [(2, 3, 112, 112), (1, 3, 50, 70)])
def test_each_variant_keeps_the_shape_and_range(variant: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    iid = IID(tiny_config(variant)).eval()
    for dae in [iid.dae] if iid.dae is not None else list(iid.daes or []):
        script_dae(dae, 0.7)  # pushes out of range: the output must still be clamped
    x = torch.rand(shape)
    with torch.no_grad():
        out, classes = iid.denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    if variant == "d":
        assert classes is None
    else:
        assert classes is not None and classes.shape == (shape[0],)
        assert set(classes.tolist()) <= set(range(len(CLASS_NAMES)))


def test_classifiers_and_fadenn_shapes() -> None:
    x = torch.rand(3, 3, 64, 64)
    logits, recon = NoiseClassifier(ClassifierConfig(TINY, 8))(x, reconstruct=True)
    assert logits.shape == (3, 5) and recon is None  # STC: encoder + classifier only
    mtc = NoiseClassifier(ClassifierConfig(TINY, 8), multitask=True)
    logits, recon = mtc(x, reconstruct=True)
    assert logits.shape == (3, 5) and recon is not None and recon.shape == x.shape
    assert mtc(x)[1] is None  # the decoder is skipped unless asked for (inference)
    model = FADeNN(IID(tiny_config("m")), LandmarkLocalizer(FLL_CFG)).eval()
    assert model(x).shape == (3, 68, 2)
    assert model.config == FLL_CFG


def test_an_untrained_dae_is_the_identity() -> None:
    x = torch.rand(2, 3, 48, 48)
    assert torch.equal(DAE(DAEConfig(TINY)).eval()(x), x)


def test_the_default_dae_is_small() -> None:
    n = sum(p.numel() for p in DAE().parameters())
    assert n * 2 < 1.5e6  # bytes in fp16


# ---------------------------------------------------------------- pass-through and routing


@pytest.mark.parametrize("variant", ["s", "m"])
def test_clean_input_passes_through_bit_identical(variant: str) -> None:
    iid = IID(tiny_config(variant)).eval()
    assert iid.classifier is not None and iid.daes is not None
    script_classifier(iid.classifier, 0)
    for dae in iid.daes:
        script_dae(dae, 0.3)  # would visibly change anything routed to it
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        out, classes = iid.denoise(x)
    assert classes is not None and classes.tolist() == [0, 0, 0, 0]
    assert torch.equal(out, x)
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    den = CropDenoiser(iid)
    assert np.array_equal(den(crops), crops)
    assert den.last_classes is not None and den.last_classes.tolist() == [0, 0, 0]
    script_classifier(iid.classifier, 2)  # the same crops classed as blurred are changed
    assert not np.array_equal(den(crops), crops)


def denoise_with_stubs(
    config: IIDConfig, classes: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[ConstantDAE]]:
    """(input, output, classes) of an IID whose classifier says ``classes`` and whose DAE k
    returns k / 10 everywhere, and those DAEs."""
    iid = IID(config).eval()
    iid.classifier = ScriptedClassifier(classes)  # type: ignore[assignment]
    stubs = [ConstantDAE(k / 10) for k in range(1, 5)]
    iid.daes = nn.ModuleList(stubs)
    x = torch.rand(len(classes), 3, 16, 16)
    with torch.no_grad():
        out, got = iid.denoise(x)
    return x, out, got, stubs


def test_class_k_goes_to_dae_k_and_clean_is_untouched() -> None:
    classes = [0, 1, 2, 3, 4, 2, 0, 4]
    x, out, got, stubs = denoise_with_stubs(tiny_config("s"), classes)
    assert got is not None and got.tolist() == classes
    for i, k in enumerate(classes):
        if k == 0:
            assert torch.equal(out[i], x[i])
        else:
            assert torch.allclose(out[i], torch.full_like(x[i], k / 10))
    assert [s.seen for s in stubs] == [[1], [2], [1], [2]]  # one batch per DAE, its images only


def test_untouched_classes_are_returned_as_they_are() -> None:
    classes = [4, 2, 0, 4]
    cfg = dataclasses.replace(tiny_config("m"), untouched=("scale",))
    x, out, got, stubs = denoise_with_stubs(cfg, classes)
    assert got is not None and got.tolist() == classes  # the verdict is still reported
    for i in (0, 2, 3):
        assert torch.equal(out[i], x[i])
    assert torch.allclose(out[1], torch.full_like(x[1], 0.2))
    assert [s.seen for s in stubs] == [[], [1], [], []]  # the scale DAE never ran


def test_untouched_crops_keep_their_bytes_and_the_true_class_overrides_the_classifier() -> None:
    iid = IID(dataclasses.replace(tiny_config("s"), untouched=("blur",))).eval()
    assert iid.classifier is not None and iid.daes is not None
    script_classifier(iid.classifier, 2)  # blur: untouched
    for dae in iid.daes:
        script_dae(dae, 0.2)  # type: ignore[arg-type]
    crops = np.random.default_rng(3).integers(0, 200, (2, 32, 32, 3), dtype=np.uint8)
    den = CropDenoiser(iid)
    assert np.array_equal(den(crops), crops)
    assert den.last_classes is not None and den.last_classes.tolist() == [2, 2]
    oracle = TrueClassDenoiser(iid)
    oracle.true_class = 3  # the true class, whatever the classifier says
    changed = oracle(crops)
    assert oracle.last_classes is not None
    assert oracle.last_classes.tolist() == [3, 3] and (changed > crops).mean() > 0.9


def test_untouched_needs_a_classifier_and_known_classes() -> None:
    with pytest.raises(ValueError, match="no classifier"):
        IID(dataclasses.replace(tiny_config("d"), untouched=("scale",)))
    with pytest.raises(ValueError, match="untouched"):
        IID(dataclasses.replace(tiny_config("m"), untouched=("clean",)))


def test_direct_variant_sends_everything_to_its_dae() -> None:
    iid = IID(tiny_config("d")).eval()
    assert iid.dae is not None and iid.classifier is None
    script_dae(iid.dae, 0.1)
    x = torch.full((2, 3, 16, 16), 0.5)
    with torch.no_grad():
        assert torch.allclose(iid(x), torch.full_like(x, 0.6))
    with pytest.raises(ValueError, match="no noise classifier"):
        iid.classify(x)


# ------------------------------------------------------------------------- the Aligner


def test_aligner_runs_the_denoiser_on_its_crops(face_image) -> None:
    torch.manual_seed(0)
    model = LandmarkLocalizer(FLL_CFG).eval()
    image = face_image(160, 120)
    boxes = np.array([[40.0, 30.0, 60.0, 60.0], [70.0, 40.0, 50.0, 55.0]])
    seen: list[tuple[tuple[int, ...], np.dtype]] = []

    def black(crops: np.ndarray) -> np.ndarray:
        seen.append((crops.shape, crops.dtype))
        assert crops.any()  # real crops of the picture
        return np.zeros_like(crops)

    out = Aligner(model, "cpu", AlignConfig(refine=1), denoiser=black)(image, boxes)
    assert seen == [((2, 64, 64, 3), np.dtype(np.uint8))] * 2  # one batch per pass
    # FLL saw the denoised (black) crops: the same as aligning a black picture
    expected = Aligner(model, "cpu", AlignConfig(refine=1))(np.zeros_like(image), boxes)
    assert np.allclose(out, expected, atol=1e-4)
    assert not np.allclose(out, Aligner(model, "cpu", AlignConfig(refine=1))(image, boxes))


def test_fadenn_aligner_with_a_clean_verdict_equals_plain_fll(face_image) -> None:
    torch.manual_seed(1)
    model = FADeNN(IID(tiny_config("m")), LandmarkLocalizer(FLL_CFG)).eval()
    assert model.iid.classifier is not None
    script_classifier(model.iid.classifier, 0)
    image, box = face_image(140, 110), np.array([[35.0, 25.0, 60.0, 62.0]])
    aligner, denoiser = fadenn_aligner(model)
    got = aligner(image, box)
    assert np.array_equal(got, Aligner(model.fll)(image, box))
    assert denoiser.last_classes is not None and denoiser.last_classes.tolist() == [0]


# ---------------------------------------------------------------------------- weights


def test_iid_and_fadenn_weight_files_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    iid = IID(tiny_config("m")).eval()
    sha = save_weights(tmp_path / "iid_m.pt", "iid", iid_weight_config(iid), iid.state_dict())
    assert sha == sha256_file(tmp_path / "iid_m.pt")
    back = load_iid(load_weights(tmp_path / "iid_m.pt", "iid"))
    assert back.config == iid.config and back.variant == "m"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = iid.classifier(x)[0], back.classifier(x)[0]  # type: ignore[misc]
    assert torch.allclose(a, b, atol=1e-2)  # fp16 storage
    model = FADeNN(IID(tiny_config("s")), LandmarkLocalizer(FLL_CFG))
    save_weights(tmp_path / "f.pt", "fadenn", fadenn_weight_config(model), model.state_dict())
    loaded = load_fadenn(load_weights(tmp_path / "f.pt", "fadenn"))
    assert loaded.iid.variant == "s" and loaded.fll.config == FLL_CFG


# ---------------------------------------------------------------------- training data


def synthetic_face(face_image, width: int = 200, height: int = 180) -> Face:
    """A cartoon face with 68 points spread over its skin oval."""
    image = face_image(width, height)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    s = min(width, height) / 100.0
    pts = np.stack([width / 2 + 26 * s * np.cos(t), height / 2 + 35 * s * np.sin(t)], axis=1)
    return Face("face", image, pts)


def test_noisy_crop_pairs(face_image) -> None:
    face = synthetic_face(face_image)
    rng = np.random.default_rng(0)
    clean, noisy, pts = noisy_crop_pair(face, rng, 0, 0, NO_AUGMENT, native_face=80.0)
    assert clean.shape == noisy.shape == (112, 112, 3) and clean.dtype == np.uint8
    assert np.array_equal(clean, noisy)  # class 0 is not degraded
    box = box_from_points(pts)  # the face fills 1/1.35 of the crop, centred
    assert abs(max(box[2:]) - 112 / 1.35) < 2 and np.allclose(box[:2] + box[2:] / 2, 55.5, 1)
    clean, dark, _ = noisy_crop_pair(face, np.random.default_rng(1), 4, 3, NO_AUGMENT, 80.0)
    assert abs(dark.mean() - 0.2 * clean.mean()) < 1.5  # intensity x0.2
    clean, blurred, _ = noisy_crop_pair(face, np.random.default_rng(2), 2, 3, NO_AUGMENT, 80.0)
    assert (
        np.abs(np.diff(blurred.astype(float), axis=1)).mean()
        < 0.7 * np.abs(np.diff(clean.astype(float), axis=1)).mean()
    )


def test_joint_batch_shapes_and_shared_occlusion(face_image) -> None:
    faces = [synthetic_face(face_image)]
    cfg = TrainFADeNNConfig([], [], variant="s", batch=6, gray=0.0)
    cfg.augment = dataclasses.replace(cfg.augment, occlusion=1.0)
    clean, noisy, target, classes = joint_batch(faces, cfg, 0, 64, 1.35)
    assert clean.shape == noisy.shape == (6, 3, 64, 64) and target.shape == (6, 68, 2)
    for i in (classes == 0).nonzero(as_tuple=True)[0]:  # same strip in both crops
        assert torch.equal(clean[i], noisy[i])
    again = joint_batch(faces, cfg, 0, 64, 1.35)
    assert torch.equal(again[1], noisy)  # drawn from (seed, step)


@pytest.mark.parametrize("variant", ["d", "s", "m"])
def test_iid_loss_trains_the_right_parts(variant: str) -> None:
    torch.manual_seed(3)
    iid = IID(tiny_config(variant)).train()
    clean = torch.rand(4, 3, 32, 32)
    noisy = (clean * 0.5).clamp(0, 1)
    classes = torch.tensor([0, 2, 2, 4])
    loss, info = iid_loss(iid, clean, noisy, classes)
    loss.backward()
    assert torch.isfinite(loss) and "rec" in info
    if variant == "d":
        assert iid.dae is not None and iid.dae.decoder.out.weight.grad is not None
        return
    assert set(info) >= {"ce", "acc", "rec"} and (("ae" in info) == (variant == "m"))
    assert iid.daes is not None
    grads = [d.decoder.out.weight.grad for d in iid.daes]  # type: ignore[union-attr]
    assert [g is not None and bool(g.abs().sum() > 0) for g in grads] == [
        False,
        True,
        False,
        True,
    ]  # eq. 11: only the DAEs of the classes present (blur, scale) learn


# -------------------------------------------------------------------------- validation


def test_validation_sets_equal_what_crct_degrade_writes(tmp_path: Path, face_image) -> None:
    src = tmp_path / "val"
    src.mkdir()
    image = face_image(96, 80)
    write_image(src / "a.jpg", image)
    plan = plan_degrade([src], tmp_path / "deg", all_sets=True, seed=7)
    for _ in plan.run():
        pass
    item = ValImage(
        Face("a", read_image(src / "a.jpg"), np.zeros((68, 2))), PurePosixPath("a.jpg"), ".jpg"
    )
    for cls, (noise_type, level) in [(3, ("noise", 2)), (2, ("blur", 1)), (0, ("clean", 0))]:
        sub = "clean" if cls == 0 else f"{noise_type}/{level}"
        expected = read_image(tmp_path / "deg" / sub / "a.jpg")
        assert np.array_equal(degraded_like_cli(item, cls, level, 7), expected), sub


def _val_folder(folder: Path, face_image, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        face = synthetic_face(face_image, 120 + 10 * i, 110)
        write_image(folder / f"f{i}.png", face.image)
        write_pts(folder / f"f{i}.pts", face.points)
    return folder


def test_gt_box_benchmark_scores_13_sets(tmp_path: Path, face_image) -> None:
    from crct_cli.train.fadenn import load_val_images

    images = load_val_images([_val_folder(tmp_path / "v", face_image, 2)])
    assert [str(v.rel) for v in images] == ["f0.png", "f1.png"]
    torch.manual_seed(4)
    model = FADeNN(IID(tiny_config("s")), LandmarkLocalizer(FLL_CFG)).eval()
    aligner, den = fadenn_aligner(model)
    result = gt_box_noise_benchmark(
        {"fll": Aligner(model.fll), "x": aligner}, images, 0, {"x": den}
    )
    for name in ("fll", "x"):
        entry = result[name]
        assert isinstance(entry, dict) and len(entry["sets"]) == 13 and entry["n"] == 2
        summary = entry["summary"]
        assert 0.0 <= summary["clean_auc"] <= 1.0
        assert 0.0 <= summary["mean_degraded_failure_rate"] <= 1.0
    confusion = np.array(result["x"]["confusion"]["matrix"])  # type: ignore[index]
    assert confusion.shape == (5, 5) and confusion.sum() == 13 * 2
    assert confusion.sum(axis=1).tolist() == [2, 6, 6, 6, 6]  # rows: true class of the set
    # routed by the true class of each set: every crop lands on the diagonal
    oracle = TrueClassDenoiser(model.iid)
    forced = gt_box_noise_benchmark(
        {"x": Aligner(model.fll, denoiser=oracle)}, images, 0, {"x": oracle}, true_class=[oracle]
    )
    routed = np.array(forced["x"]["confusion"]["matrix"])  # type: ignore[index]
    assert np.array_equal(routed, np.diag([2, 6, 6, 6, 6]))


# ------------------------------------------------------------------------ the trainers


def test_train_iid_writes_weights_and_manifest(tmp_path: Path, face_image) -> None:
    data = _val_folder(tmp_path / "train", face_image, 2)
    out = tmp_path / "w" / "iid_s.pt"
    cfg = TrainIIDConfig(
        [data], [data], variant="s", steps=2, batch=4, out=out, model=tiny_config("s")
    )
    cfg.checkpoint = tmp_path / "ckpt" / "iid.ckpt"
    metrics = train_iid(cfg, log=lambda _m: None)
    entry = read_manifest(out.parent)["weights"]["iid_s.pt"]
    assert entry["sha256"] == sha256_file(out) and entry["kind"] == "iid"
    assert entry["command"].startswith("crct train iid ") and "--variant s" in entry["command"]
    assert set(metrics["psnr_by_class"]) == set(CLASS_NAMES)  # type: ignore[arg-type]
    matrix = np.array(entry["val_metrics"]["confusion"]["matrix"])
    assert matrix.shape == (5, 5) and matrix.sum() == 13 * 2
    assert load_iid(load_weights(out, "iid")).variant == "s"


def _first_batches(tmp_path: Path, face_image, **option: float) -> tuple:
    """The first batch of one synthetic face without and with a ``crct train iid`` option, and
    the two configurations."""
    from crct_cli.train.iid import make_batch

    data = _val_folder(tmp_path / "train", face_image, 1)
    face = synthetic_face(face_image)
    plain = TrainIIDConfig([data], [data], variant="m", batch=8, seed=3)
    other = TrainIIDConfig([data], [data], variant="m", batch=8, seed=3, **option)  # type: ignore[arg-type]
    return make_batch([face], plain, 0), make_batch([face], other, 0), plain, other


def test_train_iid_compression_classes_crops_as_a_video_shows_them(tmp_path: Path, face_image):
    """--compression: the degraded crop goes through one H.264 frame after its degradation (the
    clean target does not), and the class is what is still visible after it; 0 draws nothing
    more, so the recorded commands of before make their batches as before."""
    from crct_cli.train.iid import make_batch

    (c0, n0, _), (c1, n1, _), plain, coded = _first_batches(tmp_path, face_image, compression=1.0)
    face = synthetic_face(face_image)
    assert torch.equal(c0[0], c1[0]) and not torch.equal(n0[0], n1[0])  # drawn alike, then coded
    assert 0 < float((n0[0] - n1[0]).abs().mean()) < 0.03  # the codec's loss, not another crop
    assert torch.equal(make_batch([face], plain, 0)[1], n0)  # no draw at 0
    assert "--compression" not in plain.options() and "--compression 1.0" in " ".join(
        coded.options()
    )
    odd = TrainIIDConfig(plain.train, plain.val, variant="m", compression=0.1234567)
    assert "--compression 0.1234567" in " ".join(odd.options())  # recorded exactly


def test_train_iid_tone_gives_faces_other_contrast_and_brightness(tmp_path: Path, face_image):
    """--tone: a share of faces retoned before degradation, the clean target with them (a flat
    or dim face is still clean); 0 draws nothing more."""
    from crct_cli.train.iid import retone

    image = face_image(64, 48)
    assert np.array_equal(retone(image, 1.0, 1.0), image)
    flat = retone(image, 0.5, 1.0).astype(float)
    assert abs(flat.std() - 0.5 * image.std()) < 1 and abs(flat.mean() - image.mean()) < 1
    assert abs(retone(image, 1.0, 0.8).mean() - 0.8 * image.mean()) < 1.5
    (c0, _, _), (c1, _, _), plain, toned = _first_batches(tmp_path, face_image, tone=1.0)
    assert not torch.equal(c0[0], c1[0])  # the clean target is retoned as well
    assert "--tone" not in plain.options() and "--tone 1.0" in " ".join(toned.options())


def test_train_iid_s_can_reuse_the_specialised_daes_of_m(tmp_path: Path, face_image) -> None:
    data = _val_folder(tmp_path / "train", face_image, 2)
    torch.manual_seed(1)
    source = IID(tiny_config("m"))
    with torch.no_grad():  # make the DAEs recognisable (an untrained DAE's last layer is zero)
        for p in source.daes.parameters():  # type: ignore[union-attr]
            p.add_(0.01)
    src_path = tmp_path / "iid_m.pt"
    save_weights(src_path, "iid", iid_weight_config(source), source.state_dict())
    out = tmp_path / "w" / "iid_s.pt"
    cfg = TrainIIDConfig(
        [data],
        [data],
        variant="s",
        steps=3,
        batch=4,
        out=out,
        model=tiny_config("s"),
        daes=src_path,
        lr=1.0,  # large enough that any trained weight would move well past the tolerance
    )
    cfg.checkpoint = tmp_path / "ckpt" / "iid.ckpt"
    train_iid(cfg, log=lambda _m: None)
    trained = load_iid(load_weights(out, "iid"))
    source = load_iid(load_weights(src_path, "iid"))  # as stored
    assert trained.variant == "s"
    for a, b in zip(trained.daes.parameters(), source.daes.parameters(), strict=True):  # type: ignore[union-attr]
        assert torch.allclose(a, b, atol=1e-4)  # frozen: copied, not trained
    assert "--daes" in read_manifest(out.parent)["weights"]["iid_s.pt"]["command"]
    d_cfg = TrainIIDConfig(
        [data], [data], variant="d", steps=1, out=tmp_path / "d.pt", daes=src_path
    )
    with pytest.raises(CrctError, match="--daes"):
        train_iid(d_cfg, log=lambda _m: None)


def fadenn_run(tmp_path: Path, data: Path, variant: str, **options: Any) -> TrainFADeNNConfig:
    """A tiny FLL and IID-``variant`` saved under ``tmp_path``, and a training config from them
    writing ``tmp_path/w/fadenn_<variant>.pt``."""
    fll_path, iid_path = tmp_path / "fll.pt", tmp_path / f"iid_{variant}.pt"
    fll = LandmarkLocalizer(FLL_CFG)
    save_weights(fll_path, "fll", {"model": dataclasses.asdict(FLL_CFG)}, fll.state_dict())
    iid = IID(tiny_config(variant))
    save_weights(iid_path, "iid", iid_weight_config(iid), iid.state_dict())
    out = tmp_path / "w" / f"fadenn_{variant}.pt"
    cfg = TrainFADeNNConfig(
        [data], [data], variant=variant, fll=fll_path, iid=iid_path, out=out, **options
    )
    cfg.checkpoint = tmp_path / "ckpt" / "f.ckpt"
    return cfg


def test_train_fadenn_fine_tunes_from_fll_and_iid(tmp_path: Path, face_image) -> None:
    data = _val_folder(tmp_path / "train", face_image, 2)
    cfg = fadenn_run(tmp_path, data, "m", steps=2, batch=3, untouched=("scale",))
    fll_path, out = cfg.fll, cfg.out
    assert out is not None
    metrics = train_fadenn(cfg, log=lambda _m: None)
    assert set(metrics) == {"fll", "fadenn_m", "fadenn_m_true_class", "gain_over_fll"}
    entry = read_manifest(out.parent)["weights"]["fadenn_m.pt"]
    assert entry["init"]["fll"]["sha256"] == sha256_file(fll_path)
    assert "--fll" in entry["command"] and entry["val_metrics"]["fadenn_m"]["n"] == 2
    assert "--loss wing" in entry["command"] and "--untouched scale" in entry["command"]
    loaded = load_fadenn(load_weights(out, "fadenn"))
    assert loaded.iid.variant == "m" and loaded.iid.config.untouched == ("scale",)
    json.dumps(entry)  # everything recorded is plain JSON
    for variant, untouched, match in (("m", ("clean",), "noise classes"), ("d", ("scale",), "d")):
        with pytest.raises(CrctError, match=match):
            TrainFADeNNConfig([data], [data], variant=variant, untouched=untouched)


def test_train_fadenn_with_a_label_origin_reads_and_records_it(tmp_path: Path, face_image) -> None:
    """--label-origin 1 (300-W's .pts count pixels from 1): the validation points lose the
    origin, FADeNN's FLL records it, and the command carries it; unset, nothing changes."""
    from crct_cli.train.fadenn import load_val_images

    data = _val_folder(tmp_path / "train", face_image, 2)
    as_read = load_val_images([data])
    shifted = load_val_images([data], origin=1.0)
    for a, b in zip(as_read, shifted, strict=True):
        np.testing.assert_allclose(a.face.points - 1.0, b.face.points)
    cfg = fadenn_run(tmp_path, data, "d", steps=1, batch=2, label_origin=1.0)
    out = cfg.out
    assert out is not None
    lines: list[str] = []
    train_fadenn(cfg, log=lines.append)
    entry = read_manifest(out.parent)["weights"]["fadenn_d.pt"]
    assert "--label-origin 1 " in entry["command"]
    assert load_fadenn(load_weights(out, "fadenn")).fll.config.label_origin == 1.0
    # the FLL it started from learnt the points as read: the log says the two differ
    assert any("origin 0" in line and "--label-origin" in line for line in lines)
    assert "--label-origin" not in " ".join(TrainFADeNNConfig([data], [data]).options())
