"""Several faces at once: the set of live CRCT tracks, detection to start them, ids.

Each face is its own :class:`~crct_cli.tracking.tracker.CRCTTracker` (Algorithm 1 with its own
last valid box, LSTM state and eq. 8 gate). This layer only decides which tracks exist and
answers their network requests together, so that per frame MTCNN runs at most once on the
frame (and its sensitive look once more, for the lost tracks together) and BT, FV and FLL each
run once on the batch of all tracks that need them.

Choices where the papers are silent (they track one face):

- ``faces=1`` is the papers' single target and behaves exactly as before this layer: one track
  that initialises itself on the most confident detection, is never ended and awaits a face
  that left where it was. Its first frame is scored by FV too (reported, never gating).
- With ``faces`` other than 1, MTCNN runs every ``detect_every`` frames while there is room for
  another face, and on every frame on which a track is lost (Algorithm 1's re-detection). A
  detection that overlaps a track's box (IoU >= ``overlap_iou``) or that a lost track takes
  (eq. 8, nearest first) starts nothing; any other starts a track, FLL in its box, kept only
  if FV accepts the points (``p >= TC``), so a false detection never becomes a face. Lost
  tracks that this leaves without a detection ask for the detector's more sensitive look
  (``TrackerConfig.relaxed_redetect``): it runs once for all of them and starts no track.
- Ids are integers from 0 in order of appearance (left to right within a frame). A face keeps
  its id while its track lives; a track lost for more than ``max_lost`` frames in a row ends,
  and a face that comes back after that gets a new id. A track lost ``edge_patience`` frames
  whose held box lies less than ``edge_inside`` inside the frame is a face that walked out:
  it waits unseen (no points are written for it, which would be drawn on the background) and
  takes its id back if the face comes in again before ``max_lost``. It holds no place among
  ``faces``: another face is followed in its stead, and when that leaves it more than
  ``faces`` tracks, the one out longest ends.
- A lost track looks for its face (MTCNN, its sensitive look, the finder) on each of its first
  ``lost_looks`` lost frames, where most faces come back, then on every ``lost_every``-th
  frame, as does a face that walked out from then on: a face gone for good does not cost two
  detector passes a frame.
- A face that reappears after an occlusion often lies beyond eq. 8's gate (it moved while
  hidden). A new track that FV accepts within ``reattach`` box diagonals of a lost track's
  held box is that face coming back: it takes the lost track's id and the lost track ends.
- At a shot cut (:meth:`MultiTracker.cut`, called by the layer that reads the frames:
  :mod:`crct_cli.tracking.shots`) every track ends and MTCNN looks at the cut's frame: a face
  of the new shot gets a new id, whoever stands where a face of the old shot was.
- Two tracks on one face (box IoU >= ``duplicate_iou``): one of them drifted there. The one
  whose box jumped further from its own last valid box (by more than a tenth of a diagonal),
  else the one FV scores lower, else the younger, is set back to its last valid box and
  re-detects; its frame is reported lost without points.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from crct_cli.geometry import in_frame_share
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.likeness import face_thumbnail, likeness
from crct_cli.tracking.tracker import (
    CRCTTracker,
    Detect,
    Find,
    Localize,
    Networks,
    Plan,
    Request,
    TrackBox,
    TrackerConfig,
    TrackResult,
    Validate,
    box_distance_ratio,
)


@dataclass(frozen=True)
class MultiConfig:
    """How many faces, and how tracks start, collide and end. ``faces=None``: every face."""

    faces: int | None = 1
    detect_every: int = 10
    max_lost: int = 40
    overlap_iou: float = 0.3
    duplicate_iou: float = 0.5
    reattach: float = 3.0
    lost_looks: int = 10
    lost_every: int = 3
    edge_inside: float = 0.8
    edge_patience: int = 3

    def __post_init__(self) -> None:
        if self.faces is not None and self.faces < 1:
            raise ValueError(f"faces must be >= 1 or None (all), got {self.faces}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.max_lost < 0:
            raise ValueError(f"max_lost must be >= 0, got {self.max_lost}")
        if self.lost_looks < 0 or self.lost_every < 1 or self.edge_patience < 1:
            raise ValueError("lost_looks must be >= 0, lost_every and edge_patience >= 1")
        if not 0.0 < self.edge_inside <= 1.0:
            raise ValueError(f"edge_inside must be in (0, 1], got {self.edge_inside}")

    @property
    def single(self) -> bool:
        return self.faces == 1


class BatchNetworks(Protocol):
    """The networks on batches: ``boxes`` (N, 4), ``points`` (N, 68, 2), one call per frame."""

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]: ...

    def bt_batch(
        self, prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, states: list[Any]
    ) -> tuple[np.ndarray, list[Any]]: ...

    def validate_batch(self, image: np.ndarray, points: np.ndarray) -> np.ndarray: ...

    def localize_batch(
        self, image: np.ndarray, boxes: np.ndarray, mirrored: bool = False
    ) -> np.ndarray: ...


class PerFaceBatch:
    """Batch calls answered one face at a time by a one-face :class:`Networks` (fakes, tests)."""

    def __init__(self, nets: Networks) -> None:
        self.nets = nets

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        if relaxed:
            return self.nets.detect(image, relaxed=True)
        return self.nets.detect(image)

    def find_batch(self, image: np.ndarray, boxes: np.ndarray) -> list[list[Detection]]:
        find = getattr(self.nets, "find", None)
        return [[] if find is None else find(image, b) for b in boxes]

    def bt_batch(
        self, prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, states: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        out = [self.nets.bt_step(prev, cur, b, s) for b, s in zip(boxes, states, strict=True)]
        return np.stack([p for p, _ in out]), [s for _, s in out]

    def validate_batch(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        return np.array([self.nets.validate(image, p) for p in points], dtype=np.float64)

    def localize_batch(
        self, image: np.ndarray, boxes: np.ndarray, mirrored: bool = False
    ) -> np.ndarray:
        asked = {"mirrored": True} if mirrored else {}  # plain reads: the protocol's old call
        return np.stack([self.nets.localize(image, b, **asked) for b in boxes])


def as_batch(nets: Any) -> BatchNetworks:
    """``nets`` itself when it has batch calls, else a :class:`PerFaceBatch` around it."""
    return nets if hasattr(nets, "bt_batch") else PerFaceBatch(nets)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class Face:
    """One face in one frame.

    ``face_id``: the same number while the face is followed (0 first); ``points``: float
    (68, 2) x, y in pixels of the frame, iBUG order, pixel centres counted from 0 (None: no
    points this frame); ``box``: float (4,) x, y, w, h, the points' bounding box; ``score``:
    the face validator's p(face) (None where the method has none); ``state``: tracked,
    redetected or lost (see track.json); ``pose``: (Tx, Ty, Tz, Rx, Ry, Rz) mm and radians
    when the tracker was asked for it (:mod:`crct_cli.pose`)."""

    face_id: int
    points: np.ndarray | None
    box: np.ndarray | None
    score: float | None
    state: str
    pose: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        """Equal when every field is, the arrays by their values (:func:`same_fields`): two
        runs that give the same points give equal faces, and ``face in faces`` and
        ``faces.index(face)`` work, where the generated ``==`` asked an array's truth."""
        return same_fields(self, other) if isinstance(other, Face) else NotImplemented


