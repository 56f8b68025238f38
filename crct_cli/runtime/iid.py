"""FADeNN's internal image denoiser (IID) around ONNX graphs, in numpy.

:class:`CropIID` is :class:`crct_cli.models.fadenn.CropDenoiser` without PyTorch (what
``Aligner(denoiser=...)`` takes on the ONNX backend) and :class:`OnnxImageDenoiser` is
:class:`crct_cli.denoise.ImageDenoiser` likewise (``crct denoise --backend onnx``). Both take
the same decisions with the same arithmetic: uint8 -> float / 255, replicate padding to a
multiple of 16, the classifier's arg-max (or the smoothed soft-max), the class's DAE, rounding
back to uint8, and the untouched bytes for a pass-through class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from crct_cli.noise import NOISE_TYPES

#: Class names of the noise classifier, index = class (``crct_cli.models.fadenn`` uses these).
CLASS_NAMES: tuple[str, ...] = ("clean", *NOISE_TYPES)
#: FADeNN's variants: one DAE (d), single-task (s) or multi-task (m) classifier + a DAE per class.
VARIANTS: tuple[str, ...] = ("d", "s", "m")


def iid_file(variant: str) -> str:
    """Shipped file of the stand-alone IID (``crct denoise``)."""
    return f"iid_{variant}.pt"


def fadenn_file(variant: str) -> str:
    """Shipped file of IID + FLL fine-tuned together (``--denoise`` in align and track)."""
    return f"fadenn_{variant}.pt"


#: The DAEs' padding multiple: 2 ** (levels - 1) with the shipped five levels.
PAD_FACTOR = 16
#: The crop the noise classifier was trained on (``crct_cli.train.iid.noisy_crop_pair``): the
#: square of the face's landmark box, its side times this context, at this many pixels ...
CROP_SIZE = 112
CROP_CONTEXT = 1.35
#: ... cut from the face at most this large (landmark-box side, px): ``crct train iid`` reads its
#: training faces shrunk to it, so a larger face is shrunk to it first (INTER_AREA), as they were.
TRAIN_MAX_FACE = 220.0


@dataclass
class ClassSmoother:
    """Exponential average of the class probabilities over a video's frames.

    Footage degrades slowly, but a frame-by-frame decision near a class boundary flips between
    clean and a DAE, and the output flickers with it. ``keep`` is the weight of the history
    (0: no smoothing; 0.8: a window of about five frames).
    """

    keep: float = 0.8
    state: np.ndarray | None = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        if self.state is None:
            self.state = probs
        else:
            self.state = self.keep * self.state + (1.0 - self.keep) * probs
        return self.state


def pass_through_classes(iid_config: dict[str, Any]) -> tuple[int, ...]:
    """Clean (0) and the ``untouched`` classes of an IID's saved configuration."""
    return (0, *(CLASS_NAMES.index(c) for c in iid_config.get("untouched", ())))


