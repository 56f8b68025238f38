"""Export crct's networks to ONNX from their weight files (PyTorch is needed here, and only here).

Each graph takes what the inference code has at hand and does the same arithmetic the PyTorch
path does: uint8 crops (N, S, S, 3) are cast and divided by 255 inside the graph, batch norm is
folded into the convolutions first (as the torch path does), and the batch size stays dynamic.
Three changes make the graphs exportable, or fast in ONNX Runtime, without changing what they
compute:

* the trunk's ``AdaptiveAvgPool2d(4)`` over a 7x7 map (FLL's 112-px crops) has overlapping
  bins, which the ONNX exporter refuses; :class:`ExactAdaptivePool` computes the same bins as
  two small averaging matrices (equal to 1e-7);
* FLL's shape-indexed head samples its feature maps with four gathers instead of
  ``grid_sample`` (:func:`gather_sample`), which ONNX Runtime runs ten times faster;
* the DAEs' replicate padding to a multiple of 16 and the final crop happen outside the graph
  (in numpy, the same operations), so one graph serves any picture size.

The TorchScript exporter is used (``dynamo=False``): it needs torch and onnx only (not
onnxscript), and it keeps the batch dimension symbolic through every reshape. Every export is
checked against PyTorch on its own sample input before it is stored (:func:`check_graph`).
"""

from __future__ import annotations

import inspect
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch
from torch import nn

from crct_cli.errors import WordedError
from crct_cli.runtime.cache import Exported
from crct_cli.runtime.nets import mtcnn_weight_file

if TYPE_CHECKING:
    from crct_cli.models.bt import RecurrentTracker
    from crct_cli.models.fadenn import DAE, IID, NoiseClassifier
    from crct_cli.models.finder import FaceFinder
    from crct_cli.models.fll import LandmarkLocalizer
    from crct_cli.models.fv import FaceValidator

M = TypeVar("M", bound=nn.Module)

OPSET = 17
#: Largest difference allowed between a fresh graph and PyTorch on the sample input.
CHECK_TOLERANCE = 1e-3
MTCNN_NETS: tuple[str, ...] = ("pnet", "rnet", "onet")


def averaging_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) rows averaging the bins of ``adaptive_avg_pool`` (start floor(i*size/out),
    end ceil((i+1)*size/out))."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


class ExactAdaptivePool(nn.Module):
    """``AdaptiveAvgPool2d(out)`` as ``A @ x @ B``; the spatial size is fixed per network."""

    def __init__(self, out: int) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        rows = torch.from_numpy(averaging_matrix(h, self.out))
        cols = torch.from_numpy(averaging_matrix(w, self.out).T.copy())
        return torch.matmul(torch.matmul(rows, x), cols)


