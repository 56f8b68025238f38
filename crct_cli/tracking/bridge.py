"""A lost run's shape from the frames around it (``crct track --bridge-lost``, on by default
with ``--lookahead``: a recorded video).

Where a face is lost (a dark band across it, a smear), FLL still finds where it is, but reads
its shape poorly: on the hard webcam set the lost frames' points fitted to the truth by a
similarity are as far off as the raw ones are on the tracked frames (docs/benchmarks.md,
sessions 33 and 35). The frames on each side of the run, where the face was followed, know
its shape. Once the face is followed again, each frame of the run takes the shape interpolated
in time between the last frame before the run and the first after it, placed at the run
frame's own centre and scale (where FLL put the face). A run longer than ``max_run`` frames
(:func:`max_run_for`: 2 s, and :data:`BRIDGE_MB` of the frames' pixels),
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

#: ``crct track --bridge-lost``'s longest run, in frames (two seconds at 25 fps) ...
BRIDGE_MAX_RUN = 50
#: ... and in decoded pixels (the run's frames wait, with their pictures, until it ends).
BRIDGE_MB = 200


def max_run_for(image: np.ndarray, max_run: int = BRIDGE_MAX_RUN) -> int:
    """The longest run bridged in a video of such frames: ``max_run``, fewer for large frames."""
    return max(1, min(max_run, BRIDGE_MB * 2**20 // max(1, image.nbytes)))


def placed_like(shape: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``shape`` moved and scaled so that its centre and size (RMS distance from the centre)
    are those of ``where``."""
    c_shape, c_where = shape.mean(0), where.mean(0)
    size_shape = float(np.sqrt(((shape - c_shape) ** 2).sum(1).mean()))
    size_where = float(np.sqrt(((where - c_where) ** 2).sum(1).mean()))
    return c_where + (shape - c_shape) * (size_where / max(size_shape, 1e-6))


@dataclass
class _Run:
    """A face's open lost run: the points before it and the frame numbers it covers."""

    before: np.ndarray
    frames: list[int] = field(default_factory=list)


class LostShapeBridge(Generic[T]):
    """Buffers frames while a face's lost run is open; see the module docstring."""

    def __init__(self, max_run: int = BRIDGE_MAX_RUN) -> None:
        if max_run < 1:
            raise ValueError(f"max_run must be at least 1 frame, got {max_run}")
        self.max_run = max_run
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
                    points = placed_like(shape, face.points)
                    faces[j] = dataclasses.replace(face, points=points, box=box_from_points(points))

    def _settled(self) -> list[tuple[T, list[Face]]]:
        oldest_open = min((run.frames[0] for run in self._runs.values()), default=self._count)
        n = oldest_open - self._first
        ready, self._pending = self._pending[:n], self._pending[n:]
        self._first += n
        return ready
