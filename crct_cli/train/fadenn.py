"""``crct train fadenn``: IID and FLL fine-tuned together (FADeNN paper, III-D).

Starts from a trained FLL (``crct train fll``) and a trained IID of the same variant
(``crct train iid``) and fine-tunes FADeNN = FLL(IID(I)) end to end with Adam at the paper's
learning rate (1e-4): the landmark loss (``--loss``, as FLL was trained) flows through the
denoiser, a reconstruction loss (L2 to the clean crop) keeps the denoiser a denoiser, and for S
and M the classifier keeps its own loss (plus M's reconstruction of its input, lambda 0.5).
Crops are routed by the classifier's own decision, as at inference. ``--untouched scale`` leaves
the crops of a class as they are (S and M), in training as at inference.

Validation is the papers' GT-box protocol on clean + the 12 degraded sets of the validation
folders, made in memory exactly as ``crct degrade --all --seed SEED`` writes them (same noise
generator per file, same JPEG re-encoding) and aligned as ``crct align --box-from-pts`` does, so
the numbers are those that ``crct benchmark`` gives on that route. The FLL the run started from
is scored on the same images beside it, and for S and M the same FADeNN with every crop routed by
its true class: what a perfect classifier would give, which tells classifier errors from
denoiser limits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import ClassVar, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from crct_cli.aligner import Aligner, fadenn_aligner, load_stage2
from crct_cli.degrade import degrade_rgb, file_rng, is_gray
from crct_cli.errors import CrctError
from crct_cli.io.images import encode_image
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import auc, failure_rate, nme
from crct_cli.models import weights
from crct_cli.models.fadenn import (
    CLASS_NAMES,
    IID,
    N_CLASSES,
    CropDenoiser,
    FADeNN,
    fadenn_file,
    fadenn_weight_config,
    iid_file,
    load_iid,
    untouched_problem,
)
from crct_cli.models.fll import LandmarkLocalizer, load_localizer
from crct_cli.noise import NOISE_TYPES
from crct_cli.train.data import AugmentConfig, Face, list_pairs, occluding_strip
from crct_cli.train.iid import (
    VAL_SETS,
    crops_to_tensor,
    noisy_crop_pair,
    set_name,
    visible_class,
)
from crct_cli.train.loop import prefetch, run_loop
from crct_cli.train.losses import check_loss, landmark_loss
from crct_cli.train.run import TrainRun, origin_options

#: FLL's geometric augmentation (flips, rotations up to 45 degrees, occluding strips); colour
#: jitter is left out, as it would look like the intensity-scaling class.
JOINT_AUGMENT = AugmentConfig(
    flip=0.5,
    big_rotation=0.35,
    max_rotation=45.0,
    small_rotation_std=8.0,
    shift_std=0.05,
    scale_std=0.08,
    occlusion=0.3,
    degradation=0.0,
    color=0.0,
    grayscale=0.0,
)


#: Steps per variant: about 20-25 minutes of training on one free core of a 2-core CPU
#: (measured 0.36 / 0.69 s per step of 16 crops for D / M), then about 5 minutes of validation.
DEFAULT_STEPS = {"d": 3000, "s": 2000, "m": 2000}


@dataclass
class TrainFADeNNConfig(TrainRun):
    command_name: ClassVar[str] = "fadenn"
    variant: str = "m"
    fll: Path = Path("weights/fll.pt")
    iid: Path | None = None  # None: weights/iid_<variant>.pt
    lr: float = 1e-4
    batch: int = 16
    rec_weight: float = 10.0
    loss: str = "wing"
    degrade_seed: int = 0
    val_limit: int = 0
    gray: float = 0.1
    untouched: tuple[str, ...] = ()
    label_origin: float | None = None  # the labels' first pixel centre (None: points as read)
    augment: AugmentConfig = field(default_factory=lambda: JOINT_AUGMENT)

    def file_stem(self) -> str:
        return Path(fadenn_file(self.variant)).stem

    def default_steps(self) -> int:
        return DEFAULT_STEPS[self.variant]

    def __post_init__(self) -> None:
        check_loss(self.loss)
        problem = untouched_problem(self.variant, self.untouched)
        if problem:
            raise CrctError(f"--untouched: {problem}")
        super().__post_init__()
        if self.iid is None:
            self.iid = Path("weights") / iid_file(self.variant)

    def options(self) -> list[str]:
        args = ["--variant", self.variant, "--fll", str(self.fll), "--iid", str(self.iid)]
        args += ["--batch", str(self.batch), "--rec-weight", str(self.rec_weight)]
        args += ["--loss", self.loss]
        args += ["--degrade-seed", str(self.degrade_seed)]
        for name in self.untouched:
            args += ["--untouched", name]
        args += origin_options(self.label_origin)
        return args + (["--val-limit", str(self.val_limit)] if self.val_limit else [])


def make_batch(
    faces: Sequence[Face], cfg: TrainFADeNNConfig, step: int, size: int, context: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean, noisy, points in crop units, classes), seeded by (seed, step).

    An occluding strip, when drawn, covers the same place in the clean and the noisy crop.
    """
    rng = np.random.default_rng([cfg.seed, step])
    clean, noisy, points, classes = [], [], [], []
    for _ in range(cfg.batch):
        face = faces[int(rng.integers(len(faces)))]
        cls, level = int(rng.integers(N_CLASSES)), int(rng.integers(1, 4))
        gray = bool(rng.random() < cfg.gray)
        c, n, p = noisy_crop_pair(face, rng, cls, level, cfg.augment, None, size, context, gray)
        if rng.random() < cfg.augment.occlusion:
            strip_seed = int(rng.integers(2**31))
            c = occluding_strip(c, np.random.default_rng(strip_seed))
            n = occluding_strip(n, np.random.default_rng(strip_seed))
        clean.append(c)
        noisy.append(n)
        points.append(p / size - 0.5)
        classes.append(visible_class(c, n, cls))
    return (
        crops_to_tensor(clean),
        crops_to_tensor(noisy),
        torch.from_numpy(np.stack(points)).float(),
        torch.tensor(classes),
    )


