"""Still images: read as RGB uint8, write atomically. RGB is the order used everywhere in crct."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

from crct_cli.errors import CrctError, os_reason
from crct_cli.io.atomic import atomic_path

#: HEIC/HEIF, a phone's photos (an iPhone's by default): read and written through pillow-heif,
#: the optional extra ``crct[heif]``
HEIF_SUFFIXES = (".heic", ".heif")
#: AVIF is OpenCV's to read and write where its build has libavif (else one line per file)
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".avif", *HEIF_SUFFIXES
)  # fmt: skip
#: the largest picture read (width x height): decoding and detecting take about 80 bytes a
#: pixel, and a few kilobytes of PNG can claim 20,000 x 20,000; a 61-megapixel camera fits
MAX_IMAGE_PIXELS = 100_000_000


def _white(image: np.ndarray) -> float:
    """The value that reads as white in a picture deeper than 8 bits: the top of the bit depth
    its values fit (a lab camera's 10, 12 or 14 bits stored in 16; 16), so every frame of a
    sequence is read alike (not each by its own brightest pixel, which made one highlight dim
    the whole frame); a float picture's 1.0, or 255 where its values run past 1."""
    top = float(image.max()) if image.size else 0.0
    if np.issubdtype(image.dtype, np.floating):
        return 1.0 if top <= 1.0 else (255.0 if top <= 255.0 else top)
    for bits in (10, 12, 14, 16):
        if top < 2**bits:
            return float(2**bits - 1)
    return max(1.0, top)  # 32-bit integers: their own largest value


class UnreadableImage(CrctError):
    """An image file that cannot be read or decoded (damaged, cut short, not an image): a photo
    fails alone, a frame of an image sequence is passed over (:mod:`crct_cli.io.sequence`)."""


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike[str], white: float | None = None) -> np.ndarray:
    """Read an image as (H, W, 3) RGB uint8, upright as a viewer shows it; grayscale and RGBA
    inputs are converted, deeper ones scaled (``white``: the value read as white, by default
    the top of the bit depth the picture's values fit, :func:`read_deep_image`).

    A phone's JPEG often stores the picture sideways with an EXIF orientation tag; it is turned
    as the tag says (as the display matrix of a phone's video is), so its points are where a
    viewer sees the face. Files without the tag (300-W's, every ground truth here) are read as
    they are stored."""
    return read_deep_image(path, white)[0]


def read_deep_image(
    path: str | os.PathLike[str], white: float | None = None
) -> tuple[np.ndarray, float | None]:
    """:func:`read_image`, and the value read as white where the picture is deeper than 8 bits
    (None for 8 bits): an image sequence reads every frame with its first frame's, so that one
    frame's highlight does not change how bright the others are."""
    path = Path(path)
    if path.is_dir():
        raise CrctError(f"{path}: a folder, not an image (crct align takes folders)")
    if not path.is_file():
        raise CrctError(f"{path}: no such image file")
    if path.suffix.lower() in HEIF_SUFFIXES:
        return _read_heif(path), None
    _check_pixels(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot read ({os_reason(exc)})") from None
    # any depth and channel count, EXIF orientation applied (IMREAD_UNCHANGED would ignore it);
    # an alpha channel is dropped, as it always was
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise UnreadableImage(f"{path}: not a readable image (corrupt or unsupported format)")
    top = None
    if image.dtype != np.uint8:
        top = white if white is not None else _white(image)
        image = cv2.convertScaleAbs(image, alpha=255.0 / top)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), top
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), top
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), top


