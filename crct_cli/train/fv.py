"""``crct train fv``: the face validator, on positives and hard negatives made from still faces.

Positives: the true shape with the jitter of a tracker that still holds the face (per-point
noise ~2% of the box, a small shift, scale and rotation). Negatives, after Chrysos et al.:
the shape slid off the face, grown or shrunk around it, rotated against the image, scrambled,
or dropped on the background. Shapes in between (mild drift) are left out of training, so the
boundary sits where losing the face begins.

``--fll-answers SHARE`` (not in the papers): that share of each batch is what FV is asked
about at run time, FLL's own answers (the shipped localiser, both stages blended as the
tracker runs it) in boxes shifted and scaled off the face, labelled by their error. Shifted
true shapes are easy to reject; FLL pulls a face-like shape into any box, and the first FV
accepted about a fifth of its wrong answers in boxes half a face off (afw, docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from crct_cli.landmarks import box_from_points
from crct_cli.models import weights
from crct_cli.models.fv import FaceValidator, FVConfig, fv_crop
from crct_cli.train.data import (
    AugmentConfig,
    Face,
    augmented_crop,
    degradation_options,
    load_faces,
    to_tensor_batch,
)
from crct_cli.train.loop import prefetch, run_loop
from crct_cli.train.run import TrainRun, display_path, origin_options

FRAME_SIZE = 192
FRAME_CONTEXT = 3.0
#: ``--fll-answers``: FLL's answer is a positive below this error (NME per box diagonal) ...
ANSWER_RIGHT = 0.05
#: ... and a negative above this one; those in between are left out, as mild drift is.
ANSWER_WRONG = 0.10
#: How far the boxes FLL reads are shifted (share of the face's side) and scaled (log std).
ANSWER_SHIFT = 0.8
ANSWER_SCALE = 0.15


@dataclass
class TrainFVConfig(TrainRun):
    command_name: ClassVar[str] = "fv"
    lr: float = 2e-3
    batch: int = 128
    model: FVConfig = field(default_factory=FVConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(shift_std=0.1))
    fll_answers: float = 0.0  #: share of each batch made of FLL's answers (module docstring)
    label_origin: float | None = None  #: the labels' first pixel centre (None: points as read)

    def default_steps(self) -> int:
        return 1500

    def options(self) -> list[str]:
        opts = ["--batch", str(self.batch)]
        if self.fll_answers:
            opts += ["--fll-answers", str(self.fll_answers)]
        return opts + origin_options(self.label_origin) + degradation_options(self.augment)


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


def shifted_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box for FLL to read: ``box`` moved up to ``ANSWER_SHIFT`` of its side in a random
    direction and rescaled, as a held box or a tracker's estimate lies off a moving face."""
    side = float(np.sqrt(box[2] * box[3]))
    angle = rng.uniform(0, 2 * np.pi)
    center = box[:2] + box[2:] / 2
    center = center + rng.uniform(0, ANSWER_SHIFT) * side * np.array([np.cos(angle), np.sin(angle)])
    size = box[2:] * float(np.exp(rng.normal(0, ANSWER_SCALE)))
    return np.concatenate([center - size / 2, size])


