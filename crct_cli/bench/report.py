"""Benchmark output: rich tables for the screen, ``results.json``, and CED plots (matplotlib).

``results.json`` holds every number together with what is needed to reproduce it: the
command line, the versions of crct, torch, numpy and Python, the device, and the sha256 of
every weight file the methods loaded. Plots are drawn with matplotlib (a dependency of crct)
on the file-only Agg backend, so no display is needed; should matplotlib be missing from a
broken install, they are skipped with one line, never an error.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crct_cli.bench.multi_face import MultiBenchResult
from crct_cli.bench.scores import (
    STATE_COLUMNS,
    JitterSummary,
    ced_grid,
    state_cells,
    summarize_jitter,
)
from crct_cli.bench.speed import NETWORKS, ProcessRun, VideoSpeed
from crct_cli.bench.still_bench import StillBenchResult
from crct_cli.bench.video_bench import VideoBenchResult
from crct_cli.errors import CrctError
from crct_cli.io.atomic import atomic_path, write_text_atomic
from crct_cli.metrics import OTB_THRESHOLDS, summarize
from crct_cli.versions import versions

if TYPE_CHECKING:
    from rich.table import Table

SCHEMA = "crct.benchmark/1"
RESULTS_JSON = "results.json"
PLOT_EXTRA_HINT = "pip install matplotlib, a dependency of crct"
NETWORK_LABELS = {"detect": "detect", "bt": "BT", "fv": "FV", "fll": "FLL", "iid": "denoise (IID)"}


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``crct benchmark ...``), shell-quoted."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = "crct" if Path(args[0]).name in ("crct", "__main__.py", "crct_cli") else args[0]
    return shlex.join(args)


def hash_weight_files(per_method: dict[str, dict[str, str]]) -> list[dict[str, object]]:
    """One entry per distinct weight file: path, sha256, roles and the methods that used it."""
    from crct_cli.models.weights import sha256_file

    files: dict[str, dict[str, Any]] = {}
    for method, roles in per_method.items():
        for role, path in roles.items():
            entry = files.setdefault(path, {"file": path, "roles": [], "methods": []})
            if role not in entry["roles"]:
                entry["roles"].append(role)
            if method not in entry["methods"]:
                entry["methods"].append(method)
    for path, entry in files.items():
        try:
            entry["sha256"] = sha256_file(path)
        except OSError:
            entry["sha256"] = None
    return list(files.values())


def build_payload(
    result: VideoBenchResult | StillBenchResult | None = None,
    speed: list[VideoSpeed] | None = None,
    device: str | None = None,
    device_description: str | None = None,
    argv: list[str] | None = None,
) -> dict[str, object]:
    """The whole ``results.json`` document."""
    payload: dict[str, object] = {
        "schema": SCHEMA,
        "command": command_line(argv),
        "versions": versions(),
        "device": {"name": device, "description": device_description},
    }
    weights: dict[str, dict[str, str]] = {}
    if result is not None:
        payload.update(result.to_json())
        weights.update(result.weight_files)
        payload["curves"] = curves_json(result)
    if speed is not None:
        payload["speed"] = {"videos": [v.to_json() for v in speed]}
        for v in speed:
            for run in v.runs:
                weights.setdefault(run.method, {}).update(run.weight_files)
    payload["weights"] = hash_weight_files(weights)
    return payload


def curves_json(result: VideoBenchResult | StillBenchResult) -> dict[str, object]:
    """CED (and, for videos, success) curves sampled on fixed grids, for re-plotting."""
    groups = result.groups if isinstance(result, VideoBenchResult) else result.scores
    out: dict[str, object] = {
        "ced_thresholds": [round(float(x), 6) for x in ced_grid(result.threshold)],
        "ced": {
            g: {m: s.ced.round(6).tolist() for m, s in per.items()} for g, per in groups.items()
        },
    }
    if isinstance(result, VideoBenchResult):
        out["success_thresholds"] = OTB_THRESHOLDS.round(6).tolist()
        out["success"] = {
            g: {m: s.success.round(6).tolist() for m, s in per.items() if s.success is not None}
            for g, per in groups.items()
        }
    return out


def write_json(out_dir: Path, payload: dict[str, object]) -> Path:
    path = out_dir / RESULTS_JSON
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        raise CrctError(f"{out_dir}: cannot write results ({exc.strerror})") from None
    return path


# --------------------------------------------------------------------------------------------
# Plots


@dataclass
class PlotOutcome:
    written: list[Path] = field(default_factory=list)
    skipped: str | None = None  #: one line saying why no plot was drawn


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, or None when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


#: The x axis of a CED plot, by ``--norm``: a figure taken into a paper says its own measure.
NORM_LABELS = {
    "diagonal": "NME (normalised by the landmark box diagonal)",
    "area": "NME (normalised by the square root of the landmark box area)",
    "interocular": "NME (normalised by the outer eye corners' distance)",
}


def _ced_figure(
    plt: Any,
    title: str,
    x: np.ndarray,
    curves: dict[str, np.ndarray],
    auc: dict[str, float],
    norm: str,
) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for method, y in curves.items():
        ax.plot(x, y, label=f"{method} (AUC {auc[method]:.3f})")
    ax.set_xlim(0, float(x[-1]))
    ax.set_ylim(0, 1)
    ax.set_xlabel(NORM_LABELS.get(norm, f"NME ({norm})"))
    ax.set_ylabel("share of frames / images")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def write_plots(result: VideoBenchResult | StillBenchResult, out_dir: Path) -> PlotOutcome:
    """``ced_<group>.png`` per category or set; ``success_<group>.png`` (videos);
    ``auc_by_set.png`` (still images, FADeNN Figure 4)."""
    plt = _pyplot()
    if plt is None:
        return PlotOutcome(
            skipped=f"matplotlib is not installed ({PLOT_EXTRA_HINT}): plots skipped"
        )
    outcome = PlotOutcome()
    out_dir.mkdir(parents=True, exist_ok=True)
    x = ced_grid(result.threshold)
    groups = result.groups if isinstance(result, VideoBenchResult) else result.scores
    for group, per in groups.items():
        curves = {m: s.ced for m, s in per.items()}
        aucs = {m: s.summary.auc for m, s in per.items()}
        title = f"{result.dataset} {group}: cumulative error"
        fig = _ced_figure(plt, title, x, curves, aucs, result.norm)
        outcome.written.append(_save(plt, fig, out_dir / f"ced_{_safe(group)}.png"))
        if isinstance(result, VideoBenchResult):
            fig, ax = plt.subplots(figsize=(5.5, 4.0))
            for m, s in per.items():
                if s.success is not None:
                    ax.plot(OTB_THRESHOLDS, s.success, label=f"{m} (AUC {s.success_auc:.3f})")
            ax.set_xlabel("IoU threshold")
            ax.set_ylabel("success rate")
            ax.set_title(f"{result.dataset} {group}: box one-pass success")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.legend(loc="lower left")
            fig.tight_layout()
            outcome.written.append(_save(plt, fig, out_dir / f"success_{_safe(group)}.png"))
    if isinstance(result, StillBenchResult) and len(result.sets) > 1:
        fig, ax = plt.subplots(
            figsize=(max(6.0, 0.6 * len(result.sets) * len(result.methods)), 4.0)
        )
        width = 0.8 / max(1, len(result.methods))
        pos = np.arange(len(result.sets))
        for k, m in enumerate(result.methods):
            ax.bar(
                pos + k * width,
                [result.scores[s][m].summary.auc for s in result.sets],
                width,
                label=m,
            )
        ax.set_xticks(
            pos + width * (len(result.methods) - 1) / 2, result.sets, rotation=45, ha="right"
        )
        ax.set_ylabel(f"AUC@{result.threshold:g}")
        ax.set_ylim(0, 1)
        ax.set_title(f"{result.dataset}: AUC per set")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        outcome.written.append(_save(plt, fig, out_dir / "auc_by_set.png"))
    return outcome


# --------------------------------------------------------------------------------------------
# Tables


def _titled(title: str) -> Table:
    """A table at least as wide as its title, so the title is not wrapped over many lines."""
    from rich.table import Table

    return Table(title=title, title_justify="left", min_width=len(title))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def video_tables(result: VideoBenchResult) -> list[Table]:
    """Table II (landmarks: AUC and failure rate per category) and Table I (box success AUC)."""
    t = f"{result.threshold:g}"
    groups = list(result.groups)
    landmarks = _titled(
        f"{result.dataset}: landmarks, frame-level AUC@{t} / failure rate (init {result.init})"
    )
    boxes = _titled(f"{result.dataset}: boxes, one-pass success AUC")
    landmarks.add_column("method")
    boxes.add_column("method")
    for g in groups:
        n = len(result.group_members.get(g, []))
        landmarks.add_column(f"{g} AUC\n({n} seq)", justify="right")
        landmarks.add_column(f"{g} FR", justify="right")
        boxes.add_column(f"{g}\n({n} seq)", justify="right")
    for m in result.methods:
        landmarks.add_row(
            m,
            *[
                cell
                for g in groups
                for cell in (
                    f"{result.groups[g][m].summary.auc:.4f}",
                    _pct(result.groups[g][m].summary.failure_rate),
                )
            ],
        )
        boxes.add_row(m, *[f"{result.groups[g][m].success_auc:.4f}" for g in groups])
    shared = len(result.methods) > 1  # and the pairs every method has on the face
    jitter = _titled(
        f"{result.dataset}: jitter, frame-to-frame point motion less the ground truth's, "
        f"per box diagonal (all pairs / pairs within {t}"
        + (f" / pairs within {t} for every method)" if shared else ")")
    )
    jitter.add_column("method")
    for g in groups:
        jitter.add_column(f"{g} jitter", justify="right")
        jitter.add_column(f"{g} on face", justify="right")
        if shared:
            jitter.add_column(f"{g} on face, shared", justify="right")
    for m in result.methods:
        cells: list[str] = []
        for g in groups:
            j = result.groups[g][m].jitter
            cells += _jitter_cells(j)
            if shared:
                cells.append(f"{j.mean_shared:.4f}" if j is not None and j.pairs_shared else "-")
        jitter.add_row(m, *cells)
    return [landmarks, boxes, jitter, *_state_table(result)]


def _state_table(result: VideoBenchResult) -> list[Table]:
    """The frames of every sequence by the tracker's state (none for methods without one)."""
    from crct_cli.bench.video_bench import by_state

    with_states = result.runs_with_states()
    if not with_states:
        return []
    t = f"{result.threshold:g}"
    table = _titled(
        f"{result.dataset}: landmarks by the tracker's state, all sequences "
        f"(AUC@{t} / failure rate / median NME)"
    )
    table.add_column("method")
    table.add_column("state")
    for name in STATE_COLUMNS:
        table.add_column(name, justify="right")
    for m, runs in with_states.items():
        for row in state_cells(by_state(runs, result.threshold)):
            table.add_row(m, *row)
    return [table]


