"""A narrow Inception-ResNet-v1 trunk, shared by FLL and BT (CRCT III-A, III-C).

It keeps the structure of facenet-pytorch's ``InceptionResnetV1`` (stem, Inception-ResNet-A
blocks, reduction A, Inception-ResNet-B blocks, reduction B, Inception-ResNet-C blocks, each
residual ``r + scale * F(r)`` as CRCT eq. 5) and its ``BasicConv2d`` (conv, BN, ReLU), but
with about a quarter of the channels and fewer repeats. Why narrower: the pretrained face weights
cannot be downloaded here, so the trunk is trained from scratch on ~1,700 faces on a 2-core
CPU, and the whole tracker must run at 15+ fps there. At 128x128 it runs in ~7 ms on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class BackboneConfig:
    """Channel widths and block repeats; the defaults are the shipped trunk."""

    stem: tuple[int, int, int] = (32, 48, 96)
    width_a: int = 96
    width_b: int = 192
    width_c: int = 384
    blocks_a: int = 2
    blocks_b: int = 4
    blocks_c: int = 2
    out_grid: int = 4


class BasicConv2d(nn.Module):
    """Conv (no bias), batch norm, ReLU: facenet-pytorch's unit, with the same parameter names
    and BN epsilon (1e-3, from TensorFlow), written here because importing facenet-pytorch
    imports torchvision (1.5 s) even where no face is detected."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int | tuple[int, int],
        stride: int,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _conv1x1(cin: int, cout: int) -> BasicConv2d:
    return BasicConv2d(cin, cout, kernel_size=1, stride=1)


class InceptionResNetA(nn.Module):
    """Block35 of Inception-ResNet-v1 at a given width: 1x1 / 3x3 / double-3x3 branches."""

    def __init__(self, channels: int, scale: float = 0.17) -> None:
        super().__init__()
        b = channels // 4
        self.scale = scale
        self.branch0 = _conv1x1(channels, b)
        self.branch1 = nn.Sequential(_conv1x1(channels, b), BasicConv2d(b, b, 3, 1, padding=1))
        self.branch2 = nn.Sequential(
            _conv1x1(channels, b), BasicConv2d(b, b, 3, 1, padding=1), BasicConv2d(b, b, 3, 1, 1)
        )
        self.project = nn.Conv2d(3 * b, channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], dim=1)
        return self.relu(x + self.scale * self.project(mixed))


class InceptionResNetB(nn.Module):
    """Block17: 1x1 and factorised 1x7 / 7x1 branches."""

    def __init__(self, channels: int, scale: float = 0.10) -> None:
        super().__init__()
        b = channels // 4
        self.scale = scale
        self.branch0 = _conv1x1(channels, b)
        self.branch1 = nn.Sequential(
            _conv1x1(channels, b),
            BasicConv2d(b, b, (1, 7), 1, padding=(0, 3)),
            BasicConv2d(b, b, (7, 1), 1, padding=(3, 0)),
        )
        self.project = nn.Conv2d(2 * b, channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([self.branch0(x), self.branch1(x)], dim=1)
        return self.relu(x + self.scale * self.project(mixed))


class InceptionResNetC(nn.Module):
    """Block8: 1x1 and factorised 1x3 / 3x1 branches."""

    def __init__(self, channels: int, scale: float = 0.20) -> None:
        super().__init__()
        b = channels // 4
        self.scale = scale
        self.branch0 = _conv1x1(channels, b)
        self.branch1 = nn.Sequential(
            _conv1x1(channels, b),
            BasicConv2d(b, b, (1, 3), 1, padding=(0, 1)),
            BasicConv2d(b, b, (3, 1), 1, padding=(1, 0)),
        )
        self.project = nn.Conv2d(2 * b, channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([self.branch0(x), self.branch1(x)], dim=1)
        return self.relu(x + self.scale * self.project(mixed))


class Reduction(nn.Module):
    """Mixed_6a / Mixed_7a: halve the grid with a strided conv, a 1x1-3x3 branch and a pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        conv_out = cout - cin
        half = conv_out // 2
        self.branch0 = BasicConv2d(cin, half, 3, 2, padding=1)
        self.branch1 = nn.Sequential(
            _conv1x1(cin, half // 2), BasicConv2d(half // 2, conv_out - half, 3, 2, padding=1)
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.pool(x)], dim=1)


class InceptionResNetTrunk(nn.Module):
    """Image (B, 3, S, S) in [0, 1] -> spatial features (B, width_c, out_grid, out_grid).

    Input is standardised per image inside the network, which also makes it insensitive to
    global intensity scaling (one of FADeNN's degradations) and to exposure changes in video.
    """

    def __init__(self, config: BackboneConfig | None = None) -> None:
        super().__init__()
        c = config or BackboneConfig()
        self.config = c
        s0, s1, s2 = c.stem
        self.stem = nn.Sequential(
            BasicConv2d(3, s0, 3, 2, padding=1),
            BasicConv2d(s0, s1, 3, 1, padding=1),
            BasicConv2d(s1, s2, 3, 2, padding=1),
        )
        self.to_a = _conv1x1(s2, c.width_a) if s2 != c.width_a else nn.Identity()
        self.blocks_a = nn.Sequential(*[InceptionResNetA(c.width_a) for _ in range(c.blocks_a)])
        self.reduce_a = Reduction(c.width_a, c.width_b)
        self.blocks_b = nn.Sequential(*[InceptionResNetB(c.width_b) for _ in range(c.blocks_b)])
        self.reduce_b = Reduction(c.width_b, c.width_c)
        self.blocks_c = nn.Sequential(*[InceptionResNetC(c.width_c) for _ in range(c.blocks_c)])
        self.pool = nn.AdaptiveAvgPool2d(c.out_grid)

    @property
    def out_features(self) -> int:
        return self.config.width_c * self.config.out_grid**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)[-1]

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The A-block map (stride 4), the B-block map (stride 8) and the pooled output: the
        finer maps keep the local detail that FLL's shape-indexed head samples."""
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        x = (x - mean) / std
        map_a = self.blocks_a(self.to_a(self.stem(x)))
        map_b = self.blocks_b(self.reduce_a(map_a))
        return map_a, map_b, self.pool(self.blocks_c(self.reduce_b(map_b)))


def fuse_batchnorm(model: M) -> M:
    """Fold every ``BasicConv2d``'s batch norm into its convolution, in place, for inference.

    Same outputs (to float rounding) with one layer fewer per block: the trunk has ~130 of
    them, and on a CPU their calls are a few percent of the tracker's frame time. Only for a
    model in eval mode that will not be trained again.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    assert not model.training, "fuse_batchnorm is for inference (eval mode) only"
    for module in model.modules():
        if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return model


def backbone_from_dict(d: dict) -> BackboneConfig:
    """Rebuild a config saved with ``dataclasses.asdict`` (tuples come back from lists)."""
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return BackboneConfig(**fields)
