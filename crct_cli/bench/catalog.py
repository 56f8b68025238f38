"""The benchmark datasets: names, official 300-VW test categories, where the data lives.

``crct benchmark --dataset NAME`` takes its root from ``--root`` or, without it, from the
environment variable ``CRCT_DATA`` (``$CRCT_DATA/300VW``, ``$CRCT_DATA/300W``,
``$CRCT_DATA/menpo``), so a command line from a model card runs as written. When the data is
not there, the error says where to put it and where the dataset is published.

Sequences that a category names but the root lacks (no folder, no video, no annotations) are
*listed*, never silently skipped: :class:`SequenceSelection` keeps them with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crct_cli.errors import CrctError
from crct_cli.io.datasets import (
    ANNOT_DIR,
    SEQUENCE_VIDEO_NAMES,
    VideoSequence,
    find_300vw_sequences,
)

#: The official 300-VW test categories (Shen et al., ICCVW 2015; Chrysos et al., IJCV 2017).
#: Category 1: well-lit, mostly frontal; 2: unconstrained lighting; 3: completely unconstrained.
CATEGORY_1: tuple[str, ...] = tuple(
    "114 124 125 126 150 158 401 402 505 506 507 508 509 510 511 514 515 518 519 520 521 522 524 "
    "525 537 538 540 541 546 547 548".split()
)
CATEGORY_2: tuple[str, ...] = tuple(
    "203 208 211 212 213 214 218 224 403 404 405 406 407 408 409 412 550 551 553".split()
)
CATEGORY_3: tuple[str, ...] = tuple(
    "410 411 516 517 526 528 529 530 531 533 557 558 559 562".split()
)

#: Dataset name -> the sequences it scores.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "300vw-cat1": CATEGORY_1,
    "300vw-cat2": CATEGORY_2,
    "300vw-cat3": CATEGORY_3,
}

#: Every sequence of the layout under the root (the user's own videos, or all of 300-VW).
ALL_SEQUENCES = "300vw"
VIDEO_DATASETS: tuple[str, ...] = (*CATEGORIES, ALL_SEQUENCES)
STILL_DATASETS: tuple[str, ...] = ("300w", "menpo", "images")
#: Several faces per video, each with its own ground truth (crct_cli.bench.synth_multi).
MULTI_DATASETS: tuple[str, ...] = ("multi",)
DATASETS: tuple[str, ...] = VIDEO_DATASETS + STILL_DATASETS + MULTI_DATASETS

#: The environment variable that holds the datasets when ``--root`` is not given.
DATA_ENV = "CRCT_DATA"


@dataclass(frozen=True)
class DataSource:
    """Where a dataset goes under ``$CRCT_DATA``, what it looks like and who publishes it."""

    label: str
    subdir: str | None  #: under $CRCT_DATA; None: --root is required
    layout: str
    url: str | None


_VIDEO_SOURCE = DataSource(
    "300-VW",
    "300VW",
    "NNN/vid.avi with NNN/annot/000001.pts ...",
    "https://ibug.doc.ic.ac.uk/resources/300-VW/",
)

SOURCES: dict[str, DataSource] = {
    **{name: _VIDEO_SOURCE for name in VIDEO_DATASETS},
    "300w": DataSource(
        "300-W",
        "300W",
        "images with a .pts beside each",
        "https://ibug.doc.ic.ac.uk/resources/300-W/",
    ),
    "menpo": DataSource(
        "Menpo",
        "menpo",
        "images with a .pts beside each",
        "https://www.menpo.org/ (2D benchmark: "
        "https://ibug.doc.ic.ac.uk/resources/2nd-facial-landmark-tracking-competition-menpo-ben/)",
    ),
    "images": DataSource("image", None, "images with a .pts beside each", None),
    "multi": DataSource(
        "multi-face",
        None,
        "NNN/vid.mp4 with NNN/faces/<id>/000001.pts ..., made by "
        "python -m crct_cli.bench.synth_multi",
        None,
    ),
}


def is_video_dataset(dataset: str) -> bool:
    return dataset in VIDEO_DATASETS


def is_multi_dataset(dataset: str) -> bool:
    return dataset in MULTI_DATASETS


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise CrctError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")


def _published(source: DataSource) -> str:
    return f"; {source.label} is published at {source.url}" if source.url else ""


def resolve_root(dataset: str, root: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--root``, else ``$CRCT_DATA/<subdir>``; a missing folder is one line saying what to do.

    Raises :class:`CrctError` naming the folder expected, the layout and the dataset's page.
    """
    check_dataset(dataset)
    source = SOURCES[dataset]
    env = os.environ if environ is None else environ
    if root is None:
        if source.subdir is None:
            raise CrctError(f"--dataset {dataset} needs --root DIR ({source.layout})")
        base = env.get(DATA_ENV, "")
        if not base:
            raise CrctError(
                f"--dataset {dataset}: give --root DIR or set {DATA_ENV} and put the "
                f"{source.label} data in ${DATA_ENV}/{source.subdir} ({source.layout})"
                f"{_published(source)}"
            )
        root = Path(base) / source.subdir
    if not root.exists():
        raise CrctError(
            f"{root}: no {source.label} data here; put it in this folder ({source.layout})"
            f"{_published(source)}"
        )
    if not root.is_dir():
        raise CrctError(f"{root}: not a folder (expected {source.layout})")
    return root


