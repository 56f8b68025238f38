"""Which engine runs the networks: ``--backend auto|torch|onnx`` x ``--device auto|cpu|cuda``.

``auto`` picks ONNX Runtime on the CPU (2x faster per call there, and no PyTorch import at
start-up) and PyTorch on CUDA. Deciding must itself be cheap: on a machine without an NVIDIA
driver nothing heavier than ``os.path`` is consulted, so a CPU-only run never imports torch.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from crct_cli.errors import CrctError, OptionError

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Environment variable: ONNX Runtime threads per network (default: its own choice, the cores).
THREADS_ENV = "CRCT_THREADS"


@dataclass(frozen=True)
class Engine:
    """A resolved choice: ``backend`` torch or onnx, ``device`` cpu or cuda."""

    backend: str
    device: str

    def __str__(self) -> str:
        return f"{self.backend} on {self.device}"


def _nvidia_driver_present() -> bool:
    """An NVIDIA driver is loaded (the device nodes exist); cheap, imports nothing."""
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()


def cuda_available() -> bool:
    """True when PyTorch can use a CUDA device. Imports torch only where a GPU may exist."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if "torch" not in sys.modules and not _nvidia_driver_present():
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_cuda_provider_available() -> bool:
    if not onnxruntime_available():
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def device_name(device: object) -> str:
    """``cpu``, ``cuda``, ``cuda:0`` or a ``torch.device`` -> ``cpu`` / ``cuda`` / ``auto``."""
    name = str(getattr(device, "type", device)).split(":")[0]
    if name not in DEVICES:
        raise OptionError("device", f"must be auto, cpu or cuda, got {device!r}")
    return name


def no_cuda() -> OptionError:
    """``device`` cuda where there is none; the other choices written as each side writes
    them."""
    return OptionError(
        "device",
        "'cuda': no CUDA device is available here (use 'cpu' or 'auto')",
        cli="cuda: no CUDA device is available here (use cpu or auto)",
    )


def resolve_engine(backend: str = "auto", device: object = "auto") -> Engine:
    """The engine a ``--backend`` / ``--device`` pair asks for, or one clear error.

    ``device`` auto: CUDA when PyTorch sees one, else the CPU. ``backend`` auto: torch on CUDA,
    onnx on the CPU (torch if onnxruntime is not installed).
    """
    if backend not in BACKENDS:
        raise OptionError("backend", f"must be auto, torch or onnx, got {backend!r}")
    dev = device_name(device)
    if dev == "auto":
        dev = "cuda" if cuda_available() else "cpu"
    elif dev == "cuda" and backend != "onnx" and not cuda_available():
        raise no_cuda()
    if backend == "auto":
        backend = "torch" if dev == "cuda" or not onnxruntime_available() else "onnx"
    if backend == "onnx":
        if not onnxruntime_available():
            install = "needs the onnxruntime package (pip install onnxruntime)"
            raise OptionError("backend", f"'onnx' {install}", cli=f"onnx {install}")
        if dev == "cuda" and not onnx_cuda_provider_available():
            raise OptionError(
                "backend",
                "'onnx' with device='cuda': this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu, or use backend='torch')",
                cli="onnx --device cuda: this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu, or use --backend torch)",
            )
    return Engine(backend, dev)


def onnx_threads() -> int:
    """ONNX Runtime's intra-op threads per session: ``$CRCT_THREADS``, else 0 (its default)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return 0
    try:
        threads = int(text)
    except ValueError:
        raise CrctError(f"${THREADS_ENV} must be a whole number, got {text!r}") from None
    if threads < 0:
        raise CrctError(f"${THREADS_ENV} must be 0 (automatic) or more, got {threads}")
    return threads


#: Set once the process is crct's own (:func:`share_threads`).
_owned: list[bool] = []


def share_threads() -> None:
    """Let crct run all its ONNX Runtime sessions in this process on one shared pool of threads
    (:func:`crct_cli.runtime.onnx_nets.shared_pool`), sized by the first CPU engine made.

    For a process that is crct's alone (the ``crct`` command, a batch worker): ONNX Runtime
    then requires every session of the process, crct's or not, to use that pool, so a program
    that makes sessions of its own leaves this off and crct keeps a pool per session.
    """
    if not _owned:
        _owned.append(True)


def threads_shared() -> bool:
    """Whether :func:`share_threads` was called in this process."""
    return bool(_owned)
