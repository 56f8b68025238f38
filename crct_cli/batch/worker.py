"""What one worker does, in a local process or a Ray actor: load the networks once, then
track whole videos one after another. The same code in both engines gives the same points.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crct_cli.batch.discover import VideoJob
from crct_cli.batch.resume import (
    Done,
    clear_done,
    first_missing,
    forget_failed,
    input_stamp,
    inside_other_run,
    mark_done,
)
from crct_cli.batch.summary import VideoResult
from crct_cli.errors import CrctError, error_text, os_reason, warnings_as_lines
from crct_cli.io.openface_csv import CRCT, check_csv_style

if TYPE_CHECKING:
    from crct_cli.tracking.pipeline import FrameRange

#: Environment variables that size the thread pools of the libraries under the networks;
#: ``CRCT_THREADS`` is read by crct's ONNX Runtime sessions (intra-op threads).
THREAD_VARIABLES: tuple[str, ...] = (
    "CRCT_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


#: Tracker options that change the points, hence whether earlier outputs can be kept
#: (``device`` and ``backend`` differ only in the last float digits, so they are not).
SETTINGS_KEYS: tuple[str, ...] = (
    "mode",
    "faces",
    "denoise",
    "tb",
    "tc",
    "seq_bt",
    "detect_every",
    "max_lost",
    "int8",
    "relaxed_redetect",
    "stretched_look",
    "reacquire",
    "redetect_fallback",
    "check_refined",
    "redetect_on_loss",
    "lost_points",
    "lost_follow",
    "lost_flip",
    "lost_doubted",
    "gate_growth",
    "likeness",
    "find",
    "find_wide",
    "video_fll",
    "backfill",
    "blend",
    "flip",
    "bt_reuse",
    "smooth",
    "smooth_cutoff",
    "smooth_beta",
    "lookahead",
    "backtrack",
    "bridge_lost",
    "temporal_denoise",
    "temporal_radius",
    "temporal_strength",
    "noise_threshold",
    "init_box",
    "sequence_fps",
    "pose",
    "focal_length",
)


def settings_of(
    tracker_options: dict[str, Any],
    frames_in: FrameRange | None = None,
    csv_style: str = "crct",
    pts_origin: int = 0,
) -> dict[str, Any]:
    """The JSON-ready settings of :data:`SETTINGS_KEYS` (``faces`` as a count or None), the
    networks' fingerprint (``weights_dir``, else ``$CRCT_WEIGHTS`` or the shipped folder: other
    weights are another run), and ``frames_in``'s range when not the whole video (a
    :class:`~crct_cli.tracking.pipeline.FrameRange`: a run over some frames is not one over
    all), and ``csv_style`` when not crct's own (``--csv-style``: landmarks.csv's layout,
    which the worker reads from here), and ``pts_origin`` when not 0 (``--pts-origin``: what
    the .pts files add to the points, which the worker reads from here too)."""
    import inspect

    from crct_cli.api import Tracker, parse_faces
    from crct_cli.io.landmarks import check_pts_origin
    from crct_cli.models.weights import WEIGHTS_DIR, weights_fingerprint
    from crct_cli.tracking.detector import MIN_FACE, check_min_face
    from crct_cli.tracking.orientation import parse_rotate
    from crct_cli.tracking.shots import SHOT_CUTS
    from crct_cli.tracking.tracker import check_init_box

    defaults = {k: p.default for k, p in inspect.signature(Tracker).parameters.items()}
    settings: dict[str, Any] = {}
    for key in SETTINGS_KEYS:
        value = tracker_options.get(key, defaults.get(key))
        if key == "faces":
            value = parse_faces(value)
        elif key == "init_box" and value is not None:
            value = check_init_box(value).tolist()
        settings[key] = value
    rotate = parse_rotate(tracker_options.get("rotate", 0))
    if rotate != 0:  # only where asked: runs from before --rotate stay done
        settings["rotate"] = rotate
    min_face = check_min_face(tracker_options.get("min_face", MIN_FACE))  # "40" is 40
    if min_face != MIN_FACE:  # likewise: runs from before --min-face stay done
        settings["min_face"] = min_face
    # runs from before --shot-cuts record none: they looked for no cut, as --no-shot-cuts
    # does, so only such a run keeps them
    if tracker_options.get("shot_cuts", SHOT_CUTS):
        settings["shot_cuts"] = True
        cuts = {
            k: tracker_options.get(k, defaults[k]) for k in ("cut_correlation", "cut_histogram")
        }
        settings.update({k: v for k, v in cuts.items() if v != defaults[k]})
    weights_dir = tracker_options.get("weights_dir")
    settings["weights"] = weights_fingerprint(WEIGHTS_DIR if weights_dir is None else weights_dir)
    if frames_in is not None:
        settings.update(frames_in.settings())
    if check_csv_style(csv_style) != CRCT:  # only where asked: earlier runs stay done
        settings["csv_style"] = csv_style
    if check_pts_origin(pts_origin) != 0:  # likewise
        settings["pts_origin"] = check_pts_origin(pts_origin)
    return settings


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable (it travels to processes and Ray actors).

    ``tracker_options`` are :class:`crct_cli.api.Tracker` keyword arguments; ``settings`` are
    those that change the points (written into each folder's resume marker); ``threads`` is
    the thread count of each worker's libraries (0 leaves their defaults);
    ``networks_factory`` builds replacement networks (tests), else the shipped ones load;
    ``crops``: the side of the face crops written beside the points (0: none);
    ``frames_in``: which frames of each video (a
    :class:`~crct_cli.tracking.pipeline.FrameRange`; None: all); ``flags``: a failure names
    an option as ``crct track``'s flag (``--init-box``), not as Python's keyword: the worker
    words it, and only the caller knows who reads it.
    """

    tracker_options: dict[str, Any]
    settings: dict[str, Any]
    overlay: bool = False
    threads: int = 0
    networks_factory: Callable[[], Any] | None = field(default=None, compare=False)
    crops: int = 0
    frames_in: FrameRange | None = None
    pts: bool = True  #: a .pts file per frame in annot/ (--no-pts: the CSV and JSON only)
    flags: bool = False


