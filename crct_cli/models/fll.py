"""FLL, the facial landmark localiser (CRCT eq. 7): Inception-ResNet trunk + regression layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from crct_cli.models.backbone import BackboneConfig, InceptionResNetTrunk, backbone_from_dict

N_POINTS = 68


@dataclass(frozen=True)
class FLLConfig:
    """Input size and crop context; the box is the tight box of the 68 points (eq. 4).

    ``upright``: the crop is eye-levelled around a first estimate of the points
    (:func:`crct_cli.landmarks.upright_frame`), as FLL's second stage sees it.
    """

    input_size: int = 112
    context: float = 1.35
    upright: bool = False
    hidden: int = 256
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


class LandmarkLocalizer(nn.Module):
    """Crop (B, 3, S, S) in [0, 1] -> 68 points (B, 68, 2) in crop units, centre 0, side 1."""

    def __init__(self, config: FLLConfig | None = None, mean_shape: np.ndarray | None = None):
        super().__init__()
        self.config = config or FLLConfig()
        self.trunk = InceptionResNetTrunk(self.config.backbone)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.1),
            nn.Linear(self.trunk.out_features, self.config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.config.hidden, N_POINTS * 2),
        )
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.normal_(last.weight, std=1e-3)
        if mean_shape is not None:
            with torch.no_grad():
                last.bias.copy_(torch.as_tensor(mean_shape, dtype=torch.float32).reshape(-1))
        else:
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).view(-1, N_POINTS, 2)


def fll_config_from_dict(d: dict) -> FLLConfig:
    return FLLConfig(**{**d, "backbone": backbone_from_dict(d["backbone"])})


def load_localizer(blob: dict) -> LandmarkLocalizer:
    """Build FLL from a loaded weight file (see ``models.weights.load_weights``)."""
    model = LandmarkLocalizer(fll_config_from_dict(blob["config"]["model"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
