"""Synthetic multi-face videos with per-face ground truth, from still validation faces.

Each sequence puts three still faces (cut out of their photos with a soft oval) on one
procedural background and moves them along scripted paths that exercise what a multi-face
tracker must get right:

* two faces **cross**: they start on either side of the lower half of the frame, pass each
  other near the middle of the clip, one in front of the other, so that the far face is
  partly hidden while they overlap, and end on the opposite sides;
* a third face **enters** from the side edge early in the clip, **leaves** through the same
  edge around the middle and **comes back** about a second later.

Every face also sways a little (rotation, scale, small shifts: smooth bounded random walks),
so even a face standing still is not a still picture. Which side the visitor uses, which
crosser is in front, the sizes, heights and timings are drawn per sequence; everything comes
from ``--seed``.

Layout, per sequence ``OUT/NNN/``:

* ``vid.mp4`` (H.264, 25 fps);
* ``faces/<gt_id>/000001.pts ...``: the face's 68 points on each frame where it is
  **visible**: at least half of its landmark box inside the frame and not covered by a face in
  front of it (the visibility rule; ``VISIBLE_SHARE``);
* ``faces.json``: per face its role, source photo and, for every frame, its landmark box
  (also where it is not visible), the share of the box inside the frame, the share neither
  outside nor covered, and whether it is visible. The scorer uses the boxes of faces that are
  present but not visible as "don't care" regions: a prediction there is neither scored nor a
  ghost.

    python -m crct_cli.bench.synth_multi ../shared/data/300w/afw --out runs/multi-afw \\
        --videos 6 --frames 150 --seed 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crct_cli import geometry
from crct_cli.bench.multi_face import FACES_DIR, FACES_JSON, VIDEO_NAME
from crct_cli.bench.synth_video import add_origin_argument
from crct_cli.errors import CrctError
from crct_cli.geometry import in_frame_share
from crct_cli.io.atomic import make_output_folder, replace_dir, write_text_atomic
from crct_cli.io.landmarks import PTS_ORIGIN, write_pts
from crct_cli.io.video import VideoWriter
from crct_cli.landmarks import box_from_points, flip_points
from crct_cli.train.data import Face, load_faces

SCHEMA = "crct.synth_multi/1"
#: A face is visible when at least this share of its landmark box is in the frame, uncovered.
VISIBLE_SHARE = 0.5
#: Fewer frames leave no room for the visitor to enter, leave and come back.
MIN_FRAMES = 30
ROLES = ("crossing", "crossing", "visitor")


@dataclass(frozen=True)
class MultiSynthConfig:
    """Canvas and face sizes of the generated sequences; ``origin`` as in
    :func:`crct_cli.bench.synth_video.make_synthetic_videos` (the faces' .pts count from it;
    the frames' from 0)."""

    width: int = 640
    height: int = 360
    fps: float = 25.0
    face_px: tuple[float, float] = (70.0, 95.0)  #: landmark box side on the canvas (range)
    visible_share: float = VISIBLE_SHARE
    origin: float | None = PTS_ORIGIN


@dataclass
class FaceTrack:
    """One face of a sequence: its still, cut-out mask and still->canvas map per frame."""

    gt_id: int
    role: str
    source: str
    image: np.ndarray  #: RGB still (mirrored if drawn so)
    points: np.ndarray  #: (68, 2) in the still
    mask: np.ndarray  #: float32 alpha in [0, 1], the still's size
    transforms: np.ndarray  #: (T, 2, 3) still -> canvas
    depth: int  #: drawing order: a larger depth is nearer the camera (drawn later)


@dataclass
class MultiPlan:
    """Everything random about one sequence, drawn up front."""

    index: int
    width: int
    height: int
    fps: float
    n_frames: int
    background: np.ndarray  #: (H, W, 3) uint8
    faces: list[FaceTrack]
    events: dict[str, int]  #: named frames (from 1): crossing, visitor entry, exit, return


@dataclass
class RenderedFrame:
    image: np.ndarray  #: (H, W, 3) RGB uint8
    points: list[np.ndarray]  #: per face (68, 2) on the canvas
    boxes: list[np.ndarray]  #: per face landmark box (x, y, w, h)
    in_frame: list[float]  #: per face share of its box inside the frame
    unoccluded: list[float]  #: per face share inside the frame and not covered
    visible: list[bool]


# --------------------------------------------------------------------------------------------
# Geometry of one frame


def unoccluded_share(box: np.ndarray, width: int, height: int, cover: np.ndarray | None) -> float:
    """Share of the box's area inside the frame and not covered (``cover`` >= 0.5 on a pixel).

    ``cover`` is the (H, W) alpha of the faces in front; pixels are counted by their centres.
    """
    inside = in_frame_share(box, width, height)
    if cover is None or inside == 0.0:
        return inside
    x, y, w, h = (float(v) for v in box)
    c0, c1 = int(np.clip(np.ceil(x - 0.5), 0, width)), int(np.clip(np.ceil(x + w - 0.5), 0, width))
    r0, r1 = (
        int(np.clip(np.ceil(y - 0.5), 0, height)),
        int(np.clip(np.ceil(y + h - 0.5), 0, height)),
    )
    covered = float((cover[r0:r1, c0:c1] >= 0.5).sum())
    return max(0.0, inside - covered / (w * h))


def face_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """A soft oval around the face (forehead and chin included), float32 alpha: tight enough
    that a neighbour in the photo rarely rides along unannotated."""
    h, w = shape[:2]
    x, y, bw, bh = box_from_points(points)
    cx, cy = x + bw / 2, y + bh / 2
    mask = np.zeros((h, w), np.float32)
    axes = (max(1, int(round(0.62 * bw))), max(1, int(round(0.72 * bh))))
    cv2.ellipse(mask, (int(round(cx)), int(round(cy - 0.15 * bh))), axes, 0, 0, 360, 1.0, -1)
    sigma = max(1.0, 0.05 * max(bw, bh))
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)


