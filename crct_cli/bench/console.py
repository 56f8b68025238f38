"""The screen side of ``crct benchmark --dataset`` and ``--speed``: progress, tables, notes.

Tables go to stdout (they are the result); progress bars, warnings about missing data and
the list of files written go to stderr, so ``crct benchmark ... > table.txt`` keeps only the
numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from crct_cli.bench.multi_face import MultiBenchResult
from crct_cli.bench.report import multi_tables, speed_tables, still_tables, video_tables
from crct_cli.bench.runner import DatasetRequest, Prepared, execute, prepare, write_outputs
from crct_cli.bench.speed import PAIRS, measure_speed, speed_engines
from crct_cli.bench.still_bench import StillBenchResult
from crct_cli.bench.video_bench import OnFrame
from crct_cli.tables import print_tables

#: How many missing sequences / skipped images are named on screen (results.json has all).
MAX_LISTED = 20


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def _warn(err: Console, text: str) -> None:
    err.print(f"[yellow]{escape(text)}[/yellow]", soft_wrap=True)


def report_missing(err: Console, prepared: Prepared) -> None:
    """Name what cannot be scored, once, before anything runs."""
    if prepared.sequences is not None and prepared.sequences.missing:
        missing = prepared.sequences.missing
        total = len(missing) + len(prepared.sequences.sequences)
        _warn(
            err,
            f"missing {len(missing)} of {total} sequences of {prepared.req.dataset} "
            f"(not scored): {_listing([f'{m.name} ({m.reason})' for m in missing])}",
        )
    if prepared.multi_missing:
        absent = prepared.multi_missing
        _warn(
            err,
            f"missing {len(absent)} of {len(absent) + len(prepared.multi or [])} sequences "
            f"(not scored): {_listing([f'{n} ({why})' for n, why in absent])}",
        )
    if prepared.images is not None and prepared.images.skipped:
        skipped = prepared.images.skipped
        _warn(
            err,
            f"skipped {len(skipped)} image(s): {_listing([f'{r} ({why})' for r, why in skipped])}",
        )


@contextlib.contextmanager
def _frame_bar(err: Console, label: str) -> Iterator[OnFrame]:
    from crct_cli.ui import frame_progress

    with frame_progress(err, label) as on_frame:
        yield on_frame


@contextlib.contextmanager
def _item_bar(err: Console, total: int) -> Iterator[Callable[[], None]]:
    from crct_cli.ui import item_progress

    with item_progress(err, "scoring", total) as advance:
        yield advance


#: ``--dataset`` names that mean a dataset's own files (300-VW's official categories, 300-W,
#: Menpo), which count pixel centres from 1; ``300vw`` and ``images`` take any folder (crct's
#: own synthetic sets count from 0), so they are not said.
OWN_FILES_FROM_1 = ("300vw-cat1", "300vw-cat2", "300vw-cat3", "300w", "menpo")


def run_dataset_command(
    req: DatasetRequest, out: Path | None, argv: list[str] | None = None
) -> None:
    """``crct benchmark --dataset``: check, list what is missing, run, print, write."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    prepared = prepare(req)
    report_missing(err, prepared)
    if req.dataset in OWN_FILES_FROM_1 and not req.gt_origin:
        _warn(
            err,
            f"--dataset {req.dataset}: the dataset's own .pts files count pixel centres from 1 "
            "and crct from 0, so every frame is scored a pixel off unless --gt-origin 1 takes "
            "it off (kept at 0, the default, for scores comparable with earlier runs)",
        )
    if prepared.images is not None:  # one bar over image x set x method
        with _item_bar(err, prepared.still_steps) as on_item:
            outcome = execute(prepared, on_item=on_item)
    else:  # one bar per sequence and method (rich shows one live display at a time)
        outcome = execute(prepared, progress=lambda label: _frame_bar(err, label))
    result = outcome.result
    if isinstance(result, MultiBenchResult):
        print_tables(multi_tables(result))
    else:
        print_tables(
            still_tables(result) if isinstance(result, StillBenchResult) else video_tables(result)
        )
    if out is not None:
        path, plots = write_outputs(out, outcome, argv=argv)
        err.print(f"wrote {path}")
        if plots.skipped:
            _warn(err, plots.skipped)
        elif plots.written:
            err.print(f"wrote {len(plots.written)} plot(s) to {out}")


def run_speed_command(
    videos: list[Path],
    device: str,
    methods: str | None,
    seq_bt: int | None,
    out: Path | None,
    argv: list[str] | None = None,
    backend: str = "auto",
    faces: str = "1",
    int8: bool = True,
    pairs: int = PAIRS,
) -> None:
    """``crct benchmark --speed VIDEO...``: time decoding, each network and ``crct track``."""
    from crct_cli.api import parse_faces
    from crct_cli.bench.methods import parse_methods
    from crct_cli.errors import CrctError

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    specs = parse_methods(methods or "crct", "video")
    if seq_bt is not None and seq_bt < 1:
        raise CrctError(f"--seq-bt must be at least 1, got {seq_bt}")
    engines = speed_engines(device, backend)
    devices = sorted({e.device for e in engines}, key=("cpu", "cuda").index)
    results = measure_speed(
        videos,
        engines,
        specs,
        seq_bt=2 if seq_bt is None else seq_bt,
        log=err.print,
        faces=parse_faces(faces),
        int8=int8,
        pairs=pairs,
    )
    print_tables(speed_tables(results))
    if out is not None:
        path, _ = write_outputs(out, speed=results, speed_devices=devices, argv=argv)
        err.print(f"wrote {path}")


def run_multi_pred_command(
    pred: Path,
    gt: Path,
    norm: str,
    threshold: float,
    out: Path | None,
    argv: list[str] | None = None,
) -> None:
    """``crct benchmark --pred RUN --gt SEQ``, where SEQ has per-face ground truth (``faces/``):
    score a multi-face run's ``landmarks.csv`` (or a folder of them, one per sequence)."""
    from crct_cli.bench.multi_face import score_runs
    from crct_cli.bench.runner import write_multi_outputs
    from crct_cli.errors import CrctError
    from crct_cli.metrics import NORMALIZATIONS

    if norm not in NORMALIZATIONS:
        raise CrctError(
            f"unknown normalisation {norm!r}; choose one of {', '.join(NORMALIZATIONS)}"
        )
    if not threshold > 0:
        raise CrctError(f"--threshold must be positive, got {threshold}")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    result = score_runs(pred, gt, norm, threshold)  # type: ignore[arg-type]
    if result.missing:
        _warn(
            err,
            f"{len(result.missing)} sequence(s) without predictions, every face-frame a "
            f"failure: {_listing([f'{n} ({why})' for n, why in result.missing])}",
        )
    print_tables(multi_tables(result))
    if out is not None:
        path, plots = write_multi_outputs(out, result, None, None, argv)
        err.print(f"wrote {path}")
        if plots.skipped:
            _warn(err, plots.skipped)
