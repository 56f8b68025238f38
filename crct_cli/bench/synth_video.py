"""Synthetic annotated videos from still faces, in the 300-VW layout, in three categories.

Each sequence moves one still face smoothly through a frame (the same random-walk motion BT is
trained with, ``crct_cli.train.bt.synth_sequence``, including occasional jumps), and writes
``OUT/NNN/vid.mp4`` with ``OUT/NNN/annot/000001.pts``... so that any tracker, ours or another
tool, can be scored on it with ``crct benchmark --pred DIR --gt OUT/NNN/annot`` or
``crct benchmark --dataset 300vw --root OUT``. Built from validation faces only, it measures
tracking on faces no model was trained on.

The categories follow 300-VW's (1: well lit, 2: unconstrained lighting, 3: completely
unconstrained):

1. gentle motion, clean frames (the default; the sequences this module always made);
2. the same motion under lighting drift: a slowly wandering overall gain (down to about a
   fifth of the light), a side light whose direction turns, and a colour cast;
3. fast motion (bursts of frames in which the random walk advances 2 or 3 steps per frame, a
   head turning or the camera shaking) with motion blur (each frame averages the picture over
   its exposure, so the faster the motion the longer the smear), occluding strips over the
   face, Gaussian noise and low-resolution bursts (``crct_cli.noise`` at levels 1-3, a few
   frames at a time).

Faces and motion are drawn from ``--seed`` exactly as before categories existed, so category 1
reproduces earlier outputs; the degradations of categories 2 and 3 come from a second
generator seeded with (seed, category, sequence), so they never disturb the motion.

    python -m crct_cli.bench.synth_video ../shared/data/300w/afw --out runs/synth-afw
    python -m crct_cli.bench.synth_video ../shared/data/300w/afw --out runs/synth-afw-c3 \\
        --category 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crct_cli import geometry
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import PTS_ORIGIN, write_pts
from crct_cli.io.video import VideoWriter
from crct_cli.landmarks import box_from_points
from crct_cli.noise import downsample, gaussian_noise
from crct_cli.train.bt import Sequence_, synth_sequence
from crct_cli.train.data import AugmentConfig, load_faces

#: The categories this generator makes (300-VW's numbering).
CATEGORIES: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class HardConfig:
    """How hard category 3 is: shares of frames hit by each burst type, and their levels."""

    fast_share: float = 0.3  #: frames in fast-motion bursts
    fast_steps: tuple[int, ...] = (2, 3)  #: steps of the random walk per frame in a burst
    blur_samples: int = 7  #: pictures averaged over one frame's exposure
    shutter: tuple[float, float] = (0.5, 1.0)  #: exposure, as a share of the frame interval
    strip_share: float = 0.15  #: frames with an occluding strip over the face
    noise_share: float = 0.3  #: frames with Gaussian noise
    lowres_share: float = 0.2  #: frames down-sampled and brought back
    burst: tuple[int, int] = (3, 10)  #: frames per burst (inclusive range)


@dataclass(frozen=True)
class LightingPlan:
    """Lighting drift of one sequence, per frame (category 2)."""

    gain: np.ndarray  #: (T,) overall gain
    cast: np.ndarray  #: (T, 3) per-channel gain (colour temperature)
    side_angle: np.ndarray  #: (T,) direction the side light comes from, radians
    side_strength: np.ndarray  #: (T,) 0: flat light; 0.6: the dark side at 40%


@dataclass
class HardPlan:
    """Degradations of one sequence, per frame (category 3)."""

    steps: np.ndarray  #: (T,) steps of the random walk from the previous frame (1: as category 1)
    shutter: float
    samples: int  #: pictures averaged over one frame's exposure
    noise_level: np.ndarray  #: (T,) 0 (none) or a :mod:`crct_cli.noise` level
    lowres_level: np.ndarray  #: (T,) 0 (none) or a down-sampling level
    #: frame -> strip: (orientation 'h'|'v', start, thickness, from, to) as shares of the
    #: face box side, and a fill (flat RGB or 'noise')
    strips: dict[int, tuple[str, float, float, float, float, tuple[int, int, int] | None]] = field(
        default_factory=dict
    )


def _wander(
    rng: np.random.Generator, n: int, sigma: float, pull: float, lo: float, hi: float
) -> np.ndarray:
    """A smooth bounded random walk (momentum 0.9, a spring towards 0), ``n`` values."""
    x, v = 0.0, 0.0
    out = np.empty(n)
    for t in range(n):
        out[t] = x
        v = 0.9 * v + rng.normal(0.0, sigma) - pull * x
        x = float(np.clip(x + v, lo, hi))
    return out


def plan_lighting(rng: np.random.Generator, n_frames: int) -> LightingPlan:
    """Smoothly drifting light: gain between about 0.2 and 1.3, a turning side light, a cast."""
    start = float(rng.uniform(np.log(0.35), 0.0))  # from dim to full light
    log_gain = start + _wander(rng, n_frames, 0.02, 0.004, np.log(0.2) - start, -start + 0.25)
    cast = np.exp(np.stack([_wander(rng, n_frames, 0.004, 0.01, -0.2, 0.2) for _ in range(3)], 1))
    angle = float(rng.uniform(0, 2 * np.pi)) + _wander(rng, n_frames, 0.01, 0.0, -np.pi, np.pi)
    strength = np.clip(0.3 + _wander(rng, n_frames, 0.01, 0.005, -0.3, 0.3), 0.0, 0.6)
    return LightingPlan(np.exp(log_gain), cast, angle, strength)


def apply_lighting(image: np.ndarray, plan: LightingPlan, t: int) -> np.ndarray:
    """Frame ``t`` under the plan's light: gain x cast x a linear side-light ramp."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.array([np.cos(plan.side_angle[t]), np.sin(plan.side_angle[t])], np.float32)
    span = abs(d[0]) * w + abs(d[1]) * h
    ramp = ((xs - w / 2) * d[0] + (ys - h / 2) * d[1]) / max(span, 1.0) + 0.5  # 0..1
    light = 1.0 - plan.side_strength[t] * (1.0 - ramp)
    factor = light[..., None] * (plan.gain[t] * plan.cast[t]).astype(np.float32)
    return np.clip(image.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def bursts(
    rng: np.random.Generator, n_frames: int, share: float, length: tuple[int, int]
) -> list[tuple[int, int]]:
    """Non-overlapping runs of frames [start, stop) covering about ``share`` of the clip."""
    taken = np.zeros(n_frames, bool)
    runs: list[tuple[int, int]] = []
    target = int(round(share * n_frames))
    for _ in range(10 * n_frames):
        if taken.sum() >= target:
            break
        n = int(rng.integers(length[0], length[1] + 1))
        start = int(rng.integers(0, max(1, n_frames - n + 1)))
        stop = min(n_frames, start + n)
        if taken[max(0, start - 1) : stop + 1].any():
            continue
        taken[start:stop] = True
        runs.append((start, stop))
    return sorted(runs)


def plan_hard(rng: np.random.Generator, n_frames: int, cfg: HardConfig | None = None) -> HardPlan:
    """Draw category 3's speed, exposure and bursts for one sequence."""
    cfg = cfg or HardConfig()
    plan = HardPlan(
        steps=np.ones(n_frames, int),
        shutter=float(rng.uniform(*cfg.shutter)),
        samples=cfg.blur_samples,
        noise_level=np.zeros(n_frames, int),
        lowres_level=np.zeros(n_frames, int),
    )
    for start, stop in bursts(rng, n_frames, cfg.fast_share, cfg.burst):
        plan.steps[start:stop] = int(rng.choice(cfg.fast_steps))
    plan.steps[0] = 0  # the first frame is where the walk starts
    for start, stop in bursts(rng, n_frames, cfg.noise_share, cfg.burst):
        plan.noise_level[start:stop] = int(rng.integers(1, 4))
    for start, stop in bursts(rng, n_frames, cfg.lowres_share, cfg.burst):
        plan.lowres_level[start:stop] = int(rng.integers(1, 4))
    for start, stop in bursts(rng, n_frames, cfg.strip_share, cfg.burst):
        orient = "h" if rng.random() < 0.5 else "v"
        thick = float(rng.uniform(0.15, 0.35))
        begin = float(rng.uniform(-0.1, 1.0 - thick))
        a = float(rng.uniform(-0.2, 0.5))
        b = a + float(rng.uniform(0.5, 1.0))
        fill = None if rng.random() < 0.5 else tuple(int(c) for c in rng.integers(0, 256, 3))
        for t in range(start, stop):
            plan.strips[t] = (orient, begin, thick, a, b, fill)  # type: ignore[assignment]
    return plan


def draw_strip(
    image: np.ndarray,
    box: np.ndarray,
    strip: tuple[str, float, float, float, float, tuple[int, int, int] | None],
    rng: np.random.Generator,
) -> np.ndarray:
    """An occluding strip over the face box (CRCT III-E's strip, placed in frame pixels)."""
    orient, begin, thick, a, b, fill = strip
    x, y, w, h = (float(v) for v in box)
    side = max(w, h)
    if orient == "h":  # a horizontal band across the face
        r0, r1 = y + begin * h, y + (begin + thick) * h
        c0, c1 = x + a * side, x + b * side
    else:
        c0, c1 = x + begin * w, x + (begin + thick) * w
        r0, r1 = y + a * side, y + b * side
    height, width = image.shape[:2]
    r0, r1 = int(np.clip(round(r0), 0, height)), int(np.clip(round(r1), 0, height))
    c0, c1 = int(np.clip(round(c0), 0, width)), int(np.clip(round(c1), 0, width))
    if r1 <= r0 or c1 <= c0:
        return image
    out = image.copy()
    if fill is None:
        out[r0:r1, c0:c1] = rng.integers(0, 256, (r1 - r0, c1 - c0, 3), dtype=np.uint8)
    else:
        out[r0:r1, c0:c1] = np.asarray(fill, np.uint8)
    return out


def _interpolated(transforms: np.ndarray, s: float) -> np.ndarray:
    """The (2, 3) still->frame map at fractional step ``s`` (linear between steps)."""
    s = float(np.clip(s, 0, len(transforms) - 1))
    i = min(int(np.floor(s)), len(transforms) - 2)
    f = s - i
    return (1 - f) * transforms[i] + f * transforms[i + 1]


def _compose(place: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (np.vstack([place, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]]))[:2]


def render_frames(
    seq: Sequence_,
    place: np.ndarray,
    n_frames: int,
    size: tuple[int, int],
    category: int = 1,
    extra_rng: np.random.Generator | None = None,
    hard: HardPlan | None = None,
    lighting: LightingPlan | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame RGB, ground-truth points) for each frame of a sequence in its category."""
    width, height = size
    positions = np.arange(n_frames) if hard is None else np.cumsum(hard.steps)
    for t in range(n_frames):
        centre = int(positions[t])
        if hard is None:
            frame = cv2_warp(seq.image, _compose(place, seq.transforms[t]), width, height)
        else:  # motion blur: the mean picture over a centred exposure window
            half = hard.shutter * max(1, int(hard.steps[t])) / 2
            acc = np.zeros((height, width, 3), np.float32)
            for s in np.linspace(centre - half, centre + half, hard.samples):
                m = _compose(place, _interpolated(seq.transforms, s))
                acc += cv2_warp(seq.image, m, width, height)
            frame = (acc / hard.samples + 0.5).astype(np.uint8)
        points = geometry.apply(place, seq.points[centre])
        if lighting is not None:
            frame = apply_lighting(frame, lighting, t)
        if hard is not None:
            assert extra_rng is not None
            if t in hard.strips:
                frame = draw_strip(frame, box_from_points(points), hard.strips[t], extra_rng)
            if hard.lowres_level[t]:
                frame = downsample(frame, int(hard.lowres_level[t]))
            if hard.noise_level[t]:
                frame = gaussian_noise(frame, int(hard.noise_level[t]), extra_rng)
        yield frame, points


def make_synthetic_videos(
    faces_dir: Path,
    out: Path,
    n_videos: int = 12,
    n_frames: int = 90,
    size: tuple[int, int] = (480, 360),
    face_px: float = 110.0,
    seed: int = 0,
    fps: float = 25.0,
    category: int = 1,
    origin: float | None = PTS_ORIGIN,
) -> list[Path]:
    """Write ``n_videos`` sequences of ``category`` under ``out``; return their folders.

    ``origin``: the coordinate the faces' .pts give the first pixel's centre. The stills are
    moved (and mirrored) on true pixel centres, and the frames' points are written counting
    them from 0 as crct, OpenCV and dlib do, so a mirrored face's markup is as exact as an
    upright one's. None: the points as read (sets written before it: the markup a pixel of the
    still right of and below its face, left of and below it once mirrored).
    """
    if category not in CATEGORIES:
        raise CrctError(f"--category must be 1, 2 or 3, got {category}")
    if n_videos < 1 or n_frames < 2:
        raise CrctError("--videos must be at least 1 and --frames at least 2")
    faces = load_faces([faces_dir], max_face=400.0, desc="faces", origin=origin)
    if n_videos > len(faces):
        raise CrctError(f"{faces_dir}: {len(faces)} faces, fewer than --videos {n_videos}")
    rng = np.random.default_rng(seed)
    width, height = size
    written = []
    for k, i in enumerate(rng.choice(len(faces), size=n_videos, replace=False)):
        face = faces[int(i)]
        extra = np.random.default_rng([seed, category, k])
        hard = plan_hard(extra, n_frames) if category == 3 else None
        lighting = plan_lighting(extra, n_frames) if category == 2 else None
        # the still's own augmentation (degradation, colour) is off: a clean, moving face
        clean = AugmentConfig(flip=0.5, degradation=0.0, color=0.0, grayscale=0.0)
        length = n_frames if hard is None else int(hard.steps.sum()) + 2
        seq = synth_sequence(face, length, rng, clean, pull=0.08)
        box = box_from_points(face.points)
        center, side = geometry.box_center_size(box)
        place = geometry.crop_matrix(
            center, side * max(width, height) / face_px, max(width, height)
        )
        place[:, 2] -= [(max(width, height) - width) / 2, (max(width, height) - height) / 2]
        folder = out / f"{k + 1:03d}"
        (folder / "annot").mkdir(parents=True, exist_ok=True)
        frames = render_frames(seq, place, n_frames, size, category, extra, hard, lighting)
        with VideoWriter(folder / "vid.mp4", fps, width, height) as writer:
            for t, (frame, points) in enumerate(frames):
                writer.write(frame)
                write_pts(folder / "annot" / f"{t + 1:06d}.pts", points)
        written.append(folder)
    return written


def add_origin_argument(parser: argparse.ArgumentParser) -> None:
    """The generators' ``--origin`` (``make_synthetic_videos``'s ``origin``)."""
    parser.add_argument(
        "--origin",
        type=float,
        default=PTS_ORIGIN,
        help="the coordinate the faces' .pts give the first pixel's centre (300-W: 1, the "
        "default); the frames' .pts count pixel centres from 0",
    )


def cv2_warp(image: np.ndarray, m: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("faces", type=Path, help="folder of image + .pts pairs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--category",
        type=int,
        default=1,
        help="1 gentle motion (default), 2 lighting drift, 3 fast motion, blur, strips, "
        "noise, low-resolution bursts",
    )
    add_origin_argument(parser)
    args = parser.parse_args(argv)
    try:
        folders = make_synthetic_videos(
            args.faces,
            args.out,
            args.videos,
            args.frames,
            seed=args.seed,
            category=args.category,
            origin=args.origin,
        )
    except CrctError as exc:
        print(f"synth_video: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for folder in folders:
        print(folder)


if __name__ == "__main__":
    main()