def answer_candidates(
    faces: Sequence[Face],
    cfg: TrainFVConfig,
    rng: np.random.Generator,
    n: int,
    answers: Callable[[Sequence[np.ndarray], np.ndarray], np.ndarray],
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Up to ``n`` (frame, FLL's points, label) from FLL's answers in shifted boxes, labelled
    by their error; the answers between ``ANSWER_RIGHT`` and ``ANSWER_WRONG`` are dropped."""
    if n <= 0:
        return []
    frames, truths, boxes = [], [], []
    for j in rng.integers(len(faces), size=n):
        frame, points = augmented_crop(faces[j], rng, FRAME_SIZE, FRAME_CONTEXT, cfg.augment)
        frames.append(frame)
        truths.append(points)
        boxes.append(shifted_box(box_from_points(points), rng))
    found = answers(frames, np.stack(boxes))
    out = []
    for frame, truth, points in zip(frames, truths, found, strict=True):
        diagonal = float(np.hypot(*box_from_points(truth)[2:]))
        error = float(np.linalg.norm(points - truth, axis=1).mean()) / max(diagonal, 1e-6)
        if error < ANSWER_RIGHT or error > ANSWER_WRONG:
            out.append((frame, points, float(error < ANSWER_RIGHT)))
    return out


def make_fv_batch(
    faces: Sequence[Face],
    cfg: TrainFVConfig,
    rng: np.random.Generator,
    batch: int,
    answers: Callable[[Sequence[np.ndarray], np.ndarray], np.ndarray] | None = None,
    fill: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` candidates: FLL's answers for ``cfg.fll_answers`` of them (when ``answers``,
    the localiser, is given), the shapes of :func:`candidate_shape` for the rest (``fill``
    False: none, so a batch of answers alone is smaller by those left out)."""
    crops, pts, labels = [], [], []
    n_answers = round(batch * cfg.fll_answers) if answers is not None else 0
    chosen = answer_candidates(faces, cfg, rng, n_answers, answers) if answers else []
    for frame, shape, label in chosen:
        crop, cp = fv_crop(frame, shape, cfg.model)
        crops.append(crop)
        pts.append(cp)
        labels.append(label)
    for j in rng.integers(len(faces), size=(batch - len(chosen)) if fill else 0):
        frame, points = augmented_crop(faces[j], rng, FRAME_SIZE, FRAME_CONTEXT, cfg.augment)
        shape, label = candidate_shape(points, rng, FRAME_SIZE)
        crop, cp = fv_crop(frame, shape, cfg.model)
        crops.append(crop)
        pts.append(cp)
        labels.append(label)
    if not crops:
        size = cfg.model.crop_size
        return torch.zeros(0, 3, size, size), torch.zeros(0, 68, 2), torch.zeros(0)
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
    answers: Callable[[Sequence[np.ndarray], np.ndarray], np.ndarray] | None = None,
) -> dict:
    """Accuracy on a fixed set of candidates from the validation faces, at TC = 0.5; with
    ``answers`` (the localiser), on FLL's answers in shifted boxes alone."""
    model.eval()
    rng = np.random.default_rng(12345)
    val_cfg = replace(cfg, augment=augment, fll_answers=1.0 if answers else 0.0)
    x, p, y = make_fv_batch(faces, val_cfg, rng, n, answers, fill=answers is None)
    prob = torch.sigmoid(model(x, p))
    pred = prob >= 0.5
    pos, neg = y == 1, y == 0
    return {
        "n": len(y),
        "accuracy": float((pred == pos).float().mean()),
        "true_positive_rate": float(pred[pos].float().mean()),
        "false_positive_rate": float(pred[neg].float().mean()),
    }


def train_fv(cfg: TrainFVConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, desc="train faces", origin=cfg.label_origin)
    val_faces = load_faces(cfg.val, desc="val faces", origin=cfg.label_origin)
    log(f"FV: {len(train_faces)} training faces, {len(val_faces)} validation")
    answers, inputs = localiser_answers() if cfg.fll_answers else (None, {})
    model = FaceValidator(cfg.model)
    loop = cfg.loop_config(warmup=50)

    def make(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([cfg.seed, step])
        return make_fv_batch(train_faces, cfg, rng, cfg.batch, answers)

    def batches(
        start: int,
    ) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        return prefetch(make, start, cfg.steps)

    def loss_fn(
        m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, p, y = batch
        logits = m(x, p)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        acc = ((logits > 0).float() == y).float().mean()
        return loss, {"bce": float(loss.detach()), "acc": float(acc)}

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    metrics = validate_fv(ema.model, val_faces, cfg)
    metrics["degraded"] = validate_fv(ema.model, val_faces, cfg, augment=VAL_AUGMENT_DEGRADED)
    if answers is not None:
        metrics["fll_answers"] = validate_fv(ema.model, val_faces, cfg, 1000, answers=answers)
    cfg.publish(
        "fv",
        {"model": asdict(cfg.model)},
        ema.model.state_dict(),
        "2000 candidate shapes from the validation faces (half true, half "
        "displaced), threshold TC = 0.5; 'degraded': the same faces all degraded as crct "
        "degrade does, half of them more than once"
        + (
            "; 'fll_answers': FLL's answers (both stages blended) in boxes shifted up to "
            f"{ANSWER_SHIFT} of the face's side, right below NME {ANSWER_RIGHT}, wrong above "
            f"{ANSWER_WRONG}, those between left out"
            if answers
            else ""
        ),
        metrics,
        minutes,
        log=log,
        **({"inputs": inputs} if inputs else {}),
    )
    return metrics


def localiser_answers() -> tuple[Callable[[Sequence[np.ndarray], np.ndarray], np.ndarray], dict]:
    """The shipped localiser as the tracker runs it (both stages blended), in PyTorch on the
    CPU, and its weight files for the manifest (path and sha256, recorded before training)."""
    from crct_cli.aligner import TRACK_ALIGN, build_aligner

    aligner, _, files = build_aligner(config=TRACK_ALIGN, backend="torch")
    inputs = {
        role: {"path": display_path(Path(path)), "sha256": weights.sha256_file(Path(path))}
        for role, path in files.items()
    }
    return aligner.align_many, inputs
