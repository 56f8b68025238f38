"""A whole run over many videos: decide what is already done, run the rest on an engine,
keep ``OUT/summary.csv`` up to date, and say how it went.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import numbers
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.resume import LOCK_NAME, Done, check_done, foreign_outputs, held_by
from crct_cli.batch.summary import VideoResult, write_summary
from crct_cli.batch.worker import Listener, WorkerSpec, settings_of
from crct_cli.errors import CrctError, OptionError, WordedError, whole_number
from crct_cli.io.atomic import check_writable_folder
from crct_cli.signals import sigterm_as_interrupt

if TYPE_CHECKING:
    from crct_cli.tracking.pipeline import FrameRange

#: Seconds between two rewrites of summary.csv while a run goes (and once at the end).
SUMMARY_EVERY_S = 10.0


class Engine(Protocol):
    def run(self, jobs: Sequence[VideoJob], listener: Listener) -> None: ...


class BatchDisplay(Listener, Protocol):
    """The listener a run reports to, plus the line it says about skipped videos."""

    def skipped(self, count: int) -> None: ...


@dataclass
class BatchPlan:
    """Which videos run, which are kept from an earlier run, and why the others run."""

    jobs: list[VideoJob]
    todo: list[VideoJob]
    results: dict[str, VideoResult]  # by output folder, in the order of ``jobs``
    reasons: Counter[str] = field(default_factory=Counter)
    #: videos not tracked because their folders hold what crct did not write (failed results)
    refused: list[VideoJob] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.jobs) - len(self.todo) - len(self.refused)


def plan_batch(
    jobs: Sequence[VideoJob],
    settings: dict[str, Any],
    overlay: bool,
    overwrite: bool,
    crops: int = 0,
    pts: bool = True,
    flags: bool = False,
) -> BatchPlan:
    """Check every output folder; ``overwrite`` tracks every video again; ``flags``: a refusal
    names the command line's flags (else Python's keywords)."""
    results: dict[str, VideoResult] = {}
    todo: list[VideoJob] = []
    refused: list[VideoJob] = []
    reasons: Counter[str] = Counter()
    for job in jobs:
        foreign = None if overwrite else foreign_outputs(job, flags)
        if foreign is not None:  # this video fails alone; nothing of the folder is touched
            results[job.output] = VideoResult(job.label, job.output, "failed", error=foreign)
            refused.append(job)
            continue
        done = "overwrite" if overwrite else check_done(job, settings, overlay, crops, pts)
        if isinstance(done, Done):
            results[job.output] = VideoResult(
                job.label,
                job.output,
                done.status,
                done.frames,
                done.faces,
                done.face_frames,
                done.seconds,
                skipped=True,
                missing_frames=done.missing_frames,
                rotate=done.rotate,
                cuts=done.cuts,
                warnings=list(done.warnings),
            )
        else:
            results[job.output] = VideoResult(job.label, job.output)
            todo.append(job)
            reasons[done] += 1
    return BatchPlan(list(jobs), todo, results, reasons, refused)


@dataclass
class BatchReport:
    """How a run went: every video's result, in input order."""

    results: list[VideoResult]
    seconds: float  # wall clock of the tracking part

    def count(self, status: str, skipped: bool = False) -> int:
        return sum(r.status == status and r.skipped == skipped for r in self.results)

    @property
    def tracked(self) -> list[VideoResult]:
        return [r for r in self.results if not r.skipped and r.status in ("ok", "no_face")]

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.tracked)

    @property
    def videos_per_minute(self) -> float:
        return 60.0 * len(self.tracked) / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    """Keeps each result, forwards events to the display, rewrites summary.csv now and then."""

    def __init__(self, plan: BatchPlan, display: Listener, summary: Path | None) -> None:
        self.plan, self.display, self.summary = plan, display, summary
        self.last_write = time.monotonic()

    def started(self, slot: int, job: VideoJob) -> None:
        self.display.started(slot, job)

    def frame(self, slot: int, done: int, total: int | None) -> None:
        self.display.frame(slot, done, total)

    def warned(self, slot: int, line: str) -> None:
        self.display.warned(slot, line)

    def finished(self, slot: int, job: VideoJob, result: VideoResult) -> None:
        self.plan.results[job.output] = result
        self.display.finished(slot, job, result)
        if time.monotonic() - self.last_write >= SUMMARY_EVERY_S:
            self.write()

    def write(self) -> None:
        if self.summary is not None:
            write_summary(self.summary, self.plan.results.values())
            self.last_write = time.monotonic()


def run_batch(
    plan: BatchPlan, engine: Engine, display: BatchDisplay, summary: Path | None
) -> BatchReport:
    """Run ``plan.todo`` on ``engine``, longest videos first (the last to finish are short).

    ``summary.csv`` is written at the end, also after a failure or Ctrl-C (then the videos not
    reached are ``pending``), and every :data:`SUMMARY_EVERY_S` seconds in between.
    """
    recorder = _Recorder(plan, display, summary)
    if plan.skipped:
        display.skipped(plan.skipped)
    for job in plan.refused:  # said as any failed video is, before the others start
        recorder.finished(0, job, plan.results[job.output])
    order = sorted(plan.todo, key=lambda job: -job.size)
    t0 = time.perf_counter()
    try:
        if order:
            with sigterm_as_interrupt():
                engine.run(order, recorder)
    finally:
        recorder.write()
    return BatchReport(list(plan.results.values()), time.perf_counter() - t0)


