"""Multi-face tracking scored against per-face ground truth (``crct benchmark``, issue 13).

Input: a run's ``landmarks.csv`` (OpenFace 2.x layout, :mod:`crct_cli.io.openface_csv`: one
row per face per frame with ``frame`` from 1, ``face_id``, ``success`` and 68 points; OpenFace's
own ``FaceLandmarkVidMulti`` files read the same way) and a sequence folder made by
:mod:`crct_cli.bench.synth_multi`: ``faces/<gt_id>/000001.pts ...`` for the frames where that
face is visible, and optionally ``faces.json`` with every face's box on every frame.

Protocol, per frame:

1. **Predictions** are the rows with ``success`` 1. A row with ``success`` 0 is the tracker
   saying "this is not a face any more" (a lost track's unaccepted estimate): like OpenFace's
   consumers, the scorer does not take it as an answer. It is neither scored nor a ghost; the
   ``*_all_rows`` numbers score those rows as well, the way the one-face video benchmark scores
   every frame's points whatever its state.
2. **Matching**: predictions and visible ground-truth faces are paired one-to-one by the
   Hungarian algorithm on 1 - IoU of their landmark boxes; a pair with IoU below
   ``MatchConfig.iou`` (0.3) is not a match. (IoU 0.3 between landmark boxes is about
   NME 0.3: a prediction that far off is on no face.) As CLEAR MOT does, a face keeps the
   ``face_id`` it was matched to on the frame before while their IoU stays at or above the
   gate; only the rest are assigned afresh.
3. **Errors**: each visible face-frame gets the NME of its matched prediction (normalised as
   the still and video benchmarks do, :mod:`crct_cli.metrics`, by default the ground-truth
   landmark box diagonal), or ``inf`` (a failure) when no prediction matched it.

Over the sequence (and over all sequences of a method):

* **AUC@T, failure rate, mean NME** over all visible face-frames (unmatched ones included);
* **coverage**: the share of visible face-frames with a matched prediction;
* **identity switches** (CLEAR MOT, Bernardin and Stiefelhagen 2008): a ground-truth face
  matched to a ``face_id`` other than the one it was last matched to, across gaps; those where
  the face was not visible on the frame before (it comes back into view, or out from behind
  another face) are also counted apart, as *on return*;
* **ids on several faces**: ``face_id``s matched to more than one ground-truth face in a
  sequence: an id passed from one person to another (a lost track re-finding a newcomer), which
  switches do not count, since each of the two faces keeps the one id it was given;
* **ghosts**: predictions matched to no visible face, except those over a face that is present
  but not visible (half out of the frame, or covered: its box from ``faces.json``), which are
  "don't care"; **duplicates** are the ghosts that sit on a visible face another prediction
  already took (two tracks on one face);
* **jitter** (:mod:`crct_cli.bench.scores`): per ground-truth face, over consecutive frames
  both matched to the same ``face_id``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from crct_cli.bench.scores import (
    JitterSummary,
    ced_grid,
    finite_or_none,
    point_jitter,
    summarize_jitter,
)
from crct_cli.errors import CrctError
from crct_cli.io.datasets import read_annotations
from crct_cli.io.track_json import recorded_pts_origins
from crct_cli.landmarks import box_from_points
from crct_cli.metrics import (
    DEFAULT_THRESHOLD,
    ErrorSummary,
    Normalization,
    ced,
    iou,
    nme,
    summarize,
)

if TYPE_CHECKING:  # the methods module loads the networks' code: only when running them
    from crct_cli.bench.methods import MethodSpec

#: Layout of a multi-face sequence (written by :mod:`crct_cli.bench.synth_multi`).
FACES_DIR = "faces"
FACES_JSON = "faces.json"
VIDEO_NAME = "vid.mp4"
LANDMARKS_CSV = "landmarks.csv"
#: Landmark-box IoU below which a prediction and a face are not a pair.
DEFAULT_MATCH_IOU = 0.3


@dataclass(frozen=True)
class PredictedFace:
    """One row of a run: a face's points on one frame."""

    face_id: int
    points: np.ndarray  #: (68, 2)
    success: bool
    time: float = math.nan  #: seconds from the start of the video
    confidence: float | None = None


