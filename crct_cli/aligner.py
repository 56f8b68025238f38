"""Landmarks from boxes with FLL: crop, regress, map back (the still-image core of crct).

With a ``denoiser`` (FADeNN's IID as a :class:`crct_cli.models.fadenn.CropDenoiser`, or its
ONNX twin :class:`crct_cli.runtime.iid.CropIID`) the crops are cleaned, as one batch, before
FLL sees them: FADeNN = FLL(IID(I)).

The networks are called through :mod:`crct_cli.runtime` (PyTorch or ONNX Runtime, same numpy
interface); everything around them (crops, mirroring, blending, mapping back) is numpy, so this
module imports no backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crct_cli import geometry
from crct_cli.landmarks import FLIP_PERMUTATION, box_from_points, upright_frame

if TYPE_CHECKING:
    import torch

    from crct_cli.models.fadenn import CropDenoiser, FADeNN
    from crct_cli.models.fll import LandmarkLocalizer

#: uint8 crops (N, S, S, 3) -> uint8 crops of the same shape.
Denoiser = Callable[[np.ndarray], np.ndarray]
#: ``--denoise`` choices: plain FLL, or FADeNN with IID D, S or M.
DENOISE_CHOICES: tuple[str, ...] = ("none", "d", "s", "m")


@dataclass(frozen=True)
class AlignConfig:
    """``refine``: passes after the first. Each re-crops around the previous estimate: the
    second stage's eye-levelled crop when the aligner has one, else FLL again at the box of the
    estimate (the box FLL was trained on). ``flip`` averages with the mirrored crop (twice the
    cost, a little more accurate). ``blend`` returns the mean of the first pass and the last:
    two networks on two different crops err differently, so their mean is a small ensemble at no
    extra cost."""

    refine: int = 1
    flip: bool = False
    blend: bool = False


def as_localizer(model: Any, device: Any = "cpu") -> Any:
    """A runtime localizer as it is; a PyTorch ``LandmarkLocalizer`` wrapped into one."""
    if _is_torch_module(model):
        from crct_cli.runtime.torch_nets import TorchLocalizer

        return TorchLocalizer(model, device)
    return model


def _is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module``, read from its class alone: the networks load
    in threads, and one of them may be importing torch at this moment (half-initialised in
    ``sys.modules``, without ``torch.nn`` yet) while this one holds an ONNX localizer."""
    return any(
        c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
        for c in type(model).__mro__
    )


class Aligner:
    """FLL applied to (image, box) pairs; boxes are (x, y, w, h) tight boxes of the 68 points.

    ``model`` and ``refiner`` are localizers of :mod:`crct_cli.runtime` (uint8 crops -> crop
    units, with a ``config`` giving ``input_size`` and ``context``) or PyTorch
    ``LandmarkLocalizer`` modules, which are wrapped. ``refiner`` is FLL's second stage
    (``fll_stage2.pt``): a localiser trained on eye-levelled crops around a first estimate, used
    for the ``refine`` passes.
    """

    def __init__(
        self,
        model: Any,
        device: torch.device | str = "cpu",
        config: AlignConfig | None = None,
        denoiser: Denoiser | None = None,
        refiner: Any = None,
    ) -> None:
        self.model = as_localizer(model, device)
        self.refiner = None if refiner is None else as_localizer(refiner, device)
        self.device = device
        self.config = config or AlignConfig()
        self.denoiser = denoiser
        self.size = self.model.config.input_size
        self.context = self.model.config.context

    def _predict(self, crops: np.ndarray, model: Any, flip: bool | None = None) -> np.ndarray:
        """Crops -> points in crop pixels; with ``flip`` (None: the config's), averaged with
        the mirrored crops' (one batch of 2N)."""
        size = model.config.input_size
        if not (self.config.flip if flip is None else flip):
            out = model(crops)
        else:
            n = len(crops)
            both = model(np.concatenate([crops, crops[:, :, ::-1]]))
            mirrored = both[n:, list(FLIP_PERMUTATION)].copy()
            # the crop is mirrored about pixel (size - 1) / 2, i.e. x -> -x - 1/size in units
            mirrored[..., 0] = -mirrored[..., 0] - 1.0 / size
            out = 0.5 * (both[:n] + mirrored)
        return (out + 0.5) * size

    def _through(
        self,
        images: Sequence[np.ndarray],
        mats: list[np.ndarray],
        model: Any,
        flip: bool | None = None,
    ) -> np.ndarray:
        """Warp the crops (each from its own image), clean them (FADeNN), localise, and map
        the points back."""
        size = model.config.input_size
        batch = np.stack([geometry.warp(im, m, size) for im, m in zip(images, mats, strict=True)])
        if self.denoiser is not None:
            batch = self.denoiser(batch)
        pred = self._predict(batch, model, flip)
        return np.stack(
            [geometry.apply(geometry.invert(m), p) for m, p in zip(mats, pred, strict=True)]
        )

    def _once(
        self, images: Sequence[np.ndarray], boxes: np.ndarray, flip: bool | None = None
    ) -> np.ndarray:
        mats = []
        for box in boxes:
            center, side = geometry.box_center_size(box)
            mats.append(geometry.crop_matrix(center, side * self.context, self.size))
        return self._through(images, mats, self.model, flip)

    def _upright(
        self, images: Sequence[np.ndarray], points: np.ndarray, flip: bool | None = None
    ) -> np.ndarray:
        """The second stage: eye-levelled crops around the current estimates."""
        assert self.refiner is not None
        cfg = self.refiner.config
        mats = []
        for p in points:
            center, side, angle = upright_frame(p)
            mats.append(geometry.crop_matrix(center, side * cfg.context, cfg.input_size, angle))
        return self._through(images, mats, self.refiner, flip)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, flip: bool | None = None
    ) -> np.ndarray:
        """(N, 4) boxes -> (N, 68, 2) points in image pixels; ``flip`` overrides the
        config's mirrored pass for this call (the tracker asks for it on hard frames)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return self.align_many([image] * len(boxes), boxes, flip)

    def align_many(
        self, images: Sequence[np.ndarray], boxes: np.ndarray, flip: bool | None = None
    ) -> np.ndarray:
        """One box in each of N images -> (N, 68, 2) points: one batch through each stage
        (``crct train fv --fll-answers`` reads many training frames at once)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 68, 2))
        first = points = self._once(images, boxes, flip)
        for _ in range(self.config.refine):
            if self.refiner is not None:
                points = self._upright(images, points, flip)
            else:
                boxes = np.stack([box_from_points(p) for p in points])
                points = self._once(images, boxes, flip)
        if self.config.blend and self.config.refine > 0:
            points = 0.5 * (first + points)
        return points


