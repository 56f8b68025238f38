"""The library versions and the CPU a number or a weight file came from.

Recorded in ``results.json`` and in each new manifest entry: a recorded ``crct train`` command
gave the same file again on the machine that made it, and another one on a machine
with another CPU and other library versions, so the entry says which.
"""

from __future__ import annotations

import platform

import numpy as np

from crct_cli import __version__


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what :mod:`platform` knows: training's
    arithmetic, and so a retrained file's sha256, can differ from one CPU to another."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """crct, torch, numpy and Python versions, the platform string and the CPU model."""
    import torch  # imported here: reading the manifest alone needs no torch

    return {
        "crct": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
    }
