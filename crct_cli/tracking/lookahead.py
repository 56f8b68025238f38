"""What ``--lookahead`` does to a recorded video's frames, in one place for ``Tracker.track``
and the benchmark: a re-found face followed back into the frames it was lost in
(:mod:`crct_cli.tracking.backtrack`), then the two-sided filter
(:mod:`crct_cli.tracking.smoothing`), then, with ``bridge``, each lost run's shape from the
frames around it (:mod:`crct_cli.tracking.bridge`). Frames come out in order, each once all of
them are done with it."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import numpy as np

from crct_cli.tracking.backtrack import Backtracker
from crct_cli.tracking.bridge import LostShapeBridge, max_run_for
from crct_cli.tracking.multi import Face
from crct_cli.tracking.smoothing import TwoSidedConfig, TwoSidedSmoother
from crct_cli.tracking.tracker import TrackerConfig

T = TypeVar("T")
#: a frame as the stages pass it on: the caller's item with its time
_Timed = tuple[Any, float]


class LookAhead(Generic[T]):
    """``backtrack`` lost frames (0: none), the ``two_sided`` filter (None: none) and lost runs
    of up to ``bridge`` frames given the shape around them (0: none) over one video's frames;
    ``networks`` and ``config`` are the tracker's (the backward run's)."""

    def __init__(
        self,
        networks: Any,
        config: TrackerConfig,
        backtrack: int,
        two_sided: TwoSidedConfig | None,
        bridge: int = 0,
    ) -> None:
        self.back: Backtracker[_Timed] | None = (
            Backtracker(networks, config, backtrack) if backtrack else None
        )
        self.smoother: TwoSidedSmoother[_Timed] | None = (
            None if two_sided is None else TwoSidedSmoother(two_sided)
        )
        self.bridge: LostShapeBridge[_Timed] | None = LostShapeBridge(bridge) if bridge else None
        self._bridge_frames = bridge

    def push(
        self, item: T, time: float, image: np.ndarray, faces: list[Face]
    ) -> list[tuple[T, list[Face]]]:
        """Take one frame; returns the frames now ready, oldest first."""
        timed = (item, time)
        if self.bridge is not None:  # the frames' size caps the run
            self.bridge.max_run = max_run_for(image, self._bridge_frames)
        ready = [(timed, faces)] if self.back is None else self.back.push(timed, image, faces)
        return self._finished(ready, last=False)

    def flush(self) -> list[tuple[T, list[Face]]]:
        """Every frame not given out yet."""
        return self._finished([] if self.back is None else self.back.flush(), last=True)

    def _finished(
        self, ready: list[tuple[_Timed, list[Face]]], last: bool
    ) -> list[tuple[T, list[Face]]]:
        smoother = self.smoother
        if smoother is not None:
            ready = [d for timed, faces in ready for d in smoother.push(timed, timed[1], faces)]
            if last:
                ready += smoother.flush()
        bridge = self.bridge
        if bridge is not None:
            ready = [d for timed, faces in ready for d in bridge.push(timed, faces)]
            if last:
                ready += bridge.flush()
        return [(timed[0], faces) for timed, faces in ready]
