"""Measure the MTCNN-box -> landmark-box calibration on faces with ground truth.

Run: ``python -m crct_cli.train.calibrate DATA_DIR...``; prints the four numbers that
``crct_cli.tracking.detector.MTCNN_TO_LANDMARK_BOX`` holds.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from crct_cli.io.images import read_image
from crct_cli.io.landmarks import read_pts
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import iou
from crct_cli.tracking.detector import FaceDetector


def calibrate(roots: list[str], every: int = 4) -> tuple[np.ndarray, int, int]:
    from crct_cli.train.data import list_pairs

    torch.set_num_threads(1)
    detector = FaceDetector()
    rows = []
    pairs = list_pairs(roots)[::every]  # a median needs a few hundred faces, not all
    for image_path, pts_path in tqdm(pairs, desc="calibrating"):
        gt = box_from_points(read_pts(pts_path))
        dets = detector(read_image(image_path), min_score=0.9)
        if not dets:
            continue
        raws = np.stack([d.raw_box for d in dets])
        best = int(np.argmax(iou(raws, np.repeat(gt[None], len(raws), 0))))
        x, y, w, h = raws[best]
        if iou(raws[best][None], gt[None])[0] < 0.3:
            continue
        rows.append([(gt[0] - x) / w, (gt[1] - y) / h, gt[2] / w, gt[3] / h])
    return np.median(np.array(rows), axis=0), len(rows), len(pairs)


USAGE = "usage: python -m crct_cli.train.calibrate DATA_DIR... (folders of image + .pts pairs)"


def main(argv: list[str]) -> int:
    """The command line: one usage or error line, never a traceback."""
    from crct_cli.errors import CrctError

    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    try:
        calib, n, total = calibrate(argv)
    except CrctError as exc:
        print(f"crct: error: {exc}", file=sys.stderr)
        return 2
    if not n:
        print(f"crct: error: MTCNN matched none of the {total} faces", file=sys.stderr)
        return 2
    print(
        f"matched {n}/{total} faces; "
        f"MTCNN_TO_LANDMARK_BOX = {tuple(round(float(v), 4) for v in calib)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
