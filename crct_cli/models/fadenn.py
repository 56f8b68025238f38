"""FADeNN's internal image denoiser (IID, paper section III-A) and FADeNN = FLL(IID(I)) (eq. 1).

* :class:`DAE`: the hourglass denoising auto-encoder with symmetric skip connections (RED-Net,
  Mao et al. 2016): a strided-conv encoder, a transposed-conv decoder, and every two layers the
  encoder's feature map is *added* to its mirror in the decoder. Five resolution levels (112 to
  7 px): one 3x3 layer at full resolution and two per level below it, mirrored, 17 layers in
  all, two per level to follow the paper's "a few additional mirror layers" over Chaitanya et
  al. 2017. One layer at full resolution keeps a DAE at ~4 ms per 112-px crop on one CPU core.
  It predicts a residual (last layer initialised to zero), so the identity is where it starts
  and what it can fall back to on an image that needs nothing done.
* :class:`NoiseClassifier` over 5 classes (0 clean, 1..4 :data:`crct_cli.noise.NOISE_TYPES`):
  single-task (STC, encoder + classifier) or multi-task (MTC, the full encoder-decoder whose
  reconstruction of its input is a regulariser, eq. 10). The classifier reads the mean and the
  standard deviation of every encoder level: degradations are global image statistics (energy
  of fine detail, intensity), so pooled statistics at each scale are what separates them.
* :class:`IID` with variants ``d`` (one DAE for everything, eq. 2), ``s`` (STC + one
  specialised DAE per noise class) and ``m`` (MTC + specialised DAEs), eq. 3-6: an input the
  classifier calls clean is returned untouched, bit for bit.
* :class:`FADeNN`: FLL(IID(x)) on float crops, used for the joint fine-tuning (III-D);
  :class:`CropDenoiser` applies an IID to uint8 crops, the form :class:`crct_cli.aligner.Aligner`
  takes as its ``denoiser``.

All networks take (B, 3, H, W) RGB in [0, 1]; the DAEs are fully convolutional (H and W
multiples of 16 for an exact round trip, anything else is padded), trained on FLL's crops
(3 x 112 x 112). No batch normalisation: each crop's output depends on that crop alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crct_cli.models.fll import LandmarkLocalizer, fll_config_from_dict
from crct_cli.noise import NOISE_TYPES

# defined without PyTorch, for the ONNX path; imported here, their home before the runtime
from crct_cli.runtime.iid import (  # noqa: F401
    CLASS_NAMES,
    VARIANTS,
    ClassSmoother,
    fadenn_file,
    iid_file,
)

N_CLASSES = len(CLASS_NAMES)


@dataclass(frozen=True)
class DAEConfig:
    """Channels per resolution level (full, 1/2, 1/4, ...); one more level halves once more."""

    widths: tuple[int, ...] = (12, 24, 32, 48, 64)


@dataclass(frozen=True)
class ClassifierConfig:
    widths: tuple[int, ...] = (12, 24, 32, 48, 64)
    hidden: int = 64


@dataclass(frozen=True)
class IIDConfig:
    """``variant`` d, s or m; ``lam`` weighs MTC's reconstruction loss (paper: 0.5).

    ``untouched``: noise classes (S and M) whose verdict leaves the image as it is, as a clean
    verdict does (eq. 6). The paper routes every class to its DAE; FLL standardises each crop,
    so intensity scaling needs no DAE in front of it, while ``crct denoise`` keeps restoring it.
    """

    variant: str = "m"
    dae: DAEConfig = field(default_factory=DAEConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    lam: float = 0.5
    untouched: tuple[str, ...] = ()


def untouched_problem(variant: str, untouched: tuple[str, ...]) -> str | None:
    """Why ``untouched`` cannot be left untouched by an IID of ``variant``, or None if it can."""
    unknown = [c for c in untouched if c not in NOISE_TYPES]
    if unknown:
        names = ", ".join(NOISE_TYPES)
        return f"untouched classes must be noise classes ({names}), got {unknown[0]!r}"
    if untouched and variant == "d":
        return "variant d has no classifier, so no class can be left untouched"
    return None


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class Encoder(nn.Module):
    """One 3x3 layer at full resolution, then per level two 3x3 layers, the first strided by 2.

    A single layer at full resolution keeps the DAE at a few ms per crop on a CPU; the
    levels below do the heavy lifting and the skip hands full-resolution detail back.
    """

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        levels = [nn.ModuleList([_conv(3, widths[0])])]
        for cin, w in zip(widths[:-1], widths[1:], strict=True):
            levels.append(nn.ModuleList([_conv(cin, w, 2), _conv(w, w)]))
        self.levels = nn.ModuleList(levels)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.levels) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every level, full resolution first (the skip sources)."""
        feats = []
        h = x - 0.5
        for level in self.levels:
            for conv in cast(nn.ModuleList, level):
                h = F.relu(conv(h))
            feats.append(h)
        return feats