#: frame number (from 1) -> the faces predicted on it
Predictions = dict[int, list[PredictedFace]]


@dataclass
class MultiGroundTruth:
    """Per-face ground truth of one sequence."""

    name: str
    frames: int  #: frames in the sequence (scored: 1..frames)
    visible: dict[str, dict[int, np.ndarray]]  #: gt_id -> frame -> (68, 2), visible frames only
    hidden: dict[int, list[np.ndarray]] = field(default_factory=dict)
    """frame -> boxes of faces present but not visible there ("don't care" regions)"""


@dataclass(frozen=True)
class MatchConfig:
    iou: float = DEFAULT_MATCH_IOU
    norm: Normalization = "diagonal"
    threshold: float = DEFAULT_THRESHOLD


# --------------------------------------------------------------------------------------------
# Reading


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """A ``landmarks.csv`` (crct's or OpenFace's) as frame -> faces.

    Two rows for one face on one frame raise :class:`CrctError`.
    """
    from crct_cli.io.openface_csv import read_landmarks_csv

    out: Predictions = {}
    for row in read_landmarks_csv(path):
        faces = out.setdefault(row.frame, [])
        if any(f.face_id == row.face_id for f in faces):
            raise CrctError(f"{path}: face_id {row.face_id} twice on frame {row.frame}")
        if np.all(np.isfinite(row.points)):
            faces.append(
                PredictedFace(row.face_id, row.points, row.success, row.timestamp, row.confidence)
            )
    return out


def predictions_from_frames(
    frames: Iterable[Any], on_frame: Callable[[int, int | None], None] | None = None
) -> tuple[Predictions, int]:
    """Collect a tracker's frames (``.index``, ``.faces`` with ``face_id``, ``points``,
    ``state``) as :data:`Predictions`; also return how many frames there were."""
    out: Predictions = {}
    count = 0
    for frame in frames:
        count += 1
        faces = [
            PredictedFace(
                int(f.face_id),
                np.asarray(f.points, dtype=np.float64),
                f.state in ("tracked", "redetected"),
                float(frame.time),
                getattr(f, "score", None),
            )
            for f in frame.faces
            if f.points is not None
        ]
        if faces:
            out[int(frame.index) + 1] = faces
        if on_frame is not None:
            on_frame(count, None)
    return out, count


def is_multi_face_sequence(folder: Path) -> bool:
    return (folder / FACES_DIR).is_dir()


def is_multi_face_gt(folder: Path) -> bool:
    """A sequence folder with ``faces/``, or a folder of such sequences."""
    if not folder.is_dir():
        return False
    if is_multi_face_sequence(folder):
        return True
    return any(is_multi_face_sequence(p) for p in folder.iterdir() if p.is_dir())


def read_multi_gt(folder: str | os.PathLike[str]) -> MultiGroundTruth:
    """``folder/faces/<gt_id>/NNNNNN.pts`` (and ``faces.json`` when present); a ``crct track
    --faces`` run's ``faces/<id>/annot/NNNNNN.pts`` too, so that two runs score each other
    (read at the origin its track.json records: ``--pts-origin 1``'s files count from 1)."""
    folder = Path(folder)
    faces_dir = folder / FACES_DIR
    if not faces_dir.is_dir():
        raise CrctError(f"{folder}: no {FACES_DIR}/ folder (expected {FACES_DIR}/<id>/000001.pts)")
    origin = max(recorded_pts_origins(faces_dir).values(), default=0)  # one run: one origin
    visible = {
        p.name: read_annotations(_pts_folder(p), origin)
        for p in sorted(faces_dir.iterdir(), key=lambda p: _natural(p.name))
        if p.is_dir() and not p.name.startswith(".")
    }
    visible = {k: v for k, v in visible.items() if v}
    if not visible:
        raise CrctError(f"{faces_dir}: no face has a .pts file")
    last = max(max(v) for v in visible.values())
    gt = MultiGroundTruth(folder.name, last, visible)
    doc_path = folder / FACES_JSON
    if doc_path.is_file():
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
            gt.frames = max(last, int(doc.get("frames", last)))
            for face in doc.get("faces", []):
                for rec in face.get("frames", []):
                    if not rec.get("visible", False):
                        box = np.asarray(rec["box"], dtype=np.float64)
                        gt.hidden.setdefault(int(rec["frame"]), []).append(box)
        except (ValueError, KeyError, TypeError) as exc:
            raise CrctError(f"{doc_path}: not a faces.json ({exc})") from None
    return gt


