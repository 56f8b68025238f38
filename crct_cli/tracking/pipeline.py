"""``crct track``: decode -> track -> write, streaming, for one video at a time.

Outputs under the video's output folder:

- ``annot/000001.pts``: face 0 (the papers' single target), 300-VW layout, one file per
  decoded frame in which face 0 has points, numbered from 1 in decoding order;
- ``faces/<face_id>/annot/000001.pts ...``: every face, when tracking other than one face;
- ``landmarks.csv``: every face of every frame, OpenFace 2.x layout (crct_cli.io.openface_csv);
- ``track.json``: the ``crct.track/2`` schema of docs/formats.md; ``overlay.mp4`` on request;
- ``crops/000001.png`` and ``crops/000001.pts`` (``faces/<face_id>/crops/`` with several faces)
  on request: each face cut out eye-levelled (:func:`crct_cli.geometry.face_crop`), its points
  in the crop's pixels, for models that read aligned faces (expression, action units).

Everything is written under temporary names and renamed when the video is complete, so an
interrupted run leaves no folder that looks finished. A video in which no face is ever found
is a result (status ``no_face``): every frame lost, an empty ``annot/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crct_cli.draw import draw_faces
from crct_cli.errors import OptionError, whole_number
from crct_cli.geometry import check_crops, face_crop
from crct_cli.io.atomic import make_output_folder, replace_dir
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import check_pts_origin, format_pts
from crct_cli.io.openface_csv import LandmarksCsvWriter
from crct_cli.io.track_json import (
    PTS_ORIGIN_KEY,
    SCHEMA_FACES,
    FaceRecord,
    FacesRecord,
    TrackJsonWriter,
)
from crct_cli.io.video import VideoWriter, probe_video
from crct_cli.tracking.orientation import turned_size

#: The files a finished video folder holds (``overlay.mp4`` and ``crops/`` besides, on request).
OUTPUTS: tuple[str, ...] = ("annot", "track.json", "landmarks.csv")
#: ``--overlay``'s video in a run's folder (removed by a run without ``--overlay``: it would be
#: stale); ``crct draw`` writes ``draw.mp4`` beside it, never this.
OVERLAY = "overlay.mp4"


@dataclass
class TrackSummary:
    video: str
    out_dir: str
    frames: int
    with_points: int  # frames in which face 0 has points
    tracked: int  # face 0's frames per state
    redetected: int
    lost: int
    redetections: int
    seconds: float
    faces: int = 0  # distinct face ids
    face_frames: int = 0  # rows of landmarks.csv
    #: frames the container's header promised beyond those decoded (a truncated file)
    missing_frames: int = 0
    rotate: int = 0  #: the clockwise quarter turn the frames were read in (--rotate)
    cuts: int = 0  #: frames that start a new shot (--shot-cuts)
    #: what the reader warned of while reading this video (a damaged frame passed over, a
    #: change of picture size), so that a batch's summary keeps it beside the video
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def status(self) -> str:
        """``ok``, or ``no_face`` when no frame had a face."""
        return "ok" if self.face_frames else "no_face"


#: Warnings a video's record keeps at most (a file damaged throughout says so in the first).
MAX_WARNINGS = 20


class _Warnings(logging.Handler):
    """The warnings crct logs about one video while it is read (those naming its path: a
    decoding thread's too, another video's not)."""

    def __init__(self, video: Path) -> None:
        super().__init__(logging.WARNING)
        self.video = str(video)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = " ".join(record.getMessage().split())
        if self.video in text and len(self.said) < MAX_WARNINGS and text not in self.said:
            self.said.append(text)


@contextlib.contextmanager
def _warnings_of(video: Path) -> Iterator[list[str]]:
    """Collect what crct warns of about ``video`` inside the block."""
    handler = _Warnings(video)
    logger = logging.getLogger("crct_cli")
    logger.addHandler(handler)
    try:
        yield handler.said
    finally:
        logger.removeHandler(handler)


class _PtsFolders:
    """``annot/`` for face 0 and, when asked, ``faces/<id>/annot/`` and the face crops
    (``crops/``, ``faces/<id>/crops/``), built under temporary names and swapped in at
    :meth:`commit`; without ``pts`` no ``.pts`` files of the frames (crops keep theirs);
    ``origin`` (``--pts-origin``) is added to the points of every ``.pts`` file, the crops'
    too, and nothing else."""

    def __init__(
        self, out_dir: Path, per_face: bool, crops: int = 0, pts: bool = True, origin: int = 0
    ) -> None:
        self.out_dir, self.per_face, self.crops, self.pts = out_dir, per_face, crops, pts
        self.origin = origin
        self.annot = out_dir / ".annot.partial"
        self.faces = out_dir / ".faces.partial"
        self.crop_dir = out_dir / ".crops.partial"
        self.discard()
        if pts:
            self.annot.mkdir()
        if per_face:
            self.faces.mkdir()
        if crops:
            self.crop_dir.mkdir()

    def write(self, frame_index: int, face_id: int, points: Any, image: Any = None) -> None:
        stem = f"{frame_index + 1:06d}"
        text = format_pts(points, self.origin)
        crop = None
        if self.crops and image is not None:
            crop = face_crop(image, points, self.crops)
        if face_id == 0:
            self._put(self.annot if self.pts else None, self.crop_dir, stem, text, crop)
        if self.per_face:
            face = self.faces / str(face_id)
            if self.pts:
                (face / "annot").mkdir(parents=True, exist_ok=True)
            self._put(face / "annot" if self.pts else None, face / "crops", stem, text, crop)

    def _put(self, annot: Path | None, crops: Path, stem: str, text: str, crop: Any) -> None:
        if annot is not None:
            (annot / f"{stem}.pts").write_text(text, encoding="utf-8")
        if crop is not None:
            crops.mkdir(parents=True, exist_ok=True)
            write_image(crops / f"{stem}.png", crop[0])
            (crops / f"{stem}.pts").write_text(format_pts(crop[1], self.origin), encoding="utf-8")

    def commit(self) -> None:
        if self.pts:
            replace_dir(self.annot, self.out_dir / "annot")
        elif (self.out_dir / "annot").exists():  # points of an earlier run
            shutil.rmtree(self.out_dir / "annot")
        if self.per_face and (self.pts or self.crops):
            replace_dir(self.faces, self.out_dir / "faces")
        elif (self.out_dir / "faces").exists():  # per-face files of an earlier run
            shutil.rmtree(self.out_dir / "faces")
        if self.crops:
            replace_dir(self.crop_dir, self.out_dir / "crops")
        elif (self.out_dir / "crops").exists():  # crops of an earlier run
            shutil.rmtree(self.out_dir / "crops")

    def discard(self) -> None:
        for folder in (self.annot, self.faces, self.crop_dir):
            shutil.rmtree(folder, ignore_errors=True)


def missing_frames(promised: int | None, decoded: int) -> int:
    """How many frames a container's header promised that never decoded: a file cut short (an
    interrupted copy or download whose index sits at the front decodes up to the cut without
    an error). Headers may be off by a frame or so, so a shortfall of 1% or a single frame is
    none."""
    if not promised or decoded >= promised - max(1, promised // 100):
        return 0
    return promised - decoded


def check_max_frames(max_frames: Any) -> int | None:
    """``--max-frames``: unset (every frame), or a whole number 1 or more, returned as int.
    Python's ``max_frames=None`` is the flag left out, so each is told its own."""
    if max_frames is None:
        return None
    count = whole_number(max_frames)
    if count is None:
        raise OptionError(
            "max_frames",
            f"must be a whole number (None: every frame), got {max_frames!r}",
            cli=f"must be a whole number, got {max_frames!r}",
        )
    if count < 1:
        raise OptionError(
            "max_frames",
            f"must be 1 or more (None: every frame), got {max_frames!r}",
            cli=f"must be 1 or more (unset: every frame), got {max_frames!r}",
        )
    return count


