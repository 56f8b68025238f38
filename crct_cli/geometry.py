"""Square crops around a box as similarity transforms, shared by training and inference.

Every network sees a face through :func:`crop_matrix`, so the geometry learnt in training is
exactly the geometry met at run time. Points are mapped into the crop with the same matrix and
mapped back with its inverse.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from crct_cli.errors import OptionError
from crct_cli.landmarks import upright_frame


def box_center_size(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side of the square that a crop takes from box (x, y, w, h): max(w, h)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + w / 2.0, y + h / 2.0]), max(w, h, 1.0)


def crop_matrix(
    center: np.ndarray,
    side: float,
    out_size: int,
    angle_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """2x3 affine map from image pixels to crop pixels.

    The square of ``side`` pixels centred on ``center`` (optionally rotated by ``angle_deg``,
    counter-clockwise in the image, and mirrored) fills the ``out_size`` crop.
    """
    scale = out_size / side
    theta = np.deg2rad(angle_deg)
    c, s = np.cos(theta) * scale, np.sin(theta) * scale
    linear = np.array([[c, s], [-s, c]])
    if flip:
        linear = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ linear
    half = (out_size - 1) / 2.0
    offset = np.array([half, half]) - linear @ np.asarray(center, dtype=np.float64)
    return np.hstack([linear, offset[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a 2x3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(
    image: np.ndarray, matrix: np.ndarray, out_size: int, replicate: bool = False
) -> np.ndarray:
    """Crop with bilinear sampling; outside the image is black (as at the frame border), or
    with ``replicate`` its edge pixels carried on (as a photograph moved through a frame)."""
    return cv2.warpAffine(
        image,
        matrix,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def reachable_region(
    image: np.ndarray, center: np.ndarray, side: float, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The part of ``image`` a crop of ``side`` px around ``center`` can reach (turned, plus
    room for a blur's support), resized by ``scale`` (INTER_AREA when it shrinks), as FADeNN's
    noise classifier saw its faces: ``(region, origin, gain)``, an image point ``p`` being
    ``(p - origin) * gain`` in the region; None where the region is wholly outside."""
    half = 0.75 * side + 16.0 / scale
    h, w = image.shape[:2]
    x0, y0 = max(0, int(center[0] - half)), max(0, int(center[1] - half))
    x1, y1 = min(w, int(math.ceil(center[0] + half))), min(h, int(math.ceil(center[1] + half)))
    if x1 <= x0 or y1 <= y0:
        return None
    nw, nh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    region = cv2.resize(
        image[y0:y1, x0:x1],
        (nw, nh),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    ).reshape(nh, nw, 3)
    gain = np.array([nw / (x1 - x0), nh / (y1 - y0)])
    return region, np.array([x0, y0], dtype=np.float64), gain


def crop_box(
    image: np.ndarray, box: np.ndarray, context: float, out_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop the square of ``context`` x the box side around its centre; return (crop, matrix)."""
    center, side = box_center_size(box)
    m = crop_matrix(center, side * context, out_size)
    return warp(image, m, out_size), m


#: ``crct track --crops``: the crop's side around the eye-levelled tight square of the 68
#: points (brows to chin), so the forehead and jaw line are in and the background mostly out.
CROP_CONTEXT = 1.25


def check_crops(size: int) -> None:
    """``--crops`` is 0 (none) or a side of 16 to 1024 pixels."""
    if size != 0 and not 16 <= size <= 1024:
        raise OptionError("crops", f"must be 0 (none) or a side of 16 to 1024 pixels, got {size}")


def face_crop(image: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The face cut out as FLL's second stage sees it: rotated so the eyes are level, centred
    on the tight square of its points, that square's side times :data:`CROP_CONTEXT` scaled to
    ``size`` px (pixels outside the frame black). Returns (crop RGB, points in crop pixels)."""
    center, side, angle = upright_frame(points)
    matrix = crop_matrix(center, side * CROP_CONTEXT, size, angle)
    return warp(image, matrix, size), apply(matrix, np.asarray(points))


def in_frame_share(box: np.ndarray, width: int, height: int) -> float:
    """Share of an (x, y, w, h) box's area inside the frame [0, width] x [0, height]."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return 0.0
    iw = max(0.0, min(x + w, width) - max(x, 0.0))
    ih = max(0.0, min(y + h, height) - max(y, 0.0))
    return iw * ih / (w * h)
