"""``crct train bt``: the recurrent tracker on videos synthesised from still faces (as Re3).

A sequence is one still face moved smoothly: each virtual frame is the still under a similarity
transform whose translation, scale and rotation follow a random walk with momentum, with
occasional jumps (fast motion) and per-sequence degradation, colour, flips and occluding strips.
Crops are cut straight from the still, so no full frame is ever rendered. Unroll lengths follow
Re3's curriculum (2 up to 32 as training goes on, weighted towards the short windows that CRCT
found best), and the box for the next crop is, with a growing probability, the tracker's own
estimate rather than the truth, so that it learns to correct its own drift.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from crct_cli import geometry
from crct_cli.errors import CrctError
from crct_cli.landmarks import FLIP_PERMUTATION, box_from_points
from crct_cli.models.bt import BTConfig, RecurrentTracker, bt_config_from_dict
from crct_cli.models.fll import fll_config_from_dict
from crct_cli.models.weights import WEIGHTS_DIR, load_weights
from crct_cli.train.data import (
    AugmentConfig,
    Face,
    degradation_options,
    load_faces,
    occluding_strip,
    photometric,
    training_degradation,
)
from crct_cli.train.loop import prefetch, run_loop
from crct_cli.train.run import TrainRun, display_path, origin_options

#: BT's default augmentation: strips are drawn per frame by the sequence, not on the still.
BT_AUGMENT = AugmentConfig(occlusion=0.0)


@dataclass
class TrainBTConfig(TrainRun):
    command_name: ClassVar[str] = "bt"
    crops_per_step: int = 32  # sequences x unroll length
    max_unroll: int = 32
    init: Path | None = WEIGHTS_DIR / "fll.pt"  # CRCT III-E: the trunk starts from FLL's
    model: BTConfig = field(default_factory=BTConfig)
    augment: AugmentConfig = field(default_factory=lambda: BT_AUGMENT)
    motion_blur: float = 0.0  #: share of sequences filmed with an open shutter (see MOTION_SHUTTER)
    fast_motion: float = 0.0  #: share of sequences with bursts of fast motion (see fast_walk)
    label_origin: float | None = None  #: the labels' first pixel centre (None: points as read)

    def default_steps(self) -> int:
        return 1500

    def options(self) -> list[str]:
        init = ["--init", display_path(self.init)] if self.init is not None else []
        size = self.model.input_size
        sized = ["--input-size", str(size)] if size != BTConfig().input_size else []
        # BT's sequences are cut from the still by their own code, which never reads the
        # crop smear (``augment.motion_blur``); its --motion-blur is the sequences' shutter
        harsh = degradation_options(dataclasses.replace(self.augment, motion_blur=0.0))
        blur = ["--motion-blur", str(self.motion_blur)] if self.motion_blur > 0 else []
        fast = ["--fast-motion", str(self.fast_motion)] if self.fast_motion > 0 else []
        origin = origin_options(self.label_origin)
        steps = ["--crops-per-step", str(self.crops_per_step)]
        return [*steps, *init, *sized, *origin, *harsh, *blur, *fast]


#: The range of a motion-blurred sequence's exposure, in frame intervals (``--motion-blur``).
MOTION_SHUTTER: tuple[float, float] = (0.3, 1.0)
#: Pictures averaged over one frame's exposure.
MOTION_SAMPLES = 5
#: ``--fast-motion``: chance per frame that a burst starts, its frames, walk steps per frame.
FAST_START = 0.15
FAST_BURST: tuple[int, int] = (2, 8)
FAST_STEPS: tuple[int, int] = (2, 4)


@dataclass
class Sequence_:
    image: np.ndarray  # the (degraded, recoloured) still
    transforms: np.ndarray  # (T, 2, 3): still -> virtual frame t
    points: np.ndarray  # (T, 68, 2) in virtual-frame pixels
    occlusion: np.ndarray  # (T,) bool: an occluding strip on that frame
    init_box: np.ndarray  # jittered box of frame 0 (as a detector or FLL would give)
    shutter: float = 0.0  # exposure in frame intervals: each frame smeared along the motion


def _similarity(
    scale: float, angle_deg: float, center: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    t = np.deg2rad(angle_deg)
    lin = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return np.hstack([lin, (center + shift - lin @ center)[:, None]])


def fast_walk(length: int, rng: np.random.Generator) -> np.ndarray:
    """Walk steps between frames (``steps[0] = 0``) with bursts of fast motion.

    A burst starts at any frame with chance :data:`FAST_START`, lasts :data:`FAST_BURST`
    frames and advances the walk :data:`FAST_STEPS` steps per frame: a head turned quickly or
    a shaken camera, which moves the face up to a box side or more between two frames, where
    BT's crop (twice the box) only just holds it. Category 3 of ``crct_cli.bench.synth_video``
    moves faces the same way, 2-3 steps at a time.
    """
    steps = np.ones(length, int)
    steps[0] = 0
    t = 1
    while t < length:
        if rng.random() < FAST_START:
            n = int(rng.integers(FAST_BURST[0], FAST_BURST[1] + 1))
            steps[t : t + n] = int(rng.integers(FAST_STEPS[0], FAST_STEPS[1] + 1))
            t += n
        else:
            t += 1
    return steps


def synth_sequence(
    face: Face,
    length: int,
    rng: np.random.Generator,
    aug: AugmentConfig,
    pull: float = 0.0,
    motion_blur: float = 0.0,
    fast_motion: float = 0.0,
) -> Sequence_:
    """``length`` frames of smooth random motion of one still face.

    ``pull`` draws the face back towards where it started each frame (a spring), so that long
    sequences stay in view; training uses none, benchmark videos a little. ``motion_blur``:
    the chance that the sequence is filmed with the shutter open over part of each frame
    interval (:data:`MOTION_SHUTTER`), so that a fast face is smeared along its path, as a
    real camera smears a turning head; nothing more is drawn from ``rng`` when it is 0.
    ``fast_motion``: the chance that the walk moves in bursts of several steps per frame
    (:func:`fast_walk`); likewise nothing is drawn for it when it is 0.
    """
    image, points = face.image, face.points
    if rng.random() < aug.flip:
        image = np.ascontiguousarray(image[:, ::-1])
        points = points.copy()
        points[:, 0] = image.shape[1] - 1 - points[:, 0]
        points = points[list(FLIP_PERMUTATION)]
    image = training_degradation(image, rng, aug)
    image = photometric(image, rng, AugmentConfig(occlusion=0.0, grayscale=aug.grayscale))
    box = box_from_points(points)
    side = float(max(box[2:]))
    center = box[:2] + box[2:] / 2
    speed = rng.choice([0.01, 0.03, 0.06, 0.12])  # box sides per frame: still to fast
    v = np.zeros(2)
    log_s, angle = 0.0, float(rng.normal(0, 10))
    vs, va = 0.0, 0.0
    shift = np.zeros(2)
    steps = None
    if fast_motion > 0 and rng.random() < fast_motion:
        steps = fast_walk(length, rng)
    walk = length if steps is None else int(steps.sum()) + 1
    transforms, pts = [], []
    for _ in range(walk):
        transforms.append(_similarity(np.exp(log_s), angle, center, shift))
        pts.append(geometry.apply(transforms[-1], points))
        v = 0.8 * v + rng.normal(0, speed, 2) * side - pull * shift
        if rng.random() < 0.05:  # a jump: fast head motion or a camera shake
            v += rng.normal(0, 0.25, 2) * side
        vs = 0.8 * vs + rng.normal(0, 0.02) - pull * log_s
        va = 0.8 * va + rng.normal(0, 1.5) - pull * angle
        shift = shift + v
        log_s = float(np.clip(log_s + vs, -0.5, 0.5))
        angle = float(np.clip(angle + va, -50, 50))
    if steps is not None:  # the frames are the walk's positions after each frame's steps
        keep = np.cumsum(steps)
        transforms, pts = [transforms[i] for i in keep], [pts[i] for i in keep]
    pts_a = np.stack(pts)
    b0 = box_from_points(pts_a[0])
    jitter = np.concatenate([rng.normal(0, 0.04, 2) * b0[2:], b0[2:] * rng.normal(0, 0.04, 2)])
    occlusion = rng.random(length) < (0.15 if rng.random() < 0.3 else 0.0)
    shutter = 0.0
    if motion_blur > 0 and rng.random() < motion_blur:
        shutter = float(rng.uniform(*MOTION_SHUTTER))
    return Sequence_(image, np.stack(transforms), pts_a, occlusion, b0 + jitter, shutter)


def _frame_transform(seq: Sequence_, t: float) -> np.ndarray:
    """Still -> virtual frame at a time between frames (linear between the two around it)."""
    last = len(seq.transforms) - 1
    if last == 0:
        return seq.transforms[0]
    t = min(max(t, 0.0), float(last))
    i = min(int(t), last - 1)
    w = t - i
    return (1 - w) * seq.transforms[i] + w * seq.transforms[i + 1]


def crop_frame(
    seq: Sequence_, t: int, box: np.ndarray, cfg: BTConfig, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Crop virtual frame ``t`` of a sequence at ``box``; return (crop, frame->crop matrix)."""
    center, side = geometry.box_center_size(box)
    crop_m = geometry.crop_matrix(center, side * cfg.context, cfg.input_size)
    to_crop = np.vstack([crop_m, [0, 0, 1]])
    if rng is not None and seq.shutter > 0:  # the mean picture over the exposure window
        half = seq.shutter / 2
        acc = np.zeros((cfg.input_size, cfg.input_size, 3), np.float32)
        for when in np.linspace(t - half, t + half, MOTION_SAMPLES):
            m = (to_crop @ np.vstack([_frame_transform(seq, when), [0, 0, 1]]))[:2]
            acc += geometry.warp(seq.image, m, cfg.input_size)
        crop = (acc / MOTION_SAMPLES + 0.5).astype(np.uint8)
    else:
        m = (to_crop @ np.vstack([seq.transforms[t], [0, 0, 1]]))[:2]
        crop = geometry.warp(seq.image, m, cfg.input_size)
    if rng is not None and seq.occlusion[t]:
        crop = occluding_strip(crop, rng)
    return crop, crop_m


