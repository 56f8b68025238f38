"""int8 graphs of BT and FLL's first stage for ``crct track`` on the CPU.

ONNX Runtime runs BT and FLL's first stage with int8 convolutions (QDQ, weights per channel)
in 0.55-0.75 of their float32 time here. Only the tracker's inner networks get it: BT, whose box
FLL then refines, and FLL's first stage, whose points only place the second stage's crop; the
second stage, whose points ``crct track`` writes, and ``crct align`` stay float32. Only
convolutions and their ReLUs are quantized (a ReLU's output is then the convolution's uint8
output, with no float32 step between); quantizing the additions and concatenations between
them too was about 10% faster but lowered category 1 of the synthetic sequences from 0.712 to
0.687 AUC (docs/benchmarks.md). The operators are recorded in the ranges file, and a graph is
quantized as its file says (files made before ReLUs were quantized say ``["Conv"]``).

A static quantization needs the range of every activation, measured on real inputs. Those
ranges are measured once, on training faces, by ``crct train int8`` and shipped in
``weights/int8.json`` (about 35 KB a network, listed in the manifest like every weight file); the
int8 graph is then made by crct on the user's machine from the float32 graph it exported and
those ranges, once, into the graph cache. Nothing else is needed at run time: no data, no
download.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crct_cli.errors import CrctError

#: The file of activation ranges, in the weights folder.
RANGES_FILE = "int8.json"
#: Its format name, checked on reading.
RANGES_FORMAT = "crct.int8/1"
#: Which weight files get int8 graphs, and the graph part of each (BT: its trunk; its head,
#: the LSTM and the fully-connected layers, has no convolution). ``fll_video.pt``, the
#: tracker's first stage for video, only where a weights folder ships one.
INT8_PARTS: dict[str, str] = {"bt.pt": "features", "fll.pt": "fll", "fll_video.pt": "fll"}
#: Operators ``crct train int8`` quantizes: convolutions and ReLUs (see the module docstring).
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "Relu")
#: Operators a ranges file may name; files that name none are from before this was recorded.
KNOWN_OPS: tuple[str, ...] = ("Conv", "Relu")
LEGACY_OPS: tuple[str, ...] = ("Conv",)


class Unsupported(CrctError):
    """This ONNX Runtime cannot make int8 graphs from stored ranges."""


def supported() -> bool:
    """Whether this ONNX Runtime can quantize from stored ranges (1.2x and later)."""
    try:
        from onnxruntime.quantization import quantize_static
    except ImportError:  # pragma: no cover - onnxruntime without its quantization tools
        return False
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def operators(doc: dict[str, Any]) -> tuple[str, ...]:
    """The operators a ranges file (:func:`read_ranges`) was measured for."""
    ops = tuple(doc.get("quantization", {}).get("operators", LEGACY_OPS))
    unknown = sorted(set(ops) - set(KNOWN_OPS))
    if not ops or unknown:
        raise Unsupported(f"int8 ranges name operators this crct does not quantize: {unknown}")
    return ops


class _PreprocessAdvice(logging.Filter):
    """ONNX Runtime's quantizer advises "pre-processing" on the root logger for every graph:
    advice to whoever builds the graph (crct, once per weight file into the graph cache), not
    to someone tracking a video, whose first run would otherwise print it four times."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _no_preprocess_advice() -> Iterator[None]:
    advice = _PreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _quantize(
    graph: bytes,
    ranges_path: Path,
    feeds: Iterable[dict[str, Any]] | None,
    ops: Iterable[str] = QUANTIZED_OPS,
) -> bytes:
    """``quantize_static`` of ``ops`` in ``graph``: calibrated on ``feeds`` into ``ranges_path``
    when given, else from the ranges already there."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, items: Iterable[dict[str, Any]]) -> None:
            self.items = iter(items)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="crct-int8-") as tmp, _no_preprocess_advice():
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(graph)
        quantize_static(
            str(source),
            str(target),
            None if feeds is None else Reader(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(ops),
            calibration_cache_path=str(ranges_path),
        )
        return target.read_bytes()


def calibrate(
    graph: bytes, feeds: Iterable[dict[str, Any]], ops: Iterable[str] = QUANTIZED_OPS
) -> tuple[dict[str, Any], bytes]:
    """Measure the activation ranges of ``graph`` on ``feeds`` (its input dicts); returns the
    ranges (ONNX Runtime's calibration format) and the int8 graph made from them."""
    with tempfile.TemporaryDirectory(prefix="crct-int8-") as tmp:
        ranges_path = Path(tmp, "ranges.json")
        data = _quantize(graph, ranges_path, feeds, ops)
        return json.loads(ranges_path.read_text(encoding="utf-8")), data


def quantize(graph: bytes, ranges: dict[str, Any], ops: Iterable[str] = LEGACY_OPS) -> bytes:
    """The int8 graph of ``graph`` from stored ``ranges``, measured for ``ops`` (what their file
    names, :func:`operators`). A graph whose tensors the ranges do not name (another exporter)
    raises :class:`Unsupported`, never gives a silently worse graph: the caller runs float32."""
    if not supported():
        raise Unsupported("this onnxruntime cannot quantize from stored ranges; float32 is used")
    names = set(ranges.get("data", {}))
    missing = _conv_inputs(graph) - names
    if not names or missing:
        raise Unsupported(
            f"int8 ranges do not match this graph ({len(missing)} activations without a range)"
        )
    fd, path = tempfile.mkstemp(prefix="crct-int8-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(ranges, fh)
        return _quantize(graph, Path(path), None, ops)
    except ValueError as exc:  # ONNX Runtime: a tensor to quantize without a range
        raise Unsupported(f"int8 ranges do not match this graph ({exc})") from None
    finally:
        os.unlink(path)


def _conv_inputs(graph: bytes) -> set[str]:
    """Names of the activations that feed the graph's convolutions (what needs a range)."""
    import onnx

    model = onnx.load_from_string(graph)
    weights = {init.name for init in model.graph.initializer}
    return {
        node.input[0]
        for node in model.graph.node
        if node.op_type == "Conv" and node.input[0] not in weights
    }


def read_ranges(weights_dir: Path) -> tuple[dict[str, Any], str] | None:
    """The shipped ranges and the file's sha256, when the manifest lists the file; None when it
    does not. A listed file that is missing, altered or unreadable is a :class:`CrctError`."""
    from crct_cli.models.weights import MANIFEST, read_manifest
    from crct_cli.runtime.cache import file_sha256

    entry = read_manifest(weights_dir).get("weights", {}).get(RANGES_FILE)
    if entry is None:
        return None
    path = weights_dir / RANGES_FILE
    if not path.is_file():
        raise CrctError(f"{path} is listed in {weights_dir / MANIFEST} but missing")
    sha = file_sha256(path)
    if sha != entry.get("sha256"):
        raise CrctError(f"{path} is corrupt (sha256 differs from {weights_dir / MANIFEST})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CrctError(f"{path}: unreadable ({exc})") from None
    if doc.get("format") != RANGES_FORMAT:
        raise CrctError(f"{path}: not a {RANGES_FORMAT} file")
    return doc, sha
