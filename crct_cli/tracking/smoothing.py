"""Temporal smoothing of a tracked face's shape (``crct track --smooth``, on by default).

Why the shape and not the points: a face's pose (where it is, how large, how turned) changes
from one frame to the next as fast as the head moves, and a filter on it lags; on fast motion
a One Euro filter on every coordinate raised both the error and the jitter (docs/benchmarks.md,
"Jitter", session 7). The shape, the 68 points once the pose is taken out, changes only with
expression, and most of what moves it from one frame to the next is the localiser's noise.

So each frame's points are split into a similarity pose (centroid, RMS radius, and the rotation
that best lays them onto the filtered shape, as in Procrustes analysis) and a shape in that
normalised frame. The shape goes through a One Euro filter (Casiez et al., "1 Euro Filter",
CHI 2012), point by point, and the points are rebuilt from the filtered shape in this frame's
own pose: the pose is never delayed. A fast change of expression (a mouth opening) moves its
points fast, which raises their cutoff (``beta``), so it is followed with little lag.

The filter starts afresh whenever the track does: at a re-detection, a lost frame, a gap in
time. Only frames a track followed (state ``tracked``) are smoothed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crct_cli.errors import CrctError
from crct_cli.landmarks import box_from_points

if TYPE_CHECKING:
    from crct_cli.tracking.multi import Face

#: ``crct track --smooth``'s default (docs/benchmarks.md, session 21).
SMOOTH = True


@dataclass(frozen=True)
class SmoothConfig:
    """One Euro filter settings for the normalised shape (unit: the face's RMS radius).

    ``min_cutoff`` (Hz) is the cutoff of a still shape: lower is steadier; ``beta`` (Hz per
    radius per second) raises each point's cutoff with its speed: higher follows fast
    expressions more closely; ``d_cutoff`` (Hz) smooths the speed estimate itself; a pause of
    more than ``max_gap`` seconds between frames starts the filter afresh.
    """

    min_cutoff: float = 2.5
    beta: float = 5.0
    d_cutoff: float = 5.0
    max_gap: float = 0.5

    def check(self) -> None:
        """A clear error for settings the filter cannot use."""
        if not (self.min_cutoff > 0 and math.isfinite(self.min_cutoff)):
            raise CrctError(f"--smooth-cutoff must be > 0 Hz, got {self.min_cutoff}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise CrctError(f"--smooth-beta must be >= 0, got {self.beta}")
        if not (self.d_cutoff > 0 and self.max_gap > 0):
            raise CrctError("the smoothing's d_cutoff and max_gap must be > 0")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def _as_complex(points: np.ndarray) -> np.ndarray:
    return points[:, 0] + 1j * points[:, 1]


class ShapeFilter:
    """One face's filter: raw points in, smoothed points out, frame by frame."""

    def __init__(self, config: SmoothConfig | None = None) -> None:
        self.config = config or SmoothConfig()
        self.reset()

    def reset(self) -> None:
        #: the filtered normalised shape (complex, one per point), its filtered speed (radii
        #: per second) and the time of the last frame; None until a track starts
        self._state: tuple[np.ndarray, np.ndarray, float] | None = None

    def __call__(self, points: np.ndarray, time: float, continued: bool) -> np.ndarray:
        """Smoothed ``points`` (N, 2) at ``time`` seconds; ``continued``: the same track went
        on from the previous call's frame (else the filter starts here, points unchanged)."""
        raw = np.asarray(points, dtype=np.float64)
        centre = raw.mean(axis=0)
        z = _as_complex(raw - centre)
        radius = float(np.sqrt(np.mean(np.abs(z) ** 2)))
        if not np.isfinite(radius) or radius < 1e-6:
            self.reset()
            return raw
        state = self._state if continued else None
        if state is None or not 0.0 < time - state[2] <= self.config.max_gap:
            self._state = (z / radius, np.zeros(len(z)), time)  # the filter starts here
            return raw
        shape, speed, last = state
        dt = time - last
        # the rotation that lays this frame's shape best onto the filtered one
        turn = np.vdot(z, shape)
        rotation = turn / abs(turn) if abs(turn) > 0 else 1.0
        current = z / radius * rotation
        c = self.config
        velocity = (current - shape) / dt
        speed = speed + _alpha(c.d_cutoff, dt) * (np.abs(velocity) - speed)
        shape = shape + _alpha(c.min_cutoff + c.beta * speed, dt) * (current - shape)
        self._state = (shape, speed, time)
        out = shape / rotation * radius
        return np.stack([out.real, out.imag], axis=-1) + centre


class FaceSmoother:
    """A :class:`ShapeFilter` per face id, over a stream of frames' faces."""

    def __init__(self, config: SmoothConfig | None = None) -> None:
        self.config = config or SmoothConfig()
        self.filters: dict[int, ShapeFilter] = {}

    def reset(self) -> None:
        self.filters.clear()

    def __call__(self, faces: list[Face], time: float) -> list[Face]:
        """One frame's faces, their points smoothed where their track went on; a face absent
        from a frame starts afresh when it is back."""
        out: list[Face] = []
        seen = set()
        for face in faces:
            if face.points is None:
                out.append(face)
                continue
            seen.add(face.face_id)
            f = self.filters.setdefault(face.face_id, ShapeFilter(self.config))
            points = f(face.points, time, face.state == "tracked")
            if face.state == "tracked":
                face = dataclasses.replace(face, points=points, box=box_from_points(points))
            out.append(face)
        for gone in set(self.filters) - seen:
            del self.filters[gone]
        return out
