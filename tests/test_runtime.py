"""The ONNX Runtime backend against the PyTorch one, on the shipped weights and real pictures.

Every graph is exported once per test session into a temporary cache (``CRCT_CACHE``), shared
by the tests here; the comparisons use the sample picture and frames of the sample video.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crct_cli import geometry
from crct_cli.aligner import AlignConfig
from crct_cli.errors import CrctError
from crct_cli.io.images import read_image
from crct_cli.io.video import iter_frames
from crct_cli.runtime import Runtime, split_state, stack_states
from crct_cli.runtime.backend import Engine, resolve_engine
from crct_cli.runtime.cache import CACHE_ENV, graph_path, index_path
from crct_cli.runtime.nets import fv_crop

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "samples" / "astronaut.jpg"
SAMPLE_VIDEO = REPO / "samples" / "astronaut.mp4"
SHARED_VIDEO = REPO.parent / "shared" / "data" / "videos" / "talking_pexels_640x360.mp4"
HEAVY = ("torch", "torchvision", "facenet_pytorch")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One graph cache for the session: each weight file is exported once."""
    root = tmp_path_factory.mktemp("crct-cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield root
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def engines(onnx_cache: Path) -> tuple[Runtime, Runtime]:
    """(onnx, torch) runtimes on the CPU with the shipped weights."""
    return Runtime("onnx", "cpu"), Runtime("torch", "cpu")


class RuntimeProbe:
    """The tracker's four calls on one face (detect, localize, bt_step, validate), straight on
    a :class:`Runtime`: the crops ``crct track`` cuts and the networks it runs, no tracker."""

    def __init__(self, engine: Engine) -> None:
        from crct_cli.aligner import AlignConfig

        rt = Runtime.for_engine(engine)
        self.detector, self.bt, self.fv = rt.detector(), rt.tracker(), rt.validator()
        self.aligner, _, _ = rt.aligner("none", AlignConfig())

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list:
        return self.detector(image)

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return self.aligner(image, box[None])[0]

    def bt_step(self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state):
        size, context = self.bt.config.input_size, self.bt.config.context
        center, side = geometry.box_center_size(box)
        m = geometry.crop_matrix(center, side * context, size)
        crops = [geometry.warp(image, m, size)[None] for image in (prev, cur)]
        units, state = self.bt(crops[0], crops[1], state)
        return geometry.apply(geometry.invert(m), (units[0] + 0.5) * size), state

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        crop, pts = fv_crop(image, points, self.fv.config)
        return float(self.fv.probabilities(crop[None], pts[None])[0])


@pytest.fixture(scope="session")
def probes(engines: tuple[Runtime, Runtime]) -> tuple[RuntimeProbe, RuntimeProbe]:
    """(torch, onnx): the tracker's calls on one face."""
    return RuntimeProbe(Engine("torch", "cpu")), RuntimeProbe(Engine("onnx", "cpu"))


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    return [f.image for f in iter_frames(SAMPLE_VIDEO, 40)]


@pytest.fixture(scope="session")
def face_box(engines: tuple[Runtime, Runtime], frames: list[np.ndarray]) -> np.ndarray:
    return engines[1].detector()(frames[0])[0].box


def _crops(image: np.ndarray, boxes: list[np.ndarray], context: float, size: int) -> np.ndarray:
    mats = []
    for box in boxes:
        center, side = geometry.box_center_size(box)
        mats.append(geometry.crop_matrix(center, side * context, size))
    return np.stack([geometry.warp(image, m, size) for m in mats])


# ----------------------------------------------------------------------------- engines


def test_auto_picks_onnx_on_the_cpu_and_names_are_checked() -> None:
    assert resolve_engine("auto", "cpu") == Engine("onnx", "cpu")
    assert resolve_engine("torch", "cpu") == Engine("torch", "cpu")
    assert resolve_engine("onnx", "cpu:0") == Engine("onnx", "cpu")
    with pytest.raises(CrctError, match="^backend must be auto, torch or onnx"):
        resolve_engine("tensorrt", "cpu")
    with pytest.raises(CrctError, match="^device must be auto, cpu or cuda"):
        resolve_engine("auto", "tpu")


def test_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from crct_cli.runtime.backend import onnx_threads

    monkeypatch.setenv("CRCT_THREADS", "3")
    assert onnx_threads() == 3
    monkeypatch.setenv("CRCT_THREADS", "many")
    with pytest.raises(CrctError, match="CRCT_THREADS"):
        onnx_threads()


@pytest.mark.parametrize("owned", [True, False])
def test_a_crct_process_shares_one_pool_others_keep_theirs(
    owned: bool, engines, frames, face_box, tmp_path: Path
) -> None:
    """The crct command's process runs every session on one shared pool, sized by the first
    engine (a later size is ignored, never an error); a program that did not hand the process
    to crct keeps a pool per session, so its own sessions still work. Same points both ways."""
    crop = _crops(frames[0], [face_box], 1.35, 112)
    np.save(tmp_path / "crop.npy", crop)
    script = f"""
import json, numpy as np, onnxruntime
from crct_cli.runtime import Runtime, onnx_nets
from crct_cli.runtime.backend import share_threads
if {owned}:
    share_threads()
a = Runtime("onnx", "cpu", threads=2).localizer()
b = Runtime("onnx", "cpu", threads=1).localizer()
crop = np.load({str(tmp_path / "crop.npy")!r})
if not {owned}:  # the program's own session, made the default way
    from crct_cli.runtime.cache import onnx_dir
    graph = str(next(onnx_dir().glob("*.onnx")))
    onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
point = json.dumps(a(crop)[0, 30].tolist())
print(onnx_nets._pool_made, float(np.abs(a(crop) - b(crop)).max()), point)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    made, diff, point = done.stdout.split(" ", 2)
    assert made == ("[2]" if owned else "[]")
    assert float(diff) < 1e-4
    want = engines[0].localizer()(crop)[0, 30]
    assert np.allclose(json.loads(point), want, atol=1e-4)
    assert "global thread pool" not in done.stderr


# ------------------------------------------------------------------------------ networks


def test_fll_stages_equal_torch_on_real_crops(engines, frames, face_box) -> None:
    onnx, torch_rt = engines
    for a, b in ((onnx.localizer(), torch_rt.localizer()), (onnx.stage2(), torch_rt.stage2())):
        assert a.config.input_size == b.config.input_size and a.config.upright == b.config.upright
        boxes = [face_box, face_box + np.array([6.0, -4.0, 10.0, 10.0])]
        crops = _crops(frames[5], boxes, a.config.context, a.config.input_size)
        got, want = a(crops), b(crops)
        assert got.shape == want.shape == (2, 68, 2) and got.dtype == np.float32
        assert np.abs(got - want).max() * a.config.input_size < 2e-3  # crop pixels
        assert np.allclose(a(crops[1:]), got[1:], atol=1e-6)  # a batch is face by face


def test_aligners_give_the_same_points(engines, frames, face_box) -> None:
    """FLL's two stages as the tracker and crct align run them: within 0.01 px."""
    from crct_cli.aligner import STILL_ALIGN, AlignConfig

    onnx, torch_rt = engines
    for config in (AlignConfig(), STILL_ALIGN):
        a, _, files = onnx.aligner("none", config)
        b, _, _ = torch_rt.aligner("none", config)
        assert set(files) == {"fll", "fll_stage2"}
        for image in (frames[3], read_image(SAMPLE_IMAGE)):
            assert np.abs(a(image, face_box[None]) - b(image, face_box[None])).max() < 0.01


def test_fadenn_aligners_and_denoisers_agree(engines, frames, face_box) -> None:
    """FADeNN: the same classes, denoised crops within one grey level (uint8 rounding of the
    DAE's output), points within 0.05 px."""
    from crct_cli.aligner import AlignConfig
    from crct_cli.noise import degrade

    onnx, torch_rt = engines
    blurred = degrade(frames[3], "blur", 2)
    for variant in ("d", "m"):
        a, den_a, _ = onnx.aligner(variant, AlignConfig())
        b, den_b, _ = torch_rt.aligner(variant, AlignConfig())
        crops = _crops(blurred, [face_box, face_box * 1.05], 1.35, 112)
        out_a, cls_a = den_a.denoise(crops)
        out_b, cls_b = den_b.denoise(crops)
        assert (cls_a is None) == (cls_b is None) == (variant == "d")
        if cls_a is not None:
            assert np.array_equal(cls_a, cls_b)
        assert np.abs(out_a.astype(int) - out_b).max() <= 1
        assert not np.array_equal(out_a, crops)  # a DAE ran
        assert np.abs(a(blurred, face_box[None]) - b(blurred, face_box[None])).max() < 0.05


def test_bt_equals_torch_with_and_without_state(engines, frames, face_box) -> None:
    onnx, torch_rt = engines
    a, b = onnx.tracker(), torch_rt.tracker()
    c = a.config
    boxes = [face_box, face_box + np.array([8.0, 5.0, 0.0, 0.0])]
    prev = _crops(frames[0], boxes, c.context, c.input_size)
    cur = _crops(frames[1], boxes, c.context, c.input_size)
    pa, sa = a(prev, cur, None)
    pb, sb = b(prev, cur, None)
    assert pa.shape == (2, 68, 2) and sa[0].shape == (c.lstm_layers, 2, c.hidden)
    assert np.abs(pa - pb).max() * c.input_size < 1e-3
    assert np.abs(sa[0] - sb[0]).max() < 1e-4 and np.abs(sa[1] - sb[1]).max() < 1e-4
    pa2, _ = a(cur, prev, sa)
    pb2, _ = b(cur, prev, sb)
    assert np.abs(pa2 - pb2).max() * c.input_size < 1e-3
    assert not np.allclose(pa2, a(cur, prev, None)[0], atol=1e-4)  # the state matters
    # per-face states: split, one face reset, stacked again = that face run alone from zeros
    states = split_state(sa)
    mixed = stack_states([states[0], None], c)
    assert mixed is not None
    both, _ = a(cur, prev, mixed)
    alone, _ = a(cur[1:], prev[1:], None)
    assert np.allclose(both[1], alone[0], atol=1e-6) and np.allclose(both[0], pa2[0], atol=1e-6)
    assert stack_states([None, None], c) is None
    # in two steps, as the tracker runs it: each crop's features, then the head on both
    for bt in (a, b):
        fa = bt.features(np.concatenate([prev, cur]))
        fp, fc = bt.features(prev), bt.features(cur)
        assert fa.shape == (4, fp.shape[1]) and np.abs(fa - np.concatenate([fp, fc])).max() < 1e-5
        two_step, state = bt.head(fp, fc, None)
        assert np.abs(two_step - bt(prev, cur, None)[0]).max() * c.input_size < 1e-4
        assert np.abs(state[0] - sa[0]).max() < 1e-4
    assert np.abs(a.features(cur) - b.features(cur)).max() < 1e-3


def test_fv_equals_torch(engines, frames, face_box) -> None:
    onnx, torch_rt = engines
    a, b = onnx.validator(), torch_rt.validator()
    aligner, _, _ = torch_rt.aligner("none")
    points = aligner(frames[2], face_box[None])[0]
    pairs = [fv_crop(frames[2], points + shift, a.config) for shift in (0.0, 12.0, -40.0)]
    crops, pts = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    assert np.abs(a.logits(crops, pts) - b.logits(crops, pts)).max() < 1e-4
    pa, pb = a.probabilities(crops, pts), b.probabilities(crops, pts)
    assert np.abs(pa - pb).max() < 1e-6
    assert pa[0] > 0.5 > pa[2]  # the face is a face, a shape 40 px off is not


def test_mtcnn_in_numpy_gives_facenet_pytorch_s_boxes(engines, frames) -> None:
    onnx, torch_rt = engines
    ours, facenet = onnx.detector(), torch_rt.detector()
    images = [read_image(SAMPLE_IMAGE), *frames[::8]]
    for image in images:
        a, b = ours(image, min_score=0.0), facenet(image, min_score=0.0)
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b, strict=True):
            assert np.abs(x.raw_box - y.raw_box).max() < 1e-3
            assert np.abs(x.box - y.box).max() < 1e-3
            assert abs(x.score - y.score) < 1e-5
    assert ours(np.zeros((120, 160, 3), np.uint8)) == []  # nothing in a black frame
    for small in (np.zeros((15, 15, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)):
        assert ours(small) == [] and facenet(small) == []  # smaller than the smallest face


def test_a_share_of_the_frame_is_each_frame_s_own_pixels_in_both_detectors(engines) -> None:
    """``min_face="15%"`` is 77 px of the 512-px photo and 38 px of it at half size, for
    facenet-pytorch's MTCNN as for ours: both give exactly the boxes of those pixel sizes;
    at 60% neither looks for a face as small as the astronaut's (88 px, 44 at half size)."""
    image = read_image(SAMPLE_IMAGE)
    half = np.ascontiguousarray(image[::2, ::2])
    for rt in engines:
        share = rt.detector("15%")
        for picture, pixels in ((image, 77), (half, 38)):
            got, want = share(picture, min_score=0.0), rt.detector(pixels)(picture, min_score=0.0)
            assert len(got) == len(want) >= 1
            assert all(np.array_equal(x.raw_box, y.raw_box) for x, y in zip(got, want, strict=True))
        assert rt.detector("60%")(image) == [] == rt.detector("60%")(half)  # 307 px, 154 px


def test_relaxed_thresholds_reach_both_detectors_and_find_a_faint_face(engines, frames) -> None:
    from crct_cli.noise import degrade
    from crct_cli.tracking.detector import RELAXED_MIN_SCORE, RELAXED_THRESHOLDS
    from crct_cli.tracking.multi import iou

    onnx, torch_rt = engines
    ours, facenet = onnx.detector(), torch_rt.detector()
    strict = ours(frames[0])
    # blurred, darkened to a fifth, noisy: MTCNN's usual thresholds no longer find the face
    rng = np.random.default_rng(0)
    dim = (degrade(frames[0], "blur", 2, rng) * 0.2).astype(np.uint8)
    faint = degrade(dim, "noise", 2, rng)
    assert ours(faint) == [] and facenet(faint) == []
    weak = ours(faint, RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
    assert len(weak) == 1 and iou(weak[0].box, strict[0].box) > 0.5  # still the astronaut
    theirs = facenet(faint, RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
    assert [d.score for d in theirs] == pytest.approx([d.score for d in weak], abs=1e-5)
    # facenet-pytorch's own thresholds are back for the next call
    assert facenet(faint) == [] and facenet(frames[0])[0].score == pytest.approx(strict[0].score)


def test_area_resampling_is_torch_interpolate_area_bit_for_bit() -> None:
    torch = pytest.importorskip("torch")
    from torch.nn.functional import interpolate

    from crct_cli.tracking.detector import AreaSampler, area_resize

    rng = np.random.default_rng(0)
    for h, w, oh, ow in [(360, 640, 217, 385), (37, 51, 24, 24), (100, 7, 24, 24), (5, 9, 48, 48)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = torch.as_tensor(image[None].copy()).permute(0, 3, 1, 2).float()
        want = interpolate(x, size=(oh, ow), mode="area")[0].numpy()
        assert np.array_equal(area_resize(image, oh, ow), want)
    image = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    rect = np.array([[3, 41, 10, 33]])
    x = torch.as_tensor(image[3:41, 10:33][None].copy()).permute(0, 3, 1, 2).float()
    want = interpolate(x, size=(24, 24), mode="area").numpy()
    assert np.array_equal(AreaSampler(image).resize(rect, 24, 24), want)


def test_the_detector_s_integral_image_is_exact_in_half_the_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A uint8 frame up to UHD is summed in int32 (100 MB at 4K, not float64's 200), larger
    ones in float64; the resampled pyramid is the same to the bit either way."""
    torch = pytest.importorskip("torch")
    from torch.nn.functional import interpolate

    from crct_cli.tracking import detector
    from crct_cli.tracking.detector import AreaSampler

    # the largest sums a UHD frame gives fit: a white 3840 x 2160 frame's last one
    white = np.full((2160, 3840, 3), 255, dtype=np.uint8)
    integral = AreaSampler(white).integral
    assert integral.dtype == np.int32
    assert integral.nbytes == 2161 * 3841 * 3 * 4
    assert (integral[-1, -1] == 2160 * 3840 * 255).all()
    del white, integral
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    x = torch.as_tensor(image[None].copy()).permute(0, 3, 1, 2).float()
    want = interpolate(x, size=(217, 385), mode="area")[0].numpy()
    reference = np.zeros((361, 641, 3))
    reference[1:, 1:] = image.astype(np.float64).cumsum(axis=0).cumsum(axis=1)
    for bound, dtype in ((detector._INT32_MAX, np.int32), (360 * 640 * 255 - 1, np.float64)):
        monkeypatch.setattr(detector, "_INT32_MAX", bound)
        sampler = AreaSampler(image)
        assert sampler.integral.dtype == dtype
        assert np.array_equal(sampler.integral, reference)
        assert np.array_equal(sampler.whole(217, 385)[0], want)
    # a picture that is not uint8 (integer-valued) is summed as before, in float64
    wide = image.astype(np.int16)
    assert np.array_equal(AreaSampler(wide).integral, reference)


def test_nms_is_torchvision_s() -> None:
    pytest.importorskip("torchvision")
    import torch
    from torchvision.ops import nms as tv_nms

    from crct_cli.tracking.detector import nms

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (300, 2)).astype(np.float32)
    wh = rng.uniform(5, 40, (300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        want = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
        assert np.array_equal(nms(boxes, scores, threshold), want)


# --------------------------------------------------------------------------------- cache


def test_cache_is_keyed_by_the_weights_sha256_and_a_broken_entry_is_rebuilt(
    engines, frames, face_box
) -> None:
    from crct_cli.models.weights import sha256_file

    onnx, _ = engines
    first = onnx.validator()
    sha = sha256_file(onnx.weight_files["fv"])
    graph, index = graph_path(sha, "fv"), index_path(sha)
    assert graph.is_file() and index.is_file()
    assert json.loads(index.read_text())["weights_sha256"] == sha
    points = onnx.aligner("none")[0](frames[4], face_box[None])[0]
    crop, pts = fv_crop(frames[4], points, first.config)
    want = first.logits(crop[None], pts[None])

    again = Runtime("onnx", "cpu")
    again.validator()
    assert again.exported == []  # read from the cache
    for damage in ("truncate", "garbage", "index"):
        if damage == "truncate":
            graph.write_bytes(graph.read_bytes()[:1000])
        elif damage == "garbage":
            graph.write_bytes(b"\0" * graph.stat().st_size)
        else:
            index.write_text("{not json")
        rebuilt = Runtime("onnx", "cpu")
        fv = rebuilt.validator()
        assert rebuilt.exported == [onnx.weight_files["fv"]], damage
        assert np.array_equal(fv.logits(crop[None], pts[None]), want)


def test_a_file_s_hash_is_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weight files and graphs are hashed on every start unless their stat is unchanged since
    a run that hashed them; any rewrite is hashed again, and a file just written is never
    remembered."""
    import hashlib
    import time

    from crct_cli.runtime import cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    hashed: list[Path] = []
    real = cache._sha256_path
    monkeypatch.setattr(cache, "_sha256_path", lambda p: hashed.append(p) or real(p))
    path = tmp_path / "w.pt"
    path.write_bytes(b"a" * 1000)
    past = time.time() - 600
    os.utime(path, (past, past))
    sha_a, sha_b = (hashlib.sha256(c * 1000).hexdigest() for c in (b"a", b"b"))
    assert cache.file_sha256(path) == sha_a and len(hashed) == 1
    assert cache.file_sha256(path) == sha_a and len(hashed) == 1
    cache._hashes.clear()  # as a new process: from hashes.json
    assert cache.file_sha256(path) == sha_a and len(hashed) == 1

    path.write_bytes(b"b" * 1000)  # the same size, rewritten just now
    assert cache.file_sha256(path) == sha_b and len(hashed) == 2
    assert cache.file_sha256(path) == sha_b and len(hashed) == 3  # too fresh to remember
    os.utime(path, (past - 600, past - 600))
    assert cache.file_sha256(path) == sha_b and len(hashed) == 4
    assert cache.file_sha256(path) == sha_b and len(hashed) == 4
    with pytest.raises(OSError):
        cache.file_sha256(tmp_path / "missing.pt")


def test_a_corrupt_weight_file_is_refused_before_any_export(tmp_path: Path, onnx_cache) -> None:
    from crct_cli.models.weights import MANIFEST

    folder = tmp_path / "weights"
    folder.mkdir()
    source = REPO / "weights" / "fv.pt"
    (folder / "fv.pt").write_bytes(source.read_bytes()[:-10] + b"0123456789")
    manifest = json.loads((REPO / "weights" / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({"weights": {"fv.pt": manifest["weights"]["fv.pt"]}}))
    with pytest.raises(CrctError, match="corrupt"):
        Runtime("onnx", "cpu", folder).validator()
    with pytest.raises(CrctError, match="missing"):
        Runtime("onnx", "cpu", folder).tracker()


# ----------------------------------------------------------------------------- imports


def test_the_onnx_path_imports_no_torch(engines, tmp_path: Path) -> None:
    """With the graphs cached: the runtime, MTCNN, the aligner and ``crct align`` import
    neither torch, torchvision nor facenet-pytorch."""
    script = f"""
import sys
from crct_cli.runtime import Runtime
from crct_cli.io.images import read_image
rt = Runtime("onnx", "cpu")
aligner, _, _ = rt.aligner("none")
bt, fv = rt.tracker(), rt.validator()
image = read_image({str(SAMPLE_IMAGE)!r})
faces = rt.detector()(image)
points = aligner(image, faces[0].box[None])
from crct_cli.cli import app
try:
    app(["align", {str(SAMPLE_IMAGE)!r}, "--out", {str(tmp_path / "out")!r}, "--backend", "onnx"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none", rt.exported)
"""
    for _ in range(2):  # the first run exports what this test session has not (run alone)
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ)
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "none", done.stdout
    assert done.stdout.strip().endswith("[]")  # from the cache, no export
    assert (tmp_path / "out" / "astronaut.pts").is_file()


def test_crct_denoise_on_the_onnx_backend_imports_no_torch(tmp_path: Path) -> None:
    """``crct denoise --backend onnx``, its graphs cached (the first run exports them), imports
    no PyTorch and writes what the first run wrote."""
    args = ["denoise", str(SAMPLE_IMAGE), "--variant", "d", "--backend", "onnx", "--out"]
    script = f"""
import sys
from crct_cli.cli import app
try:
    app({args!r} + [sys.argv[1]])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
"""
    runs = {}
    for name in ("first", "again"):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / name)],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        assert done.returncode == 0, done.stderr
        runs[name] = done.stdout.split()[-1]
    assert runs["again"] == "none", runs
    first, again = (tmp_path / n / SAMPLE_IMAGE.name for n in ("first", "again"))
    assert again.read_bytes() == first.read_bytes()


# ---------------------------------------------------------------------------- tracking


def _tracked_differences(
    probes: tuple, images: list[np.ndarray], seq_bt: int = 2
) -> dict[str, np.ndarray]:
    """Algorithm 1 on one face with the torch path (BT from the last box, FV on its estimate,
    FLL's two stages on the validated box, the LSTM state reset every ``seq_bt``), every call
    made on the ONNX path too with the very same inputs (box, LSTM state, points): the largest
    difference of each call's answers (pixels; FV in probability), per call."""
    from crct_cli.landmarks import box_from_points

    ref, onnx = probes
    diffs: dict[str, list[float]] = {
        "bt": [],
        "fv": [],
        "fll_stage1": [],
        "fll_stage2": [],
        "fll": [],
        "fll_self": [],
    }
    points, state = ref.localize(images[0], ref.detect(images[0])[0].box), None
    for k in range(1, len(images)):
        state = None if (k - 1) % seq_bt == 0 else state
        box = box_from_points(points)
        guess, new_state = ref.bt_step(images[k - 1], images[k], box, state)
        diffs["bt"].append(np.abs(guess - onnx.bt_step(images[k - 1], images[k], box, state)[0]))
        state = new_state
        score = ref.validate(images[k], guess)
        diffs["fv"].append(abs(score - onnx.validate(images[k], guess)))
        if score >= 0.5:
            box = box_from_points(guess)[None]
            one = [images[k]]
            first = ref.aligner._once(one, box)
            diffs["fll_stage1"].append(np.abs(first - onnx.aligner._once(one, box)))
            second = ref.aligner._upright(one, first)
            diffs["fll_stage2"].append(np.abs(second - onnx.aligner._upright(one, first)))
            guess = ref.localize(images[k], box[0])
            diffs["fll"].append(np.abs(guess - onnx.localize(images[k], box[0])))
            nudged = ref.localize(images[k], box[0] + 1e-5)
            diffs["fll_self"].append(np.abs(guess - nudged))
        points = guess
    return {k: np.array([np.max(d) for d in v]) for k, v in diffs.items()}


def _free_running(probe, images: list[np.ndarray]) -> list[np.ndarray]:
    """The same chain on one backend alone, recording the points of every frame."""
    from crct_cli.landmarks import box_from_points

    points = probe.localize(images[0], probe.detect(images[0])[0].box)
    out, state = [points], None
    for k in range(1, len(images)):
        state = None if (k - 1) % 2 == 0 else state
        guess, state = probe.bt_step(images[k - 1], images[k], box_from_points(points), state)
        if probe.validate(images[k], guess) >= 0.5:
            guess = probe.localize(images[k], box_from_points(guess))
        points = guess
        out.append(points)
    return out


def test_tracking_calls_match_the_torch_path_on_the_sample(probes, frames) -> None:
    """Every call of a tracked clip, given the same inputs: the same points within 0.01 px."""
    diffs = _tracked_differences(probes, frames[:20])
    assert len(diffs["fll"]) >= 15  # FV accepted most frames
    networks = ("bt", "fll_stage1", "fll_stage2")
    assert max(diffs[k].max() for k in networks) < 1e-3 and diffs["fll"].max() < 0.01
    assert diffs["fv"].max() < 1e-5


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_VIDEO.is_file(), reason=f"needs {SHARED_VIDEO} (../shared)")
def test_tracking_calls_match_the_torch_path_on_a_shared_video(probes) -> None:
    """Each network, given the same inputs, within 0.001 px: BT, FLL's first stage, and FLL's
    second stage on the first stage's torch answer. The two stages chained are chaotic: the
    second crops around the first's answer, and cv2's warp places its samples on a 1/32-px grid,
    so a 1e-4 px difference there now and then moves a few crop pixels by a grey level. So the
    chained answers are held to the torch path's own sensitivity, measured here by nudging its
    box by 1e-5 px: the backends part by less than that in the median (about a quarter of it on
    this video), by under 0.01 px on nearly every frame and 0.03 px on all."""
    diffs = _tracked_differences(probes, [f.image for f in iter_frames(SHARED_VIDEO, 40)])
    networks = ("bt", "fll_stage1", "fll_stage2")
    assert max(diffs[k].max() for k in networks) < 1e-3 and diffs["fv"].max() < 1e-5
    assert np.median(diffs["fll"]) < np.median(diffs["fll_self"])
    assert np.mean(diffs["fll"] < 0.01) > 0.9 and diffs["fll"].max() < 0.03


def test_free_running_tracks_stay_together(probes, frames) -> None:
    """Left to run on their own, the two backends' tracks part only by what the 1/32-px warp
    makes of 1e-4 px differences in the crop boxes: well under 0.2 px over the clip."""
    torch_pts, onnx = (_free_running(p, frames[:20]) for p in probes)
    assert max(float(np.abs(a - b).max()) for a, b in zip(onnx, torch_pts, strict=True)) < 0.2


def test_a_localizer_is_told_apart_while_another_thread_is_importing_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The networks load in threads; on a first run one of them exports a graph and imports
    torch while another hands its ONNX localizer to the aligner. A half-imported torch (in
    ``sys.modules``, no ``torch.nn`` yet) once made that a traceback."""
    import types

    import torch

    from crct_cli.aligner import as_localizer
    from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
    from crct_cli.runtime.torch_nets import TorchLocalizer

    class OnnxLike:
        config = FLLConfig()

    model = LandmarkLocalizer(FLLConfig())
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # half-initialised
    onnx_like = OnnxLike()
    assert as_localizer(onnx_like) is onnx_like
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert isinstance(as_localizer(model), TorchLocalizer)


def test_a_call_can_ask_for_the_mirrored_pass(engines, frames, face_box) -> None:
    """``Aligner(image, boxes, flip=True)`` (the tracker's ``lost_flip``) is the aligner built
    with ``flip`` on, for that call only; ``flip=None`` keeps the config's."""
    _, torch_rt = engines
    plain, _, _ = torch_rt.aligner("none", AlignConfig(blend=True))
    mirrored, _, _ = torch_rt.aligner("none", AlignConfig(blend=True, flip=True))
    boxes = face_box[None]
    asked = plain(frames[3], boxes, flip=True)
    assert np.abs(asked - mirrored(frames[3], boxes)).max() < 1e-4
    assert np.abs(plain(frames[3], boxes) - asked).max() > 0.05  # the mirror reads differently
    assert np.array_equal(plain(frames[3], boxes), plain(frames[3], boxes, flip=None))
    assert np.array_equal(mirrored(frames[3], boxes, flip=False), plain(frames[3], boxes))


def test_the_first_export_is_said_on_a_terminal_and_an_unwritable_cache_always(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run's export takes seconds: a person at a terminal is told why, once; a
    cache that cannot be written (graphs made again on every run) is a warning in logs too."""
    import io

    from crct_cli.runtime import cache

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def export() -> cache.Exported:
        return cache.Exported("fv", {}, {"fv": b"graph"})

    for terminal, said in ((Terminal(), 1), (io.StringIO(), 0)):
        monkeypatch.setattr(cache, "_SAID", set())
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setenv("CRCT_CACHE", str(tmp_path / f"cache{said}"))
        for sha in ("a" * 64, "b" * 64, "a" * 64):  # two exports, then one read back
            cache.cached_graphs(sha, "fv.pt", export)
        lines = terminal.getvalue().splitlines()
        assert len(lines) == said and all("preparing the networks" in ln for ln in lines)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(cache, "_SAID", set())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("CRCT_CACHE", str(blocked))
    entry = cache.cached_graphs("c" * 64, "fv.pt", export)
    assert entry.graphs == {"fv": b"graph"}  # run from memory
    assert sys.stderr.getvalue().startswith(f"crct: warning: {blocked / 'onnx'} cannot be written")
