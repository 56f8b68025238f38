"""Score a folder of predicted ``.pts`` files against a folder of ground truth.

Files are paired by their path relative to each folder (recursively), so the output of any tool
that writes iBUG ``.pts`` can be compared. A ground-truth file without a prediction is a missing
prediction: its error is ``inf`` (a failure, see :mod:`crct_cli.metrics`). Predictions without
ground truth are counted and otherwise ignored. Where the files are video frames
(``000001.pts``, ``000002.pts``... in one folder), the jitter of consecutive frames is reported
too (:mod:`crct_cli.bench.scores`), so a per-frame tool's output compares with a tracker's.
Where the folder is the ``annot/`` of a ``crct track`` run (``OUT/annot`` or
``OUT/faces/<id>/annot``) and its ``track.json`` lies beside it, the frames are also scored by
the state the tracker gave that face (:func:`track_states`), as ``crct benchmark --dataset``
does for its tracker methods.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from crct_cli.bench.scores import (
    STATE_COLUMNS,
    JitterSummary,
    point_jitter,
    state_cells,
    state_summaries_json,
    summaries_by_state,
    summarize_jitter,
)
from crct_cli.errors import CrctError
from crct_cli.io.atomic import write_text_atomic
from crct_cli.io.landmarks import read_pts, write_pts
from crct_cli.io.openface_csv import read_landmarks_csv
from crct_cli.io.track_json import STATES, read_track_json
from crct_cli.metrics import (
    DEFAULT_THRESHOLD,
    NORMALIZATIONS,
    ErrorSummary,
    Normalization,
    nme,
    normalizer,
    summarize,
)

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class FileScore:
    rel: str  #: path relative to the ground-truth folder, '/'-separated
    nme: float  #: inf when the prediction is missing
    missing: bool


@dataclass(frozen=True)
class CommonFaces:
    """``--common-with``: of the ``gt_files`` ground-truth files, how many the scored tool
    and the peer each answered; the scores are over the files both answered."""

    peer: str
    gt_files: int
    pred_answered: int
    peer_answered: int


@dataclass(frozen=True)
class PtsComparison:
    pred_dir: str
    gt_dir: str
    norm: str
    summary: ErrorSummary
    unmatched_predictions: int  #: prediction files with no ground truth (ignored)
    per_file: list[FileScore]
    jitter: JitterSummary | None = None  #: when the files are consecutive video frames
    #: the files' frames pooled by the tracker's state (from track.json), when it was given
    by_state: dict[str, ErrorSummary] | None = None
    states_from: str | None = None  #: the track.json the states were read from
    gt_origin: float = 0.0  #: taken off the ground truth's coordinates before scoring
    pred_origin: float = 0.0  #: taken off the predictions' coordinates before scoring
    #: further faces' files (``NAME_1.pts``) left unscored without ``nearest``
    other_faces: int = 0
    #: where the predictions' numbered files start at 000000.pts and the ground truth's at
    #: 000001.pts (or the other way): (the predictions' first number, the ground truth's)
    numbering: tuple[int, int] | None = None
    common: CommonFaces | None = None  #: ``common_with``: the faces each tool answered
    #: folders whose predictions fit a neighbouring frame's truth far better (numbered off?)
    frame_offsets: list[FrameOffset] = field(default_factory=list)
    #: ground-truth files left out, as (name, why): another markup, a broken file
    skipped_gt: list[tuple[str, str]] = field(default_factory=list)
    #: prediction files that could not be read, as (name, why): scored as missing
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: ``SEQ/STEM/annot/F.pts`` of the predictions paired with ``SEQ/annot/F.pts`` of the
    #: ground truth (:func:`runs_of_sequences`)
    runs_as_sequences: bool = False

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (``inf``/``NaN`` become ``null``); per-file rows go to the CSV."""
        s = {k: _finite_or_none(v) for k, v in asdict(self.summary).items()}
        return {
            "pred": self.pred_dir,
            "gt": self.gt_dir,
            "normalization": self.norm,
            "gt_origin": self.gt_origin,
            **({"pred_origin": self.pred_origin} if self.pred_origin else {}),
            **s,
            "evaluated": self.summary.count - self.summary.missing,
            "unmatched_predictions": self.unmatched_predictions,
            **(
                {"numbered_from": {"pred": self.numbering[0], "gt": self.numbering[1]}}
                if self.numbering is not None
                else {}
            ),
            **({"common_with": asdict(self.common)} if self.common is not None else {}),
            **({"runs_as_sequences": True} if self.runs_as_sequences else {}),
            **(
                {"skipped_ground_truth": [{"file": f, "reason": r} for f, r in self.skipped_gt]}
                if self.skipped_gt
                else {}
            ),
            **(
                {"unreadable_predictions": [{"file": f, "reason": r} for f, r in self.unreadable]}
                if self.unreadable
                else {}
            ),
            **(
                {"frame_offsets": [asdict(o) for o in self.frame_offsets]}
                if self.frame_offsets
                else {}
            ),
            **(self.jitter.to_json() if self.jitter is not None else {}),
            **(
                {"states_from": self.states_from, "by_state": state_summaries_json(self.by_state)}
                if self.by_state is not None
                else {}
            ),
        }


