"""Progress bars and summaries on stderr (rich), kept out of the core modules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from crct_cli.tracking.pipeline import TrackSummary


@contextlib.contextmanager
def frame_progress(console: Console, name: str) -> Iterator[Callable[[int, int | None], None]]:
    """A bar with frames per second; yields the ``on_frame(done, total)`` callback."""
    with Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(name, total=None, fps=0.0)

        def on_frame(done: int, total: int | None) -> None:
            elapsed = progress.tasks[task].elapsed or 0.0
            fps = done / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=done, total=total, fps=fps)

        yield on_frame


@contextlib.contextmanager
def item_progress(console: Console, label: str, total: int) -> Iterator[Callable[..., None]]:
    """A bar over items; yields a callback that advances it (its arguments are ignored)."""
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda *_: progress.advance(task)


def print_track_summary(console: Console, s: TrackSummary, timings: dict[str, list[float]]) -> None:
    table = Table(title=f"{s.video} -> {s.out_dir}", show_header=False, box=None)
    table.add_row("frames", str(s.frames))
    if s.faces > 1:
        table.add_row("faces", f"{s.faces} ({s.face_frames} face-frames)")
    table.add_row("with landmarks", str(s.with_points))
    table.add_row("re-detections", str(s.redetections))
    table.add_row("frames lost", str(s.lost))
    table.add_row("speed", f"{s.fps:.1f} fps ({s.seconds:.1f} s)")
    per = ", ".join(
        f"{name} {1000 * float(np.mean(v)):.1f} ms x{len(v)}" for name, v in timings.items() if v
    )
    if per:
        table.add_row("per call", per)
    console.print(table)
