"""``crct benchmark --speed VIDEO...``: where the time of ``crct track`` goes, per backend.

For every video, method and engine (``--backend`` x ``--device``; auto: every backend that
runs here, on the CPU and on CUDA when present):

* **decode fps**: PyAV decoding to RGB alone, the floor no tracker can beat (once per video);
* **ms per call** of each network on one face, measured in isolation on the first frames of
  the video (one warm-up call left out, the median reported), with the crops the tracker cuts:
  detection (MTCNN on the frame), BT (two crops + the step), FV (crop + score), FLL (both
  stages, as the tracker runs them); plus the mean ms per call of every network timed inside
  the end-to-end run (so a denoiser shows up there);
* **end-to-end fps**: the code path of ``crct track`` (:func:`track_video` over a
  :class:`crct_cli.api.Tracker`) in the benchmark's process, writing into a temporary folder,
  model loading not counted;
* **whole process**: ``crct track VIDEO`` run as a command (``python -m crct_cli``), its wall
  time, frames per second and peak memory (the child's maximum resident set size), and its
  start-up: the same command on a one-frame copy of the video;
* **dlib**: when dlib and its 68-point model (``face_recognition_models``) are installed, dlib's
  per-frame HOG detector + ERT as a whole process (:mod:`crct_cli.bench.dlib_peer`) on the
  same video in the same run, the tool crct is compared with on a CPU.

Whole commands are timed in ``pairs`` alternating runs (dlib, then crct track) and reported as
medians, with crct's speed against dlib's taken pair by pair: on a shared machine a single run
moves by 10-20% with the load, and the two tools feel it differently (dlib uses one core, crct
all of them), so only runs made side by side are compared.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.bench.methods import MethodSpec, build_networks, weight_files_of
from crct_cli.errors import CrctError
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.runtime.backend import (
    Engine,
    cuda_available,
    onnx_cuda_provider_available,
    onnxruntime_available,
    resolve_engine,
)
from crct_cli.tracking.tracker import BT_REUSE

#: Frames (after one warm-up) on which each network is timed in isolation.
PROBE_FRAMES = 20
#: Networks timed in isolation, in table order.
NETWORKS: tuple[str, ...] = ("detect", "bt", "fv", "fll")
END_TO_END = "crct track code path, writing annot/*.pts + track.json to a temporary folder"
WHOLE_PROCESS = "python -m crct_cli track VIDEO --out TMP (no overlay): wall time, peak RSS"
STARTUP = "the same command on a one-frame copy of the video"
DLIB = "dlib HOG + ERT"

#: (method, engine) -> networks with the tracker's calls (``detect``, ``localize``, ...).
NetsFactory = Callable[[MethodSpec, Engine], Any]
#: Time ``crct track`` and dlib as whole commands too (tests with fake networks turn it off).
WHOLE_PROCESSES = True
#: Alternating whole-command runs of dlib and crct track (``crct benchmark --pairs``).
PAIRS = 3


def speed_devices(device: str) -> list[str]:
    """``auto``: the CPU, and CUDA when present; ``cpu`` or ``cuda``: that one only."""
    if device == "auto":
        return ["cpu", "cuda"] if cuda_available() else ["cpu"]
    return [resolve_engine("torch" if device == "cuda" else "auto", device).device]


def speed_engines(device: str = "auto", backend: str = "auto") -> list[Engine]:
    """Every engine to time: ``backend`` auto gives each backend that runs on each device
    (torch and ONNX Runtime on the CPU; torch, and ONNX Runtime's CUDA provider if installed,
    on CUDA); a named backend gives that one."""
    engines = []
    for dev in speed_devices(device):
        if backend != "auto":
            engines.append(resolve_engine(backend, dev))
            continue
        engines.append(Engine("torch", dev))
        onnx_here = onnx_cuda_provider_available() if dev == "cuda" else onnxruntime_available()
        if onnx_here:
            engines.append(Engine("onnx", dev))
    return engines


def describe_device(device: str) -> str:
    """A human description: the GPU's name, or the CPU and its core count."""
    if device == "cuda" and cuda_available():
        import torch

        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores"


