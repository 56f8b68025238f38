"""``crct train fll --input-size``: a second stage on finer crops than the first, started from
a first stage of another size, recorded in its manifest command and run at its own size by
both backends and by the aligner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_stage2 import write_generated_faces
from typer.testing import CliRunner

from crct_cli.aligner import build_aligner
from crct_cli.cli import app
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
from crct_cli.models.weights import read_manifest, save_weights
from crct_cli.runtime import Runtime


@pytest.fixture(scope="module")
def finer_stage2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second stage on 80-px crops, one step from a 64-px first stage's weights."""
    tmp = tmp_path_factory.mktemp("s2")
    data = write_generated_faces(tmp / "faces")
    torch.manual_seed(0)
    first = tmp / "w" / "fll.pt"
    cfg = FLLConfig(input_size=64, local=True)
    save_weights(
        first, "fll", {"model": dataclasses.asdict(cfg)}, LandmarkLocalizer(cfg).state_dict()
    )
    out = tmp / "w" / "fll_stage2.pt"
    args = ["train", "fll", str(data), "--val", str(data), "--stage", "2", "--local"]
    args += ["--input-size", "80", "--first", str(first), "--steps", "1", "--batch", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_size_is_in_the_weights_and_the_manifest_command(finer_stage2: Path) -> None:
    entry = read_manifest(finer_stage2.parent)["weights"]["fll_stage2.pt"]
    assert "--stage 2 --input-size 80" in entry["command"]
    blob = torch.load(finer_stage2, map_location="cpu", weights_only=False)
    assert blob["config"]["model"]["input_size"] == 80
    assert blob["config"]["model"]["upright"]  # still the second stage's eye-levelled crop
    first = torch.load(finer_stage2.parent / "fll.pt", map_location="cpu", weights_only=False)
    # every weight carried over from the 64-px network: same names and shapes
    assert {k: v.shape for k, v in blob["state_dict"].items()} == {
        k: v.shape for k, v in first["state_dict"].items()
    }


def test_both_backends_and_the_aligner_run_it_at_its_size(finer_stage2: Path) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 80, 80, 3), dtype=np.uint8)
    outs = []
    for backend in ("onnx", "torch"):
        runtime = Runtime(backend, "cpu", finer_stage2.parent)
        stage2 = runtime.stage2()
        assert stage2.config.input_size == 80 and stage2.config.upright
        assert runtime.localizer().config.input_size == 64
        outs.append(stage2(crops))
    assert outs[0].shape == (2, 68, 2)
    assert np.abs(outs[0] - outs[1]).max() < 1e-4

    # the aligner cuts each stage's crop at that stage's own size: both backends agree
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box = np.array([[50.0, 40.0, 150.0, 160.0]])
    points = [
        build_aligner(weights_dir=finer_stage2.parent, backend=b)[0](image, box)[0]
        for b in ("onnx", "torch")
    ]
    assert points[0].shape == (68, 2) and np.abs(points[0] - points[1]).max() < 1e-2

    # the default size is not written into the command: an unchanged recipe reads as before
    data = write_generated_faces(finer_stage2.parent.parent / "faces2")
    args = ["train", "fll", str(data), "--val", str(data), "--steps", "1", "--batch", "2"]
    out = finer_stage2.parent.parent / "plain" / "fll.pt"
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--input-size" not in read_manifest(out.parent)["weights"]["fll.pt"]["command"]
