"""The four FADeNN image degradations (paper section IV-A), three levels each.

Used by ``crct degrade`` to build the 300W-Test-N style sets and, with the same functions, by
training augmentation, so what the models learn from is exactly what they are scored on.
Images are uint8 arrays, (H, W) or (H, W, C); the output has the input's shape and dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from crct_cli.errors import CrctError

#: Paper values per level (index 0 is level 1).
DOWNSAMPLE_FACTORS = (2, 4, 8)
BLUR_SIGMAS = (1.0, 3.0, 5.0)
NOISE_VARIANCES = (0.001, 0.005, 0.01)
INTENSITY_SCALES = (0.8, 0.5, 0.2)

#: Class order used by the noise classifier: 0 is clean, then one class per type.
NOISE_TYPES: tuple[str, ...] = ("downsample", "blur", "noise", "scale")
LEVELS = (1, 2, 3)
#: Other names a user may type: the FADeNN paper calls ``scale`` colour scaling.
NOISE_ALIASES: dict[str, str] = {"color": "scale", "colour": "scale"}


def canonical_noise_type(name: str) -> str:
    """The name in :data:`NOISE_TYPES` for ``name`` or one of its aliases (``color`` -> ``scale``),
    so outputs, folders and seeds never depend on which name was typed."""
    return NOISE_ALIASES.get(name.lower(), name.lower())


def downsample(image: np.ndarray, level: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Down-sample to 1/2, 1/4 or 1/8 of the resolution per side, then back to full size."""
    factor = DOWNSAMPLE_FACTORS[level - 1]
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(image.shape)


def blur(image: np.ndarray, level: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Gaussian blur with sigma 1, 3 or 5 pixels."""
    sigma = BLUR_SIGMAS[level - 1]
    out = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return out.reshape(image.shape)


def gaussian_noise(
    image: np.ndarray, level: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Additive zero-mean Gaussian noise of variance 0.001, 0.005 or 0.01 on [0, 1] intensities."""
    rng = rng if rng is not None else np.random.default_rng()
    std = float(np.sqrt(NOISE_VARIANCES[level - 1]))
    noisy = image.astype(np.float32) / 255.0 + rng.normal(0.0, std, image.shape).astype(np.float32)
    return (np.clip(noisy, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def intensity_scale(
    image: np.ndarray, level: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Scale pixel intensities linearly by 0.8, 0.5 or 0.2 (darkening)."""
    scale = INTENSITY_SCALES[level - 1]
    return (image.astype(np.float32) * scale + 0.5).astype(np.uint8)


DEGRADATIONS: dict[str, Callable[..., np.ndarray]] = {
    "downsample": downsample,
    "blur": blur,
    "noise": gaussian_noise,
    "scale": intensity_scale,
}


def check_noise(noise_type: str, level: int) -> None:
    """Raise :class:`CrctError` for an unknown type or a level outside 0..3."""
    if noise_type not in DEGRADATIONS:
        raise CrctError(
            f"unknown noise type {noise_type!r}; choose one of {', '.join(NOISE_TYPES)} "
            "(color is another name for scale)"
        )
    if level not in (0, *LEVELS):
        raise CrctError(f"noise level must be 0, 1, 2 or 3, got {level}")


def degrade(
    image: np.ndarray, noise_type: str, level: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Apply one degradation; level 0 returns an unchanged copy."""
    check_noise(noise_type, level)
    if image.dtype != np.uint8:
        raise CrctError(f"expected a uint8 image, got {image.dtype}")
    if level == 0:
        return image.copy()
    return DEGRADATIONS[noise_type](image, level, rng)


def noise_class(noise_type: str | None) -> int:
    """Class index for the noise classifier: 0 clean, 1..4 in :data:`NOISE_TYPES` order."""
    return 0 if noise_type is None else NOISE_TYPES.index(noise_type) + 1


def random_degradation(
    image: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, str | None, int]:
    """With probability ``p`` apply a random type and level; return (image, type, level)."""
    if rng.random() >= p:
        return image, None, 0
    noise_type = NOISE_TYPES[int(rng.integers(len(NOISE_TYPES)))]
    level = int(rng.integers(1, 4))
    return degrade(image, noise_type, level, rng), noise_type, level