def unroll_length(step: int, cfg: TrainBTConfig, rng: np.random.Generator) -> int:
    """Re3's curriculum: the longest window doubles through training, short ones stay common."""
    stage = min(1.0, step / max(1, 0.8 * cfg.steps))
    longest = int(min(cfg.max_unroll, 2 ** (1 + stage * np.log2(cfg.max_unroll / 2) + 1e-9)))
    choices = [n for n in (2, 3, 4, 8, 16, 32) if n <= longest]
    weights = np.array([4.0, 3.0, 2.0, 1.0, 1.0, 1.0][: len(choices)])
    return int(rng.choice(choices, p=weights / weights.sum()))


def _to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def run_sequences(
    model: RecurrentTracker,
    seqs: list[Sequence_],
    rng: np.random.Generator,
    self_feed: float,
    train: bool,
) -> tuple[torch.Tensor, np.ndarray]:
    """Unroll BT over the sequences from their initial boxes.

    Returns the L1 loss (crop units) and the per-frame NME (box diagonal) of frames 1..T-1.
    """
    cfg = model.config
    n, length = len(seqs), len(seqs[0].points)
    boxes = [s.init_box for s in seqs]
    state = None
    losses, errors = [], []
    for t in range(1, length):
        prev, cur, mats = [], [], []
        for s, box in zip(seqs, boxes, strict=True):
            p, _ = crop_frame(s, t - 1, box, cfg, rng if train else None)
            c, m = crop_frame(s, t, box, cfg, rng if train else None)
            prev.append(p)
            cur.append(c)
            mats.append(m)
        pred, state = model(_to_tensor(prev), _to_tensor(cur), state)
        target = np.stack([geometry.apply(m, s.points[t]) for m, s in zip(mats, seqs, strict=True)])
        target_t = torch.from_numpy(target / cfg.input_size - 0.5).float()
        losses.append((pred - target_t).abs().mean())
        pred_px = (pred.detach().numpy() + 0.5) * cfg.input_size
        new_boxes = []
        for i in range(n):
            in_frame = geometry.apply(geometry.invert(mats[i]), pred_px[i])
            truth = seqs[i].points[t]
            diag = float(np.hypot(*box_from_points(truth)[2:]))
            errors.append(float(np.linalg.norm(in_frame - truth, axis=1).mean() / diag))
            if rng.random() < self_feed:
                new_boxes.append(box_from_points(in_frame))
            else:  # an FLL-refined box: the truth with a little error
                b = box_from_points(truth)
                new_boxes.append(b + np.concatenate([rng.normal(0, 0.03, 2) * b[2:], np.zeros(2)]))
        boxes = new_boxes
    return torch.stack(losses).mean(), np.array(errors)


