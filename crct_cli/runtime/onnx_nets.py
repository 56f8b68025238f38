"""crct's networks in ONNX Runtime, on numpy batches (see :mod:`crct_cli.runtime` for the API).

Nothing here imports PyTorch: weight files are checked by their sha256 (against the manifest,
as the torch path does), and their graphs come from the cache (:mod:`crct_cli.runtime.cache`);
only a graph that is not cached yet makes :mod:`crct_cli.runtime.export` import torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from crct_cli.errors import CrctError
from crct_cli.runtime.backend import Engine, onnx_threads, threads_shared
from crct_cli.runtime.cache import GraphSet, cached_graphs
from crct_cli.runtime.nets import (
    FinderSpec,
    LocalizerSpec,
    LSTMState,
    TrackerSpec,
    ValidatorSpec,
    mtcnn_weight_file,
    sigmoid,
    zero_state,
)


def session_options(threads: int | None = None, shared: bool = False) -> onnxruntime.SessionOptions:
    """Sequential execution, every graph optimisation; ``threads`` per session (None:
    ``$CRCT_THREADS``, else ONNX Runtime's default, the physical cores). ``shared``: the session
    runs on the process's shared pool (:func:`shared_pool`), whose workers may spin."""
    options = onnxruntime.SessionOptions()
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if shared:  # the pool's size was set once for the process
        options.use_per_session_threads = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    else:
        options.intra_op_num_threads = onnx_threads() if threads is None else threads
        options.inter_op_num_threads = 1
        # with a pool per session, a worker still spinning after one graph's run takes a core
        # from the next graph's, so these workers sleep
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def shared_pool(threads: int | None = None) -> bool:
    """Whether crct's sessions in this process run on one shared pool: once the process is
    crct's own (:func:`crct_cli.runtime.backend.share_threads`), made on first use with
    ``threads`` (None: ``$CRCT_THREADS``, else the physical cores); later sizes are ignored.

    Why: the tracker runs BT, FV and FLL in turn, a few milliseconds each. With a pool per
    session the workers must sleep between graphs (spinning pools take each other's cores), and
    waking them costs something on each of a graph's ~100 operators; one shared pool can spin.
    The whole ``crct track`` command ran about 10% faster here that way (docs/benchmarks.md).
    ONNX Runtime reads the size when it creates its environment, and from then on every session
    of the process must use that pool.
    """
    if not threads_shared():
        return False
    if not _pool_made:
        size = onnx_threads() if threads is None else threads
        onnxruntime.set_global_thread_pool_sizes(size, 1)
        _pool_made.append(size)
    return True


_pool_made: list[int] = []
#: Held while a graph is exported (PyTorch's exporter is not made for threads).
_EXPORTING = threading.RLock()


def pool_made() -> bool:
    """Whether this process already runs ONNX Runtime on the shared pool (see
    :func:`shared_pool`): then no session with a pool of its own can be made in it."""
    return bool(_pool_made)


def providers(engine: Engine) -> list[str]:
    if engine.device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def resolve_weight_file(name_or_path: str | Path, weights_dir: Path) -> Path:
    """As :func:`crct_cli.models.weights.load_weights` resolves a name or a path."""
    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists():
        path = weights_dir / path
    return path


def verified_sha256(path: Path, kind: str) -> str:
    """The file's sha256, after the checks the torch path makes: it exists, and a file named in
    its folder's manifest has the hash recorded there."""
    from crct_cli.models.weights import MANIFEST, check_weights_folder, read_manifest
    from crct_cli.runtime.cache import file_sha256

    if not path.is_file():
        check_weights_folder(path.parent)
        raise CrctError(
            f"weight file {path} is missing; reinstall crct or rebuild it with 'crct train {kind}'"
        )
    sha = file_sha256(path)
    entry = read_manifest(path.parent).get("weights", {}).get(path.name)
    if entry is not None and entry.get("sha256") != sha:
        raise CrctError(
            f"weight file {path} is corrupt (sha256 differs from {path.parent / MANIFEST})"
        )
    return sha


class GraphLoader:
    """Opens the cached graphs of weight files as ONNX Runtime sessions for one engine."""

    def __init__(self, engine: Engine, weights_dir: Path, threads: int | None = None) -> None:
        self.engine = engine
        self.weights_dir = weights_dir
        self.threads = threads
        self.exported: list[str] = []  #: weight files exported by this loader (cache misses)
        shared_pool(threads)  # sized by this engine's threads, before an export makes sessions

    def weight_file(
        self, name_or_path: str | Path, kind: str
    ) -> tuple[dict[str, onnxruntime.InferenceSession], dict[str, Any], str]:
        """Sessions on every graph of a crct weight file, its configuration and its path; a kind
        mismatch is an error."""
        path = resolve_weight_file(name_or_path, self.weights_dir)
        sha = verified_sha256(path, kind)

        def export() -> Any:
            from crct_cli.runtime.export import export_weight_file

            return export_weight_file(path, kind, self.weights_dir)

        sessions, graphs = self._sessions(sha, str(path), export)
        if graphs.kind != kind:
            raise CrctError(f"weight file {path} holds '{graphs.kind}' weights, expected '{kind}'")
        return sessions, graphs.config, str(path)

    def int8_weight_file(
        self, name_or_path: str | Path, kind: str
    ) -> tuple[dict[str, onnxruntime.InferenceSession], dict[str, Any], str] | None:
        """Sessions on the int8 graph of a weight file (:mod:`crct_cli.runtime.int8`), its
        configuration and path; None when there is none for it: not BT or FLL's first stage,
        not the CPU, no ranges shipped for this very file, or an ONNX Runtime too old."""
        from crct_cli.runtime import int8
        from crct_cli.runtime.cache import Exported, sha256_bytes

        path = resolve_weight_file(name_or_path, self.weights_dir)
        part = int8.INT8_PARTS.get(path.name)
        if part is None or self.engine.device != "cpu":
            return None
        found = int8.read_ranges(path.parent)
        if found is None:
            return None
        doc, ranges_sha = found
        sha = verified_sha256(path, kind)
        net = doc.get("networks", {}).get(path.name)
        if net is None or net.get("weights_sha256") != sha:
            return None  # ranges of another version of this file

        def export_fp32() -> Any:
            from crct_cli.runtime.export import export_weight_file

            return export_weight_file(path, kind, self.weights_dir)

        def export() -> Any:
            fp32 = cached_graphs(sha, str(path), export_fp32)  # what the int8 graph is made from
            parts = {
                name: source if isinstance(source, bytes) else Path(source).read_bytes()
                for name, source in fp32.graphs.items()
            }
            ops = int8.operators(doc)
            parts[part] = int8.quantize(parts[part], net["ranges"], ops)  # the rest: float32
            return Exported(kind, fp32.config, parts)

        key = sha256_bytes(f"{sha}:{ranges_sha}:int8".encode())
        try:
            sessions, graphs = self._sessions(key, f"{path} (int8)", export)
        except int8.Unsupported:  # an ONNX Runtime that cannot quantize: float32 it is
            return None
        return sessions, graphs.config, str(path)

    def mtcnn(self, net: str) -> tuple[onnxruntime.InferenceSession, str]:
        """A session on one of MTCNN's networks (facenet-pytorch's weights) and the file's path."""
        from crct_cli.runtime.cache import file_sha256

        path = mtcnn_weight_file(net)

        def export() -> Any:
            from crct_cli.runtime.export import export_mtcnn

            return export_mtcnn(net)

        sessions, _ = self._sessions(file_sha256(path), str(path), export)
        return sessions[net], str(path)

    def _sessions(
        self, sha: str, source: str, export: Callable[[], Any]
    ) -> tuple[dict[str, onnxruntime.InferenceSession], GraphSet]:
        """Open every graph; a cached graph that ONNX Runtime cannot read is exported again.
        Sessions may open in several threads at once (``Runtime.load_together``), exports
        one at a time."""

        def one_export_at_a_time() -> Any:
            with _EXPORTING:
                return export()

        graphs = cached_graphs(sha, source, one_export_at_a_time)
        try:
            sessions = {part: self._open(g) for part, g in graphs.graphs.items()}
        except Exception:  # ORT raises its own (unexported) error types for a bad model
            if graphs.exported:
                raise
            graphs = cached_graphs(sha, source, one_export_at_a_time, rebuild=True)
            sessions = {part: self._open(g) for part, g in graphs.graphs.items()}
        if graphs.exported:
            self.exported.append(source)
        return sessions, graphs

    def _open(self, source: Path | bytes) -> onnxruntime.InferenceSession:
        model = source if isinstance(source, bytes) else str(source)
        return onnxruntime.InferenceSession(
            model,
            session_options(self.threads, shared_pool(self.threads)),
            providers=providers(self.engine),
        )


# ------------------------------------------------------------------------------- networks


class OnnxLocalizer:
    """FLL or its second stage: uint8 crops (N, S, S, 3) -> (N, 68, 2) crop units (float32)."""

    def __init__(self, session: onnxruntime.InferenceSession, config: LocalizerSpec) -> None:
        self.session = session
        self.config = config

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 68, 2), np.float32)
        return self.session.run(None, {"crops": np.ascontiguousarray(crops, np.uint8)})[0]


