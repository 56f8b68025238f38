"""Overlays: points, box and a state colour, drawn on a copy of an RGB frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from crct_cli.pose import default_focal, euler_to_rotation

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
        _text(out, label, (8, 12 + 12 * scale), colour, scale)
    return out


def _text(out: np.ndarray, text: str, at: tuple[int, int], colour: tuple, scale: int) -> None:
    cv2.putText(out, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, colour, scale, cv2.LINE_AA)


#: RGB colours for face ids (cycled): distinct on dark and bright footage alike.
FACE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (40, 220, 40),
    (0, 170, 255),
    (255, 140, 0),
    (220, 60, 220),
    (255, 230, 40),
    (0, 230, 200),
    (170, 110, 255),
    (255, 90, 120),
)


#: the head's axes drawn with a pose: x red, y green, the way it faces blue (mm)
POSE_AXIS_MM = 60.0
POSE_COLOURS = ((230, 40, 40), (40, 220, 40), (40, 120, 255))


def pose_axes(pose: Any, width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Image points (4, 2) of the head's centre and the ends of its x, y and forward axes
    (:data:`POSE_AXIS_MM` long; forward is -z, towards the camera for a frontal face)."""
    pose = np.asarray(pose, dtype=np.float64)
    f = default_focal(width, height) if focal is None else focal
    axes = euler_to_rotation(pose[3:]) @ np.diag([1.0, 1.0, -1.0]) * POSE_AXIS_MM
    ends = np.vstack([pose[:3], pose[:3] + axes.T])
    ends[:, 2] = np.maximum(ends[:, 2], 1.0)  # never behind the camera
    return f * ends[:, :2] / ends[:, 2:] + [width / 2.0, height / 2.0]


def draw_faces(
    image: np.ndarray, faces: Sequence[Any], label: str | None = None, focal: float | None = None
) -> np.ndarray:
    """Every face in its own colour with its id; a lost face's points are hollow rings; a
    face with a pose gets its head's axes (``focal``: the camera's, as the pose was fitted)."""
    out = np.ascontiguousarray(image.copy())
    scale = max(1, round(min(out.shape[:2]) / 360))
    for face in faces:
        pose = getattr(face, "pose", None)
        if pose is not None:
            ends = np.round(pose_axes(pose, out.shape[1], out.shape[0], focal)).astype(int)
            for end, colour in zip(ends[1:], POSE_COLOURS, strict=True):
                cv2.line(out, tuple(ends[0]), tuple(end), colour, scale + 1, cv2.LINE_AA)
        colour = FACE_COLOURS[face.face_id % len(FACE_COLOURS)]
        lost = face.state == "lost"
        if face.box is not None:
            x, y, w, h = (int(round(v)) for v in face.box)
            cv2.rectangle(out, (x, y), (x + w, y + h), colour, scale, cv2.LINE_AA)
            text = f"#{face.face_id} {face.state}"
            if face.score is not None:
                text += f" p={face.score:.2f}"
            _text(out, text, (x, max(10 * scale, y - 4 * scale)), colour, scale)
        if face.points is not None:
            for px, py in face.points:
                centre = (int(round(px)), int(round(py)))
                cv2.circle(out, centre, scale + 1, colour, 1 if lost else -1, cv2.LINE_AA)
    if label:
        _text(out, label, (8, 12 + 12 * scale), (255, 255, 255), scale)
    return out
