"""``crct degrade``: the paper's values per type and level, layouts, seeds, videos, bad input."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest

from crct_cli.degrade import CLEAN_DIR, plan_degrade
from crct_cli.errors import CrctError
from crct_cli.io.images import read_image, write_image
from crct_cli.noise import LEVELS, NOISE_TYPES


def degrade_one(tmp_path: Path, image: np.ndarray, noise_type: str, level: int, **kw) -> np.ndarray:
    """Write ``image`` as PNG, run the degrade pipeline on it, read the result back."""
    src = save(tmp_path / "in" / "img.png", image)
    out = tmp_path / f"out_{noise_type}_{level}"
    plan = plan_degrade([src], out, noise_type, level, **kw)
    list(plan.run())
    return read_image(out / "img.png")


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)
    return path


def run(paths: list[Path], out: Path, *args, **kw) -> None:
    list(plan_degrade(paths, out, *args, **kw).run())


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("level", "sigma"), [(1, 1.0), (2, 3.0), (3, 5.0)])
def test_blur_of_a_line_impulse_has_the_papers_sigma(
    tmp_path: Path, level: int, sigma: float
) -> None:
    image = np.zeros((9, 101, 3), np.uint8)
    image[:, 50] = 255
    row = degrade_one(tmp_path, image, "blur", level)[4, :, 0].astype(float)
    x = np.arange(101) - 50.0
    measured = np.sqrt((row * x**2).sum() / row.sum())
    assert measured == pytest.approx(sigma, rel=0.03)
    gauss = 255.0 * np.exp(-(x**2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    assert np.abs(row - gauss).max() <= 1.0


@pytest.mark.parametrize(("level", "variance"), [(1, 0.001), (2, 0.005), (3, 0.01)])
def test_noise_variance_on_flat_grey(tmp_path: Path, level: int, variance: float) -> None:
    image = np.zeros((160, 160, 3), np.uint8)
    image[...] = (128, 120, 136)  # not gray: noise drawn per channel
    out = degrade_one(tmp_path, image, "noise", level, seed=1).astype(float) / 255.0
    diff = out - image.astype(float) / 255.0
    assert abs(diff.mean()) < 0.003
    assert diff.var() == pytest.approx(variance, rel=0.05)
    assert not np.array_equal(out[..., 0], out[..., 1])


@pytest.mark.parametrize(("level", "scale"), [(1, 0.8), (2, 0.5), (3, 0.2)])
def test_intensity_scale_is_exact(tmp_path: Path, level: int, scale: float) -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = np.stack([ramp, ramp.T, 255 - ramp], axis=-1)
    out = degrade_one(tmp_path, image, "scale", level)
    expected = np.floor(image.astype(np.float64) * scale + 0.5)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


@pytest.mark.parametrize(("level", "factor"), [(1, 2), (2, 4), (3, 8)])
def test_downsample_erases_detail_finer_than_its_factor(
    tmp_path: Path, level: int, factor: int
) -> None:
    x = np.arange(64)
    fine = np.where((x // max(factor // 2, 1)) % 2 == 0, 255, 0).astype(np.uint8)  # period f
    coarse = np.where((x // factor) % 2 == 0, 255, 0).astype(np.uint8)  # period 2 f
    for stripes, survives in ((fine, False), (coarse, True)):
        image = np.repeat(np.tile(stripes, (64, 1))[..., None], 3, axis=2)
        out = degrade_one(tmp_path, image, "downsample", level)
        assert out.shape == image.shape  # back to the original size
        if survives:
            assert out[..., 0].std() > 50
        else:
            assert out[..., 0].max() - out[..., 0].min() <= 1
        if level > 1 and not survives:
            # ... while the previous level's factor keeps it
            kept = degrade_one(tmp_path / "prev", image, "downsample", level - 1)
            assert kept[..., 0].std() > 50


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_level_zero_copies_bytes(tmp_path: Path, noise_type: str) -> None:
    src = tmp_path / "a.jpg"
    write_image(src, np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    run([src], tmp_path / "out", noise_type, 0)
    assert (tmp_path / "out" / "a.jpg").read_bytes() == src.read_bytes()


def test_grayscale_stays_grayscale(tmp_path: Path) -> None:
    src = tmp_path / "g.png"
    cv2.imwrite(str(src), np.full((32, 32), 100, np.uint8))
    run([src], tmp_path / "out", "noise", 3, seed=0)
    out = cv2.imread(str(tmp_path / "out" / "g.png"), cv2.IMREAD_UNCHANGED)
    assert out.ndim == 2 and out.std() > 5


def make_tree(root: Path) -> None:
    rng = np.random.default_rng(3)
    for rel in ("a.png", "sub/b.png", "sub/deeper/c.jpg"):
        save(root / rel, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    (root / "sub" / "b.pts").write_text("version: 1\nanything: copied as is\n")
    (root / "notes.txt").write_text("skipped")
    save(root / ".hidden" / "h.png", np.zeros((4, 4, 3), np.uint8))


def test_folder_is_mirrored_with_pts_copied(tmp_path: Path) -> None:
    make_tree(tmp_path / "data")
    plan = plan_degrade([tmp_path / "data"], tmp_path / "out", "blur", 1)
    list(plan.run())
    assert files_under(tmp_path / "out") == {"a.png", "sub/b.png", "sub/b.pts", "sub/deeper/c.jpg"}
    assert (tmp_path / "out/sub/b.pts").read_bytes() == (tmp_path / "data/sub/b.pts").read_bytes()
    assert [p.name for p in plan.skipped] == ["notes.txt"]
    assert not np.array_equal(
        read_image(tmp_path / "out/a.png"), read_image(tmp_path / "data/a.png")
    )


def test_all_writes_clean_and_twelve_sets(tmp_path: Path) -> None:
    make_tree(tmp_path / "data")
    run([tmp_path / "data"], tmp_path / "out", all_sets=True, seed=5)
    tree = files_under(tmp_path / "out")
    leaf = {"a.png", "sub/b.png", "sub/b.pts", "sub/deeper/c.jpg"}
    sets = [CLEAN_DIR] + [f"{t}/{lv}" for t in NOISE_TYPES for lv in LEVELS]
    assert len(sets) == 13
    assert tree == {f"{s}/{f}" for s in sets for f in leaf}
    clean = tmp_path / "out" / CLEAN_DIR
    assert (clean / "sub/deeper/c.jpg").read_bytes() == (
        tmp_path / "data/sub/deeper/c.jpg"
    ).read_bytes()
    # the --all noise set equals the single run with the same seed, type and level
    run([tmp_path / "data"], tmp_path / "single", "noise", 2, seed=5)
    for f in ("a.png", "sub/b.png"):
        assert (tmp_path / "out/noise/2" / f).read_bytes() == (tmp_path / "single" / f).read_bytes()


def test_seed_is_reproducible_and_order_independent(tmp_path: Path) -> None:
    make_tree(tmp_path / "data")
    run([tmp_path / "data"], tmp_path / "r1", "noise", 1, seed=42)
    run([tmp_path / "data"], tmp_path / "r2", "noise", 1, seed=42)
    run([tmp_path / "data"], tmp_path / "r3", "noise", 1, seed=43)
    # the same file alone, at the same relative path, gets the same noise
    run([tmp_path / "data/a.png"], tmp_path / "alone", "noise", 1, seed=42)
    a1 = (tmp_path / "r1/sub/b.png").read_bytes()
    assert a1 == (tmp_path / "r2/sub/b.png").read_bytes()
    assert a1 != (tmp_path / "r3/sub/b.png").read_bytes()
    assert (tmp_path / "alone/a.png").read_bytes() == (tmp_path / "r1/a.png").read_bytes()
    # different files do not share one noise pattern
    a, b = read_image(tmp_path / "r1/a.png"), read_image(tmp_path / "data/a.png")
    c, d = read_image(tmp_path / "r1/sub/b.png"), read_image(tmp_path / "data/sub/b.png")
    assert not np.array_equal(a.astype(int) - b, c.astype(int) - d)


def test_video_every_frame_degraded_and_annot_copied(tmp_path: Path) -> None:
    from crct_cli.io.video import VideoWriter, iter_frames, probe_video

    folder = tmp_path / "300vw" / "001"
    (folder / "annot").mkdir(parents=True)
    levels = [60, 120, 180, 240, 200, 100]
    with VideoWriter(folder / "vid.mp4", 12.5, 48, 32) as writer:
        for v in levels:
            writer.write(np.full((32, 48, 3), v, np.uint8))
    for i in range(len(levels)):
        (folder / "annot" / f"{i + 1:06d}.pts").write_text(f"frame {i + 1}\n")
    run([folder / "vid.mp4"], tmp_path / "out", "scale", 3)
    out = tmp_path / "out" / "vid.mp4"
    info = probe_video(out)
    assert info.fps == pytest.approx(12.5) and (info.width, info.height) == (48, 32)
    means = [float(f.image.mean()) for f in iter_frames(out)]
    assert means == pytest.approx([0.2 * v for v in levels], abs=3.0)
    assert files_under(tmp_path / "out" / "annot") == {f"{i:06d}.pts" for i in range(1, 7)}
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_bad_requests_raise_one_line_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (([tmp_path / "missing.png"], tmp_path / "o", "blur", 1), {}, "no such file"),
        (([tmp_path / "a.png"], tmp_path / "o", "fog", 1), {}, "unknown noise type"),
        (([tmp_path / "a.png"], tmp_path / "o", "blur", 4), {}, "level"),
        (([tmp_path / "a.png"], tmp_path / "o", None, None), {}, "--noise and --level"),
        (([tmp_path / "a.png"], tmp_path / "o", "blur", 1), {"all_sets": True}, "--all"),
        (([tmp_path / "a.png"], tmp_path / "file.txt" / "sub", "blur", 1), {}, "output folder"),
        (([tmp_path / "a.png"], tmp_path, "blur", 1), {}, "overwrite"),
        (([tmp_path / "file.txt"], tmp_path / "o", "blur", 1), {}, "not an image"),
    ]
    for args, kw, match in cases:
        with pytest.raises(CrctError, match=match) as info:
            plan_degrade(*args, **kw)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()  # validation happens before anything is created


def test_same_name_from_two_folders_is_refused(tmp_path: Path) -> None:
    for d in ("x", "y"):
        save(tmp_path / d / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(CrctError, match="both be written"):
        plan_degrade([tmp_path / "x/a.png", tmp_path / "y/a.png"], tmp_path / "o", "blur", 1)


def test_corrupt_image_stops_and_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.png").write_bytes(b"\x89PNG not really")
    plan = plan_degrade([tmp_path / "data"], tmp_path / "out", "blur", 1)
    with pytest.raises(CrctError, match="bad.png: not a readable image"):
        list(plan.run())
    assert files_under(tmp_path / "out") == set()


def test_a_video_frame_lost_to_a_corrupt_packet_keeps_its_place(tmp_path: Path) -> None:
    """A degraded copy of a video with a frame that fails to decode has the source's frame
    count and timing (the frame before held over the lost one), so labels of the source
    (annot/, frame k = 00000k+1.pts) still fit the copy frame by frame."""
    from test_video_seek import N_FRAMES, X264, _regular, _spoil_packet, _write

    from crct_cli.io.video import iter_frames

    clip = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "3", **X264})
    folder = tmp_path / "in"
    folder.mkdir()
    lost = _spoil_packet(clip, folder / "bad.mp4", 40)
    run([folder / "bad.mp4"], tmp_path / "out", "noise", 1, seed=0)
    copy = list(iter_frames(tmp_path / "out" / "bad.mp4"))
    source = {f.index: f.image.astype(float) for f in iter_frames(folder / "bad.mp4")}
    assert len(copy) == N_FRAMES and lost not in source
    for k in (lost - 1, lost + 1, lost + 20):  # the same picture, with level-1 noise on it
        assert np.abs(copy[k].image - source[k]).mean() < 12, k
    assert np.abs(copy[lost].image - source[lost - 1]).mean() < 12


def test_a_video_cut_short_is_written_to_the_cut_with_crct_track_s_warning(
    tmp_path: Path,
) -> None:
    """``crct degrade`` and ``crct denoise`` of an MP4 cut off (its index at the front: it
    decodes to the cut without an error) write the frames before the cut and say, as crct
    track does, how many its header promised that never came; the whole file, nothing."""
    from test_batch import _whole_and_cut
    from test_cli import crct

    from crct_cli.io.video import probe_video

    whole, cut = _whole_and_cut(tmp_path)
    for command in (["degrade", "--noise", "blur", "--level", "1"], ["denoise", "--variant", "d"]):
        out = tmp_path / command[0]
        result = crct(command[0], cut, whole, "--out", out, *command[1:])
        assert result.exit_code == 0, result.output
        written = probe_video(out / "cut.mp4").n_frames
        assert written is not None and 0 < written < 28
        warning = f"{30 - written} frames its header promises never decoded (a file cut short?)"
        assert result.stderr.count("never decoded") == 1 and warning in result.stderr
        assert f"the {written} before the cut are written" in result.stderr
        assert probe_video(out / "whole.mp4").n_frames == 30


def test_a_jpeg_noise_set_keeps_its_noise(tmp_path: Path) -> None:
    """A JPEG input is written back as JPEG. At OpenCV's default settings (colour at half
    resolution) the file kept about 0.72 of noise-3's standard deviation, a milder level than
    the one asked for; now the written noise is the noise added, to a grey level."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(40, 220, (128, 128, 3)).astype(np.uint8), (0, 0), 4)
    src = save(tmp_path / "in" / "face.jpg", image)
    clean = read_image(src).astype(float)
    out = tmp_path / "out"
    run([src], out, "noise", 3, seed=3)
    added = read_image(out / "face.jpg").astype(float) - clean
    assert added.std() == pytest.approx(np.sqrt(0.01) * 255, rel=0.04)  # 25.5 grey levels
    assert (out / "face.jpg").read_bytes()[:2] == b"\xff\xd8"  # still a JPEG


