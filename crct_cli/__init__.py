"""crct: robust 68-point facial landmark tracking.

``from crct_cli import Tracker`` is the Python API (:mod:`crct_cli.api`), and
``track_videos`` its run over many videos; they are imported on first use, so the command line
starts without loading them.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Tracker", "TrackedFrame", "Face", "track_videos", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Tracker", "TrackedFrame", "Face", "track_videos"):
        from crct_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'crct_cli' has no attribute {name!r}")
