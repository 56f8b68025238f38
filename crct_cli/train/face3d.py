"""``crct train face3d``: the rigid 3D face behind ``crct track --pose`` (``weights/face3d.json``).

Only the training markup is read (no picture): every ``.pts`` of the training folders and its
mirror image, factorised by :func:`crct_cli.pose.fit_face_model`. Validation, on faces it never
saw: how closely the model, turned and scaled to fit each face (scaled orthographic), lies on
the face's own points, against a flat mean shape fitted by a similarity (the better the 3D
shape, the less the turned faces lose); and whether the pose's yaw and roll rank the faces as
their points do (the nose tip's place between the jaw's sides; the eye line's slope). No
ground truth of head pose comes with the data, so the angles themselves are not scored.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.errors import CrctError
from crct_cli.io.atomic import write_text_atomic
from crct_cli.io.landmarks import read_pts
from crct_cli.models import weights
from crct_cli.models.weights import WEIGHTS_DIR
from crct_cli.pose import (
    EYE_WIDTH_MM,
    FACE_MODEL_FILE,
    FACE_MODEL_FORMAT,
    fit_face_model,
    head_pose,
    weak_perspective,
)
from crct_cli.train.data import data_name, list_pairs
from crct_cli.train.run import display_path

#: |yaw| bins of the validation report (the nose tip's place between the jaw's sides, -1..1)
YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.15), (0.15, 0.4), (0.4, 0.7), (0.7, 9.0))


@dataclass
class TrainFace3DConfig:
    train: list[Path]
    val: list[Path]
    out: Path = field(default_factory=lambda: WEIGHTS_DIR / FACE_MODEL_FILE)

    def command(self) -> str:
        args = ["crct", "train", "face3d", *map(str, self.train)]
        args += ["--val", ",".join(map(str, self.val))]
        return shlex.join([*args, "--out", display_path(self.out)])


def read_shapes(roots: Sequence[Path]) -> np.ndarray:
    """Every face's 68 points under ``roots`` (image + ``.pts`` pairs, as the trainers read)."""
    pairs = list_pairs(roots)
    if not pairs:
        raise CrctError(f"no image + .pts pairs under {', '.join(map(str, roots))}")
    return np.stack([read_pts(pts) for _, pts in pairs])


def yaw_of(points: np.ndarray) -> float:
    """Where the nose tip lies between the jaw's sides: 0 frontal, +-1 at a side."""
    left, right = points[0, 0], points[16, 0]
    return float(2 * (points[30, 0] - left) / (right - left) - 1) if right != left else 0.0


def _nme(fitted: np.ndarray, truth: np.ndarray) -> float:
    span = truth.max(axis=0) - truth.min(axis=0)
    return float(np.linalg.norm(fitted - truth, axis=1).mean() / np.hypot(*span))


def fit_rigid(points: np.ndarray, model: np.ndarray) -> np.ndarray:
    """``model`` turned, scaled and moved (scaled orthographic) onto ``points``."""
    rotation, scale = weak_perspective(points, model)
    return (model - model.mean(axis=0)) @ rotation[:2].T * scale + points.mean(axis=0)


def fit_similarity(points: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """A flat ``shape`` turned in the image plane, scaled and moved onto ``points``."""
    centre = points.mean(axis=0)
    p, s = points - centre, shape - shape.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ s)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    turn = u @ vt
    seen = s @ turn.T
    return seen * float((p * seen).sum() / (seen**2).sum()) + centre


def _rank_correlation(a: Any, b: Any) -> float:
    """Spearman's: the correlation of the two lists' ranks."""
    ra = np.argsort(np.argsort(np.asarray(a, dtype=np.float64)))
    rb = np.argsort(np.argsort(np.asarray(b, dtype=np.float64)))
    return float(np.corrcoef(ra, rb)[0, 1])


def validate_face3d(model: np.ndarray, train: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    """The report of the module docstring, on ``val``'s shapes."""
    flat = train - train.mean(axis=1, keepdims=True)
    flat /= np.sqrt((flat**2).sum(axis=(1, 2)))[:, None, None]
    mean_shape = flat.mean(axis=0)
    rigid = np.array([_nme(fit_rigid(p, model), p) for p in val])
    similar = np.array([_nme(fit_similarity(p, mean_shape), p) for p in val])
    yaws = np.abs([yaw_of(p) for p in val])
    bins = {}
    for lo, hi in YAW_BINS:
        pick = (yaws >= lo) & (yaws < hi)
        if pick.any():
            bins[f"{lo}-{hi}" if hi < 9 else f">={lo}"] = {
                "faces": int(pick.sum()),
                "model_nme": round(float(rigid[pick].mean()), 5),
                "flat_nme": round(float(similar[pick].mean()), 5),
            }
    poses = []
    for p in val:  # the face in the middle of a frame 4 times its size
        size = int(4 * (p.max(axis=0) - p.min(axis=0)).max())
        poses.append(
            head_pose(p - (p.max(axis=0) + p.min(axis=0)) / 2 + size / 2, size, size, model)
        )
    pose = np.array(poses)
    eyes = val[:, 45] - val[:, 36]
    return {
        "faces": len(val),
        "model_nme": round(float(rigid.mean()), 5),
        "flat_nme": round(float(similar.mean()), 5),
        "by_yaw": bins,
        # the angles follow what the 2D points say: the nose between the jaw's sides (yaw
        # turns it towards the image's left, so against it), the eye line's slope (roll)
        "yaw_rank_correlation": round(-_rank_correlation(pose[:, 4], [yaw_of(p) for p in val]), 4),
        "roll_rank_correlation": round(
            _rank_correlation(pose[:, 5], np.arctan2(eyes[:, 1], eyes[:, 0])), 4
        ),
    }


def train_face3d(cfg: TrainFace3DConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit the model, validate it, write the file and its manifest entry; returns the metrics."""
    t0 = time.time()
    train = read_shapes(cfg.train)
    val = read_shapes(cfg.val)
    log(f"face3d: {len(train)} training shapes (and their mirror images), {len(val)} validation")
    model = fit_face_model(train)
    metrics = validate_face3d(model, train, val)
    log(json.dumps(metrics, indent=2))
    doc = {
        "format": FACE_MODEL_FORMAT,
        "units": "mm",
        "axes": "x from point 36 to 45, y down to the chin, z away from the camera",
        "eye_width_mm": EYE_WIDTH_MM,
        "points_mm": [[round(float(v), 3) for v in row] for row in model],
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out, json.dumps(doc, indent=1) + "\n")
    entry = {
        "kind": "face3d",
        "sha256": weights.sha256_file(cfg.out),
        "command": cfg.command(),
        "train_split": [data_name(d) for d in cfg.train],
        "val_split": [data_name(d) for d in cfg.val],
        "protocol": "validation shapes: mean NME (box diagonal) of the model fitted by a scaled "
        "orthographic view against a flat mean shape fitted by a similarity; Spearman rank "
        "correlation of the pose's yaw with the nose tip's place between the jaw's sides and of "
        "its roll with the eye line's slope",
        "val_metrics": metrics,
        "train_minutes": round((time.time() - t0) / 60, 2),
    }
    weights.update_manifest(cfg.out.name, entry, cfg.out.parent)
    return metrics
