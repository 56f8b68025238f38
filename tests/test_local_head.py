"""FLL's shape-indexed head: where it samples, that it starts as the identity, and that
``--freeze-global`` trains it alone on top of an existing FLL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from test_geometry_models import FLL_CFG
from test_stage2 import save_fresh_fll, write_generated_faces

from crct_cli.errors import CrctError
from crct_cli.models.fll import LandmarkLocalizer, ShapeIndexedHead, load_localizer
from crct_cli.models.weights import load_weights, read_manifest
from crct_cli.train.fll import TrainFLLConfig, train_fll

LOCAL_CFG = dataclasses.replace(FLL_CFG, local=True)


def test_sampling_reads_the_map_at_each_point_and_its_neighbours() -> None:
    """A map whose channels hold each cell's own x and y: sampling returns the point's
    position, and the patch steps one cell at a time around it."""
    h = 16
    centres = (torch.arange(h, dtype=torch.float32) + 0.5) / h - 0.5  # cell centres, crop units
    fmap = torch.stack(torch.meshgrid(centres, centres, indexing="xy"))[None]  # (1, 2, h, h)
    points = torch.rand(1, 68, 2) * 0.5 - 0.25
    cells = ShapeIndexedHead.patch_cells(3)
    patch = ShapeIndexedHead.sample(fmap, points, cells).view(1, 68, 2, 9)
    assert torch.allclose(patch[..., 4], points, atol=1e-5)  # the middle of the 3x3 patch
    assert torch.allclose(patch[:, :, 0, 5] - patch[:, :, 0, 4], torch.full((1, 68), 1 / h))
    assert torch.allclose(patch[:, :, 1, 7] - patch[:, :, 1, 4], torch.full((1, 68), 1 / h))


def test_head_starts_as_the_identity_then_corrects_each_point() -> None:
    torch.manual_seed(0)
    model = LandmarkLocalizer(LOCAL_CFG).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        first, refined = model.stages(x)
        assert torch.equal(first, refined) and torch.equal(model(x), refined)
        assert model.local is not None
        model.local.out_bias[5] = torch.tensor([0.01, -0.02])
        first2, refined2 = model.stages(x)
    assert torch.equal(first2, first)
    shift = refined2 - first2
    assert torch.allclose(shift[:, 5], torch.tensor([0.01, -0.02]).expand(2, 2))
    assert float(shift[:, [i for i in range(68) if i != 5]].abs().max()) == 0.0
    assert len(LandmarkLocalizer(FLL_CFG).stages(x)) == 1  # no head: one stage


def test_frozen_global_keeps_weights_and_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = LandmarkLocalizer(LOCAL_CFG)
    model.freeze_global()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("local.")}
    model.train()
    assert not model.trunk.training and model.local is not None and model.local.training
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        loss = model(torch.rand(4, 3, 64, 64)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # running stats too
    assert float(model.local.out_weight.detach().abs().sum()) > 0  # the head did learn


def test_train_local_head_on_a_frozen_fll(tmp_path: Path) -> None:
    data = write_generated_faces(tmp_path / "faces")
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    plain = save_fresh_fll(start)
    out = tmp_path / "w" / "fll.pt"
    cfg = TrainFLLConfig(
        [data], [data], steps=3, batch=4, init=start, out=out, local=True, freeze_global=True
    )
    cfg.model, cfg.checkpoint = FLL_CFG, tmp_path / "ckpt" / "a.ckpt"
    train_fll(cfg, log=lambda _m: None)
    command = read_manifest(out.parent)["weights"]["fll.pt"]["command"]
    assert "--local" in command and "--freeze-global" in command
    trained = load_localizer(load_weights(out, "fll"))
    assert trained.local is not None and trained.config.local
    state = trained.state_dict()
    for key, value in plain.state_dict().items():  # fp16 on disk: equal to its rounding
        assert torch.equal(state[key], value.half().to(value.dtype)), key
    assert float(trained.local.out_weight.detach().abs().sum()) > 0

    # a plain FLL cannot continue from a file with the head (it would silently drop it)
    again = TrainFLLConfig([data], [data], steps=1, batch=4, init=out, out=tmp_path / "b.pt")
    again.model = FLL_CFG
    with pytest.raises(CrctError, match="--local"):
        train_fll(again, log=lambda _m: None)


def test_freeze_global_needs_local_and_init() -> None:
    with pytest.raises(CrctError, match="--freeze-global"):
        TrainFLLConfig([Path("t")], [Path("v")], freeze_global=True, init=Path("a.pt"))
    with pytest.raises(CrctError, match="--freeze-global"):
        TrainFLLConfig([Path("t")], [Path("v")], freeze_global=True, local=True)


def test_further_local_steps_start_as_the_identity_and_look_closer() -> None:
    """A second step added to a trained one-step FLL leaves its answer as it was, samples half
    as far around the points, and then refines what the first step placed."""
    torch.manual_seed(0)
    one = LandmarkLocalizer(LOCAL_CFG).eval()
    assert one.local is not None
    with torch.no_grad():
        one.local.out_bias.normal_(0.0, 0.01)  # a first step that does something
    two = LandmarkLocalizer(dataclasses.replace(LOCAL_CFG, local_steps=2)).eval()
    missing, unexpected = two.load_state_dict(one.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("local_more.0.") for k in missing)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        stages = two.stages(x)
        assert len(stages) == 3 and torch.equal(stages[2], one(x))
        second = two.local_more[0]
        assert isinstance(second, ShapeIndexedHead)
        assert float(second.cells_a.abs().max()) == 0.5 * float(one.local.cells_a.abs().max())
        second.out_bias[7] = torch.tensor([0.02, 0.0])
        moved = two.stages(x)
    assert torch.equal(moved[1], stages[1])  # the first step is untouched
    assert torch.allclose(moved[2][:, 7] - moved[1][:, 7], torch.tensor([0.02, 0.0]).expand(2, 2))


def test_train_a_second_local_step_on_a_one_step_fll(tmp_path: Path) -> None:
    data = write_generated_faces(tmp_path / "faces")
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    save_fresh_fll(start, LOCAL_CFG)
    out = tmp_path / "w" / "fll.pt"
    cfg = TrainFLLConfig(
        [data], [data], steps=2, batch=4, init=start, out=out, local=True, local_steps=2
    )
    cfg.model, cfg.checkpoint = FLL_CFG, tmp_path / "ckpt" / "a.ckpt"
    train_fll(cfg, log=lambda _m: None)
    assert "--local --local-steps 2" in read_manifest(out.parent)["weights"]["fll.pt"]["command"]
    trained = load_localizer(load_weights(out, "fll"))
    assert trained.config.local_steps == 2 and len(trained.local_more) == 1
    assert float(trained.local_more[0].out_weight.detach().abs().sum()) > 0  # it learned

    # fewer steps cannot continue from it (the second would be dropped silently)
    again = TrainFLLConfig([data], [data], steps=1, batch=4, init=out, local=True)
    again.model = FLL_CFG
    with pytest.raises(CrctError, match="--local-steps 2"):
        train_fll(again, log=lambda _m: None)
    with pytest.raises(CrctError, match="--local-steps"):
        TrainFLLConfig([Path("t")], [Path("v")], local_steps=2)


def test_a_two_step_fll_exports_to_onnx_as_torch_runs_it() -> None:
    """The ONNX path swaps each head's sampling for gathers; the second step must get its own
    (``localizer_graph`` runs the graph and fails on any difference from PyTorch)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from crct_cli.runtime.export import gather_sample, localizer_graph

    torch.manual_seed(0)
    model = LandmarkLocalizer(dataclasses.replace(LOCAL_CFG, local_steps=2)).eval()
    with torch.no_grad():
        for head in (model.local, *model.local_more):
            assert isinstance(head, ShapeIndexedHead)
            head.out_weight.normal_(0.0, 0.01)  # both steps move the points
    assert localizer_graph(model)
    assert all(h.sample is gather_sample for h in (model.local, *model.local_more))
