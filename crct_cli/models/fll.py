"""FLL, the facial landmark localiser (CRCT eq. 7): Inception-ResNet trunk + regression layer.

Optionally followed by a shape-indexed head: the global regression reads a 4x4 pooled grid, so
it places the 68 points well but not to the last pixel; the head samples the trunk's finer maps
around each first estimate and regresses a per-point correction (the local step of cascaded
shape regression, learned end to end from the same features).

Optionally (``heatmap``) also a heatmap head: 68 heatmaps on the stride-4 grid, read out by a
soft-argmax (integral regression, Sun et al. 2018), blended point by point with the regression's
answer. A heatmap places each point where the features say it is, with no shape to pull it; the
regression holds the shape where the picture says little: the two err differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crct_cli.models.backbone import (
    BackboneConfig,
    BasicConv2d,
    InceptionResNetTrunk,
    backbone_from_dict,
)

N_POINTS = 68


@dataclass(frozen=True)
class FLLConfig:
    """Input size and crop context; the box is the tight box of the 68 points (eq. 4).

    ``upright``: the crop is eye-levelled around a first estimate of the points
    (:func:`crct_cli.landmarks.upright_frame`), as FLL's second stage sees it.
    ``local``: add the shape-indexed head (:class:`ShapeIndexedHead`); ``local_steps`` > 1
    runs that many heads in turn, each after the first sampling half as far around the points
    the one before placed (the iterations of cascaded shape regression).
    ``heatmap``: add the heatmap head (:class:`HeatmapHead`) after them.
    ``label_origin``: a record of the coordinate the training labels gave the first pixel's
    centre (300-W's .pts: 1), subtracted before training, so FLL answers in pixel centres
    counted from 0 as OpenCV and dlib do. 0 for files trained before it: their labels were
    taken as read, and the mirrored crops then taught x from 0 and y from the labels' origin.
    """

    input_size: int = 112
    context: float = 1.35
    upright: bool = False
    hidden: int = 256
    local: bool = False
    local_steps: int = 1
    heatmap: bool = False
    label_origin: float = 0.0
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


class ShapeIndexedHead(nn.Module):
    """Per-point corrections from features sampled around the current points.

    Around each point it samples a 5x5 grid from the A-block map (stride 4) and a 3x3 grid from
    the B-block map (stride 8), ``spacing`` cells apart (a later step of ``local_steps`` looks
    closer), both reduced to ``width`` channels; one shared
    layer mixes them with a learned per-point code, and a per-point linear layer gives the
    offset. Starts as the identity (zero output layer): a fresh head leaves FLL's answer as it was.
    """

    def __init__(
        self,
        channels_a: int,
        channels_b: int,
        width: int = 32,
        hidden: int = 256,
        spacing: float = 1.0,
    ) -> None:
        super().__init__()
        # patch offsets (``spacing`` cells apart), built once rather than per frame; not saved
        self.cells_a: torch.Tensor
        self.cells_b: torch.Tensor
        self.register_buffer("cells_a", self.patch_cells(5) * spacing, persistent=False)
        self.register_buffer("cells_b", self.patch_cells(3) * spacing, persistent=False)
        self.reduce_a = nn.Sequential(nn.Conv2d(channels_a, width, 1), nn.ReLU(inplace=True))
        self.reduce_b = nn.Sequential(nn.Conv2d(channels_b, width, 1), nn.ReLU(inplace=True))
        self.mix = nn.Linear(width * (len(self.cells_a) + len(self.cells_b)), hidden)
        self.point_code = nn.Parameter(torch.zeros(N_POINTS, hidden))
        self.out_weight = nn.Parameter(torch.zeros(N_POINTS, hidden, 2))
        self.out_bias = nn.Parameter(torch.zeros(N_POINTS, 2))

    @staticmethod
    def patch_cells(grid: int) -> torch.Tensor:
        """(grid**2, 2) offsets, in cells, of a grid x grid patch centred on 0; x varies first."""
        r = torch.arange(grid, dtype=torch.float32) - (grid - 1) / 2
        return torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2)

    @staticmethod
    def sample(fmap: torch.Tensor, points: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) map, (B, 68, 2) points in crop units, (K, 2) patch offsets in cells
        (:meth:`patch_cells`) -> (B, 68, C * K), bilinear, the patch centred on each point."""
        b, c, h, _ = fmap.shape
        where = points[:, :, None, :] * 2.0 + cells * (2.0 / h)  # grid_sample's [-1, 1] = crop
        patches = F.grid_sample(fmap, where, align_corners=False, padding_mode="border")
        return patches.permute(0, 2, 1, 3).reshape(b, N_POINTS, -1)

    def forward(
        self, map_a: torch.Tensor, map_b: torch.Tensor, points: torch.Tensor
    ) -> torch.Tensor:
        local = torch.cat(
            [
                self.sample(self.reduce_a(map_a), points, self.cells_a),
                self.sample(self.reduce_b(map_b), points, self.cells_b),
            ],
            dim=-1,
        )
        h = F.relu(self.mix(local) + self.point_code)
        return points + torch.einsum("bnh,nhc->bnc", h, self.out_weight) + self.out_bias


class HeatmapHead(nn.Module):
    """68 heatmaps on the A-block grid (stride 4; the B-block map upsampled and added), each
    read out by a soft-argmax over the grid's cell centres, then blended with the points it is
    given by a learned per-point weight (half and half at first).

    ``forward`` returns the heatmap's own points and the blend; both are supervised in training.
    """

    def __init__(self, channels_a: int, channels_b: int, width: int = 64) -> None:
        super().__init__()
        self.from_a = BasicConv2d(channels_a, width, 1, 1)
        self.from_b = BasicConv2d(channels_b, width, 1, 1)
        self.refine = BasicConv2d(width, width, 3, 1, padding=1)
        self.out = nn.Conv2d(width, N_POINTS, 1)
        self.mix_logit = nn.Parameter(torch.zeros(N_POINTS))

    @staticmethod
    def soft_argmax(heat: torch.Tensor) -> torch.Tensor:
        """(B, 68, H, W) logits -> (B, 68, 2) expected cell centre in crop units (centre 0)."""
        b, n, h, w = heat.shape
        prob = torch.softmax(heat.flatten(2), dim=-1).view(b, n, h, w)
        xs = (torch.arange(w, dtype=heat.dtype, device=heat.device) + 0.5) / w - 0.5
        ys = (torch.arange(h, dtype=heat.dtype, device=heat.device) + 0.5) / h - 0.5
        return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)

    def forward(
        self, map_a: torch.Tensor, map_b: torch.Tensor, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        up = F.interpolate(
            self.from_b(map_b), size=map_a.shape[-2:], mode="bilinear", align_corners=False
        )
        heat_points = self.soft_argmax(self.out(self.refine(self.from_a(map_a) + up)))
        weight = torch.sigmoid(self.mix_logit)[None, :, None]
        return heat_points, weight * heat_points + (1.0 - weight) * points


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
        self.local: ShapeIndexedHead | None = None
        # further shape-indexed steps, each reading a finer patch around the last step's points
        self.local_more = nn.ModuleList()
        bc = self.config.backbone
        if self.config.local:
            self.local = ShapeIndexedHead(bc.width_a, bc.width_b)
            for step in range(1, self.config.local_steps):
                spacing = 0.5**step
                self.local_more.append(ShapeIndexedHead(bc.width_a, bc.width_b, spacing=spacing))
        self.heatmap: HeatmapHead | None = None
        if self.config.heatmap:
            self.heatmap = HeatmapHead(bc.width_a, bc.width_b)
        self.global_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1]

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The global estimate, then (with the local heads) each corrected one, then (with the
        heatmap head) the heatmap's points and their blend with the last; (B, 68, 2) each."""
        map_a, map_b, pooled = self.trunk.feature_maps(x)
        points = [self.head(pooled).view(-1, N_POINTS, 2)]
        if self.local is not None:
            points.append(self.local(map_a, map_b, points[-1]))
            for head in self.local_more:
                points.append(head(map_a, map_b, points[-1]))
        if self.heatmap is not None:
            points.extend(self.heatmap(map_a, map_b, points[-1]))
        return tuple(points)

    def freeze_global(self) -> None:
        """Train only the local head: the trunk and the global regression keep their weights
        and their batch-norm statistics (``train()`` leaves them in eval mode)."""
        for module in (self.trunk, self.head):
            for p in module.parameters():
                p.requires_grad_(False)
        self.global_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> LandmarkLocalizer:
        super().train(mode)
        if self.global_frozen:
            self.trunk.eval()
            self.head.eval()
        return self


def fll_config_from_dict(d: dict) -> FLLConfig:
    return FLLConfig(**{**d, "backbone": backbone_from_dict(d["backbone"])})


def load_localizer(blob: dict) -> LandmarkLocalizer:
    """Build FLL from a loaded weight file (see ``models.weights.load_weights``)."""
    model = LandmarkLocalizer(fll_config_from_dict(blob["config"]["model"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
