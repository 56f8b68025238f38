"""MTCNN face detection (facenet-pytorch), with boxes mapped to crct's box convention.

Every network in crct works from the tight box of the 68 points (CRCT eq. 4). MTCNN's boxes
are larger and sit higher (forehead to chin), so a detection is mapped to the landmark box it
most likely holds with a fixed linear calibration, measured once on the 300-W training faces
(``crct_cli/train/calibrate.py``; median over faces matched to their detection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Landmark box = (x + DX*w, y + DY*h, SW*w, SH*h) of an MTCNN box (x, y, w, h).
MTCNN_TO_LANDMARK_BOX = (0.003, 0.2564, 1.0224, 0.7606)  # 416 of 419 faces matched


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


class FaceDetector:
    """MTCNN over RGB uint8 frames; returns detections sorted by confidence."""

    def __init__(self, device: torch.device | str = "cpu", min_face: int = 20) -> None:
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(keep_all=True, device=torch.device(device), min_face_size=min_face)

    def __call__(self, image: np.ndarray, min_score: float = 0.9) -> list[Detection]:
        with torch.inference_mode():
            boxes, probs = self.mtcnn.detect(np.ascontiguousarray(image))
        if boxes is None:
            return []
        # facenet-pytorch 2.5 returns object arrays under numpy 2: make them plain floats
        boxes = np.asarray(np.stack([np.asarray(b, dtype=np.float64) for b in boxes]))
        probs = np.asarray([float(p) for p in probs])
        out = []
        for (x1, y1, x2, y2), p in zip(boxes, probs, strict=True):
            if p < min_score or x2 <= x1 or y2 <= y1:
                continue
            raw = np.array([x1, y1, x2 - x1, y2 - y1])
            out.append(Detection(mtcnn_to_landmark_box(raw), raw, float(p)))
        return sorted(out, key=lambda d: -d.score)
