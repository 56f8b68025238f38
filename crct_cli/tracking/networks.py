"""The shipped networks behind :class:`crct_cli.tracking.tracker.Networks`.

Loads only what a mode needs (MTCNN for detection, BT, FV, FLL), checks every weight file
against the manifest, runs on the CPU or CUDA, and keeps per-network timings for the
closing summary and ``crct benchmark --speed``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crct_cli import geometry
from crct_cli.aligner import AlignConfig, build_aligner
from crct_cli.errors import CrctError
from crct_cli.models.backbone import fuse_batchnorm
from crct_cli.models.bt import load_tracker
from crct_cli.models.fadenn import ClassSmoother
from crct_cli.models.fv import fv_crop, load_validator
from crct_cli.models.weights import WEIGHTS_DIR, load_weights
from crct_cli.tracking.detector import Detection, FaceDetector


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CrctError("--device cuda: no CUDA device is available here (use cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise CrctError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


class _Timer:
    def __init__(self, sink: dict[str, list[float]], name: str) -> None:
        self.sink, self.name = sink, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.name].append(time.perf_counter() - self.t0)


#: Weight of past calls in the tracked face's noise class (as ``crct denoise --smoothing``).
TRACK_SMOOTHING = 0.8


class CRCTNetworks:
    """MTCNN + BT + FV + FLL on one device; with ``denoise`` d, s or m, FADeNN in FLL's place."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        mode: str = "crct",
        weights_dir: Path = WEIGHTS_DIR,
        align: AlignConfig | None = None,
        denoise: str = "none",
        denoise_smoothing: float = TRACK_SMOOTHING,
        backend: str = "auto",
    ) -> None:
        self.device = torch.device(device)
        self.weights_dir = weights_dir
        self.backend = backend
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.weight_files: dict[str, str] = {}
        # FLL (with its second stage when shipped), or FADeNN: its IID is timed apart as "iid"
        self.aligner, denoiser, files = build_aligner(
            denoise, self.device, align or AlignConfig(), weights_dir
        )
        self.weight_files.update(files)
        if denoiser is not None:
            # one tracked face: its noise class is decided over frames, so it does not flicker
            # (0 for unrelated images, as in the still-image benchmark)
            if denoise_smoothing > 0:
                denoiser.smoother = ClassSmoother(denoise_smoothing)
            self.aligner.denoiser = self._timed(denoiser, "iid")
        self.bt = self.fv = None
        if mode in ("crct", "bt"):
            blob = load_weights(weights_dir / "bt.pt", "bt")
            self.weight_files["bt"] = blob["path"]
            self.bt = fuse_batchnorm(load_tracker(blob)).to(self.device)
        if mode == "crct":
            blob = load_weights(weights_dir / "fv.pt", "fv")
            self.weight_files["fv"] = blob["path"]
            self.fv = load_validator(blob).to(self.device)
        self.detector = FaceDetector(self.device)

    def _timed(self, fn: Callable[[np.ndarray], np.ndarray], name: str) -> Callable:
        def timed(x: np.ndarray) -> np.ndarray:
            with _Timer(self.timings, name):
                return fn(x)

        return timed

    def detect(self, image: np.ndarray) -> list[Detection]:
        with _Timer(self.timings, "detect"):
            return self.detector(image)

    # One face (the ``Networks`` protocol): a batch of one, so both paths give the same points.

    def localize(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        return self.localize_batch(image, box[None])[0]

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return float(self.validate_batch(image, points[None])[0])

    def bt_step(
        self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        points, states = self.bt_batch(prev, cur, box[None], [state])
        return points[0], states[0]

    # Every face of a frame at once (``crct_cli.tracking.multi.BatchNetworks``).

    def localize_batch(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        with _Timer(self.timings, "fll"):
            return self.aligner(image, boxes)

    @torch.inference_mode()
    def validate_batch(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        assert self.fv is not None
        with _Timer(self.timings, "fv"):
            crops, pts = zip(*(fv_crop(image, p, self.fv.config) for p in points), strict=True)
            x = torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2).float()
            p = torch.from_numpy(np.stack(pts)).to(self.device).float()
            return torch.sigmoid(self.fv(x / 255.0, p)).float().cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def bt_batch(
        self, prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, states: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        """BT for every track of a frame; ``states`` are per-track (h, c) pairs or None."""
        assert self.bt is not None
        cfg = self.bt.config
        with _Timer(self.timings, "bt"):
            mats = []
            for box in boxes:
                center, side = geometry.box_center_size(box)
                mats.append(geometry.crop_matrix(center, side * cfg.context, cfg.input_size))
            crops = np.stack(
                [geometry.warp(img, m, cfg.input_size) for img in (prev, cur) for m in mats]
            )
            x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            n = len(mats)
            pred, (h, c) = self.bt(x[:n], x[n:], self._stack_states(states))
            pts = (pred.float().cpu().numpy() + 0.5) * cfg.input_size
            out = np.stack(
                [geometry.apply(geometry.invert(m), p) for m, p in zip(mats, pts, strict=True)]
            )
            return out, [(h[:, i : i + 1], c[:, i : i + 1]) for i in range(n)]

    def _stack_states(self, states: list[Any]) -> Any:
        """Per-track LSTM states as one batch; a reset track (None) starts from zeros."""
        if all(s is None for s in states):
            return None
        assert self.bt is not None
        shape = (self.bt.config.lstm_layers, 1, self.bt.config.hidden)
        zeros = torch.zeros(shape, device=self.device)
        h = torch.cat([zeros if s is None else s[0] for s in states], dim=1)
        c = torch.cat([zeros if s is None else s[1] for s in states], dim=1)
        return h, c