def joint_loss(
    model: FADeNN,
    clean: torch.Tensor,
    noisy: torch.Tensor,
    target: torch.Tensor,
    classes: torch.Tensor,
    rec_weight: float,
    loss_name: str = "wing",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Landmarks through the IID as routed at inference + reconstruction (+ the classifier's)."""
    iid = model.iid
    info: dict[str, float] = {}
    loss = torch.zeros(())
    if iid.dae is not None:
        denoised = iid.dae(noisy)
    else:
        assert iid.classifier is not None
        logits, recon = iid.classifier(noisy, reconstruct=iid.variant == "m")
        ce = F.cross_entropy(logits, classes)
        loss = loss + ce
        info["ce"] = float(ce.detach())
        if recon is not None:
            loss = loss + iid.config.lam * F.mse_loss(recon, noisy)
        routed = logits.argmax(1).detach()
        info["acc"] = float((routed == classes).float().mean())
        denoised = iid.route(noisy, routed)
    rec = F.mse_loss(denoised, clean)
    pred = model.fll(denoised)
    lmk = landmark_loss(loss_name, pred, target)
    loss = loss + lmk + rec_weight * rec
    info[loss_name] = float(lmk.detach())
    info["rec"] = float(rec.detach())
    info["err"] = float((pred - target).detach().norm(dim=-1).mean())
    return loss, info


# ------------------------------------------------------------------------------ validation


@dataclass
class ValImage:
    """A validation image as on disk, with the path ``crct degrade`` seeds its noise by."""

    face: Face
    rel: PurePosixPath
    suffix: str


def load_val_images(
    dirs: Sequence[Path], limit: int = 0, origin: float | None = None
) -> list[ValImage]:
    """Image + .pts pairs at full size; ``rel`` is relative to the folder given (as degrade).
    ``origin``: the files' first pixel centre, taken off the points (as ``load_faces``)."""
    from crct_cli.io.images import read_image
    from crct_cli.io.landmarks import read_pts

    out: list[ValImage] = []
    for root in dirs:
        for image, pts in list_pairs([root]):
            rel = PurePosixPath(image.relative_to(root).as_posix())
            points = read_pts(pts)
            if origin is not None:
                points = points - origin
            face = Face(str(image), read_image(image), points)
            out.append(ValImage(face, rel, image.suffix.lower()))
            if limit and len(out) >= limit:
                return out
    return out


def _written_and_read(image: np.ndarray, suffix: str, gray: bool) -> np.ndarray:
    """What ``crct degrade``'s ``write_image`` then ``read_image`` give back (JPEG
    re-encoding included, at degrade's settings)."""
    buf = encode_image(suffix, image[..., 0] if gray else image, keep_detail=True)
    if buf is None:
        raise CrctError(f"cannot encode a validation image as {suffix}")
    back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert back is not None  # the bytes imencode has just written
    if back.ndim == 2:
        return cv2.cvtColor(back, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(back, cv2.COLOR_BGR2RGB)


def degraded_like_cli(item: ValImage, cls: int, level: int, seed: int) -> np.ndarray:
    """The image ``crct degrade --all --seed SEED`` writes for this set, as read back."""
    image = item.face.image
    if cls == 0:
        return image  # the clean set is a byte-for-byte copy
    noise_type = NOISE_TYPES[cls - 1]
    out = degrade_rgb(image, noise_type, level, file_rng(seed, item.rel, noise_type, level))
    return _written_and_read(out, item.suffix, is_gray(image))


def _scores(errors: np.ndarray) -> dict[str, float]:
    return {
        "auc@0.08": float(auc(errors, 0.08)),
        "failure_rate": float(failure_rate(errors, 0.08)),
        "mean_nme": float(np.mean(errors)),
    }


class TrueClassDenoiser(CropDenoiser):
    """Routes every crop by ``true_class``, the class its set was degraded with, instead of the
    classifier's verdict: what a perfect classifier would give."""

    true_class: int = 0

    def _classify(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.true_class, dtype=torch.long, device=x.device)


def gt_box_noise_benchmark(
    aligners: dict[str, Aligner],
    images: Sequence[ValImage],
    seed: int = 0,
    denoisers: dict[str, CropDenoiser] | None = None,
    true_class: Sequence[TrueClassDenoiser] = (),
) -> dict[str, object]:
    """AUC@0.08 / failure rate per model on clean + 12 degraded sets, GT-box protocol.

    ``denoisers`` (the CropDenoiser inside an aligner, by the same name) adds the confusion
    matrix of its classifier on the crops of the final pass. The ``true_class`` denoisers route
    every crop by the class the set was degraded with instead of their classifier's verdict.
    """
    errors: dict[str, dict[str, list[float]]] = {name: {} for name in aligners}
    confusion = {name: np.zeros((N_CLASSES, N_CLASSES), np.int64) for name in denoisers or {}}
    for cls, level in VAL_SETS:
        key = set_name(cls, level)
        for routed in true_class:
            routed.true_class = cls
        for item in images:
            image = degraded_like_cli(item, cls, level, seed)
            box = box_from_points(item.face.points)[None]
            for name, aligner in aligners.items():
                pred = aligner(image, box)[0]
                e = float(nme(pred[None], item.face.points[None])[0])
                errors[name].setdefault(key, []).append(e)
                den = (denoisers or {}).get(name)
                if den is not None and den.last_classes is not None:
                    confusion[name][cls, int(den.last_classes[0])] += 1
    result: dict[str, object] = {}
    for name, by_set in errors.items():
        per_set = {k: _scores(np.array(v)) for k, v in by_set.items()}
        degraded = [v for k, v in per_set.items() if k != "clean"]
        summary = {
            "clean_auc": per_set["clean"]["auc@0.08"],
            "clean_failure_rate": per_set["clean"]["failure_rate"],
            "mean_degraded_auc": float(np.mean([v["auc@0.08"] for v in degraded])),
            "mean_degraded_failure_rate": float(np.mean([v["failure_rate"] for v in degraded])),
        }
        entry: dict[str, object] = {"n": len(images), "summary": summary, "sets": per_set}
        if name in confusion:
            m = confusion[name]
            entry["confusion"] = {
                "rows_true_cols_predicted": list(CLASS_NAMES),
                "matrix": m.tolist(),
                "accuracy": float(np.trace(m) / max(1, m.sum())),
            }
        result[name] = entry
    return result


# -------------------------------------------------------------------------------- training


def train_fadenn(cfg: TrainFADeNNConfig, log=print) -> dict:
    """Fine-tune, validate, write the weight file and its manifest entry; returns the metrics."""
    from crct_cli.train.data import load_faces

    assert cfg.iid is not None and cfg.out is not None and cfg.steps is not None
    fll_blob = weights.load_weights(cfg.fll, "fll")
    iid_blob = weights.load_weights(cfg.iid, "iid")
    iid = load_iid(iid_blob)
    if iid.variant != cfg.variant:
        raise CrctError(f"{cfg.iid} holds IID-{iid.variant.upper()}, not --variant {cfg.variant}")
    if cfg.untouched:
        untouched = IID(replace(iid.config, untouched=cfg.untouched))
        untouched.load_state_dict(iid.state_dict())
        iid = untouched
    fll = load_localizer(fll_blob)
    learnt = fll.config.label_origin
    if cfg.label_origin is not None:
        fll.config = replace(fll.config, label_origin=cfg.label_origin)
    model = FADeNN(iid, fll)
    baseline = load_localizer(fll_blob)
    torch.manual_seed(cfg.seed)
    train_faces = load_faces(cfg.train, 220.0, "train faces", cfg.label_origin)
    # validated in the convention FLL learns, as crct train fll does
    val_images = load_val_images(cfg.val, cfg.val_limit, cfg.label_origin)
    if (cfg.label_origin or 0.0) != learnt:
        log(
            f"note: {cfg.fll} learnt labels with origin {learnt:g}; this run reads them with "
            f"origin {cfg.label_origin or 0.0:g} (--label-origin)"
        )
    log(
        f"FADeNN-{cfg.variant.upper()}: {len(train_faces)} training faces "
        f"({', '.join(map(str, cfg.train))}), {len(val_images)} validation "
        f"({', '.join(map(str, cfg.val))}); from {fll_blob['path']} and {iid_blob['path']}"
    )
    size, context = model.config.input_size, model.config.context
    loop = cfg.loop_config(
        weight_decay=0.0,  # Adam, as the paper
        warmup=50,
    )

    def batches(
        start: int,
    ) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]]:
        return prefetch(
            lambda step: make_batch(train_faces, cfg, step, size, context), start, cfg.steps
        )

    def loss_fn(
        m: FADeNN,
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        step: int,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        clean, noisy, target, classes = batch
        return joint_loss(m, clean, noisy, target, classes, cfg.rec_weight, cfg.loss)

    t0 = time.time()
    ema = run_loop(model, batches, loss_fn, loop, log=log)
    minutes = (time.time() - t0) / 60
    trained = ema.model.eval()
    # scored as crct align scores it: with the second stage shipped beside --fll, if any
    refiner, refiner_path = load_stage2(Path(cfg.fll).parent)
    metrics = validate_fadenn(trained, baseline, val_images, cfg.degrade_seed, refiner)
    cfg.publish(
        "fadenn",
        fadenn_weight_config(trained),
        trained.state_dict(),
        "GT-box (tight box of the true points), NME / box diagonal, AUC@0.08 and failure rate "
        f"on clean + 12 sets as 'crct degrade --all --seed {cfg.degrade_seed}' writes them, "
        "aligned as 'crct align --box-from-pts' does (refine 1, no flip"
        + (f", second stage {refiner_path}" if refiner_path else "")
        + ")",
        metrics,
        minutes,
        variant=cfg.variant,
        init={
            "fll": {"path": str(cfg.fll), "sha256": weights.sha256_file(fll_blob["path"])},
            "iid": {"path": str(cfg.iid), "sha256": weights.sha256_file(iid_blob["path"])},
        },
        log=log,
    )
    return metrics


def validate_fadenn(
    model: FADeNN,
    baseline: LandmarkLocalizer,
    images: Sequence[ValImage],
    seed: int,
    refiner: LandmarkLocalizer | None = None,
) -> dict[str, object]:
    """FADeNN and the FLL it started from, side by side, on the 13 sets (both followed by the
    second stage ``refiner`` when given)."""
    aligner, denoiser = fadenn_aligner(model, refiner=refiner)
    name = f"fadenn_{model.iid.variant}"
    aligners = {"fll": Aligner(baseline, refiner=refiner), name: aligner}
    oracles = []
    if model.iid.variant != "d":
        oracle = TrueClassDenoiser(model.iid)
        aligners[f"{name}_true_class"] = Aligner(model.fll, denoiser=oracle, refiner=refiner)
        oracles.append(oracle)
    result = gt_box_noise_benchmark(
        aligners,
        images,
        seed,
        denoisers={name: denoiser} if model.iid.variant != "d" else None,
        true_class=oracles,
    )
    ours = cast(dict, result[name])["summary"]
    base = cast(dict, result["fll"])["summary"]
    result["gain_over_fll"] = {
        "clean_auc": ours["clean_auc"] - base["clean_auc"],
        "mean_degraded_auc": ours["mean_degraded_auc"] - base["mean_degraded_auc"],
    }
    return result
