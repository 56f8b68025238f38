"""FLL's heatmap head (``crct train fll --heatmap``): where its soft-argmax reads a point, how
it blends with the regression's answer, and that it trains on top of an existing FLL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from test_geometry_models import FLL_CFG
from test_stage2 import save_fresh_fll, write_generated_faces

from crct_cli.errors import CrctError
from crct_cli.models.fll import HeatmapHead, LandmarkLocalizer, load_localizer
from crct_cli.models.weights import load_weights, read_manifest
from crct_cli.train.fll import TrainFLLConfig, train_fll

LOCAL_CFG = dataclasses.replace(FLL_CFG, local=True)


def test_soft_argmax_reads_a_sharp_peak_at_its_cell_centre_and_a_split_one_between() -> None:
    h, w = 16, 12
    heat = torch.full((1, 68, h, w), -50.0)
    heat[0, 0, 3, 7] = 50.0  # row 3, column 7
    heat[0, 1, 10, 2] = heat[0, 1, 10, 4] = 50.0  # two equal peaks: read half way
    points = HeatmapHead.soft_argmax(heat)
    assert torch.allclose(points[0, 0], torch.tensor([7.5 / w - 0.5, 3.5 / h - 0.5]), atol=1e-5)
    assert torch.allclose(points[0, 1], torch.tensor([3.5 / w - 0.5, 10.5 / h - 0.5]), atol=1e-5)
    flat = HeatmapHead.soft_argmax(torch.zeros(1, 68, h, w))  # no evidence: the crop's centre
    assert float(flat.abs().max()) < 1e-6


def test_the_blend_weighs_each_point_by_its_own_learned_weight() -> None:
    torch.manual_seed(0)
    model = LandmarkLocalizer(dataclasses.replace(LOCAL_CFG, heatmap=True)).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model.heatmap is not None
    with torch.no_grad():
        model.local.out_bias.normal_(0.0, 0.02)  # type: ignore[union-attr]
        glob, local, heat, blend = model.stages(x)
        assert torch.equal(model(x), blend)
        assert torch.allclose(blend, 0.5 * (local + heat), atol=1e-6)  # half and half at first
        model.heatmap.mix_logit[3] = 30.0  # point 3 all heatmap, point 4 all regression
        model.heatmap.mix_logit[4] = -30.0
        _, local2, heat2, blend2 = model.stages(x)
    assert torch.equal(local2, local) and torch.equal(heat2, heat)
    assert torch.allclose(blend2[:, 3], heat[:, 3], atol=1e-6)
    assert torch.allclose(blend2[:, 4], local[:, 4], atol=1e-6)
    assert not torch.allclose(heat, local, atol=1e-3)  # the two readings differ
    assert len(LandmarkLocalizer(LOCAL_CFG).stages(x)) == 2  # no head: no more stages


def test_train_a_heatmap_head_on_an_fll_without_one(tmp_path: Path) -> None:
    data = write_generated_faces(tmp_path / "faces")
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    plain = save_fresh_fll(start, LOCAL_CFG)
    out = tmp_path / "w" / "fll.pt"
    cfg = TrainFLLConfig(
        [data], [data], steps=2, batch=4, init=start, out=out, local=True, heatmap=True
    )
    cfg.model, cfg.checkpoint = FLL_CFG, tmp_path / "ckpt" / "a.ckpt"
    train_fll(cfg, log=lambda _m: None)
    assert "--local --heatmap" in read_manifest(out.parent)["weights"]["fll.pt"]["command"]
    trained = load_localizer(load_weights(out, "fll"))
    assert trained.config.heatmap and trained.heatmap is not None
    assert float(trained.heatmap.mix_logit.detach().abs().sum()) > 0  # the blend was trained
    assert set(plain.state_dict()) < set(trained.state_dict())  # everything else carried over
    assert len(trained.stages(torch.rand(1, 3, 64, 64))) == 4

    # a file with the head cannot continue without it (the head would be dropped silently)
    again = TrainFLLConfig([data], [data], steps=1, batch=4, init=out, local=True)
    again.model = FLL_CFG
    with pytest.raises(CrctError, match="--heatmap"):
        train_fll(again, log=lambda _m: None)
    # an older file (no ``heatmap`` in its config) still loads, without the head
    assert load_localizer(load_weights(start, "fll")).heatmap is None