def _pts_folder(face: Path) -> Path:
    """A face's ``.pts`` folder: itself, or its ``annot/`` (crct track's layout)."""
    annot = face / "annot"
    if annot.is_dir() and not any(face.glob("*.pts")):
        return annot
    return face


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdecimal() else (1, name)


# --------------------------------------------------------------------------------------------
# Matching


def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment of a (n, m) cost matrix: min(n, m) (row, col) pairs.

    The O(n^2 m) shortest augmenting path method with potentials (Kuhn-Munkres as Jonker and
    Volgenant run it), small enough to keep crct free of SciPy.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError("cost must be a matrix")
    if c.shape[0] == 0 or c.shape[1] == 0:
        return []
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=int)  # p[j]: row (1-based) assigned to column j, 0 = none
    way = np.zeros(m + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            used_idx = np.flatnonzero(used)
            u[p[used_idx]] += delta
            v[used_idx] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j] != 0]
    if transposed:
        pairs = [(b, a) for a, b in pairs]
    return sorted(pairs)


def box_iou_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``, shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    aa = np.repeat(np.stack(a), len(b), axis=0)
    bb = np.tile(np.stack(b), (len(a), 1))
    return iou(aa, bb).reshape(len(a), len(b))


def match(
    pred_boxes: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    gate: float,
    keep: dict[int, int] | None = None,
) -> dict[int, int]:
    """gt index -> prediction index: the assignment of most pairs at IoU >= ``gate``, and among
    those the highest total IoU.

    ``keep`` (gt index -> prediction index): last frame's pairs, kept first wherever their IoU
    is still at or above ``gate`` (CLEAR MOT's first step); only the faces and predictions
    left over are assigned afresh. Without it two tracks drifting over each other would be
    re-paired by whichever pairing overlaps more and counted as two switches."""
    overlap = box_iou_matrix(pred_boxes, gt_boxes)
    if overlap.size == 0:
        return {}
    fixed = {g: p for g, p in (keep or {}).items() if overlap[p, g] >= gate}
    free_p = [p for p in range(overlap.shape[0]) if p not in fixed.values()]
    free_g = [g for g in range(overlap.shape[1]) if g not in fixed]
    rest = overlap[np.ix_(free_p, free_g)]
    if rest.size == 0:
        return fixed
    # a gated pair costs more than any full set of allowed ones: the most pairs come first
    cost = np.where(rest >= gate, 1.0 - rest, 1.0 + rest.size)
    fresh = {free_g[g]: free_p[p] for p, g in hungarian(cost) if rest[p, g] >= gate}
    return fixed | fresh


# --------------------------------------------------------------------------------------------
# Scoring one sequence


@dataclass
class FaceTally:
    """One ground-truth face over a sequence."""

    face_frames: int = 0
    matched: int = 0
    id_switches: int = 0
    returns: int = 0  #: of the switches, those where it was not visible the frame before
    ids: list[int] = field(default_factory=list)  #: face_ids matched to it, in order of use

    def to_json(self) -> dict[str, object]:
        return {
            "face_frames": self.face_frames,
            "matched": self.matched,
            "id_switches": self.id_switches,
            "id_switches_on_return": self.returns,
            "face_ids": self.ids,
        }


