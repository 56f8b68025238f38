"""``crct train fll``: the landmark localiser on still faces with the papers' augmentation.

``--stage 2`` trains FLL's second stage: the same network on eye-levelled crops around a first
estimate (:func:`crct_cli.landmarks.upright_frame`). Training simulates the first stage's error
by jittering the frame of the true points (centre, side, angle); it starts from ``--init`` (by
default the first stage's weights) and is validated behind the first stage, on the GT-box
protocol.

``--local`` adds FLL's shape-indexed head (:class:`crct_cli.models.fll.ShapeIndexedHead`); from an
``--init`` without one, the head starts as the identity and everything else carries over.
``--freeze-global`` then trains the head alone, leaving the global estimate exactly as it was.
``--local-steps N`` runs N such heads in turn (the iterations of cascaded shape regression);
from an ``--init`` with fewer, the new ones start as the identity.
``--heatmap`` adds the heatmap head (:class:`crct_cli.models.fll.HeatmapHead`) after them; from an
``--init`` without one it starts fresh, everything else carrying over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from crct_cli.errors import CrctError
from crct_cli.landmarks import upright_frame
from crct_cli.models import weights
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer, load_localizer
from crct_cli.models.weights import WEIGHTS_DIR, load_weights
from crct_cli.train.data import (
    NO_AUGMENT,
    AugmentConfig,
    Face,
    augmented_crop,
    degradation_options,
    framed_crop,
    load_faces,
    to_tensor_batch,
)
from crct_cli.train.loop import prefetch, prefetch_processes, run_loop
from crct_cli.train.losses import check_loss, landmark_loss
from crct_cli.train.run import TrainRun, display_path, origin_options

#: The second stage's crop: tighter than the first's axis-aligned box of a rotated face.
STAGE2_MODEL = FLLConfig(context=1.3, upright=True)


@dataclass(frozen=True)
class FrameJitter:
    """How far the second stage's frame is moved from the true points' frame in training:
    normal in centre (box sides), log side and angle (degrees); ``wide`` of the samples get
    ``wide_factor`` times more, as after a poor first estimate."""

    shift_std: float = 0.03
    scale_std: float = 0.04
    angle_std: float = 4.0
    wide: float = 0.15
    wide_factor: float = 3.0


@dataclass
class TrainFLLConfig(TrainRun):
    command_name: ClassVar[str] = "fll"
    lr: float = 2e-3
    batch: int = 64
    stage: int = 1
    init: Path | None = None  # warm start (stage 2 default: the first stage)
    from_scratch: bool = False  # stage 2: random weights rather than the first stage's
    first: Path | None = None  # stage 2: the first stage it is validated behind
    loss: str = "wing"
    local: bool = False  # add the shape-indexed head
    local_steps: int = 1  # shape-indexed heads run in turn (with --local)
    heatmap: bool = False  # add the heatmap head after them
    freeze_global: bool = False  # train the shape-indexed head alone
    input_size: int | None = None  # crop side in pixels (default: the model's); weights carry over
    max_face: float = 160.0  # photographs are read with the landmark box at most this side
    label_origin: float | None = None  # the labels' first pixel centre (None: points as read)
    device: str = "cpu"  # where the steps run (cuda: a GPU)
    workers: int = 0  # processes that build the batches (0: one thread); the same batches
    minutes: float | None = None  # fit --steps (an upper bound then) to this much training time
    model: FLLConfig = field(default_factory=FLLConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    jitter: FrameJitter = field(default_factory=FrameJitter)

    def __post_init__(self) -> None:
        check_loss(self.loss)
        if self.stage == 2:
            self.model = STAGE2_MODEL
            if self.first is None:
                self.first = WEIGHTS_DIR / "fll.pt"
            if self.init is None and not self.from_scratch:
                self.init = self.first
        if self.input_size is not None:
            self.model = replace(self.model, input_size=self.input_size)
        if self.from_scratch and self.init is not None:
            raise CrctError("--from-scratch and --init exclude each other")
        if self.minutes is not None and self.resume:
            raise CrctError("--minutes fits the steps of a fresh run: not with --resume")
        if self.workers < 0 or self.max_face < 32:
            raise CrctError("--workers must be at least 0 and --max-face at least 32")
        if self.local_steps < 1 or (self.local_steps > 1 and not self.local):
            raise CrctError("--local-steps needs --local and is at least 1")
        if self.freeze_global and not (self.local and self.init is not None):
            raise CrctError("--freeze-global needs --local and --init (the FLL to keep)")
        super().__post_init__()

    def file_stem(self) -> str:
        return "fll" if self.stage == 1 else "fll_stage2"

    def default_steps(self) -> int:
        return 5000 if self.stage == 1 else 2000

    def options(self) -> list[str]:
        args = ["--batch", str(self.batch)]
        if self.stage != 1:
            args += ["--stage", str(self.stage)]
        if self.model.input_size != FLLConfig.input_size:
            args += ["--input-size", str(self.model.input_size)]
        if self.init is not None:
            args += ["--init", display_path(self.init)]
        if self.from_scratch and self.stage != 1:
            args += ["--from-scratch"]
        if self.first is not None and self.first != self.init:
            args += ["--first", display_path(self.first)]
        args += ["--local"] if self.local else []
        args += ["--local-steps", str(self.local_steps)] if self.local_steps != 1 else []
        args += ["--heatmap"] if self.heatmap else []
        args += ["--freeze-global"] if self.freeze_global else []
        args += ["--max-face", f"{self.max_face:g}"] if self.max_face != 160.0 else []
        args += origin_options(self.label_origin)
        args += ["--device", self.device] if self.device != "cpu" else []
        return args + degradation_options(self.augment) + ["--loss", self.loss]


def upright_crop(
    face: Face,
    rng: np.random.Generator,
    size: int,
    context: float,
    aug: AugmentConfig,
    jitter: FrameJitter,
) -> tuple[np.ndarray, np.ndarray]:
    """A second-stage training crop: the eye-levelled frame of the true points, jittered as a
    first estimate would move it, with the papers' appearance augmentation."""
    center, side, angle = upright_frame(face.points)
    k = jitter.wide_factor if rng.random() < jitter.wide else 1.0
    center = center + rng.normal(0.0, jitter.shift_std * k, 2) * side
    side *= float(np.exp(np.clip(rng.normal(0.0, jitter.scale_std * k), -0.3, 0.3)))
    angle += float(rng.normal(0.0, jitter.angle_std * k))
    flip = bool(rng.random() < aug.flip)
    return framed_crop(face, rng, size, center, side * context, angle, flip, aug)