#: How ``crct align`` (and the still-image benchmark) runs FLL by default: a still image can
#: afford the mirrored pass, which the tracker leaves out for speed; and its first pass starts
#: from the face's own box, so it is worth blending with the second stage's.
STILL_ALIGN = AlignConfig(flip=True, blend=True)
#: How ``crct track`` runs FLL by default (``--blend``): no mirrored pass, for speed, but the
#: blend of the two stages, which costs nothing and brought the tracker's points closer to the
#: truth, with fewer failures and less jitter, on the real videos and most synthetic sets
#: (docs/benchmarks.md).
TRACK_ALIGN = AlignConfig(blend=True)


def fadenn_aligner(
    model: FADeNN,
    device: torch.device | str = "cpu",
    config: AlignConfig | None = None,
    refiner: LandmarkLocalizer | None = None,
) -> tuple[Aligner, CropDenoiser]:
    """FADeNN's Aligner in PyTorch: its FLL, with its IID applied to the uint8 crops (one batch
    per pass)."""
    from crct_cli.models.fadenn import CropDenoiser

    denoiser = CropDenoiser(model.iid, device)
    return Aligner(model.fll, device, config, denoiser=denoiser, refiner=refiner), denoiser


def check_denoise(name: str) -> None:
    """Raise :class:`CrctError` unless ``name`` is one of :data:`DENOISE_CHOICES`."""
    from crct_cli.errors import OptionError

    if name not in DENOISE_CHOICES:
        raise OptionError("denoise", f"must be one of {', '.join(DENOISE_CHOICES)}, got {name!r}")


#: FLL's second stage, used by every aligner when the manifest lists it.
STAGE2_FILE = "fll_stage2.pt"
#: FLL's first stage for video (``crct train fll --motion-blur``): a face that moves while the
#: shutter is open is smeared, which the still-image first stage (``fll.pt``) reads worse. The
#: tracker's aligner uses it when the manifest lists it (``--video-fll``, on by default);
#: ``crct align`` never does.
VIDEO_FLL_FILE = "fll_video.pt"
#: ``crct track --video-fll``'s default
VIDEO_FLL = True


def load_stage2(folder: Path) -> tuple[LandmarkLocalizer | None, str | None]:
    """The second stage and its path, or ``(None, None)`` if the manifest does not list one.

    Once listed, a missing or corrupt file is an error naming it, never a silent fallback.
    """
    from crct_cli.models import weights
    from crct_cli.models.fll import load_localizer

    if STAGE2_FILE not in weights.read_manifest(folder).get("weights", {}):
        return None, None
    blob = weights.load_weights(folder / STAGE2_FILE, "fll", folder)
    return load_localizer(blob), blob["path"]


def build_aligner(
    denoise: str = "none",
    device: torch.device | str = "cpu",
    config: AlignConfig | None = None,
    weights_dir: Path | None = None,
    backend: str = "torch",
) -> tuple[Aligner, Any, dict[str, str]]:
    """The shipped aligner, FADeNN's denoiser (or None), and the weight files loaded by role.

    ``none``: ``fll.pt``. ``d``, ``s``, ``m``: ``fadenn_<v>.pt``, FADeNN's IID and FLL as fine-tuned
    together (III-D). Both add the second stage when shipped. A missing or corrupt file is a
    :class:`CrctError` naming it. ``backend`` torch, onnx or auto (:mod:`crct_cli.runtime`).
    """
    from crct_cli.runtime import Runtime

    check_denoise(denoise)
    return Runtime(backend, device, weights_dir).aligner(denoise, config)
