"""CRCT's recurrent facial tracking, Algorithm 1 of the paper, one frame at a time.

The networks are reached through :class:`Networks`, so the control flow here is exactly the
paper's and can be tested with scripted fakes:

- BT runs from ``Pb`` (the last valid box) on the previous and current frame; its LSTM state is
  reset when the tracker was re-initialised or when more than ``SeqBT`` frames have passed
  since the last reset (line 11: ``redetect OR SeqT > SeqBT``).
- FV scores BT's landmarks; below ``TC`` the frame is *lost* and the next frame re-detects.
- Re-detection keeps the MTCNN detection whose centre is nearest the last valid box's centre,
  relative to that box's size, and only if that ratio is below ``TB`` (eq. 8); otherwise the
  last valid box is held, so a face that left the view is awaited where it was rather than
  swapped for another face.
- Not in the paper (``relaxed_redetect``, on by default): when that finds nothing within TB,
  a second, more sensitive detection is asked for (``Detect(relaxed=True)``), gated the same
  way. On degraded footage MTCNN's scores on the face fall below its usual thresholds, and
  the track otherwise stays lost while BT slides from the held box; eq. 8 and FV still guard
  against taking something else.
- Not in the paper (``reacquire``, 25 frames by default): once the track has been lost that
  many frames (net of the valid frames in between: each one takes one off), eq. 8's gate
  opens and the detection nearest the held box is taken wherever it is. The held box is the
  last one FV accepted, and on hard footage FV sometimes accepts a box that has slid off the
  face, now and then, again and again; the face is then found frame after frame beyond TB and
  refused for the rest of the video. FV still checks what BT makes of the new box.
- Not in the paper (``redetect_fallback``, on by default): when FV rejects what BT made of a
  fresh detection, FLL runs in the detection box itself, as when a track starts, and its points
  are kept if FV accepts them (the BT state starts afresh on the next frame). On degraded
  frames BT from a cold start is the weaker of the two; the frame is lost only if both fail.
- Not in the paper (``redetect_on_loss``, on by default): when FV rejects BT's estimate on a
  frame that followed a valid one, MTCNN looks for the face in that same frame (gated by eq. 8
  around the last valid box; with ``relaxed_redetect``, the more sensitive look when that
  finds nothing), and FLL's points in the detection are kept if FV accepts them.
  The paper re-detects only from the next frame, and lets the face move on meanwhile; in fast
  bursts it has often moved beyond eq. 8's gate by then (synthetic category 3 and seed-1
  category 1: docs/benchmarks.md). Costs one MTCNN call on the first frame of each loss.
- Validated frames are refined by FLL in BT's box; the new valid box is the box of FLL's
  points (line 19).
- Not in the paper (``check_refined``, on by default): FV also checks FLL's refined points,
  and below ``TC`` the frame is lost after all (those points written, the box held, the next
  frame re-detects). FV accepted BT's estimate, but a box that has half slid off a hard-to-see
  face can still pass; what FLL makes of it then seldom does (the hard webcam set: 6.7% of
  frames failed without this look, 5.0% with it; the synthetic sets gained a little, and the
  other real sets did not move). One more FV call a frame.

- Not in the paper (``lost_points``, ``fll`` by default): a lost frame's points are FLL's in
  ``Pb`` (the held box: the last one FV accepted, or the fresh detection), checked by FV for
  the score written with them, rather than BT's rejected estimate. On hard footage FV rejects
  whole runs of frames where the face is only hard to see and has hardly moved; BT from a cold
  start then slides off it, while FLL in the held box stays on it (the hard webcam set: 25% of
  frames failed with BT's points, 10% with FLL's). The tracker's state is the same either way:
  the frame is still lost, and the next one re-detects. ``bt``: the paper's points.
  When the frame's re-detection is what FV turned down (BT's estimate from it, and FLL's
  points in it with ``redetect_fallback``), FLL also reads the held box, and FV's score picks
  which points are written: a false detection near a face that is only hard to see no longer
  moves the lost frame's points (and ``lost_follow``'s next box) off it (hard talking_pexels
  and single face: 0.799 -> 0.802 and 0.852 -> 0.861; docs/benchmarks.md, session 24).
- Not in the paper (``lost_follow``, on by default, with ``lost_points="fll"``): from a lost
  run's second frame, FLL also reads the box of the last lost frame's points, and FV's score
  picks between that answer and the held box's. A face that moves on under a shadow is
  followed (the hard webcam set: 2.5% of frames failed with the held box alone, 0.1% with
  this), while FV's pick keeps a run whose own answers drift off a face from drifting further
  (following alone failed on 9% of hard talking_pexels). Only the points written change: the
  held box, BT's start and eq. 8's centre, stays the last one FV accepted. One more FLL and FV
  call on each lost frame after the first.
- Not in the paper (``lost_flip``, on by default): on a frame where FV rejects BT's estimate,
  every FLL read of that frame (the look at once, the fallback in a detection, the held and
  the follow box) also reads the mirrored crop and averages, as ``--flip`` does on every frame.
  These are the frames FLL reads worst (a dark, blurred or half-covered face); a followed face
  costs nothing more (eight of the nine hard sets gain, category 3 fails on 16.0% of frames
  rather than 16.4%; docs/benchmarks.md, session 24).
- Not in the paper (``lost_doubted``, on by default, with ``lost_points="fll"``): when the
  look at once (``redetect_on_loss``) finds a face whose FLL points FV turns down, those
  points join the held box's (and the follow box's) as the lost frame's, FV's score picking:
  a face found where it went but too smeared for FV's threshold is often still read better
  there than in the box it left (docs/benchmarks.md, session 32). The frame stays lost and
  the held box stays.
- Not in the paper (``gate_growth``, 0.2 by default): eq. 8's TB widens by this much per lost
  frame (net of the valid ones, as ``reacquire`` counts them), a gradual ``reacquire``. A face
  lost in a fast move has often gone beyond TB by the time it is seen again, and was refused
  until ``reacquire`` opened the gate; now it is taken back where it went, the nearest
  detection first and FV checking (synthetic category 3: 20.6% of frames failed with the
  fixed gate, 16.7% with this; every synthetic category and no real set lost by it). With
  several faces the gate stays fixed: a face lost there comes back as a new track and
  ``reattach`` gives it its id.

- Not in the paper (``find``, on by default): whenever a lost face is looked for, the face
  finder (:mod:`crct_cli.models.finder`) also looks for it in a window of three times the
  last valid box's side around that box (a request of its own, :class:`Find`). MTCNN misses a
  face smeared by a fast move, turned or half out of the frame; the finder was trained on such
  faces near where they were (synthetic category 3: 16.0% of frames failed over 24 sequences
  without it, 14.5% with it; docs/benchmarks.md, session 31). Where it and MTCNN found the
  same face, MTCNN's box is read; where they found different faces, eq. 8 takes the nearer to
  the last valid box: a neighbour MTCNN sees while the followed face is smeared no longer
  takes the track (session 32). It knows where the followed face was, not whose it is: a track
  that slipped onto a neighbour stays there. Where the window holds nothing, the networks
  look again at a window twice as wide (``crct track --find-wide``,
  :func:`crct_cli.runtime.nets.find_faces`).

- Not in the paper (``likeness``, off by default): a re-found face (re-detected, or the face
  BT finds in the held box on the frame after a lost one) whose small eye-levelled
  thumbnail does not correlate with the last followed face's at least this much is taken for a
  neighbour and turned down as FV's rejection would be (:mod:`crct_cli.tracking.likeness`; not
  asked once ``reacquire`` has opened the gate). Tried and left off: it gained on category 3
  at one threshold and lost at the next (docs/benchmarks.md, session 30).

- Not in the paper (shot cuts, :meth:`CRCTTracker.cut`, called by the layer that reads the
  frames: :mod:`crct_cli.tracking.shots`): on a cut's frame the face is looked for anywhere
  in the frame, the detection nearest the held box first, and BT starts afresh.

Choices where the paper is silent: the initial box ``b0`` comes from ``--init-box`` or the
most confident detection of the first frame that has one, and that frame is answered by FLL in
``b0`` (state ``redetected``); frames before it are ``lost`` with no points. A lost frame
carries points too (``lost_points``), so that every frame after initialisation has some.

The algorithm is written once, as :meth:`CRCTTracker.plan`: a generator that yields what it
needs from the networks (a :class:`Detect`, :class:`TrackBox`, :class:`Validate` or
:class:`Localize` request) and receives the answer. :meth:`CRCTTracker.step` answers each
request at once from one face's :class:`Networks`; the multi-face layer
(:mod:`crct_cli.tracking.multi`) runs the plans of all its tracks side by side and answers each
kind of request for all tracks with one batched network call.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from crct_cli.errors import CrctError, OptionError, option_error
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.likeness import LIKENESS, face_thumbnail, likeness

#: ``crct track --bt-reuse``'s default: how far (a share of its side) a face's box may have
#: moved since the last frame for BT to reuse that frame's crop
#: (:class:`crct_cli.tracking.networks.CRCTNetworks`; docs/benchmarks.md).
BT_REUSE = 0.05

#: ``crct track --stretched-look``'s default: the sensitive re-detection also looks at the
#: frame with its colours stretched (:class:`crct_cli.tracking.networks.CRCTNetworks`;
#: docs/benchmarks.md, session 20).
STRETCHED_LOOK = False

#: ``crct track --find``'s default: when MTCNN does not find a lost face again, the face
#: finder looks for it around the last box FV accepted (:mod:`crct_cli.models.finder`).
FIND = True


def check_bt_reuse(value: float) -> None:
    """``--bt-reuse`` is a share of the box side: 0 (never) up to 0.5."""
    if not 0.0 <= value <= 0.5:
        raise OptionError(
            "bt_reuse", f"must be from 0 to 0.5 (a share of the box side), got {value}"
        )


#: ``crct track --lost-flip``'s default: FLL's mirrored pass on the frames where FV rejects BT's
#: estimate (docs/benchmarks.md, session 24).
LOST_FLIP = True

#: ``crct track --gate-growth``'s default: how much eq. 8's TB widens per lost frame of one face
#: (docs/benchmarks.md, session 17).
GATE_GROWTH = 0.2


def check_gate_growth(value: float, error: type[Exception] = CrctError) -> None:
    """``--gate-growth`` widens eq. 8's TB per lost frame: 0 (the paper's fixed gate) or more."""
    if not (value >= 0.0 and np.isfinite(value)):
        raise option_error(
            error, "gate_growth", f"must be >= 0 (0: the paper's fixed gate), got {value}"
        )


def check_likeness(value: float, error: type[Exception] = CrctError) -> None:
    """``--likeness`` is a correlation: 0 (no check) up to 1."""
    if not (0.0 <= value <= 1.0):
        raise option_error(error, "likeness", f"must be in [0, 1] (0: no check), got {value}")


def check_gates(tb: float, tc: float, seq_bt: int, error: type[Exception] = CrctError) -> None:
    """Algorithm 1's thresholds: eq. 8's TB a positive number of box sizes, FV's TC a score
    in [0, 1], SeqBT at least one frame (a NaN would pass every comparison silently)."""
    if not (0 < tb < math.inf):
        raise option_error(error, "tb", f"must be > 0 (eq. 8's gate, in box sizes), got {tb}")
    if not (0 <= tc <= 1):
        raise option_error(error, "tc", f"must be in [0, 1] (the validator's score), got {tc}")
    if isinstance(seq_bt, bool) or not isinstance(seq_bt, int | np.integer) or seq_bt < 1:
        raise option_error(error, "seq_bt", f"must be a whole number of frames >= 1, got {seq_bt}")


def check_init_box(box: Any, error: type[Exception] = CrctError) -> np.ndarray:
    """``--init-box`` / ``Tracker(init_box=...)``: four finite numbers X, Y, W, H, W and H > 0.

    Python gives a sequence of four numbers where the command line writes ``X,Y,W,H``, so
    each is told its own form."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise option_error(
            error,
            "init_box",
            f"must be 4 numbers (x, y, w, h) in pixels, got {box!r}",
            cli=f"must be X,Y,W,H in pixels, got {box!r}",
        ) from None
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        raise option_error(
            error,
            "init_box",
            f"must be 4 finite numbers (x, y, w, h) in pixels with w, h > 0, got {box!r}",
            cli=f"must be 4 finite numbers X,Y,W,H with W, H > 0, got {box!r}",
        )
    return b


