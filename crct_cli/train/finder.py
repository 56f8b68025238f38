"""``crct train finder``: the face finder, on still faces moved away from a box they were in.

Each sample is what the tracker holds when a face is lost: the box it was last seen in, and a
frame in which the face has since moved (up to 1.3 of its side in any direction), grown or
shrunk, turned, been smeared by the move and degraded as hard footage is (blur, noise, low
resolution, darkness, a strip, a shadow). A share of the samples have moved out of the window
altogether: the finder must say so rather than point at the background. The target is the
cell of the grid that holds the centre of the face's landmark box (a Gaussian over the cells
around it, so that a centre near an edge is not punished for its neighbour), the centre's place
in that cell and the box's width and height against the last box's side.
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
from crct_cli.models.finder import FaceFinder, FinderConfig
from crct_cli.runtime.nets import decode_finder, last_box_side
from crct_cli.train.data import (
    AugmentConfig,
    Face,
    framed_crop,
    load_faces,
    to_tensor_batch,
)
from crct_cli.train.loop import prefetch, run_loop
from crct_cli.train.run import TrainRun, origin_options

#: How far the face has moved from the last box (in its own sides): the finder's range.
MAX_MOVE = 1.3
#: The share of samples whose face has left the window (moved 1.7-3 sides away).
ABSENT = 0.15
#: Log-std of the face's size against the last box, and the softness of the cell target.
SIZE_STD = 0.2
TARGET_SIGMA = 0.75  # cells

#: Hard footage's look: smears, degradations often stacked, shadows and strips, small faces.
FINDER_AUGMENT = AugmentConfig(
    occlusion=0.3,
    degradation=0.6,
    stack=0.5,
    shadow=0.25,
    small_face=0.5,
    motion_blur=0.6,
    motion_blur_len=(0.05, 1.0),
)


@dataclass
class TrainFinderConfig(TrainRun):
    command_name: ClassVar[str] = "finder"
    lr: float = 2e-3
    batch: int = 64
    model: FinderConfig = field(default_factory=FinderConfig)
    augment: AugmentConfig = field(default_factory=lambda: FINDER_AUGMENT)
    label_origin: float | None = None  #: the labels' first pixel centre (None: points as read)

    def default_steps(self) -> int:
        return 2000

    def options(self) -> list[str]:
        # the augmentation is the finder's own (FINDER_AUGMENT), not a command-line choice
        return ["--batch", str(self.batch), *origin_options(self.label_origin)]


@dataclass(frozen=True)
class FinderSample:
    window: np.ndarray  #: uint8 (S, S, 3)
    cell: int  #: grid cell of the face's centre, row by row; G * G: not in the window
    centre: np.ndarray  #: the face's centre in grid cells (x, y), NaN when absent
    size: np.ndarray  #: log (w, h) of its landmark box in last-box sides


def finder_sample(
    face: Face, rng: np.random.Generator, model: FinderConfig, aug: AugmentConfig
) -> FinderSample:
    """One window: a last box near the face (or far from it), the frame turned, smeared and
    degraded, and where the face's landmark box lies in it."""
    truth = box_from_points(face.points)
    centre = truth[:2] + truth[2:] / 2
    side = last_box_side(truth)
    far = rng.random() < ABSENT
    reach = rng.uniform(1.7, 3.0) if far else MAX_MOVE * rng.random() ** 0.7
    direction = rng.uniform(0.0, 2 * np.pi)
    last_side = side * float(np.exp(np.clip(rng.normal(0.0, SIZE_STD), -0.5, 0.5)))
    last_centre = centre - reach * side * np.array([np.cos(direction), np.sin(direction)])
    if rng.random() < aug.big_rotation:
        angle = float(rng.uniform(-aug.max_rotation, aug.max_rotation))
    else:
        angle = float(rng.normal(0.0, aug.small_rotation_std))
    flip = bool(rng.random() < aug.flip)
    replicate = bool(rng.random() < 0.5)  # beyond the picture: black or its edge carried on
    s = model.input_size
    window, points = framed_crop(
        face, rng, s, last_centre, last_side * model.window, angle, flip, aug, replicate
    )
    box = box_from_points(points)
    found = (box[:2] + box[2:] / 2) / model.stride
    g = model.grid
    unit = s / model.window  # the last box's side in window pixels
    size = np.log(np.maximum(box[2:], 1e-3) / unit)
    if np.all((found >= 0) & (found < g)):
        cell = int(found[1]) * g + int(found[0])
    else:
        cell, found = g * g, np.full(2, np.nan)
    return FinderSample(window, cell, found, size)