class IIDGraphs(Protocol):
    variant: str
    pass_through: tuple[int, ...]

    def logits(self, crops: np.ndarray) -> np.ndarray: ...

    def dae(self, cls: int, x: np.ndarray) -> np.ndarray: ...


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), rounded half to even (as torch)."""
    out = np.round(np.clip(x.astype(np.float32), 0, 1) * np.float32(255.0))
    return np.ascontiguousarray(out.astype(np.uint8).transpose(0, 2, 3, 1))


def pad_images(x: np.ndarray, factor: int = PAD_FACTOR, channels_last: bool = False) -> np.ndarray:
    """Replicate-pad the bottom and right edges to multiples of ``factor`` (as the DAEs do)."""
    hw = (1, 2) if channels_last else (2, 3)
    ph, pw = (-x.shape[hw[0]]) % factor, (-x.shape[hw[1]]) % factor
    if not (ph or pw):
        return x
    widths = [(0, 0)] * x.ndim
    widths[hw[0]], widths[hw[1]] = (0, ph), (0, pw)
    return np.pad(x, widths, mode="edge")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def run_dae(graphs: IIDGraphs, cls: int, x: np.ndarray) -> np.ndarray:
    """One DAE on float (N, 3, H, W) of any size: padded, cleaned, cut back."""
    h, w = x.shape[-2:]
    return graphs.dae(cls, pad_images(x))[..., :h, :w]


class CropIID:
    """An IID applied to uint8 crops (N, S, S, 3), batched; the ONNX twin of ``CropDenoiser``.

    Crops the classifier calls clean (or an ``untouched`` class) are returned as the very same
    bytes. ``last_classes`` keeps the classes of the latest call (``None`` for D). With a
    ``smoother`` (one tracked face), a single crop's class is decided on probabilities averaged
    over calls.
    """

    def __init__(self, graphs: IIDGraphs, smoother: ClassSmoother | None = None) -> None:
        self.iid = graphs
        self.smoother = smoother
        self.last_classes: np.ndarray | None = None

    @property
    def variant(self) -> str:
        return self.iid.variant

    def classify(self, crops: np.ndarray) -> np.ndarray:
        return self.iid.logits(pad_images(crops, channels_last=True)).argmax(axis=1)

    def _classify(self, crops: np.ndarray) -> np.ndarray:
        if self.smoother is None or len(crops) != 1:
            return self.classify(crops)
        probs = softmax(self.iid.logits(pad_images(crops, channels_last=True)))[0]
        return np.array([int(np.argmax(self.smoother(probs)))])

    def denoise(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(denoised uint8 crops, classes or None)."""
        if self.iid.variant == "d":
            return to_uint8(run_dae(self.iid, 0, to_float(crops))), None
        classes = self._classify(crops)
        images = np.array(crops, copy=True)
        for k in np.unique(classes):
            if int(k) in self.iid.pass_through:
                continue
            idx = classes == k
            images[idx] = to_uint8(run_dae(self.iid, int(k), to_float(crops[idx])))
        return images, classes

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        images, self.last_classes = self.denoise(crops)
        return images