def batch_crops(
    faces: Sequence[Face], cfg: TrainFLLConfig, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``step`` as uint8 crops (B, S, S, 3) and float32 targets (B, 68, 2) in crop units;
    drawn from a generator seeded by (seed, step): reproducible, resumable."""
    rng = np.random.default_rng([cfg.seed, step])
    idx = rng.integers(len(faces), size=cfg.batch)
    size = cfg.model.input_size
    crops, targets = [], []
    for j in idx:
        if cfg.model.upright:
            crop, pts = upright_crop(
                faces[j], rng, size, cfg.model.context, cfg.augment, cfg.jitter
            )
        else:
            crop, pts = augmented_crop(faces[j], rng, size, cfg.model.context, cfg.augment)
        crops.append(crop)
        targets.append(pts / size - 0.5)
    return np.stack(crops), np.stack(targets).astype(np.float32)


def make_batch(
    faces: Sequence[Face], cfg: TrainFLLConfig, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`batch_crops` as the network takes it (float crops in [0, 1], channels first)."""
    return from_worker(batch_crops(faces, cfg, step))


class BatchMaker:
    """:func:`batch_crops` for a process of :func:`crct_cli.train.loop.prefetch_processes`: it
    pickles as its settings alone and reads the training faces once per process, on its first
    batch. Batches travel as uint8 crops (a quarter of float32's bytes)."""

    _faces: ClassVar[dict[tuple, list[Face]]] = {}

    def __init__(self, cfg: TrainFLLConfig) -> None:
        self.cfg = cfg

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        key = (tuple(map(str, cfg.train)), cfg.max_face, cfg.label_origin)
        if key not in self._faces:
            self._faces[key] = load_faces(cfg.train, cfg.max_face, "worker faces", cfg.label_origin)
        return batch_crops(self._faces[key], cfg, step)


def from_worker(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 crops and targets (:func:`batch_crops`, :class:`BatchMaker`) as tensors: float
    crops in [0, 1], channels first."""
    crops, targets = batch
    return torch.from_numpy(to_tensor_batch(crops)), torch.from_numpy(targets)


def validate_fll(
    model: LandmarkLocalizer,
    faces: Sequence[Face],
    flip: bool = False,
    refiner: LandmarkLocalizer | None = None,
) -> dict:
    """GT-box protocol (the papers'): crop at the box of the true points, score NME/diagonal.

    ``refine1`` adds one pass: ``refiner`` (the second stage) when given, else FLL again;
    ``refine1_blend`` averages that pass with the first (``AlignConfig.blend``).
    """
    from crct_cli.aligner import AlignConfig, Aligner
    from crct_cli.landmarks import box_from_points
    from crct_cli.metrics import auc, failure_rate, nme

    truth = np.stack([f.points for f in faces])
    preds = {}
    for refine in (0, 1):
        aligner = Aligner(model, "cpu", AlignConfig(refine=refine, flip=flip), refiner=refiner)
        preds[f"refine{refine}"] = np.stack(
            [aligner(f.image, box_from_points(f.points)[None])[0] for f in faces]
        )
    # the blend's first pass is refine0's (same box, same network), so no third run is needed
    preds["refine1_blend"] = 0.5 * (preds["refine0"] + preds["refine1"])
    results = {}
    for name, pred in preds.items():
        e = nme(pred, truth)
        results[f"{name}{'_flip' if flip else ''}"] = {
            "n": len(e),
            "mean_nme": float(e.mean()),
            "auc@0.08": float(auc(e, 0.08)),
            "failure_rate": float(failure_rate(e, 0.08)),
        }
    return results


def train_fll(cfg: TrainFLLConfig, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    model_cfg = (
        replace(cfg.model, local=True, local_steps=cfg.local_steps) if cfg.local else cfg.model
    )
    model_cfg = replace(model_cfg, heatmap=cfg.heatmap, label_origin=cfg.label_origin or 0.0)
    warm = load_localizer(load_weights(cfg.init, "fll")) if cfg.init is not None else None
    if warm is not None and warm.local is not None and not model_cfg.local:
        raise CrctError(f"{cfg.init} has the shape-indexed head: train it with --local")
    if warm is not None and warm.heatmap is not None and not model_cfg.heatmap:
        raise CrctError(f"{cfg.init} has the heatmap head: train it with --heatmap")
    if warm is not None and warm.config.local_steps > model_cfg.local_steps:
        raise CrctError(
            f"{cfg.init} has {warm.config.local_steps} shape-indexed steps: "
            f"train it with --local-steps {warm.config.local_steps}"
        )
    first = None  # stage 2: by default the very file it starts from, loaded once
    if cfg.first is not None:
        same = cfg.first == cfg.init
        first = warm if same else load_localizer(load_weights(cfg.first, "fll"))
    train_faces = load_faces(cfg.train, cfg.max_face, "train faces", cfg.label_origin)
    # validated in the convention FLL learns: with --label-origin, the files' origin taken off
    val_faces = load_faces(cfg.val, desc="val faces", origin=cfg.label_origin)
    log(
        f"FLL: {len(train_faces)} training faces ({', '.join(map(str, cfg.train))}), "
        f"{len(val_faces)} validation ({', '.join(map(str, cfg.val))})"
    )
    size = model_cfg.input_size
    # recorded before training: --out may overwrite --init
    inputs = {
        name: {
            "path": display_path(path),
            "sha256": weights.sha256_file(weights.resolve_weight_path(Path(path))),
        }
        for name, path in (("init", cfg.init), ("first", cfg.first))
        if path is not None
    }
    mean_shape = (
        np.mean(
            [
                augmented_crop(f, np.random.default_rng(0), size, model_cfg.context, NO_AUGMENT)[1]
                for f in train_faces
            ],
            axis=0,
        )
        / size
        - 0.5
    )
    model = LandmarkLocalizer(model_cfg, mean_shape)
    if warm is not None:  # warm start: every weight the two networks share carries over
        missing, unexpected = model.load_state_dict(warm.state_dict(), strict=False)
        # only the heads that the warm start lacks start fresh (shape-indexed: as the identity)
        if unexpected or not all(k.startswith(("local", "heatmap")) for k in missing):
            raise CrctError(f"{cfg.init} does not fit this FLL: {(missing + unexpected)[:3]}")
    if cfg.freeze_global:
        model.freeze_global()
    loop = cfg.loop_config(device=cfg.device, minutes=cfg.minutes)

    def batches(start: int) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        if cfg.workers:
            made = prefetch_processes(BatchMaker(cfg), start, cfg.steps, cfg.workers)
            return ((step, from_worker(b)) for step, b in made)
        return prefetch(lambda step: make_batch(train_faces, cfg, step), start, cfg.steps)

    def loss_fn(
        m: LandmarkLocalizer, batch: tuple[torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        stages = m.stages(x)
        pred = stages[-1]
        loss = landmark_loss(cfg.loss, pred, y)
        if len(stages) > 1 and not cfg.freeze_global:
            # the global estimate stays supervised: the local head samples around it
            loss = loss + landmark_loss(cfg.loss, stages[0], y)
        for middle in stages[1:-1]:  # so does each local step that a later one refines
            loss = loss + landmark_loss(cfg.loss, middle, y)
        # mean point error in units of the crop side, for the log
        err = (pred - y).norm(dim=-1).mean()
        return loss, {cfg.loss: float(loss.detach()), "err": float(err.detach())}

    t0 = time.time()
    trainable = [p for p in model.parameters() if p.requires_grad]
    ema = run_loop(model, batches, loss_fn, loop, log=log, param_groups=[{"params": trainable}])
    cfg.steps = loop.steps  # with --minutes, the steps that fitted: the command records them
    minutes = (time.time() - t0) / 60
    trained = ema.model
    if cfg.stage == 1:
        metrics = validate_fll(trained, val_faces)
        metrics.update(validate_fll(trained, val_faces, flip=True))
        protocol = "GT-box (tight box of the true points), NME / box diagonal"
    else:
        assert first is not None and cfg.first is not None
        metrics = validate_fll(first, val_faces, refiner=trained)
        metrics.update(validate_fll(first, val_faces, flip=True, refiner=trained))
        protocol = (
            "GT-box (tight box of the true points), NME / box diagonal; refine1 = the first "
            f"stage ({display_path(cfg.first)}) then this second stage"
        )
    cfg.publish(
        "fll",
        {"model": asdict(model_cfg)},
        trained.state_dict(),
        protocol,
        metrics,
        minutes,
        log=log,
        **({"inputs": inputs} if inputs else {}),
    )
    return metrics
