"""crct: robust 68-point facial landmark tracking.

``from crct_cli import Tracker`` is the Python API (:mod:`crct_cli.api`), ``track_videos``
its run over many videos and ``load_track`` reads a run back as arrays; they are imported on
first use, so the command line starts without loading them.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Tracker", "TrackedFrame", "Face", "track_videos", "load_track", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Tracker", "TrackedFrame", "Face", "track_videos"):
        from crct_cli import api

        return getattr(api, name)
    if name == "load_track":
        from crct_cli.io.track_json import load_track

        return load_track
    raise AttributeError(f"module 'crct_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so that tab completion offers ``crct_cli.Tracker``."""
    return sorted({*globals(), *__all__})
