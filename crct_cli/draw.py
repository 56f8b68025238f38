"""Overlays: points, box and a state colour, drawn on a copy of an RGB frame."""

from __future__ import annotations

import cv2
import numpy as np

#: RGB colours per tracking state.
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "tracked": (40, 220, 40),
    "redetected": (255, 200, 0),
    "lost": (230, 40, 40),
}


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray | None,
    box: np.ndarray | None = None,
    state: str = "tracked",
    label: str | None = None,
) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    colour = STATE_COLOURS.get(state, (255, 255, 255))
    scale = max(1, round(min(out.shape[:2]) / 360))
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, scale, cv2.LINE_AA)
    if points is not None:
        for x, y in points:
            cv2.circle(out, (int(round(x)), int(round(y))), scale + 1, colour, -1, cv2.LINE_AA)
    if label:
        cv2.putText(
            out,
            label,
            (8, 12 + 12 * scale),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale,
            colour,
            scale,
            cv2.LINE_AA,
        )
    return out
