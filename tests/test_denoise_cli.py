"""``crct denoise`` and ``--denoise`` end to end, with tiny scripted weight files in tmp_path.

The weight folder is redirected by patching ``crct_cli.models.weights.WEIGHTS_DIR`` (the CLI
reads it when a command runs). Each IID's decisions are scripted through its last layers: the
classifier always answers one class, and each DAE adds a known constant, so what lands in the
output folder can be predicted exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from crct_cli.cli import app
from crct_cli.errors import OptionError
from crct_cli.io.images import read_image, write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.models import weights
from crct_cli.models.fadenn import (
    IID,
    ClassifierConfig,
    DAEConfig,
    IIDConfig,
    iid_weight_config,
)

TINY = (4, 6, 8)
#: What each DAE of the S and M files adds (blur's DAE brightens, the others darken).
SHIFTS = {1: -0.3, 2: 0.2, 3: -0.3, 4: -0.3}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scripted_iid(variant: str, verdict: int = 0, shift: float = 0.1) -> IID:
    iid = IID(IIDConfig(variant, DAEConfig(TINY), ClassifierConfig(TINY, hidden=8)))
    with torch.no_grad():
        if iid.classifier is not None:
            last = iid.classifier.head[-1]
            assert isinstance(last, nn.Linear)
            last.weight.zero_()
            last.bias.zero_()
            last.bias[verdict] = 10.0
            for k, dae in enumerate(iid.daes or [], start=1):
                dae.decoder.out.bias.fill_(SHIFTS[k])  # type: ignore[union-attr]
        else:
            assert iid.dae is not None
            iid.dae.decoder.out.bias.fill_(shift)
    return iid.eval()


@pytest.fixture
def wdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """d adds 0.1; s says 'blur' (its DAE adds 0.2); m says 'clean'."""
    folder = tmp_path / "weights"
    for variant, verdict in (("d", 0), ("s", 2), ("m", 0)):
        iid = scripted_iid(variant, verdict)
        weights.save_weights(
            folder / f"iid_{variant}.pt", "iid", iid_weight_config(iid), iid.state_dict()
        )
    monkeypatch.setattr(weights, "WEIGHTS_DIR", folder)
    return folder


def crct(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: object):
    result = crct(*args)
    assert result.exit_code == 0, result.output
    return result


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def shifted(image: np.ndarray, shift: float) -> np.ndarray:
    return np.clip(image.astype(np.float64) + 255 * shift, 0, 255)


def test_s_denoises_an_image_and_reports_its_class(
    tmp_path: Path, wdir: Path, face_image, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COLUMNS", "40")  # neither the width nor the path's length cuts the table
    src = tmp_path.joinpath(*["a-folder-with-a-rather-long-name"] * 5, "face.png")
    src.parent.mkdir(parents=True)
    image = face_image(90, 70)
    write_image(src, image)
    result = ok("denoise", src, "--out", tmp_path / "out", "--variant", "s")
    out = read_image(tmp_path / "out" / "face.png")
    assert out.shape == image.shape
    assert np.abs(out - shifted(image, SHIFTS[2])).max() <= 1  # routed to blur's DAE
    assert any(str(src) in line and "blur" in line for line in result.stdout.splitlines())
    doc = json.loads((tmp_path / "out" / "noise_classes.json").read_text())
    assert doc["variant"] == "s" and doc["weights"] == str(wdir / "iid_s.pt")
    assert [(Path(i["input"]).name, i["class"]) for i in doc["images"]] == [("face.png", "blur")]
    assert doc["images"][0]["probabilities"]["blur"] > 0.99


def test_m_on_a_folder_mirrors_it_and_leaves_clean_files_untouched(
    tmp_path: Path, wdir: Path, face_image
):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.jpg", face_image(80, 64))
    write_image(src / "sub" / "b.png", face_image(130, 100))  # larger than one vote tile
    write_pts(src / "sub" / "b.pts", np.zeros((68, 2)))
    (src / "notes.txt").write_text("skipped")
    result = ok("denoise", src, "--out", tmp_path / "out", "--variant", "m")
    out = tmp_path / "out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg", "noise_classes.json", "sub/b.png", "sub/b.pts"]
    for rel in ("a.jpg", "sub/b.png", "sub/b.pts"):  # eq. 6: byte for byte
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    doc = json.loads((out / "noise_classes.json").read_text())
    assert sorted(i["class"] for i in doc["images"]) == ["clean", "clean"]
    assert "clean" in result.stdout


def test_d_changes_every_image_and_writes_no_class_file(tmp_path: Path, wdir: Path, face_image):
    src = tmp_path / "g.png"
    gray = face_image(64, 64)[..., 1]
    write_image(src, gray)  # a grayscale picture stays grayscale
    ok("denoise", src, "--out", tmp_path / "out", "--variant", "d")
    out = read_image(tmp_path / "out" / "g.png")
    assert np.abs(out - shifted(read_image(src), 0.1)).max() <= 1
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert not (tmp_path / "out" / "noise_classes.json").exists()


def test_video_every_frame_at_the_source_rate(tmp_path: Path, wdir: Path, make_video):
    video = make_video("clip.mp4", n_frames=6, width=96, height=72, fps=12)
    ok("denoise", video, "--out", tmp_path / "out", "--variant", "s")
    target = tmp_path / "out" / "clip.mp4"
    info = probe_video(target)
    assert abs(info.fps - 12) < 1e-6 and (info.width, info.height) == (96, 72)
    before = [f.image.astype(float) for f in iter_frames(video)]
    after = [f.image.astype(float) for f in iter_frames(target)]
    assert len(after) == len(before) == 6
    for a, b in zip(after, before, strict=True):  # brighter by 0.2 * 255 (up to coding loss)
        assert abs((a - shifted(b, SHIFTS[2])).mean()) < 4
    doc = json.loads((tmp_path / "out" / "noise_classes.json").read_text())
    (entry,) = doc["videos"]
    assert entry["frames"] == ["blur"] * 6 and entry["counts"] == {"blur": 6}
    assert entry["fps"] == pytest.approx(12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing.png", "--out", "{tmp}/o"], "no such file"),
        (["{img}", "--out", "{tmp}/o", "--variant", "x"], "--variant"),
        (["{img}", "--out", "{tmp}/o", "--weights", "{tmp}/nope.pt"], "nope.pt is missing"),
        (["{img}", "--out", "{tmp}/o", "--variant", "s", "--weights", "{w}/iid_m.pt"], "IID-m"),
        (["{img}", "--out", "{tmp}"], "overwrite"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, wdir: Path, face_image, args: list[str], message: str
) -> None:
    img = tmp_path / "face.png"
    write_image(img, face_image(32, 32))
    fill = {"tmp": tmp_path, "img": img, "w": wdir}
    line = one_line_error(crct("denoise", *[a.format(**fill) for a in args]))
    assert message in line


def test_missing_weight_file_is_named(tmp_path: Path, wdir: Path, face_image) -> None:
    (wdir / "iid_s.pt").unlink()
    img = tmp_path / "face.png"
    write_image(img, face_image(32, 32))
    line = one_line_error(crct("denoise", img, "--out", tmp_path / "o", "--variant", "s"))
    assert str(wdir / "iid_s.pt") in line and "missing" in line
    assert not (tmp_path / "o").exists()  # nothing written before the weights load


def test_denoise_option_of_align_and_track(tmp_path: Path, wdir: Path, face_image) -> None:
    img = tmp_path / "face.png"
    write_image(img, face_image(48, 48))
    write_pts(img.with_suffix(".pts"), np.full((68, 2), 20.0) + np.arange(68)[:, None] % 9)
    line = one_line_error(crct("align", img, "--out", tmp_path / "o", "--denoise", "x"))
    assert "--denoise" in line
    line = one_line_error(
        crct("align", img, "--out", tmp_path / "o", "--box-from-pts", "--denoise", "m")
    )
    assert str(wdir / "fadenn_m.pt") in line and "missing" in line
    line = one_line_error(crct("track", img, "--out", tmp_path / "o", "--denoise", "q"))
    assert "--denoise" in line


def test_vote_tiles_cover_the_centre_at_full_resolution() -> None:
    from crct_cli.denoise import vote_tiles

    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tiles = vote_tiles(image)
    assert tiles.shape == (6, 112, 112, 3)  # 2 rows x 3 columns fit, centred
    assert np.array_equal(tiles[0], image[38:150, 32:144])
    assert np.array_equal(tiles[-1], image[150:262, 256:368])
    square = np.random.default_rng(1).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    assert np.array_equal(vote_tiles(square)[4], square[144:256, 144:256])  # 3 x 3, the centre
    assert vote_tiles(image[:150, :130]).shape == (1, 112, 112, 3)
    assert vote_tiles(image[:40, :60]).shape == (1, 112, 112, 3)  # enlarged to one tile


def test_tiles_with_context_match_the_whole_picture() -> None:
    from crct_cli.runtime.iid import tiled as tile_by_tile

    torch.manual_seed(5)
    conv = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)).eval()
    x = torch.rand(1, 3, 70, 95)
    with torch.no_grad():
        whole, tiled = conv(x), tile_by_tile(conv, x, tile=16, pad=2)  # 2 px: the 5x5 support
        on_numpy = tile_by_tile(lambda a: conv(torch.from_numpy(a)).numpy(), x.numpy(), 16, 2)
    assert torch.allclose(whole, tiled, atol=1e-6)
    assert np.allclose(whole.numpy(), on_numpy, atol=1e-6)


def _save_fadenn(folder: Path, variant: str, verdict: int, black: bool) -> None:
    """A tiny FADeNN whose classifier says ``verdict`` and whose DAEs output black crops."""
    import dataclasses

    from crct_cli.models.backbone import BackboneConfig
    from crct_cli.models.fadenn import FADeNN, fadenn_weight_config
    from crct_cli.models.fll import FLLConfig, LandmarkLocalizer

    small = BackboneConfig(stem=(8, 8, 16), width_a=16, width_b=32, width_c=64)
    small = dataclasses.replace(small, blocks_a=1, blocks_b=1, blocks_c=1)
    torch.manual_seed(6)
    fll = LandmarkLocalizer(FLLConfig(input_size=64, hidden=16, backbone=small))
    nn.init.normal_(fll.head[-1].weight, std=0.3)  # points that depend on the picture
    iid = scripted_iid(variant, verdict)
    with torch.no_grad():
        for dae in [iid.dae] if iid.dae is not None else list(iid.daes or []):
            dae.decoder.out.bias.fill_(-2.0 if black else 0.0)  # type: ignore[union-attr]
    model = FADeNN(iid, fll)
    weights.save_weights(
        folder / f"fadenn_{variant}.pt", "fadenn", fadenn_weight_config(model), model.state_dict()
    )


def test_align_with_denoise_uses_fadenn_weights(tmp_path: Path, wdir: Path, face_image):
    from crct_cli.aligner import STILL_ALIGN, Aligner, fadenn_aligner
    from crct_cli.io.landmarks import read_pts
    from crct_cli.landmarks import box_from_points
    from crct_cli.models.fadenn import load_fadenn

    _save_fadenn(wdir, "s", verdict=2, black=True)
    img = tmp_path / "in" / "face.png"
    img.parent.mkdir()
    image = face_image(96, 96)
    write_image(img, image)
    gt = np.stack([np.linspace(30, 66, 68), 30 + (np.arange(68) % 17) * 2.0], axis=1)
    write_pts(img.with_suffix(".pts"), gt)
    ok("align", img.parent, "--out", tmp_path / "o", "--box-from-pts", "--denoise", "s")
    got = read_pts(tmp_path / "o" / "face.pts")
    model = load_fadenn(weights.load_weights(wdir / "fadenn_s.pt", "fadenn"))
    box = box_from_points(gt)[None]
    cfg = STILL_ALIGN  # crct align's default (with the mirrored pass)
    assert np.allclose(got, fadenn_aligner(model, config=cfg)[0](image, box)[0], atol=1e-3)
    # FLL saw black crops, not the picture: the same points as on a black image
    assert np.allclose(got, Aligner(model.fll, config=cfg)(np.zeros_like(image), box)[0], atol=1e-3)
    assert not np.allclose(got, Aligner(model.fll, config=cfg)(image, box)[0], atol=1e-2)


def test_tracker_networks_time_the_denoiser(wdir: Path, face_image) -> None:
    from crct_cli.tracking.networks import CRCTNetworks

    _save_fadenn(wdir, "m", verdict=0, black=True)  # classed clean: crops untouched
    nets = CRCTNetworks("cpu", "fll-mt", weights_dir=wdir, denoise="m")
    assert nets.weight_files == {"fadenn": str(wdir / "fadenn_m.pt")}
    points = nets.localize(face_image(96, 96), np.array([30.0, 30.0, 36.0, 36.0]))
    assert points.shape == (68, 2) and len(nets.timings["iid"]) == 2  # once per pass


def test_video_classes_are_smoothed_over_frames(tmp_path: Path, make_video, monkeypatch):
    """A verdict that flips every frame near the boundary is decided on the average instead."""
    from crct_cli.denoise import ClassSmoother, ImageDenoiser, denoise_video_file

    near = [np.array([0.48, 0.0, 0.52, 0.0, 0.0]), np.array([0.56, 0.0, 0.44, 0.0, 0.0])]
    calls = iter(range(100))
    den = ImageDenoiser(scripted_iid("s", 2))
    monkeypatch.setattr(den, "class_probabilities", lambda image, faces: near[next(calls) % 2])
    video = make_video("flicker.mp4", n_frames=8, width=64, height=48, fps=10)
    raw = denoise_video_file(video, tmp_path / "raw.mp4", den, smoothing=0.0)
    assert raw.classes == [2, 0] * 4  # every frame on its own: blur, clean, blur, clean...
    calls = iter(range(100))
    smooth = denoise_video_file(video, tmp_path / "smooth.mp4", den, smoothing=0.8)
    changes = sum(a != b for a, b in zip(smooth.classes, smooth.classes[1:], strict=False))
    assert changes == 1 and smooth.classes[-1] == 0  # one switch, to what the average says
    s = ClassSmoother(0.5)
    assert np.allclose(s(np.array([1.0, 0.0])), [1.0, 0.0])
    assert np.allclose(s(np.array([0.0, 1.0])), [0.5, 0.5])


def test_crop_denoiser_smooths_one_tracked_face_not_a_batch(monkeypatch) -> None:
    """Track: one crop per call, its class averaged over calls; a batch is classed crop by crop."""
    from crct_cli.models.fadenn import ClassSmoother, CropDenoiser

    iid = scripted_iid("s", 2)
    assert iid.classifier is not None
    near = [torch.tensor([[0.0, 0.0, 0.2, 0.0, 0.0]]), torch.tensor([[0.3, 0.0, 0.0, 0.0, 0.0]])]
    calls = iter(range(100))
    monkeypatch.setattr(
        iid.classifier,
        "forward",
        lambda x, reconstruct=False: (near[next(calls) % 2].expand(len(x), -1), None),
    )
    crop = np.full((1, 16, 16, 3), 100, np.uint8)
    plain = CropDenoiser(iid)
    assert [int(plain.denoise(crop)[1][0]) for _ in range(6)] == [2, 0] * 3  # flickers
    calls = iter(range(100))
    smooth = CropDenoiser(iid, smoother=ClassSmoother(0.8))
    classes = [int(smooth.denoise(crop)[1][0]) for _ in range(6)]
    assert classes[:3] == [2, 2, 2]  # the first verdict holds until the average moves
    assert sum(a != b for a, b in zip(classes, classes[1:], strict=False)) <= 1
    calls = iter(range(100))
    smooth = CropDenoiser(iid, smoother=ClassSmoother(0.8))
    out, _ = smooth.denoise(crop)
    assert abs(float(out.astype(float).mean()) - (100 + SHIFTS[2] * 255)) < 2  # blur's DAE ran
    batch = CropDenoiser(iid, smoother=ClassSmoother(0.8))
    batch.denoise(np.repeat(crop, 2, axis=0))  # several faces at once: no history involved
    assert batch.smoother is not None and batch.smoother.state is None


# ---------------------------------------------- S and M: the class is voted on the faces' crops

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "samples" / "astronaut.jpg"
SHARED_AFW = REPO.parent / "shared" / "data" / "300w" / "afw"


def textured(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """A picture with fine detail everywhere, so resampling differences show."""
    noise = np.random.default_rng(seed).integers(-40, 41, image.shape)
    return np.clip(image.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def points_in(box: tuple[float, float, float, float], seed: int = 0) -> np.ndarray:
    """68 points whose tight box is ``box`` (x, y, w, h)."""
    x, y, w, h = box
    rng = np.random.default_rng(seed)
    pts = np.stack([x + w * rng.random(68), y + h * rng.random(68)], axis=1)
    pts[0], pts[1] = (x, y), (x + w, y + h)
    return pts


def detections(n: int) -> list:
    from crct_cli.tracking.detector import Detection

    return [
        Detection(np.array([10.0 + i, 12.0 + 2 * i, 40.0, 44.0]), np.zeros(4), 0.8 + i / 100)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((160, 120), (50.0, 30.0, 60.5, 70.2)),  # a small face, cut as it is
        ((700, 640), (150.0, 120.0, 331.0, 300.0)),  # above the training faces: shrunk first
        ((200, 200), (-20.0, 60.0, 120.0, 150.0)),  # over the picture's edge
    ],
)
def test_face_crops_are_the_classifiers_training_crops(face_image, size, box) -> None:
    """The crop voted on is the one ``crct train iid`` made of a face of that size (no jitter)."""
    from crct_cli import geometry
    from crct_cli.denoise import face_crops
    from crct_cli.landmarks import box_from_points
    from crct_cli.runtime.iid import TRAIN_MAX_FACE
    from crct_cli.train.data import NO_AUGMENT, Face
    from crct_cli.train.iid import noisy_crop_pair

    image = textured(face_image(*size))
    points = points_in(box)
    tight = box_from_points(points)
    side = float(max(tight[2:]))
    rng = np.random.default_rng(0)
    native = min(side, TRAIN_MAX_FACE)
    trained, _, _ = noisy_crop_pair(Face("f", image, points), rng, 0, 1, NO_AUGMENT, native)
    got = face_crops(image, tight[None])
    assert got.shape == (1, 112, 112, 3) and np.array_equal(got[0], trained)
    if side > TRAIN_MAX_FACE:  # not what a plain bilinear cut of the large face gives
        center, square = geometry.box_center_size(tight)
        straight = geometry.warp(image, geometry.crop_matrix(center, square * 1.35, 112), 112)
        assert np.abs(straight.astype(int) - got[0]).mean() > 2


def test_find_faces_looks_again_before_falling_back() -> None:
    """Plain MTCNN, then its sensitive settings, then those on the stretched picture; at most
    MAX_FACES, most confident first."""
    from crct_cli.denoise import MAX_FACES, find_faces
    from crct_cli.tracking.detector import MIN_SCORE, RELAXED_THRESHOLDS, THRESHOLDS

    dark = np.full((60, 80, 3), 30, np.uint8)
    dark[20:40, 30:50] = 50
    asked: list[tuple[bool, tuple]] = []

    def on_stretched_only(image, min_score=MIN_SCORE, thresholds=THRESHOLDS):
        stretched = not np.array_equal(image, dark)
        asked.append((stretched, tuple(thresholds)))
        return detections(MAX_FACES + 3) if stretched else []

    boxes = find_faces(on_stretched_only, dark)
    assert asked == [(False, THRESHOLDS), (False, RELAXED_THRESHOLDS), (True, RELAXED_THRESHOLDS)]
    assert boxes.shape == (MAX_FACES, 4)
    assert np.array_equal(boxes[0], detections(MAX_FACES + 3)[-1].box)  # the most confident
    asked.clear()
    assert find_faces(lambda *a: detections(2), dark).shape == (2, 4)
    assert find_faces(lambda *a: [], dark).shape == (0, 4)


def test_the_class_is_the_mean_vote_of_the_faces_else_of_the_tiles(monkeypatch, face_image):
    from crct_cli.denoise import ImageDenoiser, face_crops, vote_tiles

    image = textured(face_image(200, 160))
    found = detections(2)
    den = ImageDenoiser(scripted_iid("m", 0), detector=lambda *a: found)
    seen: list[np.ndarray] = []
    # the most confident face alone says downsample; their mean says blur
    votes = np.array([[0.1, 0.5, 0.2, 0.1, 0.1], [0.1, 0.0, 0.7, 0.1, 0.1]])

    def crop_probabilities(crops: np.ndarray) -> np.ndarray:
        seen.append(crops)
        return votes[: len(crops)] if len(crops) == 2 else np.tile(votes[:1], (len(crops), 1))

    monkeypatch.setattr(den, "crop_probabilities", crop_probabilities)
    out, cls, probs = den(image)
    assert cls == 2 and probs is not None and np.allclose(probs, votes.mean(0))
    boxes = np.stack([d.box for d in reversed(found)])  # most confident first
    assert np.array_equal(seen[-1], face_crops(image, boxes))
    assert den.last_vote is not None and den.last_vote.basis == "faces"
    assert np.array_equal(den.last_vote.boxes, boxes)
    found.clear()  # no face: today's tiles
    _, cls, _ = den(image)
    assert cls == 1 and np.array_equal(seen[-1], vote_tiles(image))
    assert den.last_vote.basis == "tiles" and den.last_vote.boxes.shape == (0, 4)


def test_noise_classes_json_says_what_each_class_was_decided_on(
    tmp_path: Path, wdir: Path, face_image, make_video, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crct_cli.runtime import Runtime

    faces: dict[str, list] = {"with.png": detections(1), "without.png": []}
    plain_looks = iter(range(100))  # one per video frame

    def fake_mtcnn(image: np.ndarray, *args: object) -> list:
        if image.shape[:2] == (48, 64):  # the video: a face in every other frame
            return detections(1) if not args and next(plain_looks) % 2 == 0 else []
        return faces["with.png"] if image.mean() > 100 else []

    monkeypatch.setattr(Runtime, "detector", lambda self, *a, **k: fake_mtcnn)
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "with.png", np.maximum(face_image(96, 80), 120))
    write_image(src / "without.png", np.full((80, 96, 3), 20, np.uint8))
    video = make_video("v.mp4", n_frames=4, width=64, height=48, fps=10)
    result = ok(
        "denoise", src, video, "--out", tmp_path / "out", "--variant", "s", "--detect-every", 1
    )
    doc = json.loads((tmp_path / "out" / "noise_classes.json").read_text())
    assert doc["schema"] == "crct.noise_classes/1" and "faces MTCNN finds" in doc["method"]
    by_name = {Path(i["input"]).name: i for i in doc["images"]}
    assert by_name["with.png"]["classified_on"] == "faces"
    assert by_name["with.png"]["faces"] == [[10.0, 12.0, 40.0, 44.0]]
    assert by_name["without.png"]["classified_on"] == "tiles"
    assert by_name["without.png"]["faces"] == []
    assert all(i["class"] == "blur" for i in doc["images"])  # the verdict itself as before
    (entry,) = doc["videos"]
    assert entry["frames_classified_on"] == {"faces": 2, "tiles": 2}
    assert doc["detect_every"] == 1 and "frames 0, 1, 2, ..." in doc["method"]
    assert any(
        "without.png" in line and "no face: tiles" in line for line in result.stdout.splitlines()
    )


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_shipped_m_leaves_the_clean_sample_photo_untouched(tmp_path: Path, backend: str) -> None:
    """samples/astronaut.jpg, a clean photo: the tiles of the whole picture (the suit's texture)
    were classed noise and the picture rewritten by the noise DAE; its face is classed clean."""
    out = tmp_path / "out"
    ok("denoise", SAMPLE_IMAGE, "--out", out, "--variant", "m", "--backend", backend)
    (entry,) = json.loads((out / "noise_classes.json").read_text())["images"]
    assert entry["class"] == "clean", entry["probabilities"]
    assert (out / SAMPLE_IMAGE.name).read_bytes() == SAMPLE_IMAGE.read_bytes()
    assert entry["classified_on"] == "faces" and len(entry["faces"]) == 1
    if backend == "onnx":  # MTCNN told to look only for faces of 300 px on: tiles, as faceless
        ok("denoise", SAMPLE_IMAGE, "--out", tmp_path / "big", "--min-face", "300")
        (big,) = json.loads((tmp_path / "big" / "noise_classes.json").read_text())["images"]
        assert big["classified_on"] == "tiles" and big["faces"] == []


@pytest.mark.skipif(not SHARED_AFW.is_dir(), reason=f"needs the afw photos in {SHARED_AFW}")
def test_shipped_m_on_real_afw_photos_classes_their_faces() -> None:
    """Session 45's ten afw photos (the first ten, sorted): on the centre tiles IID-M classed
    none of the clean ones clean (8 blur, 2 scale); on the faces, as trained, 5 of 10. Blurred
    (crct degrade --noise blur --level 3) they stay blur, 8 of 10 either way."""
    from crct_cli.degrade import degrade_rgb
    from crct_cli.denoise import ImageDenoiser
    from crct_cli.models.fadenn import CLASS_NAMES, load_iid

    iid = load_iid(weights.load_weights(weights.WEIGHTS_DIR / "iid_m.pt", "iid"))
    den = ImageDenoiser(iid)
    clean, blurred, bases = [], [], []
    for path in sorted(SHARED_AFW.glob("*.jpg"))[:10]:
        image = read_image(path)
        clean.append(CLASS_NAMES[int(np.argmax(den.class_probabilities(image)))])
        bases.append(getattr(den, "last_vote", None))
        blur = degrade_rgb(image, "blur", 3, np.random.default_rng(0))
        blurred.append(CLASS_NAMES[int(np.argmax(den.class_probabilities(blur)))])
    assert clean.count("clean") >= 4, clean
    assert blurred.count("blur") >= 7, blurred
    assert all(v is not None and v.basis == "faces" for v in bases)


def test_a_videos_faces_are_looked_for_every_n_frames(
    tmp_path: Path, wdir: Path, make_video, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MTCNN's looks cost more than the rest of a clean frame: a video's faces are looked for on
    frames 0, N, 2N, ... and the frames between are voted on the crops of the last faces found
    (or on tiles, where none was), every frame still classified and smoothed."""
    from crct_cli.denoise import ImageDenoiser, denoise_video_file, face_crops, vote_tiles

    looked: list[int] = []  # the frame each look was on (its mean grey level)
    found = detections(1)

    def mtcnn(image: np.ndarray, *args: object) -> list:
        looked.append(int(round(float(image.mean()))))
        return found if image.mean() < 115 else []  # frames 0-7 (grey 40-110) show a face

    frames = [np.full((48, 64, 3), 40 + 10 * k, np.uint8) for k in range(12)]
    frames = [textured(f, seed=k) for k, f in enumerate(frames)]
    video = tmp_path / "v.mp4"
    from crct_cli.io.video import VideoWriter

    writer = VideoWriter(video, 10.0, 64, 48)
    for f in frames:
        writer.write(f)
    writer.close()
    decoded = [f.image for f in iter_frames(video)]
    den = ImageDenoiser(scripted_iid("s", 0), detector=mtcnn)
    seen: list[np.ndarray] = []
    real = den.crop_probabilities

    def spy(crops: np.ndarray) -> np.ndarray:
        seen.append(crops)
        return real(crops)

    monkeypatch.setattr(den, "crop_probabilities", spy)
    record = denoise_video_file(video, tmp_path / "out.mp4", den, detect_every=5)
    assert record.frames == 12 and len(record.classes) == 12 and len(seen) == 12
    # frames 0 and 5 show a face at the first look; frame 10 none, so all three looks ran there
    assert len(looked) == 1 + 1 + 3
    box = np.stack([found[0].box])
    for k in range(10):  # each between-frame cut at the faces of its last look
        assert np.array_equal(seen[k], face_crops(decoded[k], box)), k
    assert np.array_equal(seen[11], vote_tiles(decoded[11]))
    assert record.bases == ["faces"] * 10 + ["tiles"] * 2
    looked.clear()
    every = denoise_video_file(video, tmp_path / "every.mp4", den, detect_every=1)
    assert len(looked) == 8 + 4 * 3  # a look on every frame
    assert every.bases == ["faces"] * 8 + ["tiles"] * 4
    numpy_int = denoise_video_file(video, tmp_path / "np.mp4", den, detect_every=np.int64(5))
    assert numpy_int.bases == record.bases  # a whole number from numpy is one too
    for bad in (0, -2, 2.5, True):
        with pytest.raises(OptionError, match="detect_every must be a whole number"):
            denoise_video_file(video, tmp_path / "bad.mp4", den, detect_every=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "bad.mp4").exists()
    from typer.main import get_command

    from crct_cli.denoise import DETECT_EVERY

    command = get_command(app).commands["denoise"]  # type: ignore[attr-defined]
    assert next(p.default for p in command.params if p.name == "detect_every") == DETECT_EVERY
    line = one_line_error(crct("denoise", video, "--out", tmp_path / "o", "--detect-every", 0))
    assert "--detect-every must be a whole number" in line and not (tmp_path / "o").exists()


def test_two_inputs_for_one_output_name_are_told_in_denoise_s_words(
    tmp_path: Path, wdir: Path, face_image
) -> None:
    """The clash of two files of one name is one line, and it names no other command."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "x.png", face_image(32, 32))
    line = one_line_error(crct("denoise", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "o"))
    assert "would both be written to x.png" in line and "degrade" not in line