def same_fields(a: Any, b: Any) -> bool:
    """Two dataclasses of one type field by field: an array equals one of the same shape
    and values (NaN where the other has NaN: a lost face's missing points), the rest by
    ``==`` (a list of faces face by face)."""
    for name in (f.name for f in dataclasses.fields(a)):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
                return False
            nan = x.dtype.kind in "fc" and y.dtype.kind in "fc"
            if x.shape != y.shape or not np.array_equal(x, y, equal_nan=nan):
                return False
        elif x != y:
            return False
    return True


@dataclass(eq=False)  # compared by identity: two tracks are never "equal"
class Track:
    """A live track: its id, its Algorithm 1 state, and how long it has been lost."""

    face_id: int
    tracker: CRCTTracker
    lost_run: int = 0


@dataclass(eq=False)
class _Turn:
    """One track's plan for the current frame, and where it stands."""

    track: Track
    plan: Plan
    fresh: bool  # started this frame
    previous_box: np.ndarray | None
    previous_thumbnail: np.ndarray | None = None  # the followed face's (``likeness``)
    pending: Request | None = None
    result: TrackResult | None = None
    resting: bool = False  # lost long: no look for its face this frame (MultiConfig.lost_looks)

    def advance(self, value: Any = None, first: bool = False) -> None:
        try:
            self.pending = next(self.plan) if first else self.plan.send(value)
        except StopIteration as stop:
            self.pending, self.result = None, stop.value
        self.rest()

    def rest(self) -> None:
        """A resting track's own looks for its face (the sensitive look, the finder) find
        nothing and cost nothing; MTCNN's usual look it gets when MTCNN runs for another."""
        while self.resting and (
            isinstance(self.pending, Find)
            or (isinstance(self.pending, Detect) and self.pending.relaxed)
        ):
            try:
                self.pending = self.plan.send([])
            except StopIteration as stop:
                self.pending, self.result = None, stop.value


