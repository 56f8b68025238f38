"""``crct train fv``: the face validator, on positives and hard negatives made from still faces.

Positives: the true shape with the jitter of a tracker that still holds the face (per-point
noise ~2% of the box, a small shift, scale and rotation). Negatives, after Chrysos et al.:
the shape slid off the face, grown or shrunk around it, rotated against the image, scrambled,
or dropped on the background. Shapes in between (mild drift) are left out of training, so the
boundary sits where losing the face begins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from crct_cli.landmarks import box_from_points
from crct_cli.models.fv import FaceValidator, FVConfig, fv_crop
from crct_cli.train.data import (
    AugmentConfig,
    Face,
    augmented_crop,
    degradation_options,
    load_faces,
    to_tensor_batch,
)
from crct_cli.train.loop import LoopConfig, prefetch, run_loop
from crct_cli.train.run import TrainRun

FRAME_SIZE = 192
FRAME_CONTEXT = 3.0


@dataclass
class TrainFVConfig(TrainRun):
    command_name: ClassVar[str] = "fv"
    lr: float = 2e-3
    batch: int = 128
    model: FVConfig = field(default_factory=FVConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(shift_std=0.1))

    def default_steps(self) -> int:
        return 1500

    def options(self) -> list[str]:
        opts = ["--batch", str(self.batch)]
        return opts + degradation_options(self.augment)


def _similar(
    points: np.ndarray, center: np.ndarray, scale: float, angle_deg: float, shift: np.ndarray
) -> np.ndarray:
    t = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * scale
    return (points - center) @ rot.T + center + shift


def candidate_shape(
    points: np.ndarray, rng: np.random.Generator, frame_size: int
) -> tuple[np.ndarray, float]:
    """A shape to validate, and its label (1 face, 0 not a face)."""
    box = box_from_points(points)
    side = float(max(box[2:]))
    center = box[:2] + box[2:] / 2
    if rng.random() < 0.5:
        shape = _similar(
            points + rng.normal(0, 0.02 * side, points.shape),
            center,
            float(np.exp(rng.normal(0, 0.05))),
            float(rng.normal(0, 4)),
            rng.normal(0, 0.04 * side, 2),
        )
        return shape, 1.0
    kind = rng.integers(5)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    if kind == 0:  # slid off the face
        shape = points + direction * rng.uniform(0.35, 1.0) * side
    elif kind == 1:  # grown or shrunk around it
        factor = rng.uniform(1.7, 2.6) if rng.random() < 0.5 else rng.uniform(0.3, 0.55)
        shape = _similar(points, center, factor, 0.0, direction * rng.uniform(0, 0.2) * side)
    elif kind == 2:  # rotated against the image
        angle = rng.choice([-1, 1]) * rng.uniform(50, 180)
        shape = _similar(points, center, 1.0, angle, np.zeros(2))
    elif kind == 3:  # scrambled
        shape = points + rng.normal(0, 0.2 * side, points.shape)
    else:  # on the background, at another size
        target = rng.uniform(0.1, 0.9, 2) * frame_size
        factor = rng.uniform(0.4, 1.5)
        shape = (points - center) * factor + target
        if np.linalg.norm(target - center) < 0.8 * side:
            shape = shape + direction * side
    return shape, 0.0


def make_fv_batch(
    faces: Sequence[Face], cfg: TrainFVConfig, rng: np.random.Generator, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    crops, pts, labels = [], [], []
    for j in rng.integers(len(faces), size=batch):
        frame, points = augmented_crop(faces[j], rng, FRAME_SIZE, FRAME_CONTEXT, cfg.augment)
        shape, label = candidate_shape(points, rng, FRAME_SIZE)
        crop, cp = fv_crop(frame, shape, cfg.model)
        crops.append(crop)
        pts.append(cp)
        labels.append(label)
    return (
        torch.from_numpy(to_tensor_batch(crops)),
        torch.from_numpy(np.stack(pts)).float(),
        torch.tensor(labels, dtype=torch.float32),
    )


#: The validation protocols: the training augmentation of the first FV (so that every FV is
#: scored on the same candidates), and the same on faces all degraded, often several times.
VAL_AUGMENT = AugmentConfig(shift_std=0.1)
VAL_AUGMENT_DEGRADED = AugmentConfig(shift_std=0.1, degradation=1.0, stack=0.5)


@torch.inference_mode()
def validate_fv(
    model: FaceValidator,
    faces: Sequence[Face],
    cfg: TrainFVConfig,
    n: int = 2000,
    augment: AugmentConfig = VAL_AUGMENT,
) -> dict:
    """Accuracy on a fixed set of candidates from the validation faces, at TC = 0.5."""
    model.eval()
    rng = np.random.default_rng(12345)
    x, p, y = make_fv_batch(faces, replace(cfg, augment=augment), rng, n)
    prob = torch.sigmoid(model(x, p))
    pred = prob >= 0.5
    pos, neg = y == 1, y == 0
    return {
        "n": n,
        "accuracy": float((pred == pos).float().mean()),
        "true_positive_rate": float(pred[pos].float().mean()),
        "false_positive_rate": float(pred[neg].float().mean()),
    }


def train_fv(cfg: TrainFVConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, desc="train faces")
    val_faces = load_faces(cfg.val, desc="val faces")
    log(f"FV: {len(train_faces)} training faces, {len(val_faces)} validation")
    model = FaceValidator(cfg.model)
    loop = LoopConfig(
        steps=cfg.steps, lr=cfg.lr, checkpoint=cfg.checkpoint, resume=cfg.resume, warmup=50
    )

    def make(step: int) -> object:
        return make_fv_batch(train_faces, cfg, np.random.default_rng([cfg.seed, step]), cfg.batch)

    def batches(start: int) -> Iterator[tuple[int, object]]:
        return prefetch(make, start, cfg.steps)

    def loss_fn(
        m: torch.nn.Module, batch: object, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, p, y = batch  # type: ignore[misc]
        logits = m(x, p)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        acc = ((logits > 0).float() == y).float().mean()
        return loss, {"bce": float(loss.detach()), "acc": float(acc)}

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    metrics = validate_fv(ema.model, val_faces, cfg)
    metrics["degraded"] = validate_fv(ema.model, val_faces, cfg, augment=VAL_AUGMENT_DEGRADED)
    cfg.publish(
        "fv",
        {"model": asdict(cfg.model)},
        ema.model.state_dict(),
        "2000 candidate shapes from the validation faces (half true, half "
        "displaced), threshold TC = 0.5; 'degraded': the same faces all degraded as crct "
        "degrade does, half of them more than once",
        metrics,
        minutes,
        log=log,
    )
    return metrics