@dataclass
class Timing:
    ms: float  #: median milliseconds per call
    mean_ms: float
    calls: int

    def to_json(self) -> dict[str, float | int]:
        return {"ms": round(self.ms, 3), "mean_ms": round(self.mean_ms, 3), "calls": self.calls}


def _timing(seconds: list[float]) -> Timing:
    ms = np.asarray(seconds) * 1000.0
    return Timing(float(np.median(ms)), float(np.mean(ms)), len(ms))


@dataclass
class ProcessRun:
    """A whole command: wall seconds, frames, peak resident memory (MB), and for crct the
    start-up (the same command on one frame)."""

    tool: str
    command: list[str]
    seconds: float
    frames: int
    peak_mb: float
    startup_seconds: float | None = None
    startup_peak_mb: float | None = None
    error: str | None = None
    runs: list[float] = field(default_factory=list)  #: each run's seconds (``seconds``: median)
    x_dlib: list[float] = field(default_factory=list)  #: dlib's seconds / this run's, per pair

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 and not self.error else 0.0

    def speed_against(self, dlib: ProcessRun | None) -> float | None:
        """This command's speed as a multiple of dlib's (dlib's seconds over this one's): the
        median over the pairs run side by side, else the two medians' ratio; None when either
        failed."""
        if self.error or dlib is None or dlib.error or self.seconds <= 0:
            return None
        return float(np.median(self.x_dlib)) if self.x_dlib else dlib.seconds / self.seconds

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "tool": self.tool,
            "command": self.command,
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "fps": round(self.fps, 3),
            "peak_mb": round(self.peak_mb, 1),
        }
        if len(self.runs) > 1:
            out["runs_seconds"] = [round(t, 3) for t in self.runs]
        if self.x_dlib:
            out["x_dlib_speed"] = {
                "median": round(float(np.median(self.x_dlib)), 3),
                "pairs": [round(r, 3) for r in self.x_dlib],
            }
        if self.startup_seconds is not None:
            out["startup"] = {
                "seconds": round(self.startup_seconds, 3),
                "peak_mb": round(self.startup_peak_mb or 0.0, 1),
                "measures": STARTUP,
            }
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class DeviceSpeed:
    """One method on one engine for one video."""

    method: str
    device: str
    description: str
    networks: dict[str, Timing]  #: isolated, per network
    in_run: dict[str, Timing]  #: as timed by the networks during the in-process run
    frames: int
    seconds: float
    weight_files: dict[str, str] = field(default_factory=dict)  #: role -> path (hashed in JSON)
    backend: str = "torch"
    process: ProcessRun | None = None
    faces: int | None = 1  #: the run's ``--faces`` (None: all)
    face_frames: int = 0  #: faces tracked, summed over frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def faces_label(self) -> str:
        return "all" if self.faces is None else str(self.faces)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method,
            "backend": self.backend,
            "device": self.device,
            "description": self.description,
            "ms_per_call": {k: v.to_json() for k, v in self.networks.items()},
            "in_run_ms_per_call": {k: v.to_json() for k, v in self.in_run.items()},
            "end_to_end": {
                "fps": round(self.fps, 3),
                "frames": self.frames,
                "seconds": round(self.seconds, 3),
                "faces": self.faces_label,
                "face_frames": self.face_frames,
                "measures": END_TO_END,
            },
        }
        if self.process is not None:
            out["whole_process"] = {**self.process.to_json(), "measures": WHOLE_PROCESS}
        return out


@dataclass
class VideoSpeed:
    video: str
    width: int
    height: int
    frames: int
    decode_seconds: float
    runs: list[DeviceSpeed] = field(default_factory=list)
    peers: list[ProcessRun] = field(default_factory=list)  #: dlib, when installed

    @property
    def decode_fps(self) -> float:
        return self.frames / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "video": self.video,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "decode_fps": round(self.decode_fps, 3),
            "runs": [r.to_json() for r in self.runs],
            "peers": [p.to_json() for p in self.peers],
        }


