"""What every ``crct train`` run shares: data folders, schedule, seed, output, checkpoint,
and the exact command that reproduces it (recorded in ``weights/manifest.json``)."""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from crct_cli.models import weights
from crct_cli.train.data import data_name
from crct_cli.train.loop import LoopConfig


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    try:
        return (
            os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
        )
    except ValueError:
        return str(path)


def origin_options(label_origin: float | None) -> list[str]:
    """``--label-origin X`` as a recorded command carries it (nothing when unset)."""
    return [] if label_origin is None else ["--label-origin", f"{label_origin:g}"]


@dataclass
class TrainRun:
    train: list[Path]
    val: list[Path]
    steps: int = 0  # 0: the model's default (``default_steps``)
    lr: float = 1e-3
    seed: int = 0
    out: Path | None = None  # None: weights/<file_stem>.pt
    checkpoint: Path | None = None  # None: $TMPDIR/crct-ckpt/<file_stem>.ckpt
    resume: bool = False

    command_name: ClassVar[str] = ""

    def file_stem(self) -> str:
        return self.command_name

    def default_steps(self) -> int:
        raise NotImplementedError

    def __post_init__(self) -> None:
        if not self.steps:
            self.steps = self.default_steps()
        if self.out is None:
            self.out = weights.WEIGHTS_DIR / f"{self.file_stem()}.pt"
        if self.checkpoint is None:
            tmp = Path(tempfile.gettempdir())
            self.checkpoint = tmp / "crct-ckpt" / f"{self.file_stem()}.ckpt"

    def loop_config(self, **settings: Any) -> LoopConfig:
        """The training loop of this run: its steps, learning rate and checkpoint, which is
        known as this run's (:meth:`identity`); ``settings``: the model's own (warm-up...)."""
        return LoopConfig(
            steps=self.steps,
            lr=self.lr,
            checkpoint=self.checkpoint,
            resume=self.resume,
            identity=self.identity(),
            **settings,
        )

    def options(self) -> list[str]:
        """The model's own command-line options, as they reproduce this run."""
        return []

    def command(self) -> str:
        return shlex.join(self._args(steps=True))

    def identity(self) -> str:
        """The run a checkpoint belongs to: its command but the steps (``--minutes`` sets
        them as it goes, and a run may be given more steps to go on)."""
        return shlex.join(self._args(steps=False))

    def _args(self, steps: bool) -> list[str]:
        assert self.out is not None
        args = ["crct", "train", self.command_name, *map(str, self.train)]
        args += ["--val", ",".join(map(str, self.val)), *self.options()]
        args += ["--steps", str(self.steps)] if steps else []
        args += ["--lr", str(self.lr), "--seed", str(self.seed)]
        return [*args, "--out", display_path(self.out)]

    def publish(
        self,
        kind: str,
        config: dict[str, Any],
        state_dict: dict[str, Any],
        protocol: str,
        metrics: dict[str, Any],
        minutes: float,
        log: Callable[[str], None] = print,
        **extra: Any,
    ) -> str:
        """Log the validation numbers, then write the weight file and its manifest entry (hash,
        command, split, metrics)."""
        assert self.out is not None
        log(json.dumps(metrics, indent=2))
        sha = weights.save_weights(self.out, kind, config, state_dict)
        entry = {
            "kind": kind,
            "sha256": sha,
            "command": self.command(),
            "train_split": [data_name(d) for d in self.train],
            "val_split": [data_name(d) for d in self.val],
            "protocol": protocol,
            "val_metrics": metrics,
            "train_minutes": round(minutes, 1),
            **extra,
        }
        weights.update_manifest(self.out.name, entry, self.out.parent)
        log(
            f"wrote {display_path(self.out)} (sha256 {sha[:12]}..., {minutes:.1f} min of "
            f"training); its entry in {display_path(self.out.parent / weights.MANIFEST)}"
        )
        return sha
