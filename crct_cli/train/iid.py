"""``crct train iid``: FADeNN's internal image denoiser (D, S or M) on degraded FLL crops.

Training pairs are made the way the evaluation sees faces: the face is resampled to a random
native size (its landmark box 64 to 320 px, log-uniform, never above its size on disk), the
region around it is degraded there with :func:`crct_cli.degrade.degrade_rgb` (the functions of
``crct degrade``, at the paper's levels), and the FLL crop is then warped out of it exactly as
the Aligner does. So a degradation
looks in the crop as it will on a degraded image of any face size: blur of sigma 5 on a large face
is milder in the crop than on a small one, and the classifier and the DAEs learn that range.

Classes are drawn uniformly over clean + the four types (levels 1..3 uniformly); a degradation
that left the crop unchanged to the eye (PSNR >= :data:`VISIBLE_PSNR`) is labelled clean, so the
classifier learns what shows in the crop FLL sees. Losses (eq. 8-11):
D: L2(clean, DAE(noisy)) on every crop, clean ones included; S: cross-entropy of the STC plus,
for each specialised DAE, L2 on the crops of its own class; M: the same with the MTC and its
reconstruction of its input, weighted by lambda = 0.5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from crct_cli import geometry
from crct_cli.degrade import degrade_rgb
from crct_cli.errors import CrctError
from crct_cli.io.video import h264_roundtrip
from crct_cli.landmarks import FLIP_PERMUTATION, box_from_points
from crct_cli.models import weights
from crct_cli.models.fadenn import CLASS_NAMES, IID, N_CLASSES, IIDConfig, iid_file, load_iid
from crct_cli.models.fadenn import iid_weight_config as _weight_config
from crct_cli.noise import LEVELS, NOISE_TYPES
from crct_cli.runtime.iid import CROP_CONTEXT, CROP_SIZE, TRAIN_MAX_FACE
from crct_cli.train.data import (
    COMPRESSION_CRF,
    NO_AUGMENT,
    AugmentConfig,
    Face,
    load_faces,
    random_similarity,
)
from crct_cli.train.loop import prefetch, run_loop
from crct_cli.train.run import TrainRun, display_path

#: Mild geometric jitter: the crops IID sees come from ground-truth or tracked boxes, upright.
IID_AUGMENT = AugmentConfig(
    flip=0.5,
    big_rotation=0.1,
    max_rotation=45.0,
    small_rotation_std=6.0,
    shift_std=0.05,
    scale_std=0.08,
    occlusion=0.0,
    degradation=0.0,
    color=0.0,
    grayscale=0.0,
)
#: Steps per variant: about 25-30 minutes each on one free core of a 2-core CPU (measured
#: 0.29 / 0.57 / 0.62 s per step of 32 crops for D / S / M), less on both cores.
DEFAULT_STEPS = {"d": 5000, "s": 3000, "m": 3000}
#: Native landmark-box sizes (px) at which faces are degraded, sampled log-uniformly.
FACE_RANGE = (64.0, 320.0)
#: Validation faces keep the size they have on disk, as ``crct degrade`` would see them.
VAL_SETS: tuple[tuple[int, int], ...] = ((0, 0),) + tuple(
    (k, lv) for k in range(1, N_CLASSES) for lv in LEVELS
)


def set_name(cls: int, level: int) -> str:
    return "clean" if cls == 0 else f"{NOISE_TYPES[cls - 1]}/{level}"


def noisy_crop_pair(
    face: Face,
    rng: np.random.Generator,
    cls: int,
    level: int,
    aug: AugmentConfig = IID_AUGMENT,
    native_face: float | None = None,
    size: int = CROP_SIZE,
    context: float = CROP_CONTEXT,
    gray: bool = False,
    tone: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean crop, degraded crop, points in crop pixels) for one face, class and level.

    ``native_face`` is the landmark-box side (px) at which the image is degraded (at most the
    size on disk); ``None`` draws it from :data:`FACE_RANGE`. ``tone``: (contrast, brightness)
    factors given to the face before it is degraded (:func:`retone`; the clean crop too).
    Crops are uint8 (size, size, 3); a flip permutes the points.
    """
    box = box_from_points(face.points)
    box_side = float(max(box[2:]))
    center, factor, angle, flip = random_similarity(box, rng, aug)
    side = float(geometry.box_center_size(box)[1]) * context * factor
    if native_face is None:
        native_face = math.exp(rng.uniform(*np.log(FACE_RANGE)))
    # never above the size on disk: an upsampled face would be a blurred "clean" target
    g = min(1.0, native_face / box_side)
    # the region the rotated crop can reach, plus room for the blur's support
    reached = geometry.reachable_region(face.image, center, side, g)
    if reached is None:
        raise ValueError(f"{face.name}: the face lies outside its image")
    native, origin, gain = reached
    if gray:
        native = np.repeat(cv2.cvtColor(native, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    if tone is not None:
        native = retone(native, *tone)
    noisy = native if cls == 0 else degrade_rgb(native, NOISE_TYPES[cls - 1], level, rng)
    matrix = geometry.crop_matrix(
        (center - origin) * gain, side * float(gain.mean()), size, angle, flip
    )
    points = geometry.apply(matrix, (face.points - origin) * gain)
    if flip:
        points = points[list(FLIP_PERMUTATION)]
    return geometry.warp(native, matrix, size), geometry.warp(noisy, matrix, size), points


#: ``--tone``: the contrast (about the picture's mean) and brightness factors a clean face is
#: given, uniform: real faces are flat or dim without being scaled, and a classifier that only
#: saw photographs' tones takes a flat webcam face for the scale class.
TONE_CONTRAST = (0.6, 1.2)
TONE_BRIGHTNESS = (0.75, 1.25)


def retone(image: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """``image`` with its contrast about its mean grey level and its brightness scaled."""
    x = image.astype(np.float32)
    mean = float(x.mean())
    return np.clip(((x - mean) * contrast + mean) * brightness + 0.5, 0, 255).astype(np.uint8)


#: A degraded crop this close to its clean crop (PSNR, dB) is labelled clean for the classifier:
#: a mild degradation of a large face can vanish when the face is resampled to 112 px, and a
#: classifier taught to find it there learns to send clean faces to a DAE instead.
VISIBLE_PSNR = 38.0


def visible_class(clean: np.ndarray, noisy: np.ndarray, cls: int) -> int:
    """The class a classifier should see in the crop: ``cls``, or 0 if the change is invisible."""
    if cls == 0:
        return 0
    mse = float(np.mean((clean.astype(np.float32) - noisy.astype(np.float32)) ** 2)) / 255.0**2
    return cls if psnr(mse) < VISIBLE_PSNR else 0


def crops_to_tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class TrainIIDConfig(TrainRun):
    command_name: ClassVar[str] = "iid"
    variant: str = "m"
    batch: int = 32
    val_limit: int = 0
    gray: float = 0.1
    model: IIDConfig | None = None
    #: S or M: take the specialised DAEs from this IID and train only the classifier. Eq. 11
    #: trains each DAE on the crops of its own class whatever the classifier, so S and M would
    #: otherwise train the same four DAEs twice.
    daes: Path | None = None
    #: share of crops compressed as one H.264 frame after the degradation (``--compression``):
    #: the classes as a video shows them (the codec smooths noise away first); the class is
    #: the one still visible after it, and the DAEs' target stays the clean crop
    compression: float = 0.0
    #: share of faces given another contrast and brightness before degradation (``--tone``)
    tone: float = 0.0

    def file_stem(self) -> str:
        return Path(iid_file(self.variant)).stem

    def default_steps(self) -> int:
        return DEFAULT_STEPS[self.variant]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model is None:
            self.model = IIDConfig(variant=self.variant)

    def options(self) -> list[str]:
        args = ["--variant", self.variant, "--batch", str(self.batch)]
        args += ["--daes", display_path(self.daes)] if self.daes is not None else []
        args += ["--compression", str(self.compression)] if self.compression else []
        args += ["--tone", str(self.tone)] if self.tone else []
        return args + (["--val-limit", str(self.val_limit)] if self.val_limit else [])


def make_batch(
    faces: Sequence[Face], cfg: TrainIIDConfig, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean, noisy, classes) drawn from a generator seeded by (seed, step)."""
    rng = np.random.default_rng([cfg.seed, step])
    clean, noisy, classes = [], [], []
    for _ in range(cfg.batch):
        face = faces[int(rng.integers(len(faces)))]
        cls, level = int(rng.integers(N_CLASSES)), int(rng.integers(1, 4))
        gray = bool(rng.random() < cfg.gray)
        tone = None
        if cfg.tone > 0 and rng.random() < cfg.tone:  # no draw at 0: old commands reproduce
            tone = (rng.uniform(*TONE_CONTRAST), rng.uniform(*TONE_BRIGHTNESS))
        c, n, _ = noisy_crop_pair(face, rng, cls, level, gray=gray, tone=tone)
        seen = c
        if cfg.compression > 0 and rng.random() < cfg.compression:  # no draw at 0: old commands
            crf = rng.uniform(*COMPRESSION_CRF)  # reproduce
            seen, n = h264_roundtrip(c, crf), h264_roundtrip(n, crf)
        clean.append(c)
        noisy.append(n)
        classes.append(visible_class(seen, n, cls))
    return crops_to_tensor(clean), crops_to_tensor(noisy), torch.tensor(classes)


def iid_loss(
    model: IID, clean: torch.Tensor, noisy: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The IID loss of the model's variant (eq. 8-11); returns the loss and its parts."""
    if model.dae is not None:
        rec = F.mse_loss(model.dae(noisy), clean)
        return rec, {"rec": float(rec.detach())}
    assert model.classifier is not None
    logits, recon = model.classifier(noisy, reconstruct=model.variant == "m")
    ce = F.cross_entropy(logits, classes)
    loss = ce
    info = {"ce": float(ce.detach()), "acc": float((logits.argmax(1) == classes).float().mean())}
    if recon is not None:  # MTC, eq. 10: its reconstruction of its own input
        ae = F.mse_loss(recon, noisy)
        loss = loss + model.config.lam * ae
        info["ae"] = float(ae.detach())
    noisy_idx = (classes > 0).nonzero(as_tuple=True)[0]
    frozen = not any(p.requires_grad for p in model.daes.parameters())  # type: ignore[union-attr]
    if len(noisy_idx) and not frozen:  # eq. 11: every specialised DAE on the crops of its own class
        routed = model.route(noisy, classes).index_select(0, noisy_idx)
        rec = F.mse_loss(routed, clean.index_select(0, noisy_idx))
        loss = loss + rec
        info["rec"] = float(rec.detach())
    return loss, info


def psnr(mse: float) -> float:
    """PSNR in dB for intensities in [0, 1]; capped at 100 dB (an exact copy)."""
    return float(10.0 * np.log10(1.0 / max(mse, 1e-10)))


@torch.inference_mode()
def validate_iid(
    model: IID, faces: Sequence[Face], seed: int = 0, batch: int = 64
) -> dict[str, object]:
    """PSNR before/after per clean + 12 degraded sets of crops of the validation faces, at the
    size they have on disk and without jitter; per class; the classifier's confusion matrix."""
    model.eval()
    per_set: dict[str, dict[str, float]] = {}
    by_class: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in CLASS_NAMES}
    confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    for cls, level in VAL_SETS:
        se_in = se_out = 0.0
        n = 0
        for start in range(0, len(faces), batch):
            clean, noisy = [], []
            for i in range(start, min(len(faces), start + batch)):
                rng = np.random.default_rng([seed, i, cls, level])
                face = faces[i]
                side = float(max(box_from_points(face.points)[2:]))
                c, d, _ = noisy_crop_pair(face, rng, cls, level, NO_AUGMENT, native_face=side)
                clean.append(c)
                noisy.append(d)
            xc, xn = crops_to_tensor(clean), crops_to_tensor(noisy)
            out, classes = model.denoise(xn)
            se_in += float(((xn - xc) ** 2).mean(dim=(1, 2, 3)).sum())
            se_out += float(((out - xc) ** 2).mean(dim=(1, 2, 3)).sum())
            n += len(clean)
            if classes is not None:
                # a tuple of indices, one per axis: numpy's stub for at() leaves it out
                np.add.at(confusion, (cls, classes.numpy()), 1)  # type: ignore[arg-type]
        name = set_name(cls, level)
        per_set[name] = {"psnr_in": psnr(se_in / n), "psnr_out": psnr(se_out / n), "n": n}
        acc = by_class[CLASS_NAMES[cls]]
        acc[0] += se_in
        acc[1] += se_out
        acc[2] += n
    metrics: dict[str, object] = {
        "psnr_by_set": per_set,
        "psnr_by_class": {
            name: {"psnr_in": psnr(a / n), "psnr_out": psnr(b / n)}
            for name, (a, b, n) in by_class.items()
        },
    }
    if model.variant != "d":
        metrics["confusion"] = {
            "rows_true_cols_predicted": list(CLASS_NAMES),
            "matrix": confusion.tolist(),
            "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        }
    return metrics


def train_iid(cfg: TrainIIDConfig, log=print) -> dict:
    """Train, validate, write the weight file and its manifest entry; returns the metrics."""
    assert cfg.model is not None and cfg.out is not None and cfg.steps is not None
    torch.manual_seed(cfg.seed)
    # crct denoise shrinks a larger face to this before classifying it (denoise.face_crops)
    train_faces = load_faces(cfg.train, max_face=TRAIN_MAX_FACE, desc="train faces")
    val_faces = load_faces(cfg.val, max_face=1e9, desc="val faces")
    if cfg.val_limit:
        val_faces = val_faces[: cfg.val_limit]
    log(
        f"IID-{cfg.variant.upper()}: {len(train_faces)} training faces "
        f"({', '.join(map(str, cfg.train))}), {len(val_faces)} validation "
        f"({', '.join(map(str, cfg.val))})"
    )
    model = IID(cfg.model)
    if cfg.daes is not None:
        if cfg.variant == "d":
            raise CrctError("--daes: variant d has one DAE of its own and no classifier")
        source = load_iid(weights.load_weights(cfg.daes, "iid"))
        if source.daes is None:
            raise CrctError(f"--daes {cfg.daes}: that IID has no specialised DAEs (variant d)")
        assert model.daes is not None
        model.daes.load_state_dict(source.daes.state_dict())
        model.daes.requires_grad_(False)
        log(f"specialised DAEs from {cfg.daes} (frozen); training the classifier only")
    loop = cfg.loop_config()

    def batches(
        start: int,
    ) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        return prefetch(lambda step: make_batch(train_faces, cfg, step), start, cfg.steps)

    def loss_fn(
        m: IID, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        clean, noisy, classes = batch
        return iid_loss(m, clean, noisy, classes)

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    trained = ema.model
    metrics = validate_iid(trained, val_faces, seed=cfg.seed)
    cfg.publish(
        "iid",
        _weight_config(trained),
        trained.state_dict(),
        "FLL crops (GT box, context 1.35, 112 px) of each validation face at its size on disk, "
        "degraded before cropping: clean + 4 types x 3 levels; PSNR of the mean squared error "
        "over the set; confusion rows = true class",
        metrics,
        minutes,
        variant=cfg.variant,
        model=asdict(cfg.model),
        log=log,
    )
    return metrics