def gather_sample(fmap: torch.Tensor, points: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """:meth:`crct_cli.models.fll.ShapeIndexedHead.sample` (bilinear, border padding,
    ``align_corners=False``) as four gathers: ONNX Runtime's GridSample kernel took a fifth of
    FLL's time for these 2,300 samples; the gathers take a tenth of that. Equal to 1e-6."""
    b, c, h, w = fmap.shape
    where = points[:, :, None, :] * 2.0 + cells * (2.0 / h)
    x = (((where[..., 0] + 1) * w - 1) / 2).clamp(0, w - 1)
    y = (((where[..., 1] + 1) * h - 1) / 2).clamp(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    x1, y1 = x0 + 1, y0 + 1
    weights = (
        ((x1 - x) * (y1 - y)).reshape(b, 1, -1),
        ((x - x0) * (y1 - y)).reshape(b, 1, -1),
        ((x1 - x) * (y - y0)).reshape(b, 1, -1),
        ((x - x0) * (y - y0)).reshape(b, 1, -1),
    )
    x1, y1 = x1.clamp(max=w - 1), y1.clamp(max=h - 1)  # their weight is 0 there
    flat = fmap.reshape(b, c, h * w)

    def at(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        index = (row * w + col).long().reshape(b, 1, -1).expand(b, c, -1)
        return torch.gather(flat, 2, index)

    nw, ne, sw, se = weights
    out = at(y0, x0) * nw + at(y0, x1) * ne + at(y1, x0) * sw + at(y1, x1) * se
    n, k = points.shape[1], cells.shape[0]
    return out.reshape(b, c, n, k).permute(0, 2, 1, 3).reshape(b, n, -1)


def exportable(model: M) -> M:
    """Swap every multi-bin adaptive average pool for :class:`ExactAdaptivePool` and the
    shape-indexed head's sampling for :func:`gather_sample`, in place."""
    from crct_cli.models.fll import ShapeIndexedHead

    if isinstance(model, ShapeIndexedHead):
        model.sample = gather_sample  # type: ignore[method-assign]
    for name, child in list(model.named_children()):
        if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size not in (1, (1, 1)):
            size = child.output_size
            assert size is not None  # an AdaptiveAvgPool2d always has an output size
            out = size if isinstance(size, int) else size[0]
            assert isinstance(out, int) and (isinstance(size, int) or size[0] == size[1])
            setattr(model, name, ExactAdaptivePool(out))
        else:
            exportable(child)
    return model


def _to_float(crops: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1], as the torch path converts crops."""
    return crops.permute(0, 3, 1, 2).float() / 255.0


class LocalizerGraph(nn.Module):
    """FLL (either stage): uint8 crops -> (N, 68, 2) points in crop units."""

    def __init__(self, fll: LandmarkLocalizer) -> None:
        super().__init__()
        self.fll = fll

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.fll(_to_float(crops))


class TrackerFeaturesGraph(nn.Module):
    """BT's trunk: uint8 crops -> (N, F) features, as a previous or a current crop."""

    def __init__(self, bt: RecurrentTracker) -> None:
        super().__init__()
        self.bt = bt

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.bt.features(_to_float(crops))


class TrackerHeadGraph(nn.Module):
    """The rest of BT: previous and current crops' features + LSTM state -> points in crop
    units, new state."""

    def __init__(self, bt: RecurrentTracker) -> None:
        super().__init__()
        self.bt = bt

    def forward(
        self, prev: torch.Tensor, cur: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        points, (h1, c1) = self.bt.track_features(prev, cur, (h0, c0))
        return points, h1, c1


class ValidatorGraph(nn.Module):
    """FV: uint8 crops + points in crop pixels -> logit of p(face), (N,)."""

    def __init__(self, fv: FaceValidator) -> None:
        super().__init__()
        self.fv = fv

    def forward(self, crops: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.fv(_to_float(crops), points)


class FinderGraph(nn.Module):
    """The face finder: uint8 windows -> (cell logits (N, G*G + 1), cell boxes (N, G*G, 4))."""

    def __init__(self, finder: FaceFinder) -> None:
        super().__init__()
        self.finder = finder

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finder(_to_float(windows))


class ClassifierGraph(nn.Module):
    """FADeNN's noise classifier: uint8 crops (sides multiples of 16) -> class logits (N, 5)."""

    def __init__(self, classifier: NoiseClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        from crct_cli.models.fadenn import _pooled_stats

        c = self.classifier
        return c.head(_pooled_stats(c.encoder(_to_float(crops))))


class DAEGraph(nn.Module):
    """One DAE on float (N, 3, H, W) in [0, 1], sides multiples of 16 -> cleaned, in [0, 1]."""

    def __init__(self, dae: DAE) -> None:
        super().__init__()
        self.dae = dae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dae
        return (x + d.decoder(d.encoder(x))).clamp(0.0, 1.0)


def to_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> bytes:
    """Serialized ONNX graph of ``module`` traced on ``args``."""
    buffer = io.BytesIO()
    # the TorchScript exporter: the default before torch 2.9 (no ``dynamo`` argument before 2.5)
    legacy: dict[str, Any] = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and trace notes
        torch.onnx.export(
            module.eval(),
            args,
            buffer,  # type: ignore[arg-type]  # stub says path only; TorchScript export takes a file
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            do_constant_folding=True,
            **legacy,
        )
    return buffer.getvalue()


def check_graph(
    data: bytes, module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str]
) -> None:
    """Run the graph in ONNX Runtime on ``args`` and compare with PyTorch; a mismatch is an
    error (an exporter that changed what it writes must not go unnoticed)."""
    import onnxruntime

    from crct_cli.runtime.onnx_nets import session_options, shared_pool

    options = session_options(1, shared=shared_pool())
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run(None, {k: a.numpy() for k, a in zip(inputs, args, strict=True)})
    with torch.no_grad():
        want = module(*args)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        diff = float(np.abs(g - w.numpy()).max()) if g.size else 0.0
        if not diff <= CHECK_TOLERANCE:
            differs = f"ONNX export of {type(module).__name__} differs from PyTorch by {diff:.2g}"
            raise WordedError(f"{differs}; use backend='torch'", f"{differs}; use --backend torch")


def _graph(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> bytes:
    module = exportable(module.eval())
    data = to_onnx(module, args, inputs, outputs, dynamic)
    check_graph(data, module, args, inputs)
    return data


def _crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _batch(*names: str) -> dict[str, dict[int, str]]:
    return {name: {0: "n"} for name in names}


def localizer_graph(fll: LandmarkLocalizer) -> bytes:
    size = fll.config.input_size
    return _graph(
        LocalizerGraph(fll), (_crops(2, size),), ["crops"], ["points"], _batch("crops", "points")
    )


def tracker_graphs(bt: RecurrentTracker) -> dict[str, bytes]:
    """BT in two graphs, ``features`` (one per crop) and ``head``, so that a crop's features
    can serve two frames (:class:`crct_cli.tracking.networks.CRCTNetworks`, ``bt_reuse``)."""
    c = bt.config
    crops = torch.cat([_crops(2, c.input_size, 1), _crops(2, c.input_size, 2)])
    features = _graph(
        TrackerFeaturesGraph(bt), (crops,), ["crops"], ["features"], _batch("crops", "features")
    )
    with torch.no_grad():
        feats = TrackerFeaturesGraph(bt).eval()(crops)
    state = torch.zeros(c.lstm_layers, 2, c.hidden)
    args = (feats[:2], feats[2:], state, state + 0.1)
    dynamic = {
        **_batch("prev", "cur", "points"),
        **{k: {1: "n"} for k in ("h0", "c0", "h1", "c1")},
    }
    head = _graph(
        TrackerHeadGraph(bt), args, ["prev", "cur", "h0", "c0"], ["points", "h1", "c1"], dynamic
    )
    return {"features": features, "head": head}


def validator_graph(fv: FaceValidator) -> bytes:
    size = fv.config.crop_size
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.uniform(0, size - 1, (2, 68, 2)).astype(np.float32))
    dynamic = _batch("crops", "points", "logits")
    return _graph(
        ValidatorGraph(fv), (_crops(2, size), points), ["crops", "points"], ["logits"], dynamic
    )


def finder_graph(finder: FaceFinder) -> bytes:
    """Windows of any size (a whole number of cells): ``--find-wide`` reads a wider one."""
    size = finder.config.input_size
    dynamic = {
        "windows": {0: "n", 1: "side", 2: "side"},
        "logits": {0: "n", 1: "cells"},
        "boxes": {0: "n", 1: "cells"},
    }
    return _graph(
        FinderGraph(finder), (_crops(2, size, 6),), ["windows"], ["logits", "boxes"], dynamic
    )


def iid_graphs(iid: IID) -> dict[str, bytes]:
    """``dae`` (variant d), or ``classifier`` and ``dae<k>`` for every class it routes."""
    spatial = {0: "n", 1: "h", 2: "w"}
    image = {0: "n", 2: "h", 3: "w"}
    x = _crops(2, 112, 4).permute(0, 3, 1, 2).float() / 255.0
    if iid.dae is not None:
        return {"dae": _graph(DAEGraph(iid.dae), (x,), ["x"], ["y"], {"x": image, "y": image})}
    # variants s and m: IID builds the classifier and the DAEs together
    assert iid.classifier is not None and iid.daes is not None
    parts = {
        "classifier": _graph(
            ClassifierGraph(iid.classifier),
            (_crops(2, 112, 5),),
            ["crops"],
            ["logits"],
            {"crops": spatial, "logits": {0: "n"}},
        )
    }
    for k, dae in enumerate(iid.daes, start=1):
        if k not in iid.pass_through:
            graph = DAEGraph(cast("DAE", dae))  # an nn.ModuleList of DAEs
            parts[f"dae{k}"] = _graph(graph, (x,), ["x"], ["y"], {"x": image, "y": image})
    return parts


def export_weight_file(path: Path, kind: str, weights_dir: Path) -> Exported:
    """Every graph of one crct weight file (kind ``fll``, ``bt``, ``fv``, ``finder``, ``fadenn``
    or ``iid``), after the same hash and kind checks as the torch path."""
    from crct_cli.models.backbone import fuse_batchnorm
    from crct_cli.models.weights import load_weights

    blob = load_weights(path, kind, weights_dir)
    config: dict[str, Any] = blob["config"]
    if kind == "fll":
        from crct_cli.models.fll import load_localizer

        parts = {"fll": localizer_graph(fuse_batchnorm(load_localizer(blob)))}
    elif kind == "bt":
        from crct_cli.models.bt import load_tracker

        parts = tracker_graphs(fuse_batchnorm(load_tracker(blob)))
    elif kind == "fv":
        from crct_cli.models.fv import load_validator

        parts = {"fv": validator_graph(load_validator(blob))}
    elif kind == "finder":
        from crct_cli.models.finder import load_finder

        parts = {"finder": finder_graph(load_finder(blob))}
    elif kind == "fadenn":
        from crct_cli.models.fadenn import load_fadenn

        model = load_fadenn(blob)
        parts = {"fll": localizer_graph(fuse_batchnorm(model.fll)), **iid_graphs(model.iid)}
    elif kind == "iid":
        from crct_cli.models.fadenn import load_iid

        parts = iid_graphs(load_iid(blob))
    else:
        raise ValueError(f"no ONNX export for weights of kind {kind!r}")
    return Exported(kind, config, parts)


# ------------------------------------------------------------------------------------ MTCNN


def export_mtcnn(net: str) -> Exported:
    """One of MTCNN's three networks, as facenet-pytorch defines and loads it."""
    from facenet_pytorch.models import mtcnn

    module = {"pnet": mtcnn.PNet, "rnet": mtcnn.RNet, "onet": mtcnn.ONet}[net](pretrained=False)
    state = torch.load(mtcnn_weight_file(net), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    rng = np.random.default_rng(6)
    if net == "pnet":
        x = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 37, 53)).astype(np.float32))
        dims = {"x": {2: "h", 3: "w"}, "reg": {2: "gh", 3: "gw"}, "prob": {2: "gh", 3: "gw"}}
        return Exported(
            f"mtcnn-{net}", {}, {net: _graph(module, (x,), ["x"], ["reg", "prob"], dims)}
        )
    side = 24 if net == "rnet" else 48
    x = torch.from_numpy(rng.uniform(-1, 1, (3, 3, side, side)).astype(np.float32))
    outputs = ["reg", "prob"] if net == "rnet" else ["reg", "landmarks", "prob"]
    graph = _graph(module, (x,), ["x"], outputs, _batch("x", *outputs))
    return Exported(f"mtcnn-{net}", {}, {net: graph})
