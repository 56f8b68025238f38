"""``crct benchmark --dataset ...`` from options to results: check, select, run, write.

The CLI only parses and prints; this module validates the combination of options, finds the
data (``--root`` or ``$CRCT_DATA``), builds the methods through the factories of
:mod:`crct_cli.bench.methods` (replaceable: tests inject fakes), runs the video or still
benchmark and writes ``results.json`` and the plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crct_cli.aligner import VIDEO_FLL
from crct_cli.bench import methods as _methods
from crct_cli.bench.catalog import (
    SequenceSelection,
    check_dataset,
    is_multi_dataset,
    is_video_dataset,
    resolve_root,
    select_sequences,
)
from crct_cli.bench.methods import ImageFactory, MethodSpec, VideoFactory, parse_methods
from crct_cli.bench.multi_face import (
    MultiBenchResult,
    MultiFactory,
    MultiSequence,
    multi_factory,
    run_multi_benchmark,
    select_multi_sequences,
    write_predictions,
)
from crct_cli.bench.report import (
    PlotOutcome,
    build_payload,
    hash_weight_files,
    write_json,
    write_multi_plots,
    write_plots,
)
from crct_cli.bench.speed import VideoSpeed, describe_device
from crct_cli.bench.still_bench import (
    DEFAULT_SEED,
    NoiseSet,
    StillBenchResult,
    StillSelection,
    parse_noise,
    run_still_benchmark,
    select_images,
)
from crct_cli.bench.video_bench import (
    INITS,
    Progress,
    VideoBenchResult,
    run_video_benchmark,
)
from crct_cli.errors import CrctError
from crct_cli.metrics import NORMALIZATIONS
from crct_cli.runtime.nets import FINDER_WIDE
from crct_cli.tracking.backtrack import BACKTRACK
from crct_cli.tracking.bridge import BRIDGE_LOST
from crct_cli.tracking.detector import MIN_FACE, MinFace
from crct_cli.tracking.frame_denoise import TEMPORAL_DENOISE, FrameDenoiseConfig
from crct_cli.tracking.likeness import LIKENESS
from crct_cli.tracking.shots import SHOT_CUTS, ShotCutConfig
from crct_cli.tracking.smoothing import LOOKAHEAD, SMOOTH, SmoothConfig
from crct_cli.tracking.tracker import BT_REUSE, FIND, GATE_GROWTH, LOST_FLIP, STRETCHED_LOOK

#: The papers' SeqBT (CRCT IV: 2 and 4 scored best).
DEFAULT_SEQ_BT = 2
#: ``--dataset multi``: the full tracker beside tracking-by-detection.
DEFAULT_MULTI_METHODS = "crct,fll-mt"


@dataclass
class DatasetRequest:
    """The ``crct benchmark`` options of a dataset run (None: not given on the command line)."""

    dataset: str
    root: Path | None = None
    methods: str | None = None
    seq_bt: int | None = None
    init: str | None = None
    device: str = "auto"
    noise: str | None = None
    box_from_pts: bool = False
    seed: int | None = None
    norm: str = "diagonal"
    threshold: float = 0.08
    max_frames: int | None = None
    gt_origin: float = 0.0  #: taken off the ground truth (300-W's and 300-VW's files: 1)
    int8: bool = True  #: video methods: BT and FLL's first stage on int8 graphs (crct track's)
    tb: float = 1.0  #: video methods: crct track's --tb (eq. 8's gate)
    tc: float = 0.5  #: video methods: crct track's --tc (the validator's threshold)
    relaxed_redetect: bool = True  #: video methods: crct track's second, more sensitive look
    stretched_look: bool = STRETCHED_LOOK  #: video methods: crct track's --stretched-look
    reacquire: int = 25  #: video methods: crct track's --reacquire (0: never)
    redetect_fallback: bool = True  #: video methods: crct track's --redetect-fallback
    check_refined: bool = True  #: video methods: crct track's --check-refined
    redetect_on_loss: bool = True  #: video methods: crct track's --redetect-on-loss
    lost_points: str = "fll"  #: video methods: crct track's --lost-points
    lost_follow: bool = True  #: video methods: crct track's --lost-follow
    lost_flip: bool = LOST_FLIP  #: video methods: crct track's --lost-flip
    lost_doubted: bool = True  #: video methods: crct track's --lost-doubted
    gate_growth: float = GATE_GROWTH  #: video methods: crct track's --gate-growth
    likeness: float = LIKENESS  #: video methods: crct track's --likeness
    find: bool = FIND  #: video methods: crct track's --find (the face finder)
    find_wide: float = FINDER_WIDE  #: video methods: crct track's --find-wide
    video_fll: bool = VIDEO_FLL  #: video methods: crct track's --video-fll
    blend: bool = True  #: video methods: crct track's --blend (FLL's two stages averaged)
    flip: bool = False  #: video methods: crct track's --flip (FLL's mirrored pass too)
    bt_reuse: float = BT_REUSE  #: video methods: crct track's --bt-reuse
    smooth: bool = SMOOTH  #: video methods: crct track's --smooth (the shape's One Euro filter)
    smooth_cutoff: float = SmoothConfig.min_cutoff  #: video methods: crct track's --smooth-cutoff
    smooth_beta: float = SmoothConfig.beta  #: video methods: crct track's --smooth-beta
    lookahead: bool = LOOKAHEAD  #: video methods: crct track's --lookahead (two-sided filter)
    backtrack: int = BACKTRACK  #: video methods: crct track's --backtrack (with --lookahead)
    bridge_lost: bool = BRIDGE_LOST  #: video methods: crct track's --bridge-lost (with --lookahead)
    temporal_denoise: bool = TEMPORAL_DENOISE  #: video methods: crct track's --temporal-denoise
    temporal_radius: int = FrameDenoiseConfig.radius  #: video methods: --temporal-radius
    temporal_strength: float = FrameDenoiseConfig.strength  #: video methods: --temporal-strength
    noise_threshold: float = FrameDenoiseConfig.threshold  #: video methods: --noise-threshold
    min_face: MinFace = MIN_FACE  #: video methods: crct track's --min-face (px or "N%")
    shot_cuts: bool = SHOT_CUTS  #: video methods: crct track's --shot-cuts
    cut_correlation: float = ShotCutConfig.correlation  #: video methods: --cut-correlation
    cut_histogram: float = ShotCutConfig.histogram  #: video methods: --cut-histogram

    @property
    def fll(self) -> dict[str, Any]:
        """How the video methods run FLL and BT and smooth their points, as
        ``crct_cli.Tracker`` names the options."""
        return {
            "blend": self.blend,
            "flip": self.flip,
            "bt_reuse": self.bt_reuse,
            "stretched_look": self.stretched_look,
            "find_wide": self.find_wide,
            "video_fll": self.video_fll,
            "smooth": self.smooth,
            "smooth_cutoff": self.smooth_cutoff,
            "smooth_beta": self.smooth_beta,
            "lookahead": self.lookahead,
            "backtrack": self.backtrack,
            "bridge_lost": self.bridge_lost,
            "temporal_denoise": self.temporal_denoise,
            "temporal_radius": self.temporal_radius,
            "temporal_strength": self.temporal_strength,
            "noise_threshold": self.noise_threshold,
            "min_face": self.min_face,
            "shot_cuts": self.shot_cuts,
            "cut_correlation": self.cut_correlation,
            "cut_histogram": self.cut_histogram,
        }

    @property
    def redetection(self) -> dict[str, Any]:
        """The papers' thresholds and the re-detection options, as ``TrackerConfig`` and
        ``crct_cli.Tracker`` name them."""
        return {
            "tb": self.tb,
            "tc": self.tc,
            "relaxed_redetect": self.relaxed_redetect,
            "reacquire": self.reacquire,
            "redetect_fallback": self.redetect_fallback,
            "check_refined": self.check_refined,
            "redetect_on_loss": self.redetect_on_loss,
            "lost_points": self.lost_points,
            "lost_follow": self.lost_follow,
            "lost_flip": self.lost_flip,
            "lost_doubted": self.lost_doubted,
            "gate_growth": self.gate_growth,
            "likeness": self.likeness,
            "find": self.find,
        }


@dataclass
class DatasetOutcome:
    result: VideoBenchResult | StillBenchResult | MultiBenchResult
    device: str
    device_description: str


def make_video_factory(device: str, seq_bt: int, int8: bool = True, **options: Any) -> VideoFactory:
    """The real trackers (replaced by tests with fakes); ``options``: ``crct track``'s
    (``DatasetRequest.fll`` and ``.redetection``), its defaults where left out."""
    return _methods.video_factory(device, seq_bt, int8=int8, **options)


def make_image_factory(device: str) -> ImageFactory:
    """The real still-image aligners (replaced by tests with fakes)."""
    return _methods.image_factory(device)


def make_multi_factory(device: str, seq_bt: int, int8: bool = True, **options: Any) -> MultiFactory:
    """The real multi-face trackers, ``crct_cli.Tracker(faces="all")`` (tests use fakes);
    ``options`` as for :func:`make_video_factory`."""
    return multi_factory(device, seq_bt, int8, **options)


def _check_common(req: DatasetRequest) -> None:
    if req.norm not in NORMALIZATIONS:
        raise CrctError(
            f"unknown normalisation {req.norm!r}; choose one of {', '.join(NORMALIZATIONS)}"
        )
    if not req.threshold > 0:
        raise CrctError(f"--threshold must be positive, got {req.threshold}")
    if req.reacquire < 0:
        raise CrctError(f"--reacquire must be >= 0 frames (0: never), got {req.reacquire}")


def _check_video_options(req: DatasetRequest) -> tuple[str, int]:
    given = [n for n, v in (("--noise", req.noise), ("--seed", req.seed)) if v is not None]
    if req.box_from_pts:
        given.append("--box-from-pts")
    if given:
        raise CrctError(
            f"{', '.join(given)}: for still-image datasets (300w, menpo, images); "
            f"videos start from --init gt|detect"
        )
    init = req.init or "gt"
    if init not in INITS:
        raise CrctError(f"--init must be gt or detect, got {init!r}")
    seq_bt = DEFAULT_SEQ_BT if req.seq_bt is None else req.seq_bt
    if seq_bt < 1:
        raise CrctError(f"--seq-bt must be at least 1, got {seq_bt}")
    if req.max_frames is not None and req.max_frames < 1:
        raise CrctError(f"--max-frames must be at least 1, got {req.max_frames}")
    return init, seq_bt


def _check_multi_options(req: DatasetRequest) -> int:
    given = [
        n
        for n, v in (("--noise", req.noise), ("--seed", req.seed), ("--init", req.init))
        if v is not None
    ]
    if req.box_from_pts:
        given.append("--box-from-pts")
    if given:
        raise CrctError(
            f"{', '.join(given)}: not for --dataset multi (every tracker finds the faces itself)"
        )
    if req.gt_origin:
        raise CrctError(
            "--gt-origin: not for --dataset multi (its faces/ files are crct's own, counted "
            "from 0 as crct answers)"
        )
    seq_bt = DEFAULT_SEQ_BT if req.seq_bt is None else req.seq_bt
    if seq_bt < 1:
        raise CrctError(f"--seq-bt must be at least 1, got {seq_bt}")
    if req.max_frames is not None and req.max_frames < 1:
        raise CrctError(f"--max-frames must be at least 1, got {req.max_frames}")
    return seq_bt


def _check_still_options(req: DatasetRequest) -> None:
    given = [
        n
        for n, v in (
            ("--init", req.init),
            ("--seq-bt", req.seq_bt),
            ("--max-frames", req.max_frames),
        )
        if v is not None
    ]
    if given:
        raise CrctError(
            f"{', '.join(given)}: for video datasets (300vw...); still images use --box-from-pts"
        )


def _device(name: str) -> tuple[str, str]:
    from crct_cli.tracking.networks import resolve_device

    device = resolve_device(name).type
    return device, describe_device(device)


@dataclass
class Prepared:
    """A checked request: the data found, the methods parsed, nothing loaded yet."""

    req: DatasetRequest
    specs: list[MethodSpec]
    root: Path
    device: str
    device_description: str
    sequences: SequenceSelection | None = None
    images: StillSelection | None = None
    sets: list[NoiseSet] = field(default_factory=list)
    init: str = "gt"
    seq_bt: int = DEFAULT_SEQ_BT
    multi: list[MultiSequence] | None = None  #: --dataset multi
    multi_missing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def still_steps(self) -> int:
        """Image x set x method predictions a still run makes (for a progress bar)."""
        return len(self.images.items) * len(self.sets) * len(self.specs) if self.images else 0


def prepare(req: DatasetRequest) -> Prepared:
    """Check the options and find the data; raises :class:`CrctError` (one line) on bad input.

    Everything about the input is checked before any network is loaded.
    """
    check_dataset(req.dataset)
    _check_common(req)
    if is_multi_dataset(req.dataset):
        seq_bt = _check_multi_options(req)
        specs = parse_methods(req.methods or DEFAULT_MULTI_METHODS, "video")
        root = resolve_root(req.dataset, req.root)
        found, missing = select_multi_sequences(root)
        device, description = _device(req.device)
        return Prepared(
            req,
            specs,
            root,
            device,
            description,
            seq_bt=seq_bt,
            multi=found,
            multi_missing=missing,
        )
    if is_video_dataset(req.dataset):
        init, seq_bt = _check_video_options(req)
        specs = parse_methods(req.methods or _methods.default_methods("video"), "video")
        root = resolve_root(req.dataset, req.root)
        sequences = select_sequences(req.dataset, root)
        device, description = _device(req.device)
        return Prepared(
            req, specs, root, device, description, sequences=sequences, init=init, seq_bt=seq_bt
        )
    _check_still_options(req)
    specs = parse_methods(req.methods or _methods.default_methods("still"), "still")
    sets = parse_noise(req.noise)
    root = resolve_root(req.dataset, req.root)
    images = select_images(root, req.dataset, req.gt_origin)
    device, description = _device(req.device)
    return Prepared(req, specs, root, device, description, images=images, sets=sets)


def execute(
    prepared: Prepared,
    video_factory: VideoFactory | None = None,
    image_factory: ImageFactory | None = None,
    progress: Progress | None = None,
    on_item: Callable[[], None] | None = None,
    multi_factory: MultiFactory | None = None,
) -> DatasetOutcome:
    """Run every method of a prepared request (factories default to the shipped networks)."""
    req = prepared.req
    result: VideoBenchResult | StillBenchResult | MultiBenchResult
    if prepared.multi is not None:
        result = run_multi_benchmark(
            prepared.root,
            prepared.multi,
            prepared.specs,
            multi_factory
            or make_multi_factory(
                prepared.device, prepared.seq_bt, req.int8, **req.fll, **req.redetection
            ),
            norm=req.norm,  # type: ignore[arg-type]
            threshold=req.threshold,
            max_frames=req.max_frames,
            missing=prepared.multi_missing,
            progress=progress,
        )
    elif prepared.sequences is not None:
        factory = video_factory or make_video_factory(
            prepared.device, prepared.seq_bt, req.int8, **req.fll, **req.redetection
        )
        result = run_video_benchmark(
            prepared.sequences,
            prepared.specs,
            factory,
            init=prepared.init,
            seq_bt=prepared.seq_bt,
            norm=req.norm,  # type: ignore[arg-type]
            threshold=req.threshold,
            max_frames=req.max_frames,
            progress=progress,
            gt_origin=req.gt_origin,
        )
    else:
        assert prepared.images is not None
        still_factory = image_factory or make_image_factory(prepared.device)
        result = run_still_benchmark(
            prepared.images,
            prepared.specs,
            still_factory,
            prepared.sets,
            dataset=req.dataset,
            seed=DEFAULT_SEED if req.seed is None else req.seed,
            box_from_pts=req.box_from_pts,
            norm=req.norm,  # type: ignore[arg-type]
            threshold=req.threshold,
            on_item=on_item,
        )
    return DatasetOutcome(result, prepared.device, prepared.device_description)


def run_dataset(
    req: DatasetRequest,
    video_factory: VideoFactory | None = None,
    image_factory: ImageFactory | None = None,
) -> DatasetOutcome:
    """:func:`prepare` then :func:`execute`, without progress display."""
    return execute(prepare(req), video_factory, image_factory)


def write_outputs(
    out: Path,
    outcome: DatasetOutcome | None = None,
    speed: list[VideoSpeed] | None = None,
    speed_devices: list[str] | None = None,
    argv: list[str] | None = None,
) -> tuple[Path, PlotOutcome]:
    """``OUT/results.json`` and, for a dataset run, the PNG plots (skipped without matplotlib).

    A multi-face run also writes what each method predicted,
    ``OUT/predictions/<method>/<sequence>/landmarks.csv``.
    """
    if outcome is not None:
        result = outcome.result
        if isinstance(result, MultiBenchResult):
            return write_multi_outputs(
                out, result, outcome.device, outcome.device_description, argv
            )
        payload = build_payload(result, None, outcome.device, outcome.device_description, argv)
        path = write_json(out, payload)
        return path, write_plots(result, out)
    devices = speed_devices or []
    described = "; ".join(f"{d}: {describe_device(d)}" for d in devices)
    payload = build_payload(None, speed, ",".join(devices), described, argv)
    return write_json(out, payload), PlotOutcome()


def write_multi_outputs(
    out: Path,
    result: MultiBenchResult,
    device: str | None,
    device_description: str | None,
    argv: list[str] | None = None,
) -> tuple[Path, PlotOutcome]:
    """``results.json`` (kind ``multi``), the predictions of a run, and the CED plot."""
    payload = build_payload(None, None, device, device_description, argv)
    payload.update(result.to_json())
    payload["weights"] = hash_weight_files(result.weight_files)
    path = write_json(out, payload)
    write_predictions(result, out)
    return path, write_multi_plots(result, out)