class OnnxFinder:
    """The face finder: uint8 windows (N, S, S, 3) -> (logits, boxes), float32."""

    def __init__(self, session: onnxruntime.InferenceSession, config: FinderSpec) -> None:
        self.session = session
        self.config = config

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, boxes = self.session.run(None, {"windows": np.ascontiguousarray(windows, np.uint8)})
        return logits, boxes


class OnnxTracker:
    """BT: (prev crops, cur crops, state or None) -> (points in crop units, new state); or in
    two steps, :meth:`features` of crops and :meth:`head` on two crops' features."""

    def __init__(
        self,
        features: onnxruntime.InferenceSession,
        head: onnxruntime.InferenceSession,
        config: TrackerSpec,
    ) -> None:
        self.features_session, self.head_session = features, head
        self.config = config

    def features(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S, 3) -> (N, F) float32."""
        feed = {"crops": np.ascontiguousarray(crops, np.uint8)}
        return self.features_session.run(None, feed)[0]

    def head(
        self, prev: np.ndarray, cur: np.ndarray, state: LSTMState | None = None
    ) -> tuple[np.ndarray, LSTMState]:
        """Both crops' features -> (points in crop units, new state)."""
        h, c = zero_state(self.config, len(prev)) if state is None else state
        points, h1, c1 = self.head_session.run(
            None,
            {
                "prev": np.ascontiguousarray(prev, np.float32),
                "cur": np.ascontiguousarray(cur, np.float32),
                "h0": np.ascontiguousarray(h, np.float32),
                "c0": np.ascontiguousarray(c, np.float32),
            },
        )
        return points, (h1, c1)

    def __call__(
        self, prev: np.ndarray, cur: np.ndarray, state: LSTMState | None = None
    ) -> tuple[np.ndarray, LSTMState]:
        feats = self.features(np.concatenate([prev, cur]))
        return self.head(feats[: len(prev)], feats[len(prev) :], state)


