"""What both backends share, without importing either: network specs and the LSTM state.

The specs carry what the code around a network needs to cut its crops (size, context) and
nothing more; the torch path's own config dataclasses (``FLLConfig``, ``BTConfig``,
``FVConfig``) have the same fields, so either can be passed where a spec is expected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crct_cli import geometry
from crct_cli.errors import CrctError, option_error
from crct_cli.landmarks import box_from_points

#: BT's LSTM state: (h, c), each float32 (layers, N, hidden), one column per face.
LSTMState = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LocalizerSpec:
    """FLL's crop: ``input_size`` px around ``context`` x the box side (eye-levelled when
    ``upright``: the second stage)."""

    input_size: int = 112
    context: float = 1.35
    upright: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LocalizerSpec:
        m = config["model"]
        return cls(int(m["input_size"]), float(m["context"]), bool(m.get("upright", False)))


@dataclass(frozen=True)
class TrackerSpec:
    """BT's crops (both cut at the previous box) and its LSTM's shape."""

    input_size: int = 128
    context: float = 2.0
    lstm_layers: int = 2
    hidden: int = 256

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrackerSpec:
        m = config["model"]
        return cls(
            int(m["input_size"]), float(m["context"]), int(m["lstm_layers"]), int(m["hidden"])
        )


@dataclass(frozen=True)
class ValidatorSpec:
    """FV's crop (see :func:`fv_crop`, which takes this spec or ``FVConfig`` as its config)."""

    crop_size: int = 64
    context: float = 2.0
    patch: int = 8

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ValidatorSpec:
        m = config["model"]
        return cls(int(m["crop_size"]), float(m["context"]), int(m["patch"]))


@dataclass(frozen=True)
class FinderSpec:
    """The face finder's window (``crct_cli.models.finder.FinderConfig``, without torch)."""

    input_size: int = 96
    window: float = 3.0
    stride: int = 4

    @property
    def grid(self) -> int:
        return self.input_size // self.stride

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FinderSpec:
        m = config["model"]
        return cls(int(m["input_size"]), float(m["window"]))


#: The finder's answer is kept at this score or more (its cell and the eight around it).
FINDER_MIN_SCORE = 0.5

#: ``crct track --find-wide``'s default: where the finder's window holds no face, it looks
#: again at a window this many times as wide (docs/benchmarks.md, session 32); 0: no second look.
FINDER_WIDE = 2.0


def check_find_wide(value: float, error: type[Exception] = ValueError) -> None:
    """``--find-wide`` is 0 (no second look) or a window from 1.25 to 4 times the usual."""
    if not (value == 0.0 or 1.25 <= value <= 4.0):
        raise option_error(
            error, "find_wide", f"must be 0 (no second look) or from 1.25 to 4, got {value}"
        )


class Finder(Protocol):
    """The face finder on either backend."""

    config: Any  #: has ``input_size``, ``window``, ``grid``

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 windows (N, S, S, 3) -> (logits (N, G*G + 1), boxes (N, G*G, 4))."""
        ...


def last_box_side(box: np.ndarray) -> float:
    """The side the finder measures a last box (x, y, w, h) by: sqrt(w * h)."""
    return float(np.sqrt(max(float(box[2] * box[3]), 1e-6)))


def finder_window(
    image: np.ndarray, box: np.ndarray, config: Any, wide: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The finder's input around a last box (x, y, w, h): ``config.window`` times its side
    (:func:`last_box_side`) about its centre, black beyond the frame; ``wide`` times that
    window at the same scale (:func:`wide_size` pixels; the network is convolutional).
    Returns (uint8 window, matrix)."""
    centre = box[:2] + box[2:] / 2
    size = wide_size(config, wide)
    side = last_box_side(box) * config.window * size / config.input_size
    m = geometry.crop_matrix(centre, side, size)
    return geometry.warp(image, m, size), m


def wide_size(config: Any, wide: float) -> int:
    """Pixels of a window ``wide`` times the usual one, read at its scale: a whole number of
    grid cells (``config.stride`` pixels each)."""
    cells = max(1, round(config.input_size * wide / config.stride))
    return int(cells * config.stride)


