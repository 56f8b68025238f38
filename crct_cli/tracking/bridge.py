"""A lost run's shape from the frames around it (``crct track --bridge-lost``, on by default
with ``--lookahead``: a recorded video).

Where a face is lost (a dark band across it, a smear), FLL still finds where it is, but reads
its shape poorly: on the hard webcam set the lost frames' points fitted to the truth by a
similarity are as far off as the raw ones are on the tracked frames (docs/benchmarks.md,
sessions 33 and 35). The frames on each side of the run, where the face was followed, know
its shape and size. Once the face is followed again, each frame of the run takes the shape
interpolated in time between the last frame before the run and the first after it, at that
shape's size, placed where the run frame's own points put the face along each axis in which
they spread at least as far as the shape does; along an axis in which they are squeezed (a
band hid part of the face, session 37), the place slides toward the interpolated one
(:func:`placed_between`). A run longer than ``max_run`` frames
(:func:`max_run_for`: 75 frames, 3 s at 25 fps, and :data:`BRIDGE_MB` of the frames' pixels),
or one the face never leaves before the video ends or the face is dropped, is left as it was:
the face may have turned meanwhile. Frames come out in order, each once its runs are settled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from crct_cli.landmarks import box_from_points
from crct_cli.tracking.multi import Face

T = TypeVar("T")

#: ``crct track --bridge-lost``'s default (docs/benchmarks.md, session 35).
BRIDGE_LOST = True

#: How far (natural log) a lost frame's spread of points along an axis may fall short of the
#: interpolated shape's before its place along that axis is given up: the weight of its own
#: place is exp(-r^2 / 2 t^2) for a log ratio r < 0 (docs/benchmarks.md, session 37).
BRIDGE_AXIS_TOLERANCE = 0.15

#: ``crct track --bridge-lost``'s longest run, in frames (three seconds at 25 fps: two or three
#: bursts of a dark band in a row, session 37) ...
BRIDGE_MAX_RUN = 75
#: ... and in decoded pixels (the run's frames wait, with their pictures, until it ends).
BRIDGE_MB = 200


def max_run_for(image: np.ndarray, max_run: int = BRIDGE_MAX_RUN) -> int:
    """The longest run bridged in a video of such frames: ``max_run``, fewer for large frames."""
    return max(1, min(max_run, BRIDGE_MB * 2**20 // max(1, image.nbytes)))


def placed_between(shape: np.ndarray, reading: np.ndarray, tolerance: float) -> np.ndarray:
    """``shape`` at its own size, centred where ``reading`` puts the face along each axis in
    which ``reading``'s points spread at least as far as ``shape``'s; along an axis in which
    they spread less, by a log ratio r < 0, the centre moves toward ``shape``'s own by
    1 - exp(-r^2 / 2t^2) (``tolerance`` t). A face partly hidden (a dark band across it) is
    read squeezed, and misplaced, along the axis the band hides; a face read larger than the
    frames around the run suggest came nearer meanwhile, and is where it was read."""
    c_shape, c_reading = shape.mean(0), reading.mean(0)
    spread = np.maximum(shape.std(0), 1e-6)
    squeeze = np.minimum(np.log(np.maximum(reading.std(0), 1e-6) / spread), 0.0)
    trust = np.exp(-(squeeze**2) / (2.0 * tolerance**2))
    return trust * c_reading + (1.0 - trust) * c_shape + (shape - c_shape)


@dataclass
class _Run:
    """A face's open lost run: the points before it and the frame numbers it covers."""

    before: np.ndarray
    frames: list[int] = field(default_factory=list)


class LostShapeBridge(Generic[T]):
    """Buffers frames while a face's lost run is open; see the module docstring."""

    def __init__(
        self, max_run: int = BRIDGE_MAX_RUN, axis_tolerance: float = BRIDGE_AXIS_TOLERANCE
    ) -> None:
        if max_run < 1:
            raise ValueError(f"max_run must be at least 1 frame, got {max_run}")
        if axis_tolerance <= 0:
            raise ValueError(f"axis_tolerance must be positive, got {axis_tolerance}")
        self.max_run = max_run
        self.axis_tolerance = axis_tolerance
        self._pending: list[tuple[T, list[Face]]] = []
        self._first = 0  # frame number of self._pending[0]
        self._count = 0  # frames pushed
        self._last_followed: dict[int, np.ndarray] = {}  # face id -> its last points not lost
        self._runs: dict[int, _Run] = {}

    def push(self, item: T, faces: list[Face]) -> list[tuple[T, list[Face]]]:
        """Take one frame; returns the frames now settled, oldest first."""
        number = self._count
        self._count += 1
        self._pending.append((item, list(faces)))
        present = {f.face_id for f in faces}
        for face_id in [i for i in self._runs if i not in present]:  # dropped: left as it was
            del self._runs[face_id]
        for face in faces:
            if face.points is None:
                continue
            run = self._runs.get(face.face_id)
            if face.state == "lost":
                before = self._last_followed.get(face.face_id)
                if run is None and before is not None:
                    run = self._runs[face.face_id] = _Run(before)
                if run is not None:
                    run.frames.append(number)
                    if len(run.frames) > self.max_run:  # too long to bridge
                        del self._runs[face.face_id]
                        self._last_followed.pop(face.face_id, None)
                continue
            if run is not None:
                self._bridge(face.face_id, run, face.points)
                del self._runs[face.face_id]
            self._last_followed[face.face_id] = face.points
        return self._settled()

    def flush(self) -> list[tuple[T, list[Face]]]:
        """Every frame not given out yet; runs still open are left as they were."""
        self._runs.clear()
        return self._settled()

    def _bridge(self, face_id: int, run: _Run, after: np.ndarray) -> None:
        """Give each frame of ``run`` the shape between ``run.before`` and ``after``."""
        span = len(run.frames) + 1
        for k, number in enumerate(run.frames, start=1):
            item, faces = self._pending[number - self._first]
            t = k / span
            shape = (1.0 - t) * run.before + t * after
            for j, face in enumerate(faces):
                if face.face_id == face_id and face.points is not None:
                    points = placed_between(shape, face.points, self.axis_tolerance)
                    faces[j] = dataclasses.replace(face, points=points, box=box_from_points(points))

    def _settled(self) -> list[tuple[T, list[Face]]]:
        oldest_open = min((run.frames[0] for run in self._runs.values()), default=self._count)
        n = oldest_open - self._first
        ready, self._pending = self._pending[:n], self._pending[n:]
        self._first += n
        return ready