def fll_mean_shape(cfg: BTConfig, faces: Sequence[Face]) -> np.ndarray:
    """Mean shape in BT crop units (centre 0, side 1) for the heads' initial bias."""
    shapes = []
    for f in faces[:500]:
        box = box_from_points(f.points)
        center, side = geometry.box_center_size(box)
        m = geometry.crop_matrix(center, side * cfg.context, cfg.input_size)
        shapes.append(geometry.apply(m, f.points) / cfg.input_size - 0.5)
    return np.mean(shapes, axis=0)


@torch.no_grad()
def validate_bt(
    model: RecurrentTracker, faces: Sequence[Face], lengths=(3, 8, 32), n: int = 48
) -> dict:
    """NME of BT alone on synthetic sequences of validation faces, reset never, truth never fed."""
    model.eval()
    out = {}
    for length in lengths:
        rng = np.random.default_rng(777 + length)
        errs = []
        for k in range(0, n, 16):
            seqs = [
                synth_sequence(faces[int(i)], length, rng, AugmentConfig(occlusion=0.0))
                for i in rng.integers(len(faces), size=min(16, n - k))
            ]
            _, e = run_sequences(model, seqs, rng, self_feed=1.0, train=False)
            errs.append(e)
        e = np.concatenate(errs)
        out[f"unroll{length}"] = {
            "frames": int(e.size),
            "mean_nme": float(e.mean()),
            "failure_rate": float((e > 0.08).mean()),
        }
    return out


