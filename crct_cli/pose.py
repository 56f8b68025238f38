"""Head pose from 68 points: a rigid 3D face learnt from 2D markup, fitted to each face.

Why: expression, attention and HCI studies read where a head turns and nods (OpenFace's
``pose_*`` columns), and 68 points already hold it. crct learns its own 3D face from the
training markup (``crct train face3d``, ``weights/face3d.json``): the 1,675 training shapes and
their mirror images, seen from many angles, factorised into one rigid shape under scaled
orthographic projection (Tomasi and Kanade, 1992, with the metric constraints that make each
face's two projection rows orthogonal and of one length); expression and identity stay as noise.
Its size is set by a typical adult's outer eye corners, :data:`EYE_WIDTH_MM` apart: that sets the
distance (``Tz``) only, not the angles.

Conventions, those of the camera: x to the image's right, y down, z away from the camera
(right-handed); the model's x runs from the right eye's outer corner (point 36) to the left's
(45), y down, turned about x so that the training photographs' median pitch is 0 (most of them
face the camera; the bridge-to-chin line alone leans 10-12 degrees from that), its origin the
mean of its 68 points. A pose is ``(Tx, Ty, Tz, Rx, Ry, Rz)``: the origin's place in
millimetres and the rotation R = Rx Ry Rz in radians (pitch, yaw, roll, as OpenFace writes
them). A face looking straight into the camera is (0, 0, 0); Rx > 0 looks down, Ry > 0 turns
the nose towards the image's left, Rz > 0 turns the eye line clockwise on screen.

The fit weighs the points that move with the skull (the nose and the eyes, :data:`RIGID_POINTS`)
twenty times as much as the jaw, brows and lips, which move with expression: a mouth opening
drags a fit of all 68 points into a nod (a 10-degree jaw opening, about 2 degrees of pitch),
while the other points keep a small say, so a nose read poorly is not followed alone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.errors import CrctError, OptionError
from crct_cli.landmarks import FLIP_PERMUTATION, N_POINTS

#: the shipped model's file, beside the networks
FACE_MODEL_FILE = "face3d.json"
FACE_MODEL_FORMAT = "crct.face3d/1"
#: outer eye corners (points 36 and 45) of an adult, mm: the model's scale
EYE_WIDTH_MM = 90.0
#: the columns a pose adds to landmarks.csv, in OpenFace's names
POSE_COLUMNS: tuple[str, ...] = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
#: points that move with the skull, not with expression: the nose (27-35) and the eyes (36-47)
RIGID_POINTS: tuple[int, ...] = tuple(range(27, 48))
#: the say of every other point in the fit, against 1 for a rigid one
NONRIGID_WEIGHT = 0.05


def rigid_weights() -> np.ndarray:
    """The fit's weight of each of the 68 points (mean 1): :data:`RIGID_POINTS` 1, the rest
    :data:`NONRIGID_WEIGHT`."""
    weights = np.full(N_POINTS, NONRIGID_WEIGHT)
    weights[list(RIGID_POINTS)] = 1.0
    return weights / weights.mean()


_RIGID_WEIGHTS = rigid_weights()  # made once: head_pose runs for every face of every frame
_RIGID_WEIGHTS.flags.writeable = False


def default_focal(width: int, height: int) -> float:
    """A focal length in pixels for a camera nobody calibrated: 500 px at 640x480 (a webcam's
    ~65 degrees across), scaled with the frame (OpenFace guesses the same way)."""
    return 500.0 * (width / 640.0 + height / 480.0) / 2.0


def euler_to_rotation(angles: Any) -> np.ndarray:
    """R = Rx(a) Ry(b) Rz(c) for ``angles`` (a, b, c) in radians."""
    a, b, c = (float(v) for v in angles)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
    """(a, b, c) with R = Rx(a) Ry(b) Rz(c), b in [-pi/2, pi/2]."""
    r = np.asarray(rotation, dtype=np.float64)
    b = math.asin(max(-1.0, min(1.0, r[0, 2])))
    return np.array([math.atan2(-r[1, 2], r[2, 2]), b, math.atan2(-r[0, 1], r[0, 0])])


def _upgrade_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The six unknowns of a symmetric L in a @ L @ b, one row per pair (a, b)."""
    return np.stack(
        [
            a[:, 0] * b[:, 0],
            a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0],
            a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0],
            a[:, 1] * b[:, 1],
            a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1],
            a[:, 2] * b[:, 2],
        ],
        axis=1,
    )


