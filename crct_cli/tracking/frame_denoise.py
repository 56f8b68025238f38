"""Frames cleaned of sensor noise before the networks see them: a motion-adaptive temporal filter.

Why: on dim, noisy footage (a webcam in low light; issue 16's hard sets) the noise of each frame
is new, while the face under it has hardly moved from one frame to the next. Each pixel is
averaged with the same pixel of the frames around it (``radius`` each way on a video file, the
``radius`` before it on a live stream) with a weight that falls off as their blurred grey levels
differ by more than the noise explains: where the scene stood still the noise averages out, a
moving edge keeps its own frame's pixels, and a frame that differs everywhere (a cut, a flash)
keeps its own.

The noise is estimated in every frame (Immerkaer's fast estimator); the strength follows the
median over the frame and the :data:`NOISE_WINDOW` frames before it, the camera's noise rather
than one picture's (a dark band reads lower). Only footage that is noisy throughout is
filtered: a frame is averaged when it and those frames before it all hold ``threshold`` grey
levels of noise or more (a dim camera, not a moment's noise between clean frames); anything
else passes untouched, so clean video tracks exactly as without the filter, at the cost of the
estimate. A file's first frames have fewer frames before them, so there the video's first
:data:`NOISE_WINDOW` + 1 frames decide together (a noise burst as a video opens is a burst,
not a dim camera); a live stream cannot wait for them. Frames of 720p and more are compared
shrunk (:data:`COMPARE_SHORT_SIDE`), their weights enlarged to average the full-size pixels.
Measured in docs/benchmarks.md (sessions 38, 40 and 43).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from crct_cli.errors import CrctError, option_error

if TYPE_CHECKING:  # PyAV stays unloaded until a video is read
    from crct_cli.io.video import Frame

#: ``crct track --temporal-denoise``'s default
TEMPORAL_DENOISE = True

#: Immerkaer (1996): the difference of two Laplacians, [[1, -2, 1], [-2, 4, -2], [1, -2, 1]],
#: blind to a picture's smooth parts; separable, so applied as these taps along each axis
_NOISE_TAPS = np.array([1, -2, 1], dtype=np.float32)
#: a frame is filtered when it and this many frames before it are all noisy (a second at 25 fps)
NOISE_WINDOW = 24
#: the most pixels a file's first frames may hold while the first second decides (as ``--backfill``)
OPENING_MB = 200
#: the widest ``--temporal-radius``: half a second each way at 25 fps, 25 frames held
MAX_RADIUS = 12
#: frames whose short side is at least twice this are compared (and their weights made) shrunk
#: by a whole factor k to about this: 720p at half size, 1080p at a third. The blurred
#: comparison is as smooth (an area average of k x k pixels, then a blur of sigma / k, takes
#: the noise down about as the blur of sigma does at full size) and costs 1 / k^2; a face fills
#: as many compared pixels as in a 640x360 video of the same scene, which compares at full size
COMPARE_SHORT_SIDE = 360


def compare_factor(shape: tuple[int, ...]) -> int:
    """By how much a frame of ``shape`` is shrunk before frames are compared (1: not)."""
    return max(1, min(shape[:2]) // COMPARE_SHORT_SIDE)


def noise_level(grey: np.ndarray) -> float:
    """The standard deviation of a picture's additive noise, in grey levels (Immerkaer, 1996).

    Edges and texture raise it a little: clean video measures 0.1-1.7 here, the hard sets'
    noise (level 2 of ``crct degrade``, halved in intensity, then H.264) about 4-5.
    """
    grey = np.asarray(grey)
    if grey.ndim != 2 or grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    depth = cv2.CV_16S if grey.dtype == np.uint8 else cv2.CV_32F
    response = cv2.sepFilter2D(grey, depth, _NOISE_TAPS, _NOISE_TAPS)[1:-1, 1:-1]
    mean = cv2.norm(response, cv2.NORM_L1) / response.size
    return float(np.sqrt(np.pi / 2) * mean / 6)


@dataclass(frozen=True)
class FrameDenoiseConfig:
    """``crct track --temporal-denoise``'s settings (the defaults chosen in session 38)."""

    radius: int = 2  #: frames each way (a file) or before (a live stream); 0: off
    #: a neighbour's pixel counts by exp(-(d / (strength x noise))^2), d its blurred grey difference
    strength: float = 0.8
    threshold: float = 2.5  #: grey levels of noise below which frames pass untouched
    blur: float = 2.0  #: sigma (pixels) of the blur before frames are compared

    def check(self, error: type[Exception] = CrctError) -> None:
        if not 0 <= self.radius <= MAX_RADIUS:
            raise option_error(
                error,
                "temporal_radius",
                f"must be 0 (off) to {MAX_RADIUS} frames, got {self.radius}",
            )
        if not 0 < self.strength < math.inf:
            raise option_error(error, "temporal_strength", f"must be > 0, got {self.strength}")
        if not 0 <= self.threshold < math.inf:
            raise option_error(
                error, "noise_threshold", f"must be >= 0 grey levels, got {self.threshold}"
            )


def frame_denoising(
    on: bool, radius: int, strength: float, threshold: float
) -> FrameDenoiseConfig | None:
    """``--temporal-denoise`` and its three settings as one config, checked (None: off)."""
    config = FrameDenoiseConfig(radius, strength, threshold)
    config.check()
    return config if on and radius > 0 else None


