"""Synthetic annotated videos from still faces, in the 300-VW layout.

Each sequence moves one still face smoothly through a frame (the same random-walk motion BT is
trained with, ``crct_cli.train.bt.synth_sequence``, including occasional jumps), and writes
``OUT/NNN/vid.mp4`` with ``OUT/NNN/annot/000001.pts``... so that any tracker, ours or another
tool, can be scored on it with ``crct benchmark --pred DIR --gt OUT/NNN/annot``. Built from
validation faces only, it measures tracking on faces no model was trained on.

    python -m crct_cli.bench.synth_video ../shared/data/300w/afw --out runs/synth-afw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from crct_cli import geometry
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import VideoWriter
from crct_cli.landmarks import box_from_points
from crct_cli.train.bt import synth_sequence
from crct_cli.train.data import AugmentConfig, load_faces


def make_synthetic_videos(
    faces_dir: Path,
    out: Path,
    n_videos: int = 12,
    n_frames: int = 90,
    size: tuple[int, int] = (480, 360),
    face_px: float = 110.0,
    seed: int = 0,
    fps: float = 25.0,
) -> list[Path]:
    faces = load_faces([faces_dir], max_face=400.0, desc="faces")
    rng = np.random.default_rng(seed)
    width, height = size
    written = []
    for k, i in enumerate(rng.choice(len(faces), size=n_videos, replace=False)):
        face = faces[int(i)]
        # the still's own augmentation (degradation, colour) is off: a clean, moving face
        clean = AugmentConfig(flip=0.5, degradation=0.0, color=0.0, grayscale=0.0)
        seq = synth_sequence(face, n_frames, rng, clean, pull=0.08)
        box = box_from_points(face.points)
        center, side = geometry.box_center_size(box)
        place = geometry.crop_matrix(
            center, side * max(width, height) / face_px, max(width, height)
        )
        place[:, 2] -= [(max(width, height) - width) / 2, (max(width, height) - height) / 2]
        folder = out / f"{k + 1:03d}"
        (folder / "annot").mkdir(parents=True, exist_ok=True)
        with VideoWriter(folder / "vid.mp4", fps, width, height) as writer:
            for t in range(n_frames):
                m = (np.vstack([place, [0, 0, 1]]) @ np.vstack([seq.transforms[t], [0, 0, 1]]))[:2]
                frame = cv2_warp(seq.image, m, width, height)
                writer.write(frame)
                write_pts(
                    folder / "annot" / f"{t + 1:06d}.pts", geometry.apply(place, seq.points[t])
                )
        written.append(folder)
    return written


def cv2_warp(image: np.ndarray, m: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("faces", type=Path, help="folder of image + .pts pairs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for folder in make_synthetic_videos(
        args.faces, args.out, args.videos, args.frames, seed=args.seed
    ):
        print(folder)


if __name__ == "__main__":
    main()
