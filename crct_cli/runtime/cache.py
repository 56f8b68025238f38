"""The ONNX graph cache: graphs exported from the shipped weights, keyed by the weights' sha256.

crct makes its ONNX graphs itself, from the weight files it ships, the first time a network
runs on the ONNX backend (a few seconds per file, PyTorch imported once); later runs read them
from ``$CRCT_CACHE/onnx`` (default ``$XDG_CACHE_HOME/crct/onnx``, i.e. ``~/.cache/crct/onnx``)
without importing PyTorch. Nothing is ever downloaded.

One weight file gives one or more graphs (FADeNN: the localiser, the noise classifier and a
denoiser per class). Each is written as ``<sha256>.<part>.v<FORMAT>.onnx``, then an index
``<sha256>.v<FORMAT>.json`` records the weight file's kind and configuration and the sha256 of
every graph; the index is written last, so an interrupted export leaves no entry that looks
finished. On reading, every graph's hash is checked: a missing, truncated or altered graph (or
index) makes the whole entry be exported again. ``FORMAT`` changes whenever the export does,
so graphs of an older crct are never mistaken for current ones.

Hashing the weight files and the graphs (about 60 MB for ``crct track``) took a tenth of a second
of every start here, so a file's sha256 is remembered in ``hashes.json`` beside the graphs,
under its path, size, modification time and inode: a file rewritten in any way is hashed again,
as git's index and make trust a file's stat. A file modified in the last seconds is not
remembered (its time stamp could still be shared by a later change).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variable: the root of crct's cache (graphs go to its ``onnx`` folder).
CACHE_ENV = "CRCT_CACHE"
#: Version of the exported graphs; part of every cache name.
FORMAT = 4


def cache_root() -> Path:
    """``$CRCT_CACHE``, else ``$XDG_CACHE_HOME/crct``, else ``~/.cache/crct``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "crct"


def onnx_dir() -> Path:
    return cache_root() / "onnx"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: The remembered hashes, in the graphs' folder.
HASHES = "hashes.json"
#: A file modified less than this long ago (ns) is hashed every time.
SETTLED_NS = 2_000_000_000
_hashes: dict[Path, dict[str, list[Any]]] = {}  #: per cache folder
_hashes_lock = threading.Lock()


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _read_hashes(folder: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads((folder / HASHES).read_text(encoding="utf-8"))
        return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 4}
    except (OSError, ValueError, AttributeError):
        return {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, remembered across runs by its stat (see the module docstring).
    A missing file raises ``OSError`` as reading it would."""
    path, folder = Path(path), onnx_dir()
    stat = path.stat()
    key, stamp = str(path.resolve()), _stamp(stat)
    with _hashes_lock:
        if folder not in _hashes:
            _hashes[folder] = _read_hashes(folder)
        known = _hashes[folder].get(key)
    if known is not None and known[:3] == stamp:
        return str(known[3])
    sha = _sha256_path(path)
    if time.time_ns() - stat.st_mtime_ns > SETTLED_NS:
        with _hashes_lock:
            hashes = {**_hashes[folder], **_read_hashes(folder), key: [*stamp, sha]}
            hashes = {k: v for k, v in hashes.items() if os.path.exists(k)}
            _hashes[folder] = hashes
            try:
                write_bytes_atomic(folder / HASHES, json.dumps(hashes, indent=0).encode())
            except OSError:
                pass  # a read-only cache: hashed again next time
    return sha


@dataclass
class Exported:
    """What an export gives for one weight file: its kind, its configuration (as saved with the
    weights) and one serialized ONNX graph per part."""

    kind: str
    config: dict[str, Any]
    parts: dict[str, bytes]


@dataclass
class GraphSet:
    """The graphs of one weight file, ready to open: a path in the cache per part, or the bytes
    themselves when the cache could not be written."""

    kind: str
    config: dict[str, Any]
    sha256: str
    graphs: dict[str, Path | bytes] = field(default_factory=dict)
    exported: bool = False  #: made by this call rather than read from the cache


def index_path(sha: str) -> Path:
    return onnx_dir() / f"{sha}.v{FORMAT}.json"


def graph_path(sha: str, part: str) -> Path:
    return onnx_dir() / f"{sha}.{part}.v{FORMAT}.onnx"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write under a unique temporary name in the same folder, then rename: two processes
    exporting the same graph at once both leave a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_entry(sha: str) -> GraphSet | None:
    """The cached graphs of the weight file with this sha256, or None if absent or broken."""
    try:
        index = json.loads(index_path(sha).read_text(encoding="utf-8"))
        if index.get("format") != FORMAT or index.get("weights_sha256") != sha:
            return None
        graphs: dict[str, Path | bytes] = {}
        for part, entry in index["parts"].items():
            path = graph_path(sha, part)
            if file_sha256(path) != entry["sha256"]:
                return None
            graphs[part] = path
        return GraphSet(index["kind"], index["config"], sha, graphs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _remove_other_formats(sha: str) -> None:
    """Graphs of the same weights made by another crct version's exporter are dead weight."""
    for path in onnx_dir().glob(f"{sha}.*"):
        if not path.name.endswith((f".v{FORMAT}.onnx", f".v{FORMAT}.json")):
            path.unlink(missing_ok=True)


def write_entry(sha: str, exported: Exported, source: str) -> GraphSet:
    """Store an export (graphs first, index last); bytes are kept in memory if writing fails."""
    entry = GraphSet(exported.kind, exported.config, sha, dict(exported.parts), exported=True)
    try:
        _remove_other_formats(sha)
        parts = {}
        for part, data in exported.parts.items():
            write_bytes_atomic(graph_path(sha, part), data)
            parts[part] = {"sha256": sha256_bytes(data), "bytes": len(data)}
            entry.graphs[part] = graph_path(sha, part)
        index = {
            "format": FORMAT,
            "weights_sha256": sha,
            "source": source,
            "kind": exported.kind,
            "config": exported.config,
            "parts": parts,
        }
        write_bytes_atomic(index_path(sha), (json.dumps(index, indent=1) + "\n").encode())
    except OSError:
        entry.graphs = dict(exported.parts)  # a read-only cache: run from memory this time
        say_once(
            "unwritable",
            f"crct: warning: {onnx_dir()} cannot be written: the networks' graphs are made "
            f"again on every run (${CACHE_ENV} names another folder)",
        )
    return entry


_SAID: set[str] = set()


def say_once(key: str, line: str, terminal_only: bool = False) -> None:
    """One line on stderr per process (``terminal_only``: where a person is watching)."""
    if key in _SAID or sys.stderr is None:
        return
    _SAID.add(key)
    if not terminal_only or sys.stderr.isatty():
        print(line, file=sys.stderr, flush=True)


def cached_graphs(
    sha: str, source: str, export: Callable[[], Exported], rebuild: bool = False
) -> GraphSet:
    """The graphs of a weight file: from the cache when whole, else exported and stored (said
    once on a terminal: the first run's export takes seconds without a word otherwise)."""
    if not rebuild:
        entry = read_entry(sha)
        if entry is not None:
            return entry
    say_once(
        "export",
        f"crct: preparing the networks for ONNX Runtime, once (kept in {onnx_dir()})",
        terminal_only=True,
    )
    return write_entry(sha, export(), source)
