"""Still-image benchmark (FADeNN Figure 4 / Table I): methods over clean and degraded sets.

Each image is read once; each requested set is made on the fly with :mod:`crct_cli.noise`
through :func:`crct_cli.degrade.degrade_rgb`, with the per-file generator of
:func:`crct_cli.degrade.file_rng`, so the ``noise-2`` set here is the very picture
``crct degrade ROOT --all --seed S`` writes to ``OUT/noise/2/`` (before file encoding).
Nothing is written to disk.

Faces come from the box of the ground-truth points (``box_from_pts``, the papers' protocol)
or, without it, from the method's detector: the detection that overlaps the ground-truth box
most; an image with no overlapping detection has no prediction and counts as a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from crct_cli.bench.methods import ImageFactory, ImageMethod, MethodSpec, weight_files_of
from crct_cli.bench.scores import GroupScore, score_group
from crct_cli.degrade import degrade_rgb, file_rng
from crct_cli.errors import CrctError
from crct_cli.io.datasets import find_image_pts_pairs
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import read_pts
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import DEFAULT_THRESHOLD, Normalization, iou, nme
from crct_cli.noise import LEVELS, NOISE_TYPES, canonical_noise_type, check_noise

#: Seed of the on-the-fly Gaussian noise when none is given (results are reproducible).
DEFAULT_SEED = 0


@dataclass(frozen=True)
class NoiseSet:
    """A clean set (``noise_type`` None) or one FADeNN degradation at one level."""

    noise_type: str | None = None
    level: int = 0

    @property
    def name(self) -> str:
        return "clean" if self.noise_type is None else f"{self.noise_type}-{self.level}"

    @property
    def clean(self) -> bool:
        return self.noise_type is None


CLEAN = NoiseSet()
#: The twelve degraded sets of FADeNN IV-A, in the paper's order.
DEGRADED_SETS: tuple[NoiseSet, ...] = tuple(NoiseSet(t, lv) for t in NOISE_TYPES for lv in LEVELS)
ALL_SETS: tuple[NoiseSet, ...] = (CLEAN, *DEGRADED_SETS)


def parse_noise(text: str | None) -> list[NoiseSet]:
    """``all`` (clean + 12), ``none``/``clean``, ``TYPE-LEVEL`` (``blur-3``), or a comma list."""
    if text is None:
        return [CLEAN]
    sets: list[NoiseSet] = []
    for item in (t.strip().lower() for t in text.split(",")):
        if not item:
            continue
        if item == "all":
            chosen: tuple[NoiseSet, ...] = ALL_SETS
        elif item in ("none", "clean"):
            chosen = (CLEAN,)
        else:
            noise_type, _, level = item.rpartition("-")
            if not noise_type or not level.isdecimal():
                raise CrctError(
                    f"--noise: expected all, none or TYPE-LEVEL (e.g. blur-3), got {item!r}"
                )
            noise_type = canonical_noise_type(noise_type)
            check_noise(noise_type, int(level))
            chosen = (CLEAN,) if int(level) == 0 else (NoiseSet(noise_type, int(level)),)
        sets += [s for s in chosen if s not in sets]
    if not sets:
        raise CrctError("--noise: give all, none or TYPE-LEVEL")
    return sets


@dataclass(frozen=True)
class StillItem:
    image: Path
    rel: PurePosixPath  #: path relative to the root (seeds the noise, names the image)
    gt: np.ndarray


@dataclass
class StillSelection:
    root: Path
    items: list[StillItem]
    #: images left out, and why (e.g. Menpo's 39-point profile markup)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: taken off the .pts files' points (their first pixel centre)
    gt_origin: float = 0.0


def select_images(root: Path, dataset: str = "images", gt_origin: float = 0.0) -> StillSelection:
    """Every image with a 68-point ``.pts`` beside it under ``root`` (recursively), with
    ``gt_origin`` (the files' first pixel centre: 1 for 300-W's) taken off the points.

    Files with another markup (Menpo's profile faces have 39 points) are listed as skipped;
    any other malformed ``.pts`` is an error naming it. No pair at all is an error.
    """
    from crct_cli.bench.catalog import SOURCES

    pairs = find_image_pts_pairs(root)
    if not pairs:
        source = SOURCES[dataset]
        where = f"; {source.label} is published at {source.url}" if source.url else ""
        raise CrctError(f"{root}: no image with a .pts beside it ({source.layout}){where}")
    selection = StillSelection(root=root, items=[], gt_origin=gt_origin)
    for image, pts in pairs:
        rel = PurePosixPath(image.relative_to(root).as_posix())
        try:
            gt = read_pts(pts)
        except CrctError as exc:
            try:
                other = read_pts(pts, n_points=39)
            except CrctError:
                raise exc from None
            selection.skipped.append((str(rel), f"{len(other)}-point markup, not 68"))
            continue
        selection.items.append(StillItem(image, rel, gt - gt_origin))
    if not selection.items:
        raise CrctError(f"{root}: no image with a 68-point .pts ({len(selection.skipped)} skipped)")
    return selection


@dataclass
class StillBenchResult:
    dataset: str
    root: str
    methods: list[str]
    sets: list[str]
    box_from_pts: bool
    seed: int
    norm: str
    threshold: float
    #: set name -> method -> score
    scores: dict[str, dict[str, GroupScore]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    weight_files: dict[str, dict[str, str]] = field(default_factory=dict)
    gt_origin: float = 0.0  #: taken off the ground truth before scoring

    def mean_degraded(self) -> dict[str, dict[str, float]]:
        """Per method, the mean AUC and failure rate over the degraded sets present."""
        out: dict[str, dict[str, float]] = {}
        degraded = [s for s in self.sets if s != CLEAN.name]
        if not degraded:
            return out
        for method in self.methods:
            cells = [self.scores[s][method].summary for s in degraded]
            out[method] = {
                "auc": float(np.mean([c.auc for c in cells])),
                "failure_rate": float(np.mean([c.failure_rate for c in cells])),
                "sets": len(cells),
            }
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "still",
            "dataset": self.dataset,
            "root": self.root,
            "methods": self.methods,
            "protocol": {
                "box": "ground-truth landmark box" if self.box_from_pts else "best detection",
                "noise_seed": self.seed,
                "normalization": self.norm,
                "threshold": self.threshold,
                "missing_prediction": "failure (error inf)",
                "gt_origin": self.gt_origin,
            },
            "skipped_images": [{"image": r, "reason": why} for r, why in self.skipped],
            "sets": {
                name: {m: s.to_json() for m, s in per.items()} for name, per in self.scores.items()
            },
            "mean_degraded": self.mean_degraded(),
        }


def _face_box(method: ImageMethod, image: np.ndarray, gt_box: np.ndarray) -> np.ndarray | None:
    """The detection that overlaps the ground-truth box most, if any does."""
    detections = method.detect(image)
    if not detections:
        return None
    boxes = np.stack([np.asarray(d.box, dtype=np.float64) for d in detections])
    overlaps = iou(boxes, np.repeat(gt_box[None], len(boxes), axis=0))
    best = int(np.argmax(overlaps))
    return boxes[best] if overlaps[best] > 0 else None


def run_still_benchmark(
    selection: StillSelection,
    specs: list[MethodSpec],
    factory: ImageFactory,
    sets: list[NoiseSet],
    dataset: str = "images",
    seed: int = DEFAULT_SEED,
    box_from_pts: bool = True,
    norm: Normalization = "diagonal",
    threshold: float = DEFAULT_THRESHOLD,
    on_item: Callable[[], None] | None = None,
) -> StillBenchResult:
    """Every method on every image of every set; one :class:`GroupScore` per set and method."""
    methods = {spec.name: factory(spec) for spec in specs}
    n, names = len(selection.items), list(methods)
    errors = {(s.name, m): np.full(n, np.inf) for s in sets for m in names}
    for i, item in enumerate(selection.items):
        image = read_image(item.image)
        gt_box = box_from_points(item.gt)
        for noise in sets:
            if noise.clean:
                picture = image
            else:
                assert noise.noise_type is not None
                rng = file_rng(seed, item.rel, noise.noise_type, noise.level)
                picture = degrade_rgb(image, noise.noise_type, noise.level, rng)
            for name, method in methods.items():
                box = gt_box if box_from_pts else _face_box(method, picture, gt_box)
                if box is not None:
                    points = np.asarray(method.localize(picture, box), dtype=np.float64)
                    try:
                        errors[(noise.name, name)][i] = nme(points, item.gt, norm)[0]
                    except ValueError as exc:
                        raise CrctError(f"{item.image}: {exc}") from None
                if on_item is not None:
                    on_item()
    result = StillBenchResult(
        dataset=dataset,
        root=str(selection.root),
        methods=names,
        sets=[s.name for s in sets],
        box_from_pts=box_from_pts,
        seed=seed,
        norm=norm,
        threshold=threshold,
        skipped=list(selection.skipped),
        weight_files={name: weight_files_of(m) for name, m in methods.items()},
        gt_origin=selection.gt_origin,
    )
    for noise in sets:
        result.scores[noise.name] = {
            m: score_group(noise.name, m, n, errors[(noise.name, m)], threshold) for m in names
        }
    return result
