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


#: Peak memory of one worker, with some room, by the backend its networks run on (measured:
#: 0.26 GB with ONNX Runtime, 1.0 GB with PyTorch; docs/benchmarks.md). The default worker
#: count never starts more workers than available memory holds.
WORKER_BYTES: dict[str, int] = {"onnx": 400_000_000, "torch": 1_300_000_000}

#: A worker also holds frames: decoded ahead, looked ahead, averaged over by the temporal
#: filter, in the decoder's and encoder's queues. Measured peaks of crct track (ONNX Runtime;
#: docs/benchmarks.md, "A worker's memory by frame size") grow by 56-60 RGB frames from
#: 640x360 to 1920x1080 and 3840x2160, and by 32-39 more with --overlay; these leave room.
FRAMES_HELD = 64
OVERLAY_FRAMES_HELD = 40


def worker_bytes(backend: str, frame_pixels: int = 0, overlay: bool = False) -> int:
    """Peak memory of one worker whose largest video has ``frame_pixels`` pixels a frame."""
    held = FRAMES_HELD + (OVERLAY_FRAMES_HELD if overlay else 0)
    return WORKER_BYTES.get(backend, WORKER_BYTES["torch"]) + held * 3 * frame_pixels


#: Videos whose headers :func:`largest_frame` reads at most (about 3 ms each here): an archive
#: of tens of thousands would otherwise wait a minute or more before its first video.
FRAME_PROBES = 256


def frame_probe_sample(jobs: list[Any], limit: int = FRAME_PROBES) -> list[Any]:
    """The jobs whose frame sizes stand for all (``job.size`` in bytes): every one when few,
    else the largest files (big frames make big files) and an even spread of the rest."""
    if len(jobs) <= limit:
        return list(jobs)
    ordered = sorted(jobs, key=lambda job: -job.size)
    largest, rest = ordered[: limit // 2], ordered[limit // 2 :]
    step = max(1, len(rest) // (limit - limit // 2))
    return largest + rest[::step][: limit - limit // 2]


#: The frame rate :data:`FRAMES_HELD` was measured at: the look-ahead windows are seconds, so a
#: faster video holds more frames (a 60 fps one twice as many).
FRAMES_HELD_FPS = 30.0


def largest_frame(videos: list[Any]) -> int:
    """The most pixels a frame has among ``videos`` (paths of files or image sequences), read
    from the containers' headers without decoding, counted again for each 30 fps above the
    first (a 60 fps video's frames twice: it holds twice as many, :data:`FRAMES_HELD_FPS`); 0
    for what cannot be read (tracking will say why)."""
    import av

    from crct_cli.errors import CrctError
    from crct_cli.io.video import main_video_stream, probe_video

    largest = 0
    for video in videos:
        try:
            if os.path.isdir(video):
                info = probe_video(video)
                pixels, fps = info.width * info.height, info.fps
            else:
                with av.open(str(video)) as container:
                    stream = main_video_stream(container)
                    pixels = int(stream.width or 0) * int(stream.height or 0)
                    rate = stream.average_rate or stream.guessed_rate
                    fps = float(rate) if rate else FRAMES_HELD_FPS
            largest = max(largest, round(pixels * max(1.0, fps / FRAMES_HELD_FPS)))
        except (OSError, IndexError, ValueError, av.error.FFmpegError, CrctError):
            continue  # an unreadable input fails later, alone
    return largest


def available_memory() -> int | None:
    """Bytes the kernel says can be used without swapping (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_workers(
    cores: int, videos: int, memory: int | None = None, per_worker: int = WORKER_BYTES["torch"]
) -> int:
    """Local workers when ``--workers`` is not given: one per core, as measured fastest
    (docs/benchmarks.md), no more than there are videos, nor than ``memory`` bytes hold at
    ``per_worker`` bytes each."""
    workers = min(cores, videos)
    if memory is not None:
        workers = min(workers, memory // per_worker)
    return max(1, workers)


def threads_per_worker(cores: int, workers: int) -> int:
    """Each worker's share of the cores, at least one thread."""
    return max(1, cores // max(1, workers))