def test_a_noise_video_is_written_losslessly_unless_asked_otherwise(tmp_path: Path) -> None:
    """H.264 at crct's usual quality kept about 0.6 of noise-3's std in a degraded video. The
    noise sets are now written lossless (4:4:4): each frame decodes as degraded in memory, to
    a grey level (YUV's rounding); --lossy, and the other types by default, as before."""
    from crct_cli.degrade import degrade_rgb, file_rng
    from crct_cli.io.video import VideoWriter, iter_frames

    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    ramp = np.linspace(40, 200, 64)[None, :, None].repeat(48, 0).repeat(3, 2).astype(np.uint8)
    with VideoWriter(src, 10, 64, 48, lossless=True) as writer:
        for k in range(4):
            writer.write(np.roll(ramp, 4 * k, axis=1))
    frames = [f.image for f in iter_frames(src)]
    rng = file_rng(7, PurePosixPath("clip.mp4"), "noise", 3)
    expected = [degrade_rgb(f, "noise", 3, rng) for f in frames]
    for lossless, name in ((None, "auto"), (False, "lossy")):
        list(plan_degrade([src], tmp_path / name, "noise", 3, seed=7, lossless=lossless).run())
        got = [f.image.astype(float) for f in iter_frames(tmp_path / name / "clip.mp4")]
        worst = max(np.abs(g - e).max() for g, e in zip(got, expected, strict=True))
        kept = np.mean([(g - f).std() for g, f in zip(got, frames, strict=True)])
        if lossless is None:
            assert worst <= 2 and kept == pytest.approx(25.5, rel=0.06), (worst, kept)
        else:
            assert worst > 2, worst  # coded as crct's other videos are
    size = {n: (tmp_path / n / "clip.mp4").stat().st_size for n in ("auto", "lossy")}
    assert size["auto"] > 2 * size["lossy"]


