"""Build samples/astronaut.mp4 and samples/astronaut.jpg from scikit-image's astronaut photo.

The photo (NASA, Eileen Collins; public domain) ships inside scikit-image, which is needed only
to run this script and is not a dependency of crct:

    .venv/bin/pip install scikit-image
    .venv/bin/python samples/make_sample.py

A virtual camera pans, zooms and rolls smoothly around the face for 3 s at 25 fps (360x360),
with a few frames of blur in the middle, so that a tracker has something non-trivial but
easy to follow. Everything is deterministic.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from crct_cli.io.images import write_image
from crct_cli.io.video import VideoWriter

HERE = Path(__file__).resolve().parent
SIZE = 360
FPS = 25
SECONDS = 3
FACE_CENTER = (225.0, 110.0)  # in the 512x512 photo
#: Frames blurred (Gaussian sigma in pixels), a short defocus in the middle of the clip.
BLUR = {36: 1.0, 37: 2.0, 38: 3.0, 39: 3.0, 40: 2.0, 41: 1.0}


def load_astronaut() -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is needed to build the sample: .venv/bin/pip install scikit-image")
    return np.ascontiguousarray(data.astronaut())  # (512, 512, 3) RGB uint8


def camera(t: float) -> tuple[float, float, float, float]:
    """Centre (x, y) in the photo, zoom and roll (degrees) of the virtual camera at time t."""
    phase = 2 * math.pi * t / SECONDS
    cx = FACE_CENTER[0] + 35 * math.sin(phase)
    cy = 148 + 12 * math.sin(2 * phase)
    zoom = 1.25 + 0.2 * (0.5 - 0.5 * math.cos(phase))
    roll = 8 * math.sin(phase + 0.6)
    return cx, cy, zoom, roll


def render(photo: np.ndarray, index: int) -> np.ndarray:
    cx, cy, zoom, roll = camera(index / FPS)
    matrix = cv2.getRotationMatrix2D((cx, cy), roll, zoom)
    matrix[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)  # put the camera centre mid-frame
    frame = cv2.warpAffine(
        photo, matrix, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    sigma = BLUR.get(index)
    if sigma:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: samples/)")
    args = parser.parse_args(argv)
    photo = load_astronaut()
    video_path = args.out / "astronaut.mp4"
    with VideoWriter(video_path, FPS, SIZE, SIZE) as writer:
        for index in range(FPS * SECONDS):
            writer.write(render(photo, index))
    still_path = args.out / "astronaut.jpg"
    write_image(still_path, photo)
    for path in (video_path, still_path):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"video codec: {writer.codec}, {FPS * SECONDS} frames, {SIZE}x{SIZE} at {FPS} fps")


if __name__ == "__main__":
    main()
