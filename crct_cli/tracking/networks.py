"""The shipped networks behind :class:`crct_cli.tracking.tracker.Networks` and the batched
calls of :class:`crct_cli.tracking.multi.BatchNetworks`.

Loads only what a mode needs (MTCNN for detection, BT, FV, FLL), checks every weight file
against the manifest, runs through :class:`crct_cli.runtime.Runtime` (PyTorch or ONNX Runtime,
CPU or CUDA: decided there, never here), and keeps per-network timings for the closing summary
and ``crct benchmark --speed``. Nothing here imports torch: on the ONNX backend it never loads.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli import geometry
from crct_cli.aligner import TRACK_ALIGN, VIDEO_FLL, AlignConfig
from crct_cli.errors import OptionError
from crct_cli.models.weights import WEIGHTS_DIR
from crct_cli.runtime import Runtime, split_state, stack_states
from crct_cli.runtime.backend import no_cuda
from crct_cli.runtime.nets import FINDER_WIDE, check_find_wide, find_faces, fv_crop
from crct_cli.tracking.detector import (
    MIN_FACE,
    RELAXED_MIN_SCORE,
    RELAXED_THRESHOLDS,
    Detection,
    MinFace,
    check_min_face,
    stretch_contrast,
)
from crct_cli.tracking.tracker import FIND, STRETCHED_LOOK, check_bt_reuse


def finder_shipped(weights_dir: Path) -> bool:
    """Whether the manifest in ``weights_dir`` lists the face finder."""
    from crct_cli.models.weights import read_manifest

    return "finder.pt" in read_manifest(weights_dir).get("weights", {})


def resolve_device(name: str) -> Any:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error.

    Returns a ``torch.device`` (for the training and torch-only code paths).
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise no_cuda()
    if name not in ("cpu", "cuda"):
        raise OptionError("device", f"must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


#: How many of a network's latest calls :class:`CallTimes` keeps the seconds of: a webcam's
#: step() loop or a long-lived Tracker calls them for hours (~4 a frame, 14 MB an hour at
#: 30 fps when every one was kept); the count and the total still cover every call.
TIMINGS_KEPT = 10_000


class CallTimes(list[float]):
    """One network's seconds per call: the latest :data:`TIMINGS_KEPT` to
    2 x :data:`TIMINGS_KEPT` of them (a list, for a median), and ``calls`` and ``seconds``
    over every call since it was made (a closing table's count and mean)."""

    def __init__(self, seconds: Iterable[float] = ()) -> None:
        super().__init__(seconds)
        self.calls = len(self)
        self.seconds = float(sum(self))

    def append(self, seconds: float) -> None:
        super().append(seconds)
        self.calls += 1
        self.seconds += seconds
        if len(self) >= 2 * TIMINGS_KEPT:  # halved at once: no shift of the list a call
            del self[:TIMINGS_KEPT]

    def copy(self) -> CallTimes:
        """A record of its own, its count and total too."""
        twin = CallTimes(self)
        twin.calls, twin.seconds = self.calls, self.seconds
        return twin


def new_timings() -> defaultdict[str, list[float]]:
    """Each network's :class:`CallTimes`, made at its first call."""
    return defaultdict(CallTimes)


class _Timer:
    def __init__(self, sink: dict[str, list[float]], name: str) -> None:
        self.sink, self.name = sink, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.name].append(time.perf_counter() - self.t0)


#: Weight of past calls in the tracked face's noise class (as ``crct denoise --smoothing``).
TRACK_SMOOTHING = 0.8


@dataclass
class CutCrops:
    """BT's current crops of the last frame: the frame, the box each was cut around (image
    pixels, x y w h; the crop is Re3's square around it) and the crops' features."""

    image: np.ndarray
    boxes: list[np.ndarray]
    features: np.ndarray

    def match(self, box: np.ndarray, tolerance: float) -> int | None:
        """The crop cut at a box that differs from ``box`` by less than ``tolerance`` of its
        side, in centre (either axis) and side; the closest such, or None."""
        center, side = geometry.box_center_size(box)
        best, best_gap = None, tolerance
        for j, cut in enumerate(self.boxes):
            c, s = geometry.box_center_size(cut)
            gap = max(float(np.max(np.abs(center - c))), abs(side - s)) / s
            if gap < best_gap:
                best, best_gap = j, gap
        return best