def check_box_in_frame(box: np.ndarray, shape: tuple[int, ...]) -> None:
    """A given first box must cover some of the first frame: one wholly outside it would be
    tracked as a face there (FLL's points in the frame's padding)."""
    x, y, w, h = (float(v) for v in box)
    height, width = shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise OptionError(
            "init_box",
            f"({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {width}x{height} frame",
            cli=f"{x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} frame",
        )


Mode = Literal["crct", "fll-mt", "bt"]
MODES: tuple[str, ...] = ("crct", "fll-mt", "bt")
LOST_POINTS: tuple[str, ...] = ("fll", "bt")
State = Literal["tracked", "redetected", "lost"]


@dataclass(frozen=True)
class TrackerConfig:
    """The paper's defaults (CRCT IV): TB = 1.0, TC = 0.5, SeqBT = 2."""

    tb: float = 1.0
    tc: float = 0.5
    seq_bt: int = 2
    mode: str = "crct"
    relaxed_redetect: bool = True
    reacquire: int = 25  #: 0: never (the paper's gate always)
    redetect_fallback: bool = True
    check_refined: bool = True  #: FV also checks FLL's refined points (see the module docstring)
    lost_points: str = "fll"  #: a lost frame's points: "fll" in the held box, or "bt" (BT's)
    redetect_on_loss: bool = True  #: MTCNN in the frame where FV first rejects (module doc)
    lost_follow: bool = True  #: a lost run's FLL follows its own last points (module doc)
    gate_growth: float = GATE_GROWTH  #: eq. 8's TB widens per lost frame (module doc)
    lost_flip: bool = LOST_FLIP  #: FLL's mirrored pass where FV rejected BT (module doc)
    lost_doubted: bool = True  #: a look at once FV turned down may still give the points
    likeness: float = LIKENESS  #: a re-found face must look like the followed one (0: off)
    find: bool = FIND  #: the face finder looks where MTCNN finds nothing (module doc)


