"""Whether a re-found face looks like the face that was followed: a cheap identity cue.

Eq. 8 takes the detection nearest the held box, and FV only says that there is *a* face. In
photographs of several people a face lost in a fast move is then sometimes re-found on its
neighbour (synthetic category 3: six of 147 re-detections in session 29's records, one of
them followed for 17 frames). Each face is kept as a small grey thumbnail of its eye-levelled
square (the second stage's crop, :func:`crct_cli.landmarks.upright_frame`), normalised to zero
mean and unit variance; two thumbnails are compared by their correlation (1: the same picture,
about 0: unrelated). The same face a few frames later, blurred, noisy or dimmed, kept
0.35-1.0 in 95% of those re-detections; a neighbour 0.05-0.55. No network and no download: a
24-px warp per accepted frame.

Off by default (``--likeness 0``): turning down a true re-detection costs as much as turning
down a neighbour gains, and which wins changed with the threshold from one sequence to the
next (docs/benchmarks.md, session 30), so there is no setting to recommend for unseen footage.
"""

from __future__ import annotations

import cv2
import numpy as np

from crct_cli import geometry
from crct_cli.landmarks import upright_frame

#: ``Tracker(likeness=...)``'s default, the least correlation a re-detected face's thumbnail
#: must have with the last followed one's: 0, no check (see above).
LIKENESS = 0.0

#: The thumbnail's side in pixels: coarse enough that blur, noise and small misplacement of
#: the points change it little, fine enough to tell two people apart.
THUMB_SIDE = 24


def face_thumbnail(image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The face's eye-levelled square as a (24, 24) float32 grey picture of mean 0 and
    variance 1; None where it is flat (a black frame, a face off the picture)."""
    center, side, angle = upright_frame(points)
    matrix = geometry.crop_matrix(center, side * 1.1, THUMB_SIDE, angle)
    crop = geometry.warp(np.ascontiguousarray(image), matrix, THUMB_SIDE)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    spread = float(grey.std())
    if spread < 1.0:
        return None
    return (grey - grey.mean()) / spread


def likeness(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Correlation of two thumbnails, in [-1, 1]; 1.0 (no evidence against) where either is
    missing."""
    if a is None or b is None:
        return 1.0
    return float((a * b).mean())