def measure_decode(video: Path) -> tuple[int, float]:
    """Frames decoded to RGB and the seconds it took."""
    frames = 0
    t0 = time.perf_counter()
    for _ in iter_frames(video):
        frames += 1
    return frames, time.perf_counter() - t0


def _timed(sink: list[float], call: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = call()
    sink.append(time.perf_counter() - t0)
    return out


def _first_frames(video: Path, n: int) -> list[np.ndarray]:
    return [f.image for f in iter_frames(video, n)]


def probe_networks(nets: Any, mode: str, images: list[np.ndarray]) -> dict[str, Timing]:
    """Time each network the mode uses on ``images`` (the first call is a warm-up)."""
    first = images[0]
    detections = nets.detect(first)  # warm-up, and a box to work from
    if detections:
        box = np.asarray(detections[0].box, dtype=np.float64)
    else:
        h, w = first.shape[:2]
        box = np.array([w / 3, h / 3, w / 3, h / 3])
    points = nets.localize(first, box)  # warm-up, and points for FV
    samples: dict[str, list[float]] = {name: [] for name in NETWORKS}
    for image in images[1:]:
        _timed(samples["detect"], partial(nets.detect, image))
        _timed(samples["fll"], partial(nets.localize, image, box))
    if mode in ("crct", "bt"):
        state = None
        nets.bt_step(images[0], images[1 % len(images)], box, None)  # warm-up
        for prev, cur in zip(images, images[1:], strict=False):
            # a copy of the previous frame is not the frame BT cut last: both crops are cut,
            # as without --bt-reuse (the tracker's own calls are in the end-to-end run)
            earlier = prev.copy()
            _, state = _timed(samples["bt"], partial(nets.bt_step, earlier, cur, box, state))
    if mode == "crct":
        nets.validate(first, points)  # warm-up
        for image in images[1:]:
            _timed(samples["fv"], partial(nets.validate, image, points))
    return {name: _timing(v) for name, v in samples.items() if v}


# ------------------------------------------------------------------------- whole processes


#: Runs a command from a small process and prints its wall time, peak RSS (KB) and exit code.
#: Measured from the benchmark itself, a fork of a process that holds PyTorch would report the
#: parent's size: Linux counts the memory a child had before ``exec`` in its maximum RSS.
_LAUNCHER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t0, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], cwd: Path | None = None) -> tuple[float, float, str | None]:
    """Run a command; (wall seconds, peak resident MB of the command, error line or None)."""
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, *command]
    done = subprocess.run(launcher, cwd=cwd, capture_output=True, text=True)
    try:
        seconds, max_kb, code = done.stdout.split()
    except ValueError:
        return 0.0, 0.0, (done.stderr.strip().splitlines() or ["could not run"])[-1]
    if int(code) != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        return float(seconds), int(max_kb) / 1024.0, (lines[-1] if lines else f"exit {code}")
    return float(seconds), int(max_kb) / 1024.0, None


def one_frame_copy(video: Path, target: Path) -> Path:
    """The first frame of ``video`` as a one-frame video (for the start-up time)."""
    from crct_cli.io.video import VideoWriter

    info = probe_video(video)
    frame = next(iter(iter_frames(video, 1)))
    with VideoWriter(target, info.fps, frame.image.shape[1], frame.image.shape[0]) as writer:
        writer.write(frame.image)
    return target


def crct_command(
    video: Path, out: Path, spec: MethodSpec, engine: Engine, seq_bt: int, int8: bool = True
) -> list:
    return [
        sys.executable,
        "-m",
        "crct_cli",
        "track",
        str(video),
        "--out",
        str(out),
        "--mode",
        spec.mode,
        "--denoise",
        spec.denoise or "none",
        "--seq-bt",
        str(seq_bt),
        "--backend",
        engine.backend,
        "--device",
        engine.device,
        "--int8" if int8 else "--no-int8",
    ]