def limit_threads(threads: int) -> None:
    """Size every thread pool to ``threads`` so that N workers share the cores, not fight.

    The variables reach ONNX Runtime, OpenMP and PyTorch when they start; PyTorch and OpenCV,
    when already imported, are told directly (a worker calls this before and after loading).
    """
    if threads <= 0:
        return
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(threads)


class VideoWorker:
    """A loaded :class:`~crct_cli.api.Tracker` that turns :class:`VideoJob` into results."""

    def __init__(self, spec: WorkerSpec, say: Callable[[str], None] | None = None) -> None:
        """``say``: where the command line's worker hands its warning lines (default: its
        stderr); see :func:`~crct_cli.errors.warnings_as_lines`."""
        from crct_cli.api import Tracker
        from crct_cli.runtime.backend import share_threads

        share_threads()  # a worker process is crct's alone
        if spec.flags:  # the command line's worker: its warnings read as the command's
            warnings_as_lines(say)
        limit_threads(spec.threads)
        self.spec = spec
        self.last_summary: Any = None  # the TrackSummary of the last video tracked
        networks = spec.networks_factory() if spec.networks_factory is not None else None
        self.tracker = Tracker(networks=networks, **spec.tracker_options)
        limit_threads(spec.threads)

    def run(
        self,
        job: VideoJob,
        on_frame: Callable[[int, int | None], None] | None = None,
        named: VideoJob | None = None,
    ) -> VideoResult:
        """Track one video into its folder; never raises for a bad video (a failed result).

        ``named``: the job with its paths as the user gave them, where ``job`` has them made
        absolute (a Ray worker, whose working folder is not the user's): track.json and any
        error name them as a local run would."""
        from crct_cli.tracking.pipeline import track_video

        result = VideoResult(job.label, job.output)
        t0 = time.perf_counter()
        made: Path | None = None  # the outermost folder made for this video's outputs
        try:
            if job.problem is not None:
                raise CrctError(job.problem)
            if not (job.source.is_file() or job.source.is_dir()):
                raise CrctError(f"{job.label}: no such video file or image sequence")
            stamp = input_stamp(job.source)
            busy = inside_other_run(job)
            if busy is not None:
                raise CrctError(busy)
            made = first_missing(job.out_dir)
            clear_done(job)
            self.last_summary = None
            summary = track_video(
                job.source,
                job.out_dir,
                self.tracker,
                self.spec.overlay,
                on_frame,
                self.spec.crops,
                self.spec.frames_in,
                self.spec.pts,
                None if named is None else named.label,
                self.spec.settings.get("csv_style", CRCT),
                out_name=None if named is None else str(named.out_dir),
                pts_origin=self.spec.settings.get("pts_origin", 0),
            )
            done = Done(
                summary.status,
                summary.frames,
                summary.faces,
                summary.face_frames,
                summary.seconds,
                summary.missing_frames,
                summary.rotate,
                summary.cuts,
                tuple(summary.warnings),
            )
            mark_done(job, stamp, self.spec.settings, done, self.spec.crops, self.spec.pts)
            self.last_summary = summary
        except CrctError as exc:
            result.status, result.error = "failed", error_text(exc, self.spec.flags)
        except OSError as exc:  # a file in the way, a full disk: said as the system says it
            where = exc.filename if exc.filename is not None else job.label
            result.status, result.error = "failed", f"{where}: {os_reason(exc)}"
        except Exception as exc:  # one broken video never stops the others
            result.status, result.error = "failed", f"{job.label}: {type(exc).__name__}: {exc}"
        else:
            made = None
            result.status, result.frames, result.faces = done.status, done.frames, done.faces
            result.face_frames = done.face_frames
            result.missing_frames, result.rotate = done.missing_frames, done.rotate
            result.cuts = done.cuts
            result.warnings = list(done.warnings)
        forget_failed(job, made)  # failed in a folder made for it: none is left
        if named is not None and result.error:
            result.error = result.error.replace(str(job.source), named.label).replace(
                str(job.out_dir), str(named.out_dir)
            )
        result.seconds = time.perf_counter() - t0 if result.status == "failed" else done.seconds
        return result


class Listener(Protocol):
    """What an engine reports while it runs; ``slot`` numbers the workers from 0."""

    def started(self, slot: int, job: VideoJob) -> None: ...

    def frame(self, slot: int, done: int, total: int | None) -> None: ...

    def finished(self, slot: int, job: VideoJob, result: VideoResult) -> None: ...

    def warned(self, slot: int, line: str) -> None:
        """A worker's warning line (``crct: warning: ...``), to be printed where the
        progress is."""