# --------------------------------------------------------------------------------------------
# Planning a sequence


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _ramp(t: np.ndarray, t0: float, t1: float, a: float, b: float) -> np.ndarray:
    """``a`` before ``t0``, ``b`` after ``t1``, eased in between."""
    return a + (b - a) * _smoothstep((t - t0) / max(t1 - t0, 1e-9))


def _wander(rng: np.random.Generator, n: int, sigma: float, bound: float) -> np.ndarray:
    """A smooth random walk kept within +-bound (momentum 0.85 and a weak spring)."""
    x, v = float(rng.uniform(-bound, bound) / 2), 0.0
    out = np.empty(n)
    for t in range(n):
        out[t] = x
        v = 0.85 * v + rng.normal(0.0, sigma) - 0.02 * x
        x = float(np.clip(x + v, -bound, bound))
    return out


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A faceless indoor-looking backdrop: a smooth colour field, a few soft panels, grain."""
    field = rng.uniform(40, 200, (3, 5, 3)).astype(np.float32)
    image: np.ndarray = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(width // 10, width // 2))
        y1 = y0 + int(rng.integers(height // 10, height // 2))
        colour = tuple(float(c) for c in rng.uniform(30, 220, 3))
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=2.0)
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _placement(
    points: np.ndarray,
    centre: np.ndarray,
    side: np.ndarray,
    angle_deg: np.ndarray,
) -> np.ndarray:
    """(T, 2, 3) maps taking the still's landmark-box centre to ``centre`` at ``side`` pixels."""
    box = box_from_points(points)
    c0 = box[:2] + box[2:] / 2
    s0 = float(max(box[2:]))
    out = np.empty((len(centre), 2, 3))
    for t in range(len(centre)):
        a = np.deg2rad(angle_deg[t])
        lin = side[t] / s0 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out[t] = np.hstack([lin, (centre[t] - lin @ c0)[:, None]])
    return out


