"""MTCNN face detection, with boxes mapped to crct's box convention.

Every network in crct works from the tight box of the 68 points (CRCT eq. 4). MTCNN's boxes
are larger and sit higher (forehead to chin), so a detection is mapped to the landmark box it
most likely holds with a fixed linear calibration, measured once on the 300-W training faces
(``crct_cli/train/calibrate.py``; median over faces matched to their detection).

Two implementations of facenet-pytorch's MTCNN (weights, thresholds 0.6 / 0.7 / 0.7, pyramid
factor 0.709, minimum face 20 px):

* :class:`FaceDetector` (``--backend torch``) is facenet-pytorch itself;
* :class:`MTCNNDetector` (``--backend onnx``) is :func:`detect_faces`, its ``detect_face``
  written again in numpy over any P-, R- and O-net (the ONNX graphs of the same weights), so
  that neither torch nor torchvision is imported. Every step is the same arithmetic in the same
  precision (float32): the pyramid sizes, the area resampling (``interpolate(mode='area')``,
  i.e. adaptive average pooling), the box generation, torchvision's NMS within each scale
  (IoU 0.5) and within the image (0.7), the refinement and squaring, the integer crops, and the
  final "Min" NMS, so the boxes agree with facenet-pytorch's to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from crct_cli.errors import OptionError

if TYPE_CHECKING:
    import torch

#: Landmark box = (x + DX*w, y + DY*h, SW*w, SH*h) of an MTCNN box (x, y, w, h).
MTCNN_TO_LANDMARK_BOX = (0.003, 0.2564, 1.0224, 0.7606)  # 416 of 419 faces matched
#: facenet-pytorch's defaults, which crct uses.
THRESHOLDS = (0.6, 0.7, 0.7)
#: The most confident detections kept (facenet-pytorch's examples keep 0.9 and above).
MIN_SCORE = 0.9
#: A second, more sensitive look used only to re-find a lost face (``Detect(relaxed=True)``):
#: blur, noise and darkness lower MTCNN's scores on a real face long before they lower them
#: on background, and a re-detection is still gated by eq. 8 and checked by FV.
RELAXED_THRESHOLDS = (0.5, 0.6, 0.6)
RELAXED_MIN_SCORE = 0.7
PYRAMID_FACTOR = 0.709
#: the smallest face MTCNN looks for, px (facenet-pytorch's default; ``--min-face``)
MIN_FACE = 20
#: the smallest ``min_face`` taken: MTCNN's P-net reads 12-px windows, so a smaller face means
#: an upsampled pyramid (a 1080p frame four times its size at 6 px)
MIN_FACE_LEAST = 12


#: ``min_face``: pixels (an int), or a share of each frame's shorter side ("5%")
MinFace = int | str


def check_min_face(min_face: Any) -> MinFace:
    """``--min-face`` / ``min_face``: the smallest face MTCNN looks for, whole pixels >= 12, or
    ``"N%"`` of each frame's shorter side (0 < N <= 100), so one setting suits an archive of
    360p and 4K video alike. Returns the value in one spelling (``20``, ``"5%"``): resume
    settings and ``track.json`` compare and record it as given."""
    if isinstance(min_face, str):
        text = min_face.strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1])
            except ValueError:
                share = float("nan")
            if not 0 < share <= 100:  # NaN too
                raise OptionError(
                    "min_face", f"must be a share in (0, 100]% of the frame, got {min_face!r}"
                )
            return f"{share:g}%"
        try:
            min_face = int(text)
        except ValueError:
            raise OptionError(
                "min_face",
                f"must be whole pixels (e.g. 40) or a share of the frame's shorter side "
                f"(e.g. 5%), got {min_face!r}",
            ) from None
    if isinstance(min_face, bool) or not isinstance(min_face, int | np.integer):
        raise OptionError(
            "min_face",
            f"must be whole pixels (e.g. 40) or a share of the frame's shorter side "
            f'(e.g. "5%"), got {min_face!r}',
        )
    if min_face < MIN_FACE_LEAST:
        raise OptionError(
            "min_face", f"must be >= {MIN_FACE_LEAST} px (MTCNN's window), got {min_face}"
        )
    return int(min_face)


def min_face_pixels(min_face: MinFace, height: int, width: int) -> int:
    """A checked ``min_face`` in pixels of a ``height`` x ``width`` frame: a share of its
    shorter side, rounded, never under MTCNN's 12-px window."""
    if isinstance(min_face, str):
        share = float(min_face[:-1]) / 100.0
        return max(MIN_FACE_LEAST, round(share * min(height, width)))
    return int(min_face)