@dataclass
class SequenceScore:
    """One method's run over one sequence."""

    sequence: str
    method: str
    frames: int  #: frames scored (1..frames)
    errors: np.ndarray  #: NME per visible face-frame, inf where no prediction matched
    errors_all_rows: np.ndarray  #: the same with success=0 rows taken as predictions
    id_switches: int
    id_switches_on_return: int  #: switches where the face was not visible the frame before
    ghosts: int  #: success rows on no visible face (duplicates included), don't-care excluded
    duplicates: int  #: ghosts on a visible face that another prediction took
    dont_care: int  #: success rows over a face present but not visible (not scored)
    rows: int  #: success rows in 1..frames
    lost_rows: int  #: success=0 rows in 1..frames
    jitter: np.ndarray  #: per consecutive pair matched to the same face_id
    jitter_worst: np.ndarray  #: the larger NME of each pair's frames
    faces: dict[str, FaceTally] = field(default_factory=dict)
    seconds: float | None = None  #: time the method took (runs only)
    fed: int | None = None  #: frames the method was fed (runs only)

    @property
    def face_frames(self) -> int:
        return len(self.errors)

    @property
    def shared_ids(self) -> int:
        """The ``face_id``s matched to more than one ground-truth face (see the module)."""
        faces_of: dict[int, int] = {}
        for tally in self.faces.values():
            for face_id in tally.ids:
                faces_of[face_id] = faces_of.get(face_id, 0) + 1
        return sum(n > 1 for n in faces_of.values())

    @property
    def matched(self) -> int:
        return int(np.isfinite(self.errors).sum())

    def to_json(self, threshold: float) -> dict[str, object]:
        s = summarize(self.errors, threshold)
        out: dict[str, object] = {
            "sequence": self.sequence,
            "method": self.method,
            "frames": self.frames,
            "face_frames": self.face_frames,
            "matched": self.matched,
            "coverage": self.matched / self.face_frames if self.face_frames else None,
            "mean_nme": finite_or_none(s.mean_nme),
            "auc": s.auc,
            "failure_rate": s.failure_rate,
            "id_switches": self.id_switches,
            "id_switches_on_return": self.id_switches_on_return,
            "ids_on_several_faces": self.shared_ids,
            "ghosts": self.ghosts,
            "duplicates": self.duplicates,
            "dont_care": self.dont_care,
            "rows": self.rows,
            "lost_rows": self.lost_rows,
            **summarize_jitter(self.jitter, self.jitter_worst, threshold).to_json(),
            "faces": {k: v.to_json() for k, v in self.faces.items()},
        }
        if self.seconds is not None and self.fed is not None:
            out["seconds"] = round(self.seconds, 3)
            out["fps"] = round(self.fed / self.seconds, 2) if self.seconds > 0 else None
        return out


def _errors(
    preds: list[PredictedFace],
    gt_points: list[np.ndarray],
    cfg: MatchConfig,
    kept: dict[int, int] | None = None,
) -> tuple[dict[int, int], list[float]]:
    """Match ``preds`` to the visible faces; return the match and each face's NME (inf: none).
    ``kept``: visible face index -> the face_id it was matched to on the frame before."""
    by_id = {p.face_id: i for i, p in reversed(list(enumerate(preds)))}
    keep = {j: by_id[face_id] for j, face_id in (kept or {}).items() if face_id in by_id}
    pairs = match(
        [box_from_points(p.points) for p in preds],
        [box_from_points(g) for g in gt_points],
        cfg.iou,
        keep,
    )
    errors = [
        float(nme(preds[pairs[j]].points, g, cfg.norm)[0]) if j in pairs else math.inf
        for j, g in enumerate(gt_points)
    ]
    return pairs, errors


