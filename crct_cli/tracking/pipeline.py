"""``crct track``: decode -> track -> write, streaming, for one video at a time.

Outputs under the video's output folder: ``annot/000001.pts`` (300-VW layout, one file per
decoded frame that has points, numbered from 1 in decoding order), ``track.json`` (the
``crct.track/1`` schema of docs/formats.md) and, on request, ``overlay.mp4``. Everything is
written under temporary names and renamed when the video is complete, so an interrupted run
leaves no folder that looks finished.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from crct_cli.draw import draw_landmarks
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import format_pts
from crct_cli.io.track_json import FrameRecord, TrackJsonWriter
from crct_cli.io.video import VideoWriter, iter_frames, probe_video
from crct_cli.tracking.tracker import CRCTTracker, Networks, TrackerConfig


@dataclass
class TrackSummary:
    video: str
    out_dir: str
    frames: int
    with_points: int
    tracked: int
    redetected: int
    lost: int
    redetections: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def track_video(
    video: Path,
    out_dir: Path,
    nets: Networks,
    config: TrackerConfig,
    init_box: np.ndarray | None = None,
    overlay: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> TrackSummary:
    """Track one video into ``out_dir``; ``on_frame(done, total)`` reports progress."""
    info = probe_video(video)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrctError(f"{out_dir}: cannot create output folder ({exc.strerror})") from None
    annot_tmp = out_dir / ".annot.partial"
    shutil.rmtree(annot_tmp, ignore_errors=True)
    annot_tmp.mkdir()
    header = {
        "video": str(video),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "n_frames": info.n_frames,
        "method": config.mode,
        "config": {**asdict(config), "init_box": None if init_box is None else list(init_box)},
    }
    tracker = CRCTTracker(nets, config, init_box)
    counts = {"tracked": 0, "redetected": 0, "lost": 0}
    frames = with_points = 0
    writer = None
    t0 = time.perf_counter()
    try:
        with TrackJsonWriter(out_dir / "track.json", header) as track_json:
            if overlay:
                writer = VideoWriter(out_dir / "overlay.mp4", info.fps, info.width, info.height)
            for frame in iter_frames(video):
                result = tracker.step(frame.image)
                counts[result.state] += 1
                frames += 1
                if result.points is not None:
                    with_points += 1
                    (annot_tmp / f"{frame.index + 1:06d}.pts").write_text(
                        format_pts(result.points), encoding="utf-8"
                    )
                track_json.add(
                    FrameRecord(
                        frame.index,
                        frame.time,
                        result.box,
                        result.points,
                        result.score,
                        result.state,
                    )
                )
                if writer is not None:
                    label = f"{frame.index + 1} {result.state}"
                    if result.score is not None:
                        label += f" p={result.score:.2f}"
                    writer.write(
                        draw_landmarks(frame.image, result.points, result.box, result.state, label)
                    )
                if on_frame is not None:
                    on_frame(frames, info.n_frames)
            if with_points == 0:
                raise CrctError(f"{video}: no face found in any of its {frames} frames")
            seconds = time.perf_counter() - t0
            summary = TrackSummary(
                str(video),
                str(out_dir),
                frames,
                with_points,
                counts["tracked"],
                counts["redetected"],
                counts["lost"],
                tracker.redetections,
                seconds,
            )
            if writer is not None:
                writer.close()
                writer = None
            elif (out_dir / "overlay.mp4").exists():  # a stale overlay of an earlier run
                (out_dir / "overlay.mp4").unlink()
            _replace_dir(annot_tmp, out_dir / "annot")
            track_json.close({**asdict(summary), "fps": summary.fps})
    finally:
        if writer is not None:
            writer.abort()
        shutil.rmtree(annot_tmp, ignore_errors=True)
    return summary