def measure_crct_process(
    video: Path, frames: int, spec: MethodSpec, engine: Engine, seq_bt: int, int8: bool = True
) -> ProcessRun:
    """``crct track`` on the whole video and on its first frame, as separate processes."""
    with tempfile.TemporaryDirectory(prefix="crct-speed-") as tmp:
        one = one_frame_copy(video, Path(tmp) / f"first{video.suffix or '.mp4'}")
        start_s, start_mb, err = run_measured(
            crct_command(one, Path(tmp) / "one", spec, engine, seq_bt, int8)
        )
        command = crct_command(video, Path(tmp) / "out", spec, engine, seq_bt, int8)
        seconds, peak_mb, err2 = run_measured(command)
    shown = ["crct", *crct_command(video, Path("TMP"), spec, engine, seq_bt, int8)[3:]]
    return ProcessRun("crct track", shown, seconds, frames, peak_mb, start_s, start_mb, err2 or err)


def measure_dlib_process(video: Path, frames: int) -> ProcessRun | None:
    """dlib's HOG + ERT on every frame (:mod:`crct_cli.bench.dlib_peer`), or None without dlib."""
    from crct_cli.bench import dlib_peer

    if not dlib_peer.available():
        return None
    with tempfile.TemporaryDirectory(prefix="crct-dlib-") as tmp:
        command = [sys.executable, "-m", "crct_cli.bench.dlib_peer", str(video), tmp]
        seconds, peak_mb, err = run_measured(command)
    shown = ["python", "-m", "crct_cli.bench.dlib_peer", str(video), "TMP"]
    return ProcessRun(DLIB, shown, seconds, frames, peak_mb, error=err)


def combine_runs(runs: list[ProcessRun], x_dlib: list[float] | None = None) -> ProcessRun:
    """Repeated runs of one command as one: median seconds and start-up, largest peak memory;
    the first failure, if any run failed."""
    failed = next((r for r in runs if r.error), None)
    if failed is not None:
        return failed
    first = runs[0]
    startups = [r.startup_seconds for r in runs if r.startup_seconds is not None]
    startup_mb = [r.startup_peak_mb for r in runs if r.startup_peak_mb is not None]
    return ProcessRun(
        first.tool,
        first.command,
        float(np.median([r.seconds for r in runs])),
        first.frames,
        max(r.peak_mb for r in runs),
        float(np.median(startups)) if startups else None,
        max(startup_mb) if startup_mb else None,
        runs=[r.seconds for r in runs],
        x_dlib=list(x_dlib or []),
    )


def measure_pairs(
    video: Path,
    frames: int,
    spec: MethodSpec,
    engine: Engine,
    seq_bt: int,
    int8: bool,
    pairs: int,
    dlib_runs: list[ProcessRun],
) -> ProcessRun:
    """``pairs`` alternating whole runs of dlib (when installed; its runs are added to
    ``dlib_runs``) and ``crct track``; crct's runs combined, with the ratio of each pair."""
    runs, ratios = [], []
    for _ in range(pairs):
        peer = measure_dlib_process(video, frames)
        run = measure_crct_process(video, frames, spec, engine, seq_bt, int8)
        runs.append(run)
        if peer is not None:
            dlib_runs.append(peer)
            if not peer.error and not run.error and run.seconds > 0:
                ratios.append(peer.seconds / run.seconds)
    return combine_runs(runs, ratios)


# ------------------------------------------------------------------------------ the run


def _iter_runs(
    engines: list[Engine], specs: list[MethodSpec]
) -> Iterator[tuple[Engine, MethodSpec]]:
    for engine in engines:
        for spec in specs:
            yield engine, spec


def backend_label(engine: Engine, nets: Any) -> str:
    """``onnx``, or ``onnx+int8`` when some of the networks run int8 graphs."""
    runtime = getattr(nets, "runtime", None)
    return engine.backend + ("+int8" if getattr(runtime, "int8", None) else "")


def default_factory(spec: MethodSpec, engine: Engine, int8: bool = True) -> Any:
    """The shipped networks of ``crct track`` for a method on an engine (its defaults)."""
    return build_networks(spec, engine.device, backend=engine.backend, int8=int8, bt_reuse=BT_REUSE)


