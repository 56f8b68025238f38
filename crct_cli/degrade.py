"""``crct degrade``: write degraded copies of images, folders and videos (FADeNN's test sets).

The pixel work is done only by :mod:`crct_cli.noise`, the same functions that training
augmentation uses. This module decides what goes where:

* an image ``a.jpg`` -> ``OUT/a.jpg``; a video ``v.mp4`` -> ``OUT/v.mp4`` (every frame degraded,
  written at the source frame rate), and when the video sits in a 300-VW folder that has an
  ``annot/`` folder, that folder is copied to ``OUT/annot/``;
* a folder -> its files mirrored under ``OUT`` by their path relative to that folder
  (recursively); ``.pts`` files are copied alongside unchanged, other files are skipped;
* ``--all`` writes ``OUT/clean/...`` (a byte-for-byte copy of the inputs) and
  ``OUT/<type>/<level>/...`` for the four types and levels 1..3: the twelve 300W-Test-N style
  sets plus the clean one, each with the layout above.

Level 0 (and the ``clean`` set) copies files byte for byte: no re-encoding. Gaussian noise is
drawn from a generator seeded by (seed, output-relative path, type, level), so a file's noise
does not depend on which other files are processed, or in which order, or whether ``--all`` is
used. A grayscale image (all channels equal) is degraded as one channel and stays grayscale.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from crct_cli.errors import CrctError, OnFailure, os_reason, report_failure
from crct_cli.io.atomic import atomic_path, check_writable_folder, make_output_folder
from crct_cli.io.images import is_image, read_image, write_image
from crct_cli.noise import LEVELS, NOISE_TYPES, check_noise, degrade

#: Folder of the unchanged copy in an ``--all`` tree.
CLEAN_DIR = "clean"
#: Files copied unchanged next to the degraded ones.
COPY_SUFFIXES = (".pts",)

ItemKind = Literal["image", "video", "copy"]


@dataclass(frozen=True)
class Variant:
    """One output set: a degradation (``None`` = clean copy) and the folder it goes to."""

    noise_type: str | None
    level: int
    subdir: PurePosixPath

    @property
    def unchanged(self) -> bool:
        return self.noise_type is None or self.level == 0


@dataclass(frozen=True)
class Item:
    """One input file and its path relative to the root of every output set."""

    src: Path
    rel: PurePosixPath
    kind: ItemKind


@dataclass(frozen=True)
class Job:
    item: Item
    variant: Variant
    dst: Path


@dataclass
class DegradePlan:
    """Everything ``crct degrade`` will write, validated before anything is written."""

    out_dir: Path
    seed: int
    variants: list[Variant]
    items: list[Item]
    jobs: list[Job]
    skipped: list[Path] = field(default_factory=list)
    #: inputs that failed, with their line; their remaining jobs (other sets) are not tried
    failed: dict[Path, str] = field(default_factory=dict)
    #: videos cut short: (frames written, frames their header promised that never decoded)
    short: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: videos written losslessly (see :func:`lossless_for`): True all, False none, None the
    #: noise sets only
    lossless: bool | None = None
    #: outputs asked to be lossless that their container's encoders could not write so
    lossy: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.jobs)

    def count(self, kind: ItemKind) -> int:
        """Inputs of this kind written (all of them until :meth:`run` meets a bad one)."""
        return sum(1 for item in self.items if item.kind == kind and item.src not in self.failed)

    def lossless_videos(self) -> int:
        """The videos this plan writes losslessly (see :func:`lossless_for`)."""
        return sum(
            1
            for job in self.jobs
            if job.item.kind == "video"
            and job.variant.noise_type is not None
            and not job.variant.unchanged
            and lossless_for(job.variant.noise_type, self.lossless)
        )

    def run(self, on_failure: OnFailure | None = None) -> Iterator[Job]:
        """Carry out the jobs one by one, yielding each when its output is complete.

        Without ``on_failure`` the first bad input raises; with it each bad input is told there
        once, its other sets are skipped, and the rest goes on.
        """
        for job in self.jobs:
            if job.item.src not in self.failed:
                try:
                    cut = run_job(job, self.seed, self.lossless, self.lossy)
                    if cut is not None:
                        self.short[job.item.src] = cut
                except (CrctError, OSError) as exc:
                    self.failed[job.item.src] = report_failure(on_failure, job.item.src, exc)
            yield job


def lossless_for(noise_type: str, lossless: bool | None) -> bool:
    """Whether a degraded video is written losslessly. ``None`` (``crct degrade``'s default):
    the noise sets only. H.264 at crct's usual quality (crf 20, 4:2:0) keeps about 0.6 of the
    added noise's standard deviation, so a written noise-3 set would be a milder level; blur,
    downsampling and scaling leave little fine detail for it to take (a grey level or two
    RMS), and lossless files are several times larger."""
    return noise_type == "noise" if lossless is None else lossless


def variants_for(noise_type: str | None, level: int | None, all_sets: bool) -> list[Variant]:
    """The output sets: one (written straight into OUT) or clean + every type x level."""
    if all_sets:
        if noise_type is not None or level is not None:
            raise CrctError("--all writes every type and level; leave out --noise and --level")
        sets = [Variant(None, 0, PurePosixPath(CLEAN_DIR))]
        sets += [Variant(t, lv, PurePosixPath(t, str(lv))) for t in NOISE_TYPES for lv in LEVELS]
        return sets
    if noise_type is None or level is None:
        raise CrctError("give --noise and --level, or --all for every type and level")
    check_noise(noise_type, level)
    return [Variant(noise_type, level, PurePosixPath("."))]


def file_rng(seed: int, rel: PurePosixPath, noise_type: str, level: int) -> np.random.Generator:
    """A generator that depends only on the seed, the relative path, the type and the level."""
    key = hashlib.sha256(f"{rel.as_posix()}\0{noise_type}\0{level}".encode()).digest()
    words = [int.from_bytes(key[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, *words]))


def _is_video(path: Path) -> bool:
    """A video these commands read and write again under its own suffix (a camcorder's
    ``.mts``, read by ``crct track``, is not written, so not taken here)."""
    from crct_cli.io.video import is_writable_video

    return is_writable_video(path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _folder_items(root: Path, out_dir: Path) -> tuple[list[Item], list[Path]]:
    items: list[Item] = []
    skipped: list[Path] = []
    root_resolved = root.resolve()
    if root_resolved == out_dir:
        raise CrctError(f"{root}: the output folder cannot be the input folder; use another --out")
    # An output folder inside the input folder holds earlier results: do not degrade those.
    skip_out = _inside(out_dir, root_resolved)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if skip_out and _inside(path.resolve(), out_dir):
            continue
        posix = PurePosixPath(rel.as_posix())
        if is_image(path):
            items.append(Item(path, posix, "image"))
        elif _is_video(path):
            items.append(Item(path, posix, "video"))
        elif path.suffix.lower() in COPY_SUFFIXES:
            items.append(Item(path, posix, "copy"))
        else:
            skipped.append(path)
    if not any(item.kind != "copy" for item in items):
        raise CrctError(f"{root}: no images or videos in this folder")
    return items, skipped


def _file_items(path: Path) -> list[Item]:
    name = PurePosixPath(path.name)
    if is_image(path):
        return [Item(path, name, "image")]
    if not _is_video(path):
        raise CrctError(f"{path}: not an image, a video or a folder")
    items = [Item(path, name, "video")]
    annot = path.parent / "annot"
    if annot.is_dir():  # 300-VW: NNN/vid.avi with NNN/annot/000001.pts
        for f in sorted(annot.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                rel = PurePosixPath("annot", f.relative_to(annot).as_posix())
                items.append(Item(f, rel, "copy"))
    return items


def _input_items(path: Path, out_resolved: Path) -> tuple[list[Item], list[Path]]:
    if path.is_dir():
        return _folder_items(path, out_resolved)
    if path.is_file():
        return _file_items(path), []
    raise CrctError(f"{path}: no such file or folder")


def collect_items(
    paths: Sequence[Path], out_dir: Path, on_failure: OnFailure | None = None
) -> tuple[list[Item], list[Path]]:
    """Expand the inputs into files; two different files may not share an output path.

    A missing path, a file that is neither image nor video, or a folder with neither raises, or
    with ``on_failure`` is told there and left out.
    """
    if not paths:
        raise CrctError("no input given")
    out_resolved = out_dir.resolve()
    by_rel: dict[PurePosixPath, Item] = {}
    skipped: list[Path] = []
    for path in paths:
        try:
            items, skip = _input_items(path, out_resolved)
        except (CrctError, OSError) as exc:
            report_failure(on_failure, path, exc)
            continue
        skipped += skip
        for item in items:
            prior = by_rel.get(item.rel)
            if prior is None:
                by_rel[item.rel] = item
            elif prior.src.resolve() != item.src.resolve():
                raise CrctError(
                    f"{prior.src} and {item.src} would both be written to {item.rel}; "
                    "give them in separate runs (each its own --out) or give their common "
                    "parent folder"
                )
    return list(by_rel.values()), skipped


def plan_degrade(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    noise_type: str | None = None,
    level: int | None = None,
    *,
    all_sets: bool = False,
    seed: int | None = None,
    on_failure: OnFailure | None = None,
    lossless: bool | None = None,
) -> DegradePlan:
    """Validate the request and list every output; creates ``out_dir`` (nothing else yet).

    Raises :class:`CrctError` for a missing input, an unknown type or level, two inputs with the
    same output path, an output that would overwrite its input, or an unusable output folder.
    With ``on_failure`` a missing or unusable input is told there instead and left out; when
    none is left the plan is empty and ``out_dir`` is not created.
    """
    out = Path(out_dir)
    variants = variants_for(noise_type, level, all_sets)
    items, skipped = collect_items([Path(p) for p in paths], out, on_failure)
    jobs = [Job(it, var, out / var.subdir / it.rel) for var in variants for it in items]
    sources = {item.src.resolve() for item in items}
    for job in jobs:
        if job.dst.resolve() in sources:
            raise CrctError(f"{job.dst}: output would overwrite an input; choose another --out")
    if items:
        check_writable_folder(out)
        make_output_folder(out)
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)  # a new SeedSequence draws one int from the OS
        seed = entropy & 0xFFFFFFFF  # printed, so it can be reused
    return DegradePlan(out, seed, variants, items, jobs, skipped, lossless=lossless)


def copy_file(src: Path, dst: Path) -> None:
    """``src`` byte for byte to ``dst`` (a temporary name renamed when complete); a failure
    is one line naming the file at fault, the input read or the output written."""
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    except OSError as exc:
        if exc.filename is not None and os.fspath(exc.filename) == os.fspath(src):
            raise CrctError(f"{src}: cannot read ({os_reason(exc)})") from None
        raise CrctError(f"{dst}: cannot write ({os_reason(exc)})") from None


def is_gray(image: np.ndarray) -> bool:
    """True for a 2-D image or one whose colour channels are all equal."""
    if image.ndim == 2:
        return True
    return all(np.array_equal(image[..., 0], image[..., c]) for c in range(1, image.shape[2]))


def degrade_rgb(
    image: np.ndarray, noise_type: str, level: int, rng: np.random.Generator
) -> np.ndarray:
    """Degrade an RGB frame; a gray one (equal channels) is degraded once and stays gray."""
    if image.ndim == 3 and is_gray(image):
        gray = degrade(np.ascontiguousarray(image[..., 0]), noise_type, level, rng)
        return np.repeat(gray[..., None], image.shape[2], axis=2)
    return degrade(image, noise_type, level, rng)


def _check_readable(item: Item) -> None:
    """Raise the degraded sets' own error for a picture they could not read (a corrupt image,
    a video without a first frame), before its clean copy is written."""
    if item.kind == "image":
        read_image(item.src)
        return
    from crct_cli.io.video import iter_frames

    with contextlib.closing(iter_frames(item.src, max_frames=1)) as frames:
        next(frames, None)


def _degrade_image(job: Job, seed: int) -> None:
    variant = job.variant
    assert variant.noise_type is not None
    image = read_image(job.item.src)
    rng = file_rng(seed, job.item.rel, variant.noise_type, variant.level)
    out = degrade_rgb(image, variant.noise_type, variant.level, rng)
    # a JPEG written at OpenCV's defaults would keep about 0.72 of the noise's std
    write_image(job.dst, out[..., 0] if is_gray(image) else out, keep_detail=True)


def _degrade_video(
    job: Job, seed: int, lossless: bool | None = None, lossy: list[Path] | None = None
) -> tuple[int, int] | None:
    """The video degraded frame by frame; (frames written, frames missing) when it decoded
    fewer frames than its header promised (a file cut short), else None. ``lossless``: see
    :func:`lossless_for`; an output whose container no lossless encoder takes is written as
    usual and added to ``lossy``."""
    from crct_cli.io.video import VideoWriter, iter_frames, probe_video
    from crct_cli.tracking.pipeline import missing_frames

    variant = job.variant
    assert variant.noise_type is not None
    src = job.item.src
    info = probe_video(src)
    rng = file_rng(seed, job.item.rel, variant.noise_type, variant.level)
    with contextlib.closing(iter_frames(src)) as frames:
        first = next(frames, None)
        if first is None:
            raise CrctError(f"{src}: the video has no frames")
        height, width = first.image.shape[:2]
        # VideoWriter writes to a temporary name, renamed on success and removed on failure.
        exact = lossless_for(variant.noise_type, lossless)
        writer = VideoWriter(job.dst, info.fps, width, height, lossless=exact)
        if exact and not writer.lossless and lossy is not None:
            lossy.append(job.dst)
        written = reached = 0
        with writer:
            for frame in itertools.chain([first], frames):  # a lost frame's place kept
                image = degrade_rgb(frame.image, variant.noise_type, variant.level, rng)
                writer.write(image, frame.index, frame.time)
                written, reached = written + 1, frame.index + 1
    missing = missing_frames(info.n_frames, reached)
    return (written, missing) if missing else None


def run_job(
    job: Job, seed: int, lossless: bool | None = None, lossy: list[Path] | None = None
) -> tuple[int, int] | None:
    """Write one output file (atomically: a temporary name renamed when complete); a video cut
    short gives (frames written, frames missing). ``lossless``, ``lossy``: videos, see
    :func:`_degrade_video`."""
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrctError(f"{job.dst.parent}: cannot create folder ({exc.strerror})") from None
    if job.item.kind == "copy" or job.variant.unchanged:
        if job.item.kind != "copy":  # the clean set holds only pictures the others can read
            _check_readable(job.item)
        copy_file(job.item.src, job.dst)
    elif job.item.kind == "image":
        _degrade_image(job, seed)
    else:
        return _degrade_video(job, seed, lossless, lossy)
    return None
