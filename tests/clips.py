"""Test clips made from real pictures (tests import them; no fixture here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mirrored_pair(path: Path, face: np.ndarray, n_frames: int) -> Path:
    """``face`` and its mirror image side by side, drifting towards each other two pixels a
    frame, always placed mirror-wise about the frame's middle (crct's own writer)."""
    from crct_cli.io.video import VideoWriter

    h, w = face.shape[:2]
    with VideoWriter(path, 25.0, 2 * w + 160, h + 40) as writer:
        for t in range(n_frames):
            canvas = np.full((h + 40, 2 * w + 160, 3), 40, dtype=np.uint8)
            canvas[20 : 20 + h, 20 + 2 * t : 20 + 2 * t + w] = face
            x = w + 140 - 2 * t
            canvas[20 : 20 + h, x : x + w] = face[:, ::-1]
            writer.write(canvas)
    return path
