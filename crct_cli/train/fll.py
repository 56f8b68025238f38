"""``crct train fll``: the landmark localiser on still faces with the papers' augmentation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
from crct_cli.train.data import (
    NO_AUGMENT,
    AugmentConfig,
    Face,
    augmented_crop,
    load_faces,
    to_tensor_batch,
)
from crct_cli.train.loop import LoopConfig, prefetch, run_loop
from crct_cli.train.run import TrainRun


@dataclass
class TrainFLLConfig(TrainRun):
    command_name: ClassVar[str] = "fll"
    lr: float = 2e-3
    batch: int = 64
    model: FLLConfig = field(default_factory=FLLConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def default_steps(self) -> int:
        return 5000

    def options(self) -> list[str]:
        return ["--batch", str(self.batch)]


def make_batch(
    faces: Sequence[Face], cfg: TrainFLLConfig, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` is drawn from a generator seeded by (seed, step): reproducible, resumable."""
    rng = np.random.default_rng([cfg.seed, step])
    idx = rng.integers(len(faces), size=cfg.batch)
    size = cfg.model.input_size
    crops, targets = [], []
    for j in idx:
        crop, pts = augmented_crop(faces[j], rng, size, cfg.model.context, cfg.augment)
        crops.append(crop)
        targets.append(pts / size - 0.5)
    return torch.from_numpy(to_tensor_batch(crops)), torch.from_numpy(np.stack(targets)).float()


def validate_fll(model: LandmarkLocalizer, faces: Sequence[Face], flip: bool = False) -> dict:
    """GT-box protocol (the papers'): crop at the box of the true points, score NME/diagonal."""
    from crct_cli.aligner import AlignConfig, Aligner
    from crct_cli.landmarks import box_from_points
    from crct_cli.metrics import auc, failure_rate, nme

    results = {}
    for refine in (0, 1):
        aligner = Aligner(model, "cpu", AlignConfig(refine=refine, flip=flip))
        preds = [aligner(f.image, box_from_points(f.points)[None])[0] for f in faces]
        e = nme(np.stack(preds), np.stack([f.points for f in faces]))
        results[f"refine{refine}{'_flip' if flip else ''}"] = {
            "n": len(e),
            "mean_nme": float(e.mean()),
            "auc@0.08": float(auc(e, 0.08)),
            "failure_rate": float(failure_rate(e, 0.08)),
        }
    return results


def train_fll(cfg: TrainFLLConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, desc="train faces")
    val_faces = load_faces(cfg.val, desc="val faces")
    log(
        f"FLL: {len(train_faces)} training faces ({', '.join(map(str, cfg.train))}), "
        f"{len(val_faces)} validation ({', '.join(map(str, cfg.val))})"
    )
    size = cfg.model.input_size
    mean_shape = (
        np.mean(
            [
                augmented_crop(f, np.random.default_rng(0), size, cfg.model.context, NO_AUGMENT)[1]
                for f in train_faces
            ],
            axis=0,
        )
        / size
        - 0.5
    )
    model = LandmarkLocalizer(cfg.model, mean_shape)
    loop = LoopConfig(steps=cfg.steps, lr=cfg.lr, checkpoint=cfg.checkpoint, resume=cfg.resume)

    def batches(start: int) -> Iterator[tuple[int, object]]:
        return prefetch(lambda step: make_batch(train_faces, cfg, step), start, cfg.steps)

    def loss_fn(
        m: torch.nn.Module, batch: object, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch  # type: ignore[misc]
        pred = m(x)
        loss = (pred - y).abs().mean()
        # mean point error in units of the crop side, for the log
        err = (pred - y).norm(dim=-1).mean()
        return loss, {"l1": float(loss.detach()), "err": float(err.detach())}

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    metrics = validate_fll(ema.model, val_faces)
    metrics.update(validate_fll(ema.model, val_faces, flip=True))
    log(json.dumps(metrics, indent=2))
    cfg.publish(
        "fll",
        {"model": asdict(cfg.model)},
        ema.model.state_dict(),
        "GT-box (tight box of the true points), NME / box diagonal",
        metrics,
        minutes,
    )
    return metrics