def fit_face_model(shapes: np.ndarray, mirror: bool = True) -> np.ndarray:
    """The rigid 3D shape (68, 3) whose scaled orthographic views best explain ``shapes``
    (N, 68, 2), in the conventions above, scaled to :data:`EYE_WIDTH_MM`.

    ``mirror``: each shape's mirror image (points renumbered) joins the data, so the model is
    as often seen turned left as right."""
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim != 3 or shapes.shape[1:] != (N_POINTS, 2) or len(shapes) < 3:
        raise CrctError(f"a 3D face needs at least 3 shapes of {N_POINTS} points")
    if mirror:
        flipped = shapes[:, list(FLIP_PERMUTATION)].copy()
        flipped[..., 0] *= -1
        shapes = np.concatenate([shapes, flipped])
    shapes = shapes - shapes.mean(axis=1, keepdims=True)
    shapes /= np.sqrt((shapes**2).sum(axis=(1, 2)) / N_POINTS)[:, None, None]  # one size each
    n = len(shapes)
    views = np.concatenate([shapes[..., 0], shapes[..., 1]])  # (2N, 68): x rows, then y rows
    u, s, vt = np.linalg.svd(views, full_matrices=False)
    motion, shape = u[:, :3] * np.sqrt(s[:3]), np.sqrt(s[:3])[:, None] * vt[:3]
    # metric upgrade: L = Q Q^T makes each face's two rows orthogonal and of one length
    xs, ys = motion[:n], motion[n:]
    rows = np.concatenate([_upgrade_rows(xs, xs) - _upgrade_rows(ys, ys), _upgrade_rows(xs, ys)])
    scale_row = _upgrade_rows(xs, xs).mean(axis=0)
    system = np.concatenate([rows, n * scale_row[None]])
    target = np.concatenate([np.zeros(len(rows)), [float(n)]])
    l6 = np.linalg.lstsq(system, target, rcond=None)[0]
    upgrade = np.array(
        [[l6[0], l6[1], l6[2]], [l6[1], l6[3], l6[4]], [l6[2], l6[4], l6[5]]], dtype=np.float64
    )
    w, v = np.linalg.eigh(upgrade)
    if w.min() <= 0:
        raise CrctError("the shapes do not show the face from enough angles for a 3D model")
    points = np.linalg.solve(v * np.sqrt(w), shape).T  # (68, 3), up to a rotation and a mirror
    across = points[45] - points[36]
    across /= np.linalg.norm(across)
    down = points[8] - points[27]
    down -= across * (down @ across)
    down /= np.linalg.norm(down)
    points = points @ np.stack([across, down, np.cross(across, down)]).T
    if points[30, 2] > points[[0, 16], 2].mean():  # the mirror in depth: the nose comes forward
        points[:, 2] *= -1
    points -= points.mean(axis=0)
    # upright as the photographed faces hold their heads (most of them face the camera), not
    # as the bridge-to-chin line lies: the median pitch of their views is taken out
    pitch = np.median([rotation_to_euler(weak_perspective(p, points)[0])[0] for p in shapes])
    points = points @ euler_to_rotation((pitch, 0.0, 0.0)).T
    return points * EYE_WIDTH_MM / np.linalg.norm(points[45] - points[36])


def project(model: np.ndarray, pose: Any, focal: float, center: Any) -> np.ndarray:
    """The model's 68 points in the image of a pinhole camera at ``pose``."""
    pose = np.asarray(pose, dtype=np.float64)
    cam = np.asarray(model, dtype=np.float64) @ euler_to_rotation(pose[3:]).T + pose[:3]
    return focal * cam[:, :2] / cam[:, 2:] + np.asarray(center, dtype=np.float64)


def weak_perspective(
    points: np.ndarray, model: np.ndarray, weights: Any | None = None
) -> tuple[np.ndarray, float]:
    """The rotation and scale (px per mm) of the scaled orthographic view of ``model`` that
    lies nearest ``points`` (each point's squared distance times its weight, all alike when
    ``weights`` is None): the solver's start, and how a model is fitted to a face's points
    when validating it."""
    w = np.ones(len(model)) if weights is None else np.asarray(weights, dtype=np.float64)
    p_mid, m_mid = _weighted_mean(points, w), _weighted_mean(model, w)
    cross = ((points - p_mid) * w[:, None]).T @ (model - m_mid)  # (2, 3)
    u, _, vt = np.linalg.svd(cross, full_matrices=False)
    rows = u @ vt
    rotation = np.concatenate([rows, np.cross(rows[0], rows[1])[None]])
    seen = (model - m_mid) @ rows.T
    spread = float((w[:, None] * seen**2).sum())
    return rotation, float(np.trace(rows @ cross.T) / max(spread, 1e-12))


def _weighted_mean(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) * weights[:, None]).sum(axis=0) / weights.sum()