def decode_finder(
    logits: np.ndarray, boxes: np.ndarray, config: Any, grid: int | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """One window's answer -> (score, centre in window units 0-1, (w, h) in last-box sides).

    The score is the probability of the best cell and its eight neighbours (a centre near a
    cell's edge splits between cells); 0 when "not in this window" is likelier than that.
    ``grid``: cells along a side of a wider window than ``config``'s (``wide_size``)."""
    g = config.grid if grid is None else grid
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    cells = p[:-1].reshape(g, g)
    row, col = np.unravel_index(int(np.argmax(cells)), cells.shape)
    score = float(cells[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2].sum())
    if p[-1] >= score:
        score = 0.0
    d = np.asarray(boxes[row * g + col], np.float64)
    centre = (np.array([col, row], dtype=np.float64) + np.clip(d[:2], 0.0, 1.0)) / g
    return score, centre, np.exp(np.clip(d[2:], -2.0, 2.0))


def find_faces(
    finder: Finder,
    image: np.ndarray,
    boxes: np.ndarray,
    min_score: float = FINDER_MIN_SCORE,
    wide: float = FINDER_WIDE,
) -> list[list[Any]]:
    """For each last box (N, 4), the face the finder sees around it: a list of at most one
    :class:`~crct_cli.tracking.detector.Detection` (its landmark box, in frame pixels).

    ``wide`` (0: none): where the usual window holds no face, a second look at a window that
    many times as wide, at the same scale (a face that went further in a fast burst)."""
    out = _look(finder, image, boxes, min_score, 1.0)
    if wide > 1.0:
        empty = [i for i, found in enumerate(out) if not found]
        if empty:
            further = _look(finder, image, np.asarray(boxes)[empty], min_score, wide)
            for i, found in zip(empty, further, strict=True):
                out[i] = found
    return out


def _look(
    finder: Finder, image: np.ndarray, boxes: np.ndarray, min_score: float, wide: float
) -> list[list[Any]]:
    """One look of the finder around each last box, at ``wide`` times its usual window."""
    from crct_cli.tracking.detector import Detection

    if len(boxes) == 0:
        return []
    cfg = finder.config
    size = wide_size(cfg, wide)
    cut = [finder_window(image, np.asarray(b, np.float64), cfg, wide) for b in boxes]
    logits, cells = finder(np.stack([w for w, _ in cut]))
    out: list[list[Any]] = []
    for box, (_, m), lg, cl in zip(boxes, cut, logits, cells, strict=True):
        score, centre, size_wh = decode_finder(lg, cl, cfg, size // cfg.stride)
        if score < min_score:
            out.append([])
            continue
        where = geometry.apply(geometry.invert(m), (centre * size)[None])[0]
        wh = size_wh * last_box_side(box)
        found = np.array([*(where - wh / 2), *wh], dtype=np.float64)
        out.append([Detection(found, found.copy(), score)])
    return out


class Localizer(Protocol):
    """FLL or its second stage on either backend."""

    config: Any  #: has ``input_size``, ``context``, ``upright``

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S, 3) -> float32 (N, 68, 2) in crop units (centre 0, side 1)."""
        ...


class Tracker(Protocol):
    """BT on either backend."""

    config: Any  #: has ``input_size``, ``context``, ``lstm_layers``, ``hidden``

    def __call__(
        self, prev: np.ndarray, cur: np.ndarray, state: LSTMState | None = None
    ) -> tuple[np.ndarray, LSTMState]: ...


class Validator(Protocol):
    """FV on either backend."""

    config: Any  #: has ``crop_size``, ``context``, ``patch``

    def logits(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray: ...

    def probabilities(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray: ...


def zero_state(spec: Any, n: int) -> LSTMState:
    """The state BT starts from (PyTorch's default for ``state=None``)."""
    shape = (spec.lstm_layers, n, spec.hidden)
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def stack_states(states: Sequence[LSTMState | None], spec: Any) -> LSTMState | None:
    """Per-face states (each (layers, 1, hidden) pairs, or None for a reset face) as one batch,
    in order; None when every face is reset."""
    if all(s is None for s in states):
        return None
    zero_h, zero_c = zero_state(spec, 1)
    h = np.concatenate([zero_h if s is None else s[0] for s in states], axis=1)
    c = np.concatenate([zero_c if s is None else s[1] for s in states], axis=1)
    return h, c


def split_state(state: LSTMState) -> list[LSTMState]:
    """A batch state back into per-face states, (layers, 1, hidden) each."""
    h, c = state
    return [(h[:, i : i + 1], c[:, i : i + 1]) for i in range(h.shape[1])]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function, as ``torch.sigmoid``."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def fv_crop(image: np.ndarray, points: np.ndarray, config: Any) -> tuple[np.ndarray, np.ndarray]:
    """FV's input: the crop around the points' box (``config``: a :class:`ValidatorSpec` or
    ``FVConfig``); returns (uint8 crop, points in crop pixels)."""
    center, side = geometry.box_center_size(box_from_points(points))
    m = geometry.crop_matrix(center, side * config.context, config.crop_size)
    return geometry.warp(image, m, config.crop_size), geometry.apply(m, points)


def mtcnn_weight_file(net: str) -> Path:
    """facenet-pytorch's ``pnet.pt`` / ``rnet.pt`` / ``onet.pt``, found without importing it
    (importing facenet-pytorch imports torchvision)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        raise CrctError("MTCNN needs the facenet-pytorch package (pip install facenet-pytorch)")
    path = Path(spec.origin).parent / "data" / f"{net}.pt"
    if not path.is_file():
        raise CrctError(f"MTCNN weight file {path} is missing; reinstall facenet-pytorch")
    return path