class Networks(Protocol):
    """What the tracker needs from the networks; boxes are (x, y, w, h) landmark boxes."""

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]: ...

    def bt_step(
        self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]: ...

    def validate(self, image: np.ndarray, points: np.ndarray) -> float: ...

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        """FLL's points in ``box``; ``mirrored`` (asked only with ``TrackerConfig.lost_flip``):
        averaged with its reading of the mirrored crop."""
        ...


@dataclass
class TrackResult:
    points: np.ndarray | None
    box: np.ndarray | None
    score: float | None
    state: State


def box_distance_ratio(previous: np.ndarray, candidate: np.ndarray) -> float:
    """Eq. 8: centre distance divided by the size (diagonal) of the previous box."""
    pc = previous[:2] + previous[2:] / 2
    cc = candidate[:2] + candidate[2:] / 2
    return float(np.linalg.norm(cc - pc) / max(1e-6, float(np.hypot(*previous[2:]))))


def gate_detections(
    detections: list[Detection], previous: np.ndarray | None, tb: float
) -> np.ndarray | None:
    """Eq. 8: the detection nearest ``previous`` if its ratio is below TB, else None."""
    if not detections:
        return None
    if previous is None:
        return max(detections, key=lambda d: d.score).box
    ratios = [box_distance_ratio(previous, d.box) for d in detections]
    best = int(np.argmin(ratios))
    return detections[best].box if ratios[best] < tb else None


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes (x, y, w, h) on one face: centres closer than half the smaller one's side.
    By centres, as eq. 8 compares boxes: the finder's size is rougher than MTCNN's, and a box
    of the wrong size on the right face is still that face (an IoU test would part them)."""
    side = min(float(np.sqrt(a[2] * a[3])), float(np.sqrt(b[2] * b[3])))
    return bool(np.linalg.norm((a[:2] + a[2:] / 2) - (b[:2] + b[2:] / 2)) < 0.5 * side)


@dataclass(frozen=True)
class Detect:
    """Algorithm 1 asks for face detections in ``image`` (answer: ``list[Detection]``);
    ``relaxed``: the detector's more sensitive settings, to re-find a lost face."""

    image: np.ndarray
    relaxed: bool = False