@dataclass
class MultiTracker:
    """Every face of a video (or the first ``faces``), one CRCT track each; see the module."""

    nets: Any
    config: TrackerConfig = field(default_factory=TrackerConfig)
    multi: MultiConfig = field(default_factory=MultiConfig)
    init_box: np.ndarray | None = None
    tracks: list[Track] = field(default_factory=list, init=False)
    frame_no: int = field(default=0, init=False)
    next_id: int = field(default=0, init=False)
    redetections: int = field(default=0, init=False)
    size: tuple[int, int] = field(default=(0, 0), init=False)  # the frame's (width, height)
    new_shot: bool = field(default=False, init=False)  # a cut came: MTCNN runs on this frame

    def __post_init__(self) -> None:
        self.batch = as_batch(self.nets)
        self.reset()

    def reset(self) -> None:
        """Forget every track and id: the next frame starts a new video."""
        self.tracks, self.frame_no, self.next_id, self.redetections = [], 0, 0, 0
        self.new_shot = False
        if self.multi.single or self.init_box is not None:
            self.tracks.append(Track(0, CRCTTracker(None, self._track_config, self.init_box)))
            self.next_id = 1

    def cut(self) -> None:
        """A shot cut (:mod:`crct_cli.tracking.shots`): every track ends, and the next frame
        looks for faces as a video's first does. Ids go on from the last one given (a face
        seen before the cut gets a new one). The single target stays face 0 and looks for a
        face over the whole frame (:meth:`CRCTTracker.cut`)."""
        if self.multi.single:
            for track in self.tracks:
                track.tracker.cut()
            return
        self.tracks = []
        self.new_shot = True

    def carry_back(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """``faces``, the first a video showed, read in an earlier ``image`` where no face was
        found: FLL's points in each one's box, FV's score, state ``lost`` (as a lost frame's
        ``lost_points="fll"``: a face the detector could not see yet has seldom moved far)."""
        held = [(f, f.box) for f in faces if f.box is not None]
        if not held or self.config.mode == "bt":
            return []
        points = self.batch.localize_batch(image, np.stack([box for _, box in held]))
        scores: list[float | None] = [None] * len(held)
        if self._validates:
            scores = [float(s) for s in self.batch.validate_batch(image, points)]
        return [
            Face(f.face_id, p, box_from_points(p), s, "lost")
            for (f, _), p, s in zip(held, points, scores, strict=True)
        ]

    @property
    def _track_config(self) -> TrackerConfig:
        """Each track's Algorithm 1; with several faces, a lost track's gate neither opens
        (``reacquire``) nor widens (``gate_growth``): the face it lost is found again as a new
        track, and ``reattach`` gives it back its id, while a stranger gets an id of its own."""
        if self.multi.single:
            return self.config
        return dataclasses.replace(self.config, reacquire=0, gate_growth=0.0)

    @property
    def _validates(self) -> bool:
        return self.config.mode == "crct"

    def step(self, image: np.ndarray) -> list[Face]:
        """Track every face through one RGB frame; faces with points, by id."""
        turns = [
            _Turn(
                t, t.tracker.plan(image), not t.tracker.started, t.tracker.box, t.tracker.thumbnail
            )
            for t in self.tracks
        ]
        self.size = (image.shape[1], image.shape[0])
        due = self._detection_due()  # MTCNN runs anyway: every lost track gets its look
        self.new_shot = False
        for turn in turns:
            turn.resting = not due and self._resting(turn.track)
            turn.advance(first=True)
        wanting = [u for u in turns if isinstance(u.pending, Detect)]
        detections: list[Detection] | None = None
        if not due and all(u.resting for u in wanting):  # no look due this frame: none taken
            for u in wanting:
                u.advance([])
            wanting = []
        if wanting or due:
            detections = self.batch.detect(image)
            claimed = self._answer_detections(wanting, turns, detections)
            turns += self._start_tracks(image, detections, claimed)
        relaxed = [u for u in turns if isinstance(u.pending, Detect)]
        sensitive: list[Detection] | None = None
        if relaxed:  # lost tracks that found nothing: one more sensitive look for all of them
            started = [
                u.track.tracker.b0 for u in turns if u.fresh and u.track.tracker.b0 is not None
            ]
            sensitive = self.batch.detect(image, relaxed=True)
            found = [
                d for d in sensitive if all(iou(d.box, b) < self.multi.overlap_iou for b in started)
            ]
            self._answer_detections(relaxed, turns, found)
        self._answer_in_batches(image, turns, detections, sensitive)
        self._score_fresh(image, turns)
        self._resolve_duplicates(turns)
        self.frame_no += 1
        return self._finish(turns, image)

    # -- detection ------------------------------------------------------------------------

    def _holding(self) -> list[Track]:
        """The tracks that hold a place among ``faces`` (not those of faces that walked out)."""
        return [t for t in self.tracks if not self._walked_out(t)]

    def _room(self) -> bool:
        return self.multi.faces is None or len(self._holding()) < self.multi.faces

    def _resting(self, track: Track) -> bool:
        """A track lost past its first ``lost_looks`` frames (or out of the picture), between
        two of its looks."""
        if self.multi.single:
            return False
        if track.lost_run < self.multi.lost_looks and not self._walked_out(track):
            return False
        return track.lost_run % self.multi.lost_every != 0

    def _detection_due(self) -> bool:
        if self.multi.single or not self._room():
            return False
        return self.new_shot or self.frame_no % self.multi.detect_every == 0

    def _answer_detections(
        self, wanting: list[_Turn], turns: list[_Turn], detections: list[Detection]
    ) -> set[int]:
        """Give each re-detecting track the nearest free detection (eq. 8 still gates it).

        A detection on a track that is not re-detecting belongs to that track; the others go
        to the re-detecting tracks nearest first, each only within its gate, so a face far
        from every lost track can start a track of its own. Returns the detections taken.
        """
        claimed = {
            i
            for i, d in enumerate(detections)
            for u in turns
            if u not in wanting
            and u.previous_box is not None
            and iou(d.box, u.previous_box) >= self.multi.overlap_iou
        }
        pairs = sorted(
            (ratio, k, i)
            for k, u in enumerate(wanting)
            if u.previous_box is not None
            for i, d in enumerate(detections)
            if i not in claimed
            and (ratio := box_distance_ratio(u.previous_box, d.box)) < u.track.tracker.gate
        )
        given: dict[int, list[Detection]] = {}
        for _, k, i in pairs:
            if k not in given and i not in claimed:
                given[k] = [detections[i]]
                claimed.add(i)
        for k, u in enumerate(wanting):
            if u.previous_box is None:  # a track not yet started: every free detection
                free = [i for i in range(len(detections)) if i not in claimed]
                given[k] = [detections[i] for i in free]
                if free:
                    claimed.add(max(free, key=lambda i: detections[i].score))
            u.advance(given.get(k, []))
        return claimed

    def _start_tracks(
        self, image: np.ndarray, detections: list[Detection], claimed: set[int]
    ) -> list[_Turn]:
        """A track for each unclaimed detection on no track, most confident first."""
        if self.multi.single:
            return []
        boxes = [t.tracker.box for t in self.tracks if t.tracker.box is not None]
        free = [
            d
            for i, d in enumerate(detections)
            if i not in claimed and all(iou(d.box, b) < self.multi.overlap_iou for b in boxes)
        ]
        room = None if self.multi.faces is None else self.multi.faces - len(self._holding())
        chosen: list[Detection] = []
        for d in sorted(free, key=lambda d: -d.score):
            if room is not None and len(chosen) >= room:
                break
            if all(iou(d.box, c.box) < self.multi.overlap_iou for c in chosen):
                chosen.append(d)
        turns = []
        for d in sorted(chosen, key=lambda d: d.box[0]):  # ids left to right
            track = Track(-1, CRCTTracker(None, self._track_config, d.box))  # id once FV accepts
            turn = _Turn(track, track.tracker.plan(image), True, None)
            turn.advance(first=True)
            turns.append(turn)
        return turns

    # -- the networks, batched ------------------------------------------------------------

    def _answer_in_batches(
        self,
        image: np.ndarray,
        turns: list[_Turn],
        detections: list[Detection] | None = None,
        sensitive: list[Detection] | None = None,
    ) -> None:
        """Answer the plans' requests one kind at a time, in Algorithm 1's order. Detection
        was answered before (a plan asks for it first), except for a track lost on this frame
        that looks again at once (``TrackerConfig.redetect_on_loss``): it gets the frame's
        ``detections`` (MTCNN runs now if it has not yet), less those on other tracks, and if
        it then asks for the more sensitive look, that runs once for all such tracks."""
        looks: dict[bool, list[Detection] | None] = {False: detections, True: sensitive}
        while any(u.pending is not None for u in turns):
            for kind in (TrackBox, Validate, Localize):
                group = [u for u in turns if isinstance(u.pending, kind)]
                if group:
                    for u, value in zip(group, self._call(kind, group), strict=True):
                        u.advance(value)
                # answered at once (the usual look, then the sensitive one), so that these
                # tracks' FLL joins the others' batch
                for relaxed in (False, True):
                    late = [
                        u
                        for u in turns
                        if isinstance(u.pending, Detect) and u.pending.relaxed == relaxed
                    ]
                    eager = any(not u.resting for u in late)  # resting ones take what ran
                    if late and looks[relaxed] is None and eager:
                        looks[relaxed] = self.batch.detect(image, relaxed=relaxed)
                    for u in late:
                        u.advance(self._free_detections(u, turns, looks[relaxed] or []))
                # the face finder, for lost tracks MTCNN did not find again: one batch
                seeking = [u for u in turns if isinstance(u.pending, Find)]
                if seeking:
                    boxes = np.stack([u.pending.box for u in seeking])  # type: ignore[union-attr]
                    for u, found in zip(seeking, self._find(image, boxes), strict=True):
                        u.advance(self._free_detections(u, turns, found))

    def _find(self, image: np.ndarray, boxes: np.ndarray) -> list[list[Detection]]:
        """The finder's look around each box; nothing where the networks have no finder."""
        find_batch = getattr(self.batch, "find_batch", None)
        return [[] for _ in boxes] if find_batch is None else find_batch(image, boxes)

    def _free_detections(
        self, turn: _Turn, turns: list[_Turn], detections: list[Detection]
    ) -> list[Detection]:
        """The detections that lie on no other track's last box (eq. 8 then gates them; a
        track started on one this frame is resolved as any duplicate is)."""
        others = [v.previous_box for v in turns if v is not turn and v.previous_box is not None]
        return [
            d for d in detections if all(iou(d.box, b) < self.multi.overlap_iou for b in others)
        ]

    def _call(self, kind: type, group: list[_Turn]) -> Iterable[Any]:
        requests: list[Any] = [u.pending for u in group]
        if kind is TrackBox:
            points, states = self.batch.bt_batch(
                requests[0].prev,
                requests[0].cur,
                np.stack([r.box for r in requests]),
                [r.state for r in requests],
            )
            return list(zip(points, states, strict=True))
        if kind is Validate:
            scores = self.batch.validate_batch(
                requests[0].image, np.stack([r.points for r in requests])
            )
            return [float(s) for s in scores]
        # one batch for the plain reads and one for the mirrored ones (tracks FV doubts)
        out: list[Any] = [None] * len(requests)
        for mirrored in (False, True):
            idx = [i for i, r in enumerate(requests) if r.mirrored == mirrored]
            if not idx:
                continue
            boxes = np.stack([requests[i].box for i in idx])
            asked = {"mirrored": True} if mirrored else {}
            points = self.batch.localize_batch(requests[0].image, boxes, **asked)
            for i, p in zip(idx, points, strict=True):
                out[i] = p
        return out

    def _score_fresh(self, image: np.ndarray, turns: list[_Turn]) -> None:
        """FV on the first frame of each new track; with several faces, a reject drops it."""
        fresh = [
            (u, u.result, u.result.points)
            for u in turns
            if u.fresh and u.result and u.result.points is not None
        ]
        if fresh and self._validates:
            scores = self.batch.validate_batch(image, np.stack([p for _, _, p in fresh]))
            for (u, result, _), score in zip(fresh, scores, strict=True):
                result.score = float(score)
                if u.track.face_id < 0 and score < self.config.tc:
                    u.result = None  # not a face: never reported, no id spent

    def _resolve_duplicates(self, turns: list[_Turn]) -> None:
        """Two tracks on one face: the one that jumped there is set back and re-detects."""
        for a_i, a in enumerate(turns):
            for b in turns[a_i + 1 :]:
                box_a, box_b = _valid_box(a.result), _valid_box(b.result)
                if box_a is None or box_b is None:
                    continue
                if iou(box_a, box_b) < self.multi.duplicate_iou:
                    continue
                intruder = _intruder(a, b)
                if intruder.track.face_id < 0:  # a new track on a known face: dropped
                    intruder.result = None
                    continue
                intruder.track.tracker.box = intruder.previous_box
                # nor does it keep the look of the face it drifted onto (``likeness``)
                intruder.track.tracker.thumbnail = intruder.previous_thumbnail
                intruder.track.tracker.redetect = True
                assert intruder.result is not None  # a or b, both valid above
                intruder.result = TrackResult(None, None, intruder.result.score, "lost")

    def _admit(self, new: _Turn, turns: list[_Turn], image: np.ndarray) -> None:
        """A new track: a lost face coming back (its id), or a new face (the next id). With
        ``likeness``, a face that does not look like the lost one is a new face."""
        assert new.result is not None and new.result.box is not None
        box = new.result.box
        lost = [
            (ratio, u)
            for u in turns
            if u.track.face_id >= 0
            and u.result is not None
            and u.result.state == "lost"
            and u.previous_box is not None
            and (ratio := box_distance_ratio(u.previous_box, box)) < self.multi.reattach
            and not self._unlike(u.track, image, new.result.points)
        ]
        if lost:
            back = min(lost, key=lambda pair: pair[0])[1]
            new.track.face_id = back.track.face_id
            self.tracks.remove(back.track)
            self.redetections += 1  # a lost face found again, as a re-detection is
            back.result = None  # the face is reported once, by its new track
        else:
            new.track.face_id, self.next_id = self.next_id, self.next_id + 1
        self.tracks.append(new.track)
        extra = 0 if self.multi.faces is None else len(self.tracks) - self.multi.faces
        if extra > 0:  # its place was taken: the face out of the picture longest ends
            gone = [t for t in self.tracks if self._walked_out(t)]
            for track in sorted(gone, key=lambda t: -t.lost_run)[:extra]:
                self.tracks.remove(track)

    def _unlike(self, track: Track, image: np.ndarray, points: np.ndarray | None) -> bool:
        """``likeness`` (off at 0): ``points`` do not show the face ``track`` followed."""
        kept = track.tracker.thumbnail
        if self.config.likeness <= 0 or kept is None or points is None:
            return False
        return likeness(kept, face_thumbnail(image, points)) < self.config.likeness

    def _finish(self, turns: list[_Turn], image: np.ndarray) -> list[Face]:
        """Admit new tracks (ids in order), count, end long-lost tracks, report faces (not
        those of faces that walked out of the picture)."""
        for u in turns:
            if u.track.face_id < 0 and u.result is not None:
                self._admit(u, turns, image)
        self._off_neighbours(turns)
        faces = []
        for u in turns:
            r = u.result
            if r is None:
                continue
            if r.state == "redetected" and not u.fresh:
                self.redetections += 1
            u.track.lost_run = u.track.lost_run + 1 if r.state == "lost" else 0
            if r.points is not None and not self._walked_out(u.track):
                faces.append(Face(u.track.face_id, r.points, r.box, r.score, r.state))
        if not self.multi.single:
            self.tracks = [t for t in self.tracks if t.lost_run <= self.multi.max_lost]
        return sorted(faces, key=lambda f: f.face_id)

    def _walked_out(self, track: Track) -> bool:
        """Lost a few frames with its held box mostly off the frame: the face walked out."""
        box = track.tracker.box
        if self.multi.single or track.lost_run < self.multi.edge_patience or box is None:
            return False
        return in_frame_share(box, *self.size) < self.multi.edge_inside

    def _off_neighbours(self, turns: list[_Turn]) -> None:
        """A lost track's points (its unaccepted estimate) lying on a face another track
        holds are that face's, not its own: reported without them."""
        results = [u.result for u in turns]
        held = [r.box for r in results if r is not None and r.state != "lost" and r.box is not None]
        for u in turns:
            r = u.result
            if r is None or r.state != "lost" or r.box is None:
                continue
            if any(iou(r.box, b) >= self.multi.overlap_iou for b in held):
                u.result = TrackResult(None, None, r.score, "lost")


def _valid_box(result: TrackResult | None) -> np.ndarray | None:
    """The box of a result that is not lost; None for any other."""
    if result is None or result.state == "lost":
        return None
    return result.box


def _intruder(a: _Turn, b: _Turn) -> _Turn:
    """Of two turns on one face, the one that drifted onto it (see the module docstring)."""
    jump_a, jump_b = _jump(a), _jump(b)
    if abs(jump_a - jump_b) > 0.1:
        return a if jump_a > jump_b else b
    score_a = a.result.score if a.result and a.result.score is not None else 0.0
    score_b = b.result.score if b.result and b.result.score is not None else 0.0
    if score_a != score_b:
        return a if score_a < score_b else b
    return a if (a.track.face_id < 0 or a.track.face_id > b.track.face_id >= 0) else b


def _jump(turn: _Turn) -> float:
    """How far a track's box moved this frame, in its previous box's diagonals (new: inf)."""
    if turn.fresh or turn.previous_box is None or turn.result is None or turn.result.box is None:
        return float("inf")
    return box_distance_ratio(turn.previous_box, turn.result.box)
