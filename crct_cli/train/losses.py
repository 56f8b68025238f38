"""Landmark regression losses on points in crop units (centre 0, side 1).

``wing`` is the Wing loss (Feng et al., CVPR 2018): logarithmic for small errors, so the last
pixels of error still pull once most points are close, where L1's gradient is flat. ``l1`` is
what the first shipped FLL was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from crct_cli.errors import CrctError

#: Wing loss shape in units of the crop side: log region up to ``WING_WIDTH`` (about 17 px of
#: a 112-px crop), curvature ``WING_EPSILON``; the ratio of the Wing paper's w=10, eps=2 px.
WING_WIDTH = 0.15
WING_EPSILON = 0.03


def wing_loss(
    pred: torch.Tensor, target: torch.Tensor, w: float = WING_WIDTH, eps: float = WING_EPSILON
) -> torch.Tensor:
    """Mean Wing loss over coordinates: w*ln(1+|x|/eps) below w, |x|-C above (continuous)."""
    x = (pred - target).abs()
    c = w - w * math.log(1.0 + w / eps)
    return torch.where(x < w, w * torch.log1p(x / eps), x - c).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over coordinates."""
    return (pred - target).abs().mean()


#: ``--loss`` choices of ``crct train fll`` and ``crct train fadenn``.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1_loss,
    "wing": wing_loss,
}


def check_loss(name: str) -> None:
    """Raise :class:`CrctError` unless ``name`` is one of :data:`LOSSES`."""
    if name not in LOSSES:
        raise CrctError(f"--loss must be one of {', '.join(LOSSES)}, not {name!r}")


def landmark_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` (one of :data:`LOSSES`), averaged over points and coordinates."""
    return LOSSES[name](pred, target)