class CRCTNetworks:
    """MTCNN + BT + FV + FLL on one engine; with ``denoise`` d, s or m, FADeNN in FLL's place.

    ``backend`` auto|torch|onnx and ``device`` auto|cpu|cuda are resolved by the runtime (auto:
    ONNX Runtime on the CPU, PyTorch on CUDA); ``threads`` caps ONNX Runtime's threads;
    ``int8`` runs BT and FLL's first stage on their int8 graphs where there are some (ONNX
    Runtime on the CPU, :mod:`crct_cli.runtime.int8`). ``align``: how FLL runs (default
    :data:`~crct_cli.aligner.TRACK_ALIGN`, its two stages blended).

    ``bt_reuse``: BT cuts the previous and the current frame at one box, so the previous
    frame's crop is usually cut twice, once as the current crop and once, at the box FLL then
    found, as the next frame's previous crop. When that box differs from the one the current
    crop was cut at by less than ``bt_reuse`` of its side (in centre and in size), BT cuts the
    next frame at the earlier box instead and reuses that crop's features: half of BT's trunk
    on most frames of real video (0: never; the paper's crops).

    ``stretched_look``: the sensitive look (``detect(relaxed=True)``), when it finds nothing,
    looks once more at the frame with its colours stretched
    (:func:`~crct_cli.tracking.detector.stretch_contrast`): a washed-out or colour-cast face.

    ``find``: load the face finder (``finder.pt``) for :meth:`find`; weights that have none
    leave it off, with a warning. ``find_wide``: where the finder's window holds no face, it
    looks again at a window this many times as wide (0: no second look).

    ``video_fll``: FLL's first stage is the one trained on smeared faces too
    (:data:`~crct_cli.aligner.VIDEO_FLL_FILE`) where the weights ship one; False: ``fll.pt``,
    as ``crct align`` runs it.

    ``min_face``: the smallest face MTCNN looks for, in pixels of the frame, or ``"N%"`` of its
    shorter side (its pyramid starts at 12 / that size): larger is faster on large frames and
    leaves smaller faces unfound.
    """

    def __init__(
        self,
        device: Any = "auto",
        mode: str = "crct",
        weights_dir: Path = WEIGHTS_DIR,
        align: AlignConfig | None = None,
        denoise: str = "none",
        denoise_smoothing: float = TRACK_SMOOTHING,
        backend: str = "auto",
        threads: int | None = None,
        int8: bool = False,
        bt_reuse: float = 0.0,
        stretched_look: bool = STRETCHED_LOOK,
        find: bool = FIND,
        find_wide: float = FINDER_WIDE,
        video_fll: bool = VIDEO_FLL,
        min_face: MinFace = MIN_FACE,
    ) -> None:
        check_bt_reuse(bt_reuse)
        min_face = check_min_face(min_face)
        check_find_wide(find_wide)
        if find and mode == "crct" and not finder_shipped(weights_dir):
            # a weights folder from before the finder (or a user's own): track without it
            warnings.warn(
                f"no face finder in {weights_dir} (finder.pt, made by crct train finder): "
                "lost faces are looked for with MTCNN alone",
                stacklevel=2,
            )
            find = False
        self.bt_reuse = bt_reuse
        self.stretched_look = stretched_look
        self.find_wide = find_wide
        self.cut: CutCrops | None = None  #: BT's current crops of the last frame
        self.runtime = Runtime(backend, device, weights_dir, threads)
        self.engine = self.runtime.engine
        self.device = self.engine.device
        self.backend = self.engine.backend
        self.weights_dir = weights_dir
        #: seconds per call of each network (:class:`CallTimes`: the latest, bounded)
        self.timings: dict[str, list[float]] = new_timings()
        rt = self.runtime
        # FLL (with its second stage when shipped), or FADeNN: its IID is timed apart as "iid";
        # every network at once (ONNX Runtime opens its sessions in threads)
        (self.aligner, denoiser, _), self.bt, self.fv, self.detector = rt.load_together(
            lambda: rt.aligner(denoise, align or TRACK_ALIGN, int8, video=video_fll),
            lambda: rt.tracker(int8=int8) if mode in ("crct", "bt") else None,
            lambda: rt.validator() if mode == "crct" else None,
            lambda: rt.detector(min_face),
        )
        self._denoiser = denoiser
        #: the face finder (``find``)
        self.finder = rt.finder() if find and mode == "crct" else None
        if denoiser is not None:
            # one tracked face: its noise class is decided over frames, so it does not flicker
            # (0 for unrelated images, as in the still-image benchmark)
            if denoise_smoothing > 0:
                from crct_cli.runtime.iid import ClassSmoother

                denoiser.smoother = ClassSmoother(denoise_smoothing)
            self.aligner.denoiser = self._timed(denoiser, "iid")

    @property
    def weight_files(self) -> dict[str, str]:
        """Role -> path of crct's own weight files loaded (MTCNN's ship with its package)."""
        return {k: v for k, v in self.runtime.weight_files.items() if not k.startswith("mtcnn")}

    def _timed(self, fn: Callable[[np.ndarray], np.ndarray], name: str) -> Callable:
        def timed(x: np.ndarray) -> np.ndarray:
            with _Timer(self.timings, name):
                return fn(x)

        return timed

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        """MTCNN's faces; ``relaxed``: its more sensitive settings, to re-find a lost face,
        on the frame and then (``stretched_look``) on its colours stretched."""
        with _Timer(self.timings, "detect"):
            if not relaxed:
                return self.detector(image)
            found = self.detector(image, RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
            if found or not self.stretched_look:
                return found
            return self.detector(stretch_contrast(image), RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)

    def find(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """The face finder's look around one last box (``[]`` without a finder)."""
        return self.find_batch(image, np.asarray(box, np.float64)[None])[0]

    def find_batch(self, image: np.ndarray, boxes: np.ndarray) -> list[list[Detection]]:
        """The face finder's look around each last box, in one batch."""
        if self.finder is None:
            return [[] for _ in boxes]
        with _Timer(self.timings, "find"):
            return find_faces(self.finder, image, boxes, wide=self.find_wide)

    # One face (the ``Networks`` protocol): a batch of one, so both paths give the same points.

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return self.localize_batch(image, box[None], mirrored)[0]

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return float(self.validate_batch(image, points[None])[0])

    def bt_step(
        self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        points, states = self.bt_batch(prev, cur, box[None], [state])
        return points[0], states[0]

    # Every face of a frame at once (``crct_cli.tracking.multi.BatchNetworks``).

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Calls that must leave the video's own run as it was (``--backtrack``'s backward
        pass over frames already tracked): BT's reusable crops of the last frame and the
        denoiser's class average over frames are put back afterwards."""
        cut = self.cut
        smoother = getattr(self._denoiser, "smoother", None)
        state = None if smoother is None else smoother.state
        try:
            yield
        finally:
            self.cut = cut
            if smoother is not None:
                smoother.state = state

    def localize_batch(
        self, image: np.ndarray, boxes: np.ndarray, mirrored: bool = False
    ) -> np.ndarray:
        """FLL in each box; ``mirrored``: with its mirrored pass too, whatever ``--flip`` says
        (``TrackerConfig.lost_flip``)."""
        with _Timer(self.timings, "fll"):
            return self.aligner(image, boxes, True if mirrored else None)

    def validate_batch(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        assert self.fv is not None
        with _Timer(self.timings, "fv"):
            crops, pts = zip(*(fv_crop(image, p, self.fv.config) for p in points), strict=True)
            probs = self.fv.probabilities(np.stack(crops), np.stack(pts).astype(np.float32))
            return np.asarray(probs, dtype=np.float64)

    def bt_batch(
        self, prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, states: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        """BT for every track of a frame; ``states`` are per-track (h, c) pairs or None.

        With ``bt_reuse``, a box close enough to one of the last frame's crops is replaced by
        that crop's box, whose features stand for the previous crop (see the class)."""
        assert self.bt is not None
        cfg = self.bt.config
        with _Timer(self.timings, "bt"):
            last = self.cut if self.cut is not None and self.cut.image is prev else None
            reused: list[int | None] = [
                None if last is None or self.bt_reuse <= 0 else last.match(b, self.bt_reuse)
                for b in boxes
            ]
            cut = [  # (j is None wherever last is)
                b if j is None or last is None else last.boxes[j]
                for b, j in zip(boxes, reused, strict=True)
            ]
            mats = []
            for box in cut:
                center, side = geometry.box_center_size(box)
                mats.append(geometry.crop_matrix(center, side * cfg.context, cfg.input_size))
            fresh = [i for i, j in enumerate(reused) if j is None]
            crops = [geometry.warp(prev, mats[i], cfg.input_size) for i in fresh]
            crops += [geometry.warp(cur, m, cfg.input_size) for m in mats]
            feats = self.bt.features(np.stack(crops))
            prev_feats = np.empty((len(boxes), feats.shape[1]), feats.dtype)
            prev_feats[fresh] = feats[: len(fresh)]
            for i, j in enumerate(reused):
                if j is not None:
                    assert last is not None
                    prev_feats[i] = last.features[j]
            cur_feats = feats[len(fresh) :]
            units, state = self.bt.head(prev_feats, cur_feats, stack_states(states, cfg))
            if self.bt_reuse > 0:
                self.cut = CutCrops(cur, [np.asarray(b) for b in cut], cur_feats)
            pts = (units + 0.5) * cfg.input_size  # float32, as the networks give it
            out = np.stack(
                [geometry.apply(geometry.invert(m), p) for m, p in zip(mats, pts, strict=True)]
            )
            return out, split_state(state)