@dataclass(frozen=True)
class FrameRange:
    """Which of a video's frames a run tracks: the first ``skip`` are passed over, then at
    most ``count`` (None: to the end). The frames keep their numbers and times."""

    skip: int = 0
    count: int | None = None

    @classmethod
    def of(cls, skip: Any = 0, count: Any = None) -> FrameRange:
        """``--skip-frames`` and ``--max-frames`` checked (whole numbers, 0+ and 1+)."""
        whole = whole_number(skip)
        if whole is None:
            raise OptionError("skip_frames", f"must be a whole number, got {skip!r}")
        if whole < 0:
            raise OptionError("skip_frames", f"must be 0 or more, got {skip!r}")
        return cls(whole, check_max_frames(count))

    def settings(self) -> dict[str, int]:
        """What differs from a whole video, for a resume marker and a track.json header."""
        out = {"skip_frames": self.skip} if self.skip else {}
        return out if self.count is None else {**out, "max_frames": self.count}

    def expected(self, n_frames: int | None) -> int | None:
        """The frames of a video of ``n_frames`` (its header's count, None: unknown) in range
        (None where the header does not say, or says no more than the frames skipped)."""
        if n_frames is None or n_frames <= self.skip:
            return self.count
        left = n_frames - self.skip
        return left if self.count is None else min(left, self.count)