def head_pose(
    points: Any,
    width: int,
    height: int,
    model: np.ndarray,
    focal: float | None = None,
    weights: Any | None = None,
) -> np.ndarray:
    """``(Tx, Ty, Tz, Rx, Ry, Rz)`` of the face whose 68 image points are ``points``, in a
    ``width`` x ``height`` frame (the camera's centre at its middle, ``focal`` px, else
    :func:`default_focal`): the pose whose projection of ``model`` lies nearest the points,
    each point's squared distance counted ``weights`` times (:func:`rigid_weights` when None;
    ``np.ones(68)`` for all alike)."""
    import cv2

    pts = np.asarray(points, dtype=np.float64).reshape(N_POINTS, 2)
    model = np.asarray(model, dtype=np.float64)
    w = _RIGID_WEIGHTS if weights is None else np.asarray(weights, dtype=np.float64)
    f = default_focal(width, height) if focal is None else float(focal)
    center = np.array([width / 2.0, height / 2.0])
    rotation, scale = weak_perspective(pts, model, w)
    depth = f / max(scale, 1e-9)
    # the weighted centres meet: the model's, turned, sits where the points' would be seen
    shift = np.append((_weighted_mean(pts, w) - center) * depth / f, depth)
    shift -= rotation @ _weighted_mean(model, w)
    camera = np.array([[f, 0, center[0]], [0, f, center[1]], [0, 0, 1]], dtype=np.float64)
    start = np.concatenate([cv2.Rodrigues(rotation)[0].ravel(), shift])
    found = _refine_pose(start, model, pts, camera, np.repeat(np.sqrt(w), 2))
    if found is None:
        found = start  # the first view stands
    return np.concatenate([found[3:], rotation_to_euler(cv2.Rodrigues(found[:3])[0])])


def _refine_pose(
    start: np.ndarray, model: np.ndarray, pts: np.ndarray, camera: np.ndarray, root_w: np.ndarray
) -> np.ndarray | None:
    """Levenberg-Marquardt on (rvec, tvec) for the weighted reprojection error (OpenCV's
    ``solvePnP`` weighs every point alike); None when it leaves the camera's front."""
    import cv2

    def residual(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen, jac = cv2.projectPoints(model, x[:3], x[3:], camera, None)
        return (seen.reshape(-1) - pts.reshape(-1)) * root_w, jac[:, :6] * root_w[:, None]

    x, damping = start.copy(), 1e-3
    r, jac = residual(x)
    cost = float(r @ r)
    for _ in range(30):
        normal = jac.T @ jac
        step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), -jac.T @ r)
        trial = x + step
        r_new, jac_new = residual(trial)
        new_cost = float(r_new @ r_new)
        if new_cost < cost:
            done = cost - new_cost <= 1e-12 * cost
            x, r, jac, cost, damping = trial, r_new, jac_new, new_cost, damping * 0.3
            if done:
                break
        else:
            damping *= 10.0
            if damping > 1e8:
                break
    if not np.all(np.isfinite(x)) or x[5] <= 0:
        return None
    return x


def pose_values(pose: Any) -> list[float]:
    """A pose as files write it: millimetres to 0.1, radians to 0.001 (OpenFace's)."""
    values = [float(v) for v in np.asarray(pose, dtype=np.float64).reshape(-1)]
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a pose is 6 finite numbers (Tx, Ty, Tz, Rx, Ry, Rz), got {pose!r}")
    return [round(v, 1) for v in values[:3]] + [round(v, 3) for v in values[3:]]


def pose_text(pose: Any) -> list[str]:
    """:func:`pose_values` as CSV cells, at fixed decimals as OpenFace prints them (``49.0``,
    ``0.150``; never ``-0.0``)."""
    values = pose_values(pose)
    return [f"{v + 0.0:.1f}" for v in values[:3]] + [f"{v + 0.0:.3f}" for v in values[3:]]


def read_face_model(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``face3d.json`` (checked against its folder's manifest when listed there)."""
    from crct_cli.models.weights import (
        MANIFEST,
        check_weights_folder,
        read_manifest,
        sha256_file,
    )

    path = Path(path)
    if not path.is_file():
        check_weights_folder(path.parent)
        raise CrctError(
            f"3D face model {path} is missing; reinstall crct or rebuild it with "
            "'crct train face3d'"
        )
    entry = read_manifest(path.parent).get("weights", {}).get(path.name)
    if entry is not None and entry.get("sha256") != sha256_file(path):
        raise CrctError(f"3D face model {path} is corrupt (sha256 differs from its {MANIFEST})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        model = np.asarray(doc["points_mm"], dtype=np.float64)
    except (ValueError, KeyError, TypeError):
        raise CrctError(f"{path}: not a 3D face model") from None
    if doc.get("format") != FACE_MODEL_FORMAT or model.shape != (N_POINTS, 3):
        raise CrctError(f"{path}: not a {FACE_MODEL_FORMAT} model of {N_POINTS} points")
    return model


def check_focal(focal: float | None) -> None:
    """``--focal-length``: unset, or a positive number of pixels."""
    if focal is not None and not 0 < focal < math.inf:
        raise OptionError("focal_length", f"must be > 0 pixels, got {focal}")


class HeadPoser:
    """:func:`head_pose` with the model read once (``Tracker(pose=True)``)."""

    def __init__(self, weights_dir: Path, focal: float | None = None) -> None:
        check_focal(focal)
        self.model = read_face_model(Path(weights_dir) / FACE_MODEL_FILE)
        self.focal = focal

    def __call__(self, points: Any, width: int, height: int) -> np.ndarray:
        return head_pose(points, width, height, self.model, self.focal)