def _finite_or_none(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_pairs(rels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a, b) of files that are consecutive frames of one folder (``d/000007.pts``,
    ``d/000008.pts``)."""
    index: dict[tuple[str, int], int] = {}
    for i, rel in enumerate(rels):
        path = PurePosixPath(rel)
        if path.stem.isdecimal():
            index[(str(path.parent), int(path.stem))] = i
    pairs = [(i, index[(d, n + 1)]) for (d, n), i in index.items() if (d, n + 1) in index]
    return np.array([a for a, _ in pairs], int), np.array([b for _, b in pairs], int)


def first_numbers(rels: Iterable[str]) -> dict[str, int]:
    """Each folder's lowest frame number among its numbered files (``d/000007.pts``)."""
    first: dict[str, int] = {}
    for rel in rels:
        path = PurePosixPath(rel)
        if path.stem.isdecimal():
            folder = str(path.parent)
            first[folder] = min(first.get(folder, int(path.stem)), int(path.stem))
    return first


def numbering_origins(pred: Iterable[str], gt: Iterable[str]) -> tuple[int, int] | None:
    """(0, 1) or (1, 0) where, in every folder both number, one counts frames from 000000.pts
    and the other from 000001.pts: files are paired by name, so each frame would be scored
    against its neighbour's truth. None otherwise (a run that skipped frames starts later,
    which pairs by name as it should)."""
    ps, gs = first_numbers(pred), first_numbers(gt)
    starts = {(ps[d], gs[d]) for d in ps.keys() & gs.keys()}
    if len(starts) == 1 and (found := starts.pop()) in ((0, 1), (1, 0)):
        return found
    return None


#: A folder's predictions are said to look a frame off where its ground truth one frame on
#: (or back) fits them this much better, by median NME, than their own frame's ...
OFF_BY_ONE_RATIO = 0.5
#: ... over at least this many pairs of consecutive frames
OFF_BY_ONE_PAIRS = 5


@dataclass(frozen=True)
class FrameOffset:
    """A folder whose predictions fit the ground truth of the next frame (``shift`` +1) or of
    the one before (-1) far better than their own frame's: numbered from 0 against 1, a
    first frame without a file, or a tool a frame late. Said, never corrected."""

    folder: str
    shift: int
    median_nme: float  #: over the pairs, each prediction against its own frame's truth
    median_nme_shifted: float  #: the same predictions against the shifted frame's truth
    pairs: int


def frame_offsets(
    rels: list[str], pred: np.ndarray, gt: np.ndarray, norm: Normalization
) -> list[FrameOffset]:
    """The folders of numbered frames whose predictions look one frame off (see
    :class:`FrameOffset`). Files pair by name, so such a run is scored against its neighbours'
    truth; a face that moves shows it as a much lower error one frame away."""
    a, b = frame_pairs(rels)
    found: list[FrameOffset] = []
    if not a.size:
        return found
    folders = np.array([str(PurePosixPath(rels[i]).parent) for i in a])
    own = nme(pred[a], gt[a], norm)
    ahead = nme(pred[a], gt[b], norm)  # frame n's answer against frame n+1's truth
    behind = nme(pred[b], gt[a], norm)  # frame n+1's answer against frame n's truth
    own_b = nme(pred[b], gt[b], norm)
    for folder in dict.fromkeys(folders.tolist()):
        rows = folders == folder
        for shift, base, moved in ((1, own, ahead), (-1, own_b, behind)):
            ok = rows & np.isfinite(base) & np.isfinite(moved)
            if ok.sum() < OFF_BY_ONE_PAIRS:
                continue
            at, off = float(np.median(base[ok])), float(np.median(moved[ok]))
            if off < OFF_BY_ONE_RATIO * at:
                found.append(FrameOffset(folder, shift, at, off, int(ok.sum())))
    return found


def find_pts(root: Path) -> dict[str, Path]:
    """All ``.pts`` files under ``root`` by their '/'-separated relative path."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() == ".pts" and path.is_file():
            rel = path.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):
                # paired by name: NAME.PTS (some Windows tools) pairs with NAME.pts
                key = PurePosixPath(rel.as_posix()).with_suffix(".pts").as_posix()
                found.setdefault(key, path)
    return found


def face_candidates(pred_files: dict[str, Path], gt_files: dict[str, Path]) -> dict[str, list[str]]:
    """Ground truth -> its predictions when a tool writes one file per face found: ``NAME.pts``
    and ``NAME_1.pts``, ``NAME_2.pts``... (``crct align``), leaving out names that are ground
    truth of their own (afw's ``IMG_1``, ``IMG_2``)."""
    extra: dict[str, list[str]] = {}
    for rel in pred_files:
        if rel in gt_files:
            continue
        path = PurePosixPath(rel)
        base, _, number = path.stem.rpartition("_")
        if base and number.isdecimal():
            extra.setdefault((path.parent / (base + path.suffix)).as_posix(), []).append(rel)
    return {
        rel: ([rel] if rel in pred_files else []) + sorted(extra.get(rel, [])) for rel in gt_files
    }


def nearest_face(candidates: list[np.ndarray], truth: np.ndarray) -> np.ndarray:
    """The candidate whose landmark-box centre lies nearest the ground truth's."""

    def centre(points: np.ndarray) -> np.ndarray:
        return 0.5 * (points.min(0) + points.max(0))

    target = centre(truth)
    return min(candidates, key=lambda p: float(np.linalg.norm(centre(p) - target)))


class TrackStates(NamedTuple):
    """What :func:`track_states` read from a run's track.json."""

    states: dict[str, str]  #: by .pts file name
    path: Path  #: the track.json
    header: dict[str, Any]  #: its header (``skip_frames``, ``max_frames`` of a part run)


def track_states(pred_dir: str | os.PathLike[str]) -> TrackStates | None:
    """The state ``crct track`` gave each frame of the face whose ``annot/`` folder this is,
    keyed as its ``.pts`` files are (``000001.pts`` is frame 0), the track.json read and its
    header: face 0 for ``OUT/annot``, face ``id`` for ``OUT/faces/<id>/annot``. None when the
    folder is not such a run's (no track.json where ``crct track`` puts it).

    Raises :class:`CrctError` for a track.json that cannot be read, naming it."""
    folder = Path(pred_dir).resolve()
    if folder.name != "annot":
        return None
    parent = folder.parent
    face_id = 0
    if parent.parent.name == "faces" and parent.name.isdecimal():
        face_id, parent = int(parent.name), parent.parent.parent
    path = parent / "track.json"
    if not path.is_file():
        return None
    track = read_track_json(path)
    states = {f"{frame.index + 1:06d}.pts": frame.face(face_id).state for frame in track.faces}
    return TrackStates(states, path, track.header)


@contextlib.contextmanager
def as_pts_folder(
    pred: str | os.PathLike[str], unsplit: Callable[[CrctError], None] | None = None
) -> Iterator[tuple[Path, TrackStates | None]]:
    """``--pred`` as a folder of ``.pts`` files, with the states of the run it is where it is
    one. A folder of ``.pts`` files is itself (a ``crct track`` run's ``annot/``: its states,
    :func:`track_states`, or where its track.json cannot be read, none, and ``unsplit`` hears
    why). A run written without them (``crct track --no-pts``, ``crct live``): its folder or
    its ``track.json`` gives face 0's points and states, its ``landmarks.csv`` face 0's points
    (and the states of the track.json beside it), each frame as the ``.pts`` file ``crct
    track`` would have written (``000001.pts`` for frame 0), in a temporary folder."""
    path = Path(pred)
    if path.is_dir() and (any(path.glob("*.pts")) or not (path / "track.json").is_file()):
        try:
            states = track_states(path)
        except CrctError as exc:
            if unsplit is not None:
                unsplit(exc)
            states = None
        yield path, states
        return
    track = None
    if path.is_dir():
        path = path / "track.json"
    if not path.is_file():
        yield path, None  # compare_pts_folders says it is not there
        return
    if path.suffix.lower() == ".json":
        track = read_track_json(path)
        points = {f.index: f.face(0).points for f in track.faces}
    elif path.suffix.lower() == ".csv":
        points = {r.frame - 1: r.points for r in read_landmarks_csv(path) if r.face_id == 0}
        beside = path.parent / "track.json"  # the same run's: its states and frame range
        if path.name == "landmarks.csv" and beside.is_file():
            try:
                track = read_track_json(beside)
            except CrctError as exc:
                if unsplit is not None:
                    unsplit(exc)
            if track is not None and _face0_frames(track) != set(points):
                track = None  # not the run that wrote this file: its states are not these
    else:
        yield path, None  # not a run: compare_pts_folders says what is wrong with it
        return
    with tempfile.TemporaryDirectory(prefix="crct-pred-") as folder:
        for index, face_points in points.items():
            if face_points is not None:
                write_pts(Path(folder) / f"{index + 1:06d}.pts", face_points)
        states = None
        if track is not None:
            names = {f"{f.index + 1:06d}.pts": f.face(0).state for f in track.faces}
            states = TrackStates(names, path, track.header)
        yield Path(folder), states


def _face0_frames(track: Any) -> set[int]:
    """The frame indices in which a run's face 0 has points (those its landmarks.csv holds)."""
    faces = ((f.index, f.face(0)) for f in track.faces)
    return {index for index, face in faces if face is not None and face.points is not None}


def compare_pts_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    norm: Normalization = "diagonal",
    threshold: float = DEFAULT_THRESHOLD,
    nearest: bool = False,
    common_with: str | os.PathLike[str] | None = None,
    states: TrackStates | None = None,
    gt_origin: float = 0.0,
    pred_origin: float = 0.0,
    peer_origin: float = 0.0,
) -> PtsComparison:
    """Pair ``.pts`` files by relative path and score them.

    ``nearest``: where the tool wrote one file per face (``NAME.pts``, ``NAME_1.pts``...), score
    the face nearest the ground truth's centre, so that a picture of several people measures
    the landmarks, not which face the tool listed first. ``common_with``: score only the
    ground-truth files that both the predictions and this other folder (a peer's) answered,
    so that two tools are compared on the same faces, whichever is scored beside which (each
    one's answered count is in ``common``); for video frames the jitter is also taken over the
    pairs both tools have on the face (``jitter_ok_shared``). ``states``: each file's tracker
    state and where it was read (:func:`track_states`): the files are also scored by state
    (files without one are left out of that split). ``gt_origin``: the coordinate the
    ground-truth files give the first pixel's centre (300-W's and 300-VW's own files: 1), taken
    off them so that they count from 0 as crct, OpenCV and dlib answer; ``pred_origin`` and
    ``peer_origin`` likewise for the predictions' files and ``common_with``'s (a ``crct track
    --pts-origin 1`` run's: 1).

    A prediction file that cannot be read counts as missing (``unreadable``), a ground-truth
    file that cannot be scored (another markup, a broken file, a degenerate box) is left out
    (``skipped_gt``), each with why. Raises :class:`CrctError` for a missing folder, no
    ground truth that can be scored, or no pair at all.
    """
    if norm not in NORMALIZATIONS:
        known = ", ".join(NORMALIZATIONS)
        raise CrctError(f"unknown normalisation {norm!r}; choose one of {known}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise CrctError(f"threshold must be a positive number, got {threshold}")
    pred_root, gt_root = Path(pred_dir), Path(gt_dir)
    for label, root in (("ground-truth", gt_root), ("prediction", pred_root)):
        if not root.is_dir():
            run = root.parent / "track.json"
            if label == "prediction" and root.name == "annot" and run.is_file():
                raise CrctError(
                    f"{root}: no such prediction folder (a crct track --no-pts run: its points "
                    f"are in {run}; track it again without --no-pts to score them here)"
                )
            if root.exists():  # a single .pts file: the folders are paired file by file
                raise CrctError(
                    f"{root}: a {label} folder is needed, not a file (the folder's .pts files "
                    "are paired with the other folder's by name)"
                )
            raise CrctError(f"{root}: no such {label} folder")
    gt_files = find_pts(gt_root)
    if not gt_files:
        raise CrctError(f"{gt_root}: no .pts files in the ground-truth folder")
    pred_files = find_pts(pred_root)
    runs_as_sequences = False
    if not pred_files.keys() & gt_files.keys():
        collapsed = runs_of_sequences(pred_files, gt_files)
        if collapsed:
            pred_files, runs_as_sequences = collapsed, True
    all_gt = gt_files
    candidates = face_candidates(pred_files, all_gt)
    choices = candidates if nearest else {rel: [rel] for rel in all_gt}
    peer: dict[str, Path] | None = None
    common: CommonFaces | None = None
    if common_with is not None:
        peer_root = Path(common_with)
        if not peer_root.is_dir():
            what = "not a folder" if peer_root.exists() else "no such folder"
            raise CrctError(f"{peer_root}: {what} (--common-with)")
        peer = find_pts(peer_root)
        if not peer.keys() & all_gt.keys():  # another run of a 300-VW style folder
            peer = runs_of_sequences(peer, all_gt) or peer
        peer_choices = face_candidates(peer, all_gt) if nearest else choices
        peer_has = {rel for rel in all_gt if any(c in peer for c in peer_choices[rel])}
        if not peer_has:
            raise CrctError(f"{peer_root}: none of its .pts files matches one in {gt_root}")
        pred_has = {rel for rel in all_gt if any(c in pred_files for c in choices[rel])}
        # the faces both answered: each tool's misses are left out for both, so that scoring
        # A beside B and B beside A measures the two on one set of faces
        gt_files = {rel: path for rel, path in gt_files.items() if rel in peer_has & pred_has}
        common = CommonFaces(str(peer_root), len(all_gt), len(pred_has), len(peer_has))
        if not gt_files:
            raise CrctError(
                f"no ground-truth file in {gt_root} is answered by both {pred_root} and "
                f"{peer_root} (--common-with)"
            )
    paired = [rel for rel in gt_files if any(c in pred_files for c in choices[rel])]
    if not paired and (pred_files or not _found_no_face(pred_root)):
        hint = "".join(
            f"; {label} {root / 'annot'}?"
            for label, root in (("--pred", pred_root), ("--gt", gt_root))
            if (root / "annot").is_dir()  # a crct track run's (or a 300-VW sequence's) folder
        )
        hint += _padding_hint(pred_files, gt_files)
        raise CrctError(
            f"no .pts file in {pred_root} matches one in {gt_root} by relative path "
            f"({len(pred_files)} predictions, {len(gt_files)} ground-truth files{hint})"
        )
    # a ground-truth file that cannot be scored (another markup, a broken file, all points on
    # one spot) is left out and listed, as --dataset does: one bad file never stops the rest
    rels, shapes, skipped = [], [], []
    for rel, path in gt_files.items():
        try:
            shape = read_pts(path)
            if not normalizer(shape, norm)[0] > 0:
                raise CrctError(f"{path}: degenerate ground truth (zero {norm} length)")
        except CrctError as exc:
            skipped.append((rel, str(exc)))
            continue
        rels.append(rel)
        shapes.append(shape)
    if not rels:
        raise CrctError(f"{gt_root}: no ground-truth file could be scored ({skipped[0][1]})")
    gt = np.stack(shapes) - gt_origin
    unreadable: list[tuple[str, str]] = []
    pred, answered = _read_answers(pred_files, choices, rels, gt, unreadable, pred_origin)
    errors = nme(pred, gt, norm)
    offsets = frame_offsets(rels, pred, gt, norm)
    a, b = frame_pairs(rels)
    jitter = None
    if a.size:
        moves = point_jitter(pred[a], pred[b], gt[a], gt[b], norm)
        peer_worst = None
        if peer is not None:
            peer_choices = face_candidates(peer, all_gt) if nearest else choices
            peer_points = _read_answers(peer, peer_choices, rels, gt, origin=peer_origin)[0]
            peer_errors = nme(peer_points, gt, norm)
            peer_worst = np.maximum(peer_errors[a], peer_errors[b])
        jitter = summarize_jitter(moves, np.maximum(errors[a], errors[b]), threshold, peer_worst)
    per_file = [
        FileScore(rel, float(e), rel not in answered) for rel, e in zip(rels, errors, strict=True)
    ]
    used = {c for names in choices.values() for c in names}
    by_state = None
    if states is not None:
        by_state = summaries_by_state(
            [states[0].get(rel) for rel in rels], errors, threshold, STATES
        )
    return PtsComparison(
        pred_dir=str(pred_root),
        gt_dir=str(gt_root),
        norm=norm,
        summary=summarize(errors, threshold),
        unmatched_predictions=len(set(pred_files) - used),
        other_faces=0 if nearest else sum(r != c for r, names in candidates.items() for c in names),
        per_file=per_file,
        jitter=jitter,
        by_state=by_state,
        states_from=None if states is None else str(states[1]),
        gt_origin=gt_origin,
        pred_origin=pred_origin,
        numbering=numbering_origins(pred_files, all_gt),
        common=common,
        frame_offsets=offsets,
        skipped_gt=skipped,
        unreadable=unreadable,
        runs_as_sequences=runs_as_sequences,
    )


def runs_of_sequences(pred_files: dict[str, Path], gt_files: dict[str, Path]) -> dict[str, Path]:
    """``crct track ROOT --out RUNS`` over a 300-VW style folder (``ROOT/001/vid.avi`` beside
    ``ROOT/001/annot/``) writes ``RUNS/001/vid/annot/``: each video's run in a folder named
    after it. Those files keyed as the ground truth's (``001/annot/000001.pts``), where the
    ground truth has them; empty where none does."""
    found: dict[str, Path] = {}
    for rel, path in pred_files.items():
        parts = PurePosixPath(rel).parts
        if len(parts) >= 3 and parts[-2] == "annot":
            short = PurePosixPath(*parts[:-3], *parts[-2:]).as_posix()
            if short in gt_files:
                found.setdefault(short, path)
    return found


def _padding_hint(pred_files: dict[str, Path], gt_files: dict[str, Path]) -> str:
    """Where both sides number their files but write the numbers differently (``1.pts``
    against ``000001.pts``): a hint, as files pair by name and crct writes six digits."""

    def first(files: dict[str, Path]) -> str | None:
        return next((r for r in sorted(files) if PurePosixPath(r).stem.isdecimal()), None)

    a, b = first(pred_files), first(gt_files)
    if a is None or b is None:
        return ""
    if len(PurePosixPath(a).stem) == len(PurePosixPath(b).stem):
        return ""
    return (
        f"; the numbers are written differently ({PurePosixPath(a).name} against "
        f"{PurePosixPath(b).name}): rename one side, e.g. to six digits as crct writes them"
    )


def _found_no_face(pred_root: Path) -> bool:
    """``pred_root`` is the annot/ of a crct track run that found no face (status no_face): an
    empty folder that is an answer, every frame a failure, not a folder named wrongly."""
    run = pred_root.parent / "track.json"
    if pred_root.name != "annot" or not run.is_file():
        return False
    try:
        return json.loads(run.read_text(encoding="utf-8"))["summary"]["status"] == "no_face"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _read_answers(
    files: dict[str, Path],
    choices: dict[str, list[str]],
    rels: list[str],
    gt: np.ndarray,
    unreadable: list[tuple[str, str]] | None = None,
    origin: float = 0.0,
) -> tuple[np.ndarray, set[str]]:
    """Each ground-truth file's prediction among ``files`` (NaN where none), ``origin`` taken
    off, the face nearest the truth among its ``choices``; and the files answered. A file
    that cannot be read (no points, NaN for "no face", another markup) is no answer, and goes
    to ``unreadable`` as (its name, why)."""
    pred = np.full_like(gt, np.nan)
    answered: set[str] = set()
    for i, rel in enumerate(rels):
        found = []
        for c in choices[rel]:
            if c in files:
                try:
                    found.append(read_pts(files[c]) - origin)
                except CrctError as exc:
                    if unreadable is not None:
                        unreadable.append((c, str(exc)))
        if found:
            pred[i] = nearest_face(found, gt[i])
            answered.add(rel)
    return pred, answered


def per_file_csv(result: PtsComparison) -> str:
    """CSV text: ``file,nme,missing`` (empty NME for a missing prediction)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "nme", "missing"])
    for row in result.per_file:
        writer.writerow([row.rel, "" if row.missing else f"{row.nme:.6f}", int(row.missing)])
    return buf.getvalue()


def write_results(result: PtsComparison, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``results.json`` and ``per_file.csv`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out / "results.json", out / "per_file.csv"
        write_text_atomic(json_path, json.dumps(result.to_json(), indent=2) + "\n")
        write_text_atomic(csv_path, per_file_csv(result))
    except OSError as exc:
        raise CrctError(f"{out}: cannot write results ({exc.strerror})") from None
    return [json_path, csv_path]


#: Above this many files, the screen shows only the worst ones (the CSV has them all).
MAX_ROWS_ON_SCREEN = 30
WORST_ROWS = 10


def results_tables(result: PtsComparison) -> list[Table]:
    """Rich tables for the screen: per file (or the worst ones) and overall."""
    from rich.table import Table

    rows = result.per_file
    title, caption = "per file", None
    if len(rows) > MAX_ROWS_ON_SCREEN:
        rows = sorted(rows, key=lambda r: -r.nme)[:WORST_ROWS]
        title = f"worst {WORST_ROWS} of {len(result.per_file)} files"
        caption = "all in per_file.csv (--out)"
    files = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    files.add_column("file")
    files.add_column(f"NME ({result.norm})", justify="right")
    for row in rows:
        files.add_row(row.rel, "missing" if row.missing else f"{row.nme:.4f}")

    s = result.summary
    t = f"{s.threshold:g}"
    c = result.common
    overall = Table(
        title=f"overall: {result.pred_dir} vs {result.gt_dir}",
        title_justify="left",
        caption=None
        if c is None
        else (
            f"the {s.count} files both answered: of {c.gt_files}, {result.pred_dir} answered "
            f"{c.pred_answered} and {c.peer} {c.peer_answered} (--common-with)"
        ),
        caption_justify="left",
    )
    for name in ("files", "missing", "mean NME", "median NME", f"AUC@{t}", f"failure >{t}"):
        overall.add_column(name, justify="right")
    j = result.jitter
    shared = j is not None and j.pairs_shared is not None
    if j is not None:  # consecutive video frames
        overall.add_column("jitter", justify="right")
        overall.add_column("jitter on face", justify="right")
    if shared:  # --common-with: the pairs both tools have on the face
        overall.add_column("on face, shared", justify="right")
    overall.add_row(
        str(s.count),
        str(s.missing),
        f"{s.mean_nme:.4f}",
        f"{s.median_nme:.4f}",
        f"{s.auc:.4f}",
        f"{s.failure_rate:.4f}",
        *(
            []
            if j is None
            else [
                f"{j.mean:.4f}" if j.pairs else "-",
                f"{j.mean_ok:.4f}" if j.pairs_ok else "-",
            ]
        ),
        *([f"{j.mean_shared:.4f}" if j.pairs_shared else "-"] if shared and j else []),
    )
    return [files, overall, *_state_table(result)]


def _state_table(result: PtsComparison) -> list[Table]:
    """The files by the tracker's state (when track.json gave them)."""
    from rich.table import Table

    if not result.by_state:
        return []
    t = f"{result.summary.threshold:g}"
    table = Table(
        title=f"by the tracker's state (track.json): AUC@{t} / failure rate / median NME",
        title_justify="left",
    )
    table.add_column("state")
    for name in STATE_COLUMNS:
        table.add_column(name, justify="right")
    for row in state_cells(result.by_state):
        table.add_row(*row)
    return [table]
