"""Aggregate numbers of one group of frames or images for one method (a table cell).

Shared by the video and still-image benchmarks so both report the same quantities: the
frame/image-level :class:`~crct_cli.metrics.ErrorSummary` (AUC@T, failure rate, mean NME),
the cumulative error curve sampled on a fixed grid (for the JSON and the plots), for
boxes, the one-pass success curve and its AUC and, for videos, the jitter of the points.

Jitter (frame-to-frame motion of the predicted points against the ground truth's): for two
consecutive frames a = t-1 and b = t that both have a prediction,

    J_t = mean over the 68 points k of || (p_b,k - p_a,k) - (g_b,k - g_a,k) || / L(g_b)

where p are predicted points, g ground-truth points and L the NME's normalising length of the
ground truth at t (by default the diagonal of its landmark box). A method that follows the
face exactly, or with a constant offset, has J = 0; every pixel it shakes (or lags) more than
the face moved counts. The group's jitter is the mean of J_t over all such pairs. This is the
per-point quantity of Micaelli et al.'s normalised mean jitter (LDEQ, "Recurrence without
Recurrence", CVPR 2023: ||(g - p)_{t-1} - (g - p)_t||), normalised as our NME is and averaged
like it, where LDEQ divides by sqrt(box area) / 256 and takes root mean squares.
``jitter_ok`` keeps only the pairs whose two frames are both within the failure threshold,
so that it measures steadiness on the face rather than the jumps of failures and recoveries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from crct_cli.metrics import (
    ErrorSummary,
    Normalization,
    ced,
    normalizer,
    success_auc,
    success_curve,
    summarize,
)

#: Points on [0, T] at which the cumulative error curve is stored and drawn.
CED_POINTS = 161


def ced_grid(threshold: float) -> np.ndarray:
    return np.linspace(0.0, threshold, CED_POINTS)


def finite_or_none(value: float) -> float | None:
    """JSON has no inf/NaN: undefined numbers become ``null``."""
    return value if math.isfinite(value) else None


def summaries_by_state(
    states: Sequence[str | None],
    errors: np.ndarray,
    threshold: float,
    order: Sequence[str],
) -> dict[str, ErrorSummary]:
    """Frames' errors pooled by the tracker's state (frames with none left out), in ``order``
    and then by name: how close the points are when the tracker says it followed the face,
    found it again, or lost it."""
    pooled: dict[str, list[float]] = {}
    for state, error in zip(states, errors, strict=True):
        if state is not None:
            pooled.setdefault(state, []).append(float(error))
    rank = {s: i for i, s in enumerate(order)}
    return {
        s: summarize(np.asarray(pooled[s]), threshold)
        for s in sorted(pooled, key=lambda s: (rank.get(s, len(rank)), s))
    }


def state_summaries_json(summaries: dict[str, ErrorSummary]) -> dict[str, dict[str, object]]:
    """:func:`summaries_by_state` as results.json writes it."""
    return {
        state: {
            "frames": s.count,
            "missing": s.missing,
            "median_nme": finite_or_none(s.median_nme),
            "auc": s.auc,
            "failure_rate": s.failure_rate,
        }
        for state, s in summaries.items()
    }


#: The columns of :func:`state_cells`, as both benchmarks' tables head them.
STATE_COLUMNS: tuple[str, ...] = ("frames", "share", "AUC", "FR", "median NME")


def state_cells(summaries: dict[str, ErrorSummary]) -> list[tuple[str, ...]]:
    """One table row per state of :func:`summaries_by_state`: the state, then
    :data:`STATE_COLUMNS` (the share is of all the frames that have a state)."""
    total = sum(s.count for s in summaries.values())
    return [
        (
            state,
            str(s.count),
            f"{100 * s.count / total:.1f}%",
            f"{s.auc:.4f}",
            f"{100 * s.failure_rate:.1f}%",
            f"{s.median_nme:.4f}" if s.missing < s.count else "-",
        )
        for state, s in summaries.items()
    ]


def point_jitter(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    gt_a: np.ndarray,
    gt_b: np.ndarray,
    norm: Normalization = "diagonal",
) -> np.ndarray:
    """Jitter of each pair of frames a -> b (arrays (N, P, 2) or (P, 2)), shape (N,).

    NaN where either prediction is missing (has a NaN); see the module docstring.
    """
    pa, pb, ga, gb = (np.asarray(x, dtype=np.float64) for x in (pred_a, pred_b, gt_a, gt_b))
    if pa.ndim == 2:
        pa, pb, ga, gb = pa[None], pb[None], ga[None], gb[None]
    if not pa.shape == pb.shape == ga.shape == gb.shape:
        raise ValueError("jitter needs four arrays of the same shape")
    if len(pa) == 0:
        return np.zeros(0)
    lengths = normalizer(gb, norm)
    motion = (pb - pa) - (gb - ga)
    out = np.linalg.norm(motion, axis=-1).mean(axis=1) / lengths
    missing = np.isnan(pa).any(axis=(1, 2)) | np.isnan(pb).any(axis=(1, 2))
    out[missing] = np.nan
    return out


@dataclass(frozen=True)
class JitterSummary:
    """Mean jitter of a group, over all pairs and over the pairs on the face."""

    pairs: int  #: consecutive frame pairs with two predictions
    mean: float  #: NaN when there is no pair
    pairs_ok: int  #: of those, pairs whose two frames are within the failure threshold
    mean_ok: float
    #: beside other tools (``--common-with``, or the other methods of a benchmark run): the
    #: pairs every one of them has on the face, and this tool's mean there
    pairs_shared: int | None = None
    mean_shared: float | None = None

    def to_json(self) -> dict[str, object]:
        shared = {}
        if self.pairs_shared is not None:
            assert self.mean_shared is not None  # the two are set together
            shared = {
                "jitter_ok_shared": finite_or_none(self.mean_shared),
                "jitter_ok_shared_pairs": self.pairs_shared,
            }
        return {
            "jitter": finite_or_none(self.mean),
            "jitter_pairs": self.pairs,
            "jitter_ok": finite_or_none(self.mean_ok),
            "jitter_ok_pairs": self.pairs_ok,
            **shared,
        }


def summarize_jitter(
    jitter: np.ndarray,
    worst_error: np.ndarray,
    threshold: float,
    others_worst_error: np.ndarray | None = None,
) -> JitterSummary:
    """``jitter`` per pair (NaN: not a pair) and the larger NME of each pair's two frames.

    ``others_worst_error``: the largest of the same for the other tools on the same pairs; the
    mean is then also taken over the pairs every tool has on the face. Each tool's own "on the
    face" mean runs over its own pairs, and a tool that keeps hard frames on the face (that
    another loses) adds hard pairs to its mean: only the shared pairs compare steadiness.
    """
    j = np.asarray(jitter, dtype=np.float64).ravel()
    w = np.asarray(worst_error, dtype=np.float64).ravel()
    present = np.isfinite(j)
    ok = present & (w <= threshold)
    pairs_shared, mean_shared = None, None
    if others_worst_error is not None:
        shared = ok & (np.asarray(others_worst_error, dtype=np.float64).ravel() <= threshold)
        pairs_shared = int(shared.sum())
        mean_shared = float(j[shared].mean()) if shared.any() else float("nan")
    return JitterSummary(
        pairs=int(present.sum()),
        mean=float(j[present].mean()) if present.any() else float("nan"),
        pairs_ok=int(ok.sum()),
        mean_ok=float(j[ok].mean()) if ok.any() else float("nan"),
        pairs_shared=pairs_shared,
        mean_shared=mean_shared,
    )


@dataclass
class GroupScore:
    """One method on one group (a 300-VW category, a degraded image set)."""

    group: str
    method: str
    items: int  #: sequences (videos) or images in the group
    summary: ErrorSummary
    ced: np.ndarray  #: share with error <= x on :func:`ced_grid`
    success_auc: float | None = None  #: box OPE success AUC (videos only)
    success: np.ndarray | None = None  #: success curve on OTB's thresholds (videos only)
    jitter: JitterSummary | None = None  #: frame-to-frame jitter (videos only)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "items": self.items,
            **{
                k: finite_or_none(v) if isinstance(v, float) else v
                for k, v in asdict(self.summary).items()
            },
        }
        if self.success_auc is not None:
            out["success_auc"] = self.success_auc
        if self.jitter is not None:
            out.update(self.jitter.to_json())
        return out


def score_group(
    group: str,
    method: str,
    items: int,
    errors: np.ndarray,
    threshold: float,
    ious: np.ndarray | None = None,
    jitter: tuple[np.ndarray, np.ndarray] | None = None,
    others_worst: np.ndarray | None = None,
) -> GroupScore:
    """Summarise the per-frame (or per-image) errors of a group; ``inf`` = missing = failure.

    ``jitter`` is (jitter per pair, larger NME of the pair), and ``others_worst`` the largest
    NME of the other methods on the same pairs: see :func:`summarize_jitter`.
    """
    score = GroupScore(
        group=group,
        method=method,
        items=items,
        summary=summarize(errors, threshold),
        ced=ced(errors, ced_grid(threshold))[1],
    )
    if ious is not None:
        score.success_auc = success_auc(ious)
        score.success = success_curve(ious)[1]
    if jitter is not None:
        score.jitter = summarize_jitter(jitter[0], jitter[1], threshold, others_worst)
    return score