def score_sequence(
    predictions: Predictions,
    gt: MultiGroundTruth,
    method: str = "pred",
    cfg: MatchConfig | None = None,
    max_frames: int | None = None,
) -> SequenceScore:
    """Score one run of one sequence (see the module docstring for the protocol)."""
    cfg = cfg or MatchConfig()
    frames = gt.frames if max_frames is None else min(gt.frames, max_frames)
    ids = list(gt.visible)
    tallies = {k: FaceTally() for k in ids}
    last_id: dict[str, int | None] = dict.fromkeys(ids)
    prev: dict[str, tuple[int, int, np.ndarray, np.ndarray, float]] = {}  # frame, id, p, g, err
    errors: list[float] = []
    errors_all: list[float] = []
    jitter: list[float] = []
    jitter_worst: list[float] = []
    ghosts = duplicates = dont_care = rows = lost_rows = 0
    for n in range(1, frames + 1):
        present = [k for k in ids if n in gt.visible[k]]
        gt_points = [gt.visible[k][n] for k in present]
        everyone = predictions.get(n, [])
        preds = [p for p in everyone if p.success]
        rows += len(preds)
        lost_rows += len(everyone) - len(preds)
        # a face matched on the frame before keeps its face_id while it still overlaps
        kept = {j: prev[k][1] for j, k in enumerate(present) if k in prev and prev[k][0] == n - 1}
        pairs, errs = _errors(preds, gt_points, cfg, kept)
        errors.extend(errs)
        errors_all.extend(_errors(everyone, gt_points, cfg, kept)[1])
        for j, k in enumerate(present):
            tally = tallies[k]
            tally.face_frames += 1
            if j not in pairs:
                continue
            pred = preds[pairs[j]]
            tally.matched += 1
            if last_id[k] is not None and pred.face_id != last_id[k]:
                tally.id_switches += 1
                tally.returns += int(n - 1 not in gt.visible[k])
            if pred.face_id not in tally.ids:
                tally.ids.append(pred.face_id)
            last_id[k] = pred.face_id
            before = prev.get(k)
            if before is not None and before[0] == n - 1 and before[1] == pred.face_id:
                jitter.append(
                    float(
                        point_jitter(before[2], pred.points, before[3], gt_points[j], cfg.norm)[0]
                    )
                )
                jitter_worst.append(max(before[4], errs[j]))
            prev[k] = (n, pred.face_id, pred.points, gt_points[j], errs[j])
        taken = set(pairs.values())
        spare = [p for i, p in enumerate(preds) if i not in taken]
        if spare:
            boxes = [box_from_points(p.points) for p in spare]
            on_visible = box_iou_matrix(boxes, [box_from_points(g) for g in gt_points])
            on_hidden = box_iou_matrix(boxes, gt.hidden.get(n, []))
            for i in range(len(spare)):
                if on_visible.shape[1] and on_visible[i].max() >= cfg.iou:
                    ghosts += 1
                    duplicates += 1
                elif on_hidden.shape[1] and on_hidden[i].max() >= cfg.iou:
                    dont_care += 1
                else:
                    ghosts += 1
    return SequenceScore(
        sequence=gt.name,
        method=method,
        frames=frames,
        errors=np.asarray(errors, dtype=np.float64),
        errors_all_rows=np.asarray(errors_all, dtype=np.float64),
        id_switches=sum(t.id_switches for t in tallies.values()),
        id_switches_on_return=sum(t.returns for t in tallies.values()),
        ghosts=ghosts,
        duplicates=duplicates,
        dont_care=dont_care,
        rows=rows,
        lost_rows=lost_rows,
        jitter=np.asarray(jitter, dtype=np.float64),
        jitter_worst=np.asarray(jitter_worst, dtype=np.float64),
        faces=tallies,
    )


# --------------------------------------------------------------------------------------------
# A method over many sequences


@dataclass
class MultiScore:
    """One method over all its sequences: a row of the results table."""

    method: str
    sequences: int
    summary: ErrorSummary
    summary_all_rows: ErrorSummary
    coverage: float
    coverage_all_rows: float
    id_switches: int
    id_switches_on_return: int
    max_id_switches: int  #: the most in one sequence
    ghosts: int
    duplicates: int
    dont_care: int
    frames: int
    jitter: JitterSummary
    ced: np.ndarray
    fps: float | None = None
    shared_ids: int = 0  #: ids on several faces, summed over the sequences

    def to_json(self) -> dict[str, object]:
        return {
            "sequences": self.sequences,
            "frames": self.frames,
            "face_frames": self.summary.count,
            "coverage": self.coverage,
            **{
                k: finite_or_none(v) if isinstance(v, float) else v
                for k, v in asdict(self.summary).items()
            },
            "id_switches": self.id_switches,
            "id_switches_on_return": self.id_switches_on_return,
            "max_id_switches_per_sequence": self.max_id_switches,
            "ids_on_several_faces": self.shared_ids,
            "ghosts": self.ghosts,
            "duplicates": self.duplicates,
            "dont_care": self.dont_care,
            **self.jitter.to_json(),
            "auc_all_rows": self.summary_all_rows.auc,
            "failure_rate_all_rows": self.summary_all_rows.failure_rate,
            "coverage_all_rows": self.coverage_all_rows,
            "fps": self.fps,
        }