@dataclass(frozen=True)
class Find:
    """The face finder's look for a lost face around ``box``, the last box FV accepted
    (answer: ``list[Detection]``, at most one; networks without a finder answer ``[]``)."""

    image: np.ndarray
    box: np.ndarray


@dataclass(frozen=True)
class TrackBox:
    """BT from ``box`` on (prev, cur) with LSTM ``state`` (answer: ``(points, state)``)."""

    prev: np.ndarray
    cur: np.ndarray
    box: np.ndarray
    state: Any


@dataclass(frozen=True)
class Validate:
    """FV's probability that ``points`` lie on a face in ``image`` (answer: ``float``)."""

    image: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class Localize:
    """FLL's 68 points in ``box`` of ``image`` (answer: ``(68, 2)`` array); ``mirrored``:
    averaged with its reading of the mirrored crop (``TrackerConfig.lost_flip``)."""

    image: np.ndarray
    box: np.ndarray
    mirrored: bool = False


Request = Detect | Find | TrackBox | Validate | Localize
#: One frame of Algorithm 1: yields requests, receives their answers, returns the result.
Plan = Generator[Request, Any, TrackResult]


def answer(nets: Networks, request: Request) -> Any:
    """Answer one request from one face's networks."""
    if isinstance(request, Detect):
        if request.relaxed:
            return nets.detect(request.image, relaxed=True)
        return nets.detect(request.image)
    if isinstance(request, Find):
        find = getattr(nets, "find", None)
        return [] if find is None else find(request.image, request.box)
    if isinstance(request, TrackBox):
        return nets.bt_step(request.prev, request.cur, request.box, request.state)
    if isinstance(request, Validate):
        return nets.validate(request.image, request.points)
    if request.mirrored:
        return nets.localize(request.image, request.box, mirrored=True)
    return nets.localize(request.image, request.box)


