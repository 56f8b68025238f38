"""Evaluation metrics: landmark NME, cumulative error curve, AUC, failure rate, box IoU.

Conventions (both papers, and what ``crct benchmark`` reports):

* NME of one image = mean point-to-point Euclidean error divided by a ground-truth length:
  ``diagonal`` (default) the diagonal of the ground-truth landmark box, ``area`` sqrt(w * h)
  of that box, ``interocular`` the distance between the outer eye corners (indices 36 and
  45, iBUG's points 37 and 46).
* A missing prediction (``NaN`` anywhere in an image's points) counts as a failure: its error
  is ``inf``. It therefore lowers the cumulative error curve and the AUC and raises the failure
  rate; mean NME is taken over the images that have a prediction (see :func:`summarize`).
* AUC@T is the area under the cumulative error curve on [0, T] divided by T, computed exactly:
  the curve is a step function of the sorted errors, so the integral is
  ``mean(max(0, T - e_i)) / T``; no sampling grid is involved.
* Failure rate is the share of images with NME > T (strictly greater).
* Box tracking uses the one-pass evaluation (OPE) success curve of OTB: the share of frames whose
  IoU with the ground truth is strictly greater than a threshold t, for t in 0, 0.05, ..., 1
  (21 evenly spaced thresholds); its AUC is the mean of the curve over those thresholds (OTB-2013).
  A missing box (``NaN``) has IoU 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crct_cli.landmarks import OUTER_EYE_CORNERS

Normalization = Literal["diagonal", "area", "interocular"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

#: The papers' failure threshold and AUC cut-off on NME.
DEFAULT_THRESHOLD = 0.08
#: OTB's success-plot thresholds: 0, 0.05, ..., 1.
OTB_THRESHOLDS: NDArray[np.float64] = np.linspace(0.0, 1.0, 21)

FloatArray = NDArray[np.float64]


def _as_point_sets(points: ArrayLike) -> FloatArray:
    """(68, 2) or (N, 68, 2) -> (N, P, 2) float64."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"points must be (P, 2) or (N, P, 2), got {arr.shape}")
    return arr


def normalizer(gt: ArrayLike, norm: Normalization = "diagonal") -> FloatArray:
    """Per-image normalising length of ground-truth points, shape (N,)."""
    g = _as_point_sets(gt)
    if norm == "interocular":
        a, b = OUTER_EYE_CORNERS
        if g.shape[1] != 68:  # 49 and 51 points hold other points at these indices
            raise ValueError("interocular normalisation needs the 68-point markup")
        return np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    wh = g.max(axis=1) - g.min(axis=1)
    if norm == "diagonal":
        return np.hypot(wh[:, 0], wh[:, 1])
    if norm == "area":
        return np.sqrt(wh[:, 0] * wh[:, 1])
    raise ValueError(f"unknown normalisation {norm!r}; choose one of {', '.join(NORMALIZATIONS)}")


def nme(pred: ArrayLike, gt: ArrayLike, norm: Normalization = "diagonal") -> FloatArray:
    """Normalised mean error per image, shape (N,); ``inf`` where the prediction is missing.

    ``pred`` and ``gt`` are (P, 2) or (N, P, 2); a prediction with any ``NaN`` is missing.
    Raises ``ValueError`` if a ground-truth normaliser is not positive (degenerate markup).
    """
    p = _as_point_sets(pred)
    g = _as_point_sets(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth {g.shape}")
    d = normalizer(g, norm)
    if not np.all(np.isfinite(d) & (d > 0)):
        raise ValueError("ground truth has a zero or non-finite normalising length")
    missing = np.isnan(p).any(axis=(1, 2))
    err = np.linalg.norm(np.nan_to_num(p) - g, axis=-1).mean(axis=1) / d
    err[missing] = np.inf
    return err


def _errors(errors: ArrayLike) -> FloatArray:
    """Flatten to float64 with NaN treated as a failure (inf)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    return np.where(np.isnan(e), np.inf, e)


def ced(errors: ArrayLike, thresholds: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
    """Cumulative error distribution: share of images with error <= x, at each x.

    Without ``thresholds`` the curve is returned exactly at its steps: x is the sorted finite
    errors and y the share of images at or below each one (missing images never count).
    """
    e = _errors(errors)
    n = max(len(e), 1)
    ordered = np.sort(e)
    if thresholds is None:
        finite = ordered[np.isfinite(ordered)]
        # y at each x counts ties, so use the right-most position of each value.
        y = np.searchsorted(ordered, finite, side="right") / n
        return finite, y.astype(np.float64)
    x = np.asarray(thresholds, dtype=np.float64)
    return x, np.searchsorted(ordered, x, side="right") / n


def auc(errors: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Exact area under the CED on [0, threshold], divided by ``threshold`` (so 0..1).

    Each image with error e contributes ``max(0, threshold - e)`` to the integral of the step
    curve; missing images (inf) contribute 0. An empty list has AUC 0.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    e = _errors(errors)
    if e.size == 0:
        return 0.0
    return float(np.mean(np.clip(threshold - e, 0.0, threshold)) / threshold)


def failure_rate(errors: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Share of images with error > threshold (missing images are failures); 0 if empty."""
    e = _errors(errors)
    return float(np.mean(e > threshold)) if e.size else 0.0


@dataclass(frozen=True)
class ErrorSummary:
    """Overall numbers of a list of per-image errors."""

    count: int  #: images scored, missing ones included
    missing: int  #: images without a prediction (error inf)
    mean_nme: float  #: mean over images with a prediction (NaN if there are none)
    median_nme: float  #: median over images with a prediction (NaN if there are none)
    auc: float  #: AUC@threshold, missing counted as failures
    failure_rate: float  #: share with error > threshold, missing counted as failures
    threshold: float


def summarize(errors: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> ErrorSummary:
    """Mean/median NME over present predictions; AUC and failure rate over all images."""
    e = _errors(errors)
    present = e[np.isfinite(e)]
    return ErrorSummary(
        count=int(e.size),
        missing=int(e.size - present.size),
        mean_nme=float(present.mean()) if present.size else float("nan"),
        median_nme=float(np.median(present)) if present.size else float("nan"),
        auc=auc(e, threshold),
        failure_rate=failure_rate(e, threshold),
        threshold=float(threshold),
    )


def iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> FloatArray:
    """Intersection over union of (x, y, w, h) boxes, row by row; shape (N,).

    A box with NaN (missing) or no area gives IoU 0.
    """
    a = np.atleast_2d(np.asarray(boxes_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(boxes_b, dtype=np.float64))
    if a.shape != b.shape or a.shape[-1] != 4:
        raise ValueError(f"boxes must both be (N, 4), got {a.shape} and {b.shape}")
    ix = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    iy = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(out, nan=0.0)


def success_curve(
    ious: ArrayLike, thresholds: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """OPE success curve: share of frames with IoU > t for each t (default: OTB's 21)."""
    t = OTB_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    v = np.nan_to_num(np.asarray(ious, dtype=np.float64).ravel(), nan=0.0)
    if v.size == 0:
        return t, np.zeros_like(t)
    return t, (v[None, :] > t[:, None]).mean(axis=1)


def success_auc(ious: ArrayLike, thresholds: ArrayLike | None = None) -> float:
    """AUC of the success plot as OTB reports it: the mean of the curve over its thresholds."""
    return float(success_curve(ious, thresholds)[1].mean())
