"""Tracking a re-found face backwards into the frames it was lost in (``crct track --backtrack``).

Algorithm 1 loses a face where the validator rejects BT's estimate, typically on the first
frames of a fast, smeared move, and finds it again by detection a few frames later, once the
picture settles. A live tracker has to leave those frames lost. A video file does not: from
the re-detected frame, the same algorithm run backwards in time (BT from the re-found face
into the frame before it, FV and FLL as always) often follows the face into the end of the
lost run, which is the part of the move nearest the settled face. Frames it follows with the
validator's acceptance take its points (state ``tracked``); it stops at the first frame it
does not accept, so a frame is only changed for a validated face.

Frames are held only while some face of the newest frame is lost, at most ``max_frames`` of
them (and ``max_bytes`` of pixels): on footage where the faces stay tracked, every frame goes
straight through.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from crct_cli.errors import OptionError
from crct_cli.tracking.multi import Face
from crct_cli.tracking.tracker import CRCTTracker, TrackerConfig

T = TypeVar("T")

#: ``crct track --backtrack``'s default: how many lost frames before a re-detection may be
#: tracked backwards (docs/benchmarks.md, session 29).
BACKTRACK = 10
#: Memory the held frames may take.
BACKTRACK_MB = 200


def check_backtrack(frames: int) -> None:
    if frames < 0:
        raise OptionError("backtrack", f"must be >= 0 frames (0: never), got {frames}")


@dataclass
class _Held(Generic[T]):
    item: T
    image: np.ndarray
    faces: list[Face]


class Backtracker(Generic[T]):
    """Frames in, frames out in the same order; a re-detected face's lost frames just before
    it are revised by tracking it backwards. ``networks`` are the one-face ``Networks`` of
    :mod:`crct_cli.tracking.tracker`; ``item`` is whatever the caller wants back."""

    def __init__(
        self,
        networks: Any,
        config: TrackerConfig,
        max_frames: int = BACKTRACK,
        max_bytes: int = BACKTRACK_MB * 2**20,
    ) -> None:
        check_backtrack(max_frames)
        self.networks = networks if hasattr(networks, "bt_step") else _OneFace(networks)
        #: the networks' own state of the forward run (BT's reusable crops...), kept aside
        self._aside = getattr(networks, "aside", nullcontext)
        self.config = config
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._held: list[_Held[T]] = []
        self.revised = 0  #: frames whose face was followed backwards

    def push(self, item: T, image: np.ndarray, faces: list[Face]) -> list[tuple[T, list[Face]]]:
        """Take one frame (consecutive with the last); returns the frames now ready."""
        self._held.append(_Held(item, image, list(faces)))
        for face in faces:
            if face.state == "redetected" and face.points is not None and face.box is not None:
                self._follow_back(face)
        if not any(f.state == "lost" for f in faces) or self.max_frames == 0:
            return self.flush()
        # keep the frames a face found again next may be followed back into, no more
        out = []
        limit = max(1, self.max_bytes // max(1, image.nbytes))
        while len(self._held) > min(self.max_frames, limit):
            held = self._held.pop(0)
            out.append((held.item, held.faces))
        return out

    def flush(self) -> list[tuple[T, list[Face]]]:
        """Every frame held, oldest first."""
        out = [(h.item, h.faces) for h in self._held]
        self._held = []
        return out

    def _follow_back(self, face: Face) -> None:
        """Algorithm 1 from ``face`` in the newest frame, backwards over its lost frames."""
        before = len(self._held) - 2
        if before < 0 or not _is_lost(self._held[before].faces, face.face_id):
            return
        with self._aside():
            self._run_back(face, before)

    def _run_back(self, face: Face, before: int) -> None:
        tracker = CRCTTracker(self.networks, self.config, face.box)
        tracker.step(self._held[-1].image)  # starts from the re-found face
        for k in range(before, -1, -1):
            held = self._held[k]
            if not _is_lost(held.faces, face.face_id):
                break
            result = tracker.step(held.image)
            if result.state != "tracked" or result.points is None:
                break
            followed = Face(face.face_id, result.points, result.box, result.score, "tracked")
            held.faces = [followed if f.face_id == face.face_id else f for f in held.faces]
            self.revised += 1


def _is_lost(faces: list[Face], face_id: int) -> bool:
    return any(f.face_id == face_id and f.state == "lost" for f in faces)


class _OneFace:
    """The one-face calls of networks that only have batch calls (``BatchNetworks``)."""

    def __init__(self, nets: Any) -> None:
        self.nets = nets

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Any]:
        return self.nets.detect(image, relaxed=True) if relaxed else self.nets.detect(image)

    def bt_step(
        self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        points, states = self.nets.bt_batch(prev, cur, np.asarray(box)[None], [state])
        return points[0], states[0]

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return float(self.nets.validate_batch(image, np.asarray(points)[None])[0])

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return self.nets.localize_batch(image, np.asarray(box)[None], mirrored)[0]
