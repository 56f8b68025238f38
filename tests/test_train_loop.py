"""The training loop's checkpoints: a resumed run ends where an uninterrupted one does (dropout
included), another run's checkpoint or a file that is none is one error, and a run's bad
values and unwritable outputs are refused before any data is read (a review of crct train,
session 51)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_cli import assert_one_line_error, crct
from torch import nn

from crct_cli.errors import CrctError
from crct_cli.train.loop import LoopConfig, run_loop


class Stop(Exception):
    """Raised inside a step: the run killed there."""


def _run(steps: int, checkpoint: Path, resume: bool, stop_at: int | None = None, identity="a"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    data = torch.Generator().manual_seed(1)
    inputs = torch.randn(64, 4, generator=data)

    def batches(start: int) -> Iterator[tuple[int, object]]:
        for step in range(start, steps):
            yield step, inputs[(step * 8) % 64 : (step * 8) % 64 + 8]

    def loss_fn(m: nn.Module, x: object, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if step == stop_at:
            raise Stop
        out = m(x)
        return (out**2).mean(), {}

    cfg = LoopConfig(
        steps=steps,
        checkpoint=checkpoint,
        checkpoint_every=5,
        resume=resume,
        warmup=2,
        identity=identity,
    )
    return run_loop(model, batches, loss_fn, cfg, log=lambda line: None).model.state_dict()


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """Killed after its step-10 checkpoint and resumed, a run with dropout gives exactly the
    weights of the run never stopped: torch's random state travels with the checkpoint."""
    whole = _run(16, tmp_path / "whole.ckpt", resume=False)
    with pytest.raises(Stop):
        _run(16, tmp_path / "cut.ckpt", resume=False, stop_at=12)
    resumed = _run(16, tmp_path / "cut.ckpt", resume=True)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_another_run_s_checkpoint_or_a_file_that_is_none_is_refused(tmp_path: Path) -> None:
    _run(6, tmp_path / "a.ckpt", resume=False)
    with pytest.raises(CrctError, match="the checkpoint of another run \\(a\\)"):
        _run(10, tmp_path / "a.ckpt", resume=True, identity="b")
    (tmp_path / "junk.ckpt").write_text("version: 1\n")
    with pytest.raises(CrctError, match="cannot resume from it: not a crct train checkpoint"):
        _run(10, tmp_path / "junk.ckpt", resume=True)
    _run(10, tmp_path / "a.ckpt", resume=True)  # its own run goes on, with more steps


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--steps", "0", "--out", "{tmp}/c.pt"], "--steps must be 1 or more"),
        (["--steps", "1", "--batch", "0", "--out", "{tmp}/c.pt"], "--batch must be 1 or more"),
        (["--steps", "1", "--lr", "-1", "--out", "{tmp}/c.pt"], "--lr must be a positive number"),
        (["--steps", "1", "--out", "{tmp}"], "a folder; give the file to write"),
        (["--steps", "1", "--checkpoint", "{tmp}", "--out", "{tmp}/a.pt"], "--checkpoint"),
        (["--steps", "1", "--out", "{tmp}/listed/a.pt"], "not a crct weights manifest"),
        (["--steps", "1", "--init", "{tmp}/nope.pt", "--out", "{tmp}/b.pt"], "no such weight"),
    ],
)
def test_a_run_s_bad_values_and_outputs_are_one_line_before_its_data(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """Each refused before the data folders are read (they hold no faces here, which would
    be another error) and before an hour of training would be lost at its end."""
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "manifest.json").write_text("[1, 2]")
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    line = assert_one_line_error(crct("train", "fll", tmp_path, "--val", tmp_path, *filled))
    assert said in line and "no .pts" not in line


def test_int8_without_out_keeps_the_shipped_ranges(tmp_path: Path) -> None:
    """``crct train int8`` as every other: the file crct runs with (in the weights folder,
    wherever the command runs) is replaced only when --out names it."""
    line = assert_one_line_error(crct("train", "int8", tmp_path, "--val", tmp_path))
    assert "int8.json is the file crct runs with: give --out" in line
    elsewhere = assert_one_line_error(
        crct("train", "int8", tmp_path, "--val", tmp_path, "--out", tmp_path / "r.json")
    )
    assert "bt.pt: no such weight file (--out goes beside the bt.pt and fll.pt" in elsewhere
