"""Faces in memory and the augmentation of the papers, shared by every trainer.

Augmentation (CRCT III-E, FADeNN III-D): horizontal flips with the 68-point permutation,
rotations within +-45 degrees, occluding strips, plus the degradations of ``crct degrade``
(same functions) and box jitter that mimics detector and tracker error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from crct_cli import geometry
from crct_cli.errors import CrctError
from crct_cli.io.images import IMAGE_SUFFIXES, read_image
from crct_cli.io.landmarks import read_pts
from crct_cli.io.video import h264_roundtrip
from crct_cli.landmarks import FLIP_PERMUTATION, box_from_points
from crct_cli.noise import random_degradation


@dataclass
class Face:
    name: str
    image: np.ndarray  # RGB uint8
    points: np.ndarray  # (68, 2) pixels


def data_name(folder: str | Path) -> str:
    """A data folder as the manifest records it: its last two path parts (``300w/afw``)."""
    parts = Path(folder).resolve().parts
    return "/".join(parts[-2:])


def list_pairs(roots: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """Image + ``.pts`` pairs under the given folders (recursive), sorted for reproducibility."""
    pairs: list[tuple[Path, Path]] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise CrctError(f"{root}: no such data folder")
        for pts in sorted(root.rglob("*.pts")):
            for suffix in IMAGE_SUFFIXES:
                image = pts.with_suffix(suffix)
                if image.is_file():
                    pairs.append((image, pts))
                    break
    if not pairs:
        raise CrctError(f"no image + .pts pairs found under {', '.join(map(str, roots))}")
    return pairs


def load_faces(
    roots: Sequence[str | Path],
    max_face: float = 160.0,
    desc: str = "loading faces",
    origin: float | None = None,
) -> list[Face]:
    """Read every pair into memory, downscaled so that the landmark box is at most ``max_face``.

    ``origin``: the coordinate the files give the first pixel's centre (300-W's .pts count
    from 1). Given, the points become pixel centres counted from 0, as crops, flips and
    rescales compute them, and a rescale maps them exactly. None keeps the points as read
    and scales them with the image (how the shipped weights before it were trained).
    """
    return load_pairs(list_pairs(roots), max_face, desc, origin)


def load_pairs(
    pairs: Sequence[tuple[Path, Path]],
    max_face: float = 160.0,
    desc: str = "loading faces",
    origin: float | None = None,
) -> list[Face]:
    """:func:`load_faces` for the given (image, .pts) pairs."""
    faces = []
    for image_path, pts_path in tqdm(pairs, desc=desc, leave=False):
        image = read_image(image_path)
        points = read_pts(pts_path)
        if origin is not None:
            points = points - origin
        side = float(max(box_from_points(points)[2:]))
        if side > max_face:
            f = max_face / side
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            # cv2.resize maps pixel centres as (x + 0.5) * f - 0.5
            points = points * f if origin is None else (points + 0.5) * f - 0.5
        faces.append(Face(str(image_path), image, points))
    return faces


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentation."""

    flip: float = 0.5
    big_rotation: float = 0.35  # share of samples rotated uniformly in +-max_rotation
    max_rotation: float = 45.0
    small_rotation_std: float = 8.0
    shift_std: float = 0.05  # box centre jitter, in box sides
    scale_std: float = 0.08  # log-scale jitter of the box side
    occlusion: float = 0.3
    degradation: float = 0.25
    color: float = 0.8
    grayscale: float = 0.1
    stack: float = 0.0  # chance that a degraded picture gets another degradation, repeatedly
    shadow: float = 0.0  # chance of a dark band across the crop (a shadow, a dark strip)
    shadow_dark: float = 0.0  # share of those bands as dark as hard footage's strip (see below)
    small_face: float = 0.0  # chance the face is first brought down to video size (see below)
    small_face_px: tuple[float, float] = (40.0, 140.0)  # landmark box side drawn in, log-uniform
    motion_blur: float = 0.0  # chance the face is smeared along a straight path (see below)
    motion_blur_len: tuple[float, float] = (0.02, 0.6)  # its length in box sides, log-uniform
    compression: float = 0.0  # chance the crop is last compressed as a video frame (see below)
    shape_warp: float = 0.0  # chance the crop is bent by a smooth random warp (see below)
    shape_warp_std: float = 0.03  # its control points' displacement, in crop sides