class Decoder(nn.Module):
    """Mirror of :class:`Encoder`: per level a 4x4 transposed conv (x2) with the encoder's map of
    that level added (RED's symmetric skip) and, below full resolution, a 3x3 conv; then a 3x3
    conv to 3 channels."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        ups, convs = [], []
        for i in range(len(widths) - 1, 0, -1):
            ups.append(nn.ConvTranspose2d(widths[i], widths[i - 1], 4, stride=2, padding=1))
            convs.append(_conv(widths[i - 1], widths[i - 1]) if i > 1 else nn.Identity())
        self.ups = nn.ModuleList(ups)
        self.convs = nn.ModuleList(convs)
        self.out = _conv(widths[0], 3)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        for up, conv, skip in zip(self.ups, self.convs, reversed(feats[:-1]), strict=True):
            h = F.relu(up(h) + skip)
            if not isinstance(conv, nn.Identity):
                h = F.relu(conv(h))
        return self.out(h)


def _pad_to(x: torch.Tensor, factor: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class DAE(nn.Module):
    """Hourglass denoising auto-encoder: noisy (B, 3, H, W) in [0, 1] -> clean estimate.

    The decoder predicts a residual added to the input; its last layer starts at zero, so an
    untrained DAE is the identity. Outputs are clamped to [0, 1] outside training.
    """

    def __init__(self, config: DAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or DAEConfig()
        self.encoder = Encoder(self.config.widths)
        self.decoder = Decoder(self.config.widths)
        nn.init.zeros_(self.decoder.out.weight)
        assert self.decoder.out.bias is not None  # _conv makes its layers with a bias
        nn.init.zeros_(self.decoder.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, h, w = _pad_to(x, self.encoder.factor)
        out = (xp + self.decoder(self.encoder(xp)))[..., :h, :w]
        return out if self.training else out.clamp(0.0, 1.0)


def _pooled_stats(feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean and standard deviation of every channel of every level: (B, 2 * sum(widths))."""
    stats = []
    for f in feats:
        flat = f.flatten(2)
        stats += [flat.mean(-1), flat.std(-1, unbiased=False)]
    return torch.cat(stats, dim=1)


class NoiseClassifier(nn.Module):
    """Noise class scores (B, 5) over :data:`CLASS_NAMES`.

    ``multitask=False`` is the STC (encoder + classifier). ``multitask=True`` is the MTC: the
    same encoder with a full decoder that reconstructs the input (a sigmoid image, not a
    residual, so the reconstruction has to pass through the encoder); the decoder is only run
    when asked, i.e. in training.
    """

    def __init__(self, config: ClassifierConfig | None = None, multitask: bool = False) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        self.multitask = multitask
        self.encoder = Encoder(self.config.widths)
        self.decoder = Decoder(self.config.widths) if multitask else None
        self.head = nn.Sequential(
            nn.Linear(2 * sum(self.config.widths), self.config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.config.hidden, N_CLASSES),
        )

    def forward(
        self, x: torch.Tensor, reconstruct: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, reconstruction or None)."""
        xp, h, w = _pad_to(x, self.encoder.factor)
        feats = self.encoder(xp)
        logits = self.head(_pooled_stats(feats))
        recon = None
        if reconstruct and self.decoder is not None:
            recon = torch.sigmoid(self.decoder(feats))[..., :h, :w]
        return logits, recon


class IID(nn.Module):
    """The internal image denoiser of one variant: (B, 3, H, W) in [0, 1] -> same shape."""

    def __init__(self, config: IIDConfig | None = None) -> None:
        super().__init__()
        self.config = config or IIDConfig()
        if self.config.variant not in VARIANTS:
            raise ValueError(f"IID variant must be one of {VARIANTS}, got {self.config.variant!r}")
        problem = untouched_problem(self.config.variant, self.config.untouched)
        if problem:
            raise ValueError(problem)
        #: class indices (0 = clean included) whose images are returned as they are
        untouched = (CLASS_NAMES.index(c) for c in self.config.untouched)
        self.pass_through: tuple[int, ...] = (0, *untouched)
        self.dae: DAE | None = None
        self.classifier: NoiseClassifier | None = None
        self.daes: nn.ModuleList | None = None
        if self.config.variant == "d":
            self.dae = DAE(self.config.dae)
        else:
            self.classifier = NoiseClassifier(self.config.classifier, self.config.variant == "m")
            self.daes = nn.ModuleList(DAE(self.config.dae) for _ in NOISE_TYPES)

    @property
    def variant(self) -> str:
        return self.config.variant

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """NC (eq. 4): the arg-max class per image, (B,) int64; D has no classifier."""
        if self.classifier is None:
            raise ValueError("FADeNN-D has no noise classifier")
        return self.classifier(x)[0].argmax(dim=1)

    def route(self, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """SDAE (eq. 6): image i goes to DAE ``classes[i]``; class 0 (and the ``untouched``
        classes) is returned untouched."""
        assert self.daes is not None
        out = x.clone()
        for k, dae in enumerate(self.daes, start=1):
            if k in self.pass_through:
                continue
            idx = (classes == k).nonzero(as_tuple=True)[0]
            if len(idx):
                out = out.index_copy(0, idx, dae(x.index_select(0, idx)).to(out.dtype))
        return out

    def denoise(
        self, x: torch.Tensor, classes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cleaned images, classes or None for D); S and M route by ``classes`` when given,
        else by their classifier's."""
        if self.dae is not None:
            return self.dae(x), None
        classes = self.classify(x) if classes is None else classes
        return self.route(x, classes), classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoise(x)[0]


