"""FLL's second stage: the eye-levelled frame, the Aligner's refine pass through it, loading it
from the manifest, and the training crops it learns from.

The frame is checked from first principles on a rotated template; the Aligner with fixed-shape
networks, whose outputs are then predictable; training crops on a generated face.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_geometry_models import FLL_CFG, fixed_shape_model, ibug_template

from crct_cli import geometry
from crct_cli.aligner import STAGE2_FILE, AlignConfig, Aligner, build_aligner
from crct_cli.errors import CrctError
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.landmarks import box_from_points, upright_frame
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
from crct_cli.models.weights import read_manifest, save_weights, sha256_file, update_manifest
from crct_cli.train.data import NO_AUGMENT, Face
from crct_cli.train.fll import FrameJitter, TrainFLLConfig, make_batch, train_fll, upright_crop
from crct_cli.train.iid import visible_class
from crct_cli.train.losses import WING_WIDTH, wing_loss
from crct_cli.train.run import display_path

STAGE2_CFG = dataclasses.replace(FLL_CFG, context=1.3, upright=True)


def rotated(points: np.ndarray, angle_deg: float, centre: np.ndarray) -> np.ndarray:
    """Rotate by ``angle_deg`` in image coordinates (y down): +x turns towards +y."""
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return points @ rot.T + centre


@pytest.mark.parametrize("angle", [0.0, 25.0, -40.0, 120.0])
def test_upright_frame_undoes_in_plane_rotation(angle: float) -> None:
    template = 1.7 * ibug_template()
    centre = np.array([210.0, 140.0])
    points = rotated(template, angle, centre)
    frame_centre, side, frame_angle = upright_frame(points)
    assert frame_angle == pytest.approx(angle, abs=1e-6)
    x, y, w, h = box_from_points(template)
    assert side == pytest.approx(max(w, h))
    box_centre = np.array([x + w / 2, y + h / 2])
    assert np.allclose(frame_centre, rotated(box_centre[None], angle, centre)[0])
    # the crop at that frame shows the template level, whatever the rotation
    m = geometry.crop_matrix(frame_centre, side, 100, frame_angle)
    assert np.allclose(
        geometry.apply(m, points),
        geometry.apply(geometry.crop_matrix(box_centre, side, 100), template),
        atol=1e-6,
    )


def _template_units() -> np.ndarray:
    t = ibug_template()
    x, y, w, h = box_from_points(t)
    return (t - [x + w / 2, y + h / 2]) / (max(w, h) * 1.35)


def test_refine_pass_uses_the_second_stage_in_its_upright_crop() -> None:
    units1 = _template_units()
    units2 = np.roll(units1, 3, axis=0) * 0.9  # any distinct shape
    refiner = fixed_shape_model(units2)
    refiner.config = STAGE2_CFG
    image = np.zeros((240, 320, 3), np.uint8)
    box = np.array([[100.0, 60.0, 90.0, 100.0]])
    first = Aligner(fixed_shape_model(units1), "cpu", AlignConfig(refine=0))(image, box)[0]
    both = Aligner(fixed_shape_model(units1), "cpu", AlignConfig(refine=1), refiner=refiner)(
        image, box
    )[0]
    # the second stage's output, taken back through its own crop, is its shape in crop pixels
    centre, side, angle = upright_frame(first)
    m = geometry.crop_matrix(centre, side * STAGE2_CFG.context, STAGE2_CFG.input_size, angle)
    size = STAGE2_CFG.input_size
    expected = (units2.astype(np.float32).astype(np.float64) + 0.5) * size
    assert np.allclose(geometry.apply(m, both), expected, atol=1e-3)
    # and it differs from running FLL twice, which is what an aligner without a refiner does
    twice = Aligner(fixed_shape_model(units1), "cpu", AlignConfig(refine=1))(image, box)[0]
    assert not np.allclose(both, twice, atol=1.0)
    # blending returns the mean of the first pass and the second stage's
    blended = Aligner(
        fixed_shape_model(units1), "cpu", AlignConfig(refine=1, blend=True), refiner=refiner
    )(image, box)[0]
    assert np.allclose(blended, 0.5 * (first + both), atol=1e-4)
    no_refine = AlignConfig(refine=0, blend=True)  # nothing to blend with
    assert np.allclose(Aligner(fixed_shape_model(units1), "cpu", no_refine)(image, box)[0], first)


def _write(folder: Path, name: str, model: LandmarkLocalizer) -> None:
    config = {"model": dataclasses.asdict(model.config)}
    sha = save_weights(folder / name, "fll", config, model.state_dict())
    update_manifest(name, {"sha256": sha, "command": "test"}, folder)


def test_build_aligner_loads_the_second_stage_listed_in_the_manifest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    _write(tmp_path, "fll.pt", LandmarkLocalizer(FLL_CFG))
    aligner, denoiser, files = build_aligner("none", weights_dir=tmp_path)
    assert aligner.refiner is None and denoiser is None and set(files) == {"fll"}

    _write(tmp_path, STAGE2_FILE, LandmarkLocalizer(STAGE2_CFG))
    aligner, _, files = build_aligner("none", weights_dir=tmp_path)
    assert aligner.refiner is not None and aligner.refiner.config.upright
    assert set(files) == {"fll", "fll_stage2"}

    (tmp_path / STAGE2_FILE).unlink()  # listed but gone: an error naming it, no fallback
    with pytest.raises(CrctError, match=STAGE2_FILE):
        build_aligner("none", weights_dir=tmp_path)


def _generated_face(angle: float) -> Face:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    return Face("gen", image, rotated(1.5 * ibug_template(), angle, np.array([150.0, 150.0])))


@pytest.mark.parametrize("angle", [0.0, 35.0, -60.0])
def test_second_stage_crops_are_eye_levelled_and_framed(angle: float) -> None:
    face = _generated_face(angle)
    rng = np.random.default_rng(0)
    still = FrameJitter(0.0, 0.0, 0.0, 0.0)
    crop, pts = upright_crop(face, rng, 64, 1.3, NO_AUGMENT, still)
    assert crop.shape == (64, 64, 3)
    eye_line = pts[42:48].mean(0) - pts[36:42].mean(0)
    assert abs(eye_line[1]) < 1e-6 and eye_line[0] > 0
    x, y, w, h = box_from_points(pts)  # the tight box fills 1 / context of the crop
    assert max(w, h) == pytest.approx(64 / 1.3, rel=1e-6)
    assert np.allclose([x + w / 2, y + h / 2], [31.5, 31.5])


def test_second_stage_batches_jitter_and_keep_points_in_the_crop() -> None:
    faces = [_generated_face(a) for a in (0.0, 30.0, -45.0)]
    cfg = TrainFLLConfig(
        train=[Path("t")], val=[Path("v")], stage=2, batch=24, out=Path("x/fll_stage2.pt")
    )
    cfg.model = dataclasses.replace(STAGE2_CFG)
    assert cfg.file_stem() == "fll_stage2"
    assert "--stage 2" in cfg.command() and "--init" in cfg.command()
    assert "--loss wing" in cfg.command() and "--first" not in cfg.command()  # init = first
    x, y = make_batch(faces, cfg, 0)
    assert x.shape == (24, 3, 64, 64) and y.shape == (24, 68, 2)
    # inside the crop, but for a rare wide jitter (as after a poor first estimate)
    assert float((y.abs() < 0.5).float().mean()) > 0.99 and float(y.abs().max()) < 0.65
    tilt = (y[:, 42:48].mean(1) - y[:, 36:42].mean(1)).numpy()
    tilt_deg = np.degrees(np.arctan2(tilt[:, 1], tilt[:, 0]))
    assert 0.5 < np.std(tilt_deg) < 20  # jittered around level, never far
    again_x, again_y = make_batch(faces, cfg, 0)  # batches are a function of (seed, step)
    assert torch.equal(again_x, x) and torch.equal(again_y, y)


def test_harsher_degradation_is_recorded_in_the_command_and_stacks_degradations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crct_cli.train.data as data
    from crct_cli.train.data import AugmentConfig

    faces = [_generated_face(a) for a in (0.0, 20.0)]
    plain = TrainFLLConfig(train=[Path("t")], val=[Path("v")], batch=64, out=Path("x/fll.pt"))
    assert "--degradation" not in plain.command() and "--stack" not in plain.command()
    harsh = dataclasses.replace(plain, augment=AugmentConfig(degradation=1.0, stack=0.5))
    assert "--degradation 1.0 --stack 0.5" in harsh.command()

    def more(cfg: TrainFLLConfig, **changes: float) -> TrainFLLConfig:
        """``cfg`` with these augmentation options changed."""
        return dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, **changes))

    # each option is recorded after the ones before it, and only when it is used
    shaded = more(harsh, shadow=0.25)
    deep = more(shaded, shadow_dark=0.5)
    squeezed = more(shaded, compression=0.5)
    small = more(shaded, small_face=0.5)
    smeared = more(small, motion_blur=0.5)
    bent = more(squeezed, shape_warp=0.5)
    longer = more(smeared, motion_blur_len=(0.02, 1.2))
    for cfg, base, flag, expected in [
        (shaded, harsh, "--shadow", "--degradation 1.0 --stack 0.5 --shadow 0.25"),
        (deep, shaded, "--shadow-dark", "--shadow 0.25 --shadow-dark 0.5"),
        (squeezed, shaded, "--compression", "--shadow 0.25 --compression 0.5"),
        (small, shaded, "--small-face", "--shadow 0.25 --small-face 0.5"),
        (smeared, small, "--motion-blur", "--small-face 0.5 --motion-blur 0.5"),
        (bent, squeezed, "--shape-warp", "--compression 0.5 --shape-warp 0.5"),
        (longer, smeared, "--motion-blur-max", "--motion-blur 0.5 --motion-blur-max 1.2"),
    ]:
        assert expected in cfg.command()
        assert flag not in base.command()
    from crct_cli.train.bt import TrainBTConfig

    bt = TrainBTConfig(train=[Path("t")], val=[Path("v")], out=Path("x/bt.pt"))
    bt = dataclasses.replace(bt, augment=dataclasses.replace(bt.augment, motion_blur=0.5))
    assert "--motion-blur" not in bt.command()  # BT's flag is its own shutter, not the smear
    assert dataclasses.replace(bt, motion_blur=0.5).command().count("--motion-blur 0.5") == 1
    assert "--fast-motion" not in bt.command()
    fast = dataclasses.replace(bt, motion_blur=0.5, fast_motion=0.5).command()
    assert "--motion-blur 0.5 --fast-motion 0.5" in fast

    applied: list[str] = []
    real = data.random_degradation

    def counted(image: np.ndarray, rng: np.random.Generator, p: float = 0.5):  # type: ignore[no-untyped-def]
        out = real(image, rng, p)
        if out[1] is not None:
            applied.append(out[1])
        return out

    monkeypatch.setattr(data, "random_degradation", counted)
    make_batch(faces, plain, 0)
    few = len(applied)
    applied.clear()
    make_batch(faces, harsh, 0)
    # every harsh crop is degraded, about half of them more than once; plain: about a quarter
    assert few < 64 * 0.45 and 64 * 1.5 < len(applied) < 64 * 2.6


def test_invisible_degradation_is_labelled_clean() -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert visible_class(clean, clean, 2) == 0
    assert visible_class(clean, np.clip(clean.astype(int) + 1, 0, 255).astype(np.uint8), 3) == 0
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    assert visible_class(clean, noisy, 3) == 3
    assert visible_class(clean, noisy, 0) == 0


def test_wing_loss_is_continuous_and_steeper_than_l1_for_small_errors() -> None:
    target = torch.zeros(1, 1, 2)
    below = wing_loss(torch.full((1, 1, 2), WING_WIDTH - 1e-6), target)
    above = wing_loss(torch.full((1, 1, 2), WING_WIDTH + 1e-6), target)
    assert abs(float(above - below)) < 1e-5  # the two pieces meet at w
    x = torch.tensor([[[0.005, -0.005]], [[0.3, 0.3]]], requires_grad=True)
    wing_loss(x, torch.zeros_like(x)).backward()
    assert x.grad is not None
    small, large = float(x.grad[0, 0, 0].abs()), float(x.grad[1, 0, 0].abs())
    assert small > 3 * large  # small errors pull harder than large ones; L1 pulls equally
    assert float(wing_loss(target, target)) == 0.0


def write_generated_faces(folder: Path) -> Path:
    """Three generated faces (image + .pts) in a new ``folder``, a training set for smoke runs."""
    folder.mkdir()
    for i, angle in enumerate((0.0, 20.0, -15.0)):
        face = _generated_face(angle)
        write_image(folder / f"f{i}.png", face.image)
        write_pts(folder / f"f{i}.pts", face.points)
    return folder


def save_fresh_fll(path: Path, config: FLLConfig = FLL_CFG) -> LandmarkLocalizer:
    """An untrained FLL of ``config`` written as a weight file to start training from."""
    model = LandmarkLocalizer(config)
    save_weights(path, "fll", {"model": dataclasses.asdict(config)}, model.state_dict())
    return model


def test_train_fll_continues_from_init_and_the_second_stage_records_its_first(
    tmp_path: Path,
) -> None:
    data = write_generated_faces(tmp_path / "faces")
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    save_fresh_fll(start)
    out = tmp_path / "w" / "fll.pt"
    cfg = TrainFLLConfig([data], [data], steps=2, batch=4, init=start, out=out, loss="wing")
    cfg.model, cfg.checkpoint = FLL_CFG, tmp_path / "ckpt" / "a.ckpt"
    assert set(train_fll(cfg, log=lambda _m: None)) == {
        f"refine{r}{f}" for r in ("0", "1", "1_blend") for f in ("", "_flip")
    }
    entry = read_manifest(out.parent)["weights"]["fll.pt"]
    assert entry["inputs"] == {"init": {"path": display_path(start), "sha256": sha256_file(start)}}
    assert "--loss wing" in entry["command"] and "--init" in entry["command"]
    assert sha256_file(out) != sha256_file(start)  # it trained

    second = tmp_path / "w" / "fll_stage2.pt"
    cfg2 = TrainFLLConfig(
        [data], [data], steps=2, batch=4, stage=2, first=out, out=second, loss="l1"
    )
    cfg2.model, cfg2.checkpoint = STAGE2_CFG, tmp_path / "ckpt" / "b.ckpt"
    metrics = train_fll(cfg2, log=lambda _m: None)
    entry2 = read_manifest(out.parent)["weights"]["fll_stage2.pt"]
    recorded = {"path": display_path(out), "sha256": sha256_file(out)}
    assert entry2["inputs"] == {"init": recorded, "first": recorded}  # starts from its first
    assert "--first" not in entry2["command"] and "--loss l1" in entry2["command"]
    assert display_path(out) in entry2["protocol"] and metrics["refine1"]["n"] == 3


def test_batches_built_in_worker_processes_are_those_of_one_thread(tmp_path: Path) -> None:
    """``--workers`` spreads the batches over processes without changing one of them, so a run
    with it trains to the same weights; ``--max-face`` and ``--device`` are recorded when used."""
    from crct_cli.train.data import load_faces
    from crct_cli.train.fll import BatchMaker, from_worker
    from crct_cli.train.loop import prefetch_processes

    data = write_generated_faces(tmp_path / "faces")
    cfg = TrainFLLConfig([data], [data], steps=3, batch=4, out=tmp_path / "w" / "fll.pt")
    cfg.model = FLL_CFG
    faces = load_faces([data])
    made = list(prefetch_processes(BatchMaker(cfg), 1, 4, workers=2, depth=2))
    assert [step for step, _ in made] == [1, 2, 3]  # in order, from the step asked for
    for step, batch in made:
        x, y = from_worker(batch)  # type: ignore[arg-type]
        want_x, want_y = make_batch(faces, cfg, step)
        assert torch.equal(x, want_x) and torch.equal(y, want_y)

    trained = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}" / "fll.pt"
        run = TrainFLLConfig([data], [data], steps=2, batch=4, out=out, workers=workers)
        run.model, run.checkpoint = FLL_CFG, tmp_path / "ckpt" / f"{workers}.ckpt"
        train_fll(run, log=lambda _m: None)
        trained[workers] = sha256_file(out)
        assert "--workers" not in read_manifest(out.parent)["weights"]["fll.pt"]["command"]
    assert trained[0] == trained[2]

    assert "--max-face" not in cfg.command() and "--device" not in cfg.command()
    small = dataclasses.replace(cfg, max_face=112.0, device="cuda")
    assert "--max-face 112 --device cuda" in small.command()
    with pytest.raises(CrctError):
        dataclasses.replace(cfg, max_face=10.0)


def test_a_second_stage_from_scratch_starts_from_no_weight_file(tmp_path: Path) -> None:
    data = write_generated_faces(tmp_path / "faces")
    first = tmp_path / "first.pt"
    save_fresh_fll(first)
    out = tmp_path / "w" / "fll_stage2.pt"
    cfg = TrainFLLConfig([data], [data], steps=2, batch=4, stage=2, first=first, out=out)
    assert cfg.init == first and "--from-scratch" not in cfg.command()
    fresh = TrainFLLConfig(
        [data], [data], steps=2, batch=4, stage=2, first=first, out=out, from_scratch=True
    )
    assert fresh.init is None and "--from-scratch" in fresh.command()
    fresh.model, fresh.checkpoint = STAGE2_CFG, tmp_path / "ckpt" / "s.ckpt"
    metrics = train_fll(fresh, log=lambda _m: None)
    entry = read_manifest(out.parent)["weights"]["fll_stage2.pt"]
    assert entry["inputs"] == {"first": {"path": display_path(first), "sha256": sha256_file(first)}}
    assert metrics["refine1"]["n"] == 3  # validated behind its first stage
    with pytest.raises(CrctError):
        TrainFLLConfig([data], [data], stage=2, init=first, from_scratch=True)


def test_a_time_budget_fits_the_steps_once_and_records_them() -> None:
    """``--minutes``: the steps that fit, set once from the probe's speed, never more than
    ``--steps``; the run then stops there and reports them for the recorded command."""
    from crct_cli.train.loop import PROBE, LoopConfig, fit_steps, run_loop

    cfg = LoopConfig(steps=10_000, minutes=2.0)
    # 0.005 s a step and 20 s gone: 100 s left fit 19,400 more steps -> the cap
    assert fit_steps(cfg, 0.005, 20.0) == 10_000
    assert fit_steps(cfg, 0.1, 20.0) == PROBE[1] + 970  # 100 s left at 0.1 s a step
    assert fit_steps(cfg, 0.1, 500.0) == PROBE[1]  # out of time: stop after the probe

    model = torch.nn.Linear(2, 1)

    def batches(start: int):  # type: ignore[no-untyped-def]
        return ((s, torch.ones(4, 2)) for s in range(start, 400))

    def loss_fn(m, batch, step):  # type: ignore[no-untyped-def]
        loss = m(batch).square().mean()
        return loss, {"loss": float(loss.detach())}

    seen: list[str] = []
    out_of_time = LoopConfig(steps=300, minutes=1e-6, log_every=1000)
    run_loop(model, batches, loss_fn, out_of_time, log=seen.append)
    assert out_of_time.steps == PROBE[1] and any("fit 100 steps" in m for m in seen)
    plenty = LoopConfig(steps=130, minutes=60.0, log_every=1000)
    run_loop(model, batches, loss_fn, plenty, log=lambda _m: None)
    assert plenty.steps == 130
    with pytest.raises(ValueError):
        run_loop(model, batches, loss_fn, LoopConfig(steps=300, minutes=1.0, warmup=10))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_training_on_a_gpu_lands_near_the_cpu_run(tmp_path: Path) -> None:
    """The same two steps on CUDA and on the CPU: the same batches, weights apart only by the
    GPU's rounding; the recorded command names the device."""
    data = write_generated_faces(tmp_path / "faces")
    states = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device / "fll.pt"
        run = TrainFLLConfig([data], [data], steps=2, batch=4, out=out, device=device)
        run.model, run.checkpoint = FLL_CFG, tmp_path / "ckpt" / f"{device}.ckpt"
        train_fll(run, log=lambda _m: None)
        states[device] = torch.load(out, map_location="cpu", weights_only=False)["state_dict"]
        assert ("--device cuda" in run.command()) == (device == "cuda")
    for name, cpu in states["cpu"].items():
        if cpu.is_floating_point():
            gpu = states["cuda"][name].float()
            assert torch.allclose(cpu.float(), gpu, atol=1e-3, rtol=1e-2), name  # fp16 files


def test_to_device_moves_the_tensors_of_a_batch_and_leaves_the_rest() -> None:
    from typing import NamedTuple

    from crct_cli.train.loop import to_device

    class Pair(NamedTuple):
        crops: torch.Tensor
        name: str

    rng = np.random.default_rng(0)
    batch = ([Pair(torch.ones(2), "a")], rng)
    assert to_device(batch, torch.device("cpu")) is batch  # nothing to move: the same object
    meta = torch.device("meta")  # a device every torch has, holding no data
    moved = to_device(batch, meta)
    assert isinstance(moved, tuple) and moved[1] is rng
    pair = moved[0][0]
    assert isinstance(pair, Pair) and pair.name == "a" and pair.crops.device.type == "meta"
