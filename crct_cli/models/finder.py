"""The face finder: where a lost face went, in a window around the box it was last seen in.

Not in the papers. MTCNN looks for faces anywhere, at any size, and a face smeared by a fast
move, half out of the frame or turned in the picture is often nothing to it: on synthetic
category 3, FLL in the true box would read 57 of the 76 lost frames that fail, and MTCNN finds
the face on 5 of them. The finder knows more: the face is near where it was and about the
size it was. It reads a window of ``window`` times the last box's side around that box,
resized to ``input_size`` pixels, and answers with a score for each cell of a grid over the
window (the face's centre is there) or for "not in this window", plus, per cell, the centre's
place within the cell and the face's size against the last box. Trained on still faces moved,
scaled, turned and degraded (``crct train finder``); eq. 8 and FV check what it finds, as they
check MTCNN's detections. Its answer is read, without torch, by
:func:`crct_cli.runtime.nets.decode_finder` and :func:`~crct_cli.runtime.nets.find_faces`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FinderConfig:
    input_size: int = 96  #: pixels of the window's side as the network reads it
    window: float = 3.0  #: the window's side, in sides of the last box (sqrt(w * h))
    width: int = 48  #: channels of the grid's features
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)  #: one residual block each

    @property
    def stride(self) -> int:
        return 4

    @property
    def grid(self) -> int:
        return self.input_size // self.stride


class _Residual(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class FaceFinder(nn.Module):
    """Window (B, 3, S, S) in [0, 1] -> (logits (B, G*G + 1), boxes (B, G*G, 4)).

    ``logits``: one per grid cell (the face's centre lies in it), row by row, the last for "not
    in this window". ``boxes``: per cell, the centre's offset in the cell (0-1, x then y) and
    the log of the face's landmark-box width and height in last-box sides."""

    def __init__(self, config: FinderConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or FinderConfig()
        w = c.width
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, w, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[_Residual(w, d) for d in c.dilations])
        self.cells = nn.Conv2d(w, 5, 1)  # centre logit, dx, dy, log w, log h
        self.absent = nn.Linear(w, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - 0.5) / 0.25
        f = self.blocks(self.stem(x))
        out = self.cells(f)
        absent = self.absent(f.mean(dim=(2, 3)))
        boxes = out[:, 1:].flatten(2).transpose(1, 2)
        return torch.cat([out[:, 0].flatten(1), absent], dim=1), boxes


def load_finder(blob: dict) -> FaceFinder:
    """Build the finder from a loaded weight file (see ``models.weights.load_weights``)."""
    cfg = dict(blob["config"]["model"])
    cfg["dilations"] = tuple(cfg["dilations"])
    model = FaceFinder(FinderConfig(**cfg))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