def run_plan(plan: Plan, nets: Networks) -> TrackResult:
    """Drive one plan to its end, answering every request at once."""
    try:
        request = next(plan)
        while True:
            request = plan.send(answer(nets, request))
    except StopIteration as stop:
        return stop.value


@dataclass
class CRCTTracker:
    nets: Networks | None
    config: TrackerConfig = field(default_factory=TrackerConfig)
    init_box: np.ndarray | None = None
    # Algorithm 1 state
    b0: np.ndarray | None = field(default=None, init=False)
    box: np.ndarray | None = field(default=None, init=False)  # b_t, the last valid box
    redetect: bool = field(default=False, init=False)
    seq_t: int = field(default=0, init=False)
    hidden: Any = field(default=None, init=False)
    prev_image: np.ndarray | None = field(default=None, init=False)
    redetections: int = field(default=0, init=False)
    lost_run: int = field(default=0, init=False)  # lost frames, less the valid ones since
    lost_box: np.ndarray | None = field(default=None, init=False)  # the last lost points' box
    thumbnail: np.ndarray | None = field(default=None, init=False)  # the last followed face's
    new_shot: bool = field(default=False, init=False)  # a cut came: this frame's gate is open

    def __post_init__(self) -> None:
        if self.config.mode not in MODES:
            raise ValueError(f"unknown mode {self.config.mode!r}")
        if self.config.lost_points not in LOST_POINTS:
            raise ValueError(f"lost_points must be fll or bt, got {self.config.lost_points!r}")
        if (reacquire := self.config.reacquire) < 0:
            raise ValueError(f"reacquire must be >= 0 frames (0: never), got {reacquire}")
        check_gate_growth(self.config.gate_growth, ValueError)
        check_likeness(self.config.likeness, ValueError)

    @property
    def gate(self) -> float:
        """Eq. 8's TB for this frame's re-detection: open (infinite) once the track has been
        lost ``reacquire`` frames, net of the valid frames in between."""
        reacquire = self.config.reacquire
        if self.new_shot or (reacquire and self.lost_run >= reacquire):
            return float("inf")
        return self.config.tb + self.config.gate_growth * self.lost_run

    @property
    def started(self) -> bool:
        return self.b0 is not None

    def cut(self) -> None:
        """A shot cut (:mod:`crct_cli.tracking.shots`): the next frame looks for the face over
        the whole frame (eq. 8's gate open for that frame, the detection nearest the held box
        first, ``likeness`` not asked: the target is whoever the new shot shows), as
        ``reacquire`` would after a long loss, and BT starts afresh. Where nothing is found
        that frame goes on as any other: a camera's jump within a shot can look like a cut,
        and the face is then still followed from where it was."""
        if self.b0 is None:  # not started: the next frame looks anyway
            return
        self.redetect, self.new_shot, self.lost_box = True, True, None

    def step(self, image: np.ndarray) -> TrackResult:
        """One frame, the networks called one after the other for this face."""
        if self.nets is None:
            raise ValueError("step() needs networks; a tracker without them is driven by plan()")
        return run_plan(self.plan(image), self.nets)

    def plan(self, image: np.ndarray) -> Plan:
        """Algorithm 1 on one frame, as requests to the networks (see the module docstring)."""
        try:
            if self.b0 is None:
                result = yield from self._initialise(image)
                return result if result is not None else TrackResult(None, None, None, "lost")
            if self.config.mode == "fll-mt":
                return (yield from self._step_fll_mt(image))
            return (yield from self._step_crct(image))
        finally:
            self.prev_image = image
            self.new_shot = False

    def _initialise(self, image: np.ndarray) -> Generator[Request, Any, TrackResult | None]:
        """Find b0 and answer its frame with FLL in b0, in every mode: BT needs a previous frame."""
        if self.init_box is not None:
            b0 = np.asarray(self.init_box, dtype=np.float64)
        else:
            detections = yield Detect(image)
            if not detections:
                return None
            b0 = max(detections, key=lambda d: d.score).box  # not every detector sorts
        self.b0 = b0
        points = yield Localize(image, b0)
        self.box = box_from_points(points)
        self.seq_t, self.hidden, self.redetect = 0, None, False
        self._remember(image, points)
        return TrackResult(points, self.box, None, "redetected")

    def _step_fll_mt(self, image: np.ndarray) -> Plan:
        """Tracking by detection (the paper's FLL-MT baseline): MTCNN every frame + FLL."""
        tb = math.inf if self.new_shot else self.config.tb  # a cut's frame: wherever it is
        found = gate_detections((yield Detect(image)), self.box, tb)
        if found is None:  # no acceptable detection: FLL at the held box, flagged lost
            assert self.box is not None  # _initialise gave it one; this mode never drops it
            points = yield Localize(image, self.box)
            return TrackResult(points, box_from_points(points), None, "lost")
        points = yield Localize(image, found)
        self.box = box_from_points(points)
        return TrackResult(points, self.box, None, "tracked")

    def _step_crct(self, image: np.ndarray) -> Plan:
        cfg = self.config
        assert self.prev_image is not None
        redetected_now = False
        refinding = self.redetect  # lost last frame: whatever is accepted now is a re-find
        pb = self.box
        if self.redetect:  # lines 3-8
            found = yield from self._detect_near(image, self.gate)
            if found is not None:
                pb, redetected_now = found, True
                self.redetections += 1
        if pb is None:  # lines 9-10
            assert self.b0 is not None  # plan() steps only a started tracker
            pb = self.b0
        if self.redetect or self.seq_t > cfg.seq_bt:  # lines 11-12
            self.hidden, self.seq_t = None, 0
        points_bt, self.hidden = yield TrackBox(self.prev_image, image, pb, self.hidden)
        box_bt = box_from_points(points_bt)  # line 14
        if cfg.mode == "bt":  # BT alone: no validation, no refinement
            self.box = box_bt
            self.seq_t += 1
            self.redetect = False  # only a cut asks BT alone to look (CRCTTracker.cut)
            return TrackResult(
                points_bt, box_bt, None, "redetected" if redetected_now else "tracked"
            )
        score = float((yield Validate(image, points_bt)))
        if refinding and score >= cfg.tc and self._unlike(image, points_bt):
            # a face, but not the one followed (re-detected, or standing in the held box):
            # as if FV had turned it down
            score = 0.0
        # a frame whose face FV doubts: FLL reads it mirrored too (not in the paper)
        mirrored = cfg.lost_flip and score < cfg.tc
        doubted: tuple[np.ndarray, float] | None = None
        if score < cfg.tc and cfg.redetect_on_loss and not self.redetect:
            found_now = yield from self._look_at_once(image, mirrored)
            if isinstance(found_now, TrackResult):
                return found_now
            doubted = found_now
        if score < cfg.tc:  # lines 15-16
            fallback = redetected_now and cfg.redetect_fallback
            points, lost_score = points_bt, score
            if fallback or cfg.lost_points == "fll":  # FLL in Pb: the detection, or held box
                fll_points = yield Localize(image, pb, mirrored)
                fll_score = float((yield Validate(image, fll_points)))
                if fallback and fll_score >= cfg.tc:
                    if not self._unlike(image, fll_points):
                        return self._restart_from(fll_points, fll_score, image)
                    fll_score = -1.0  # another face: the held box's answer is written instead
                if redetected_now and cfg.lost_points == "fll" and self.box is not None:
                    # FV turned the detection down: the held box may still hold the face
                    held_points = yield Localize(image, self.box, mirrored)
                    held_score = float((yield Validate(image, held_points)))
                    if held_score > fll_score:
                        fll_points, fll_score = held_points, held_score
                if doubted is not None and doubted[1] > fll_score:
                    fll_points, fll_score = doubted
                if cfg.lost_follow and self.lost_box is not None:
                    follow_points = yield Localize(image, self.lost_box, mirrored)
                    follow_score = float((yield Validate(image, follow_points)))
                    if follow_score > fll_score:
                        fll_points, fll_score = follow_points, follow_score
                if cfg.lost_points == "fll":
                    points, lost_score = fll_points, fll_score
            return self._lost(points, lost_score)
        points = yield Localize(image, box_bt)  # lines 18-21
        if cfg.check_refined:  # not in the paper: FV's look at what FLL made of BT's box
            refined = float((yield Validate(image, points)))
            if refined < cfg.tc:
                return self._lost(points, refined)
        self.box = box_from_points(points)
        self.seq_t += 1
        self.redetect = False
        self.lost_box = None
        self.lost_run = 0 if redetected_now else max(0, self.lost_run - 1)
        self._remember(image, points)
        return TrackResult(points, self.box, score, "redetected" if redetected_now else "tracked")

    def _detect_near(
        self, image: np.ndarray, gate: float
    ) -> Generator[Request, Any, np.ndarray | None]:
        """Eq. 8 within ``gate`` around the last valid box, on MTCNN's usual look and, when that
        keeps nothing and ``relaxed_redetect`` is on, on its more sensitive look; with
        ``find``, the face finder's answer around that box joins MTCNN's pick, and eq. 8 takes
        the nearer of the two."""
        found = gate_detections((yield Detect(image)), self.box, gate)
        if found is None and self.config.relaxed_redetect and self.box is not None:
            found = gate_detections((yield Detect(image, relaxed=True)), self.box, gate)
        if self.config.find and self.box is not None:
            finds = yield Find(image, self.box)
            candidates = [d for d in finds if found is None or not same_face(d.box, found)]
            if found is not None:  # MTCNN's box, where both found the same face
                candidates.append(Detection(found, found.copy(), 1.0))
            found = gate_detections(candidates, self.box, gate)
        return found

    def _look_at_once(
        self, image: np.ndarray, mirrored: bool = False
    ) -> Generator[Request, Any, TrackResult | tuple[np.ndarray, float] | None]:
        """Not in the paper (``redetect_on_loss``): the face was followed until this frame, so
        it is looked for in this frame rather than from the next one; FLL in the detection
        that eq. 8's gate keeps (:meth:`_detect_near`), checked by FV. None: nothing found;
        (points, score) when FV rejects them (``lost_doubted``: the lost frame may still take
        them), else None."""
        found = yield from self._detect_near(image, self.config.tb)
        if found is None:
            return None
        points = yield Localize(image, found, mirrored)
        score = float((yield Validate(image, points)))
        if score < self.config.tc:  # the lost frame's points may still be these
            return (points, score) if self.config.lost_doubted else None
        if self._unlike(image, points):
            return None
        self.redetections += 1
        return self._restart_from(points, score, image)

    def _lost(self, points: np.ndarray, score: float) -> TrackResult:
        """A lost frame: the held box stays, the next frame re-detects."""
        self.redetect = True
        self.lost_run += 1
        box = box_from_points(points)
        if self.config.lost_follow and self.config.lost_points == "fll":
            self.lost_box = box
        return TrackResult(points, box, score, "lost")

    def _restart_from(self, points: np.ndarray, score: float, image: np.ndarray) -> TrackResult:
        """FLL's points in a fresh detection, accepted by FV: their box is the valid one, and
        BT starts afresh on the next frame."""
        self.box = box_from_points(points)
        self.hidden, self.seq_t, self.redetect, self.lost_run = None, 0, False, 0
        self.lost_box = None
        self._remember(image, points)
        return TrackResult(points, self.box, score, "redetected")

    def _remember(self, image: np.ndarray, points: np.ndarray) -> None:
        """Keep the followed face's thumbnail (``likeness``), from each frame it is followed in."""
        if self.config.likeness > 0:
            self.thumbnail = face_thumbnail(image, points)

    def _unlike(self, image: np.ndarray, points: np.ndarray) -> bool:
        """Not in the paper (``likeness``): a re-found face that does not look like the one
        followed. Not asked once ``reacquire`` has opened the gate: a face lost that long may
        have turned, and is taken back wherever it is, as before."""
        if self.config.likeness <= 0 or self.thumbnail is None or self.gate == float("inf"):
            return False
        return likeness(self.thumbnail, face_thumbnail(image, points)) < self.config.likeness
