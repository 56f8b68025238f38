"""``crct train int8``: the activation ranges of BT's and FLL's int8 graphs (``weights/int8.json``).

The crops are cut as ``crct track`` cuts them, at each network's own size and context (BT: the
previous and the current crop at one box while the face moves; FLL: around the box), from a sample
of training faces, half of them degraded (blur, noise, low resolution and darkening as
``crct degrade`` makes them) and all relit (colour casts, gains from 0.2 to 1.3). Ranges
measured on clean faces only cut off the activations of dark, low-contrast frames: a tracker
with them lost a lighting-drift sequence that the float32 one kept (docs/benchmarks.md).

Validation: on crops of the validation faces, cut and degraded the same way, how far the int8
graphs' points lie from the float32 graphs' (crop pixels).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli import geometry
from crct_cli.io.atomic import write_text_atomic
from crct_cli.landmarks import box_from_points
from crct_cli.models import weights
from crct_cli.models.weights import WEIGHTS_DIR
from crct_cli.noise import random_degradation
from crct_cli.runtime.int8 import INT8_PARTS, QUANTIZED_OPS, RANGES_FILE, RANGES_FORMAT
from crct_cli.runtime.nets import LocalizerSpec, TrackerSpec
from crct_cli.train.data import AugmentConfig, Face, data_name, list_pairs, load_pairs, photometric
from crct_cli.train.run import display_path

#: Relighting of the calibration crops: colour jitter always, some grey, some strips.
RELIGHT = AugmentConfig(color=1.0, grayscale=0.1, occlusion=0.2)


@dataclass
class TrainInt8Config:
    train: list[Path]
    val: list[Path]
    faces: int = 192  #: training faces sampled (two crops per network each)
    val_faces: int = 100
    seed: int = 0
    #: beside the bt.pt and fll.pt it is made for, which is where crct looks for it
    out: Path = field(default_factory=lambda: WEIGHTS_DIR / RANGES_FILE)
    operators: tuple[str, ...] = QUANTIZED_OPS  #: the operators quantized

    def command(self) -> str:
        args = ["crct", "train", "int8", *map(str, self.train)]
        args += ["--val", ",".join(map(str, self.val)), "--faces", str(self.faces)]
        args += ["--seed", str(self.seed), "--out", display_path(self.out)]
        if self.operators != QUANTIZED_OPS:
            args += ["--operators", ",".join(self.operators)]
        return shlex.join(args)


def sample_faces(roots: Sequence[Path], n: int, rng: np.random.Generator, desc: str) -> list[Face]:
    pairs = list_pairs(roots)
    pick = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    return load_pairs([pairs[int(i)] for i in sorted(pick)], desc=desc)


def relit(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour cast (a grey picture or a strip now and then) and an overall gain of 0.2 to 1.3."""
    out = photometric(crop, rng, RELIGHT).astype(np.float32) * rng.uniform(0.2, 1.3)
    return np.clip(out, 0, 255).astype(np.uint8)


