"""The Ray engine (``crct track --engine ray``): the same workers as the local engine, as Ray
actors, so a cluster Ray already runs tracks the videos and no scheduler of our own is needed.

Each actor loads the networks once (:class:`~crct_cli.batch.worker.VideoWorker`) and tracks
one whole video per call, writing straight into ``OUT``, which must therefore be storage that
every node sees at the same path (NFS, a cluster file system). The driver hands each actor
its next video as soon as it is free (the longest videos first), and writes ``summary.csv``.
An actor that dies (a crash, a lost node) costs its video (reported failed; its folder stays
unfinished) and Ray restarts the actor; the next run of the same command completes it. On
Ctrl-C (or a scheduler's SIGTERM) the driver cancels the videos being tracked and gives each
actor :data:`~crct_cli.batch.local.STOP_GRACE_S` to leave, removing the temporary files it was
writing, before it kills the actors.

Where: ``--ray-address`` or ``$RAY_ADDRESS`` (``ray start --head`` prints it); with neither,
a fresh local Ray instance on this machine, stopped at the end.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.local import STOP_GRACE_S, error_line
from crct_cli.batch.summary import VideoResult
from crct_cli.batch.worker import Listener, VideoWorker, WorkerSpec
from crct_cli.errors import CrctError

#: The logger of Ray's "Token authentication is enabled" line at a local instance's start.
RAY_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
#: Ray restarts a dead actor (reloading its networks) this many times over a run.
ACTOR_RESTARTS = 3


class _TrackerActor:
    """A Ray actor around :class:`VideoWorker`; a loading error is kept for :meth:`ready`."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.error: str | None = None
        self.worker: VideoWorker | None = None
        try:
            self.worker = VideoWorker(spec)
        except Exception as exc:
            self.error = error_line(exc)

    def ready(self) -> str | None:
        return self.error

    def run(self, job: VideoJob) -> VideoResult:
        if self.worker is None:
            return VideoResult(job.label, job.output, "failed", error=str(self.error))
        import ray

        context = ray.get_runtime_context()

        def on_frame(done: int, total: int | None) -> None:
            # ray.cancel only flags a running actor task: leave at the next frame by the
            # exception Ctrl-C raises, so the files being written are removed on the way out
            if context.is_canceled():
                raise KeyboardInterrupt

        return self.worker.run(job, on_frame)


def ray_address(option: str | None) -> str:
    """``--ray-address``, else ``$RAY_ADDRESS``, else ``local`` (a fresh local instance)."""
    return option or os.environ.get("RAY_ADDRESS", "").strip() or "local"


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
            raise CrctError("--engine ray needs the ray package: pip install 'crct[ray]'") from None
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
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise CrctError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None

    def _run(self, ray: Any, jobs: Sequence[VideoJob], listener: Listener) -> None:
        cpus = max(1, self.spec.threads)
        if self.workers > 0:
            n_actors = self.workers
        else:
            n_actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        n_actors = min(n_actors, len(jobs))
        self.actors_used = n_actors
        remote = ray.remote(
            num_cpus=cpus,
            num_gpus=self.gpus_per_worker,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=0,  # a video that killed its actor is reported, not retried
        )(_TrackerActor)
        actors = [remote.remote(self.spec) for _ in range(n_actors)]
        running: dict[Any, tuple[int, VideoJob]] = {}  # each video being tracked, by its task
        try:
            try:
                errors = ray.get([a.ready.remote() for a in actors])
            except ray.exceptions.RayError as exc:
                reason = " ".join(str(exc).split())[:300]
                raise CrctError(f"the Ray workers cannot start: {reason}") from None
            for error in errors:
                if error is not None:
                    raise CrctError(error)
            # every node sees OUT and the inputs at the same absolute paths, not our cwd
            queue = deque(
                replace(job, source=job.source.absolute(), out_dir=job.out_dir.absolute())
                for job in jobs
            )

            def hand_out(slot: int) -> None:
                if queue:
                    job = queue.popleft()
                    listener.started(slot, job)
                    running[actors[slot].run.remote(job)] = (slot, job)

            for slot in range(n_actors):
                hand_out(slot)
            while running:
                finished, _ = ray.wait(list(running), num_returns=1)
                slot, job = running.pop(finished[0])
                try:
                    result = ray.get(finished[0])
                except ray.exceptions.RayError as exc:
                    reason = " ".join(str(exc).split())[:300]
                    error = f"{job.label}: the Ray worker died while tracking it ({reason})"
                    result = VideoResult(job.label, job.output, "failed", error=error)
                listener.finished(slot, job, result)
                hand_out(slot)
        finally:
            if running:  # stopped early: let each video being tracked clean up, then kill
                for ref in running:
                    ray.cancel(ref)
                ray.wait(list(running), num_returns=len(running), timeout=STOP_GRACE_S)
            for actor in actors:
                ray.kill(actor)
