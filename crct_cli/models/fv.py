"""FV, the face validator (CRCT III-B, eq. 6): p(face) from small patches at the landmarks.

After Chrysos et al.: a patch is cut around each of the 68 estimated points and the patches are
stacked, in markup order, as the channels of one small image, so the convolutions learn what
each landmark should look like. A shape that slid off the face, or shrank or grew away from it,
puts the wrong content under its points and scores low; the tracker re-detects below TC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crct_cli.runtime.nets import fv_crop  # noqa: F401  (torch-free, for the ONNX path)

N_POINTS = 68


@dataclass(frozen=True)
class FVConfig:
    crop_size: int = 64  # the face is first cropped to this many pixels ...
    context: float = 2.0  # ... around ``context`` x the side of the points' box
    patch: int = 8  # pixels of crop per patch side (0.25 of the box side by default)
    width: int = 96


class FaceValidator(nn.Module):
    """(crops (B, 3, S, S) in [0, 1], points (B, 68, 2) in crop pixels) -> logit of p(face)."""

    offsets: torch.Tensor  # a buffer, (P, P, 2)

    def __init__(self, config: FVConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or FVConfig()
        w = c.width
        self.features = nn.Sequential(
            nn.Conv2d(N_POINTS, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.bottleneck = nn.Sequential(nn.Linear(w, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))
        offsets = torch.arange(c.patch, dtype=torch.float32) - (c.patch - 1) / 2.0
        gy, gx = torch.meshgrid(offsets, offsets, indexing="ij")
        self.register_buffer("offsets", torch.stack([gx, gy], dim=-1), persistent=False)

    def patches(self, crops: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Grayscale patches (B, 68, P, P) around each point, standardised per sample."""
        b, _, s, _ = crops.shape
        gray = crops.mean(dim=1, keepdim=True)
        grid = points[:, :, None, None, :] + self.offsets  # (B, 68, P, P, 2) crop pixels
        grid = grid / (s - 1) * 2.0 - 1.0
        p = self.config.patch
        sampled = F.grid_sample(
            gray, grid.view(b, N_POINTS * p, p, 2), align_corners=True, padding_mode="zeros"
        ).view(b, N_POINTS, p, p)
        mean = sampled.mean(dim=(1, 2, 3), keepdim=True)
        std = sampled.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        return (sampled - mean) / std

    def forward(self, crops: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.features(self.patches(crops, points))).squeeze(1)

    @torch.inference_mode()
    def score(
        self, image: np.ndarray, points: np.ndarray, device: torch.device | str = "cpu"
    ) -> float:
        """p(face) for one (68, 2) shape in an RGB uint8 image."""
        crop, pts = fv_crop(image, points, self.config)
        x = torch.from_numpy(crop).to(device).permute(2, 0, 1)[None].float().div_(255.0)
        p = torch.from_numpy(pts).to(device).float()[None]
        return float(torch.sigmoid(self(x, p))[0])


def load_validator(blob: dict) -> FaceValidator:
    """Build FV from a loaded weight file."""
    model = FaceValidator(FVConfig(**blob["config"]["model"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
