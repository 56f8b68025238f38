"""crct from Python: one :class:`Tracker` that loads the shipped networks once.

    from crct_cli import Tracker

    tracker = Tracker(faces="all", device="cpu")
    for frame in tracker.track("talk.mp4"):          # PyAV decoding, streamed
        for face in frame.faces:                     # face.face_id, face.points (68, 2), ...
            print(frame.index, frame.time, face.face_id, face.state, face.points[30])
    frame = tracker.step(rgb)                        # a frame the caller decoded (webcam)
    faces = tracker.align("photo.jpg")               # still images: every face, FLL as crct align

``crct track`` and ``crct align`` are built on this class, so ``Tracker(faces=1)`` gives the
command line's points exactly. Points are image pixels with pixel centres counted from 0, as
OpenCV and dlib count them (300-W's .pts files count from 1: docs/formats.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crct_cli.aligner import VIDEO_FLL
from crct_cli.errors import CrctError, OptionError, whole_number
from crct_cli.io.atomic import make_output_folder
from crct_cli.io.sequence import SEQUENCE_FPS, check_fps
from crct_cli.pose import HeadPoser, check_focal
from crct_cli.runtime.nets import FINDER_WIDE, check_find_wide
from crct_cli.tracking.backtrack import BACKTRACK, check_backtrack
from crct_cli.tracking.bridge import BRIDGE_LOST, BRIDGE_MAX_RUN
from crct_cli.tracking.detector import MIN_FACE, MinFace, check_min_face
from crct_cli.tracking.frame_denoise import (
    TEMPORAL_DENOISE,
    FrameDenoiseConfig,
    FrameDenoiser,
    denoise_frames,
    frame_denoising,
)
from crct_cli.tracking.likeness import LIKENESS
from crct_cli.tracking.lookahead import LookAhead
from crct_cli.tracking.multi import Face, MultiConfig, MultiTracker, same_fields
from crct_cli.tracking.orientation import AUTO, choose_rotation, parse_rotate, turn
from crct_cli.tracking.shots import SHOT_CUTS, ShotCutConfig, ShotCutDetector
from crct_cli.tracking.smoothing import (
    LOOKAHEAD,
    SMOOTH,
    FaceSmoother,
    SmoothConfig,
    TwoSidedConfig,
)
from crct_cli.tracking.tracker import (
    BT_REUSE,
    FIND,
    GATE_GROWTH,
    LOST_FLIP,
    LOST_POINTS,
    MODES,
    STRETCHED_LOOK,
    TrackerConfig,
    check_box_in_frame,
    check_bt_reuse,
    check_gate_growth,
    check_gates,
    check_init_box,
    check_likeness,
)

if TYPE_CHECKING:
    from crct_cli.batch.runner import BatchReport
    from crct_cli.batch.summary import VideoResult
    from crct_cli.io.video import Frame
    from crct_cli.tracking.pipeline import FrameRange

__all__ = ["Face", "TrackedFrame", "Tracker", "parse_faces", "track_videos"]

#: What :meth:`Tracker.track` tracks: a video file or folder of images, or frames in memory.
VideoSource = str | os.PathLike[str] | np.ndarray | Iterable[np.ndarray]

#: Memory the frames waiting for a video's first face may take (``Tracker(backfill=...)``).
BACKFILL_MB = 200


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's faces. ``index`` counts decoded frames from 0; ``time`` is in seconds;
    ``cut``: the frame starts a new shot (``Tracker(shot_cuts=True)``)."""

    index: int
    time: float
    faces: list[Face]
    image: np.ndarray | None = None  # the RGB frame, when the tracker decoded it
    cut: bool = False

    def face(self, face_id: int) -> Face | None:
        return next((f for f in self.faces if f.face_id == face_id), None)

    def __eq__(self, other: object) -> bool:
        """Equal when every field is, faces and image by their values, as :class:`Face`
        (the generated ``==`` asked an array's truth and raised)."""
        return same_fields(self, other) if isinstance(other, TrackedFrame) else NotImplemented


def check_lost_points(lost_points: str) -> None:
    """``--lost-points`` / ``lost_points`` is one of :data:`LOST_POINTS`, or a clear error."""
    if lost_points not in LOST_POINTS:
        raise OptionError(
            "lost_points",
            f"must be 'fll' or 'bt', got {lost_points!r}",
            cli=f"must be fll or bt, got {lost_points!r}",
        )


