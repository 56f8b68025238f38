"""What ``crct benchmark`` compares: method specs and the seam through which methods run.

A method is written ``mode[+denoise-VARIANT]``: a tracker mode (``crct``, ``fll-mt``, ``bt``)
for videos or ``fll`` for still images, optionally with FADeNN's denoiser in front of the
localiser (``crct+denoise-m``, ``fll+denoise-s``). Denoise variants are accepted only when the
denoiser module :mod:`crct_cli.models.fadenn` is part of this crct.

The benchmark never builds networks itself: it asks a *factory* for a :class:`VideoMethod` or
an :class:`ImageMethod` per spec. The real factories below wrap the shipped networks; tests
pass fakes whose predictions are the ground truth plus known offsets, so the scoring is
checked exactly.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from crct_cli.aligner import STILL_ALIGN, TRACK_ALIGN, VIDEO_FLL
from crct_cli.errors import CrctError
from crct_cli.io.datasets import VideoSequence
from crct_cli.io.video import Frame
from crct_cli.runtime.iid import VARIANTS
from crct_cli.runtime.nets import FINDER_WIDE
from crct_cli.tracking.backtrack import BACKTRACK
from crct_cli.tracking.bridge import BRIDGE_LOST, BRIDGE_MAX_RUN
from crct_cli.tracking.detector import MIN_FACE, Detection, MinFace
from crct_cli.tracking.frame_denoise import (
    TEMPORAL_DENOISE,
    FrameDenoiseConfig,
    denoise_frames,
    frame_denoising,
)
from crct_cli.tracking.lookahead import LookAhead
from crct_cli.tracking.multi import Face
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
    MODES,
    STRETCHED_LOOK,
    CRCTTracker,
    Networks,
    TrackerConfig,
)

#: FADeNN's denoiser variants (issue 4): D (one DAE), S (single-task classifier), M (multi-task).
DENOISE_VARIANTS: tuple[str, ...] = VARIANTS
#: The still-image method: FLL from a box.
STILL_MODES: tuple[str, ...] = ("fll",)
#: The module whose presence enables ``+denoise-VARIANT`` methods.
DENOISER_MODULE = "crct_cli.models.fadenn"

Kind = Literal["video", "still"]
_DENOISE = re.compile(r"^denoise-([a-z]+)$")


@dataclass(frozen=True)
class MethodSpec:
    """One column of a results table: a mode and an optional denoiser variant."""

    mode: str
    denoise: str | None = None

    @property
    def name(self) -> str:
        return self.mode if self.denoise is None else f"{self.mode}+denoise-{self.denoise}"

    def __str__(self) -> str:
        return self.name


def denoiser_available() -> bool:
    """True once :mod:`crct_cli.models.fadenn` (the FADeNN denoiser) ships with crct."""
    try:
        return importlib.util.find_spec(DENOISER_MODULE) is not None
    except (ImportError, ValueError):
        return False


def default_methods(kind: Kind) -> str:
    """The papers' comparison: every tracker mode for videos, FLL for still images."""
    return ",".join(MODES) if kind == "video" else ",".join(STILL_MODES)


def parse_method(text: str, kind: Kind, denoise_ok: bool | None = None) -> MethodSpec:
    """``crct``, ``fll-mt``, ``crct+denoise-m``... -> :class:`MethodSpec`, or one-line error."""
    modes = MODES if kind == "video" else STILL_MODES
    mode, *extras = text.strip().split("+")
    if mode not in modes:
        where = "videos" if kind == "video" else "still images"
        raise CrctError(
            f"--methods: unknown method {text!r} for {where}; "
            f"use {', '.join(modes)}, optionally +denoise-{'|'.join(DENOISE_VARIANTS)}"
        )
    denoise: str | None = None
    for extra in extras:
        match = _DENOISE.match(extra)
        if match is None or match.group(1) not in (*DENOISE_VARIANTS, "none"):
            raise CrctError(
                f"--methods: {text!r}: expected mode+denoise-VARIANT with VARIANT one of "
                f"{', '.join(DENOISE_VARIANTS)}"
            )
        if denoise is not None:
            raise CrctError(f"--methods: {text!r} names the denoiser twice")
        denoise = match.group(1)
    if denoise == "none":
        denoise = None
    if denoise is not None:
        available = denoiser_available() if denoise_ok is None else denoise_ok
        if not available:
            raise CrctError(
                f"--methods: {text!r}: the FADeNN denoiser is not part of this crct yet "
                f"({DENOISER_MODULE.replace('.', '/')}.py)"
            )
    return MethodSpec(mode, denoise)


