"""Which videos a ``crct track`` run tracks, and which folder each one writes to.

- one video named alone writes to ``OUT`` itself (``crct track talk.mp4 --out lm/``);
- several videos named directly write to ``OUT/<stem>/``;
- a folder is walked recursively for the suffixes crct reads (:data:`VIDEO_SUFFIXES` and
  :data:`READ_ONLY_SUFFIXES`), and
  ``FOLDER/sub/a.mp4`` writes to ``OUT/sub/a/``;
- a folder that holds images and no video file is an image sequence, one video
  (:mod:`crct_cli.io.sequence`): named alone it writes to ``OUT``, found in a walk
  ``FOLDER/sub/seq/`` writes to ``OUT/sub/seq/`` (CK+'s ``S005/001/`` frames, 300-VW's
  extracted ones).

Two videos that would write to the same folder (``a.mp4`` and ``a.mov``; ``x/a.mp4`` in two
folders), or one inside the other's, are refused before anything runs: nothing of one video
may be mixed with another's. The walk skips hidden entries (temporary files, ``._a.mp4``),
``OUT`` itself when it lies inside a folder being walked, and crct output folders (those
holding ``track.json`` or its temporary name), so an overlay.mp4 is never taken for an input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from crct_cli.errors import CrctError, WordedError
from crct_cli.io.images import is_image
from crct_cli.io.sequence import sequence_images
from crct_cli.io.video import READ_ONLY_SUFFIXES, VIDEO_SUFFIXES, is_transport_stream, is_video

#: Files whose presence marks a folder as crct's own output (complete, running or killed).
OUTPUT_MARKERS: tuple[str, ...] = ("track.json", ".track.partial.json", ".crct-input.json")


@dataclass(frozen=True)
class VideoJob:
    """One video of a run: where it is read from and where its outputs go.

    ``label`` is the video's path as the user would type it (messages, ``summary.csv``);
    ``output`` is ``out_dir`` relative to ``OUT`` in POSIX form (``.`` for a lone video);
    ``problem``, when set, is why this input cannot be tracked (a folder with nothing to track
    among several inputs): the job fails with it alone, in its turn.
    """

    source: Path
    out_dir: Path
    label: str
    output: str
    problem: str | None = None

    @cached_property
    def size(self) -> int:
        """Bytes (an image sequence's: its images'), or 0 when the input cannot be read
        (tracking will then say why); read once (the run orders by it, the worker count's
        frame probe samples by it)."""
        try:
            if self.source.is_dir():
                return sum(p.stat().st_size for p in sequence_images(self.source))
            return self.source.stat().st_size
        except (OSError, CrctError):
            return 0


def discover(inputs: Sequence[Path], out: Path) -> list[VideoJob]:
    """The videos of ``inputs`` (files and folders) with their output folders, in order.

    Raises :class:`CrctError` for a lone input that is missing, a lone folder without videos,
    a folder of frames that is ``out`` itself, a video named twice with two destinations, and
    two videos that would write to the same place. One missing or unreadable file, or one
    folder with nothing to track, among several inputs is a job like the others: it fails
    alone when its turn comes (one bad input never stops the others).
    """
    if not inputs:
        raise CrctError("name at least one video or folder to track")
    for path in inputs:
        if _frames_in(path) and os.path.realpath(path) == os.path.realpath(out):
            # its outputs would mix with its frames, and a re-run would take it for an output
            raise WordedError(
                f"{path}: out is this image sequence's own folder; give a folder inside it "
                f"({path / 'crct'}) or elsewhere",
                f"{path}: --out is this image sequence's own folder; give a folder inside it "
                f"(--out {path / 'crct'}) or elsewhere",
            )
    walks = {i: _walk(path, out) for i, path in enumerate(inputs) if path.is_dir()}
    # a folder whose walk finds only itself is an image sequence, tracked as one video
    sequence = {i for i, found in walks.items() if found == [inputs[i]]}
    lone_video = len(inputs) == 1 and (not inputs[0].is_dir() or 0 in sequence)
    jobs: list[VideoJob] = []
    for i, path in enumerate(inputs):
        if i in sequence:
            if lone_video:
                jobs.append(VideoJob(path, out, str(path), "."))
            else:
                name = path.resolve().name
                jobs.append(VideoJob(path, out / name, str(path), name))
        elif path.is_dir():
            found = walks[i]
            if not found:
                suffixes = " ".join(VIDEO_SUFFIXES + READ_ONLY_SUFFIXES)
                problem = (
                    f"{path}: no video files ({suffixes}) and no folder of images in this folder"
                )
                if len(inputs) == 1:
                    raise CrctError(problem)
                name = path.resolve().name
                jobs.append(VideoJob(path, out / name, str(path), name, problem))
            for video in found:
                rel = PurePosixPath(video.relative_to(path).as_posix())
                if not video.is_dir():
                    rel = rel.with_suffix("")
                jobs.append(VideoJob(video, out / rel, str(video), rel.as_posix()))
        elif lone_video:
            if not (path.exists() or path.is_symlink()):
                raise CrctError(f"{path}: no such video file or folder")
            if not path.is_file():
                raise CrctError(f"{path}: not a video file or folder")
            jobs.append(VideoJob(path, out, str(path), "."))
        else:  # one of several: a missing or unreadable one fails alone when its turn comes
            jobs.append(VideoJob(path, out / path.stem, str(path), path.stem))
    return check_destinations(jobs)


def _frames_in(path: Path) -> bool:
    """A folder holding images and no video file (an image sequence, by its own files)."""
    try:
        names = [e.name for e in os.scandir(path) if e.is_file()]
    except OSError:
        return False
    return any(map(is_image, names)) and not any(map(is_video, names))


def check_destinations(jobs: Sequence[VideoJob]) -> list[VideoJob]:
    """Drop exact repeats; refuse shared or nested output folders (case-insensitively, so
    the outputs can be copied to any file system)."""
    by_source: dict[str, VideoJob] = {}
    unique: list[VideoJob] = []
    for job in jobs:
        key = os.path.realpath(job.source)
        seen = by_source.get(key)
        if seen is None:
            by_source[key] = job
            unique.append(job)
        elif seen.output != job.output:
            raise CrctError(
                f"{job.label} is named twice, as {seen.label} too, with two output folders "
                f"({seen.output} and {job.output}); name it once"
            )
    by_output: dict[str, VideoJob] = {}
    for job in unique:
        key = job.output.casefold()
        other = by_output.get(key)
        if other is not None:
            raise CrctError(
                f"{other.label} and {job.label} would both write to {job.out_dir}; "
                "rename one or track them in separate runs"
            )
        by_output[key] = job
    for job in unique:
        for parent in PurePosixPath(job.output.casefold()).parents:
            other = by_output.get(parent.as_posix())
            if other is not None and other is not job and parent.as_posix() != ".":
                raise CrctError(
                    f"{job.label} would write inside the output folder of {other.label} "
                    f"({other.out_dir}); rename one or track them in separate runs"
                )
    return unique


def _walk(folder: Path, out: Path) -> list[Path]:
    """Video files and image sequences (their folders) under ``folder``, sorted, following
    links once (no loops; a file linked into the folder it is in, or twice, is one video). A
    folder holding images, no video and nothing to track in its subfolders is a sequence;
    elsewhere loose images (a cover, a thumbnail) are left. A link to a video that is gone is
    kept: it fails alone, in summary.csv, rather than vanishing from the run."""
    skip = os.path.realpath(out)
    seen: set[str] = set()
    seen_videos: set[str] = set()

    def visit(directory: Path) -> list[Path]:
        real = os.path.realpath(directory)
        if real in seen or (real == skip and directory != folder):
            return []
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise CrctError(f"{directory}: cannot list this folder ({exc.strerror})") from None
        names = {e.name for e in entries}
        if any(m in names for m in OUTPUT_MARKERS):
            return []  # a crct output folder: its overlay.mp4 is not an input
        subdirs: list[Path] = []
        videos: list[Path] = []
        images = False
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                subdirs.append(path)
            elif (
                is_video(entry.name)
                and (entry.is_file() or not path.exists())
                and (path.suffix.lower() != ".ts" or is_transport_stream(path))
            ):
                real = os.path.realpath(path)
                if real not in seen_videos:
                    seen_videos.add(real)
                    videos.append(path)
            elif is_image(entry.name) and entry.is_file():
                images = True
        below = [found for sub in subdirs for found in visit(sub)]
        if images and not videos and not below:
            return [directory]  # an image sequence: images are all there is to track here
        return videos + below

    return visit(folder)
