"""Shipped weight files: saved as fp16 state dicts, listed in ``weights/manifest.json``.

Each manifest entry records the file's sha256, the exact ``crct train`` command, the data split
and the validation metrics. Loading checks the hash first: a missing or corrupt file is a clear
error naming it, never a silent fallback to random weights.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crct_cli.errors import CrctError
from crct_cli.io.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import torch  # imported where used: reading hashes and the manifest needs no torch

MANIFEST = "manifest.json"
#: The repository's weight folder, the one place the files live in a checkout.
CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
#: The copy an installed wheel carries (put there by setup.py's build step).
PACKAGED_WEIGHTS = Path(__file__).resolve().parents[1] / "_weights"


def resolve_weights_dir(
    environ: Mapping[str, str] = os.environ,
    checkout: Path = CHECKOUT_WEIGHTS,
    packaged: Path = PACKAGED_WEIGHTS,
) -> Path:
    """``$CRCT_WEIGHTS`` when set; else ``weights/`` of the checkout crct runs from (a clone or
    an editable install); else the copy inside the installed package (``pip install .``, a
    wheel). The checkout is recognised by the pyproject.toml beside its ``weights/``."""
    override = environ.get("CRCT_WEIGHTS")
    if override:
        return Path(override)
    if (checkout.parent / "pyproject.toml").is_file() and (checkout / MANIFEST).is_file():
        return checkout
    if packaged.is_dir():
        return packaged
    return checkout  # a checkout without weights yet: errors name its weights/ folder


WEIGHTS_DIR = resolve_weights_dir()


def weights_fingerprint(folder: str | os.PathLike[str]) -> str:
    """What a folder's networks are, in a few characters: the sha256 of its manifest (which
    holds every file's sha256), or of its files' names and sizes where it has none. A run
    with other weights is not the run a resume marker records (``crct track``)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    if (folder / MANIFEST).is_file():
        digest.update((folder / MANIFEST).read_bytes())
    elif folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file():
                digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(
    path: str | os.PathLike[str],
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    half: bool = True,
) -> str:
    """Write a weight file atomically (floats as fp16 when ``half``); return its sha256."""
    import torch

    tensors = {
        k: (v.detach().to("cpu").half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in state_dict.items()
    }
    buffer = io.BytesIO()
    torch.save({"kind": kind, "config": config, "state_dict": tensors}, buffer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return sha256_file(path)


def read_manifest(weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    manifest = weights_dir / MANIFEST
    if not manifest.is_file():
        return {"weights": {}}
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CrctError(f"{manifest}: corrupt manifest ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights", {}), dict):
        raise CrctError(f'{manifest}: not a crct weights manifest (no "weights" object)')
    return data


def update_manifest(name: str, entry: dict[str, Any], weights_dir: Path = WEIGHTS_DIR) -> None:
    """Add or replace one entry of the manifest, dated and with the library versions and CPU
    that made it (under others a retraining can give another sha256)."""
    from crct_cli.versions import versions

    manifest = read_manifest(weights_dir)
    entry = {"date": _dt.date.today().isoformat(), "versions": versions(), **entry}
    manifest.setdefault("weights", {})[name] = entry
    weights_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(weights_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def check_weights_folder(folder: Path) -> None:
    """A weights folder that is not there was named wrong (``$CRCT_WEIGHTS``, ``weights_dir=``):
    said so, which says more than a missing file's "reinstall crct"."""
    if not folder.is_dir():
        named = os.environ.get("CRCT_WEIGHTS")
        where = f"CRCT_WEIGHTS={named}" if named and Path(named) == folder else folder
        raise CrctError(f"{where}: no such weights folder")


def resolve_weight_path(path: Path, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The file a weight path names: as given when it is there or absolute; else
    "weights/fll.pt" (as the manifest's commands name the shipped files, run elsewhere than
    the checkout) or a bare "fll.pt" is the weights folder's own."""
    if path.is_absolute() or path.exists():
        return path
    inside = path.parts[1:] if path.parts[:1] == ("weights",) else path.parts
    return weights_dir.joinpath(*inside) if inside else weights_dir / path


def load_weights(
    name_or_path: str | os.PathLike[str],
    kind: str | tuple[str, ...],
    weights_dir: Path = WEIGHTS_DIR,
) -> dict[str, Any]:
    """Load a weight file by manifest name (``fll.pt``) or path, verifying kind (one, or any of
    several) and sha256.

    A file named in the manifest must match its recorded hash; a path outside the manifest (a
    user's own training run) is loaded as is, after a kind check.
    """
    given = Path(name_or_path)
    path = resolve_weight_path(given, weights_dir)
    if not path.is_file():
        named = kind if isinstance(kind, str) else " or ".join(kind)
        check_weights_folder(path.parent)
        listed = given.name in read_manifest(weights_dir).get("weights", {})
        if not listed or (len(given.parts) > 1 and given.parts[0] != "weights"):
            raise CrctError(f"{given}: no such weight file ('crct train {named}' makes one)")
        raise CrctError(
            f"weight file {path} is missing; reinstall crct or rebuild it with 'crct train {named}'"
        )
    entry = read_manifest(path.parent).get("weights", {}).get(path.name)
    if entry is not None and entry.get("sha256") != sha256_file(path):
        raise CrctError(
            f"weight file {path} is not the one {path.parent / MANIFEST} lists (its sha256 "
            "differs): damaged, or put there by hand; a file retrained for this folder is "
            "written into it with crct train --out, which updates the manifest"
        )
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CrctError(
            f"weight file {path} cannot be read: not a crct weight file, or damaged "
            f"({type(exc).__name__})"
        ) from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(blob, dict) or blob.get("kind") not in kinds:
        found = blob.get("kind") if isinstance(blob, dict) else "?"
        expected = " or ".join(f"'{k}'" for k in kinds)
        raise CrctError(f"weight file {path} holds '{found}' weights, expected {expected}")
    blob["state_dict"] = {
        k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()
    }
    blob["path"] = str(path)
    return blob