@functools.cache
def _heif() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif) once, or say in one line how to (each time)."""
    try:
        import pillow_heif
    except ImportError:
        raise CrctError(
            "HEIC/HEIF photos need pillow-heif: pip install 'crct[heif]' "
            "(or convert them to JPEG first)"
        ) from None
    pillow_heif.register_heif_opener()


def _read_heif(path: Path) -> np.ndarray:
    """A HEIC/HEIF photo as RGB uint8, its EXIF orientation applied (as :func:`read_image`)."""
    from PIL import Image, ImageOps

    try:
        _heif()
    except CrctError as exc:
        raise CrctError(f"{path}: {exc}") from None
    try:
        with Image.open(path) as picture:
            width, height = picture.size
            if width * height > MAX_IMAGE_PIXELS:
                raise CrctError(
                    f"{path}: {width} x {height} pixels is too large (crct reads at most "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels); resize it first"
                )
            upright = ImageOps.exif_transpose(picture).convert("RGB")
            return np.asarray(upright, dtype=np.uint8).copy()
    except CrctError:
        raise
    except Exception:  # Pillow's and libheif's own errors: a damaged or unsupported file
        raise UnreadableImage(
            f"{path}: not a readable image (corrupt or unsupported format)"
        ) from None


def _check_pixels(path: Path) -> None:
    """Refuse a picture larger than :data:`MAX_IMAGE_PIXELS` from its header alone, before
    anything is decoded (a format Pillow does not know is left to OpenCV to judge)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                width, height = picture.size
    except Image.DecompressionBombError:  # beyond Pillow's own limit, which is above ours
        size = f"more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
    except Exception:  # not an image Pillow reads (or not one at all): OpenCV says which
        return
    else:
        if width * height <= MAX_IMAGE_PIXELS:
            return
        size = f"{width} x {height} pixels"
    raise CrctError(
        f"{path}: {size} is too large (crct reads at most "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels); resize it first"
    )


#: ``write_image(keep_detail=True)``'s encoder settings: JPEG at quality 95 without chroma
#: subsampling (OpenCV's default halves the colour resolution, which takes about half the
#: variance of per-channel noise away), WebP lossless.
_DETAIL_PARAMS: dict[str, list[int]] = {
    ".jpg": [
        cv2.IMWRITE_JPEG_QUALITY,
        95,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ],
    ".webp": [cv2.IMWRITE_WEBP_QUALITY, 101],
}
_DETAIL_PARAMS[".jpeg"] = _DETAIL_PARAMS[".jpg"]


def write_image(path: str | os.PathLike[str], image: np.ndarray, keep_detail: bool = False) -> None:
    """Write an RGB (or grayscale) uint8 image; the format follows the suffix.

    ``keep_detail``: where the format is lossy, keep pixel-level detail such as added noise
    (``crct degrade``: a noise set written at OpenCV's default JPEG settings keeps about 0.72
    of its noise's standard deviation, at these 1.0), at about twice the file size."""
    path = Path(path)
    if path.suffix.lower() in HEIF_SUFFIXES:
        buf = _heif_bytes(path, image)
    else:
        encoded = encode_image(path.suffix or ".png", image, keep_detail)
        if encoded is None:
            raise CrctError(f"{path}: cannot encode image as {path.suffix}")
        buf = encoded
    try:
        with atomic_path(path) as tmp:
            buf.tofile(str(tmp))
    except OSError as exc:
        raise CrctError(f"{path}: cannot write ({exc.strerror})") from None


def encode_image(suffix: str, image: np.ndarray, keep_detail: bool = False) -> np.ndarray | None:
    """An RGB (or grayscale) uint8 image's bytes in the format of ``suffix`` (OpenCV's formats,
    not HEIF), as :func:`write_image` writes them; None where OpenCV cannot."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = _DETAIL_PARAMS.get(suffix.lower(), []) if keep_detail else []
    ok, buf = cv2.imencode(suffix, bgr, params)
    return buf if ok else None


def _heif_bytes(path: Path, image: np.ndarray) -> np.ndarray:
    """``image`` encoded as HEIF (``crct denoise`` and ``crct degrade`` write a photo as it
    came), at high quality: the output is read again, by crct or by a person."""
    import io

    from PIL import Image

    try:
        _heif()
    except CrctError as exc:
        raise CrctError(f"{path}: {exc}") from None
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="HEIF", quality=95)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)
