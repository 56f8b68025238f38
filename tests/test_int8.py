"""int8 graphs of BT and FLL's first stage (``crct track`` on the CPU): made by crct from the
shipped ranges, close to float32, off where they do not apply, and ``crct train int8``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_stage2 import write_generated_faces
from typer.testing import CliRunner

from crct_cli import Tracker, geometry
from crct_cli.aligner import VIDEO_FLL_FILE
from crct_cli.cli import app
from crct_cli.errors import CrctError
from crct_cli.io.video import iter_frames
from crct_cli.models.weights import WEIGHTS_DIR, read_manifest, sha256_file, update_manifest
from crct_cli.runtime import Runtime
from crct_cli.runtime.int8 import RANGES_FILE

REPO = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = REPO / "samples" / "astronaut.mp4"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [f.image for f in iter_frames(SAMPLE_VIDEO, 12)]


def bt_crops(frames: list[np.ndarray], box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center, side = geometry.box_center_size(box)
    m = geometry.crop_matrix(center, side * 2.0, 128)
    prev = np.stack([geometry.warp(f, m, 128) for f in frames[:-1]])
    cur = np.stack([geometry.warp(f, m, 128) for f in frames[1:]])
    return prev, cur


@pytest.fixture(scope="module")
def face_box(frames: list[np.ndarray]) -> np.ndarray:
    return Runtime("onnx", "cpu").detector()(frames[0])[0].box


def test_shipped_ranges_give_int8_graphs_close_to_float32(frames, face_box) -> None:
    rt = Runtime("onnx", "cpu")
    fp32, q8 = rt.tracker(), rt.tracker(int8=True)
    assert rt.int8 == ["bt"]
    prev, cur = bt_crops(frames, face_box)
    a, b = fp32(prev, cur)[0] * 128, q8(prev, cur)[0] * 128
    moved = np.linalg.norm(a - b, axis=-1)
    assert 0 < moved.mean() < 0.5 and moved.max() < 3.0  # int8, yet the same face points

    center, side = geometry.box_center_size(face_box)
    m = geometry.crop_matrix(center, side * 1.35, 112)
    crops = np.stack([geometry.warp(f, m, 112) for f in frames])
    fll32, fll8 = rt.localizer(), rt.localizer(int8=True)
    moved = np.linalg.norm(fll32(crops) - fll8(crops), axis=-1) * 112
    assert 0 < moved.mean() < 0.5 and moved.max() < 3.0
    assert rt.int8 == ["bt", "fll"]


def test_networks_loaded_together_equal_those_loaded_in_turn(frames, face_box) -> None:
    """``Runtime.load_together`` opens the sessions in threads: the same networks, in the
    order asked, and the int8 roles listed in the fixed order however the threads finished."""
    rt = Runtime("onnx", "cpu")
    bt, fll, fv = rt.load_together(
        lambda: rt.tracker(int8=True), lambda: rt.localizer(int8=True), rt.validator
    )
    assert rt.int8 == ["fll", "bt"] and set(rt.weight_files) == {"bt", "fll", "fv"}
    alone = Runtime("onnx", "cpu")
    prev, cur = bt_crops(frames, face_box)
    assert np.array_equal(bt(prev, cur)[0], alone.tracker(int8=True)(prev, cur)[0])
    assert np.array_equal(
        fll(cur[:, 8:120, 8:120]), alone.localizer(int8=True)(cur[:, 8:120, 8:120])
    )
    assert fv.config.crop_size == alone.validator().config.crop_size


def test_only_the_tracker_s_inner_networks_and_only_on_the_cpu() -> None:
    rt = Runtime("onnx", "cpu")
    rt.stage2(), rt.validator(), rt.aligner("none")  # float32: the points written, crct align
    rt.aligner("m", int8=True)  # FADeNN's FLL has no int8 graph
    assert rt.int8 == []
    torch_rt = Runtime("torch", "cpu")
    torch_rt.tracker(int8=True)
    assert torch_rt.int8 == []


def test_tracking_with_int8_stays_on_the_float32_track(tmp_path: Path) -> None:
    tracks = {}
    for int8 in (True, False):
        tracker = Tracker(device="cpu", backend="onnx", int8=int8)
        assert tracker.networks.runtime.int8 == (["fll", "bt"] if int8 else [])
        tracks[int8] = np.stack([f.faces[0].points for f in tracker.track(SAMPLE_VIDEO)])
    moved = np.linalg.norm(tracks[True] - tracks[False], axis=-1)
    assert moved.mean() < 0.5, moved.mean()


def weights_copy(folder: Path) -> Path:
    """BT and FLL's first stages in a new ``folder``; its video first stage (listed, as
    shipped) is a copy of ``fll.pt`` here."""
    folder.mkdir()
    for name in ("bt.pt", "fll.pt", "manifest.json"):
        shutil.copy(WEIGHTS_DIR / name, folder / name)
    shutil.copy(folder / "fll.pt", folder / VIDEO_FLL_FILE)
    update_manifest(
        VIDEO_FLL_FILE, {"kind": "fll", "sha256": sha256_file(folder / "fll.pt")}, folder
    )
    return folder


def test_ranges_of_other_weights_are_not_used_and_an_altered_file_is_refused(
    tmp_path: Path,
) -> None:
    folder = weights_copy(tmp_path / "w")
    doc = json.loads((WEIGHTS_DIR / RANGES_FILE).read_text())
    doc["networks"]["bt.pt"]["weights_sha256"] = "0" * 64  # made for another bt.pt
    (folder / RANGES_FILE).write_text(json.dumps(doc))
    update_manifest(
        RANGES_FILE, {"kind": "int8", "sha256": sha256_file(folder / RANGES_FILE)}, folder
    )
    rt = Runtime("onnx", "cpu", folder)
    rt.tracker(int8=True), rt.localizer(int8=True)
    assert rt.int8 == ["fll"]
    (folder / RANGES_FILE).write_text(json.dumps(doc) + " ")
    with pytest.raises(CrctError, match="corrupt"):
        Runtime("onnx", "cpu", folder).tracker(int8=True)


def test_train_int8_writes_ranges_and_their_manifest_entry(tmp_path: Path) -> None:
    folder = weights_copy(tmp_path / "w")
    data = write_generated_faces(tmp_path / "faces")
    out = folder / RANGES_FILE
    args = ["train", "int8", str(data), "--val", str(data), "--faces", "3", "--out", str(out)]
    # a process of its own, as from the shell: ONNX Runtime's calibrator needs one
    done = subprocess.run([sys.executable, "-m", "crct_cli", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    entry = read_manifest(folder)["weights"][RANGES_FILE]
    assert entry["sha256"] == sha256_file(out) and "--faces 3" in entry["command"]
    assert json.loads(out.read_text())["quantization"]["operators"] == ["Conv", "Relu"]
    assert entry["inputs"]["bt.pt"]["sha256"] == sha256_file(folder / "bt.pt")
    for part in ("bt", "fll", "fll_video"):
        assert entry["val_metrics"][part]["crops"] == 3
        assert 0 < entry["val_metrics"][part]["mean_px"] < 5
    # the video first stage is calibrated on the same crops as fll.pt: same file, same ranges
    networks = json.loads(out.read_text())["networks"]
    assert networks[VIDEO_FLL_FILE]["ranges"] == networks["fll.pt"]["ranges"]
    rt = Runtime("onnx", "cpu", folder)
    rt.tracker(int8=True)
    assert rt.int8 == ["bt"]
    rt.localizer(VIDEO_FLL_FILE, int8=True)
    assert rt.int8 == ["bt", "fll"]
    missing = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "elsewhere" / RANGES_FILE)])
    assert missing.exit_code == 2 and "no such weight file" in missing.output


def test_ranges_that_do_not_name_a_graph_s_tensors_are_refused() -> None:
    """Another exporter's tensor names: the int8 graph is not made (the caller runs float32)."""
    from crct_cli.runtime.export import export_weight_file
    from crct_cli.runtime.int8 import Unsupported, quantize

    graph = export_weight_file(WEIGHTS_DIR / "fll.pt", "fll", WEIGHTS_DIR).parts["fll"]
    doc = json.loads((WEIGHTS_DIR / RANGES_FILE).read_text())
    with pytest.raises(Unsupported, match="do not match"):
        quantize(graph, doc["networks"]["bt.pt"]["ranges"])  # BT's tensors, not FLL's
    assert b"QuantizeLinear" in quantize(graph, doc["networks"]["fll.pt"]["ranges"])  # its own