def soft_target(samples: Sequence[FinderSample], grid: int) -> np.ndarray:
    """(B, G*G + 1): a Gaussian of ``TARGET_SIGMA`` cells around each centre, or "absent"."""
    out = np.zeros((len(samples), grid * grid + 1), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    for i, smp in enumerate(samples):
        if smp.cell == grid * grid:
            out[i, -1] = 1.0
            continue
        d2 = (xs - smp.centre[0]) ** 2 + (ys - smp.centre[1]) ** 2
        w = np.exp(-d2 / (2 * TARGET_SIGMA**2))
        out[i, :-1] = (w / w.sum()).reshape(-1)
    return out


def make_finder_batch(
    faces: Sequence[Face], cfg: TrainFinderConfig, rng: np.random.Generator, n: int
) -> tuple[torch.Tensor, ...]:
    samples = [
        finder_sample(faces[j], rng, cfg.model, cfg.augment)
        for j in rng.integers(len(faces), size=n)
    ]
    g = cfg.model.grid
    centre = np.nan_to_num(np.stack([s.centre for s in samples]), nan=0.0)
    return (
        torch.from_numpy(to_tensor_batch([s.window for s in samples])),
        torch.from_numpy(soft_target(samples, g)),
        torch.tensor([s.cell for s in samples], dtype=torch.long),
        torch.from_numpy(centre.astype(np.float32)),
        torch.from_numpy(np.stack([s.size for s in samples]).astype(np.float32)),
    )


def finder_loss(
    model: torch.nn.Module, batch: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, dict[str, float]]:
    x, soft, cell, centre, size = batch
    logits, boxes = model(x)
    ce = -(soft * F.log_softmax(logits, dim=1)).sum(1).mean()
    present = cell < boxes.shape[1]
    if present.any():
        picked = boxes[present, cell[present]]
        offset = centre[present] - torch.floor(centre[present])
        place = F.l1_loss(picked[:, :2], offset)
        scale = F.l1_loss(picked[:, 2:], size[present])
    else:
        place = scale = logits.sum() * 0.0
    hit = (logits.argmax(1) == cell).float().mean()
    loss = ce + place + scale
    logged = {"ce": ce, "place": place, "size": scale, "cell": hit}
    return loss, {k: float(v.detach()) for k, v in logged.items()}


@torch.inference_mode()
def validate_finder(
    model: FaceFinder, faces: Sequence[Face], cfg: TrainFinderConfig, n: int = 1000
) -> dict:
    """On a fixed set of windows from the validation faces (the training look): how often the
    face is found within a quarter of its side, how far the size is off, and how often a window
    the face has left is said to be empty (score below 0.5)."""
    model.eval()
    rng = np.random.default_rng(12345)
    samples = [
        finder_sample(faces[j], rng, cfg.model, cfg.augment)
        for j in rng.integers(len(faces), size=n)
    ]
    logits, boxes = model(torch.from_numpy(to_tensor_batch([s.window for s in samples])))
    g = cfg.model.grid
    found, size_err, empty_ok, n_absent = [], [], [], 0
    for s, lg, bx in zip(samples, logits.numpy(), boxes.numpy(), strict=True):
        score, centre, size = decode_finder(lg, bx, cfg.model)
        if s.cell == g * g:
            n_absent += 1
            empty_ok.append(score < 0.5)
            continue
        face_side = float(np.exp(s.size.mean())) * g / cfg.model.window  # in cells
        err = float(np.linalg.norm(centre * g - s.centre)) / face_side
        found.append(score >= 0.5 and err < 0.25)
        size_err.append(float(np.abs(np.log(size) - s.size).mean()))
    return {
        "n": n,
        "found_within_quarter_side": float(np.mean(found)),
        "size_log_error": float(np.mean(size_err)),
        "absent": n_absent,
        "absent_said_empty": float(np.mean(empty_ok)) if empty_ok else float("nan"),
    }


def train_finder(cfg: TrainFinderConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, desc="train faces", origin=cfg.label_origin)
    val_faces = load_faces(cfg.val, desc="val faces", origin=cfg.label_origin)
    log(f"finder: {len(train_faces)} training faces, {len(val_faces)} validation")
    model = FaceFinder(cfg.model)
    loop = cfg.loop_config(warmup=100)

    def make(step: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([cfg.seed, step])
        return make_finder_batch(train_faces, cfg, rng, cfg.batch)

    def batches(start: int) -> Iterator[tuple[int, tuple[torch.Tensor, ...]]]:
        return prefetch(make, start, cfg.steps)

    def loss_fn(
        m: torch.nn.Module, batch: tuple[torch.Tensor, ...], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return finder_loss(m, batch)

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    metrics = validate_finder(ema.model, val_faces, cfg)
    clean = replace(cfg, augment=replace(cfg.augment, degradation=0.0, motion_blur=0.0))
    metrics["undegraded"] = validate_finder(ema.model, val_faces, clean)
    cfg.publish(
        "finder",
        {"model": asdict(cfg.model)},
        ema.model.state_dict(),
        "1000 windows from the validation faces, made as in training (the face moved up to "
        f"{MAX_MOVE} of its side from the last box, {ABSENT:.0%} of them out of the window, "
        "turned, smeared and degraded); found: score 0.5 or more and the centre within a "
        "quarter of the face's side; 'undegraded': the same without smears or degradations",
        metrics,
        minutes,
        log=log,
    )
    return metrics
