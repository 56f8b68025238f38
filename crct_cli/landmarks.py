"""The iBUG 68-point markup: index groups, flip permutation and box helpers."""

from __future__ import annotations

import numpy as np

N_POINTS = 68

#: BT's five region heads (CRCT III-A.2): silhouette, eyebrows, eyes, nose, lips.
REGIONS: dict[str, tuple[int, ...]] = {
    "contour": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "lips": tuple(range(48, 68)),
}

#: Horizontal flip: new index i takes old index FLIP_PERMUTATION[i].
FLIP_PERMUTATION: tuple[int, ...] = (
    tuple(range(16, -1, -1))
    + tuple(range(26, 16, -1))
    + (27, 28, 29, 30)
    + (35, 34, 33, 32, 31)
    + (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55)
    + (64, 63, 62, 61, 60, 67, 66, 65)
)

#: Outer eye corners, for inter-ocular normalisation.
OUTER_EYE_CORNERS = (36, 45)


def flip_points(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror (68, 2) points in an image of the given width, keeping the markup's semantics."""
    flipped = points[list(FLIP_PERMUTATION)].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped


def upright_frame(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side and angle (degrees) of the eye-levelled tight square around the points.

    This is the crop of FLL's second stage: rotating the face so the eyes are level removes
    in-plane rotation, the largest source of error left after the first stage, and the tight
    upright box gives the face more pixels than the axis-aligned box of a rotated face does.
    """
    points = np.asarray(points, dtype=np.float64)
    eye_line = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    angle = float(np.degrees(np.arctan2(eye_line[1], eye_line[0])))
    t = np.radians(angle)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # image -> upright
    centroid = points.mean(axis=0)
    upright = (points - centroid) @ rot.T
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    center = centroid + ((lo + hi) / 2.0) @ rot
    return center, float(max(hi - lo)), angle


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Tight box (x, y, w, h) of the points (CRCT eq. 4)."""
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)
