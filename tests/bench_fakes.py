"""Builders for the benchmark tests: a generated 300-VW tree and methods with known errors.

Every ground-truth shape has a 30 x 40 landmark box (diagonal exactly 50), so an offset of
(dx, dy) pixels on all 68 points is an NME of hypot(dx, dy) / 50: (3, 4) is 0.1, (0, 1) 0.02.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from crct_cli.bench.methods import FramePrediction, MethodSpec
from crct_cli.io.datasets import VideoSequence
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import Frame
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection

_UNIT = np.random.default_rng(5).uniform(0.0, 1.0, (68, 2))
#: multiples of 1/8 spanning [0, 1]: in a 30 x 40 box every coordinate has at most two
#: decimals, so it survives the 3-decimal .pts format exactly
UNIT = np.round((_UNIT - _UNIT.min(axis=0)) / (_UNIT.max(axis=0) - _UNIT.min(axis=0)) * 8) / 8
SIZE = np.array([30.0, 40.0])


def shape_in(box: np.ndarray) -> np.ndarray:
    """The fixed unit shape stretched into a box: its landmark box is exactly ``box``."""
    box = np.asarray(box, dtype=np.float64)
    return box[:2] + UNIT * box[2:]


def gt_shape(x: float, y: float) -> np.ndarray:
    """Ground truth: the unit shape in a 30 x 40 box at (x, y)."""
    return shape_in(np.array([x, y, *SIZE]))


def seq_gt(seq: int, frame: int) -> np.ndarray:
    """Ground truth of a sequence's frame: it moves one pixel right per frame."""
    return gt_shape(100.0 * seq + frame, 20.0)


def make_sequence(
    make_video: Callable[..., Path],
    root: Path,
    name: str,
    n_frames: int,
    annotated: list[int] | None = None,
    seq: int = 0,
) -> Path:
    """``root/name/vid.mp4`` with ``n_frames`` frames and ``annot/`` for ``annotated`` (from 1)."""
    folder = root / name
    (folder / "annot").mkdir(parents=True, exist_ok=True)
    rel = (folder / "vid.mp4").relative_to(root.parent)
    make_video(str(rel), n_frames=n_frames, width=32, height=24)
    for k in annotated if annotated is not None else range(1, n_frames + 1):
        write_pts(folder / "annot" / f"{k:06d}.pts", seq_gt(seq, k))
    return folder


Offsets = dict[tuple[str, int], tuple[float, float] | None]


class OffsetTracker:
    """A fake video method: ground truth of (sequence, frame) plus a known offset, or None;
    with ``states``, the tracker state it says for each (sequence, frame)."""

    def __init__(
        self,
        offsets: Offsets,
        seq_ids: dict[str, int],
        weight_file: Path | None = None,
        states: dict[tuple[str, int], str] | None = None,
    ):
        self.offsets = offsets
        self.states = states or {}
        self.seq_ids = seq_ids
        self.starts: list[tuple[str, np.ndarray | None]] = []
        self.fed: list[tuple[str, int]] = []
        self.weight_files = {"fake": str(weight_file)} if weight_file is not None else {}
        self.sequence: str | None = None

    def start(self, sequence: VideoSequence, init_box: np.ndarray | None) -> None:
        self.sequence = sequence.name
        self.starts.append((sequence.name, None if init_box is None else init_box.copy()))

    def step(self, frame: Frame) -> FramePrediction:
        assert self.sequence is not None
        number = frame.index + 1
        self.fed.append((self.sequence, number))
        offset = self.offsets.get((self.sequence, number), (0.0, 0.0))
        state = self.states.get((self.sequence, number))
        if offset is None:
            return FramePrediction(None, None, state)
        points = seq_gt(self.seq_ids[self.sequence], number) + np.asarray(offset)
        return FramePrediction(points, box_from_points(points), state)


def tracker_factory(
    per_method: dict[str, Offsets],
    seq_ids: dict[str, int],
    weight_file: Path | None = None,
    states: dict[str, dict[tuple[str, int], str]] | None = None,
) -> tuple[Callable[[MethodSpec], OffsetTracker], dict[str, OffsetTracker]]:
    """A factory for the benchmark and the fakes it made, by method name."""
    made: dict[str, OffsetTracker] = {}

    def factory(spec: MethodSpec) -> OffsetTracker:
        said = (states or {}).get(spec.name)
        made[spec.name] = OffsetTracker(per_method.get(spec.name, {}), seq_ids, weight_file, said)
        return made[spec.name]

    return factory, made


# --------------------------------------------------------------------------------------------
# Still images

GRAY = 200


def make_still_set(root: Path, positions: list[tuple[float, float]]) -> list[Path]:
    """Uniform gray 96 x 96 images ``img_i.png`` with the shape at each position as ``.pts``."""
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (x, y) in enumerate(positions):
        image = root / f"img_{i}.png"
        write_image(image, np.full((96, 96, 3), GRAY, np.uint8))
        write_pts(image.with_suffix(".pts"), gt_shape(x, y))
        images.append(image)
    return images


class OffsetAligner:
    """A fake still-image method: the shape in the given box, moved by the offset of that box
    (keyed by its x) plus ``darkness`` pixels right per gray level below 200, so intensity
    scaling shows up as a known extra error and blur/down-sampling of a uniform image does not.
    """

    def __init__(
        self,
        offsets: dict[int, tuple[float, float]],
        darkness: float = 0.0,
        detections: dict[int, np.ndarray | None] | None = None,
    ) -> None:
        self.offsets = offsets
        self.darkness = darkness
        self.detections = detections or {}
        self.boxes: list[np.ndarray] = []
        self.n_detect = 0

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        box = self.detections.get(self.n_detect % max(1, len(self.detections)))
        self.n_detect += 1
        return [] if box is None else [Detection(box, box, 0.99)]

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        self.boxes.append(np.asarray(box).copy())
        dx, dy = self.offsets.get(int(round(box[0])), (0.0, 0.0))
        dx += self.darkness * (GRAY - float(image.mean()))
        return shape_in(box) + np.array([dx, dy])
