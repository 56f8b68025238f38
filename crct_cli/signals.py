"""A scheduler's SIGTERM (``timeout``, SLURM, ``docker stop``) read as Ctrl-C, so that every
command and batch stops the one way: outputs in progress removed, finished ones kept."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_as_interrupt(final: bool = False) -> Iterator[None]:
    """A scheduler's SIGTERM stops the run like Ctrl-C: workers stopped, summary written.

    A second SIGTERM is not heard while the first one's clean-up runs; ``final`` (the command
    line, whose process ends with the run) leaves it unheard after the block too, where a
    library's caller gets its own handler back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one waits for the clean-up
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if not (final and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN):
            signal.signal(signal.SIGTERM, previous)