def combine(method: str, runs: list[SequenceScore], threshold: float) -> MultiScore:
    """Pool the face-frames of every sequence (frame-level numbers, as Table II pools)."""
    errors = np.concatenate([r.errors for r in runs]) if runs else np.zeros(0)
    errors_all = np.concatenate([r.errors_all_rows for r in runs]) if runs else np.zeros(0)
    n = max(len(errors), 1)
    seconds = [r.seconds for r in runs if r.seconds is not None]
    fed = sum(r.fed or 0 for r in runs)
    return MultiScore(
        method=method,
        sequences=len(runs),
        summary=summarize(errors, threshold),
        summary_all_rows=summarize(errors_all, threshold),
        coverage=float(np.isfinite(errors).sum() / n),
        coverage_all_rows=float(np.isfinite(errors_all).sum() / n),
        id_switches=sum(r.id_switches for r in runs),
        id_switches_on_return=sum(r.id_switches_on_return for r in runs),
        max_id_switches=max((r.id_switches for r in runs), default=0),
        ghosts=sum(r.ghosts for r in runs),
        duplicates=sum(r.duplicates for r in runs),
        dont_care=sum(r.dont_care for r in runs),
        frames=sum(r.frames for r in runs),
        jitter=summarize_jitter(
            np.concatenate([r.jitter for r in runs]) if runs else np.zeros(0),
            np.concatenate([r.jitter_worst for r in runs]) if runs else np.zeros(0),
            threshold,
        ),
        ced=ced(errors, ced_grid(threshold))[1],
        fps=round(fed / sum(seconds), 2) if seconds and sum(seconds) > 0 else None,
        shared_ids=sum(r.shared_ids for r in runs),
    )


@dataclass(frozen=True)
class MultiSequence:
    name: str
    folder: Path

    @property
    def video(self) -> Path:
        return self.folder / VIDEO_NAME


@dataclass
class MultiBenchResult:
    """Everything a multi-face benchmark measured, for tables, ``results.json`` and plots."""

    dataset: str
    root: str
    methods: list[str]
    norm: str
    threshold: float
    match_iou: float
    max_frames: int | None
    runs: list[SequenceScore] = field(default_factory=list)
    totals: dict[str, MultiScore] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)  #: (sequence, reason)
    weight_files: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (sequence, method) -> what the method predicted (written as landmarks.csv with --out)
    predictions: dict[tuple[str, str], Predictions] = field(default_factory=dict)

    def finish(self) -> MultiBenchResult:
        """Compute the per-method totals from the runs."""
        self.totals = {
            m: combine(m, [r for r in self.runs if r.method == m], self.threshold)
            for m in self.methods
        }
        return self

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "multi",
            "dataset": self.dataset,
            "root": self.root,
            "methods": self.methods,
            "protocol": {
                "normalization": self.norm,
                "threshold": self.threshold,
                "max_frames": self.max_frames,
                "scored": "every visible ground-truth face-frame (faces/<id>/NNNNNN.pts)",
                "predictions": "rows with success 1; success 0 rows only in *_all_rows",
                "matching": (
                    f"per frame, Hungarian on 1 - IoU of landmark boxes, pairs with IoU >= "
                    f"{self.match_iou:g}"
                ),
                "missing_prediction": "failure (error inf)",
                "id_switch": "a face matched to another face_id than at its previous match",
                "ghost": (
                    "a prediction matched to no visible face and not over a face present but "
                    "not visible (duplicates on an already matched face included)"
                ),
                "jitter": (
                    "per face, consecutive frames matched to the same face_id: mean_k "
                    "||(p_t,k - p_t-1,k) - (g_t,k - g_t-1,k)|| / normalising length of g_t"
                ),
            },
            "missing_sequences": [{"name": n, "reason": r} for n, r in self.missing],
            "totals": {m: s.to_json() for m, s in self.totals.items()},
            "sequences": [r.to_json(self.threshold) for r in self.runs],
            "curves": {
                "ced_thresholds": [round(float(x), 6) for x in ced_grid(self.threshold)],
                "ced": {"all": {m: s.ced.round(6).tolist() for m, s in self.totals.items()}},
            },
        }


