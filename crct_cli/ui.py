"""Progress bars and summaries on stderr (rich), kept out of the core modules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.runner import BatchReport
from crct_cli.batch.summary import VideoResult
from crct_cli.tables import print_tables
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


def _per_call(name: str, times: list[float]) -> str:
    """A network's mean time a call and its calls: over all of them where a
    :class:`~crct_cli.tracking.networks.CallTimes` counts them (its list keeps only the
    latest), else over the list."""
    from crct_cli.tracking.networks import CallTimes

    calls, seconds = (
        (times.calls, times.seconds) if isinstance(times, CallTimes) else (len(times), sum(times))
    )
    return f"{name} {1000 * seconds / calls:.1f} ms x{calls}"


def print_track_summary(console: Console, s: TrackSummary, timings: dict[str, list[float]]) -> None:
    table = Table(title=f"{s.video} -> {s.out_dir}", show_header=False, box=None)
    table.add_row("frames", str(s.frames))
    several = s.faces > 1  # the per-frame counts are face 0's: say so
    if several:
        table.add_row("faces", f"{s.faces} ({s.face_frames} face-frames)")
    table.add_row("face 0 with landmarks" if several else "with landmarks", str(s.with_points))
    table.add_row("re-detections, all faces" if several else "re-detections", str(s.redetections))
    table.add_row("face 0 frames lost" if several else "frames lost", str(s.lost))
    if s.cuts:
        table.add_row("shot cuts", str(s.cuts))
    if s.rotate:
        table.add_row("turned", f"{s.rotate} degrees clockwise")
    table.add_row("speed", f"{s.fps:.1f} fps ({s.seconds:.1f} s)")
    per = ", ".join(_per_call(name, v) for name, v in timings.items() if v)
    if per:
        table.add_row("per call", per)
    print_tables([table], console)


#: Terminal columns from which the batch's bars show a bar and times beside the counts.
WIDE_BARS = 80
BAR_WIDTH = 20
#: Columns a worker's line needs besides the video's name: bar, "frames/total", "12.3 fps",
#: two times and the gaps (wide); the counts and the rate alone (narrow).
WIDE_BARS_USE = BAR_WIDTH + 13 + 11 + 8 + 8 + 6
NARROW_BARS_USE = 13 + 11 + 4


def fit_name(label: str, room: int) -> str:
    """``label`` in ``room`` columns: cut from its start, so the file's own name stays."""
    return label if len(label) <= room else "…" + label[-(room - 1) :]


class BatchProgress:
    """``crct track`` over many videos: a bar over the videos, one line per worker with the
    frames of its current video, and one printed line per finished video (kept in logs).
    ``total``: the videos named; those already tracked are taken off when they are skipped."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.finished_count = 0
        # a long name is cut from its start (the file's own name stays) so that the counts,
        # rates and times stay whole; on a narrow terminal the bar and the times give way
        # (rich would otherwise cut every column to "…")
        wide = console.width >= WIDE_BARS
        self.name_room = max(12, console.width - (WIDE_BARS_USE if wide else NARROW_BARS_USE))
        counts = (MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))
        times = (TimeElapsedColumn(), TimeRemainingColumn())
        self.progress = Progress(
            TextColumn("{task.description}"),
            *((BarColumn(bar_width=BAR_WIDTH), *counts, *times) if wide else counts),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.overall = self.progress.add_task("[bold]videos", total=total, rate="")
        self.slots: list[TaskID] = []  # one line per worker, added as workers start

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def say(self, text: str) -> None:
        """One line above the bars, never wrapped (so logs keep one line per event)."""
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def skipped(self, count: int) -> None:
        self.total -= count  # the bar counts the videos to track
        self.progress.update(self.overall, total=self.total)
        self.say(
            f"skipping {count} video(s) already tracked with these settings "
            "(--overwrite tracks them again)"
        )

    def started(self, slot: int, job: VideoJob) -> None:
        while len(self.slots) <= slot:
            self.slots.append(self.progress.add_task("", total=None, rate="", visible=False))
        name = escape(f"  {fit_name(job.label, self.name_room - 2)}")
        self.progress.reset(self.slots[slot], total=None, description=name, rate="", visible=True)

    def frame(self, slot: int, done: int, total: int | None) -> None:
        if slot < len(self.slots):
            task = self.slots[slot]
            elapsed = self.progress.tasks[task].elapsed or 0.0
            rate = f"{done / elapsed:.1f} fps" if elapsed > 0 else ""
            self.progress.update(task, completed=done, total=total, rate=rate)

    def warned(self, slot: int, line: str) -> None:
        self.say(line)

    def finished(self, slot: int, job: VideoJob, result: VideoResult) -> None:
        self.finished_count += 1
        self.progress.advance(self.overall)
        if slot < len(self.slots):
            self.progress.update(self.slots[slot], visible=False)
        # every finished video gets its [k/N], so a log shows how far a run got whatever
        # became of each; errors and warnings keep their "crct: ..." start for grep
        count = f"[{self.finished_count}/{self.total}]"
        if result.status == "failed":
            self.say(f"crct: error: {count} {' '.join(result.error.split())}")
        elif result.status == "no_face":
            self.say(
                f"crct: warning: {count} {result.input}: no face found in any of its "
                f"{result.frames} frames"
            )
        else:
            fps = result.frames / result.seconds if result.seconds > 0 else 0.0
            self.say(
                f"{count} {result.input}: {result.frames} frames, "
                f"{result.faces} face(s), {result.seconds:.1f} s ({fps:.1f} fps)"
            )
        if result.missing_frames:
            line = short_file_line(result.input, result.frames, result.missing_frames)
            self.say(f"crct: warning: {line}")


def short_file_line(label: str, decoded: int, missing: int, done: str = "tracked") -> str:
    """The warning for a video that decoded fewer frames than its header promised (after
    any frames skipped)."""
    return (
        f"{label}: {missing} frames its header promises never decoded (a file cut short?); "
        f"the {decoded} before the cut are {done}"
    )


def print_batch_report(console: Console, report: BatchReport, summary: Path | None) -> None:
    """The last line of a run over many videos: counts, speed, where summary.csv is."""
    results = report.results
    parts = [
        f"{report.count(status)} {word}"
        for status, word in STATUS_WORDS.items()
        if report.count(status)
    ]
    skipped = sum(r.skipped for r in results)
    if skipped:
        parts.append(f"{skipped} skipped (done before)")
    line = f"{len(results)} video(s): {', '.join(parts) or 'nothing to do'}"
    if report.tracked:
        line += (
            f"; {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps, "
            f"{report.videos_per_minute:.1f} videos/min)"
        )
    if summary is not None:
        line += f"; summary: {summary}"
    console.print(line, markup=False, highlight=False, soft_wrap=True)


#: How the final line names each status.
STATUS_WORDS: dict[str, str] = {
    "ok": "ok",
    "no_face": "without a face",
    "failed": "failed",
    "pending": "not reached",
}