def measure_speed(
    videos: list[Path],
    engines: list[Engine],
    specs: list[MethodSpec],
    nets_factory: NetsFactory | None = None,
    seq_bt: int = 2,
    probe_frames: int = PROBE_FRAMES,
    log: Callable[[str], None] | None = None,
    processes: bool | None = None,
    faces: int | None = 1,
    int8: bool = True,
    pairs: int = PAIRS,
) -> list[VideoSpeed]:
    """Decode fps, per-network ms, end-to-end fps and (``processes``, default
    :data:`WHOLE_PROCESSES`) whole-command time, start-up and peak memory, for every video,
    method and engine; dlib beside them, in ``pairs`` alternating runs (:func:`measure_pairs`).
    With ``faces`` other than 1, the end-to-end run is made once with one face and once with
    ``faces`` (None: all), so that the cost of several faces per frame is read off the same run.

    Networks are built once per (method, engine) by ``nets_factory`` (default: the shipped
    networks of ``crct track`` through :func:`build_networks`).
    """
    from crct_cli.api import Tracker
    from crct_cli.tracking.pipeline import track_video

    if not videos:
        raise CrctError("--speed needs at least one VIDEO")
    if pairs < 1:
        raise CrctError(f"--pairs must be at least 1, got {pairs}")
    for video in videos:
        if not video.is_file():
            raise CrctError(f"{video}: no such video file")
    factory = nets_factory or (lambda spec, engine: default_factory(spec, engine, int8))
    say = log or (lambda _: None)
    processes = WHOLE_PROCESSES if processes is None else processes
    results = []
    for video in videos:
        info = probe_video(video)
        frames, seconds = measure_decode(video)
        results.append(VideoSpeed(str(video), info.width, info.height, frames, seconds))
    images = {str(v): _first_frames(v, probe_frames + 1) for v in videos}
    dlib_runs: dict[str, list[ProcessRun]] = {r.video: [] for r in results}
    from crct_cli.bench import dlib_peer

    beside = (
        f"dlib beside it ({pairs} x 2 runs)"
        if dlib_peer.available()
        else f"{pairs} run(s); no dlib to time beside it (pip install dlib face-recognition-models)"
    )
    for engine, spec in _iter_runs(engines, specs):
        nets = factory(spec, engine)
        description = describe_device(engine.device)
        for result in results:
            name = Path(result.video).name
            say(f"speed: {name} {spec.name} on {engine}")
            networks = probe_networks(nets, spec.mode, images[result.video])
            process = None
            if processes:
                say(f"speed: {name} {spec.name} on {engine}, {beside}")
                process = measure_pairs(
                    Path(result.video),
                    result.frames,
                    spec,
                    engine,
                    seq_bt,
                    int8,
                    pairs,
                    dlib_runs[result.video],
                )
            for n_faces in [1] if faces == 1 else [1, faces]:
                timings = getattr(nets, "timings", None)
                if isinstance(timings, dict):
                    timings.clear()
                tracker = Tracker(
                    n_faces if n_faces is not None else "all", engine.device, mode=spec.mode,
                    denoise=spec.denoise or "none", seq_bt=seq_bt, backend=engine.backend,
                    networks=nets,
                )  # fmt: skip
                with tempfile.TemporaryDirectory(prefix="crct-speed-") as tmp:
                    summary = track_video(Path(result.video), Path(tmp) / "out", tracker)
                in_run = {
                    k: _timing(v) for k, v in (getattr(nets, "timings", None) or {}).items() if v
                }
                result.runs.append(
                    DeviceSpeed(
                        method=spec.name,
                        device=engine.device,
                        description=description,
                        networks=networks,
                        in_run=in_run,
                        frames=summary.frames,
                        seconds=summary.seconds,
                        weight_files=weight_files_of(nets),
                        backend=backend_label(engine, nets),
                        process=process if n_faces == 1 else None,
                        faces=n_faces,
                        face_frames=summary.face_frames,
                    )
                )
    for result in results:
        if dlib_runs[result.video]:
            result.peers.append(combine_runs(dlib_runs[result.video]))
    return results