def parse_methods(text: str, kind: Kind, denoise_ok: bool | None = None) -> list[MethodSpec]:
    """A comma list of method specs, in order, without duplicates."""
    items = [t for t in (p.strip() for p in text.split(",")) if t]
    if not items:
        raise CrctError("--methods: give at least one method")
    specs = [parse_method(t, kind, denoise_ok) for t in items]
    names = [s.name for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise CrctError(f"--methods: {name} is listed twice")
    return specs


# --------------------------------------------------------------------------------------------
# The seam


@dataclass(frozen=True)
class FramePrediction:
    """A method's answer for one frame: 68 points and a box, either ``None`` when it has none,
    and, for a tracker that says so, how it came by them (``tracked``, ``redetected`` or
    ``lost``, as in track.json), so the benchmark can tell how far each state is to be trusted."""

    points: np.ndarray | None
    box: np.ndarray | None
    state: str | None = None


class VideoMethod(Protocol):
    """A tracker run over one sequence at a time: ``start`` then ``step`` per decoded frame."""

    def start(self, sequence: VideoSequence, init_box: np.ndarray | None) -> None:
        """Begin ``sequence``, forgetting the previous one; ``init_box`` (x, y, w, h) is the
        box to start from, or None to find the face itself. A method that replays stored
        predictions (another tool's output) can find them by ``sequence.name``."""
        ...

    def step(self, frame: Frame) -> FramePrediction: ...


def finish_sequence(method: VideoMethod) -> dict[int, FramePrediction]:
    """A method's revised answers once a sequence's frames are all in (frame index ->
    prediction): a method with a ``finish()`` (crct with ``--lookahead``, whose backtracking and
    two-sided filter read the frames after each one) gives them; any other answered every frame
    as it came."""
    finish = getattr(method, "finish", None)
    return {} if finish is None else dict(finish())


def frames_for(method: VideoMethod, frames: Iterator[Frame]) -> Iterator[Frame]:
    """A video's frames as ``method`` reads them: a method with a ``frames()`` (crct with
    ``--temporal-denoise``, whose filter reads the frames around each one) transforms them;
    any other reads them as decoded."""
    transform = getattr(method, "frames", None)
    return frames if transform is None else transform(frames)


class ImageMethod(Protocol):
    """A still-image aligner: faces from a detector or a given box, then 68 points."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def localize(self, image: np.ndarray, box: np.ndarray) -> np.ndarray: ...


VideoFactory = Callable[[MethodSpec], VideoMethod]
ImageFactory = Callable[[MethodSpec], ImageMethod]


class TrackerMethod:
    """The real video method: :class:`CRCTTracker` (Algorithm 1) over the given networks.

    With ``two_sided`` or ``backtrack`` (``crct track --lookahead``) it answers each frame
    unsmoothed as it comes and gives the answers ``crct track`` writes at :meth:`finish`.
    ``shot_cuts``: cuts are looked for as ``crct track --shot-cuts`` does (None: not).
    """

    def __init__(
        self,
        nets: Networks,
        config: TrackerConfig,
        smoothing: SmoothConfig | None = None,
        two_sided: TwoSidedConfig | None = None,
        backtrack: int = 0,
        bridge: int = 0,
        frame_denoise: FrameDenoiseConfig | None = None,
        read_ahead: bool = True,
        shot_cuts: ShotCutConfig | None = None,
    ) -> None:
        self.nets = nets
        self.cut_detector = None if shot_cuts is None else ShotCutDetector(shot_cuts)
        #: ``--temporal-denoise``: two-sided with ``read_ahead`` (``--lookahead``), else causal
        self.frame_denoise = frame_denoise
        self.read_ahead = read_ahead
        self.config = config
        self.tracker: CRCTTracker | None = None
        self.two_sided = two_sided
        self.backtrack = backtrack
        self.bridge = bridge
        self.lookahead = two_sided is not None or backtrack > 0 or bridge > 0
        #: ``crct track --smooth --no-lookahead``: the same filter over this face's points
        causal = smoothing is not None and not self.lookahead
        self.smoother = FaceSmoother(smoothing) if causal else None
        self._ahead: LookAhead[int] | None = None
        self._done: list[tuple[int, list[Face]]] = []

    @property
    def weight_files(self) -> dict[str, str]:
        return dict(getattr(self.nets, "weight_files", {}))

    def start(self, sequence: VideoSequence, init_box: np.ndarray | None) -> None:
        self.tracker = CRCTTracker(self.nets, self.config, init_box)
        if self.smoother is not None:
            self.smoother.reset()
        if self.cut_detector is not None:
            self.cut_detector.reset()
        self._done = []
        if self.lookahead:
            self._ahead = self._look_ahead()

    def _look_ahead(self) -> LookAhead[int]:
        return LookAhead(self.nets, self.config, self.backtrack, self.two_sided, self.bridge)

    def frames(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """The frames as ``crct track`` feeds them to the networks (``--temporal-denoise``:
        averaged with those on both sides with ``--lookahead``, with those before without)."""
        if self.frame_denoise is None:
            return frames
        return denoise_frames(frames, self.frame_denoise, two_sided=self.read_ahead)

    def step(self, frame: Frame) -> FramePrediction:
        assert self.tracker is not None, "start() first"
        cuts = self.cut_detector
        if cuts is not None and cuts(frame.image):  # as crct track: a new shot
            self.tracker.cut()
            if self.smoother is not None:
                self.smoother.reset()
            if self._ahead is not None:
                self._done += self._ahead.flush()
                self._ahead = self._look_ahead()
        result = self.tracker.step(frame.image)
        face = Face(0, result.points, result.box, result.score, result.state)
        if self._ahead is not None:
            self._done += self._ahead.push(frame.index, frame.time, frame.image, [face])
            return FramePrediction(result.points, result.box, result.state)
        if self.smoother is None:
            return FramePrediction(result.points, result.box, result.state)
        (face,) = self.smoother([face], frame.time)
        return FramePrediction(face.points, face.box, face.state)

    def finish(self) -> dict[int, FramePrediction]:
        """The answers of the frames since :meth:`start` as ``crct track --lookahead`` writes
        them: a re-found face followed back, then the two-sided filter (none without it)."""
        done = self._done + ([] if self._ahead is None else self._ahead.flush())
        self._done = []
        return {index: FramePrediction(f[0].points, f[0].box, f[0].state) for index, f in done}


def build_networks(spec: MethodSpec, device: Any, **options: Any) -> Any:
    """The shipped networks for a spec: the one place that knows how a denoiser is attached.

    A still-image method needs FLL and the detector only (the ``fll-mt`` set). ``options`` go
    to :class:`CRCTNetworks` (``align``, ``denoise_smoothing``); by default FLL runs as the
    tracker runs it.
    """
    from crct_cli.tracking.networks import CRCTNetworks

    mode = "fll-mt" if spec.mode in STILL_MODES else spec.mode
    return CRCTNetworks(device, mode, denoise=spec.denoise or "none", **options)


def video_factory(
    device: Any,
    seq_bt: int = 2,
    tb: float = 1.0,
    tc: float = 0.5,
    int8: bool = True,
    blend: bool = True,
    flip: bool = False,
    bt_reuse: float = BT_REUSE,
    stretched_look: bool = STRETCHED_LOOK,
    find_wide: float = FINDER_WIDE,
    video_fll: bool = VIDEO_FLL,
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
    min_face: MinFace = MIN_FACE,
    shot_cuts: bool = SHOT_CUTS,
    cut_correlation: float = ShotCutConfig.correlation,
    cut_histogram: float = ShotCutConfig.histogram,
    **redetection: Any,
) -> VideoFactory:
    """Real video methods on ``device``, with the papers' thresholds and ``SeqBT``; ``int8``,
    ``blend``, ``flip``, ``bt_reuse``, ``stretched_look``, ``find_wide``, ``video_fll``,
    ``min_face``, ``shot_cuts`` and its thresholds, the smoothing and the re-detection options
    (``TrackerConfig``'s names) as ``crct track`` (its defaults)."""
    smoothing = SmoothConfig(min_cutoff=smooth_cutoff, beta=smooth_beta) if smooth else None
    two_sided = TwoSidedConfig() if smooth and lookahead else None
    frame_denoise = frame_denoising(
        temporal_denoise, temporal_radius, temporal_strength, noise_threshold
    )
    cuts = ShotCutConfig(correlation=cut_correlation, histogram=cut_histogram)
    cuts.check()

    def make(spec: MethodSpec) -> VideoMethod:
        config = TrackerConfig(tb=tb, tc=tc, seq_bt=seq_bt, mode=spec.mode, **redetection)
        align = dataclasses.replace(TRACK_ALIGN, blend=blend, flip=flip)
        nets = build_networks(
            spec,
            device,
            int8=int8,
            align=align,
            bt_reuse=bt_reuse,
            stretched_look=stretched_look,
            find=config.find,
            find_wide=find_wide,
            video_fll=video_fll,
            min_face=min_face,
        )
        bridge = BRIDGE_MAX_RUN if bridge_lost and lookahead else 0
        return TrackerMethod(
            nets,
            config,
            smoothing,
            two_sided,
            backtrack if lookahead else 0,
            bridge,
            frame_denoise,
            read_ahead=lookahead,
            shot_cuts=cuts if shot_cuts else None,
        )

    return make


def image_factory(device: Any) -> ImageFactory:
    """Real still-image methods (FLL, FADeNN variants) on ``device``."""

    def make(spec: MethodSpec) -> ImageMethod:
        # as crct align runs by default, and no noise class carried from one unrelated image
        # to the next; CRCTNetworks has detect() and localize()
        return build_networks(
            spec, device, align=STILL_ALIGN, denoise_smoothing=0.0, video_fll=False
        )

    return make


def mtcnn_weight_files() -> dict[str, str]:
    """MTCNN's three weight files inside facenet-pytorch (detection in every method)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        return {}
    data = Path(spec.origin).parent / "data"
    return {
        f"mtcnn-{net}": str(data / f"{net}.pt")
        for net in ("pnet", "rnet", "onet")
        if (data / f"{net}.pt").is_file()
    }


def weight_files_of(method: object) -> dict[str, str]:
    """Role -> path of the weight files a method uses (none for a fake)."""
    files = dict(getattr(method, "weight_files", None) or {})
    nets = getattr(method, "nets", method)
    if files and hasattr(nets, "detector"):
        files.update(mtcnn_weight_files())
    return files