def _jitter_cells(j: JitterSummary | None) -> tuple[str, str]:
    if j is None:
        return "-", "-"
    return (
        f"{j.mean:.4f}" if j.pairs else "-",
        f"{j.mean_ok:.4f}" if j.pairs_ok else "-",
    )


#: Above this many sequence x method rows, the per-sequence table is left to results.json.
MAX_SEQUENCE_ROWS = 40


def multi_tables(result: MultiBenchResult) -> list[Table]:
    """Every visible face-frame of every sequence per method; then one row per run."""
    t = f"{result.threshold:g}"
    n_seq = len({r.sequence for r in result.runs})
    totals = _titled(
        f"{result.dataset}: every visible face-frame of {n_seq} sequence(s), AUC@{t} / failure "
        f"rate (no matched prediction = failure), coverage, identity switches, ghosts, jitter"
    )
    for name in ("method", "face-frames", f"AUC@{t}", "FR", "mean NME", "coverage"):
        totals.add_column(name, justify="left" if name == "method" else "right")
    for name in (
        "ID switches\n(max/seq)",
        "of them\non return",
        "ids on\n2+ faces",
        "ghosts\n(duplicates)",
        "jitter",
        "jitter\non face",
    ):
        totals.add_column(name, justify="right")
    totals.add_column("fps", justify="right")
    for m in result.methods:
        s = result.totals[m]
        totals.add_row(
            m,
            str(s.summary.count),
            f"{s.summary.auc:.4f}",
            _pct(s.summary.failure_rate),
            f"{s.summary.mean_nme:.4f}",
            _pct(s.coverage),
            f"{s.id_switches} ({s.max_id_switches})",
            str(s.id_switches_on_return),
            str(s.shared_ids),
            f"{s.ghosts} ({s.duplicates})",
            *_jitter_cells(s.jitter),
            "-" if s.fps is None else f"{s.fps:.1f}",
        )
    tables = [totals]
    if len(result.runs) <= MAX_SEQUENCE_ROWS:
        per = _titled(f"{result.dataset}: per sequence")
        for name in ("sequence", "method", "face-frames", f"AUC@{t}", "FR", "coverage"):
            per.add_column(name, justify="left" if name in ("sequence", "method") else "right")
        for name in ("ID switches", "ghosts", "jitter"):
            per.add_column(name, justify="right")
        for r in result.runs:
            run = summarize(r.errors, result.threshold)
            per.add_row(
                r.sequence,
                r.method,
                str(r.face_frames),
                f"{run.auc:.4f}",
                _pct(run.failure_rate),
                _pct(r.matched / r.face_frames) if r.face_frames else "-",
                str(r.id_switches),
                str(r.ghosts),
                _jitter_cells(summarize_jitter(r.jitter, r.jitter_worst, result.threshold))[0],
            )
        tables.append(per)
    return tables