def test_making_an_int8_graph_prints_no_quantizer_advice(caplog: pytest.LogCaptureFixture) -> None:
    """ONNX Runtime's quantizer advises pre-processing on the root logger; a first crct track
    (an empty graph cache) printed it four times. Other warnings still pass."""
    import logging

    from crct_cli.runtime.export import export_weight_file
    from crct_cli.runtime.int8 import quantize

    graph = export_weight_file(WEIGHTS_DIR / "fll.pt", "fll", WEIGHTS_DIR).parts["fll"]
    ranges = json.loads((WEIGHTS_DIR / RANGES_FILE).read_text())["networks"]["fll.pt"]["ranges"]
    with caplog.at_level(logging.WARNING):
        assert b"QuantizeLinear" in quantize(graph, ranges)
        logging.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_the_ranges_file_says_which_operators_are_quantized() -> None:
    """The shipped file quantizes the ReLUs with the convolutions: their graph keeps few float
    ReLUs. A file from before operators were recorded means convolutions alone; a file naming
    an operator this crct does not know is not used."""
    import onnx

    from crct_cli.runtime.export import export_weight_file
    from crct_cli.runtime.int8 import Unsupported, operators, quantize

    doc = json.loads((WEIGHTS_DIR / RANGES_FILE).read_text())
    assert operators(doc) == ("Conv", "Relu")
    graph = export_weight_file(WEIGHTS_DIR / "fll.pt", "fll", WEIGHTS_DIR).parts["fll"]

    def relus(data: bytes) -> int:
        return sum(node.op_type == "Relu" for node in onnx.load_from_string(data).graph.node)

    ranges = doc["networks"]["fll.pt"]["ranges"]
    assert relus(quantize(graph, ranges, operators(doc))) < relus(graph) / 2
    assert relus(quantize(graph, ranges, ("Conv",))) == relus(graph)
    legacy = {key: value for key, value in doc.items() if key != "quantization"}
    assert operators(legacy) == ("Conv",)
    with pytest.raises(Unsupported, match="Sigmoid"):
        operators({"quantization": {"operators": ["Conv", "Sigmoid"]}})


def test_train_int8_takes_known_operators_and_records_others_in_its_command() -> None:
    from crct_cli.train.int8 import TrainInt8Config

    cfg = TrainInt8Config([Path("a")], [Path("b")], out=Path("w/int8.json"))
    assert "--operators" not in cfg.command()  # the default
    cfg.operators = ("Conv",)
    assert cfg.command().endswith("--operators Conv")
    for bad in ("Relu", "Conv,Sigmoid"):
        done = CliRunner().invoke(app, ["train", "int8", "--operators", bad, "--out", "x.json"])
        assert done.exit_code == 2 and "--operators" in done.output, done.output