#: :func:`stretch_contrast`: each channel's levels from this percentile to its complement ...
STRETCH_PERCENTILE = 1.0
#: ... are spread over 0-255, but never by more than 255 / this span (noise is not amplified
#: without limit in a flat frame).
STRETCH_MIN_SPAN = 16.0


def stretch_contrast(image: np.ndarray) -> np.ndarray:
    """The frame with each colour channel stretched from its 1st to its 99th percentile to
    0-255: a white balance and a contrast stretch in one. MTCNN normalises its input to a fixed
    range, so a washed-out or colour-cast face keeps too little contrast for it (synthetic
    category 3: the plain and sensitive looks found a clearly visible face in 7 of 90 frames of
    one sequence, this frame in 37), while FLL and FV standardise each crop themselves."""
    x = image.astype(np.float32)
    lo = np.percentile(x, STRETCH_PERCENTILE, axis=(0, 1))
    hi = np.percentile(x, 100.0 - STRETCH_PERCENTILE, axis=(0, 1))
    scale = 255.0 / np.maximum(hi - lo, STRETCH_MIN_SPAN)
    return np.clip((x - lo) * scale, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (x, y, w, h), landmark-box convention
    raw_box: np.ndarray  # (x, y, w, h) as MTCNN gave it
    score: float


def mtcnn_to_landmark_box(
    raw: np.ndarray, calib: tuple[float, ...] = MTCNN_TO_LANDMARK_BOX
) -> np.ndarray:
    x, y, w, h = raw
    dx, dy, sw, sh = calib
    return np.array([x + dx * w, y + dy * h, sw * w, sh * h], dtype=np.float64)


def to_detections(boxes: np.ndarray, probs: np.ndarray, min_score: float) -> list[Detection]:
    """MTCNN's (x1, y1, x2, y2) boxes and probabilities -> detections, most confident first."""
    out = []
    for (x1, y1, x2, y2), p in zip(boxes, probs, strict=True):
        if p < min_score or x2 <= x1 or y2 <= y1:
            continue
        raw = np.array([x1, y1, x2 - x1, y2 - y1])
        out.append(Detection(mtcnn_to_landmark_box(raw), raw, float(p)))
    return sorted(out, key=lambda d: -d.score)


class FaceDetector:
    """facenet-pytorch's MTCNN over RGB uint8 frames; returns detections sorted by confidence."""

    def __init__(self, device: torch.device | str = "cpu", min_face: MinFace = MIN_FACE) -> None:
        import torch
        from facenet_pytorch import MTCNN

        self.min_face = check_min_face(min_face)
        self.mtcnn = MTCNN(keep_all=True, device=torch.device(device), min_face_size=MIN_FACE)

    def __call__(
        self,
        image: np.ndarray,
        min_score: float = MIN_SCORE,
        thresholds: tuple[float, float, float] = THRESHOLDS,
    ) -> list[Detection]:
        import torch

        height, width = image.shape[:2]
        pixels = min_face_pixels(self.min_face, height, width)
        if not pyramid_scales(height, width, pixels, PYRAMID_FACTOR):
            return []  # smaller than the smallest face (facenet-pytorch would fail on no scale)
        self.mtcnn.min_face_size = pixels
        self.mtcnn.thresholds = list(thresholds)
        with torch.inference_mode():
            boxes, probs = self.mtcnn.detect(np.ascontiguousarray(image))
        if boxes is None:
            return []
        # facenet-pytorch 2.5 returns object arrays under numpy 2: make them plain floats
        boxes = np.asarray(np.stack([np.asarray(b, dtype=np.float64) for b in boxes]))
        probs = np.asarray([float(p) for p in probs])
        return to_detections(boxes, probs, min_score)


# --------------------------------------------------------------------------- numpy MTCNN


class MTCNNNets(Protocol):
    """P-, R- and O-net on float32 (N, 3, H, W): each -> (box regression, probabilities
    (N, 2, ...)), as facenet-pytorch's modules return them."""

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _bins(starts: np.ndarray, sizes: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling's bins over (K,) ranges [start, start + size): (K, out) starts
    floor(i*size/out) and ends ceil((i+1)*size/out), offset by ``starts``."""
    i = np.arange(out)
    lo = (i[None] * sizes[:, None]) // out
    hi = -((-(i[None] + 1) * sizes[:, None]) // out)
    return lo + starts[:, None], hi + starts[:, None]


#: the largest sum an int32 integral image holds: a uint8 picture of up to this / 255 pixels
#: (3840 x 2160 UHD, not DCI 4K's 4096 x 2160) is summed in int32, a larger one in float64
_INT32_MAX = 2**31 - 1


def integral_image(image: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1, C) sums of an integer-valued (H, W, C) picture over every top-left
    rectangle, first row and column 0, each sum exact.

    Why: this is the detector's cost that grows with the frame. A uint8 frame is summed by
    ``cv2.integral`` (a 4K frame in about 35 ms, where numpy's two cumulative sums into a
    strided view took 0.4-3 s here) and in int32 where no sum can pass 2**31 - 1: half the
    memory of float64 (100 MB at 4K, not 200) and about half the time of every resampling
    from it. Sums are whole numbers either way, so every resampled value is the same."""
    h, w, c = image.shape
    if image.dtype == np.uint8 and 0 < c <= 4:
        depth = cv2.CV_32S if h * w * 255 <= _INT32_MAX else cv2.CV_64F
        return cv2.integral(np.ascontiguousarray(image), sdepth=depth).reshape(h + 1, w + 1, c)
    integral = np.zeros((h + 1, w + 1, c))
    np.cumsum(image, axis=0, dtype=np.float64, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return integral


class AreaSampler:
    """``interpolate(mode='area')`` (adaptive average pooling) of rectangles of one
    integer-valued (H, W, C) picture, from its integral image (:func:`integral_image`): the
    sums are exact, then divided in float32 by the bin's height and then its width, as PyTorch
    does. One integral image serves the whole pyramid and every crop of the later stages."""

    def __init__(self, image: np.ndarray) -> None:
        h, w, _ = image.shape
        self.height, self.width = h, w
        self.integral = integral_image(image)

    def resize(self, rects: np.ndarray, height: int, width: int) -> np.ndarray:
        """(K, 4) int rectangles (top, bottom, left, right), bottom and right exclusive ->
        float32 (K, C, height, width)."""
        rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
        r0, r1 = _bins(rects[:, 0], rects[:, 1] - rects[:, 0], height)
        c0, c1 = _bins(rects[:, 2], rects[:, 3] - rects[:, 2], width)
        r0, r1, c0, c1 = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]
        s = self.integral
        sums = (s[r1, c1] - s[r0, c1]) - (s[r1, c0] - s[r0, c0])  # (K, height, width, C)
        out = sums.astype(np.float32) / (r1 - r0).astype(np.float32)[..., None]
        out = out / (c1 - c0).astype(np.float32)[..., None]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def whole(self, height: int, width: int) -> np.ndarray:
        """The whole picture at (height, width): float32 (1, C, height, width)."""
        return self.resize(np.array([[0, self.height, 0, self.width]]), height, width)


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``interpolate(mode='area')`` of an integer-valued (H, W, C) picture -> float32
    (C, height, width)."""
    return AreaSampler(image).whole(height, width)[0]


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x - np.float32(127.5)) * np.float32(0.0078125)


def pyramid_scales(height: int, width: int, min_face: int, factor: float) -> list[float]:
    m = 12.0 / min_face
    minl = min(height, width) * m
    scales, scale = [], m
    while minl >= 12:
        scales.append(scale)
        scale *= factor
        minl *= factor
    return scales


def generate_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-net's map -> candidate rows (x1, y1, x2, y2, score, 4 regression values), float32."""
    ys, xs = np.nonzero(prob >= np.float32(threshold))
    score = prob[ys, xs]
    bb = np.stack([xs, ys], axis=1).astype(np.float32)
    s = np.float32(scale)
    q1 = np.floor((np.float32(2) * bb + np.float32(1)) / s)
    q2 = np.floor((np.float32(2) * bb + np.float32(12)) / s)
    return np.concatenate([q1, q2, score[:, None], reg[:, ys, xs].T], axis=1).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision's ``nms`` (float32 IoU, greedy in stable descending score order)."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    zero = np.float32(0)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou.astype(np.float64) > threshold)]
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy`` with the "Min" overlap (its last step), verbatim."""
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[0:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        overlap = (w * h) / np.minimum(area[i], area[idx])
        order = order[np.where(overlap <= threshold)]
    return np.asarray(pick, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``rerec``: each box to the square of its longer side, same centre."""
    boxes = boxes.copy()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    boxes[:, 1] = boxes[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``bbreg``: move each edge by its regression times the box side."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + np.float32(1)
    h = boxes[:, 3] - boxes[:, 1] + np.float32(1)
    boxes[:, 0] = boxes[:, 0] + reg[:, 0] * w
    boxes[:, 1] = boxes[:, 1] + reg[:, 1] * h
    boxes[:, 2] = boxes[:, 2] + reg[:, 2] * w
    boxes[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return boxes


def crops_of(sampler: AreaSampler, boxes: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """facenet-pytorch's ``pad`` + crop + area resize: (normalised crops (K, 3, side, side),
    mask of the boxes that have pixels in the image)."""
    b = np.trunc(boxes[:, :4]).astype(np.int32)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], sampler.width), np.minimum(b[:, 3], sampler.height)
    valid = (ey > y - 1) & (ex > x - 1)
    rects = np.stack([y - 1, ey, x - 1, ex], axis=1)[valid]
    return _normalise(sampler.resize(rects, side, side)), valid


def detect_faces(
    image: np.ndarray,
    nets: MTCNNNets,
    min_face: int = MIN_FACE,
    thresholds: tuple[float, float, float] = THRESHOLDS,
    factor: float = PYRAMID_FACTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """facenet-pytorch's ``detect_face`` for one RGB uint8 image: (boxes (K, 4) x1, y1, x2, y2,
    probabilities (K,)), float32, largest box first as ``MTCNN.detect`` orders them."""
    empty = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    height, width = image.shape[:2]
    sampler = AreaSampler(image)
    # first stage: P-net over the pyramid, NMS per scale, then over all scales
    candidates = []
    for scale in pyramid_scales(height, width, min_face, factor):
        size = (int(height * scale + 1), int(width * scale + 1))
        reg, prob = nets.pnet(_normalise(sampler.whole(*size)))
        rows = generate_boxes(reg[0], prob[0, 1], scale, thresholds[0])
        candidates.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
    if not candidates:
        return empty
    rows = np.concatenate(candidates)
    rows = rows[nms(rows[:, :4], rows[:, 4], 0.7)]
    if len(rows) == 0:
        return empty
    regw, regh = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    boxes = np.stack(
        [
            rows[:, 0] + rows[:, 5] * regw,
            rows[:, 1] + rows[:, 6] * regh,
            rows[:, 2] + rows[:, 7] * regw,
            rows[:, 3] + rows[:, 8] * regh,
            rows[:, 4],
        ],
        axis=1,
    )
    boxes = square(boxes)
    # second stage: R-net on 24-px crops
    crops, valid = crops_of(sampler, boxes, 24)
    boxes = boxes[valid]
    if len(boxes) == 0:
        return empty
    reg, prob = nets.rnet(crops)
    keep = prob[:, 1] > np.float32(thresholds[1])
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    reg = reg[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = square(refine(boxes[pick], reg[pick]))
    if len(boxes) == 0:
        return empty
    # third stage: O-net on 48-px crops, then the "Min" NMS
    crops, valid = crops_of(sampler, boxes, 48)
    boxes = boxes[valid]
    if len(boxes) == 0:
        return empty
    reg, prob = nets.onet(crops)
    keep = prob[:, 1] > np.float32(thresholds[2])
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    boxes = refine(boxes, reg[keep])
    boxes = boxes[nms_min(boxes[:, :4], boxes[:, 4], 0.7)]
    if len(boxes) == 0:
        return empty
    order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
    boxes = boxes[order]
    return boxes[:, :4], boxes[:, 4]


class MTCNNDetector:
    """:func:`detect_faces` over RGB uint8 frames with any P/R/O-nets (ONNX Runtime's in crct);
    returns detections sorted by confidence, as :class:`FaceDetector` does."""

    def __init__(self, nets: MTCNNNets, min_face: MinFace = MIN_FACE) -> None:
        self.nets = nets
        self.min_face = check_min_face(min_face)

    def __call__(
        self,
        image: np.ndarray,
        min_score: float = MIN_SCORE,
        thresholds: tuple[float, float, float] = THRESHOLDS,
    ) -> list[Detection]:
        pixels = min_face_pixels(self.min_face, *image.shape[:2])
        boxes, probs = detect_faces(np.ascontiguousarray(image), self.nets, pixels, thresholds)
        return to_detections(boxes.astype(np.float64), probs.astype(np.float64), min_score)