def plan_sequence(
    rng: np.random.Generator,
    faces: list[Face],
    n_frames: int,
    index: int,
    cfg: MultiSynthConfig | None = None,
) -> MultiPlan:
    """Draw one sequence: backdrop, the three faces' paths, sways and drawing order."""
    cfg = cfg or MultiSynthConfig()
    if len(faces) != len(ROLES):
        raise ValueError(f"a sequence takes {len(ROLES)} faces, got {len(faces)}")
    if n_frames < MIN_FRAMES:
        raise CrctError(f"--frames must be at least {MIN_FRAMES}, got {n_frames}")
    width, height, n = cfg.width, cfg.height, n_frames
    t = np.arange(n, dtype=np.float64)
    mirror = bool(rng.random() < 0.5)
    sides = rng.uniform(*cfg.face_px, size=len(ROLES))
    mean_side = float(sides[:2].mean())
    # the crossers: a lower row, one above the other by most of a face, swapping sides
    row = rng.uniform(0.58, 0.66) * height
    gap = rng.uniform(0.6, 0.9) * mean_side
    upper_first = bool(rng.random() < 0.5)
    t0 = rng.uniform(0.12, 0.2) * n
    t1 = t0 + rng.uniform(0.4, 0.5) * n
    xl, xr = 0.36 * width, 0.86 * width
    lift = -gap / 2 if upper_first else gap / 2  # the first crosser above or below the row
    xs = [_ramp(t, t0, t1, xl, xr), _ramp(t, t0, t1, xr, xl)]
    ys = [np.full(n, row + lift), np.full(n, row - lift)]
    # the visitor: enters from the side edge, leaves through it, comes back
    x_in, x_out = 0.14 * width, -0.8 * sides[2]
    marks = np.array([0.06, 0.16, 0.46, 0.56, 0.74, 0.84]) + rng.uniform(-0.02, 0.02, 6)
    e = np.sort(marks) * n
    vx = _ramp(t, e[0], e[1], x_out, x_in)
    vx = np.where(t >= e[2], _ramp(t, e[2], e[3], x_in, x_out), vx)
    vx = np.where(t >= e[4], _ramp(t, e[4], e[5], x_out, x_in), vx)
    xs.append(vx)
    ys.append(np.full(n, rng.uniform(0.3, 0.45) * height))
    depths = [int(d) for d in rng.permutation(len(ROLES))]
    tracks = []
    for k, face in enumerate(faces):
        image, points = face.image, face.points
        if rng.random() < 0.5:  # mirror the still (and its markup)
            image = np.ascontiguousarray(image[:, ::-1])
            points = flip_points(points, image.shape[1])
        side = sides[k] * np.exp(_wander(rng, n, 0.004, 0.08))
        angle = rng.normal(0.0, 5.0) + _wander(rng, n, 0.3, 15.0)
        x = xs[k] + _wander(rng, n, 0.003, 0.05) * sides[k]
        y = ys[k] + _wander(rng, n, 0.003, 0.05) * sides[k]
        if mirror:
            x = width - x
        centre = np.stack([x, y], axis=1)
        tracks.append(
            FaceTrack(
                gt_id=k,
                role=ROLES[k],
                source=face.name,
                image=image,
                points=points,
                mask=face_mask(image.shape, points),
                transforms=_placement(points, centre, side, angle),
                depth=depths[k],
            )
        )
    events = {
        "crossing": int(round((t0 + t1) / 2)) + 1,
        "visitor_enters": int(np.ceil(e[0])) + 1,
        "visitor_leaves": int(np.ceil(e[2])) + 1,
        "visitor_returns": int(np.ceil(e[4])) + 1,
    }
    return MultiPlan(
        index=index,
        width=width,
        height=height,
        fps=cfg.fps,
        n_frames=n,
        background=make_background(rng, width, height),
        faces=tracks,
        events=events,
    )


# --------------------------------------------------------------------------------------------
# Rendering


def render(plan: MultiPlan, t: int, visible_share: float = VISIBLE_SHARE) -> RenderedFrame:
    """Frame ``t`` (from 0): the composite picture and every face's points and visibility."""
    w, h = plan.width, plan.height
    canvas = plan.background.astype(np.float32)
    alphas: dict[int, np.ndarray] = {}
    for face in sorted(plan.faces, key=lambda f: f.depth):  # far to near
        m = face.transforms[t]
        picture = cv2.warpAffine(face.image, m, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(face.mask, m, (w, h), flags=cv2.INTER_LINEAR)
        alphas[face.gt_id] = alpha
        canvas = canvas * (1.0 - alpha[..., None]) + picture.astype(np.float32) * alpha[..., None]
    frame = RenderedFrame(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), [], [], [], [], [])
    for face in plan.faces:
        points = geometry.apply(face.transforms[t], face.points)
        box = box_from_points(points)
        nearer = [alphas[f.gt_id] for f in plan.faces if f.depth > face.depth]
        cover = np.maximum.reduce(nearer) if nearer else None
        unocc = unoccluded_share(box, w, h, cover)
        frame.points.append(points)
        frame.boxes.append(box)
        frame.in_frame.append(in_frame_share(box, w, h))
        frame.unoccluded.append(unocc)
        frame.visible.append(unocc >= visible_share)
    return frame


