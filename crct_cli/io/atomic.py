"""Write-then-rename, so that nothing half-written ever looks finished."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from crct_cli.errors import CrctError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def make_output_folder(folder: str | os.PathLike[str]) -> None:
    """``folder`` and the folders above it made where missing, or one line saying why not."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrctError(f"{folder}: cannot create output folder ({exc.strerror})") from None


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """Refuse in one line an output folder this process cannot write into, before any work:
    otherwise every output would fail alone, each in its line, after its input was processed.

    Creates nothing: ``folder`` is checked if it exists, else the nearest folder above it that
    does (where it would be made).
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise CrctError(f"{folder}: cannot create output folder ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        if probe == folder:
            raise CrctError(f"{folder}: output folder is not writable")
        raise CrctError(f"{folder}: cannot create output folder ({probe} is not writable)")


def write_text_atomic(target: str | os.PathLike[str], text: str, errors: str = "strict") -> None:
    """``text`` as UTF-8 (``errors="surrogateescape"`` writes a file name's undecodable bytes
    back as the bytes they were)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=errors)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` onto ``final``, replacing an older one (kept aside
    until the new one is in place, so ``final`` is never a half-written folder)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def check_out_folder(out: str | os.PathLike[str], what: str = "--out") -> None:
    """Refuse in one line, before any work, an output folder that cannot be made: a file in
    its place or in the place of a folder above it, or the nearest existing folder above it
    not writable. Nothing is created."""
    path = Path(out)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        raise CrctError(f"{path}: cannot write there ({what}): {existing} is a broken link")
    if not existing.is_dir():
        raise CrctError(f"{path}: cannot write there ({what}): {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise CrctError(f"{path}: cannot write there ({what}): {existing} is not writable")