class FADeNN(nn.Module):
    """FLL(IID(x)) (eq. 1) on float crops (B, 3, S, S) -> (B, 68, 2) in FLL's crop units."""

    def __init__(self, iid: IID, fll: LandmarkLocalizer) -> None:
        super().__init__()
        self.iid = iid
        self.fll = fll
        self.config = fll.config  # the crop FLL expects, as Aligner reads it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fll(self.iid(x))


class CropDenoiser:
    """An IID applied to uint8 crops (N, S, S, 3), batched: what ``Aligner(denoiser=...)`` takes.

    Crops the classifier calls clean (or an ``untouched`` class) are returned as the very same
    bytes. ``last_classes`` keeps the classes of the latest call (``None`` for D). With a
    ``smoother`` (one tracked face), a single crop's class is decided on probabilities averaged
    over calls.
    """

    def __init__(
        self, iid: IID, device: torch.device | str = "cpu", smoother: ClassSmoother | None = None
    ) -> None:
        self.device = torch.device(device)
        self.iid = iid.eval().to(self.device)
        self.smoother = smoother
        self.last_classes: np.ndarray | None = None

    @torch.inference_mode()
    def classify(self, crops: np.ndarray) -> np.ndarray:
        return self._classify(to_tensor(crops, self.device)).cpu().numpy()

    def _classify(self, x: torch.Tensor) -> torch.Tensor:
        """NC per crop; one crop with a smoother is decided on probabilities averaged over calls."""
        if self.smoother is None or len(x) != 1:
            return self.iid.classify(x)
        assert self.iid.classifier is not None
        probs = torch.softmax(self.iid.classifier(x)[0].float(), dim=1)[0].cpu().numpy()
        return torch.tensor([int(np.argmax(self.smoother(probs)))], device=x.device)

    @torch.inference_mode()
    def denoise(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(denoised uint8 crops, classes or None)."""
        x = to_tensor(crops, self.device)
        out, classes = self.iid.denoise(x, None if self.iid.dae is not None else self._classify(x))
        images = to_uint8(out)
        if classes is not None:
            cls = classes.cpu().numpy()
            clean = np.isin(cls, self.iid.pass_through)
            images[clean] = crops[clean]  # eq. 6: untouched, not a float round trip
            return images, cls
        return images, None

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        images, self.last_classes = self.denoise(crops)
        return images


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255
    )


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), rounded."""
    out = (x.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------- weights


def iid_config_from_dict(d: dict[str, Any]) -> IIDConfig:
    """Rebuild an :class:`IIDConfig` saved with ``dataclasses.asdict``."""
    return IIDConfig(
        variant=d["variant"],
        dae=DAEConfig(widths=tuple(d["dae"]["widths"])),
        classifier=ClassifierConfig(
            widths=tuple(d["classifier"]["widths"]), hidden=d["classifier"]["hidden"]
        ),
        lam=d.get("lam", 0.5),
        untouched=tuple(d.get("untouched", ())),
    )


def iid_weight_config(iid: IID) -> dict[str, Any]:
    return {"iid": asdict(iid.config)}


def fadenn_weight_config(model: FADeNN) -> dict[str, Any]:
    return {"iid": asdict(model.iid.config), "model": asdict(model.fll.config)}


def load_iid(blob: dict[str, Any]) -> IID:
    """Build an IID from a loaded ``iid`` weight file (``models.weights.load_weights``)."""
    model = IID(iid_config_from_dict(blob["config"]["iid"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_fadenn(blob: dict[str, Any]) -> FADeNN:
    """Build FADeNN (IID + FLL, fine-tuned together) from a loaded ``fadenn`` weight file."""
    iid = IID(iid_config_from_dict(blob["config"]["iid"]))
    fll = LandmarkLocalizer(fll_config_from_dict(blob["config"]["model"]))
    model = FADeNN(iid, fll)
    model.load_state_dict(blob["state_dict"])
    return model.eval()