def track_video(
    video: Path,
    out_dir: Path,
    tracker: Any,
    overlay: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
    crops: int = 0,
    frames_in: FrameRange | None = None,
    pts: bool = True,
    name: str | None = None,
    csv_style: str = "crct",
    out_name: str | None = None,
    pts_origin: int = 0,
) -> TrackSummary:
    """Track one video into ``out_dir`` with a :class:`crct_cli.api.Tracker`.

    ``on_frame(done, total)`` reports progress; ``crops``: each face's crop of that side is
    written too (0: none); ``frames_in``: which frames (None: all of them); ``pts``: a
    ``.pts`` file per frame in ``annot/`` (else landmarks.csv and track.json only);
    ``name``: the video as the user named it, for track.json (None: ``video`` itself; a Ray
    worker reads it at its absolute path); ``csv_style``: landmarks.csv's layout
    (``--csv-style``: crct's or OpenFace's); ``out_name``: ``out_dir`` as the user named it,
    for the summary (None: ``out_dir``); ``pts_origin``: added to the points of every ``.pts``
    file (``--pts-origin 1``: 300-W's convention, as menpo reads them), recorded in
    track.json's header; track.json and landmarks.csv keep crct's own (from 0).
    """
    pts_origin = check_pts_origin(pts_origin)
    span = frames_in or FrameRange()
    info = probe_video(video, tracker.sequence_fps)
    angle = tracker.orientation(video, span.skip)  # --rotate auto looks at the first frames
    width, height = turned_size(info.width, info.height, angle)
    total = span.expected(info.n_frames)  # for the progress bar
    make_output_folder(out_dir)
    header = {
        "video": str(video) if name is None else name,
        "video_resolved": os.path.abspath(video),  # where crct draw finds it from anywhere
        "width": width,
        "height": height,
        "fps": info.fps,
        "n_frames": info.n_frames,
        **span.settings(),
        **({"rotate": angle} if angle else {}),  # the frames' clockwise turn, for crct draw
        **({PTS_ORIGIN_KEY: pts_origin} if pts_origin else {}),  # what the .pts files add
        "method": tracker.config.mode,
        "faces": tracker.multi.faces,
        "config": tracker.describe(),
    }
    if video.is_dir():  # an image sequence: which file each frame index is
        from crct_cli.io.sequence import sequence_images

        names = [p.name for p in sequence_images(video)]  # by frame index, up to the last
        header["images"] = names if span.count is None else names[: span.skip + span.count]
    check_crops(crops)
    folders = _PtsFolders(
        out_dir, per_face=tracker.multi.faces != 1, crops=crops, pts=pts, origin=pts_origin
    )
    counts = {"tracked": 0, "redetected": 0, "lost": 0}
    frames = with_points = face_frames = cuts = 0
    ids: set[int] = set()
    writer = csv = None
    poser = getattr(tracker, "pose", None)
    focal = None if poser is None else poser.focal  # the overlay draws poses as fitted
    t0 = time.perf_counter()
    try:
        with (
            _warnings_of(video) as warned,
            TrackJsonWriter(out_dir / "track.json", header, SCHEMA_FACES) as track_json,
        ):
            csv = LandmarksCsvWriter(
                out_dir / "landmarks.csv", pose=poser is not None, style=csv_style
            )
            if overlay:
                writer = VideoWriter(out_dir / OVERLAY, info.fps, width, height)
            reached = span.skip  # the number after the last frame's (frames lost inside count)
            for frame in tracker.track(video, span.count, span.skip, rotate=angle):
                frames += 1
                cuts += frame.cut
                reached = frame.index + 1
                first = frame.face(0)
                counts[first.state if first is not None else "lost"] += 1
                for face in frame.faces:
                    ids.add(face.face_id)
                    face_frames += 1
                    if face.face_id == 0:
                        with_points += 1
                    folders.write(frame.index, face.face_id, face.points, frame.image)
                csv.add(frame.index, frame.time, frame.faces)
                track_json.add(
                    FacesRecord(
                        frame.index,
                        frame.time,
                        [
                            FaceRecord(f.face_id, f.box, f.points, f.score, f.state, f.pose)
                            for f in frame.faces
                        ],
                        frame.cut,
                    )
                )
                if writer is not None:
                    label = f"{frame.index + 1}"
                    writer.write(
                        draw_faces(frame.image, frame.faces, label, focal), frame.index, frame.time
                    )
                if on_frame is not None:
                    on_frame(frames, total)
            # a file cut short: what its header promised and never came (the frames skipped
            # came, decoded); none when the frames asked for all came
            all_asked = span.count is not None and reached >= span.skip + span.count
            missing = 0 if all_asked else missing_frames(info.n_frames, reached)
            summary = TrackSummary(
                str(video) if name is None else name,
                str(out_dir) if out_name is None else out_name,
                frames,
                with_points,
                counts["tracked"],
                counts["redetected"],
                counts["lost"],
                tracker.redetections,
                time.perf_counter() - t0,
                len(ids),
                face_frames,
                missing,
                angle,
                cuts,
                list(warned),
            )
            if writer is not None:
                writer.close()
                writer = None
            elif (out_dir / OVERLAY).exists():  # a stale overlay of an earlier run
                (out_dir / OVERLAY).unlink()
            folders.commit()
            csv.close()
            csv = None
            track_json.close({**asdict(summary), "fps": summary.fps, "status": summary.status})
    finally:
        if writer is not None:
            writer.abort()
        if csv is not None:
            csv.abort()
        folders.discard()
    return summary