def _option_count(option: str, value: Any) -> int | None:
    """``workers`` / ``threads``: unset (None), or a whole number (numpy's too) 1 or more."""
    if value is None:
        return None
    count = whole_number(value)
    if count is None:
        raise OptionError(option, f"must be a whole number, got {value!r}")
    if count < 1:
        raise OptionError(option, f"must be 1 or more, got {value!r}")
    return count


@dataclass(frozen=True)
class BatchOptions:
    """How a run over many videos goes (``crct track``'s batch options); ``flags``: a
    video's failure names an option as the command line's flag, not as Python's keyword."""

    engine: str = "local"
    workers: int | None = None  # None: default_workers (local), the cluster's CPUs (ray)
    threads: int | None = None  # None: the cores / workers (local), 1 (ray)
    overwrite: bool = False
    ray_address: str | None = None
    gpus_per_worker: float = 0.0
    flags: bool = False

    def check(self) -> BatchOptions:
        """Refuse bad options before any worker starts (or anything is written: a float of
        workers failed after summary.csv); returns them with the counts as Python's ints."""
        from crct_cli.batch import ENGINES

        if self.engine not in ENGINES:
            raise OptionError("engine", f"must be {' or '.join(ENGINES)}, got {self.engine!r}")
        workers = _option_count("workers", self.workers)
        threads = _option_count("threads", self.threads)
        gpus = self.gpus_per_worker
        if isinstance(gpus, bool) or not isinstance(gpus, numbers.Real):
            raise OptionError("gpus_per_worker", f"must be a number, got {gpus!r}")
        if not 0 <= gpus < math.inf:
            raise OptionError("gpus_per_worker", f"must be 0 or more, got {gpus}")
        if self.gpus_per_worker > 0 and self.engine != "ray":
            raise OptionError(
                "gpus_per_worker",
                "is for engine='ray' (local workers share the GPU)",
                cli="is for --engine ray (local workers share the GPU)",
            )
        if self.ray_address is not None and self.engine != "ray":
            raise OptionError(
                "ray_address",
                "is for engine='ray' (it names the cluster to join)",
                cli="is for --engine ray (it names the cluster to join)",
            )
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            from crct_cli.batch.ray_engine import ray_missing

            raise ray_missing()
        return dataclasses.replace(
            self, workers=workers, threads=threads, gpus_per_worker=float(gpus)
        )

    def engine_for(
        self,
        tracker_options: dict[str, Any],
        overlay: bool,
        videos: int,
        networks_factory: Callable[[], Any] | None = None,
        crops: int = 0,
        frames_in: FrameRange | None = None,
        frame_pixels: int = 0,
        settings: dict[str, Any] | None = None,
        pts: bool = True,
    ) -> Engine:
        """The engine that tracks ``videos`` videos with these options; ``frame_pixels``: the
        largest frame among them (the default worker count leaves memory for its frames);
        ``settings``: :func:`settings_of` the options, when the caller has them already."""
        from crct_cli.batch import (
            available_memory,
            cpu_count,
            default_workers,
            threads_per_worker,
            worker_bytes,
        )
        from crct_cli.runtime.backend import resolve_engine

        if settings is None:
            settings = settings_of(tracker_options, frames_in)
        if self.engine == "ray":
            from crct_cli.batch.ray_engine import RayEngine

            spec = WorkerSpec(
                tracker_options,
                settings,
                overlay,
                self.threads or 1,
                networks_factory,
                crops,
                frames_in,
                pts,
                self.flags,
            )
            return RayEngine(spec, self.workers or 0, self.ray_address, self.gpus_per_worker)
        from crct_cli.batch.local import LocalEngine

        cores = cpu_count()
        if self.workers is None:
            # also refuses here, once, what every worker would refuse (no CUDA, no onnxruntime)
            runtime = resolve_engine(
                tracker_options.get("backend", "auto"), tracker_options.get("device", "auto")
            )
            per_worker = worker_bytes(runtime.backend, frame_pixels, overlay)
            workers = default_workers(cores, videos, available_memory(), per_worker)
        else:
            workers = max(1, min(self.workers, videos))
        threads = self.threads or threads_per_worker(cores, workers)
        spec = WorkerSpec(
            tracker_options,
            settings,
            overlay,
            threads,
            networks_factory,
            crops,
            frames_in,
            pts,
            self.flags,
        )
        return LocalEngine(spec, workers)


LOCK_TRIES = 5


@contextlib.contextmanager
def exclusive_out(out: Path) -> Iterator[None]:
    """Hold ``OUT`` for this run: a second run into the same folder (the same command started
    twice, on one machine or, where the file system supports locks, two) is refused instead of
    racing this one. The lock goes with the process, however it ends; the file too, unless
    the process is killed."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    check_writable_folder(out)  # one plain line, not the lock file's "Read-only file system"
    path = out / LOCK_NAME
    for _ in range(LOCK_TRIES):
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            busy = f"{out} is being written by another crct track run ({holder})"
            raise WordedError(
                f"{busy}; wait for it to end or choose another out folder",
                f"{busy}; wait for it to end or choose another --out",
            ) from None
        try:  # the file locked must still be the one at the path: its holder removes it
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()  # locked a file the run before had just removed: open the new one
    else:
        raise CrctError(f"{out}: cannot take the lock {path} (it keeps being replaced)")
    for folder in out.resolve().parents:  # a run into a folder above holds this one too
        above = held_by(folder)
        if above is not None:
            handle.close()
            busy = f"{out} is inside {folder}, being written by another crct track run ({above})"
            raise WordedError(
                f"{busy}; wait for it to end or choose another out folder",
                f"{busy}; wait for it to end or choose another --out",
            )
    with handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            # removed while still held: a run that opens it now finds it locked, one that
            # comes after makes a new one (a run killed with -9 leaves it, and the next takes it)
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)