# --------------------------------------------------------------------------------------------
# 300-VW sequences


@dataclass(frozen=True)
class MissingSequence:
    """A sequence the benchmark should score but cannot, and why."""

    name: str
    reason: str


@dataclass
class SequenceSelection:
    """The sequences to score, those listed but absent, and the category groups to report."""

    root: Path
    dataset: str
    sequences: list[VideoSequence]
    missing: list[MissingSequence] = field(default_factory=list)
    #: group name -> sequence names scored in it (every group is one column of Table II)
    groups: dict[str, list[str]] = field(default_factory=dict)


def category_of(name: str) -> str | None:
    """The official category (``300vw-cat1``...) of a sequence name such as ``"114"``."""
    key = str(int(name)) if name.isdecimal() else name
    for category, names in CATEGORIES.items():
        if key in names:
            return category
    return None


def _video_names() -> str:
    return " or ".join(SEQUENCE_VIDEO_NAMES[:2])


def _check_sequence(folder: Path, name: str) -> VideoSequence | MissingSequence:
    """A scorable sequence, or why it is not one (no video, no annotations)."""
    try:
        found, absent = find_300vw_sequences(folder.parent, [folder.name])
    except CrctError:
        return MissingSequence(name, f"no {_video_names()} in {folder}")
    if absent:
        return MissingSequence(name, f"no folder {folder}")
    sequence = found[0]
    if sequence.annot_dir is None:
        return MissingSequence(name, f"no {ANNOT_DIR}/ folder in {folder}")
    return sequence


def _looks_like_sequence(folder: Path) -> bool:
    return (
        folder.name.isdecimal()
        or (folder / ANNOT_DIR).is_dir()
        or any((folder / n).is_file() for n in SEQUENCE_VIDEO_NAMES)
    )


def _natural_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdecimal() else (1, name)


def select_sequences(dataset: str, root: Path) -> SequenceSelection:
    """The sequences of ``dataset`` under ``root`` (see :func:`resolve_root`).

    A category keeps its official order; ``300vw`` takes every sequence folder under ``root``
    in numeric order, grouped as ``all`` plus each official category it has members of.
    Raises :class:`CrctError` when not one sequence can be scored (a bad layout).
    """
    source = SOURCES[dataset]
    selection = SequenceSelection(root=root, dataset=dataset, sequences=[])
    if dataset in CATEGORIES:
        candidates = [(name, root / name) for name in CATEGORIES[dataset]]
    elif any((root / n).is_file() for n in SEQUENCE_VIDEO_NAMES):  # ROOT is one sequence
        candidates = [(root.name, root)]
    else:
        folders = sorted(
            (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: _natural_key(p.name),
        )
        candidates = [(p.name, p) for p in folders if _looks_like_sequence(p)]
    for name, folder in candidates:
        checked = _check_sequence(folder, name)
        if isinstance(checked, MissingSequence):
            selection.missing.append(checked)
        else:
            selection.sequences.append(checked)
    if not selection.sequences:
        what = (
            f"none of the {len(CATEGORIES[dataset])} sequences of {dataset} can be scored"
            if dataset in CATEGORIES
            else "no 300-VW sequence found"
        )
        first = f" (first: {selection.missing[0].reason})" if selection.missing else ""
        raise CrctError(f"{root}: {what}{first}; expected {source.layout}{_published(source)}")
    names = [s.name for s in selection.sequences]
    if dataset in CATEGORIES:
        selection.groups[dataset] = names
    else:
        selection.groups["all"] = names
        for category in CATEGORIES:
            members = [n for n in names if category_of(n) == category]
            if members:
                selection.groups[category] = members
    return selection
