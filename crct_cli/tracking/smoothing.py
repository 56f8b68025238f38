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
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import numpy as np

from crct_cli.errors import CrctError, OptionError
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
            raise OptionError("smooth_cutoff", f"must be > 0 Hz, got {self.min_cutoff}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise OptionError("smooth_beta", f"must be >= 0, got {self.beta}")
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


# ------------------------------------------------------------------------------------------
# Two-sided smoothing of a recorded video (``crct track --lookahead``, on by default)

#: ``crct track --lookahead``'s default: a video file has the frames after each one too.
LOOKAHEAD = True
T = TypeVar("T")
#: States that go on a run of frames the track followed (a lost run is a run of its own).
_FOLLOWED = ("tracked", "redetected")


@dataclass(frozen=True)
class TwoSidedConfig:
    """Settings of the two-sided filter that a recorded video affords (seconds, face radii).

    A causal filter can only average a frame with the frames before it, so it lags, and the
    pose (where the head is, how large, how turned) is left alone for that reason. With the
    frames after it in hand, a frame's average has no lag. ``shape_sigma``: the Gaussian over
    time of the normalised shape (unit RMS radius); a neighbour's shape counts with weight
    ``exp(-d^2 / 2 shape_range^2)`` of its RMS distance ``d`` from this frame's, a bilateral
    filter: the localiser's noise is averaged out, an expression that changes by more (a mouth
    opening) is not smeared over its neighbours. ``pose_sigma`` and ``pose_range``: the same
    for the pose (centre in face radii, log size, angle in radians): a still or slowly moving
    head is steadied, a move well beyond the localiser's noise (a jerk, a turn) is kept as found
    (docs/benchmarks.md, session 29). ``max_gap``: a pause longer than this ends the track's
    run, as for the causal filter.
    """

    shape_sigma: float = 0.12
    shape_range: float = 0.03
    pose_sigma: float = 0.08
    pose_range: float = 0.03
    max_gap: float = 0.5

    @property
    def reach(self) -> float:
        """How far (s) from a frame the filter reads: three of its widest Gaussian's sigmas."""
        return 3.0 * max(self.shape_sigma, self.pose_sigma)

    def check(self) -> None:
        values = (self.shape_sigma, self.shape_range, self.pose_sigma, self.pose_range)
        if not all(v >= 0 and math.isfinite(v) for v in values) or not self.max_gap > 0:
            raise CrctError("the two-sided filter's sigmas and ranges must be >= 0")


def _gaussian(offsets: np.ndarray, sigma: float) -> np.ndarray:
    """Weights of a Gaussian of ``sigma`` at ``offsets``; sigma 0 keeps only offset 0."""
    if sigma <= 0:
        return (offsets == 0).astype(np.float64)
    return np.exp(-0.5 * (offsets / sigma) ** 2)


def smooth_run(
    points: np.ndarray, times: np.ndarray, centre: int, config: TwoSidedConfig
) -> np.ndarray:
    """Frame ``centre``'s points, smoothed over one run of a face's frames around it,
    ``points`` (K, N, 2) at ``times`` (K,): frames its track followed, or one lost run."""
    z = points[..., 0] + 1j * points[..., 1]
    middle = z.mean(axis=1)
    z0 = z - middle[:, None]
    radius = np.sqrt(np.mean(np.abs(z0) ** 2, axis=1))
    if not np.all(np.isfinite(radius)) or radius.min() < 1e-6:
        return points[centre]
    unit = z0 / radius[:, None]
    # each frame's shape laid onto the centre frame's by the rotation that fits it best
    turn = np.sum(np.conj(unit) * unit[centre], axis=1)
    rotation = np.where(np.abs(turn) > 0, turn / np.maximum(np.abs(turn), 1e-12), 1.0)
    shape = unit * rotation[:, None]
    offsets = times - times[centre]
    change = np.sqrt(np.mean(np.abs(shape - shape[centre]) ** 2, axis=1))
    w = _gaussian(offsets, config.shape_sigma) * _gaussian(change, config.shape_range)
    mean_shape = (w[:, None] * shape).sum(axis=0) / w.sum()
    pose = np.stack(
        [
            middle.real / radius[centre],
            middle.imag / radius[centre],
            np.log(radius),
            -np.angle(rotation),  # each frame's turn from the centre frame's
        ],
        axis=1,
    )
    w = _gaussian(offsets, config.pose_sigma)
    distance = np.linalg.norm(pose - pose[centre], axis=1)
    w = w * _gaussian(distance, config.pose_range)
    x, y, log_size, angle = (w[:, None] * pose).sum(axis=0) / w.sum()
    out = mean_shape * np.exp(1j * angle + log_size) + (x + 1j * y) * radius[centre]
    return np.stack([out.real, out.imag], axis=-1)


class TwoSidedSmoother(Generic[T]):
    """Every face's points smoothed with the frames around it, for a recorded video.

    Frames go in with :meth:`push` and come out in the same order, each once the frames
    ``config.reach`` seconds after it are in (at most ``max_pending`` frames later: at over
    175 fps the window is cut short rather than holding more frames' pictures), the rest
    at :meth:`flush`. A face's run is the frames its track followed without a break: a
    re-detection starts one, a lost frame or a pause of over ``max_gap`` ends it. A lost run
    (FLL in the held box, frame after frame) is smoothed as a run of its own, never with the
    followed frames around it. ``item`` is whatever the caller wants back with each frame's
    faces.
    """

    def __init__(self, config: TwoSidedConfig | None = None, max_pending: int = 64) -> None:
        self.config = config or TwoSidedConfig()
        self.config.check()
        self.max_pending = max_pending
        self._items: list[T] = []
        self._times: list[float] = []
        self._faces: list[dict[int, Face]] = []
        self._order: list[list[Face]] = []
        self._next = 0  # the first kept frame not given out yet

    def push(self, item: T, time: float, faces: list[Face]) -> list[tuple[T, list[Face]]]:
        """Take one frame; returns the frames now ready, oldest first."""
        out = self.flush() if self._times and time < self._times[-1] else []
        self._items.append(item)
        self._times.append(float(time))
        self._faces.append({f.face_id: f for f in faces})
        self._order.append(list(faces))
        reach = self.config.reach
        while self._next < len(self._times) and (
            time - self._times[self._next] >= reach
            or len(self._times) - self._next > self.max_pending
        ):
            out.append(self._emit(self._next))
            self._next += 1
        self._forget()
        return out

    def flush(self) -> list[tuple[T, list[Face]]]:
        """Every frame not given out yet; the smoother then starts afresh."""
        out = [self._emit(i) for i in range(self._next, len(self._times))]
        self._items, self._times, self._faces, self._order = [], [], [], []
        self._next = 0
        return out

    def _forget(self) -> None:
        """Drop the frames given out that no frame still to come will read."""
        if self._next == 0:
            return
        now = self._times[self._next] if self._next < len(self._times) else self._times[-1]
        drop = 0
        while drop < self._next and (
            now - self._times[drop] > self.config.reach or self._next - drop > self.max_pending
        ):
            drop += 1
        if drop:
            del self._items[:drop], self._times[:drop], self._faces[:drop], self._order[:drop]
            self._next -= drop

    def _continues(self, k: int, face_id: int) -> bool:
        """Whether frame ``k``'s face ``face_id`` goes on the run of frame ``k - 1``'s: a
        followed frame after a followed one, a lost frame after a lost one."""
        if k <= 0 or k >= len(self._times):
            return False
        now, before = self._faces[k].get(face_id), self._faces[k - 1].get(face_id)
        if now is None or before is None or now.points is None or before.points is None:
            return False
        if not 0.0 < self._times[k] - self._times[k - 1] <= self.config.max_gap:
            return False
        if now.state == "lost":
            return before.state == "lost"
        return now.state == "tracked" and before.state in _FOLLOWED

    def _emit(self, i: int) -> tuple[T, list[Face]]:
        faces = []
        reach = self.config.reach
        t = self._times[i]
        for face in self._order[i]:
            if face.points is None:
                faces.append(face)
                continue
            first = i
            while self._continues(first, face.face_id) and t - self._times[first - 1] <= reach:
                first -= 1
            last = i
            while self._continues(last + 1, face.face_id) and self._times[last + 1] - t <= reach:
                last += 1
            if last > first:
                tracks = [self._faces[k][face.face_id].points for k in range(first, last + 1)]
                # _continues found points on every face of the run
                run = np.stack(cast("list[np.ndarray]", tracks)).astype(np.float64)
                times = np.array(self._times[first : last + 1])
                points = smooth_run(run, times, i - first, self.config)
                face = dataclasses.replace(face, points=points, box=box_from_points(points))
            faces.append(face)
        return self._items[i], faces
