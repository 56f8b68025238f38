"""BT, the recurrent face tracker (CRCT III-A; Re3 adapted to faces).

The previous and the current frame are both cropped at the previous box ``Pb`` with Re3's
context (a square twice the box side), passed through one shared Inception-ResNet trunk,
joined by the embedding layer (eq. 3: a learnt weighting of the concatenated features), fed to
two stacked LSTMs, and read out by five fully-connected heads, one per facial region
(contour, brows, eyes, nose, lips). The new box is the tight box of the points (eq. 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from crct_cli.landmarks import REGIONS
from crct_cli.models.backbone import BackboneConfig, InceptionResNetTrunk, backbone_from_dict

N_POINTS = 68
LSTMState = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class BTConfig:
    input_size: int = 128  # CRCT: half of Re3's 227, 128x128
    context: float = 2.0  # Re3: crops twice the box side
    reduced: int = 128  # 1x1 conv on each crop's features before the embedding layer
    embedding: int = 512
    hidden: int = 256
    lstm_layers: int = 2
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


class RecurrentTracker(nn.Module):
    """(previous crop, current crop, LSTM state) -> 68 points in current-crop units, new state.

    Crop units: centre 0, side 1, the same for both crops since both are cut at ``Pb``.
    """

    order: torch.Tensor  # a buffer: region order -> markup order

    def __init__(self, config: BTConfig | None = None, mean_shape: np.ndarray | None = None):
        super().__init__()
        self.config = c = config or BTConfig()
        self.trunk = InceptionResNetTrunk(c.backbone)
        grid = c.backbone.out_grid**2
        self.reduce = nn.Sequential(
            nn.Conv2d(c.backbone.width_c, c.reduced, 1, bias=False),
            nn.BatchNorm2d(c.reduced),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.embedding = nn.Sequential(
            nn.Linear(2 * c.reduced * grid, c.embedding), nn.ReLU(inplace=True)
        )
        self.lstm = nn.LSTM(c.embedding, c.hidden, num_layers=c.lstm_layers, batch_first=True)
        heads = {name: nn.Linear(c.hidden, 2 * len(idx)) for name, idx in REGIONS.items()}
        self.heads = nn.ModuleDict(heads)
        order = np.concatenate([np.array(idx) for idx in REGIONS.values()])
        self.register_buffer("order", torch.from_numpy(np.argsort(order)), persistent=False)
        mean = (
            torch.zeros(N_POINTS, 2)
            if mean_shape is None
            else torch.as_tensor(mean_shape, dtype=torch.float32)
        )
        for name, idx in REGIONS.items():
            head = heads[name]
            nn.init.normal_(head.weight, std=1e-3)
            with torch.no_grad():
                head.bias.copy_(mean[list(idx)].reshape(-1))

    def forward(
        self, prev: torch.Tensor, cur: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        b = prev.shape[0]
        feats = self.features(torch.cat([prev, cur], dim=0))
        return self.track_features(feats[:b], feats[b:], state)

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """One crop's features (N, reduced * grid), the same for it as a previous or a current
        crop: a frame's current crop, cut at the box the next frame is cut at too, is that
        frame's previous crop, and its features need not be computed twice (the tracker's
        ``--bt-reuse``)."""
        return self.reduce(self.trunk(crops))

    def track_features(
        self, prev: torch.Tensor, cur: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        """The rest of :meth:`forward`, from both crops' :meth:`features`."""
        b = prev.shape[0]
        joint = torch.cat([prev, cur], dim=1)
        out, state = self.lstm(self.embedding(joint)[:, None], state)
        out = out[:, 0]
        regions = [self.heads[name](out).view(b, -1, 2) for name in REGIONS]
        return torch.cat(regions, dim=1)[:, self.order], state  # back to markup order


def bt_config_from_dict(d: dict) -> BTConfig:
    return BTConfig(**{**d, "backbone": backbone_from_dict(d["backbone"])})


def load_tracker(blob: dict) -> RecurrentTracker:
    """Build BT from a loaded weight file."""
    model = RecurrentTracker(bt_config_from_dict(blob["config"]["model"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
