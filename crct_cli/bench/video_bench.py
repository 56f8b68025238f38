"""300-VW style benchmark: run each method over each sequence and score every annotated frame.

Protocol (CRCT Tables I and II, after Chrysos et al. 2017):

* Frames are streamed from the video (one in memory at a time); frame ``k`` of
  ``annot/00000k.pts`` is the k-th decoded frame.
* ``init="gt"`` (the papers' protocol): every method starts from the same box, the
  ground-truth landmark box of the first annotated frame, and is fed from that frame on;
  ``init="detect"``: from the first frame, finding its own face (MTCNN).
* Every annotated frame is scored; a frame without a prediction (the tracker had no face yet,
  or the video ended before the annotations did) is a failure (error ``inf``, IoU 0).
* Table II: frame-level AUC@T and failure rate over all frames of a category's sequences.
  Table I: one-pass success AUC of the IoU between the method's box (the box of its points)
  and the ground-truth landmark box, over the same frames.
* Jitter (:mod:`crct_cli.bench.scores`): over every two consecutive annotated frames that both
  have a prediction, the frame-to-frame motion of the predicted points less the ground truth's,
  per ground-truth box diagonal (the ``--norm`` length), averaged over the pairs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from crct_cli.bench.catalog import MissingSequence, SequenceSelection
from crct_cli.bench.methods import (
    MethodSpec,
    VideoFactory,
    VideoMethod,
    finish_sequence,
    frames_for,
    weight_files_of,
)
from crct_cli.bench.scores import (
    GroupScore,
    finite_or_none,
    point_jitter,
    score_group,
    state_summaries_json,
    summaries_by_state,
    summarize_jitter,
)
from crct_cli.errors import CrctError
from crct_cli.io.datasets import VideoSequence, read_annotations
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import (
    DEFAULT_THRESHOLD,
    ErrorSummary,
    Normalization,
    iou,
    nme,
    success_auc,
    summarize,
)
from crct_cli.tracking.tracker import State

INITS: tuple[str, ...] = ("gt", "detect")
#: The tracker's states in the order tables list them (track.json's).
STATE_ORDER: tuple[str, ...] = get_args(State)

OnFrame = Callable[[int, int | None], None]
Progress = Callable[[str], AbstractContextManager[OnFrame]]


@dataclass
class SequenceRun:
    """One method over one sequence: an error and an IoU per annotated frame."""

    sequence: str
    method: str
    frames: int  #: frames fed to the method
    numbers: np.ndarray  #: annotated frame numbers (from 1) that were scored
    errors: np.ndarray  #: NME per scored frame, inf where the method had no prediction
    ious: np.ndarray  #: IoU per scored frame, 0 where it had no box
    seconds: float
    #: jitter per pair of consecutive scored frames (NaN where either has no prediction)
    jitter: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the larger NME of each pair's two frames (to keep the pairs on the face)
    jitter_worst: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the tracker's state per scored frame (None where the method says none)
    states: list[str | None] = field(default_factory=list)

    def to_json(self, threshold: float) -> dict[str, object]:
        s = summarize(self.errors, threshold)
        j = summarize_jitter(self.jitter, self.jitter_worst, threshold)
        return {
            "sequence": self.sequence,
            "method": self.method,
            "frames": self.frames,
            "scored": int(len(self.errors)),
            "missing": s.missing,
            "mean_nme": finite_or_none(s.mean_nme),
            "auc": s.auc,
            "failure_rate": s.failure_rate,
            "success_auc": success_auc(self.ious),
            **j.to_json(),
            "seconds": round(self.seconds, 3),
            "fps": round(self.frames / self.seconds, 2) if self.seconds > 0 else None,
            **({"by_state": by_state_json([self], threshold)} if any(self.states) else {}),
        }


def by_state(runs: list[SequenceRun], threshold: float) -> dict[str, ErrorSummary]:
    """The scored frames of ``runs`` pooled by the tracker's state, in track.json's order (a
    lost frame's points are FLL's reading in the held box, to be trusted less)."""
    with_states = [run for run in runs if run.states]  # not a method that says no state
    states = [s for run in with_states for s in run.states]
    errors = np.concatenate([run.errors for run in with_states]) if with_states else np.zeros(0)
    return summaries_by_state(states, errors, threshold, STATE_ORDER)


def by_state_json(runs: list[SequenceRun], threshold: float) -> dict[str, dict[str, object]]:
    return state_summaries_json(by_state(runs, threshold))


def run_sequence(
    sequence: VideoSequence,
    method: VideoMethod,
    method_name: str,
    annotations: dict[int, np.ndarray],
    init: str = "gt",
    norm: Normalization = "diagonal",
    max_frames: int | None = None,
    on_frame: OnFrame | None = None,
) -> SequenceRun:
    """Run ``method`` over ``sequence`` and score it against ``annotations`` (frame -> points)."""
    if init not in INITS:
        raise CrctError(f"--init must be gt or detect, got {init!r}")
    numbers = sorted(k for k in annotations if max_frames is None or k <= max_frames)
    if not numbers:
        raise CrctError(f"{sequence.annot_dir}: no annotated frame to score")
    first = numbers[0]
    init_box = box_from_points(annotations[first]) if init == "gt" else None
    start = first - 1 if init == "gt" else 0
    method.start(sequence, init_box)
    wanted = set(numbers)
    points: dict[int, np.ndarray] = {}
    boxes: dict[int, np.ndarray] = {}
    states: dict[int, str | None] = {}
    fed = 0
    t0 = time.perf_counter()
    for frame in frames_for(method, iter_frames(sequence.video, max_frames)):
        if frame.index < start:
            continue
        prediction = method.step(frame)
        fed += 1
        number = frame.index + 1
        if number in wanted:
            states[number] = prediction.state
        if number in wanted and prediction.points is not None:
            pts = np.asarray(prediction.points, dtype=np.float64)
            points[number] = pts
            box = prediction.box if prediction.box is not None else box_from_points(pts)
            boxes[number] = np.asarray(box, dtype=np.float64)
        if on_frame is not None:
            on_frame(fed, None)
        if number >= numbers[-1]:  # nothing after the last annotated frame is scored
            break
    for index, revised in finish_sequence(method).items():  # --lookahead's revised answers
        number = index + 1
        if number in wanted:
            states[number] = revised.state
        if number in wanted and revised.points is not None:
            points[number] = np.asarray(revised.points, dtype=np.float64)
            box = revised.box if revised.box is not None else box_from_points(points[number])
            boxes[number] = np.asarray(box, dtype=np.float64)
    seconds = time.perf_counter() - t0
    gt = np.stack([annotations[k] for k in numbers])
    pred = np.full_like(gt, np.nan)
    pred_boxes = np.full((len(numbers), 4), np.nan)
    for i, k in enumerate(numbers):
        if k in points:
            pred[i] = points[k]
            pred_boxes[i] = boxes[k]
    try:
        errors = nme(pred, gt, norm)
    except ValueError as exc:
        raise CrctError(f"{sequence.annot_dir}: {exc}") from None
    gt_boxes = np.stack([box_from_points(g) for g in gt])
    pairs = np.flatnonzero(np.diff(np.asarray(numbers)) == 1)  # frame k and k + 1
    jitter = point_jitter(pred[pairs], pred[pairs + 1], gt[pairs], gt[pairs + 1], norm)
    return SequenceRun(
        sequence=sequence.name,
        method=method_name,
        frames=fed,
        numbers=np.asarray(numbers),
        errors=errors,
        ious=iou(pred_boxes, gt_boxes),
        seconds=seconds,
        jitter=jitter,
        jitter_worst=np.maximum(errors[pairs], errors[pairs + 1]),
        states=[states.get(k) for k in numbers],
    )


@dataclass
class VideoBenchResult:
    """Everything a 300-VW benchmark measured, ready for tables, JSON and plots."""

    dataset: str
    root: str
    methods: list[str]
    init: str
    seq_bt: int
    norm: str
    threshold: float
    max_frames: int | None
    runs: list[SequenceRun] = field(default_factory=list)
    gt_origin: float = 0.0  #: taken off the annotations before scoring
    #: group -> method -> score
    groups: dict[str, dict[str, GroupScore]] = field(default_factory=dict)
    missing: list[MissingSequence] = field(default_factory=list)
    #: group -> the sequences scored in it
    group_members: dict[str, list[str]] = field(default_factory=dict)
    #: method -> role -> weight file path
    weight_files: dict[str, dict[str, str]] = field(default_factory=dict)

    def runs_with_states(self) -> dict[str, list[SequenceRun]]:
        """Method -> its runs, for the methods that said their state on some frame."""
        out = {m: [r for r in self.runs if r.method == m] for m in self.methods}
        return {m: runs for m, runs in out.items() if any(any(r.states) for r in runs)}

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "video",
            "dataset": self.dataset,
            "root": self.root,
            "methods": self.methods,
            "protocol": {
                "init": self.init,
                "seq_bt": self.seq_bt,
                "normalization": self.norm,
                "threshold": self.threshold,
                "max_frames": self.max_frames,
                "gt_origin": self.gt_origin,
                "frame_level": True,
                "missing_prediction": "failure (error inf, IoU 0)",
                "box": "IoU of the method's landmark box vs the ground-truth landmark box",
                "jitter": (
                    "mean over consecutive frame pairs with two predictions of mean_k "
                    "||(p_t,k - p_t-1,k) - (g_t,k - g_t-1,k)|| / normalising length of g_t; "
                    "jitter_ok: pairs whose two frames are within the threshold"
                ),
            },
            "missing_sequences": [{"name": m.name, "reason": m.reason} for m in self.missing],
            "groups": self.group_members,
            "landmarks": {
                group: {m: s.to_json() for m, s in scores.items()}
                for group, scores in self.groups.items()
            },
            "boxes": {
                group: {m: {"success_auc": s.success_auc} for m, s in scores.items()}
                for group, scores in self.groups.items()
            },
            "by_state": {
                m: by_state_json(runs, self.threshold)
                for m, runs in self.runs_with_states().items()
            },
            "sequences": [run.to_json(self.threshold) for run in self.runs],
        }


def _no_progress(label: str) -> AbstractContextManager[OnFrame]:
    @contextlib.contextmanager
    def quiet() -> Iterator[OnFrame]:
        yield lambda done, total: None

    return quiet()


def run_video_benchmark(
    selection: SequenceSelection,
    specs: list[MethodSpec],
    factory: VideoFactory,
    init: str = "gt",
    seq_bt: int = 2,
    norm: Normalization = "diagonal",
    threshold: float = DEFAULT_THRESHOLD,
    max_frames: int | None = None,
    progress: Progress | None = None,
    gt_origin: float = 0.0,
) -> VideoBenchResult:
    """Every method over every selected sequence; scores per group (category) and method.

    ``factory`` builds one :class:`VideoMethod` per spec (loaded once, reused across
    sequences). Sequences whose video cannot be read or whose ``annot/`` holds no frame to
    score are added to ``missing`` rather than dropped silently; this is checked before any
    method is built.
    """
    if init not in INITS:
        raise CrctError(f"--init must be gt or detect, got {init!r}")
    progress = progress or _no_progress
    result = VideoBenchResult(
        dataset=selection.dataset,
        root=str(selection.root),
        methods=[s.name for s in specs],
        init=init,
        seq_bt=seq_bt,
        norm=norm,
        threshold=threshold,
        max_frames=max_frames,
        missing=list(selection.missing),
        gt_origin=gt_origin,
    )
    annotations: dict[str, dict[int, np.ndarray]] = {}
    scorable: list[VideoSequence] = []
    for sequence in selection.sequences:
        assert sequence.annot_dir is not None
        try:
            probe_video(sequence.video)  # decodes one frame: an unreadable video is listed
        except CrctError as exc:
            result.missing.append(MissingSequence(sequence.name, str(exc)))
            continue
        annot = read_annotations(sequence.annot_dir, gt_origin)
        if max_frames is not None:
            annot = {k: v for k, v in annot.items() if k <= max_frames}
        if not annot:
            result.missing.append(
                MissingSequence(sequence.name, f"no annotated frame in {sequence.annot_dir}")
            )
            continue
        annotations[sequence.name] = annot
        scorable.append(sequence)
    if not scorable:
        raise CrctError(f"{selection.root}: no sequence has an annotated frame to score")
    runs: dict[tuple[str, str], SequenceRun] = {}
    for spec in specs:
        method = factory(spec)
        result.weight_files[spec.name] = weight_files_of(method)
        for sequence in scorable:
            with progress(f"{sequence.name} {spec.name}") as on_frame:
                run = run_sequence(
                    sequence,
                    method,
                    spec.name,
                    annotations[sequence.name],
                    init,
                    norm,
                    max_frames,
                    on_frame,
                )
            runs[(sequence.name, spec.name)] = run
            result.runs.append(run)
    scored = {s.name for s in scorable}
    for group, names in selection.groups.items():
        members = [n for n in names if n in scored]
        if not members:
            continue
        result.groups[group] = {}
        result.group_members[group] = members
        worst = {
            spec.name: np.concatenate([runs[(n, spec.name)].jitter_worst for n in members])
            for spec in specs
        }
        for spec in specs:
            group_runs = [runs[(n, spec.name)] for n in members]
            result.groups[group][spec.name] = score_group(
                group,
                spec.name,
                len(members),
                np.concatenate([r.errors for r in group_runs]),
                threshold,
                np.concatenate([r.ious for r in group_runs]),
                (np.concatenate([r.jitter for r in group_runs]), worst[spec.name]),
                _others_worst(worst, spec.name),
            )
    return result


def _others_worst(worst: dict[str, np.ndarray], method: str) -> np.ndarray | None:
    """The largest NME of each pair over the methods other than ``method`` (the same pairs of
    the same frames for every method), or None when it runs alone: the pairs all of them have
    on the face, where their jitter compares like with like."""
    others = [w for name, w in worst.items() if name != method]
    if not others or any(w.shape != worst[method].shape for w in others):
        return None
    return np.maximum.reduce(others)