NO_AUGMENT = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def small_face_scale(points: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> float:
    """The factor (at most 1) that brings the face's landmark box to a side drawn log-uniformly
    in ``aug.small_face_px``, with probability ``aug.small_face``; 1 otherwise.

    The photographs are read with a 160-px box, while faces in video are often 60-120 px: the
    same blur or noise, in pixels, hides far more of a small face. Shrinking first makes the
    degradations that follow (and the crop's upsampling) what FLL meets on such footage. Draws
    nothing from ``rng`` when the share is 0, so earlier commands reproduce their weights."""
    if aug.small_face <= 0 or rng.random() >= aug.small_face:
        return 1.0
    low, high = np.log(aug.small_face_px)
    side = float(max(box_from_points(points)[2:]))
    return min(1.0, float(np.exp(rng.uniform(low, high))) / max(side, 1.0))


def motion_smear(image: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """The picture averaged along a straight path of ``length`` pixels in a random direction,
    centred on where it was: what a camera records of a face that moves while the shutter is
    open, with the points (the truth) at the middle of the exposure."""
    angle = rng.uniform(0.0, np.pi)
    half = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    size = 2 * int(np.ceil(length / 2)) + 3
    kernel = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    # the path as a line drawn with 8 bits of sub-pixel precision, anti-aliased
    a = np.round((c - half) * 256).astype(int)
    b = np.round((c + half) * 256).astype(int)
    cv2.line(kernel, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1.0, 1, cv2.LINE_AA, 8)
    kernel = kernel + kernel[::-1, ::-1]  # symmetric about the centre: no shift of the face
    if kernel.sum() <= 0:
        return image
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def motion_blur_length(points: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> float:
    """With probability ``aug.motion_blur``, a smear length in pixels: a share of the face's
    landmark-box side drawn log-uniformly in ``aug.motion_blur_len``; 0 otherwise.

    The photographs are sharp, while a face in video is smeared whenever it moves fast (a
    head turning, a camera shaking); FLL that never saw a smear reads one badly even in the
    right box. Draws nothing from ``rng`` when the share is 0, so earlier commands reproduce
    their weights."""
    if aug.motion_blur <= 0 or rng.random() >= aug.motion_blur:
        return 0.0
    low, high = np.log(aug.motion_blur_len)
    return float(np.exp(rng.uniform(low, high))) * float(max(box_from_points(points)[2:]))


#: Control points of :func:`shape_warp` per side of the crop (corners included).
SHAPE_WARP_GRID = 4


def shape_warp(
    crop: np.ndarray, points: np.ndarray, rng: np.random.Generator, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """The crop bent by a smooth random field, and its points moved with it.

    A similarity keeps a face's shape; with 1,675 training faces FLL sees few shapes and
    may learn them. A field drawn on a coarse grid (``std`` crop sides per control point,
    cubic in between) widens a jaw, moves an eye or lengthens a nose as other people's
    faces differ, while the picture stays a face. Output pixel q shows input pixel
    q + d(q); a point p goes to the q with q + d(q) = p, found by fixed-point steps (the
    field is smooth and small, so a few suffice)."""
    size = crop.shape[0]
    control = rng.normal(0.0, std * size, (2, SHAPE_WARP_GRID, SHAPE_WARP_GRID))
    field_x, field_y = (
        cv2.resize(c.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        for c in control
    )
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    out = cv2.remap(
        crop,
        grid_x + field_x,
        grid_y + field_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    moved = points.astype(np.float64)
    for _ in range(8):
        moved = points - np.stack([_bilinear(field_x, moved), _bilinear(field_y, moved)], 1)
    return out, moved.astype(points.dtype)


def _bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``image`` read at sub-pixel ``points`` (x, y), its edge carried on beyond it."""
    h, w = image.shape
    x = np.clip(points[:, 0], 0, w - 1)
    y = np.clip(points[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def random_similarity(
    box: np.ndarray, rng: np.random.Generator, aug: AugmentConfig
) -> tuple[np.ndarray, float, float, bool]:
    """Jittered centre, side factor, angle and flip for a crop around ``box``."""
    center, side = geometry.box_center_size(box)
    shift = np.clip(rng.normal(0.0, aug.shift_std, 2), -3 * aug.shift_std, 3 * aug.shift_std)
    center = center + shift * side
    factor = float(np.exp(np.clip(rng.normal(0.0, aug.scale_std), -0.25, 0.25)))
    if rng.random() < aug.big_rotation:
        angle = float(rng.uniform(-aug.max_rotation, aug.max_rotation))
    else:
        angle = float(rng.normal(0.0, aug.small_rotation_std))
    flip = bool(rng.random() < aug.flip)
    return center, factor, angle, flip


def photometric(crop: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """Colour jitter, grayscale, occluding strips, a dark band and (last, as a video would)
    compression, on a uint8 crop."""
    out = crop
    if rng.random() < aug.color:
        gain = rng.uniform(0.7, 1.3, 3) * rng.uniform(0.7, 1.3)
        bias = rng.uniform(-25, 25)
        out = np.clip(out.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    if rng.random() < aug.grayscale:
        gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    if rng.random() < aug.occlusion:
        out = occluding_strip(out, rng)
    if aug.shadow > 0 and rng.random() < aug.shadow:  # no draw at 0: old commands reproduce
        out = shadow_band(out, rng, aug.shadow_dark)
    if aug.compression > 0 and rng.random() < aug.compression:  # no draw at 0, as above
        out = h264_roundtrip(out, rng.uniform(*COMPRESSION_CRF))
    return out


#: The H.264 quality a compressed crop is drawn at (CRF, uniform): from what ``crct``'s own
#: videos are written at (20) to what streaming and archives settle for. Video frames lose
#: more than a single intra frame does at the same CRF, so the range reaches past them.
COMPRESSION_CRF = (18.0, 36.0)


#: The light a dark band leaves: any shadow, and (``shadow_dark``) the darkest, as deep as
#: the strip of hard footage (``crct_cli.bench.hard_video``, 10% of an already dimmed frame).
SHADOW_GAIN = (0.05, 0.5)
DARK_SHADOW_GAIN = (0.05, 0.15)


def shadow_band(crop: np.ndarray, rng: np.random.Generator, dark: float = 0.0) -> np.ndarray:
    """A band across the whole crop at any angle, its pixels darkened to 5-50% of their
    intensity (5-15% for a share ``dark`` of bands): unlike a flat strip, what lies under it is
    still faintly there, as under a shadow or the dark strip of hard footage, and FLL should
    read through it. Draws nothing more at ``dark`` 0, so earlier commands reproduce."""
    size = crop.shape[0]
    thick = rng.uniform(0.1, 0.5) * size
    angle = rng.uniform(0.0, np.pi)
    centre = rng.uniform(0.2, 0.8, 2) * size
    deep = dark > 0 and rng.random() < dark
    gain = rng.uniform(*(DARK_SHADOW_GAIN if deep else SHADOW_GAIN))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = (xs - centre[0]) * np.sin(angle) - (ys - centre[1]) * np.cos(angle)
    inside = np.abs(distance) < thick / 2
    out = crop.copy()
    out[inside] = (out[inside].astype(np.float32) * gain).astype(np.uint8)
    return out


def occluding_strip(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An artificial strip across part of the crop (CRCT III-E): flat colour or noise."""
    out = crop.copy()
    size = crop.shape[0]
    thick = int(rng.uniform(0.08, 0.3) * size)
    start = int(rng.uniform(0, size - thick))
    a, b = sorted(rng.uniform(0, size, 2).astype(int))
    b = max(b, a + size // 4)
    if rng.random() < 0.5:
        fill = rng.integers(0, 256, (thick, min(b, size) - a, 3), dtype=np.uint8)
    else:
        fill = np.full((thick, min(b, size) - a, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    if rng.random() < 0.5:
        out[start : start + thick, a : a + fill.shape[1]] = fill
    else:
        out[a : a + fill.shape[1], start : start + thick] = fill.transpose(1, 0, 2)
    return out


def training_degradation(
    image: np.ndarray, rng: np.random.Generator, aug: AugmentConfig
) -> np.ndarray:
    """With probability ``aug.degradation`` one degradation of ``crct degrade`` (any type and
    level); then, with probability ``aug.stack`` each time, one more (blur + noise + dark, say,
    as on hard footage). Draws nothing more from ``rng`` when ``stack`` is 0."""
    image, kind, _ = random_degradation(image, rng, aug.degradation)
    while kind is not None and aug.stack > 0 and rng.random() < aug.stack:
        image, kind, _ = random_degradation(image, rng, 1.0)
    return image


def degradation_options(aug: AugmentConfig) -> list[str]:
    """``--degradation P --stack Q [--shadow S [--shadow-dark D]] [--small-face F]
    [--motion-blur M [--motion-blur-max L]] [--compression C] [--shape-warp W]`` for a
    recorded ``crct train`` command, when they are not the defaults (so earlier weight files'
    commands read as they did)."""
    default = AugmentConfig()
    extra = ["--shadow", str(aug.shadow)] if aug.shadow else []
    extra += ["--shadow-dark", str(aug.shadow_dark)] if aug.shadow_dark else []
    extra += ["--small-face", str(aug.small_face)] if aug.small_face else []
    extra += ["--motion-blur", str(aug.motion_blur)] if aug.motion_blur else []
    if aug.motion_blur and aug.motion_blur_len != default.motion_blur_len:
        extra += ["--motion-blur-max", str(aug.motion_blur_len[1])]
    extra += ["--compression", str(aug.compression)] if aug.compression else []
    extra += ["--shape-warp", str(aug.shape_warp)] if aug.shape_warp else []
    if (aug.degradation, aug.stack) == (default.degradation, default.stack):
        return extra
    return ["--degradation", str(aug.degradation), "--stack", str(aug.stack), *extra]


def augmented_crop(
    face: Face,
    rng: np.random.Generator,
    out_size: int,
    context: float,
    aug: AugmentConfig,
    box: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One training crop and its points in crop pixels (flip permutation applied)."""
    box = box_from_points(face.points) if box is None else box
    center, factor, angle, flip = random_similarity(box, rng, aug)
    side = geometry.box_center_size(box)[1] * context * factor
    return framed_crop(face, rng, out_size, center, side, angle, flip, aug)


def framed_crop(
    face: Face,
    rng: np.random.Generator,
    out_size: int,
    center: np.ndarray,
    side: float,
    angle: float,
    flip: bool,
    aug: AugmentConfig,
    replicate: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The crop of a given square (centre, side, angle, flip) with the appearance augmentation
    (a smaller face, a motion smear and degradation before cropping, photometric after), and
    its points in crop pixels; ``replicate``: beyond the picture, its edge carried on."""
    image, face_points = face.image, face.points
    scale = small_face_scale(face_points, rng, aug)
    if scale < 1.0:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # cv2.resize maps pixel centres as (x + 0.5) * f - 0.5: the points follow exactly
        factor = np.array([size[0] / w, size[1] / h])
        face_points = (face_points + 0.5) * factor - 0.5
        center, side = (center + 0.5) * factor - 0.5, side * scale
    smear = motion_blur_length(face_points, rng, aug)
    if smear > 0:
        image = motion_smear(image, smear, rng)
    matrix = geometry.crop_matrix(center, side, out_size, angle, flip)
    if aug.degradation > 0:
        image = training_degradation(image, rng, aug)
    crop = geometry.warp(image, matrix, out_size, replicate)
    points = geometry.apply(matrix, face_points)
    if aug.shape_warp > 0 and rng.random() < aug.shape_warp:  # no draw at 0, as below
        crop, points = shape_warp(crop, points, rng, aug.shape_warp_std)
    if flip:
        points = points[list(FLIP_PERMUTATION)]
    return photometric(crop, rng, aug), points


def to_tensor_batch(crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) crops (or one (B, H, W, 3) array) -> float32 (B, 3, H, W) in [0, 1]."""
    # np.stack reads an array as the sequence of its rows; its stub asks for a Sequence
    stacked = np.stack(crops)  # type: ignore[arg-type]
    return stacked.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
