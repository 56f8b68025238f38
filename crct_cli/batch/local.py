"""The local engine: N worker processes that each load the networks once, handed one video
at a time by a supervisor.

Supervising each video (rather than a ``ProcessPoolExecutor``, which breaks for good when one
worker dies) means a worker killed in the middle of a video (a crash in a decoder, the OOM
killer, ``kill -9``) costs only that video: it is reported failed, its folder is left
unfinished (no ``track.json``), and a fresh worker takes the dead one's place. Workers are
started with ``spawn``: no state of the parent (threads, a loaded library) is copied into them.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.summary import VideoResult
from crct_cli.batch.worker import Listener, VideoWorker, WorkerSpec
from crct_cli.errors import CrctError, WordedError, error_text

#: Seconds between two progress messages of a worker (the bar needs no more).
FRAME_REPORT_S = 0.2
#: Workers in a row that may die while loading the networks before the run gives up.
MAX_START_FAILURES = 3
#: Seconds a stopped worker gets to exit before it is killed.
STOP_GRACE_S = 5.0
#: A spawned worker's exit code when the script it imports as it starts calls
#: ``track_videos`` at its top level (no ``if __name__ == "__main__":``): it leaves at once,
#: with nothing printed, and the run stops with the one line that says so.
UNGUARDED_EXIT = 87
#: That line, in a Python caller's words (the command line's own script is guarded).
UNGUARDED = (
    "worker processes start by importing this script, and it calls track_videos at its top "
    'level: call track_videos under if __name__ == "__main__": (as in the README\'s example)'
)


def starting_from_script() -> bool:
    """Whether this process is a spawned one still importing its parent's script (the
    ``__main__`` module is run again as each worker starts, to find its functions): a
    ``track_videos`` there, unguarded, would start the whole batch again in each worker: it
    failed on the out folder's lock, a long traceback from each worker before the run's own
    error (``_inheriting`` is what multiprocessing's own check of this reads)."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


def error_line(exc: BaseException, flags: bool = False) -> str:
    """A worker's loading error in one line (``flags``: options named as crct's flags)."""
    if isinstance(exc, CrctError):
        return error_text(exc, flags)
    return f"{type(exc).__name__}: {exc}"


def _worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """A worker process: load once, then track each video the supervisor sends.

    A supervisor killed with -9 (the OOM killer, a scheduler) leaves its workers behind: each
    finds its pipe broken at its next message (a video's frame count, which stops the video
    and removes what it was writing, or its result) and leaves quietly, since nobody is left
    to read a traceback but the user's terminal."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    signal.signal(signal.SIGTERM, _stop_now)  # the supervisor's stop: clean up, then exit
    with contextlib.suppress(_SupervisorGone):
        _serve(conn, spec)


class _SupervisorGone(Exception):
    """The pipe to the supervisor broke: nobody is left to hear this worker. Only the pipe's
    own errors become this, so that any other error still reaches the user."""


def _serve(conn: Connection, spec: WorkerSpec) -> None:
    """:func:`_worker_main`'s work; a broken pipe to the supervisor ends it by
    :class:`_SupervisorGone`."""
    lock = threading.Lock()  # a decoding thread's warning and a frame count at once

    def send(*message: Any) -> None:
        with lock:
            try:
                conn.send(message)
            except (OSError, EOFError) as exc:
                raise _SupervisorGone from exc

    def say(line: str) -> None:
        with contextlib.suppress(_SupervisorGone, ValueError):  # the supervisor is gone
            send("warning", line)

    try:
        worker = VideoWorker(spec, say)
    except BaseException as exc:
        send("init_failed", error_line(exc, spec.flags))
        return
    send("ready", os.getpid())
    while True:
        try:
            job = conn.recv()
        except (OSError, EOFError) as exc:
            raise _SupervisorGone from exc
        if job is None:
            return
        last = 0.0

        def on_frame(done: int, total: int | None) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= FRAME_REPORT_S or done == total:
                last = now
                send("frame", done, total)

        send("result", worker.run(job, on_frame))


def _stop_now(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: leave by an exception, so that the video being written removes
    its temporary files on the way out (as a single-video run does on Ctrl-C)."""
    raise SystemExit(128 + signum)


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    conn: Connection
    ready: bool = False
    stopping: bool = False
    job: VideoJob | None = None


class LocalEngine:
    """Runs jobs on ``workers`` local processes; see the module's docstring."""

    def __init__(self, spec: WorkerSpec, workers: int, start_method: str = "spawn") -> None:
        self.spec = spec
        self.workers = max(1, workers)
        self.context: Any = mp.get_context(start_method)
        self.restarts = 0  # workers started in place of dead ones

    def run(self, jobs: Sequence[VideoJob], listener: Listener) -> None:
        queue = deque(jobs)
        remaining = len(jobs)
        start_failures = 0
        pool: dict[int, _Worker] = {}

        def start(slot: int) -> None:
            parent, child = self.context.Pipe()
            process = self.context.Process(
                target=_worker_main, args=(child, self.spec), name=f"crct-worker-{slot}"
            )
            process.daemon = True
            process.start()
            child.close()
            pool[slot] = _Worker(slot, process, parent)

        def hand_out(worker: _Worker) -> None:
            if queue:
                worker.job = queue.popleft()
                listener.started(worker.slot, worker.job)
                worker.conn.send(worker.job)
            elif not worker.stopping:
                worker.stopping = True
                worker.conn.send(None)

        def receive(worker: _Worker) -> None:
            nonlocal remaining, start_failures
            try:
                while worker.conn.poll():
                    kind, *payload = worker.conn.recv()
                    if kind == "ready":
                        worker.ready, start_failures = True, 0
                        hand_out(worker)
                    elif kind == "init_failed":
                        raise CrctError(payload[0])
                    elif kind == "warning":
                        listener.warned(worker.slot, payload[0])
                    elif kind == "frame" and worker.job is not None:
                        listener.frame(worker.slot, payload[0], payload[1])
                    elif kind == "result" and worker.job is not None:
                        job, worker.job = worker.job, None
                        remaining -= 1
                        listener.finished(worker.slot, job, payload[0])
                        hand_out(worker)
            except (EOFError, OSError):
                pass  # it died: its sentinel says so next

        def bury(worker: _Worker) -> None:
            nonlocal remaining, start_failures
            receive(worker)  # a result sent just before dying still counts
            worker.process.join()
            worker.conn.close()
            del pool[worker.slot]
            why = death_reason(worker.process.exitcode)
            if worker.job is not None:
                job, worker.job = worker.job, None
                remaining -= 1
                error = f"{job.label}: the worker process died ({why}) while tracking it"
                listener.finished(
                    worker.slot, job, VideoResult(job.label, job.output, "failed", error=error)
                )
            if not worker.ready and worker.process.exitcode == UNGUARDED_EXIT:
                raise WordedError(UNGUARDED, UNGUARDED)  # every worker would: stop now
            if not worker.ready:
                start_failures += 1
                if start_failures >= MAX_START_FAILURES:
                    died = f"worker processes die while loading the networks ({why}); try fewer"
                    guard = (  # a spawned worker imports the script: its call must be guarded
                        ', or, from a script, call track_videos under if __name__ == "__main__":'
                    )
                    raise WordedError(f"{died} workers{guard}", f"{died} --workers")
            if queue:
                self.restarts += worker.ready
                start(worker.slot)

        for slot in range(min(self.workers, len(jobs))):
            start(slot)
        clean = False
        try:
            while remaining:
                handles: dict[Any, _Worker] = {}
                for worker in pool.values():
                    handles[worker.conn] = worker
                    handles[worker.process.sentinel] = worker
                for handle in wait(list(handles)):
                    worker = handles[handle]
                    if pool.get(worker.slot) is not worker:
                        continue  # buried already in this round
                    if handle is worker.conn:
                        receive(worker)
                    else:
                        bury(worker)
            clean = True
        finally:
            self._stop(list(pool.values()), clean)

    @staticmethod
    def _stop(workers: list[_Worker], clean: bool) -> None:
        """Let idle workers exit; on an error or Ctrl-C stop them at once (their videos are
        left unfinished, to be completed by the next run)."""
        for worker in workers:
            if not clean:
                worker.process.terminate()
            elif not worker.stopping:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