def write_sequence(plan: MultiPlan, folder: Path, seed: int, visible_share: float) -> Path:
    """Render and write one sequence into ``folder`` (built aside, renamed when complete)."""
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for face in plan.faces:
        (tmp / FACES_DIR / str(face.gt_id)).mkdir(parents=True)
    per_face: list[list[dict[str, object]]] = [[] for _ in plan.faces]
    with VideoWriter(tmp / VIDEO_NAME, plan.fps, plan.width, plan.height) as writer:
        for t in range(plan.n_frames):
            frame = render(plan, t, visible_share)
            writer.write(frame.image)
            for k, face in enumerate(plan.faces):
                if frame.visible[k]:
                    write_pts(
                        tmp / FACES_DIR / str(face.gt_id) / f"{t + 1:06d}.pts", frame.points[k]
                    )
                per_face[k].append(
                    {
                        "frame": t + 1,
                        "box": [round(float(v), 2) for v in frame.boxes[k]],
                        "in_frame": round(frame.in_frame[k], 4),
                        "unoccluded": round(frame.unoccluded[k], 4),
                        "visible": frame.visible[k],
                    }
                )
    doc = {
        "schema": SCHEMA,
        "video": VIDEO_NAME,
        "width": plan.width,
        "height": plan.height,
        "fps": plan.fps,
        "frames": plan.n_frames,
        "seed": seed,
        "sequence": plan.index,
        "visibility_rule": (
            f"visible when at least {visible_share:g} of the landmark box is inside the frame "
            "and not covered by a face in front"
        ),
        "events": plan.events,
        "faces": [
            {
                "gt_id": face.gt_id,
                "role": face.role,
                "source": Path(face.source).name,
                "depth": face.depth,
                "visible_frames": sum(1 for r in per_face[k] if r["visible"]),
                "frames": per_face[k],
            }
            for k, face in enumerate(plan.faces)
        ],
    }
    write_text_atomic(tmp / FACES_JSON, json.dumps(doc, indent=1) + "\n")
    replace_dir(tmp, folder)
    return folder


def make_multi_face_videos(
    faces_dir: Path,
    out: Path,
    n_videos: int = 6,
    n_frames: int = 150,
    seed: int = 0,
    cfg: MultiSynthConfig | None = None,
) -> list[Path]:
    """Write ``n_videos`` three-face sequences under ``out``; return their folders.

    Faces are drawn without replacement while the folder has enough (3 per sequence).
    """
    cfg = cfg or MultiSynthConfig()
    if n_videos < 1:
        raise CrctError(f"--videos must be at least 1, got {n_videos}")
    if n_frames < MIN_FRAMES:
        raise CrctError(f"--frames must be at least {MIN_FRAMES}, got {n_frames}")
    faces = load_faces([faces_dir], max_face=400.0, desc="faces", origin=cfg.origin)
    if len(faces) < len(ROLES):
        raise CrctError(f"{faces_dir}: {len(faces)} faces, a sequence needs {len(ROLES)}")
    rng = np.random.default_rng(seed)
    need = len(ROLES) * n_videos
    chosen = rng.choice(len(faces), size=need, replace=need > len(faces))
    make_output_folder(out)
    written = []
    for k in range(n_videos):
        picked = [faces[int(i)] for i in chosen[len(ROLES) * k : len(ROLES) * (k + 1)]]
        plan = plan_sequence(rng, picked, n_frames, k + 1, cfg)
        written.append(write_sequence(plan, out / f"{k + 1:03d}", seed, cfg.visible_share))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("faces", type=Path, help="folder of image + .pts pairs (validation faces)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    add_origin_argument(parser)
    args = parser.parse_args(argv)
    cfg = MultiSynthConfig(width=args.width, height=args.height, origin=args.origin)
    try:
        folders = make_multi_face_videos(
            args.faces, args.out, args.videos, args.frames, args.seed, cfg
        )
    except CrctError as exc:
        print(f"synth_multi: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for folder in folders:
        print(folder)


if __name__ == "__main__":
    main()
