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


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Tight box (x, y, w, h) of the points (CRCT eq. 4)."""
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)
