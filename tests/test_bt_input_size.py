"""``crct train bt --input-size``: a BT on smaller crops, recorded in its manifest command and run
at its own size by both backends."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_geometry_models import FLL_CFG
from test_stage2 import write_generated_faces
from typer.testing import CliRunner

from crct_cli.cli import app
from crct_cli.models.fll import LandmarkLocalizer
from crct_cli.models.weights import read_manifest, save_weights
from crct_cli.runtime import Runtime
from crct_cli.train.run import display_path


@pytest.fixture(scope="module")
def small_bt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BT trained for two steps on 48-px crops from a small FLL's trunk, on harsher
    degradation than the default, half its sequences motion-blurred."""
    tmp = tmp_path_factory.mktemp("bt48")
    data = write_generated_faces(tmp / "faces")
    torch.manual_seed(0)
    init = tmp / "fll.pt"
    save_weights(
        init, "fll", {"model": dataclasses.asdict(FLL_CFG)}, LandmarkLocalizer(FLL_CFG).state_dict()
    )
    out = tmp / "w" / "bt.pt"
    args = ["train", "bt", str(data), "--val", str(data), "--input-size", "48", "--steps", "2"]
    args += ["--crops-per-step", "4", "--init", str(init), "--out", str(out)]
    args += ["--degradation", "0.6", "--stack", "0.3", "--motion-blur", "0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_the_size_is_in_the_weights_and_the_manifest_command(small_bt: Path) -> None:
    entry = read_manifest(small_bt.parent)["weights"]["bt.pt"]
    assert "--input-size 48" in entry["command"]
    assert "--degradation 0.6 --stack 0.3" in entry["command"]  # harsher footage, recorded
    assert "--motion-blur 0.5" in entry["command"]
    blob = torch.load(small_bt, map_location="cpu", weights_only=False)
    assert blob["config"]["model"]["input_size"] == 48


def test_both_backends_run_it_at_its_size(small_bt: Path) -> None:
    rng = np.random.default_rng(0)
    prev, cur = (rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8) for _ in range(2))
    outs = []
    for backend in ("onnx", "torch"):
        bt = Runtime(backend, "cpu", small_bt.parent).tracker(small_bt)
        assert bt.config.input_size == 48
        points, (h, c) = bt(prev, cur)
        assert points.shape == (2, 68, 2) and h.shape[1] == 2
        outs.append(points)
    assert np.abs(outs[0] - outs[1]).max() < 1e-4


def test_training_goes_on_from_a_bt_of_its_own(small_bt: Path, tmp_path: Path) -> None:
    """``--init`` a BT file: every weight starts from it (a fine-tune), at its own size; the
    command records it; a BT of another size, or weights of another kind, are one-line errors."""
    data = write_generated_faces(tmp_path / "faces")
    out = tmp_path / "w" / "bt.pt"
    args = ["train", "bt", str(data), "--val", str(data), "--steps", "1", "--lr", "1e-12"]
    args += ["--crops-per-step", "4", "--init", str(small_bt), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--input-size", "48"])
    assert result.exit_code == 0, result.output
    before, after = (torch.load(p, map_location="cpu", weights_only=False) for p in (small_bt, out))
    assert after["config"]["model"] == before["config"]["model"]
    learned = [n for n in before["state_dict"] if "running_" not in n and "num_batches" not in n]
    for name in learned:  # batch norm's running statistics move with any step; weights do not
        assert torch.equal(after["state_dict"][name], before["state_dict"][name]), name
    command = read_manifest(out.parent)["weights"]["bt.pt"]["command"]
    assert f"--init {display_path(small_bt)}" in command
    result = CliRunner().invoke(app, args)  # 128-px crops asked of a 48-px BT
    assert result.exit_code != 0 and "48-px" in result.output
    fv = tmp_path / "fv.pt"
    save_weights(fv, "fv", {"model": {}}, {"w": torch.zeros(1)})
    result = CliRunner().invoke(app, [*args[:-2], "--init", str(fv), "--out", str(out)])
    assert result.exit_code != 0 and "expected 'fll' or 'bt'" in result.output