def tracker_inputs(
    faces: Sequence[Face],
    rng: np.random.Generator,
    bt: TrackerSpec,
    fll: LocalizerSpec,
    per_face: int = 2,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """(BT feeds, FLL feeds): the crops ``crct track`` gives each network, from still faces."""
    bt_feeds, fll_feeds = [], []
    zero = np.zeros((bt.lstm_layers, 1, bt.hidden), np.float32)
    size, fsize = bt.input_size, fll.input_size
    for face in faces:
        image, _, _ = random_degradation(face.image, rng, 0.5)
        center, side = geometry.box_center_size(box_from_points(face.points))
        for _ in range(per_face):
            moved = center + rng.normal(0, 0.05, 2) * side  # the face in the current frame
            scale = float(np.exp(rng.normal(0, 0.05)))
            prev_m = geometry.crop_matrix(center, side * bt.context, size)
            cur_m = geometry.crop_matrix(moved, side * bt.context * scale, size)
            prev = relit(geometry.warp(image, prev_m, size), rng)
            cur = relit(geometry.warp(image, cur_m, size), rng)
            bt_feeds.append({"prev": prev[None], "cur": cur[None], "h0": zero, "c0": zero})
            centre = center + 0.5 * (moved - center)
            box_m = geometry.crop_matrix(centre, side * fll.context * scale, fsize)
            fll_feeds.append({"crops": relit(geometry.warp(image, box_m, fsize), rng)[None]})
    return bt_feeds, fll_feeds


Points = Callable[[dict[str, np.ndarray]], np.ndarray]


def _session(graph: bytes) -> Any:
    import onnxruntime

    from crct_cli.runtime.onnx_nets import session_options

    options = session_options(1)  # crct train never runs on the shared pool (see train_int8)
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _localizer_points(graph: bytes) -> Points:
    session = _session(graph)
    return lambda feed: session.run(None, feed)[0]


def _tracker_points(features: bytes, head: bytes, spec: TrackerSpec) -> Points:
    """BT's points on a (prev, cur, h0, c0) feed, through its two graphs, as the tracker
    runs them (:class:`crct_cli.runtime.onnx_nets.OnnxTracker`)."""
    from crct_cli.runtime.onnx_nets import OnnxTracker

    bt = OnnxTracker(_session(features), _session(head), spec)
    return lambda feed: bt(feed["prev"], feed["cur"], (feed["h0"], feed["c0"]))[0]


def _crops_feed(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """BT's features graph sees the previous and the current crops as one batch."""
    return {"crops": np.concatenate([feed["prev"], feed["cur"]])}


def _difference(
    fp32: Points, int8: Points, feeds: Sequence[dict[str, np.ndarray]], size: int
) -> dict[str, float]:
    """How far the int8 graph's points lie from the float32 graph's, in crop pixels."""
    moved = np.concatenate([np.linalg.norm(fp32(f)[0] - int8(f)[0], axis=-1) * size for f in feeds])
    return {
        "crops": len(feeds),
        "mean_px": round(float(moved.mean()), 4),
        "p99_px": round(float(np.percentile(moved, 99)), 4),
        "max_px": round(float(moved.max()), 4),
    }


def _kind(name: str) -> str:
    """The weight kind a file of :data:`INT8_PARTS` holds."""
    return "bt" if name == "bt.pt" else "fll"


def train_int8(cfg: TrainInt8Config, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the ranges, check the int8 graphs against float32, write the file and its
    manifest entry; returns the validation metrics."""
    from crct_cli.errors import CrctError
    from crct_cli.runtime.export import export_weight_file
    from crct_cli.runtime.int8 import calibrate
    from crct_cli.runtime.onnx_nets import pool_made

    if pool_made():  # ONNX Runtime's calibrator makes sessions with pools of their own
        raise CrctError(
            "crct train int8 needs a process of its own: this one already runs crct's networks "
            "on a shared thread pool"
        )
    t0 = time.time()
    listed = weights.read_manifest(cfg.out.parent).get("weights", {})
    names = [n for n in INT8_PARTS if n in ("bt.pt", "fll.pt") or n in listed]
    exported = {  # bt.pt holds 'bt' weights, fll.pt and fll_video.pt 'fll'
        name: export_weight_file(cfg.out.parent / name, _kind(name), cfg.out.parent)
        for name in names
    }
    bt_spec = TrackerSpec.from_config(exported["bt.pt"].config)
    fll_spec = LocalizerSpec.from_config(exported["fll.pt"].config)
    rng = np.random.default_rng(cfg.seed)
    train_faces = sample_faces(cfg.train, cfg.faces, rng, "train faces")
    train_bt, train_fll = tracker_inputs(train_faces, rng, bt_spec, fll_spec)
    val_faces = sample_faces(cfg.val, cfg.val_faces, rng, "val faces")
    val_bt, val_fll = tracker_inputs(val_faces, rng, bt_spec, fll_spec, per_face=1)
    log(f"int8: {len(train_bt)} calibration crops per network, {len(val_bt)} validation")
    feeds = {
        "bt.pt": (train_bt, val_bt, bt_spec.input_size),
        "fll.pt": (train_fll, val_fll, fll_spec.input_size),
    }
    networks, metrics, inputs = {}, {}, {}
    for name in names:
        part = INT8_PARTS[name]
        if name not in feeds:  # the video first stage: FLL's crops, checked to match
            if LocalizerSpec.from_config(exported[name].config) != fll_spec:
                raise CrctError(f"{name} does not take the crops fll.pt takes")
            feeds[name] = feeds["fll.pt"]
        path = cfg.out.parent / name
        parts = exported[name].parts
        graph = parts[part]
        train_feeds, val_feeds, size = feeds[name]
        if name == "bt.pt":
            ranges, quantized = calibrate(graph, map(_crops_feed, train_feeds), cfg.operators)
            fp32 = _tracker_points(graph, parts["head"], bt_spec)
            int8 = _tracker_points(quantized, parts["head"], bt_spec)
        else:
            ranges, quantized = calibrate(graph, train_feeds, cfg.operators)
            fp32, int8 = _localizer_points(graph), _localizer_points(quantized)
        sha = weights.sha256_file(path)
        networks[name] = {"weights_sha256": sha, "part": part, "ranges": ranges}
        key = name.removesuffix(".pt")  # "bt", "fll", "fll_video"
        metrics[key] = _difference(fp32, int8, val_feeds, size)
        inputs[name] = {"path": display_path(path), "sha256": sha}
        log(f"{name}: int8 points {metrics[key]['mean_px']} px from float32 on average")
    doc = {
        "format": RANGES_FORMAT,
        "quantization": {
            "format": "QDQ",
            "operators": list(cfg.operators),
            "activations": "uint8, per tensor",
            "weights": "int8, per channel",
        },
        "networks": networks,
    }
    log(json.dumps(metrics, indent=2))
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    # sorted: ONNX Runtime lists the tensors in set order, which varies from run to run
    write_text_atomic(cfg.out, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    entry = {
        "kind": "int8",
        "sha256": weights.sha256_file(cfg.out),
        "command": cfg.command(),
        "inputs": inputs,
        "train_split": [data_name(d) for d in cfg.train],
        "val_split": [data_name(d) for d in cfg.val],
        "protocol": "crops as crct track cuts them (half degraded, all relit), int8 graph "
        "against float32 graph of the same weights: point distance in crop pixels",
        "val_metrics": metrics,
        "train_minutes": round((time.time() - t0) / 60, 1),
    }
    weights.update_manifest(cfg.out.name, entry, cfg.out.parent)
    return metrics
