"""``OUT/summary.csv``: one row per input video, rewritten atomically as a run goes.

Columns: ``input`` (the video's path as named or found), ``output`` (its folder relative to
``OUT``), ``status`` (``ok``, ``no_face``, ``failed``, or ``pending`` for a video an interrupted
run did not reach), ``frames``, ``faces`` (distinct face ids), ``seconds`` (tracking time),
``skipped`` (``yes`` when complete outputs of an earlier run were kept), ``error`` (the
one-line reason of a failed video), ``missing_frames`` (frames the file's header promised
that never decoded: a file cut short; empty when none) and ``rotate`` (the clockwise quarter
turn its frames were read in, ``--rotate`` or the one ``auto`` chose; empty when none),
``cuts`` (the shot cuts found, ``--shot-cuts``; empty when none) and ``warnings`` (what the
reader warned of while reading it, `` | `` between them: a damaged frame passed over, a change
of picture size; empty when none).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crct_cli.io.atomic import write_text_atomic

COLUMNS: tuple[str, ...] = (
    "input",
    "output",
    "status",
    "frames",
    "faces",
    "seconds",
    "skipped",
    "error",
    "missing_frames",
    "rotate",
    "cuts",
    "warnings",
)
STATUSES: tuple[str, ...] = ("ok", "no_face", "failed", "pending")
SUMMARY_NAME = "summary.csv"


@dataclass
class VideoResult:
    """What became of one video."""

    input: str
    output: str
    status: str = "pending"
    frames: int = 0
    faces: int = 0
    face_frames: int = 0
    seconds: float = 0.0
    skipped: bool = False
    error: str = ""
    missing_frames: int = 0  #: frames the file's header promised that never decoded
    rotate: int = 0  #: the clockwise quarter turn the frames were read in (--rotate)
    cuts: int = 0  #: frames that start a new shot (--shot-cuts)
    #: what the reader warned of while reading it (a damaged frame passed over)
    warnings: list[str] = field(default_factory=list)

    def row(self) -> dict[str, str]:
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "frames": str(self.frames),
            "faces": str(self.faces),
            "seconds": f"{self.seconds:.2f}",
            "skipped": "yes" if self.skipped else "",
            "error": " ".join(self.error.split()),
            "missing_frames": str(self.missing_frames) if self.missing_frames else "",
            "rotate": str(self.rotate) if self.rotate else "",
            "cuts": str(self.cuts) if self.cuts else "",
            "warnings": " | ".join(" ".join(w.split()) for w in self.warnings),
        }


def write_summary(path: Path, results: Iterable[VideoResult]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow(result.row())
    # a path with bytes that are not UTF-8 (an old archive's Latin-1 names) keeps its bytes
    write_text_atomic(path, buffer.getvalue(), errors="surrogateescape")


def read_summary(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))