def _tracker_to_go_on_from(cfg: TrainBTConfig, blob: dict) -> RecurrentTracker:
    """A BT weight file as ``--init``: every weight starts from it (a fine-tune), at its size."""
    given = bt_config_from_dict(blob["config"]["model"])
    if given.input_size != cfg.model.input_size:
        raise CrctError(
            f"--init {cfg.init} is a BT for {given.input_size}-px crops; "
            f"--input-size is {cfg.model.input_size}"
        )
    cfg.model = given
    model = RecurrentTracker(cfg.model)
    model.load_state_dict(blob["state_dict"])
    return model


def _tracker_from_fll(
    cfg: TrainBTConfig, blob: dict | None, train_faces: list[Face]
) -> RecurrentTracker:
    """A new BT, its trunk FLL's when an FLL weight file is given (CRCT III-E)."""
    if blob is not None:
        backbone = fll_config_from_dict(blob["config"]["model"]).backbone
        cfg.model = dataclasses.replace(cfg.model, backbone=backbone)
    model = RecurrentTracker(cfg.model, fll_mean_shape(cfg.model, train_faces))
    if blob is not None:
        trunk = {
            k[len("trunk.") :]: v for k, v in blob["state_dict"].items() if k.startswith("trunk.")
        }
        model.trunk.load_state_dict(trunk)
    return model


def train_bt(cfg: TrainBTConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, desc="train faces", origin=cfg.label_origin)
    val_faces = load_faces(cfg.val, desc="val faces", origin=cfg.label_origin)
    log(f"BT: {len(train_faces)} training faces, {len(val_faces)} validation")
    blob = None if cfg.init is None else load_weights(cfg.init, ("fll", "bt"))
    if blob is not None and blob["kind"] == "bt":
        model = _tracker_to_go_on_from(cfg, blob)
        log(f"BT initialised from {cfg.init} (all its weights)")
    else:
        model = _tracker_from_fll(cfg, blob, train_faces)
        if blob is not None:
            log(f"trunk initialised from {cfg.init}")
    # the stem at full resolution costs most and learns least here: keep FLL's
    for p in model.trunk.stem.parameters():
        p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    loop = cfg.loop_config(warmup=50)

    def make(step: int) -> tuple[list[Sequence_], np.random.Generator]:
        rng = np.random.default_rng([cfg.seed, step])
        length = unroll_length(step, cfg, rng) + 1  # frames = BT steps + the initial frame
        n = max(2, cfg.crops_per_step // (length - 1))
        idx = rng.integers(len(train_faces), size=n)
        seqs = [
            synth_sequence(
                train_faces[int(i)], length, rng, cfg.augment, 0.0, cfg.motion_blur, cfg.fast_motion
            )
            for i in idx
        ]
        return seqs, rng

    def batches(start: int) -> Iterator[tuple[int, tuple[list[Sequence_], np.random.Generator]]]:
        return prefetch(make, start, cfg.steps)

    def loss_fn(
        m: RecurrentTracker, batch: tuple[list[Sequence_], np.random.Generator], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        seqs, rng = batch
        m.trunk.stem.eval()  # frozen BN statistics
        self_feed = 0.5 * min(1.0, step / max(1, 0.6 * cfg.steps))
        loss, err = run_sequences(m, seqs, rng, self_feed, train=True)
        return loss, {"l1": float(loss.detach()), "nme": float(err.mean())}

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log, param_groups=[{"params": trainable}])
    minutes = (time.time() - t0) / 60
    metrics = validate_bt(ema.model, val_faces)
    cfg.publish(
        "bt",
        {"model": asdict(cfg.model)},
        ema.model.state_dict(),
        "BT alone on synthetic sequences of validation faces (smooth random "
        "motion with jumps), fed its own boxes, never reset; NME / box diagonal per frame",
        metrics,
        minutes,
        log=log,
    )
    return metrics