def write_predictions(result: MultiBenchResult, out_dir: Path) -> list[Path]:
    """``OUT/predictions/<method>/<sequence>/landmarks.csv`` for every run (re-scorable with
    ``crct benchmark --pred OUT/predictions/<method> --gt ROOT``)."""
    from crct_cli.io.openface_csv import LandmarksCsvWriter

    written = []
    for (sequence, method), preds in result.predictions.items():
        folder = out_dir / "predictions" / method / sequence
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CrctError(f"{folder}: cannot create ({exc.strerror})") from None
        with LandmarksCsvWriter(folder / LANDMARKS_CSV) as writer:
            for n in sorted(preds):
                writer.add(n - 1, preds[n][0].time, [_CsvFace(p) for p in preds[n]])
        written.append(folder / LANDMARKS_CSV)
    return written


@dataclass(frozen=True)
class _CsvFace:
    pred: PredictedFace

    @property
    def face_id(self) -> int:
        return self.pred.face_id

    @property
    def points(self) -> np.ndarray:
        return self.pred.points

    @property
    def score(self) -> float | None:
        return self.pred.confidence

    @property
    def state(self) -> str:
        return "tracked" if self.pred.success else "lost"


# --------------------------------------------------------------------------------------------
# Running methods


class MultiMethod(Protocol):
    """What the benchmark needs of a tracker: :class:`crct_cli.api.Tracker` has it."""

    def track(
        self, video: str | os.PathLike[str], max_frames: int | None = None
    ) -> Iterator[Any]: ...


MultiFactory = Callable[["MethodSpec"], MultiMethod]
OnFrame = Callable[[int, int | None], None]
Progress = Callable[[str], AbstractContextManager[OnFrame]]


def multi_factory(device: str, seq_bt: int = 2, int8: bool = True, **options: Any) -> MultiFactory:
    """The real trackers: :class:`crct_cli.api.Tracker` with ``faces="all"`` per method spec;
    ``options``: its keyword arguments (``blend``, ``bt_reuse``, the re-detection options...;
    its defaults, ``crct track``'s, where left out)."""

    def make(spec: MethodSpec) -> MultiMethod:
        from crct_cli.api import Tracker

        return Tracker(
            faces="all",
            device=device,
            mode=spec.mode,
            denoise=spec.denoise or "none",
            seq_bt=seq_bt,
            int8=int8,
            **options,
        )

    return make


