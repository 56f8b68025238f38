"""Aggregate numbers of one group of frames or images for one method (a table cell).

Shared by the video and still-image benchmarks so both report the same quantities: the
frame/image-level :class:`~crct_cli.metrics.ErrorSummary` (AUC@T, failure rate, mean NME),
the cumulative error curve sampled on a fixed grid (for the JSON and the plots) and, for
boxes, the one-pass success curve and its AUC.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from crct_cli.metrics import ErrorSummary, ced, success_auc, success_curve, summarize

#: Points on [0, T] at which the cumulative error curve is stored and drawn.
CED_POINTS = 161


def ced_grid(threshold: float) -> np.ndarray:
    return np.linspace(0.0, threshold, CED_POINTS)


def finite_or_none(value: float) -> float | None:
    """JSON has no inf/NaN: undefined numbers become ``null``."""
    return value if math.isfinite(value) else None


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
        return out


def score_group(
    group: str,
    method: str,
    items: int,
    errors: np.ndarray,
    threshold: float,
    ious: np.ndarray | None = None,
) -> GroupScore:
    """Summarise the per-frame (or per-image) errors of a group; ``inf`` = missing = failure."""
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
    return score
