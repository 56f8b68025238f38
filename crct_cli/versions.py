"""The library versions a number or a weight file came from.

Recorded in ``results.json`` and in each new manifest entry: a training run is reproduced bit
for bit only with the same torch (and numpy) on the same kind of CPU, so the entry says which.
"""

from __future__ import annotations

import platform

import numpy as np

from crct_cli import __version__


def versions() -> dict[str, str]:
    """crct, torch, numpy and Python versions, and the platform string."""
    import torch  # imported here: reading the manifest alone needs no torch

    return {
        "crct": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