def write_multi_plots(result: MultiBenchResult, out_dir: Path) -> PlotOutcome:
    """``ced_multi.png``: the cumulative error over every visible face-frame, per method."""
    plt = _pyplot()
    if plt is None:
        return PlotOutcome(
            skipped=f"matplotlib is not installed ({PLOT_EXTRA_HINT}): plots skipped"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {m: s.ced for m, s in result.totals.items()}
    aucs = {m: s.summary.auc for m, s in result.totals.items()}
    title = f"{result.dataset}: cumulative error, every visible face-frame"
    fig = _ced_figure(plt, title, ced_grid(result.threshold), curves, aucs, result.norm)
    return PlotOutcome(written=[_save(plt, fig, out_dir / "ced_multi.png")])


def still_tables(result: StillBenchResult) -> list[Table]:
    """One row per set (clean, degraded...), AUC and failure rate per method (FADeNN Table I)."""
    t = f"{result.threshold:g}"
    box = "ground-truth box" if result.box_from_pts else "detected box"
    table = _titled(f"{result.dataset}: AUC@{t} / failure rate per set ({box})")
    table.add_column("set")
    table.add_column("images", justify="right")
    for m in result.methods:
        table.add_column(f"{m} AUC", justify="right")
        table.add_column(f"{m} FR", justify="right")
    for s in result.sets:
        cells = result.scores[s]
        first = cells[result.methods[0]]
        table.add_row(
            s,
            str(first.items),
            *[
                c
                for m in result.methods
                for c in (f"{cells[m].summary.auc:.4f}", _pct(cells[m].summary.failure_rate))
            ],
        )
    mean = result.mean_degraded()
    if mean:
        n_sets = next(iter(mean.values()))["sets"]
        table.add_row(
            f"mean of {n_sets:g} degraded",
            "",
            *[
                c
                for m in result.methods
                for c in (f"{mean[m]['auc']:.4f}", _pct(mean[m]["failure_rate"]))
            ],
        )
    return [table]


def speed_tables(videos: Iterable[VideoSpeed]) -> list[Table]:
    """Decode fps, ms per network call and end-to-end fps per video, method and engine; then
    the whole commands (crct track per engine, dlib when installed): start-up, fps, peak memory."""
    videos = list(videos)
    extra = sorted(
        {k for v in videos for r in v.runs for k in r.in_run if k not in NETWORKS}
    )  # e.g. the denoiser, timed by the networks during the run
    table = _titled(
        "speed: ms = median per call on one face, isolated; end-to-end = crct track's code path "
        "in this process incl. writing to a temp dir"
    )
    for name in ("video", "method", "backend", "device", "faces"):
        table.add_column(name, justify="left")
    table.add_column("decode fps", justify="right")
    for name in NETWORKS:
        table.add_column(f"{NETWORK_LABELS[name]} ms", justify="right")
    for name in extra:
        table.add_column(f"{NETWORK_LABELS.get(name, name)} ms", justify="right")
    table.add_column("faces / frame", justify="right")
    table.add_column("end-to-end fps", justify="right")
    table.add_column("ms / frame", justify="right")
    for v in videos:
        for r in v.runs:
            table.add_row(
                Path(v.video).name,
                r.method,
                r.backend,
                r.device,
                r.faces_label,
                f"{v.decode_fps:.0f}",
                *[f"{r.networks[n].ms:.1f}" if n in r.networks else "-" for n in NETWORKS],
                *[f"{r.in_run[n].mean_ms:.1f}" if n in r.in_run else "-" for n in extra],
                f"{r.face_frames / r.frames:.2f}" if r.frames else "-",
                f"{r.fps:.1f}",
                f"{1000 / r.fps:.1f}" if r.fps > 0 else "-",
            )
    tables = [table]
    if any(r.process is not None for v in videos for r in v.runs) or any(v.peers for v in videos):
        tables.append(process_table(videos))
    return tables


def process_table(videos: list[VideoSpeed]) -> Table:
    """Whole commands as a user runs them: wall time, fps, peak memory, start-up; and how many
    times dlib's time each crct run is."""
    table = _titled(
        "whole process: crct track (no overlay) and dlib HOG+ERT per frame, alternating runs "
        "(medians); start-up = crct track on the first frame alone; x dlib speed = the median "
        "of the pairs (their range)"
    )
    for name in ("video", "command", "backend", "device"):
        table.add_column(name, justify="left")
    for name in ("runs", "seconds", "fps", "peak MB", "start-up s", "start-up MB"):
        table.add_column(name, justify="right")
    table.add_column("x dlib speed", justify="right")
    for v in videos:
        dlib = next((p for p in v.peers if not p.error), None)
        for p in v.peers:
            table.add_row(
                Path(v.video).name,
                p.tool,
                "-",
                "cpu",
                *_process_cells(p),
                "-",
                "-",
                "1.00",
            )
        for r in v.runs:
            process = r.process
            if process is None:
                continue
            start = (
                ("-", "-")
                if process.startup_seconds is None
                else (f"{process.startup_seconds:.2f}", f"{process.startup_peak_mb or 0:.0f}")
            )
            table.add_row(
                Path(v.video).name,
                f"crct track {r.method}",
                r.backend,
                r.device,
                *_process_cells(process),
                *start,
                _ratio_cell(process, dlib),
            )
    return table


def _ratio_cell(p: ProcessRun, dlib: ProcessRun | None) -> str:
    ratio = p.speed_against(dlib)
    if ratio is None:
        return "-"
    if len(p.x_dlib) > 1:
        return f"{ratio:.2f} ({min(p.x_dlib):.2f}-{max(p.x_dlib):.2f})"
    return f"{ratio:.2f}"


def _process_cells(p: ProcessRun) -> tuple[str, str, str, str]:
    """runs, seconds (median), fps, peak MB."""
    runs = str(len(p.runs) or 1)
    if p.error:
        return runs, "failed", p.error[:60], "-"
    return runs, f"{p.seconds:.2f}", f"{p.fps:.1f}", f"{p.peak_mb:.0f}"
