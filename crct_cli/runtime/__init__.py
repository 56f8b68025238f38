"""One place that decides how crct's networks run: PyTorch or ONNX Runtime, CPU or CUDA.

``--backend auto|torch|onnx`` (auto: ONNX Runtime on the CPU, PyTorch on CUDA) and
``--device auto|cpu|cuda`` resolve to an :class:`Engine`; a :class:`Runtime` then loads every
network for that engine behind one numpy interface, the same on both backends. On the ONNX
backend the graphs are exported by crct from the shipped weights at first use and cached by the
weights' sha256 (:mod:`crct_cli.runtime.cache`); once cached, neither torch, torchvision nor
facenet-pytorch is imported. Importing this package imports neither backend.

How to call each network (``rt = Runtime(backend, device, weights_dir)``; all arrays numpy,
crops RGB uint8 (N, S, S, 3), one row per face; every call takes any N >= 1)::

    # FLL (as crct align / the tracker use it, with second stage, flip, blend, FADeNN):
    aligner, denoiser, files = rt.aligner(denoise="none", config=AlignConfig())
    points = aligner(image, boxes)           # boxes (N, 4) x, y, w, h -> (N, 68, 2) pixels
    # denoiser: FADeNN's crop denoiser (None for "none"); set denoiser.smoother =
    # ClassSmoother(0.8) for one tracked face (ClassSmoother: crct_cli.runtime.iid)

    # FLL alone (either stage): crops cut with rt.localizer().config (input_size, context)
    fll = rt.localizer()                     # rt.stage2() -> second stage or None
    units = fll(crops)                       # (N, 68, 2) float32, crop units (centre 0, side 1)
    pixels = (units + 0.5) * fll.config.input_size

    # BT, exactly what CRCTNetworks.bt_step computed, for N faces at once:
    bt = rt.tracker()                        # bt.config: input_size 128, context 2.0, ...
    for each face i: m_i = geometry.crop_matrix(center_i, side_i * bt.config.context,
                                                bt.config.input_size)  # box_center_size(box_i)
    prev = np.stack([geometry.warp(prev_image, m_i, bt.config.input_size) for i])
    cur = np.stack([geometry.warp(cur_image, m_i, bt.config.input_size) for i])
    units, state = bt(prev, cur, state)      # state: (h, c) or None (= zeros, a reset)
    # or in two steps, as CRCTNetworks.bt_batch runs it (a crop's features can serve twice):
    # units, state = bt.head(bt.features(prev), bt.features(cur), state)
    # h, c: float32 (layers 2, N, hidden 256), column i = face i; per-face states:
    # split_state(state) -> [(h_i, c_i)], stack_states([s_i or None], bt.config) -> (h, c)/None
    points_i = geometry.apply(geometry.invert(m_i), (units[i] + 0.5) * bt.config.input_size)

    # FV, exactly what CRCTNetworks.validate computed:
    fv = rt.validator()
    crop_i, pts_i = fv_crop(image, points_i, fv.config)   # crct_cli.runtime.nets.fv_crop
    p = fv.probabilities(np.stack(crops), np.stack(pts))  # (N,) float32 p(face)
    # fv.logits(...) gives the logits

    # MTCNN (facenet-pytorch on torch; numpy + ONNX graphs on onnx):
    detect = rt.detector()                   # detect(image) -> list[Detection], best first

``rt.weight_files`` maps each loaded network's role to its weight file (for results.json);
``Runtime(..., threads=T)`` sets ONNX Runtime's threads per network (default ``$CRCT_THREADS``,
else one per physical core); ``rt.exported`` lists the weight files whose graphs had to be
exported by this runtime (a cold cache).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crct_cli.runtime.backend import BACKENDS, Engine, resolve_engine
from crct_cli.runtime.nets import (
    FinderSpec,
    LocalizerSpec,
    LSTMState,
    TrackerSpec,
    ValidatorSpec,
    split_state,
    stack_states,
    zero_state,
)

__all__ = [
    "BACKENDS",
    "Engine",
    "LSTMState",
    "LocalizerSpec",
    "Runtime",
    "TrackerSpec",
    "ValidatorSpec",
    "resolve_engine",
    "split_state",
    "stack_states",
    "zero_state",
]


#: Network roles (``Runtime.weight_files`` keys), in the order :attr:`Runtime.int8` lists them.
ROLES: tuple[str, ...] = ("fll", "fll_stage2", "fadenn", "iid", "bt", "fv", "finder")


class Runtime:
    """The shipped networks on one engine, loaded on request (see the module docstring)."""

    def __init__(
        self,
        backend: str = "auto",
        device: Any = "auto",
        weights_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        """``threads``: ONNX Runtime's threads per network (None: ``$CRCT_THREADS``, else its
        default, the physical cores); the torch backend keeps ``torch.set_num_threads``."""
        self.engine = resolve_engine(backend, device)
        self.threads = threads
        self._weights_dir = None if weights_dir is None else Path(weights_dir)
        self.weight_files: dict[str, str] = {}
        self.int8: list[str] = []  #: roles running int8 graphs (crct_cli.runtime.int8)
        self._loader: Any = None

    @classmethod
    def for_engine(
        cls, engine: Engine, weights_dir: Path | None = None, threads: int | None = None
    ) -> Runtime:
        return cls(engine.backend, engine.device, weights_dir, threads)

    @property
    def backend(self) -> str:
        return self.engine.backend

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def weights_dir(self) -> Path:
        from crct_cli.models import weights

        return weights.WEIGHTS_DIR if self._weights_dir is None else self._weights_dir

    @property
    def exported(self) -> list[str]:
        """Weight files whose graphs this runtime exported (not found in the cache)."""
        return [] if self._loader is None else list(self._loader.exported)

    def load_together(self, *loads: Callable[[], Any]) -> list[Any]:
        """Run several of this runtime's loading calls at once (``lambda: rt.tracker()``, ...);
        their results, in order.

        ONNX Runtime builds a session outside the GIL, and ``crct track`` opens eight of them
        before its first frame: in threads they open in about 0.6 of the time on two cores
        (docs/benchmarks.md). Exports for a cold cache still run one at a time. The torch
        backend loads in turn. :attr:`int8` lists roles in a fixed order either way."""
        if self.backend != "onnx" or len(loads) < 2:
            results = [load() for load in loads]
        else:
            from concurrent.futures import ThreadPoolExecutor

            from crct_cli.runtime.onnx_nets import shared_pool

            self._graphs()
            shared_pool(self.threads)  # the process's pool, if any, before any session
            with ThreadPoolExecutor(len(loads), thread_name_prefix="crct-load") as pool:
                futures = [pool.submit(load) for load in loads]
                results = [f.result() for f in futures]
        self.int8.sort(key=lambda role: ROLES.index(role) if role in ROLES else len(ROLES))
        return results

    def _graphs(self) -> Any:
        if self._loader is None:
            from crct_cli.runtime.onnx_nets import GraphLoader

            self._loader = GraphLoader(self.engine, self.weights_dir, self.threads)
        return self._loader

    def _onnx(
        self, name: str | Path, kind: str, role: str, int8: bool = False
    ) -> tuple[dict[str, Any], dict]:
        found = self._graphs().int8_weight_file(name, kind) if int8 else None
        if found is not None:
            self.int8.append(role)
        sessions, config, path = found or self._graphs().weight_file(name, kind)
        self.weight_files[role] = path
        return sessions, config

    def _blob(self, name: str | Path, kind: str, role: str) -> dict[str, Any]:
        from crct_cli.models.weights import load_weights

        blob = load_weights(name, kind, self.weights_dir)
        self.weight_files[role] = blob["path"]
        return blob

    # ----------------------------------------------------------------------- networks

    def localizer(self, name: str | Path = "fll.pt", role: str = "fll", int8: bool = False) -> Any:
        """FLL (or any ``fll`` weight file): uint8 crops -> (N, 68, 2) crop units. ``int8``: its
        int8 graph where there is one (ONNX Runtime on the CPU, :mod:`crct_cli.runtime.int8`)."""
        if self.backend == "onnx":
            from crct_cli.runtime.onnx_nets import OnnxLocalizer

            sessions, config = self._onnx(name, "fll", role, int8)
            return OnnxLocalizer(sessions["fll"], LocalizerSpec.from_config(config))
        from crct_cli.models.backbone import fuse_batchnorm
        from crct_cli.models.fll import load_localizer
        from crct_cli.runtime.torch_nets import TorchLocalizer

        model = fuse_batchnorm(load_localizer(self._blob(name, "fll", role)))
        return TorchLocalizer(model, self.device)

    def stage2(self) -> Any:
        """FLL's second stage when the manifest lists it, else None (a listed file that is
        missing or corrupt is an error, never a silent fallback)."""
        from crct_cli.aligner import STAGE2_FILE
        from crct_cli.models.weights import read_manifest

        if STAGE2_FILE not in read_manifest(self.weights_dir).get("weights", {}):
            return None
        return self.localizer(self.weights_dir / STAGE2_FILE, "fll_stage2")

    def fadenn(self, variant: str) -> tuple[Any, Any]:
        """FADeNN-``variant`` (``fadenn_<v>.pt``): its FLL and its crop denoiser."""
        from crct_cli.runtime.iid import CropIID, fadenn_file

        name = fadenn_file(variant)
        if self.backend == "onnx":
            from crct_cli.runtime.onnx_nets import OnnxLocalizer

            sessions, config = self._onnx(name, "fadenn", "fadenn")
            localizer = OnnxLocalizer(sessions["fll"], LocalizerSpec.from_config(config))
            return localizer, CropIID(self._iid_graphs(sessions, config))
        from crct_cli.models.backbone import fuse_batchnorm
        from crct_cli.models.fadenn import CropDenoiser, load_fadenn
        from crct_cli.runtime.torch_nets import TorchLocalizer

        model = load_fadenn(self._blob(name, "fadenn", "fadenn"))
        denoiser = CropDenoiser(model.iid, self.device)
        return TorchLocalizer(fuse_batchnorm(model.fll), self.device), denoiser

    def iid_graphs(self, name: str | Path) -> Any:
        """A stand-alone IID weight file (``crct denoise``) as ONNX graphs (onnx backend)."""
        assert self.backend == "onnx", "the torch backend loads IIDs with models.fadenn.load_iid"
        sessions, config = self._onnx(name, "iid", "iid")
        return self._iid_graphs(sessions, config)

    @staticmethod
    def _iid_graphs(sessions: dict[str, Any], config: dict[str, Any]) -> Any:
        from crct_cli.runtime.iid import pass_through_classes
        from crct_cli.runtime.onnx_nets import OnnxIIDNets

        cfg = config["iid"]
        if cfg["variant"] == "d":
            daes = {0: sessions["dae"]}
        else:
            daes = {int(p[3:]): s for p, s in sessions.items() if p.startswith("dae")}
        return OnnxIIDNets(
            cfg["variant"], pass_through_classes(cfg), sessions.get("classifier"), daes
        )

    def tracker(self, name: str | Path = "bt.pt", int8: bool = False) -> Any:
        """BT: (prev crops, cur crops, (h, c) or None) -> (crop units, (h, c)). ``int8``: its
        int8 graph where there is one (as :meth:`localizer`)."""
        if self.backend == "onnx":
            from crct_cli.runtime.onnx_nets import OnnxTracker

            sessions, config = self._onnx(name, "bt", "bt", int8)
            spec = TrackerSpec.from_config(config)
            return OnnxTracker(sessions["features"], sessions["head"], spec)
        from crct_cli.models.backbone import fuse_batchnorm
        from crct_cli.models.bt import load_tracker
        from crct_cli.runtime.torch_nets import TorchTracker

        model = fuse_batchnorm(load_tracker(self._blob(name, "bt", "bt")))
        return TorchTracker(model, self.device)

    def validator(self, name: str | Path = "fv.pt") -> Any:
        """FV: (uint8 crops, points in crop pixels) -> probabilities / logits (N,)."""
        if self.backend == "onnx":
            from crct_cli.runtime.onnx_nets import OnnxValidator

            sessions, config = self._onnx(name, "fv", "fv")
            return OnnxValidator(sessions["fv"], ValidatorSpec.from_config(config))
        from crct_cli.models.fv import load_validator
        from crct_cli.runtime.torch_nets import TorchValidator

        return TorchValidator(load_validator(self._blob(name, "fv", "fv")), self.device)

    def finder(self, name: str | Path = "finder.pt") -> Any:
        """The face finder: uint8 windows -> (cell logits, cell boxes); see
        :func:`crct_cli.runtime.nets.find_faces` for its use."""
        if self.backend == "onnx":
            from crct_cli.runtime.onnx_nets import OnnxFinder

            sessions, config = self._onnx(name, "finder", "finder")
            return OnnxFinder(sessions["finder"], FinderSpec.from_config(config))
        from crct_cli.models.finder import load_finder
        from crct_cli.runtime.torch_nets import TorchFinder

        return TorchFinder(load_finder(self._blob(name, "finder", "finder")), self.device)

    def detector(self, min_face: int | str = 20) -> Any:
        """MTCNN: RGB uint8 image -> list of ``Detection``, most confident first."""
        from crct_cli.runtime.nets import mtcnn_weight_file
        from crct_cli.tracking.detector import FaceDetector, MTCNNDetector

        nets = ("pnet", "rnet", "onet")
        if self.backend == "torch":
            for net in nets:
                self.weight_files[f"mtcnn-{net}"] = str(mtcnn_weight_file(net))
            return FaceDetector(self.device, min_face)
        from crct_cli.runtime.onnx_nets import OnnxMTCNNNets

        sessions = []
        for net in nets:
            session, path = self._graphs().mtcnn(net)
            self.weight_files[f"mtcnn-{net}"] = path
            sessions.append(session)
        return MTCNNDetector(OnnxMTCNNNets(*sessions), min_face)

    def aligner(
        self, denoise: str = "none", config: Any = None, int8: bool = False, video: bool = False
    ) -> tuple[Any, Any, dict]:
        """The shipped aligner (FLL, or FADeNN's with ``denoise`` d, s or m; with the second
        stage when shipped), its crop denoiser (or None) and the weight files by role.
        ``int8``: FLL's first stage on its int8 graph where there is one (the tracker's use:
        its points only place the second stage's crop). ``video``: the first stage trained
        on smeared faces too (:data:`~crct_cli.aligner.VIDEO_FLL_FILE`) when the manifest
        lists one, else ``fll.pt``."""
        from crct_cli.aligner import VIDEO_FLL_FILE, Aligner, check_denoise
        from crct_cli.models.weights import read_manifest

        check_denoise(denoise)
        refiner = self.stage2()
        if denoise == "none":
            listed = read_manifest(self.weights_dir).get("weights", {})
            first = VIDEO_FLL_FILE if video and VIDEO_FLL_FILE in listed else "fll.pt"
            model, denoiser = self.localizer(first, int8=int8), None
        else:
            model, denoiser = self.fadenn(denoise)
        aligner = Aligner(model, self.device, config, denoiser=denoiser, refiner=refiner)
        roles = ("fll", "fll_stage2", "fadenn")
        return aligner, denoiser, {r: self.weight_files[r] for r in roles if r in self.weight_files}