def parse_faces(value: int | str | None) -> int | None:
    """``--faces`` / ``faces``: a positive count, or ``all`` (None; Python's None too)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value) if isinstance(value, str) else _whole(value)  # 2.5 and True are not
    except (TypeError, ValueError):
        raise _faces_error(value) from None
    if n is None:
        raise _faces_error(value)
    if n < 1:
        raise _faces_error(value)
    return n


def _whole(value: Any) -> int | None:
    """A count (of frames, of faces) as Python keywords take it: 5.0 as before they were
    checked, not 2.5 nor True (``detect_every=2.5`` looked on every fifth frame)."""
    return whole_number(value, floats=True)


def _option_frames(option: str, value: Any, least: int | None = None, note: str = "") -> int:
    """A keyword that counts frames, as an int (:func:`_whole`), ``least`` or more (None: its
    own check says how many): ``temporal_radius=2.5`` was taken, then failed mid-track on
    noisy footage only, where the filter ran."""
    whole = _whole(value)
    if whole is None or (least is not None and whole < least):
        words = "a whole number of frames" if least is None else f"a whole number >= {least}"
        raise OptionError(option, f"must be {words}{note}, got {value!r}")
    return whole


def _option_numbers(**given: Any) -> list[float]:
    """Keywords that take a number, in the order given, as Python's own int or float (numpy's
    scalars too: :meth:`Tracker.describe` is written as JSON); a string, None or a bool is
    refused here, by name, not left to fail in a comparison as a ``TypeError``."""
    out: list[float] = []
    for option, value in given.items():
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise OptionError(option, f"must be a number, got {value!r}")
        out.append(int(value) if isinstance(value, numbers.Integral) else float(value))
    return out


def _option_switches(**given: Any) -> list[bool]:
    """Keywords that turn something on or off, in the order given, as bools: True or False
    (1 and 0, numpy's too); a string is refused, not read by its truth (``shot_cuts="False"``
    from a config file turned the cuts on)."""
    out: list[bool] = []
    for option, value in given.items():
        if not isinstance(value, bool | np.bool_) and whole_number(value) not in (0, 1):
            raise OptionError(option, f"must be True or False, got {value!r}")
        out.append(bool(value))
    return out


def _faces_error(value: object) -> OptionError:
    """Python's ``faces`` also takes None for every face; the command line's ``--faces`` a
    number or ``all`` alone."""
    return OptionError(
        "faces",
        f"must be a positive number, 'all' or None, got {value!r}",
        cli=f"must be a positive number or 'all', got {value!r}",
    )


class Tracker:
    """68-point landmarks for every face of a video, a webcam stream or a still image.

    ``faces``: 1 (the papers' single target, the default), a count, or ``"all"``.
    ``mode``: ``crct`` (BT + FV + FLL, Algorithm 1), ``fll-mt`` (MTCNN every frame + FLL) or
    ``bt`` (BT alone). ``denoise``: ``none`` or FADeNN's ``d``, ``s``, ``m``. ``tb``, ``tc``
    and ``seq_bt`` are the paper's TB, TC and SeqBT; ``detect_every`` and ``max_lost`` (frames)
    govern how faces are found and ended when there can be several. ``int8``: on the CPU, BT
    and FLL's first stage run on int8 graphs (a frame's networks about 1.3x faster; the
    points written are still FLL's float32 second stage's); ``align`` is always float32.
    ``relaxed_redetect``: a lost face that MTCNN does not find again (or at once, with
    ``redetect_on_loss``) is looked for once more with MTCNN's more sensitive settings
    (degraded footage; still gated by eq. 8 and FV).
    ``min_face``: the smallest face MTCNN looks for, in pixels of the frame (20, its own
    default), or ``"N%"`` of each frame's (each photo's) shorter side, for footage of many
    sizes: larger makes detection faster on large frames (HD video, big photos) and leaves
    smaller faces (a crowd behind a speaker) unfound; a tracked face that shrinks below it is
    still followed by BT, but not re-found by MTCNN.
    ``stretched_look``: when that more sensitive look finds nothing, it looks at the frame
    once more with each colour channel stretched to the full range (a washed-out or
    colour-cast face); gated and checked the same way.
    ``reacquire``: once lost this many frames (each valid frame between takes one off), the
    single target takes the detection nearest its held box wherever it is (0: eq. 8's gate
    always, as in the paper).
    ``redetect_fallback``: when FV rejects BT's estimate from a fresh detection, FLL in the
    detection box gets a chance, checked by FV in turn.
    ``redetect_on_loss``: when FV rejects BT's estimate on a frame that followed a valid one,
    MTCNN looks for the face in that frame at once (not from the next), FLL in its box, FV
    checking (``False``: the paper's re-detection from the next frame).
    ``check_refined``: FV also checks FLL's refined points; below ``tc`` the frame is lost
    after all (one more FV call a frame; ``False``: the paper's single look, at BT's estimate).
    ``lost_points``: what a lost frame's points are: ``fll``, FLL's in the last box FV accepted
    (a face that is only hard to see has seldom moved far), or ``bt``, BT's rejected estimate
    (the paper's).
    ``lost_follow``: from a lost run's second frame, FLL also reads where the last lost frame's
    points were, and FV's score picks between that answer and the held box's (a face moving
    on under a shadow is followed; the held box, BT's start and eq. 8's centre, stays).
    ``lost_flip``: on a frame where FV rejects BT's estimate, FLL also reads the mirrored face
    and averages (``flip`` on those frames only; one more FLL pass there).
    ``lost_doubted``: when the look at once (``redetect_on_loss``) finds a face FV turns
    down, FLL's points there may still be the lost frame's, if FV scores them above the held
    box's answer (and a lost run follows them from there); the held box stays.
    ``gate_growth``: eq. 8's TB widens by this much per lost frame (net of valid frames), so
    that a face lost in a fast move is taken back where it went; one face only (0.2 by
    default; 0: the paper's fixed gate).
    ``find`` (on by default): when a lost face is looked for, the face finder
    (``weights/finder.pt``) looks for it around the box it was last seen in, beside MTCNN (of
    two different faces found, eq. 8 takes the nearer); eq. 8 and FV check what it finds.
    Weights without a finder track without it (a warning).
    ``find_wide``: where the finder's window holds no face, it looks again at a window this
    many times as wide, at the same scale (a face that went further in a fast burst; 0: no
    second look).
    ``video_fll`` (on by default): FLL's first stage is the one trained on motion-smeared faces
    too (``weights/fll_video.pt``, where the weights ship one), as a moving face smears in
    video; False: ``fll.pt``, the still-image first stage of :meth:`align` (with ``denoise``,
    FADeNN's own FLL either way).

    ``likeness``: a face re-found near where the one followed was lost must look like it (the
    correlation of their small eye-levelled grey thumbnails at least this), or it is taken
    for a neighbour and turned down as FV's rejection would be; not asked once ``reacquire``
    has opened the gate (0: no check; :mod:`crct_cli.tracking.likeness`).
    ``blend``: the points are the mean of FLL's two stages (no extra cost; ``crct align``
    blends them too), rather than the second stage's alone.
    ``flip``: FLL also reads the mirrored crops and averages (``crct align``'s default): FLL
    costs twice as much, for steadier points.
    ``bt_reuse``: when a face's box moved less than this share of its side since the last
    frame, BT cuts this frame at the last frame's box and reuses that crop's features for its
    previous crop: half of BT's work on most frames of real video (0: never, the paper's
    crops; :class:`crct_cli.tracking.networks.CRCTNetworks`).
    ``smooth``: each face's shape (its points once the pose is taken out) goes through a One
    Euro filter while the track goes on, its pose never delayed: steadier points that still
    follow a fast head and a fast mouth (:mod:`crct_cli.tracking.smoothing`); ``smooth_cutoff``
    (Hz, lower is steadier) and ``smooth_beta`` (higher follows fast expressions more closely)
    tune it; ``False``: every frame's points as the networks gave them.
    ``lookahead``: with ``smooth``, :meth:`track` (a video file, where the frames after each
    one are there to read) smooths each face's shape and its steady pose over the frames on
    both sides instead, a third of a second each way, with no lag (``TwoSidedConfig`` in
    :mod:`crct_cli.tracking.smoothing`); :meth:`step`, a live stream, has the causal filter.
    ``backtrack``: with ``lookahead``, when a lost face is found again, :meth:`track` follows it
    backwards (Algorithm 1 run back in time from the re-found face) into up to this many of the
    frames it was lost in, and those the validator accepts get its points, state ``tracked``
    (:mod:`crct_cli.tracking.backtrack`; 0: never).
    ``bridge_lost``: with ``lookahead``, once a lost face is followed again, :meth:`track` gives
    each frame of its lost run (up to :data:`~crct_cli.tracking.bridge.BRIDGE_MAX_RUN` frames,
    fewer for large frames: :func:`~crct_cli.tracking.bridge.max_run_for`)
    the shape interpolated between the frames around the run, at that shape's size, where the
    run's own points put the face along each axis they are not squeezed in
    (:mod:`crct_cli.tracking.bridge`).
    ``backfill``: :meth:`track` only: when a video's first frames show no face the detector
    can find, up to this many of them (and :data:`BACKFILL_MB` of pixels) wait for the first
    face, and then get FLL's points in that face's first box, marked ``lost`` (0: they stay
    without a face, as in the paper).
    ``temporal_denoise`` (on by default): footage noisy throughout (a dim webcam, a dark room:
    each frame's noise ``noise_threshold`` grey levels or more for a second) is averaged, pixel
    by pixel, with the ``temporal_radius`` frames on each side (:meth:`track`; :meth:`step` and
    a track without ``lookahead``: the frames before) where those frames agree with it up to
    the noise (``temporal_strength`` times it): the noise goes, a moving edge stays. Anything
    else passes untouched (:mod:`crct_cli.tracking.frame_denoise`). The networks and
    ``overlay.mp4`` see the filtered frames.
    ``sequence_fps``: :meth:`track` reads a folder of images as one video (an image
    sequence, in the natural order of the file names: :mod:`crct_cli.io.sequence`), its
    frames this many a second apart (the folder stores no rate; a video file has its own).
    ``rotate``: every frame is turned this many degrees clockwise (0, 90, 180 or 270) before
    the networks read it, for a video lying on its side without a tag that says so (a phone's
    tag is applied already); ``"auto"``: :meth:`track` looks at a video's first frames in all
    four quarter turns and keeps the one in which the detector finds a face most surely
    (:meth:`step`: from the first frame with a face in some turn). Points, boxes and
    ``TrackedFrame.image`` are in the turned frame's pixels; :attr:`rotation` is the turn used
    (:mod:`crct_cli.tracking.orientation`).
    ``shot_cuts`` (on by default): a frame that differs from the one before in both layout
    and colours starts a new shot (:mod:`crct_cli.tracking.shots`; ``TrackedFrame.cut``):
    every track ends there and faces are looked for afresh, as on a video's first frame, so a
    face of the new shot gets a new id (the single target, face 0, takes the face found
    nearest where it was, however far, and where none is found goes on from there), and no
    filter, look back or backfill reads across it. ``cut_correlation`` and
    ``cut_histogram`` are :class:`~crct_cli.tracking.shots.ShotCutConfig`'s thresholds.
    ``pose``: each face with points also gets ``face.pose``, its head pose (Tx, Ty, Tz in mm,
    Rx, Ry, Rz in radians: pitch, yaw, roll) from a rigid 3D face fitted to its 68 points
    (``weights/face3d.json``; :mod:`crct_cli.pose`), for a camera of ``focal_length`` pixels
    (None: 500 at 640x480, scaled with the frame, the guess for an uncalibrated webcam).
    ``networks`` replaces the shipped networks (anything with the one-face ``Networks`` or
    the batched calls); ``blend``, ``flip``, ``bt_reuse``, ``stretched_look``, ``find_wide``
    and ``video_fll`` are then theirs to decide.
    """

    def __init__(
        self,
        faces: int | str | None = 1,
        device: str = "auto",
        *,
        mode: str = "crct",
        denoise: str = "none",
        tb: float = 1.0,
        tc: float = 0.5,
        seq_bt: int = 2,
        detect_every: int = 10,
        max_lost: int = 40,
        init_box: Any = None,
        backend: str = "auto",
        int8: bool = True,
        relaxed_redetect: bool = True,
        stretched_look: bool = STRETCHED_LOOK,
        reacquire: int = 25,
        redetect_fallback: bool = True,
        check_refined: bool = True,
        redetect_on_loss: bool = True,
        lost_points: str = "fll",
        lost_follow: bool = True,
        lost_flip: bool = LOST_FLIP,
        lost_doubted: bool = True,
        gate_growth: float = GATE_GROWTH,
        likeness: float = LIKENESS,
        find: bool = FIND,
        find_wide: float = FINDER_WIDE,
        video_fll: bool = VIDEO_FLL,
        backfill: int = 50,
        blend: bool = True,
        flip: bool = False,
        bt_reuse: float = BT_REUSE,
        smooth: bool = SMOOTH,
        smooth_cutoff: float = SmoothConfig.min_cutoff,
        smooth_beta: float = SmoothConfig.beta,
        lookahead: bool = LOOKAHEAD,
        backtrack: int = BACKTRACK,
        bridge_lost: bool = BRIDGE_LOST,
        temporal_denoise: bool = TEMPORAL_DENOISE,
        temporal_radius: int = FrameDenoiseConfig.radius,
        temporal_strength: float = FrameDenoiseConfig.strength,
        noise_threshold: float = FrameDenoiseConfig.threshold,
        sequence_fps: float = SEQUENCE_FPS,
        rotate: int | str = 0,
        min_face: MinFace = MIN_FACE,
        shot_cuts: bool = SHOT_CUTS,
        cut_correlation: float = ShotCutConfig.correlation,
        cut_histogram: float = ShotCutConfig.histogram,
        pose: bool = False,
        focal_length: float | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        networks: Any = None,
    ) -> None:
        if mode not in MODES:
            raise OptionError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        # every number and switch as Python's own, or a CrctError naming it, before the checks
        # of each one's range below (and the classes below them) compare or count with it
        detect_every = _option_frames("detect_every", detect_every, 1)
        max_lost = _option_frames("max_lost", max_lost, 0)
        reacquire = _option_frames("reacquire", reacquire, 0, " frames (0: never)")
        backfill = _option_frames("backfill", backfill, 0, " frames (0: none)")
        seq_bt, backtrack = _option_frames("seq_bt", seq_bt), _option_frames("backtrack", backtrack)
        temporal_radius = _option_frames("temporal_radius", temporal_radius)
        tb, tc, gate_growth, likeness, find_wide, bt_reuse = _option_numbers(
            tb=tb,
            tc=tc,
            gate_growth=gate_growth,
            likeness=likeness,
            find_wide=find_wide,
            bt_reuse=bt_reuse,
        )
        smooth_cutoff, smooth_beta, temporal_strength, noise_threshold = _option_numbers(
            smooth_cutoff=smooth_cutoff,
            smooth_beta=smooth_beta,
            temporal_strength=temporal_strength,
            noise_threshold=noise_threshold,
        )
        sequence_fps, cut_correlation, cut_histogram = _option_numbers(
            sequence_fps=sequence_fps, cut_correlation=cut_correlation, cut_histogram=cut_histogram
        )
        if focal_length is not None:  # None: the guess for an uncalibrated webcam
            (focal_length,) = _option_numbers(focal_length=focal_length)
        (int8, relaxed_redetect, stretched_look, redetect_fallback, check_refined) = (
            _option_switches(
                int8=int8,
                relaxed_redetect=relaxed_redetect,
                stretched_look=stretched_look,
                redetect_fallback=redetect_fallback,
                check_refined=check_refined,
            )
        )
        redetect_on_loss, lost_follow, lost_flip, lost_doubted, find, video_fll = _option_switches(
            redetect_on_loss=redetect_on_loss,
            lost_follow=lost_follow,
            lost_flip=lost_flip,
            lost_doubted=lost_doubted,
            find=find,
            video_fll=video_fll,
        )
        blend, flip, smooth, lookahead, bridge_lost, temporal_denoise, shot_cuts, pose = (
            _option_switches(
                blend=blend,
                flip=flip,
                smooth=smooth,
                lookahead=lookahead,
                bridge_lost=bridge_lost,
                temporal_denoise=temporal_denoise,
                shot_cuts=shot_cuts,
                pose=pose,
            )
        )
        check_lost_points(lost_points)
        check_gates(tb, tc, seq_bt)
        check_gate_growth(gate_growth)
        check_likeness(likeness)
        check_find_wide(find_wide, CrctError)
        check_bt_reuse(bt_reuse)
        check_fps(sequence_fps)
        check_focal(focal_length)  # also without pose, as the command line checks it
        cuts = ShotCutConfig(correlation=cut_correlation, histogram=cut_histogram)
        cuts.check(OptionError)
        #: finds shot cuts in the frames tracked (None: ``shot_cuts`` off)
        self.cut_detector = ShotCutDetector(cuts) if shot_cuts else None
        #: the smallest face MTCNN looks for, px
        self.min_face = check_min_face(min_face)
        #: :meth:`track`: frames a second given to a folder of images (a video file has its own)
        self.sequence_fps = float(sequence_fps)
        #: the clockwise quarter turn asked for (0, 90, 180, 270 or "auto")
        self.rotate = parse_rotate(rotate)
        #: the clockwise turn the frames last tracked were given
        self.rotation = 0 if self.rotate == AUTO else int(self.rotate)
        self._step_turn: int | None = None if self.rotate == AUTO else int(self.rotate)
        smoothing = SmoothConfig(min_cutoff=smooth_cutoff, beta=smooth_beta)
        smoothing.check()
        self.smooth = smooth
        self.smoother = FaceSmoother(smoothing) if smooth else None
        check_backtrack(backtrack)
        self.lookahead = lookahead
        #: :meth:`track`'s two-sided filter (None: the causal one, as :meth:`step` has)
        self.two_sided = TwoSidedConfig() if smooth and lookahead else None
        #: :meth:`track`: lost frames a re-found face may be followed back into
        self.backtrack = backtrack if lookahead else 0
        #: :meth:`track`: the longest lost run given the shape around it (0: none)
        self.bridge_lost = bridge_lost and lookahead
        self.bridge = BRIDGE_MAX_RUN if self.bridge_lost else 0
        self.backfill = backfill
        #: the temporal filter's settings (None: ``temporal_denoise`` off)
        self.frame_denoise = frame_denoising(
            temporal_denoise, temporal_radius, temporal_strength, noise_threshold
        )
        self._step_denoiser = (
            None if self.frame_denoise is None else FrameDenoiser(self.frame_denoise, False)
        )
        self.blend, self.flip, self.bt_reuse = blend, flip, bt_reuse
        self.stretched_look = stretched_look
        self.find_wide = find_wide
        self.video_fll = video_fll
        self.config = TrackerConfig(
            tb=tb,
            tc=tc,
            seq_bt=seq_bt,
            mode=mode,
            relaxed_redetect=relaxed_redetect,
            reacquire=reacquire,
            redetect_fallback=redetect_fallback,
            check_refined=check_refined,
            redetect_on_loss=redetect_on_loss,
            lost_points=lost_points,
            lost_follow=lost_follow,
            lost_flip=lost_flip,
            lost_doubted=lost_doubted,
            gate_growth=gate_growth,
            likeness=likeness,
            find=find,
        )
        self.multi = MultiConfig(parse_faces(faces), detect_every, max_lost)
        self.init_box = None if init_box is None else check_init_box(init_box)
        self.denoise = denoise
        if networks is None:
            from crct_cli.aligner import TRACK_ALIGN
            from crct_cli.tracking.networks import CRCTNetworks

            networks = CRCTNetworks(
                device,
                mode,
                weights_dir=_weights_dir(weights_dir),
                denoise=denoise,
                backend=backend,
                int8=int8,
                align=dataclasses.replace(TRACK_ALIGN, blend=blend, flip=flip),
                bt_reuse=bt_reuse,
                stretched_look=stretched_look,
                find=find,
                find_wide=find_wide,
                video_fll=video_fll,
                min_face=self.min_face,
            )
            if find and networks.finder is None:  # no finder in these weights (a warning)
                self.config = dataclasses.replace(self.config, find=False)
        self.networks = networks
        #: each face's head pose from its points (None: not asked for)
        self.pose = HeadPoser(_weights_dir(weights_dir), focal_length) if pose else None
        self._engine = MultiTracker(networks, self.config, self.multi, self.init_box)
        self._index = 0
        self._clock: float | None = None
        #: :meth:`step`'s last frame: its time, the causal filter's time for it and the last
        #: interval between two frames that was more than 0 s (None before a second frame)
        self._step_time: tuple[float, float, float | None] | None = None
        self._size: tuple[int, int] | None = None  #: the frames' (H, W) since reset()
        self._still_aligner: Any = None
        #: held while a :meth:`track` runs: one video at a time (the faces' state is one)
        self._busy = threading.Lock()

    # -- video --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every face: the next frame starts a new video (ids from 0 again), and
        :attr:`timings` start afresh."""
        if self._busy.locked():  # a track() paused in its loop would go on from nothing
            raise CrctError(_BUSY)
        self._reset()
        timings = getattr(self.networks, "timings", None)
        if isinstance(timings, dict):
            timings.clear()

    def _reset(self) -> None:
        self._engine.reset()
        if self.cut_detector is not None:
            self.cut_detector.reset()
        if self.smoother is not None:
            self.smoother.reset()
        if self._step_denoiser is not None:
            self._step_denoiser.reset()
        self._index, self._clock, self._size, self._step_time = 0, None, None, None
        if self.rotate == AUTO:
            self._step_turn = None

    def step(self, rgb: np.ndarray, time_s: float | None = None) -> TrackedFrame:
        """Track one RGB uint8 frame (H, W, 3) that follows the previous one (grey (H, W)
        and RGBA (H, W, 4) are read as RGB).

        ``time_s`` defaults to the seconds since the first frame after :meth:`reset`. A time
        before the previous frame's is refused (nothing changes): a video's times only go
        forward, and a new video starts with :meth:`reset`. A time equal to the previous
        frame's (a camera that stamps two frames alike) is kept as ``frame.time``, while the
        smoothing reads the frame as the last interval between two frames after the one
        before (``1 / sequence_fps`` before any): a One Euro filter cannot read a speed over
        no time, and a filter started afresh on each such frame smoothed nothing. The
        tracker keeps the frame until the next one (BT reads both), so it keeps a copy: a
        capture loop may decode every frame into one buffer. Every frame until :meth:`reset`
        has the first one's size (a frame of another size is an error: its points would be
        read at the old scale). A new video starts with :meth:`reset`, also after
        :meth:`track`, whose faces (and frame numbers) step would otherwise carry on.
        """
        image = _check_image(rgb)
        seconds = None if time_s is None else _seconds(time_s)
        size = (image.shape[0], image.shape[1])
        if self._size is not None and size != self._size:
            raise CrctError(
                f"frame {self._index}: {size[1]}x{size[0]}, but the frames before were "
                f"{self._size[1]}x{self._size[0]} (reset() starts a new video)"
            )
        if not self._busy.acquire(blocking=False):  # a track() runs, or another step()
            raise CrctError(_BUSY)
        try:
            return self._step(image, size, seconds)
        finally:
            self._busy.release()

    def _step(self, image: np.ndarray, size: tuple[int, int], time_s: float | None) -> TrackedFrame:
        """:meth:`step` on a frame checked: what could refuse it is asked before the tracker
        takes its size and clock, so that a refused frame leaves the tracker as it was."""
        now = time.perf_counter()
        clock = now if self._clock is None else self._clock
        t = now - clock if time_s is None else time_s
        timed = self._step_timed(t, time_s is not None)
        image = self._step_turned(image.copy())
        if self.init_box is not None and self._engine.frame_no == 0:
            check_box_in_frame(self.init_box, image.shape)  # before any filter keeps the frame
        self._clock, self._size, self._step_time = clock, size, timed
        if self._step_denoiser is not None:  # the frames before this one only: a live stream
            from crct_cli.io.video import Frame

            (done,) = self._step_denoiser.push(Frame(self._index, t, image))
            image = done.image
        cut = self._new_shot(image)
        faces = self._smoothed(self._engine_step(image), timed[1])
        frame = TrackedFrame(self._index, t, _detached(self._posed(faces, image.shape)), cut=cut)
        self._index += 1
        return frame

    def _step_timed(self, t: float, given: bool) -> tuple[float, float, float | None]:
        """:meth:`step`'s record of a frame at ``t`` seconds (``given``: as ``time_s``): ``t``,
        the causal filter's time for it and the last interval of more than 0 s; a ``t`` before
        the previous frame's is refused, before anything has changed."""
        if self._step_time is None:
            return t, t, None
        last, filtered, interval = self._step_time
        if t < last:
            when = f"time_s={t:g}" if given else f"{t:g} s since the first frame (no time_s)"
            raise CrctError(
                f"frame {self._index}: {when} is before the frame before's time, {last:g} s; "
                "a video's times only go forward: reset() starts a new video"
            )
        if t > last:  # the usual frame: its own interval, remembered
            return t, filtered + (t - last), t - last
        # a repeated stamp: the interval seen last (a camera's), else sequence_fps's
        return t, filtered + (interval or 1.0 / self.sequence_fps), interval

    def _step_turned(self, image: np.ndarray) -> np.ndarray:
        """:meth:`step`'s frame turned by ``rotate``; with ``"auto"`` the turn is chosen on the
        first frame in which some quarter turn shows a face, and kept until :meth:`reset`."""
        angle = self._step_turn
        if angle is None:
            angle, found = choose_rotation([image], self.networks.detect)
            if found:
                self._step_turn = angle
        self.rotation = angle
        return turn(image, angle) if angle else image

    def orientation(self, video: VideoSource, skip_frames: int = 0) -> int:
        """The clockwise quarter turn :meth:`track` gives ``video``'s frames: ``rotate`` when
        it is a number; with ``"auto"``, the turn in which the detector finds a face most surely
        in the first frames after ``skip_frames`` that show one in some turn (up to 20 s in:
        :func:`~crct_cli.tracking.orientation.look_for_turn`). A file, a folder of images, an
        array or a list (any iterable that can be read again) of frames; not a one-shot
        iterator (a generator), which the look would use up: :meth:`track` looks at its
        frames as it reads them, and :attr:`rotation` then says the turn taken."""
        if isinstance(video, bytes):  # a path as the OS gives it
            video = os.fsdecode(video)
        _check_source(video, "orientation")
        if self.rotate != AUTO:
            return int(self.rotate)
        return self._look_for_turn(video, skip_frames)

    def _look_for_turn(self, video: VideoSource, skip_frames: int) -> int:
        """``"auto"``'s turn for a file, a folder of images, or frames that can be read again
        (an array, a list), read apart from :meth:`track`'s reading."""
        from crct_cli.io.arrays import is_frame_source, iter_arrays
        from crct_cli.io.video import iter_frames
        from crct_cli.tracking.orientation import look_for_turn
        from crct_cli.tracking.pipeline import FrameRange

        if isinstance(video, Iterator):  # read here, its frames would be gone for track()
            raise CrctError(
                "orientation() reads a file, a folder of images, an array or a list of frames; "
                f"a {type(video).__name__} can be read only once: give it to track(frames, "
                "rotate='auto'), which looks at its frames as it tracks them, and read "
                "tracker.rotation"
            )
        skip = FrameRange.of(skip_frames).skip
        if is_frame_source(video):
            frames = iter_arrays(video, self.sequence_fps, _check_image, None, skip)
        else:
            frames = iter_frames(Path(video), None, self.sequence_fps, skip)
        with contextlib.closing(frames):
            return look_for_turn(frames, self.networks.detect, hold=False)[0]

    def track(
        self,
        video: VideoSource | bytes,
        max_frames: int | None = None,
        skip_frames: int = 0,
        rotate: int | str | None = None,
        *,
        images: bool = True,
    ) -> Generator[TrackedFrame, None, None]:
        """Every frame of ``video`` (a file, or a folder of images: ``sequence_fps``) with its
        faces, decoded and tracked one at a time (frames before the first face wait for it:
        ``backfill``). With ``lookahead`` each frame comes out once the frames a third of a
        second after it are tracked too (the two-sided filter reads them), and while a face is
        lost, once it is found again (``backtrack``). ``skip_frames``: the first frames are
        not tracked (a long skip seeks: ``crct_cli.io.video.iter_frames``); ``max_frames``:
        at most that many frames after them (the frames keep their index and time).

        ``video`` may also be frames decoded already: a (frames, H, W, 3) uint8 array (grey:
        (frames, H, W)) or an iterable of arrays as :meth:`step` takes them (a generator over a
        capture, another decoder's frames), read on this thread and tracked as a file is,
        looking ahead and back; frame ``i`` is ``i / sequence_fps`` seconds in, as in a folder
        of images. ``rotate``: this video's turn instead of the tracker's (a number, or
        ``"auto"``; :meth:`orientation` says which turn ``"auto"`` takes). ``images=False``:
        ``frame.image`` is None and no copy of a frame is made for it, for frames kept after
        the loop (``list(track(...))``), which would otherwise hold every picture (6 MB a
        1080p frame).

        The arguments are checked here, at the call (a missing file, a bad count or turn, paths
        where frames belong, a tracker still held by another ``track()``); an iterator is not
        read until its frames are asked for (a camera's generator starts nothing at the call),
        so a path among its items is refused as it is read. The generator returned decodes and
        tracks, and holds the tracker, once iterated."""
        from crct_cli.tracking.pipeline import FrameRange

        if isinstance(video, bytes):  # a path as the OS gives it
            video = os.fsdecode(video)
        count = None if max_frames is None else whole_number(max_frames)  # numpy's too
        if count is not None and count < 0:
            raise OptionError(
                "max_frames", f"must be 0 or more (0: none, None: every frame), got {max_frames!r}"
            )
        # max_frames=0 asks for nothing (FrameRange's count is 1 or more); skip_frames is still
        # a whole number, 0 or more, and max_frames not a whole number is refused there
        span = FrameRange.of(skip_frames, None if count == 0 else max_frames)
        angle = self.rotate if rotate is None else parse_rotate(rotate)
        if not isinstance(images, bool | np.bool_) and whole_number(images) not in (0, 1):
            raise CrctError(f"images must be True or False, got {images!r}")  # Python's alone
        _check_source(video)
        if self._busy.locked():  # a track() paused in its loop, or running in another thread
            raise CrctError(_BUSY)
        if count == 0:
            return _no_frames()
        return self._tracked(video, span, angle, bool(images))

    def _tracked(
        self, video: VideoSource, span: FrameRange, angle: int | str, images: bool
    ) -> Generator[TrackedFrame, None, None]:
        """:meth:`track`'s frames, its arguments checked: the tracker is held from the first
        frame asked for to the last (or ``close()``), not while the generator waits unstarted,
        whose ``finally`` would never run."""
        if not self._busy.acquire(blocking=False):
            raise CrctError(_BUSY)
        try:
            for frame in self._finished(video, span, angle):
                if self.pose is not None:
                    assert frame.image is not None
                    frame = dataclasses.replace(
                        frame, faces=self._posed(frame.faces, frame.image.shape)
                    )
                image = self._image_out(frame) if images else None
                yield dataclasses.replace(frame, faces=_detached(frame.faces), image=image)
        finally:
            self._busy.release()

    def _image_out(self, frame: TrackedFrame) -> np.ndarray | None:
        """``frame.image`` for the caller: a copy while the tracker may still read the frame
        (BT's previous frame, the temporal filter's neighbours: the latest frames tracked),
        so that drawing on it moves no later point; a frame that comes out later (looked
        ahead of, followed back into) goes as it is, with no copy."""
        read = 1 if self.frame_denoise is None else 1 + self.frame_denoise.radius
        if frame.image is None or frame.index < self._index - read:
            return frame.image
        return frame.image.copy()

    def _finished(
        self, video: VideoSource, span: FrameRange, angle: int | str
    ) -> Iterator[TrackedFrame]:
        """:meth:`track`'s frames with their final points (the two-sided filter's, if on)."""
        if not self.lookahead:
            yield from self._track(video, span, angle, causal=True)
            return
        ahead: LookAhead[TrackedFrame] = LookAhead(
            self.networks, self.config, self.backtrack, self.two_sided, self.bridge
        )
        for frame in self._track(video, span, angle, causal=False):
            assert frame.image is not None
            if frame.cut:  # nothing looks ahead or back across a cut
                for done, faces in ahead.flush():
                    yield dataclasses.replace(done, faces=faces)
                ahead = LookAhead(
                    self.networks, self.config, self.backtrack, self.two_sided, self.bridge
                )
            for done, faces in ahead.push(frame, frame.time, frame.image, frame.faces):
                yield dataclasses.replace(done, faces=faces)
        for done, faces in ahead.flush():
            yield dataclasses.replace(done, faces=faces)

    def _track(
        self, video: VideoSource, span: FrameRange, angle: int | str, causal: bool
    ) -> Iterator[TrackedFrame]:
        """:meth:`track`'s frames before any two-sided filter (``causal``: the One Euro
        filter's points, as :meth:`step` gives), turned by ``angle`` (``"auto"``: as the first
        frames show)."""
        from crct_cli.io.arrays import is_frame_source, iter_arrays
        from crct_cli.io.video import iter_frames, prefetch_frames
        from crct_cli.tracking.orientation import look_for_turn, turn_frames

        self._reset()
        waiting: list[TrackedFrame] = []  # the first frames, faceless, while a face may come
        found = self.backfill == 0
        frames: Iterator[Frame]
        if in_memory := is_frame_source(video):  # decoded by the caller, read on its thread
            frames = iter_arrays(video, self.sequence_fps, _check_image, span.count, span.skip)
        else:
            frames = iter_frames(Path(video), span.count, self.sequence_fps, span.skip)
        if angle == AUTO and isinstance(video, Iterator):
            angle, frames = look_for_turn(frames, self.networks.detect)  # held while looked at
        elif angle == AUTO:  # a file, an array, a list: looked at apart, as orientation() says
            angle = self._look_for_turn(video, span.skip)
        self.rotation = int(angle)
        frames = turn_frames(frames, self.rotation)
        if self.frame_denoise is not None:  # in the decoding thread, beside the networks
            frames = denoise_frames(frames, self.frame_denoise, two_sided=not causal)
        for decoded in frames if in_memory else prefetch_frames(frames):
            if self._size is None:  # as step() would have been given it: before the turn
                height, width = decoded.image.shape[:2]
                self._size = (width, height) if self.rotation in (90, 270) else (height, width)
            cut = self._new_shot(decoded.image)
            if cut:  # the shot before: its faceless frames stay so, the next shot's may wait
                yield from waiting
                waiting.clear()
                found = self.backfill == 0
            faces = self._engine_step(decoded.image)
            if causal:
                faces = self._smoothed(faces, decoded.time)
            self._index = decoded.index + 1
            frame = TrackedFrame(decoded.index, decoded.time, faces, decoded.image, cut)
            if found:
                yield frame
            elif any(f.points is not None for f in faces):
                found = True
                for early in waiting:
                    assert early.image is not None  # every frame waiting was decoded here
                    carried = self._engine.carry_back(early.image, faces)
                    yield dataclasses.replace(early, faces=carried)
                waiting.clear()
                yield frame
            else:
                waiting.append(frame)
                room = min(self.backfill, BACKFILL_MB * 2**20 // decoded.image.nbytes)
                while len(waiting) > room:
                    yield waiting.pop(0)
        yield from waiting  # no face in the whole video

    def _new_shot(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot; if so every face's track ends here, and so
        does the causal filter's run."""
        if self.cut_detector is None or not self.cut_detector(image):
            return False
        self._engine.cut()
        if self.smoother is not None:
            self.smoother.reset()
        return True

    @property
    def cuts(self) -> int:
        """Shot cuts found since the last reset (0 with ``shot_cuts`` off)."""
        return 0 if self.cut_detector is None else self.cut_detector.cuts

    def _engine_step(self, image: np.ndarray) -> list[Face]:
        """The faces of the next frame (a given first box checked against the first frame)."""
        if self.init_box is not None and self._engine.frame_no == 0:
            check_box_in_frame(self.init_box, image.shape)
        return self._engine.step(image)

    def _smoothed(self, faces: list[Face], time_s: float) -> list[Face]:
        return faces if self.smoother is None else self.smoother(faces, time_s)

    def _posed(self, faces: list[Face], shape: tuple[int, ...]) -> list[Face]:
        """``faces`` with the head pose of those that have points (when ``pose`` is on)."""
        head = self.pose
        if head is None:
            return faces
        height, width = shape[:2]
        return [
            f if f.points is None else dataclasses.replace(f, pose=head(f.points, width, height))
            for f in faces
        ]

    @property
    def redetections(self) -> int:
        """Re-detections (Algorithm 1, lines 3-8) since the last reset, over all faces."""
        return self._engine.redetections

    @property
    def timings(self) -> dict[str, list[float]]:
        """Seconds per call of each network since the tracker was made or :meth:`reset`
        (shipped networks only): the latest calls, up to 20,000 each (a webcam loop runs for
        hours; :class:`~crct_cli.tracking.networks.CallTimes`). A copy: the tracker's own
        record goes on."""
        timings = getattr(self.networks, "timings", None) or {}
        return {name: times.copy() for name, times in timings.items()}

    @property
    def weight_files(self) -> dict[str, str]:
        return dict(getattr(self.networks, "weight_files", {}))

    def describe(self, stepwise: bool = False) -> dict[str, Any]:
        """The configuration, as written into ``track.json``; ``stepwise``: as :meth:`step`
        applies it (``crct live``), which reads no frame ahead, so looking ahead, the backward
        pass, bridging and backfill are recorded off, as they were."""
        if stepwise:
            off = {"lookahead": False, "backtrack": 0, "bridge_lost": False, "backfill": 0}
            return {**self.describe(), **off}
        return {
            **dataclasses.asdict(self.config),
            "faces": self.multi.faces,
            "detect_every": self.multi.detect_every,
            "max_lost": self.multi.max_lost,
            "denoise": self.denoise,
            "init_box": None if self.init_box is None else self.init_box.tolist(),
            "backfill": self.backfill,
            "blend": self.blend,
            "flip": self.flip,
            "bt_reuse": self.bt_reuse,
            "stretched_look": self.stretched_look,
            "find_wide": self.find_wide if self.config.find else 0.0,
            "video_fll": self.video_fll,
            "smooth": self.smooth,
            "smooth_cutoff": None if self.smoother is None else self.smoother.config.min_cutoff,
            "smooth_beta": None if self.smoother is None else self.smoother.config.beta,
            "lookahead": self.lookahead,
            "backtrack": self.backtrack,
            "bridge_lost": self.bridge_lost,
            "temporal_denoise": self.frame_denoise is not None,
            "temporal_radius": None if self.frame_denoise is None else self.frame_denoise.radius,
            "temporal_strength": (
                None if self.frame_denoise is None else self.frame_denoise.strength
            ),
            "noise_threshold": None if self.frame_denoise is None else self.frame_denoise.threshold,
            "sequence_fps": self.sequence_fps,
            "rotate": self.rotate,
            "min_face": self.min_face,
            "shot_cuts": self.cut_detector is not None,
            "cut_correlation": (
                None if self.cut_detector is None else self.cut_detector.config.correlation
            ),
            "cut_histogram": (
                None if self.cut_detector is None else self.cut_detector.config.histogram
            ),
            "pose": self.pose is not None,
            "focal_length": None if self.pose is None else self.pose.focal,
        }

    # -- still images ---------------------------------------------------------------------

    def align(
        self,
        image: np.ndarray | str | bytes | os.PathLike[str],
        boxes: Any = None,
        rotate: int | str | None = None,
    ) -> list[Face]:
        """Every face of a still image, most confident first (ids 0, 1, ...), as ``crct align``.

        ``boxes`` (N, 4) ``x, y, w, h`` of the 68 points skips detection (the papers' protocol).
        FLL runs with the mirrored pass and the blend of its two stages, like ``crct align``.
        ``rotate``: the image is turned this many degrees clockwise for the networks (``"auto"``:
        the quarter turn in which the detector finds a face most surely; not with ``boxes``);
        None: the tracker's ``rotate``. Points and boxes (``boxes`` too) are in the image's own
        pixels, whatever the turn; :attr:`rotation` is the turn used, except while a
        :meth:`track` is under way (paused in its loop, or in another thread): align() changes
        nothing of a track's state, and :attr:`rotation` stays the turn of its frames, which a
        caller reads to draw on them. Each face's ``state`` is
        ``"redetected"`` (found in this image, not followed from a frame before) and its
        ``score`` FV's p(face), low where a box given holds no face.
        """
        from crct_cli.align_images import StillInput, boxes_outside, check_still_rotate
        from crct_cli.landmarks import box_from_points

        angle = check_still_rotate(self.rotate if rotate is None else rotate, boxes is not None)
        if isinstance(image, bytes):  # a path as the OS gives it
            image = os.fsdecode(image)
        if isinstance(image, str | os.PathLike):
            from crct_cli.io.images import read_image

            image = read_image(Path(image))
        several = _several_images(image)
        if several is not None:
            raise CrctError(
                f"align() takes one image, its path or its pixels (an RGB uint8 array), got "
                f"{several}: call align() once per image (crct align reads a folder of photos)"
            )
        image = _check_image(image)
        if boxes is None:
            given = StillInput.detected(image, self.networks.detect, angle)
        else:
            given_boxes = _check_boxes(boxes)
            outside = boxes_outside(given_boxes, image.shape)
            if outside:
                x, y, w, h = given_boxes[outside[0]]
                raise CrctError(
                    f"boxes[{outside[0]}] ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the "
                    f"{image.shape[1]}x{image.shape[0]} image"
                )
            given = StillInput.boxed(image, given_boxes, int(angle))
        if not self._busy.locked():  # a track's frames are in its turn: rotation says so
            self.rotation = given.clockwise
        if len(given.boxes) == 0:
            return []
        points = self._aligner()(given.turned, given.boxes)
        scores: list[float | None] = [None] * len(points)
        if self.config.mode == "crct":
            scores = [float(s) for s in self._engine.batch.validate_batch(given.turned, points)]
        points = [given.back(p) for p in points]
        faces = [
            Face(i, p, box_from_points(p), s, "redetected")
            for i, (p, s) in enumerate(zip(points, scores, strict=True))
        ]
        return self._posed(faces, image.shape)

    def _aligner(self) -> Any:
        if self._still_aligner is None:
            runtime = getattr(self.networks, "runtime", None)
            if runtime is None:  # injected networks: their own FLL
                self._still_aligner = self._engine.batch.localize_batch
            else:
                from crct_cli.aligner import STILL_ALIGN

                self._still_aligner, _, _ = runtime.aligner(self.denoise, STILL_ALIGN)
        return self._still_aligner


#: :meth:`Tracker.track` or :meth:`Tracker.step` while a ``track()`` of the same tracker runs
_BUSY = (
    "this Tracker is already tracking a video (a track() not yet finished: iterate it to the "
    "end or close() it first); to track videos side by side or in threads, give each its own "
    "Tracker"
)


def _detached(faces: list[Face]) -> list[Face]:
    """``faces`` with arrays of their own: the tracker goes on from its boxes and points, so
    what a caller does to the ones it is given (``box[2:] += box[:2]``) must not reach it."""
    return [
        dataclasses.replace(
            f,
            points=None if f.points is None else f.points.copy(),
            box=None if f.box is None else f.box.copy(),
        )
        for f in faces
    ]


def _no_frames() -> Generator[TrackedFrame, None, None]:
    """``track(video, max_frames=0)``: a generator, as every ``track()`` returns, of nothing."""
    yield from ()


def _check_source(video: VideoSource, caller: str = "track") -> None:
    """What :meth:`Tracker.track` (or ``caller``) was given, checked at the call: a path that
    names something (also with ``max_frames=0``, which reads nothing from it: a typo is still
    a typo), or one video's frames in memory, not several videos' paths."""
    from crct_cli.io.arrays import is_frame_source

    if not is_frame_source(video):
        if not Path(video).exists():
            raise CrctError(f"{video}: no such file or folder")
        return
    several = _several_paths(video)
    if several is not None:
        batch = ", or crct_cli.track_videos(paths, out) to write each one's landmarks"
        raise CrctError(
            f"{caller}() takes one video, got {several}: {caller}() each in turn"
            + (batch if caller == "track" else "")
        )
    if not isinstance(video, np.ndarray | Iterable) and not hasattr(video, "__getitem__"):
        raise CrctError(
            f"{caller}() takes one video, its path or its frames (an array, or an iterable of "
            f"arrays), got {type(video).__name__}"
        )


def _several_paths(given: Any) -> str | None:
    """``given`` in words where it holds several paths, or is a mapping (iterated, its keys),
    as given to :meth:`Tracker.track` or :meth:`Tracker.align` for several videos or photos:
    else their items were refused one by one as frames ("got <U32 ()")."""
    if isinstance(given, Mapping):
        return f"a {type(given).__name__}"
    if isinstance(given, list | tuple | AbstractSet) and given:
        if all(isinstance(item, str | bytes | os.PathLike) for item in given):
            return f"a {type(given).__name__} of {_count(len(given), 'path')}"
    return None


def _several_images(given: Any) -> str | None:
    """``given`` in words where it holds several images (paths, arrays) or is a mapping, as
    given to :meth:`Tracker.align`, which takes one."""
    several = _several_paths(given)
    if several is not None:
        return several
    if isinstance(given, np.ndarray) and given.ndim == 4:
        return f"an array of {_count(len(given), 'image')}, shape {given.shape}"
    if isinstance(given, list | tuple) and given:
        if all(isinstance(item, np.ndarray) and item.ndim >= 3 for item in given):
            return f"a {type(given).__name__} of {_count(len(given), 'array')}"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _weights_dir(value: str | os.PathLike[str] | None) -> Path:
    from crct_cli.models.weights import WEIGHTS_DIR, check_weights_folder

    if value is None:
        check_weights_folder(WEIGHTS_DIR)  # $CRCT_WEIGHTS named wrong: one line
        return WEIGHTS_DIR
    if not Path(value).is_dir():  # before anything warns about what the folder lacks
        raise CrctError(f"weights_dir {value}: no such folder")
    return Path(value)


def _seconds(time_s: Any) -> float:
    """:meth:`Tracker.step`'s ``time_s``, checked before the frame changes anything."""
    try:
        seconds = float(time_s)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise CrctError(f"time_s must be a finite number of seconds, got {time_s!r}")
    return seconds


def _check_image(rgb: Any) -> np.ndarray:
    """An RGB uint8 (H, W, 3) frame; grey (H, W) or (H, W, 1) is repeated into three channels
    and RGBA's alpha dropped, as image files are read (a grey camera, a PNG's frames). Other
    types are refused, not rescaled: whether floats run 0-1 or 0-255 is the caller's to say."""
    if isinstance(rgb, str | bytes | os.PathLike):  # in a list or generator of frames
        raise CrctError(
            f"a frame must be an image's pixels (a uint8 array), got a path, "
            f"{os.fsdecode(rgb)!r}: read it first (crct_cli.io.images.read_image), or give "
            "track() the folder of images by its path"
        )
    image = np.asarray(rgb)
    if image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise CrctError(
            "a frame must be a uint8 array, RGB (H, W, 3), grey (H, W) or RGBA (H, W, 4); "
            f"got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        height, width = image.shape[:2]
        raise CrctError(f"a frame must be at least 2x2 pixels, got {width}x{height}")
    return np.ascontiguousarray(image)


def _check_boxes(boxes: Any) -> np.ndarray:
    """``align(boxes=...)``: (N, 4) finite ``x, y, w, h`` with w, h > 0 (one box: 4 numbers)."""
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise CrctError(f"boxes must be (N, 4) numbers x, y, w, h; got {boxes!r}") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise CrctError(f"boxes must be (N, 4) numbers x, y, w, h; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 2:] <= 0):
        raise CrctError("boxes must be finite x, y, w, h with w, h > 0")
    return arr


def track_videos(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overlay: bool = False,
    crops: int = 0,
    pts: bool = True,
    csv_style: str = "crct",
    pts_origin: int = 0,
    overwrite: bool = False,
    max_frames: int | None = None,
    skip_frames: int = 0,
    workers: int | None = None,
    threads: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    on_result: Callable[[VideoResult], None] | None = None,
    progress: bool = False,
    **options: Any,
) -> BatchReport:
    """Track many videos into ``out`` as ``crct track INPUT... --out OUT`` does, from Python.

    ``inputs``: videos, image-sequence folders or folders searched recursively, laid out under
    ``out`` as the command lays them (one lone video: ``out`` itself), with ``summary.csv``;
    videos an earlier run completed with the same settings are skipped (``overwrite`` redoes
    them). ``pts=False`` is ``--no-pts`` (landmarks.csv and track.json, no ``.pts`` file a
    frame); ``csv_style="openface"`` is ``--csv-style openface`` (landmarks.csv in OpenFace
    FeatureExtraction's own layout); ``pts_origin=1`` is ``--pts-origin 1`` (every ``.pts`` file
    counts pixel centres from 1, 300-W's convention, as menpo's importer and eos read them;
    track.json and landmarks.csv keep crct's 0). ``skip_frames`` and ``max_frames`` (which
    frames of each video), ``workers``, ``threads``, ``engine`` ("local" or "ray"),
    ``ray_address`` and ``gpus_per_worker`` are the command's options of those names;
    ``options`` are :class:`Tracker`'s keywords (``faces="all"``, ``pose=True``...), each
    worker's tracker.
    ``on_result(result)`` is called as each video finishes; one that raises stops the batch
    as Ctrl-C does, its exception raised here (a bug of the caller's is not put down to a
    video), with ``summary.csv`` written, the videos done kept and the rest ``pending`` for a
    rerun. ``progress`` shows the command's line per video on stderr, and on a terminal its
    bars.

    Returns the run's :class:`~crct_cli.batch.runner.BatchReport` (``.results``, one
    :class:`~crct_cli.batch.summary.VideoResult` per video with its ``status``: ok, no_face,
    or failed with its ``error``; a video an earlier run completed has ``skipped=True`` and
    that run's status, and ``on_result`` is not called for it). ``out/summary.csv`` is
    written for one video too (the command prints a table instead). A bad video fails alone,
    as on the command line; bad options raise :class:`CrctError` before anything is written,
    an unknown keyword ``TypeError``. Worker processes are spawned, so a script calls it under
    ``if __name__ == "__main__":`` (each worker imports the script as it starts; unguarded,
    the workers leave at once, quietly, and this call raises :class:`CrctError` saying so).
    """
    from crct_cli import batch
    from crct_cli.batch.discover import discover
    from crct_cli.batch.local import UNGUARDED_EXIT, starting_from_script
    from crct_cli.batch.runner import BatchOptions
    from crct_cli.io.landmarks import check_pts_origin
    from crct_cli.io.openface_csv import check_csv_style
    from crct_cli.tracking.pipeline import FrameRange

    if starting_from_script():  # a worker importing an unguarded script: the parent says why
        raise SystemExit(UNGUARDED_EXIT)

    check_tracker_options(options)
    check_csv_style(csv_style)
    pts_origin = check_pts_origin(pts_origin)
    span = FrameRange.of(skip_frames, max_frames)
    run = BatchOptions(engine, workers, threads, overwrite, ray_address, gpus_per_worker).check()
    if options.get("weights_dir") is not None:  # workers elsewhere (Ray) see absolute paths
        options["weights_dir"] = Path(options["weights_dir"]).absolute()
    paths = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not paths:
        raise CrctError("track_videos: no input given")
    jobs = discover([Path(p) for p in paths], Path(out))
    listener = _ResultCallback(on_result)
    bars: Any = contextlib.nullcontext()
    if progress:
        from rich.console import Console

        from crct_cli.ui import BatchProgress

        bars = BatchProgress(Console(stderr=True, highlight=False), len(jobs))
    with bars as display:
        listener.display = display
        factory = batch.NETWORKS_FACTORY
        return run_videos(
            jobs,
            Path(out),
            options,
            overlay,
            run,
            crops,
            listener,
            factory,
            span,
            pts,
            csv_style,
            pts_origin,
        )


def check_tracker_options(options: dict[str, Any]) -> None:
    """Refuse what every worker's :class:`Tracker` would refuse, before any worker starts:
    an unknown keyword (``TypeError``, as a call would), a bad value (:class:`CrctError`)."""
    import inspect

    from crct_cli.aligner import check_denoise
    from crct_cli.runtime.backend import resolve_engine

    known = set(inspect.signature(Tracker).parameters) - {"networks"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected tracker option(s): {', '.join(unknown)}")
    # the device and backend as each worker will resolve them (CUDA there, onnxruntime...)
    resolve_engine(options.get("backend", "auto"), options.get("device", "auto"))
    weights_dir = options.get("weights_dir")
    if weights_dir is not None and not Path(weights_dir).is_dir():
        raise CrctError(f"weights_dir {weights_dir}: no such folder")
    check_denoise(options.get("denoise", "none"))
    Tracker(networks=_NOT_LOADED, **options)  # every other keyword, focal_length's too


#: Stands for the networks while :func:`check_tracker_options` checks a Tracker's options.
_NOT_LOADED = object()


class _ResultCallback:
    """Hands each finished video's result to ``on_result``, and every event to ``display``
    (the command's bars) when there is one."""

    def __init__(self, on_result: Callable[[VideoResult], None] | None) -> None:
        self.on_result = on_result
        self.display: Any = None

    def skipped(self, count: int) -> None:
        if self.display is not None:
            self.display.skipped(count)

    def started(self, slot: int, job: Any) -> None:
        if self.display is not None:
            self.display.started(slot, job)

    def frame(self, slot: int, done: int, total: int | None) -> None:
        if self.display is not None:
            self.display.frame(slot, done, total)

    def warned(self, slot: int, line: str) -> None:
        if self.display is not None:
            self.display.warned(slot, line)

    def finished(self, slot: int, job: Any, result: VideoResult) -> None:
        if self.display is not None:
            self.display.finished(slot, job, result)
        if self.on_result is not None:
            self.on_result(result)


def run_videos(
    jobs: list[Any],
    out: Path,
    tracker_options: dict[str, Any],
    overlay: bool,
    run: Any,
    crops: int,
    display: Any,
    networks_factory: Callable[[], Any] | None = None,
    frames_in: FrameRange | None = None,
    pts: bool = True,
    csv_style: str = "crct",
    pts_origin: int = 0,
) -> BatchReport:
    """The batch run behind :func:`track_videos` and ``crct track``: hold ``out``, skip what is
    done, track the rest on the engine ``run`` (a :class:`~crct_cli.batch.runner.BatchOptions`)
    chooses, keep ``out/summary.csv``; ``display`` hears of each video; ``frames_in``: which
    frames of each (a :class:`~crct_cli.tracking.pipeline.FrameRange`, None: all); ``pts``:
    a ``.pts`` file per frame (``--no-pts``: landmarks.csv and track.json only);
    ``csv_style``: landmarks.csv's layout (``--csv-style``); ``pts_origin``: added to the
    points of every ``.pts`` file (``--pts-origin``)."""
    from crct_cli.batch.runner import exclusive_out, plan_batch, run_batch
    from crct_cli.batch.summary import SUMMARY_NAME
    from crct_cli.batch.worker import settings_of
    from crct_cli.geometry import check_crops

    check_crops(crops)
    make_output_folder(out)
    with exclusive_out(out):
        settings = settings_of(tracker_options, frames_in, csv_style, pts_origin)
        plan = plan_batch(jobs, settings, overlay, run.overwrite, crops, pts, run.flags)
        pixels = 0
        if run.workers is None and run.engine == "local" and len(plan.todo) > 1:
            from crct_cli.batch import frame_probe_sample, largest_frame

            pixels = largest_frame([job.source for job in frame_probe_sample(plan.todo)])
        engine = run.engine_for(
            tracker_options,
            overlay,
            max(1, len(plan.todo)),
            networks_factory,
            crops,
            frames_in,
            pixels,
            settings,
            pts,
        )
        return run_batch(plan, engine, display, out / SUMMARY_NAME)