class OnnxValidator:
    """FV: (uint8 crops, points in crop pixels) -> logits (N,); ``probabilities`` applies the
    sigmoid."""

    def __init__(self, session: onnxruntime.InferenceSession, config: ValidatorSpec) -> None:
        self.session = session
        self.config = config

    def logits(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray:
        feed = {
            "crops": np.ascontiguousarray(crops, np.uint8),
            "points": np.ascontiguousarray(points, np.float32),
        }
        return self.session.run(None, feed)[0]

    def probabilities(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(crops, points))

    __call__ = probabilities


@dataclass
class OnnxIIDNets:
    """FADeNN's IID as graphs: the noise classifier (S, M) and the DAEs it routes to."""

    variant: str
    pass_through: tuple[int, ...]
    classifier: onnxruntime.InferenceSession | None
    daes: dict[int, onnxruntime.InferenceSession]  #: class -> DAE; variant d: {0: its DAE}

    def logits(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W, 3), sides multiples of 16 -> class logits (N, 5)."""
        if self.classifier is None:
            raise ValueError("FADeNN-D has no noise classifier")
        return self.classifier.run(None, {"crops": np.ascontiguousarray(crops, np.uint8)})[0]

    def dae(self, cls: int, x: np.ndarray) -> np.ndarray:
        """float (N, 3, H, W) in [0, 1], sides multiples of 16 -> cleaned (clamped to [0, 1])."""
        return self.daes[cls].run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]


class OnnxMTCNNNets:
    """MTCNN's P-, R- and O-nets on float (N, 3, H, W) input, scaled as facenet-pytorch does.

    Each returns (box regression, face probabilities (N, 2, ...)) like facenet's modules
    (O-net's landmarks are left out: crct does not use them).
    """

    def __init__(self, pnet: Any, rnet: Any, onet: Any) -> None:
        self.sessions = {"pnet": pnet, "rnet": rnet, "onet": onet}

    def _run(self, net: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        session = self.sessions[net]
        outputs = ["reg", "prob"]
        reg, prob = session.run(outputs, {"x": np.ascontiguousarray(x, np.float32)})
        return reg, prob

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("pnet", x)

    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("rnet", x)

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("onet", x)
