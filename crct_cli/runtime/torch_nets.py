"""crct's networks in PyTorch behind the numpy interface of :mod:`crct_cli.runtime` (the
training engine, and the one for CUDA). The arithmetic is exactly what the networks' callers
did before the runtime existed, so the torch backend's points are unchanged to the last digit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from crct_cli.runtime.nets import LSTMState

if TYPE_CHECKING:
    from crct_cli.models.bt import RecurrentTracker


def _float_crops(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(crops, np.uint8)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


class TorchLocalizer:
    """FLL or its second stage: uint8 crops (N, S, S, 3) -> (N, 68, 2) crop units (float32)."""

    def __init__(self, module: nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.eval().to(self.device)
        self.config: Any = module.config

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 68, 2), np.float32)
        return self.module(_float_crops(crops, self.device)).float().cpu().numpy()


class TorchTracker:
    """BT: (prev crops, cur crops, state or None) -> (points in crop units, new state); or in
    two steps, :meth:`features` of crops and :meth:`head` on two crops' features."""

    def __init__(self, module: RecurrentTracker, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.eval().to(self.device)
        self.config: Any = module.config

    @torch.inference_mode()
    def features(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S, 3) -> (N, F) float32."""
        return self.module.features(_float_crops(crops, self.device)).float().cpu().numpy()

    @torch.inference_mode()
    def head(
        self, prev: np.ndarray, cur: np.ndarray, state: LSTMState | None = None
    ) -> tuple[np.ndarray, LSTMState]:
        """Both crops' features -> (points in crop units, new state)."""

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)

        given = None if state is None else (tensor(state[0]), tensor(state[1]))
        points, (h, c) = self.module.track_features(tensor(prev), tensor(cur), given)
        return points.float().cpu().numpy(), (h.float().cpu().numpy(), c.float().cpu().numpy())

    @torch.inference_mode()
    def __call__(
        self, prev: np.ndarray, cur: np.ndarray, state: LSTMState | None = None
    ) -> tuple[np.ndarray, LSTMState]:
        n = len(prev)
        x = _float_crops(np.concatenate([prev, cur]), self.device)
        given = None
        if state is not None:
            given = tuple(torch.from_numpy(np.ascontiguousarray(s)).to(self.device) for s in state)
        points, (h, c) = self.module(x[:n], x[n:], given)
        return points.float().cpu().numpy(), (h.float().cpu().numpy(), c.float().cpu().numpy())


class TorchValidator:
    """FV: (uint8 crops, points in crop pixels) -> logits (N,); ``probabilities`` applies the
    sigmoid."""

    def __init__(self, module: nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.eval().to(self.device)
        self.config: Any = module.config

    def _logits(self, crops: np.ndarray, points: np.ndarray) -> torch.Tensor:
        p = torch.from_numpy(np.ascontiguousarray(points)).to(self.device).float()
        return self.module(_float_crops(crops, self.device), p)

    @torch.inference_mode()
    def logits(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray:
        return self._logits(crops, points).float().cpu().numpy()

    @torch.inference_mode()
    def probabilities(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray:
        return torch.sigmoid(self._logits(crops, points)).float().cpu().numpy()

    __call__ = probabilities


class TorchFinder:
    """The face finder: uint8 windows (N, S, S, 3) -> (logits, boxes), float32 numpy."""

    def __init__(self, module: nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.eval().to(self.device)
        self.config: Any = module.config

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, boxes = self.module(_float_crops(windows, self.device))
        return logits.float().cpu().numpy(), boxes.float().cpu().numpy()
