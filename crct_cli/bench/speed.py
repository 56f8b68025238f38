"""``crct benchmark --speed VIDEO...``: where the time of ``crct track`` goes.

Three figures per video, method and device:

* **decode fps**: PyAV decoding to RGB alone, the floor no tracker can beat (CPU, once per
  video);
* **ms per call** of each network, measured in isolation on the first frames of the video
  (one warm-up call left out, the median reported): detection (MTCNN), BT, FV, FLL; plus the
  mean ms per call of every network timed inside the end-to-end run (so a denoiser shows up
  there as soon as the networks time it);
* **end-to-end fps**: the very code path of ``crct track`` (:func:`track_video`: decode,
  track, write ``annot/*.pts`` and ``track.json``), writing into a temporary folder that is
  deleted afterwards; model loading is not counted.

On the CPU always, and on CUDA when present (``--device auto``).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.bench.methods import MethodSpec, build_networks, weight_files_of
from crct_cli.errors import CrctError
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.tracking.tracker import TrackerConfig

#: Frames (after one warm-up) on which each network is timed in isolation.
PROBE_FRAMES = 20
#: Networks timed in isolation, in table order.
NETWORKS: tuple[str, ...] = ("detect", "bt", "fv", "fll")
END_TO_END = "crct track code path, writing annot/*.pts + track.json to a temporary folder"

NetsFactory = Callable[[MethodSpec, str], Any]


def speed_devices(device: str) -> list[str]:
    """``auto``: the CPU, and CUDA when present; ``cpu`` or ``cuda``: that one only."""
    import torch

    from crct_cli.tracking.networks import resolve_device

    if device == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [resolve_device(device).type]


def describe_device(device: str) -> str:
    """A human description: the GPU's name, or the CPU and its core count."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


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
class DeviceSpeed:
    """One method on one device for one video."""

    method: str
    device: str
    description: str
    networks: dict[str, Timing]  #: isolated, per network
    in_run: dict[str, Timing]  #: as timed by the networks during the end-to-end run
    frames: int
    seconds: float
    weight_files: dict[str, str] = field(default_factory=dict)  #: role -> path (hashed in JSON)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "device": self.device,
            "description": self.description,
            "ms_per_call": {k: v.to_json() for k, v in self.networks.items()},
            "in_run_ms_per_call": {k: v.to_json() for k, v in self.in_run.items()},
            "end_to_end": {
                "fps": round(self.fps, 3),
                "frames": self.frames,
                "seconds": round(self.seconds, 3),
                "measures": END_TO_END,
            },
        }


@dataclass
class VideoSpeed:
    video: str
    width: int
    height: int
    frames: int
    decode_seconds: float
    runs: list[DeviceSpeed] = field(default_factory=list)

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
        _timed(samples["detect"], lambda im=image: nets.detect(im))
        _timed(samples["fll"], lambda im=image: nets.localize(im, box))
    if mode in ("crct", "bt"):
        state = None
        nets.bt_step(images[0], images[1 % len(images)], box, None)  # warm-up
        for prev, cur in zip(images, images[1:], strict=False):
            _, state = _timed(
                samples["bt"], lambda p=prev, c=cur, s=state: nets.bt_step(p, c, box, s)
            )
    if mode == "crct":
        nets.validate(first, points)  # warm-up
        for image in images[1:]:
            _timed(samples["fv"], lambda im=image: nets.validate(im, points))
    return {name: _timing(v) for name, v in samples.items() if v}


def _iter_devices(devices: list[str], specs: list[MethodSpec]) -> Iterator[tuple[str, MethodSpec]]:
    for device in devices:
        for spec in specs:
            yield device, spec


def measure_speed(
    videos: list[Path],
    devices: list[str],
    specs: list[MethodSpec],
    nets_factory: NetsFactory | None = None,
    seq_bt: int = 2,
    probe_frames: int = PROBE_FRAMES,
    log: Callable[[str], None] | None = None,
) -> list[VideoSpeed]:
    """Decode fps, isolated per-network ms and end-to-end fps for every video/method/device.

    Networks are built once per (method, device) by ``nets_factory`` (default: the shipped
    networks through :func:`build_networks`).
    """
    from crct_cli.tracking.pipeline import track_video

    if not videos:
        raise CrctError("--speed needs at least one VIDEO")
    for video in videos:
        if not video.is_file():
            raise CrctError(f"{video}: no such video file")
    factory = nets_factory or (lambda spec, device: build_networks(spec, device))
    results = []
    for video in videos:
        info = probe_video(video)
        frames, seconds = measure_decode(video)
        results.append(VideoSpeed(str(video), info.width, info.height, frames, seconds))
    images = {str(v): _first_frames(v, probe_frames + 1) for v in videos}
    for device, spec in _iter_devices(devices, specs):
        nets = factory(spec, device)
        description = describe_device(device)
        for result in results:
            if log is not None:
                log(f"speed: {Path(result.video).name} {spec.name} on {device}")
            networks = probe_networks(nets, spec.mode, images[result.video])
            timings = getattr(nets, "timings", None)
            if isinstance(timings, dict):
                timings.clear()
            config = TrackerConfig(seq_bt=seq_bt, mode=spec.mode)
            with tempfile.TemporaryDirectory(prefix="crct-speed-") as tmp:
                summary = track_video(Path(result.video), Path(tmp) / "out", nets, config)
            in_run = {k: _timing(v) for k, v in (getattr(nets, "timings", None) or {}).items() if v}
            result.runs.append(
                DeviceSpeed(
                    method=spec.name,
                    device=device,
                    description=description,
                    networks=networks,
                    in_run=in_run,
                    frames=summary.frames,
                    seconds=summary.seconds,
                    weight_files=weight_files_of(nets),
                )
            )
    return results
