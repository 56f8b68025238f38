"""Landmarks from boxes with FLL: crop, regress, map back (the still-image core of crct)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crct_cli import geometry
from crct_cli.landmarks import FLIP_PERMUTATION, box_from_points
from crct_cli.models.fll import LandmarkLocalizer


@dataclass(frozen=True)
class AlignConfig:
    """``refine`` re-crops at the box of the first estimate (the box FLL was trained on);
    ``flip`` averages with the mirrored crop (twice the cost, a little more accurate)."""

    refine: int = 1
    flip: bool = False


class Aligner:
    """FLL applied to (image, box) pairs; boxes are (x, y, w, h) tight boxes of the 68 points."""

    def __init__(
        self,
        model: LandmarkLocalizer,
        device: torch.device | str = "cpu",
        config: AlignConfig | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.config = config or AlignConfig()
        self.size = model.config.input_size
        self.context = model.config.context

    @torch.inference_mode()
    def _predict(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if not self.config.flip:
            out = self.model(x)
        else:
            both = self.model(torch.cat([x, x.flip(3)]))
            n = x.shape[0]
            mirrored = both[n:, list(FLIP_PERMUTATION)].clone()
            # the crop is mirrored about pixel (size - 1) / 2, i.e. x -> -x - 1/size in units
            mirrored[..., 0] = -mirrored[..., 0] - 1.0 / self.size
            out = 0.5 * (both[:n] + mirrored)
        return (out.float().cpu().numpy() + 0.5) * self.size

    def _once(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        mats, crops = [], []
        for box in boxes:
            center, side = geometry.box_center_size(box)
            m = geometry.crop_matrix(center, side * self.context, self.size)
            mats.append(m)
            crops.append(geometry.warp(image, m, self.size))
        pred = self._predict(np.stack(crops))
        return np.stack(
            [geometry.apply(geometry.invert(m), p) for m, p in zip(mats, pred, strict=True)]
        )

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) boxes -> (N, 68, 2) points in image pixels."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 68, 2))
        points = self._once(image, boxes)
        for _ in range(self.config.refine):
            points = self._once(image, np.stack([box_from_points(p) for p in points]))
        return points