def test_the_hard_combination_rebuilds_from_its_seed_and_lossless_keeps_every_pixel(
    tmp_path: Path,
) -> None:
    """bench.hard_video: the frames written are the combination drawn from the seed (strips
    on a third of the frames, noise), exactly with --lossless, coded as crct's videos
    without it."""
    from crct_cli.bench.hard_video import harden, harden_video, main, strip_frames
    from crct_cli.io.video import VideoWriter, iter_frames

    src = tmp_path / "clip.mp4"
    ramp = np.linspace(40, 220, 64)[None, :, None].repeat(48, 0).repeat(3, 2).astype(np.uint8)
    with VideoWriter(src, 5, 64, 48, lossless=True) as writer:
        for k in range(15):
            writer.write(np.roll(ramp, 3 * k, axis=1))
    frames = [f.image for f in iter_frames(src)]
    rng = np.random.default_rng(4)
    strips = strip_frames(len(frames), 5.0, rng)
    assert len({t // 5 for t in strips}) == 1  # one of three one-second bursts
    expected = [harden(f, strips.get(k), rng) for k, f in enumerate(frames)]
    assert harden_video(src, tmp_path / "exact.mp4", seed=4, lossless=True) == 15
    main([str(src), "--out", str(tmp_path / "coded.mp4"), "--seed", "4"])
    for name, exact in (("exact.mp4", True), ("coded.mp4", False)):
        got = [f.image.astype(int) for f in iter_frames(tmp_path / name)]
        worst = max(np.abs(g - e).max() for g, e in zip(got, expected, strict=True))
        assert (worst <= 2) == exact, (name, worst)


def test_the_command_says_before_it_starts_that_noise_videos_are_written_losslessly(
    tmp_path: Path,
) -> None:
    """Lossless noise videos are several times larger: `crct degrade` says how many before it
    writes them (a whole archive's --all could fill a disk), not for images, other types or
    when --lossless/--lossy was given."""
    from typer.testing import CliRunner

    from crct_cli.cli import app
    from crct_cli.io.video import VideoWriter

    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    with VideoWriter(src, 10, 32, 24) as writer:
        for _ in range(2):
            writer.write(np.full((24, 32, 3), 120, np.uint8))
    save(tmp_path / "in" / "face.png", np.full((24, 32, 3), 90, np.uint8))

    def said(*args: str) -> str:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        done = CliRunner().invoke(app, ["degrade", str(tmp_path / "in"), "--out", str(out), *args])
        assert done.exit_code == 0, done.output
        return " ".join(done.stderr.split())

    assert "1 noise-set video(s) written losslessly" in said("--noise", "noise", "--level", "2")
    assert "3 noise-set video(s) written losslessly" in said("--all", "--seed", "0")
    quiet = [
        ("--noise", "blur", "--level", "2"),
        ("--noise", "noise", "--level", "2", "--lossy"),
        ("--noise", "noise", "--level", "2", "--lossless"),
        ("--noise", "noise", "--level", "0"),
    ]
    for args in quiet:
        assert "losslessly" not in said(*args), args