def as_gray_as(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out``, made gray again when ``image`` was a gray picture (a DAE may tint it)."""
    from crct_cli.degrade import is_gray

    if not is_gray(image):
        return out
    gray = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def tiled(fn: Callable[[Any], Any], x: Any, tile: int, pad: int) -> Any:
    """Apply a fully convolutional ``fn`` to (1, 3, H, W) in cores of ``tile`` px, each seen with
    ``pad`` px of context around it (only the core is kept). ``x``: a numpy array or a torch
    tensor (``crct denoise`` on either backend)."""
    h, w = x.shape[-2:]
    if h <= tile + 2 * pad and w <= tile + 2 * pad:
        return fn(x)
    out = np.empty_like(x) if isinstance(x, np.ndarray) else x.new_empty(x.shape)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            ey0, ex0 = max(0, y0 - pad), max(0, x0 - pad)
            ey1, ex1 = min(h, y1 + pad), min(w, x1 + pad)
            res = fn(x[..., ey0:ey1, ex0:ex1])
            out[..., y0:y1, x0:x1] = res[..., y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
    return out


#: MTCNN as ``crct_cli.runtime.Runtime.detector`` gives it: (image, min_score, thresholds) ->
#: detections (``crct_cli.tracking.detector.Detection``), most confident first.
Detector = Callable[..., list]


@dataclass(frozen=True)
class PictureVote:
    """What a picture's noise class was decided on: ``faces``, the classifier's training crop of
    every face found (their landmark boxes, (N, 4) x, y, w, h), or ``tiles``, the centre tiles
    of a picture in which no face was found (or with no detector)."""

    basis: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


class PictureDenoiser:
    """``crct denoise``'s decision on a whole picture, the same on both backends: variant D
    cleans every picture with its one DAE; S and M classify and leave a pass-through class
    untouched. The class is the classifier's mean vote over the faces MTCNN finds, each cut as
    its training crops were (:func:`crct_cli.denoise.face_crops`), or over the centre tiles
    where there is no face (:func:`crct_cli.denoise.vote_tiles`); over a video's frames the
    probabilities are averaged by a ``smoother``. Subclasses say how the classifier and the
    DAEs run."""

    tile: int = 384
    pad: int = 48
    #: MTCNN (None: every picture is classified on its tiles)
    detector: Detector | None = None
    #: what the latest :meth:`class_probabilities` decided on
    last_vote: PictureVote | None = None

    @property
    def variant(self) -> str:
        raise NotImplementedError

    def crop_probabilities(self, crops: np.ndarray) -> np.ndarray:
        """The classifier's class probabilities of uint8 crops (N, S, S, 3): (N, 5)."""
        raise NotImplementedError

    def find_faces(self, image: np.ndarray) -> np.ndarray:
        """The landmark boxes (N, 4) a picture's class is voted on; (0, 4) without a detector."""
        from crct_cli.denoise import find_faces

        return np.zeros((0, 4)) if self.detector is None else find_faces(self.detector, image)

    def class_probabilities(self, image: np.ndarray, faces: np.ndarray | None = None) -> np.ndarray:
        """Mean class probabilities, (5,), over the faces found, else over the centre tiles.

        The classifier only ever saw face crops at its input scale: tiles of a whole photo
        (background, a face far larger than in training) are classed blur or scale even when
        clean. :attr:`last_vote` says which it was. ``faces``: landmark boxes found earlier
        (a video's last look; (0, 4): none there) instead of looking in this picture.
        """
        from crct_cli.denoise import face_crops, vote_tiles

        boxes = self.find_faces(image) if faces is None else np.asarray(faces).reshape(-1, 4)
        if len(boxes):
            self.last_vote = PictureVote("faces", boxes)
            crops = face_crops(image, boxes)
        else:
            self.last_vote = PictureVote("tiles")
            crops = vote_tiles(image)
        return self.crop_probabilities(crops).mean(0)

    def apply_class(self, image: np.ndarray, cls: int) -> np.ndarray:
        """The DAE of class ``cls`` (0 for D's one DAE) over the whole picture."""
        raise NotImplementedError

    def pass_through(self) -> tuple[int, ...]:
        raise NotImplementedError

    def __call__(
        self,
        image: np.ndarray,
        smoother: ClassSmoother | None = None,
        faces: np.ndarray | None = None,
    ) -> tuple[np.ndarray, int | None, np.ndarray | None]:
        """(cleaned picture, class or None for D, class probabilities or None).

        A picture classed clean is returned as the same array, untouched. With a ``smoother``
        (video frames) the class is decided on the probabilities averaged over frames; with
        ``faces`` on the crops of those boxes (see :meth:`class_probabilities`).
        """
        self.last_vote = None
        if self.variant == "d":
            return self.apply_class(image, 0), None, None
        probs = self.class_probabilities(image, faces)
        if smoother is not None:
            probs = smoother(probs)
        cls = int(np.argmax(probs))
        if cls in self.pass_through():
            return image, cls, probs
        return self.apply_class(image, cls), cls, probs


class OnnxImageDenoiser(PictureDenoiser):
    """``crct denoise`` on the ONNX backend: an IID on whole RGB uint8 pictures of any size."""

    def __init__(
        self,
        graphs: IIDGraphs,
        tile: int = 384,
        pad: int = 48,
        detector: Detector | str | None = "mtcnn",
    ) -> None:
        """``detector``: MTCNN for the faces the class is decided on (``Runtime.detector()``);
        ``"mtcnn"`` loads ONNX Runtime's (S and M); None classifies on the centre tiles."""
        self.iid = graphs
        self.tile, self.pad = tile, pad
        if isinstance(detector, str):
            if detector != "mtcnn":
                raise ValueError(f"detector must be a callable, 'mtcnn' or None, not {detector!r}")
            detector = None
            if graphs.variant != "d":
                from crct_cli.runtime import Runtime

                detector = Runtime("onnx", "cpu").detector()
        assert detector is None or callable(detector)
        self.detector = detector

    @property
    def variant(self) -> str:
        return self.iid.variant

    def pass_through(self) -> tuple[int, ...]:
        return self.iid.pass_through

    def crop_probabilities(self, crops: np.ndarray) -> np.ndarray:
        """The classifier's class probabilities of uint8 crops, (N, 5)."""
        return softmax(self.iid.logits(pad_images(crops, channels_last=True)))

    def apply_class(self, image: np.ndarray, cls: int) -> np.ndarray:
        """One DAE over the whole picture at full resolution; a gray picture stays gray."""
        x = to_float(image[None])
        out = to_uint8(tiled(lambda t: run_dae(self.iid, cls, t), x, self.tile, self.pad))[0]
        return as_gray_as(image, out)
