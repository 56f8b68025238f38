"""The Ray engine (``crct track --engine ray``): the same workers as the local engine, as Ray
actors, so a cluster Ray already runs tracks the videos and no scheduler of our own is needed.

Each actor loads the networks once (:class:`~crct_cli.batch.worker.VideoWorker`) and tracks
one whole video per call, writing straight into ``OUT``, which must therefore be storage that
every node sees at the same path (NFS, a cluster file system). The driver hands each actor
its next video as soon as it is free (the longest videos first), and writes ``summary.csv``.
An actor that dies (a crash, a lost node) costs its video (reported failed; its folder stays
unfinished) and Ray restarts the actor; the next run of the same command completes it. On
Ctrl-C (or a scheduler's SIGTERM) the driver raises a stop flag that each actor reads four
times a second, and gives them :data:`~crct_cli.batch.local.STOP_GRACE_S` to leave, removing
the temporary files they were writing, before it kills them.

Where: ``--ray-address`` or ``$RAY_ADDRESS`` (``ray start --head`` prints it); with neither,
a fresh local Ray instance on this machine, stopped at the end.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.local import STOP_GRACE_S, error_line
from crct_cli.batch.summary import VideoResult
from crct_cli.batch.worker import Listener, VideoWorker, WorkerSpec
from crct_cli.errors import CrctError, OptionError

#: The logger of Ray's "Token authentication is enabled" line at a local instance's start.
RAY_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def ray_missing() -> OptionError:
    """What a run with ``--engine ray`` / ``engine="ray"`` says where ray is not installed."""
    install = "needs the ray package: pip install 'crct[ray]'"
    return OptionError("engine", f"'ray' {install}", cli=f"ray {install}")


#: Seconds between an actor's looks at the driver's stop flag.
STOP_POLL_S = 0.25
#: Ray restarts a dead actor (reloading its networks) this many times over a run.
ACTOR_RESTARTS = 3
#: Seconds a run waits for its first worker on a cluster that may be growing (an autoscaler
#: adding nodes) before it says that none can start.
FIRST_WORKER_S = 300.0


class _TrackerActor:
    """A Ray actor around :class:`VideoWorker`; a loading error is kept for :meth:`ready`."""

    def __init__(self, spec: WorkerSpec) -> None:
        # The driver's stop reaches a video by interrupt_main, which raises only where Python
        # handles SIGINT: an actor whose cluster was started from a background job (nohup ...
        # &, a batch script) inherits SIGINT ignored, and would be killed mid-write instead.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.error: str | None = None
        self.worker: VideoWorker | None = None
        try:
            self.worker = VideoWorker(spec)
        except Exception as exc:
            self.error = error_line(exc, spec.flags)

    def ready(self) -> str | None:
        return self.error

    def run(self, job: VideoJob, stop: Any = None, named: VideoJob | None = None) -> VideoResult:
        """Track one video; when the driver raises ``stop`` (a :class:`_StopFlag`), leave by
        the exception Ctrl-C raises, so the files being written are removed on the way out.
        ``named``: the job as the user named it (``job`` has absolute paths)."""
        if self.worker is None:
            return VideoResult(job.label, job.output, "failed", error=str(self.error))
        if stop is None:
            return self.worker.run(job, named=named)
        done = threading.Event()
        watcher = threading.Thread(target=_interrupt_on, args=(stop, done), daemon=True)
        watcher.start()
        try:
            return self.worker.run(job, named=named)
        finally:
            done.set()
            watcher.join()  # an interrupt it sent is raised here, inside this call, never later


def _interrupt_on(stop: Any, done: threading.Event) -> None:
    """In an actor: ask the driver's flag every :data:`STOP_POLL_S` seconds, and once it is
    raised interrupt the main thread, where Ray runs the actor's calls, as Ctrl-C would. A
    frame may take long and frames are held back while a face is lost (``--backfill``,
    ``--lookahead``), so waiting for the next frame out could outlast the grace period."""
    import ray

    while not done.wait(STOP_POLL_S):
        try:
            raised = ray.get(stop.raised.remote(), timeout=STOP_POLL_S * 4)
        except ray.exceptions.GetTimeoutError:  # a busy cluster: ask again
            continue
        except Exception:  # the flag is gone with the driver: the actor goes too
            return
        if raised and not done.is_set():
            _thread.interrupt_main()
            return


class _StopFlag:
    """A flag the driver raises on Ctrl-C, for the actors to read (a Ray actor of no CPU)."""

    def __init__(self) -> None:
        self.up = False

    def raise_(self) -> None:
        self.up = True

    def raised(self) -> bool:
        return self.up


def ray_address(option: str | None) -> str:
    """``--ray-address``, else ``$RAY_ADDRESS``, else ``local`` (a fresh local instance)."""
    return option or os.environ.get("RAY_ADDRESS", "").strip() or "local"


#: Seconds a cluster's address is given to answer before Ray is asked to join it.
ANSWER_S = 5.0


def _answers(address: str) -> None:
    """A cluster's HOST:PORT (or ray://HOST:PORT) must accept a connection: where nothing
    listens, Ray goes on retrying, printing its own timeouts (over two minutes, seen)."""
    if address in ("local", "auto"):
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return  # a form Ray knows and this does not: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ANSWER_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CrctError(
            f"cannot reach the Ray cluster at {address}: nothing answers there ({reason})"
        ) from None


class RayEngine:
    """Runs jobs on Ray actors; ``workers`` 0 means one per ``threads`` CPUs of the cluster."""

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int = 0,
        address: str | None = None,
        gpus_per_worker: float = 0.0,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.address = ray_address(address)
        self.gpus_per_worker = gpus_per_worker
        self.actors_used = 0

    def run(self, jobs: Sequence[VideoJob], listener: Listener) -> None:
        try:
            import ray
        except ImportError:
            raise ray_missing() from None
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            self._run(ray, jobs, listener)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> None:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if self.address == "local" and self.gpus_per_worker == 0:
            options["num_gpus"] = 0  # a CPU run: no GPU probing
        if self.address == "local":
            # Ray says on every start that the fresh instance uses token authentication (its
            # default, kept): the instance is this run's own, so the line is noise here
            logging.getLogger(RAY_TOKEN_LOGGER).setLevel(logging.ERROR)
        _answers(self.address)
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise CrctError(
                f"cannot join the Ray cluster at {self.address}: {exc} (it answers, so it may "
                "want a token: Ray's clusters use token authentication by default, and a "
                "driver needs the cluster's token, or RAY_AUTH_MODE=disabled on both sides)"
            ) from None

    def _check_fits(self, ray: Any, cpus: int) -> None:
        """A fresh local instance has what this machine has: a worker that asks for more
        CPUs (``--threads``) or GPUs than that could never start, so say so at once."""
        if self.address != "local":
            return  # a cluster may grow (an autoscaler): waited for, up to FIRST_WORKER_S
        have = ray.cluster_resources()
        if cpus > have.get("CPU", 0) or self.gpus_per_worker > have.get("GPU", 0):
            raise CrctError(self._none_started(ray, cpus))

    def _none_started(self, ray: Any, cpus: int) -> str:
        have = ray.cluster_resources()
        return (
            f"no Ray worker can start: each asks for {cpus} CPU(s) (--threads) and "
            f"{self.gpus_per_worker:g} GPU(s) (--gpus-per-worker); the cluster has "
            f"{have.get('CPU', 0):g} CPU(s) and {have.get('GPU', 0):g} GPU(s)"
        )

    def _run(self, ray: Any, jobs: Sequence[VideoJob], listener: Listener) -> None:
        cpus = max(1, self.spec.threads)
        if self.workers > 0:
            n_actors = self.workers
        else:
            n_actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        n_actors = min(n_actors, len(jobs))
        self._check_fits(ray, cpus)
        remote = ray.remote(
            num_cpus=cpus,
            num_gpus=self.gpus_per_worker,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=0,  # a video that killed its actor is reported, not retried
        )(_TrackerActor)
        actors = [remote.remote(self.spec) for _ in range(n_actors)]
        stop = ray.remote(num_cpus=0)(_StopFlag).remote()
        running: dict[Any, tuple[int, VideoJob]] = {}  # each video being tracked, by its task
        # each worker takes videos once it has started: one the cluster cannot place (more
        # workers than it has room for) waits without holding a video back
        starting = {a.ready.remote(): slot for slot, a in enumerate(actors)}
        began = time.monotonic()
        try:
            # every node sees OUT and the inputs at the same absolute paths, not our cwd;
            # what it writes and says names them as the user did
            queue = deque(jobs)

            def hand_out(slot: int) -> None:
                if queue:
                    job = queue.popleft()
                    listener.started(slot, job)
                    where = replace(
                        job, source=job.source.absolute(), out_dir=job.out_dir.absolute()
                    )
                    running[actors[slot].run.remote(where, stop, job)] = (slot, job)

            while running or (queue and starting):
                finished, _ = ray.wait([*starting, *running], num_returns=1, timeout=5.0)
                if not finished:
                    if not running and time.monotonic() - began > FIRST_WORKER_S:
                        raise CrctError(self._none_started(ray, cpus))
                    continue
                if finished[0] in starting:
                    slot = starting.pop(finished[0])
                    try:
                        error = ray.get(finished[0])
                    except ray.exceptions.RayError as exc:
                        reason = " ".join(str(exc).split())[:300]
                        raise CrctError(f"the Ray workers cannot start: {reason}") from None
                    if error is not None:
                        raise CrctError(error)
                    self.actors_used += 1
                    hand_out(slot)
                    continue
                slot, job = running.pop(finished[0])
                try:
                    result = ray.get(finished[0])
                except ray.exceptions.RayError as exc:
                    reason = " ".join(str(exc).split())[:300]
                    error = f"{job.label}: the Ray worker died while tracking it ({reason})"
                    result = VideoResult(job.label, job.output, "failed", error=error)
                if self.spec.flags:  # the workers' own stderr stays on their nodes
                    for warning in result.warnings:
                        listener.warned(slot, f"crct: warning: {warning}")
                listener.finished(slot, job, result)
                hand_out(slot)
        finally:
            try:
                if running:  # stopped early: let each video being tracked clean up, then kill
                    stop.raise_.remote()
                    done, _ = ray.wait(
                        list(running), num_returns=len(running), timeout=STOP_GRACE_S
                    )
                    for ref in done:  # a video that finished before the stop reached it counts
                        slot, job = running.pop(ref)
                        with contextlib.suppress(ray.exceptions.RayError):
                            listener.finished(slot, job, ray.get(ref))
            finally:  # also after a second Ctrl-C during the wait
                for actor in [*actors, stop]:
                    ray.kill(actor)
