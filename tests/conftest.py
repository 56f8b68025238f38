"""Shared fixtures: synthetic face-like pictures and short videos, generated in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest


def draw_face(width: int, height: int, t: float = 0.0) -> np.ndarray:
    """A cartoon face (skin oval, eyes, brows, nose, mouth) that drifts and nods with ``t``.

    Deterministic, so a test can recompute the picture it expects after a decode.
    """
    image = np.full((height, width, 3), (40, 70, 110), np.uint8)
    cx = width * (0.5 + 0.12 * np.sin(2 * np.pi * t))
    cy = height * (0.5 + 0.06 * np.cos(2 * np.pi * t))
    s = min(width, height) / 100.0
    c = (int(round(cx)), int(round(cy)))

    def at(dx: float, dy: float) -> tuple[int, int]:
        return int(round(cx + dx * s)), int(round(cy + dy * s))

    cv2.ellipse(image, c, (int(28 * s), int(38 * s)), 0, 0, 360, (225, 180, 150), -1)
    for side in (-1, 1):
        cv2.ellipse(image, at(side * 11, -8), (int(6 * s), int(3 * s)), 0, 0, 360, (250,) * 3, -1)
        cv2.circle(image, at(side * 11, -8), max(1, int(2 * s)), (30, 20, 10), -1)
        cv2.line(image, at(side * 17, -17), at(side * 5, -18), (80, 50, 30), max(1, int(2 * s)))
    cv2.line(image, at(0, -4), at(0, 10), (170, 120, 100), max(1, int(2 * s)))
    cv2.ellipse(image, at(0, 20), (int(10 * s), int(4 * s)), 0, 0, 180, (150, 40, 50), -1)
    return image


def write_synthetic_video(
    path: Path,
    n_frames: int = 20,
    width: int = 96,
    height: int = 72,
    fps: float | Fraction = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``draw_face`` frames with PyAV directly (independent of crct's own writer);
    ``container_options`` go to the muxer (``{"movflags": "faststart"}``: the index first)."""
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(draw_face(width, height, i / 25.0), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def face_image() -> Callable[..., np.ndarray]:
    """``face_image(width, height, t=0.0)`` -> (H, W, 3) RGB uint8 cartoon face."""
    return draw_face


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video(name="clip.mp4", n_frames=20, width=96, height=72, fps=25, codec=...,
    pix_fmt=..., rotation=None)`` -> path of a short synthetic face video in tmp_path."""

    def make(name: str = "clip.mp4", **kwargs: object) -> Path:
        return write_synthetic_video(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session", autouse=True)
def _graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The ONNX graphs the tests export go to a cache of this session, not the user's."""
    import os

    from crct_cli.runtime.cache import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("crct-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before