@dataclass
class _Held:
    """A frame the filter still holds: its strength and grey picture (blurred once asked)."""

    frame: Frame
    level: float  #: the noise the weights are scaled by (0: the frame is left as it is)
    grey: np.ndarray  #: shrunk by :func:`compare_factor`
    blurred: np.ndarray | None = None


class FrameDenoiser:
    """Frames in, the same frames out denoised, in order.

    ``two_sided``: each frame waits for the ``radius`` frames after it (a file); otherwise it
    comes out at once, averaged with the frames before it (a live stream).
    """

    def __init__(self, config: FrameDenoiseConfig, two_sided: bool = True) -> None:
        config.check()
        self.config = config
        self.two_sided = two_sided
        self.reset()

    def reset(self) -> None:
        self._held: deque[_Held] = deque()
        self._recent: deque[float] = deque(maxlen=NOISE_WINDOW + 1)  # the latest frames' noise
        self._next = 0  # position in _held of the next frame to give out
        # a file's first frames, waiting until the frames after them decide the gate with them
        self._opening: list[_Held] | None = [] if self.two_sided else None

    def push(self, frame: Frame) -> list[Frame]:
        """Take the next frame; returns the frames now ready (none, one, or, after a change
        of frame size, those still waiting)."""
        if self.config.radius == 0:
            return [frame]
        out: list[Frame] = []
        if self._held and self._held[0].frame.image.shape != frame.image.shape:
            out = self.flush()
        grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        self._recent.append(noise_level(grey))  # at full size: the camera's noise
        factor = compare_factor(grey.shape)
        if factor > 1:
            size = (grey.shape[1] // factor, grey.shape[0] // factor)
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        # the camera's noise, not the picture's: a dark band or a dark scene reads lower
        level = float(np.median(self._recent))
        if min(self._recent) < self.config.threshold:
            level = 0.0
        held = _Held(frame, level, grey)
        self._held.append(held)
        if self._opening is not None:
            self._opening.append(held)
            pixels = sum(h.frame.image.nbytes + h.grey.nbytes for h in self._opening)
            full = len(self._recent) == self._recent.maxlen or pixels >= OPENING_MB * 2**20
            if level > 0 and not full:
                return out  # noisy so far: the frames after decide with them
            self._settle_opening()
        wait = self.config.radius if self.two_sided else 0
        while self._next < len(self._held) - wait:
            out.append(self._denoised(self._next))
            self._next += 1
            while self._next > self.config.radius:  # no later frame is averaged with it
                self._held.popleft()
                self._next -= 1
        return out

    def _settle_opening(self) -> None:
        """The first frames take the gate of the latest, which has seen them all: filtered
        at the strength of them all when every one is noisy, else left as they are."""
        if self._opening:
            for held in self._opening:
                held.level = self._opening[-1].level
        self._opening = None

    def flush(self) -> list[Frame]:
        """The frames still waiting for the frames after them (the end of a video)."""
        self._settle_opening()
        out = [self._denoised(i) for i in range(self._next, len(self._held))]
        self.reset()
        return out

    def _compare(self, held: _Held) -> np.ndarray:
        """A frame's grey picture blurred, as frames are compared (made once, when asked)."""
        if held.blurred is None:
            sigma = self.config.blur / compare_factor(held.frame.image.shape)
            held.blurred = cv2.GaussianBlur(held.grey.astype(np.float32), (0, 0), sigma)
        return held.blurred

    def _denoised(self, i: int) -> Frame:
        """Frame ``i`` as the weighted mean of it and its neighbours.

        The weights are kept in 1/255 steps (the frame's own is 255) so that OpenCV multiplies
        the uint8 pictures as they are, with no float copy of a whole colour frame per
        neighbour (a third of the filter's time at 1080p, 40% at 640x360); the mean is at most
        one grey level off the exact weights' (docs/benchmarks.md, session 39)."""
        this = self._held[i]
        frame, level = this.frame, this.level
        if level < self.config.threshold:
            return frame
        r = self.config.radius
        scale = -1.0 / (self.config.strength * level) ** 2
        total = frame.image.astype(np.float32)
        total *= 255.0
        weights = np.full(frame.image.shape[:2], 255.0, dtype=np.float32)
        here = self._compare(this)
        full_size = (frame.image.shape[1], frame.image.shape[0])
        shrunk = here.shape[:2] != frame.image.shape[:2]
        for j in range(max(0, i - r), min(len(self._held), i + r + 1)):
            if j == i:
                continue
            other = self._held[j]
            diff = cv2.absdiff(self._compare(other), here)
            w = cv2.exp(cv2.multiply(diff, diff, scale=scale))  # OpenCV: 5x numpy's time here
            w = cv2.convertScaleAbs(w, alpha=255.0)  # rounded to uint8
            if shrunk:
                w = cv2.resize(w, full_size, interpolation=cv2.INTER_LINEAR)
            cv2.accumulateProduct(other.frame.image, cv2.cvtColor(w, cv2.COLOR_GRAY2RGB), total)
            cv2.accumulate(w, weights)
        image = cv2.divide(total, cv2.cvtColor(weights, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)
        return dataclasses.replace(frame, image=image)


def denoise_frames(
    frames: Iterator[Frame], config: FrameDenoiseConfig, two_sided: bool = True
) -> Iterator[Frame]:
    """``frames`` through a :class:`FrameDenoiser` (untouched when ``config.radius`` is 0)."""
    denoiser = FrameDenoiser(config, two_sided)
    for frame in frames:
        yield from denoiser.push(frame)
    yield from denoiser.flush()