def select_multi_sequences(root: Path) -> tuple[list[MultiSequence], list[tuple[str, str]]]:
    """The sequences under ``root`` (or ``root`` itself) and those that cannot be scored."""
    if is_multi_face_sequence(root) or (root / VIDEO_NAME).is_file():
        candidates = [root]
    else:
        candidates = sorted(
            (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: _natural(p.name),
        )
        candidates = [
            p for p in candidates if is_multi_face_sequence(p) or (p / VIDEO_NAME).is_file()
        ]
    found, missing = [], []
    for folder in candidates:
        if not (folder / VIDEO_NAME).is_file():
            missing.append((folder.name, f"no {VIDEO_NAME} in {folder}"))
        elif not is_multi_face_sequence(folder):
            missing.append((folder.name, f"no {FACES_DIR}/ folder in {folder}"))
        else:
            found.append(MultiSequence(folder.name, folder))
    if not found:
        first = f" (first: {missing[0][1]})" if missing else ""
        raise CrctError(
            f"{root}: no multi-face sequence found{first}; expected NNN/{VIDEO_NAME} with "
            f"NNN/{FACES_DIR}/<id>/000001.pts ... (python -m crct_cli.bench.synth_multi)"
        )
    return found, missing


def run_multi_benchmark(
    root: Path,
    sequences: list[MultiSequence],
    specs: list[MethodSpec],
    factory: MultiFactory,
    norm: Normalization = "diagonal",
    threshold: float = DEFAULT_THRESHOLD,
    max_frames: int | None = None,
    missing: list[tuple[str, str]] | None = None,
    match_iou: float = DEFAULT_MATCH_IOU,
    progress: Progress | None = None,
) -> MultiBenchResult:
    """Every method over every sequence, each scored from the faces it reported."""
    from crct_cli.bench.methods import weight_files_of

    result = MultiBenchResult(
        dataset="multi",
        root=str(root),
        methods=[s.name for s in specs],
        norm=norm,
        threshold=threshold,
        match_iou=match_iou,
        max_frames=max_frames,
        missing=list(missing or []),
    )
    cfg = MatchConfig(match_iou, norm, threshold)
    truths = {s.name: read_multi_gt(s.folder) for s in sequences}
    for spec in specs:
        method = factory(spec)
        # the tracker's networks know their files, MTCNN's included
        result.weight_files[spec.name] = weight_files_of(getattr(method, "networks", method))
        for sequence in sequences:
            label = f"{sequence.name} {spec.name}"
            with progress(label) if progress is not None else _quiet() as on_frame:
                t0 = time.perf_counter()
                preds, fed = predictions_from_frames(
                    method.track(sequence.video, max_frames), on_frame
                )
                seconds = time.perf_counter() - t0
            score = score_sequence(preds, truths[sequence.name], spec.name, cfg, max_frames)
            score.seconds, score.fed = seconds, fed
            result.runs.append(score)
            result.predictions[(sequence.name, spec.name)] = preds
    return result.finish()


def score_runs(
    pred: Path,
    gt: Path,
    norm: Normalization = "diagonal",
    threshold: float = DEFAULT_THRESHOLD,
    match_iou: float = DEFAULT_MATCH_IOU,
) -> MultiBenchResult:
    """``crct benchmark --pred RUN --gt SEQ``: score existing ``landmarks.csv`` files.

    ``gt`` is one sequence (then ``pred`` is its ``landmarks.csv`` or the run folder holding
    it) or a folder of sequences (then ``pred`` holds ``<sequence>/landmarks.csv`` for each; a
    sequence without one is scored with no prediction, every face-frame a failure, and listed).
    """
    if not pred.exists():
        raise CrctError(f"{pred}: no such prediction file or folder")
    cfg = MatchConfig(match_iou, norm, threshold)
    label = (pred.parent if pred.is_file() else pred).name or "pred"
    if is_multi_face_sequence(gt):
        csv_path = pred if pred.is_file() else _run_csv(pred)
        pairs = [(gt, csv_path)]
        root = gt
    else:
        root = gt
        sequences, _ = select_multi_sequences(gt)
        if pred.is_file():
            raise CrctError(
                f"{pred}: a single landmarks.csv needs --gt to be one sequence folder, "
                f"not {gt} (a folder of sequences)"
            )
        pairs = [(s.folder, _run_csv(pred / s.name)) for s in sequences]
    result = MultiBenchResult(
        dataset="multi",
        root=str(root),
        methods=[label],
        norm=norm,
        threshold=threshold,
        match_iou=match_iou,
        max_frames=None,
    )
    if not any(csv.is_file() for _, csv in pairs):
        raise CrctError(
            f"{pred}: no {LANDMARKS_CSV} for "
            + (f"sequence {pairs[0][0].name}" if len(pairs) == 1 else f"any sequence of {gt}")
        )
    for folder, csv_path in pairs:
        truth = read_multi_gt(folder)
        if csv_path.is_file():
            preds = read_predictions(csv_path)
        else:
            preds = {}
            result.missing.append((folder.name, f"no {csv_path}: scored as no prediction"))
        result.runs.append(score_sequence(preds, truth, label, cfg))
    return result.finish()


def _run_csv(folder: Path) -> Path:
    """A sequence's ``landmarks.csv`` in a run folder: ``folder/landmarks.csv``, or where
    ``crct track SEQUENCES --out RUN`` puts it, ``folder/vid/landmarks.csv``."""
    direct = folder / LANDMARKS_CSV
    tracked = folder / Path(VIDEO_NAME).stem / LANDMARKS_CSV
    return tracked if not direct.is_file() and tracked.is_file() else direct


class _quiet(AbstractContextManager[OnFrame]):
    def __enter__(self) -> OnFrame:
        return lambda done, total: None

    def __exit__(self, *exc: object) -> None:
        return None
