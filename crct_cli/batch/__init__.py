"""``crct track`` over many videos: folders, parallel workers, resumable runs, Ray.

- :mod:`~crct_cli.batch.discover`: the videos of the inputs and their output folders;
- :mod:`~crct_cli.batch.resume`: which output folders are complete (``.crct-input.json``);
- :mod:`~crct_cli.batch.worker`: a worker that loads the networks once and tracks videos;
- :mod:`~crct_cli.batch.local` and :mod:`~crct_cli.batch.ray_engine`: the two engines;
- :mod:`~crct_cli.batch.runner`: a whole run and ``OUT/summary.csv``
  (:mod:`~crct_cli.batch.summary`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: Builds the networks in each worker instead of the shipped ones; tests point this at fakes
#: (a module-level function, so it reaches spawned processes and Ray actors by name).
NETWORKS_FACTORY: Callable[[], Any] | None = None

#: ``crct track --engine``.
ENGINES: tuple[str, ...] = ("local", "ray")


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, e.g. under a batch scheduler)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cores: int, videos: int) -> int:
    """Local workers when ``--workers`` is not given: one per core, as measured fastest
    (docs/benchmarks.md), and never more than there are videos to track."""
    return max(1, min(cores, videos))


def threads_per_worker(cores: int, workers: int) -> int:
    """Each worker's share of the cores, at least one thread."""
    return max(1, cores // max(1, workers))
