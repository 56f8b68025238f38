"""``crct denoise``: FADeNN's internal image denoiser on whole images, folders and videos.

Inside FADeNN the IID cleans the 112-px face crop FLL sees. On a whole picture this module does
what a user expects of a denoiser: the output has the input's size and content, cleaned.

* **Class** (S and M): the classifier was trained on 112-px face crops (the square of the
  face's landmark box times 1.35, the face at most 220 px), so it scores exactly those: MTCNN
  finds the faces (:func:`find_faces`, up to :data:`MAX_FACES`), each is cut as in training
  (:func:`face_crops`), and the class with the highest mean probability over the faces wins
  (one class per picture: a degradation is the whole picture's). A picture where no face is
  found falls back to up to nine 112 x 112 tiles around its centre at full resolution (enlarged
  to one tile if smaller), and ``noise_classes.json`` says which it was (``classified_on``).
* **Denoising**: the DAE of that class (S, M) or the single DAE (D) runs fully convolutionally
  over the whole picture at full resolution, in 384-px tiles with 48 px of context on each side
  so no seam shows. A picture classed clean is passed through untouched: an image file is copied
  byte for byte, a video frame is re-encoded unchanged (eq. 6).
* **Layout** (as ``crct degrade``): ``a.jpg`` -> ``OUT/a.jpg``, ``v.mp4`` -> ``OUT/v.mp4`` (every
  frame, at the source frame rate), a folder mirrored under ``OUT`` with its ``.pts`` files copied
  alongside (so ``crct align --box-from-pts`` works on the result). With S and M,
  ``OUT/noise_classes.json`` records the class of every image and of every video frame.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crct_cli.degrade import Item, collect_items, copy_file, is_gray
from crct_cli.errors import CrctError, OnFailure, OptionError, report_failure, whole_number
from crct_cli.geometry import box_center_size, crop_matrix, reachable_region, warp
from crct_cli.io.atomic import check_writable_folder, make_output_folder, write_text_atomic
from crct_cli.io.images import read_image, write_image
from crct_cli.runtime.iid import (
    CLASS_NAMES,
    CROP_CONTEXT,
    CROP_SIZE,
    TRAIN_MAX_FACE,
    ClassSmoother,
    Detector,
    PictureDenoiser,
    as_gray_as,
    tiled,
)

if TYPE_CHECKING:  # PyTorch is imported by the torch backend's denoiser alone
    import torch

    from crct_cli.models.fadenn import IID

CLASSES_JSON = "noise_classes.json"
#: fields were added (``classified_on``, ``faces``, ``frames_classified_on``), none changed
SCHEMA = "crct.noise_classes/1"
TILE = CROP_SIZE
#: The most confident faces a picture's class is voted on (a crowd costs no more than this).
MAX_FACES = 8
#: ``--smoothing``: the weight of past frames; 1 would never let a new frame count.
MAX_SMOOTHING = 0.99
#: ``--detect-every``: a video's faces are looked for on every this many frames; the frames
#: between are classified as the last look's frame was: on the crops of the faces it found, or
#: on tiles where it found none (MTCNN's three looks cost several times the classifier and, on
#: a clean video, all the rest of a frame's work).
DETECT_EVERY = 5


def check_detect_every(detect_every: int) -> int:
    """``--detect-every``: a whole number (numpy's too) of 1 or more, returned as int."""
    every = whole_number(detect_every)
    if every is None or every < 1:
        raise OptionError(
            "detect_every", f"must be a whole number of frames, 1 or more, got {detect_every!r}"
        )
    return every


def check_smoothing(smoothing: float) -> None:
    """``--smoothing`` is a number from 0 to 0.99: NaN gets past a range check (every
    comparison with it is false) and would turn denoising off after a video's first frame."""
    if not (math.isfinite(smoothing) and 0.0 <= smoothing <= MAX_SMOOTHING):
        raise OptionError(
            "smoothing", f"must be a number from 0 to {MAX_SMOOTHING}, got {smoothing}"
        )


def vote_tiles(image: np.ndarray, tile: int = TILE, grid: int = 3) -> np.ndarray:
    """Up to ``grid`` x ``grid`` full-resolution tiles side by side around the centre, as many
    as fit: (N, tile, tile, 3)."""
    h, w = image.shape[:2]
    if min(h, w) < tile:
        f = tile / min(h, w)
        image = cv2.resize(image, (max(tile, round(w * f)), max(tile, round(h * f))))
        h, w = image.shape[:2]

    def starts(length: int) -> list[int]:
        n = min(grid, max(1, length // tile))  # side by side, centred, no overlap
        mid = (length - tile) / 2
        return [int(round(mid + (k - (n - 1) / 2) * tile)) for k in range(n)]

    return np.stack([image[y : y + tile, x : x + tile] for y in starts(h) for x in starts(w)])


def find_faces(detector: Detector, image: np.ndarray, limit: int = MAX_FACES) -> np.ndarray:
    """Landmark boxes (N, 4) of up to ``limit`` faces, most confident first; (0, 4) if none.

    The looks the tracker uses for a lost face, in turn until one finds a face: MTCNN as
    ``crct align`` runs it, then its sensitive settings, then those on the picture with its
    contrast stretched. Blur and darkness lower MTCNN's scores on a real face (at level 3 of
    ``crct degrade --noise scale`` the plain look missed 14 of 60 afw faces, the three looks
    none); a false face still gives a crop of the picture, no worse a vote than a tile.
    """
    from crct_cli.tracking.detector import (
        RELAXED_MIN_SCORE,
        RELAXED_THRESHOLDS,
        stretch_contrast,
    )

    found = (
        detector(image)
        or detector(image, RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
        or detector(stretch_contrast(image), RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
    )
    found = sorted(found, key=lambda d: -d.score)[:limit]
    return np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4)


def face_crops(
    image: np.ndarray,
    boxes: np.ndarray,
    size: int = CROP_SIZE,
    context: float = CROP_CONTEXT,
    max_face: float = TRAIN_MAX_FACE,
) -> np.ndarray:
    """Each face as the noise classifier saw its training faces, (N, size, size, 3) uint8.

    The arithmetic of ``crct_cli.train.iid.noisy_crop_pair`` without its jitter, at the largest
    face size training used (``native_face`` = the face's side, at most ``max_face``): the
    region the crop reaches is shrunk (INTER_AREA) when the face is larger than ``max_face``,
    then the square of the landmark box times ``context`` is warped to ``size`` px (outside the
    picture black). A face straight from a large photo, shrunk bilinearly, would alias into
    what the classifier learnt as noise.
    """
    out = []
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        center, side = box_center_size(box)
        side *= context
        g = min(1.0, max_face / max(float(max(box[2:])), 1.0))
        reached = reachable_region(image, center, side, g)
        if reached is None:  # a box wholly outside the picture: all black, as a warp
            out.append(np.zeros((size, size, 3), np.uint8))
            continue
        native, origin, gain = reached
        matrix = crop_matrix((center - origin) * gain, side * float(gain.mean()), size)
        out.append(warp(native, matrix, size))
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


class ImageDenoiser(PictureDenoiser):
    """An IID on whole RGB uint8 pictures of any size, in PyTorch (see the module docstring)."""

    def __init__(
        self,
        iid: IID,
        device: torch.device | str = "cpu",
        tile: int = 384,
        pad: int = 48,
        detector: Detector | str | None = "mtcnn",
    ) -> None:
        """``detector``: MTCNN for the faces the class is decided on (``Runtime.detector()``);
        ``"mtcnn"`` loads facenet-pytorch's (S and M); None classifies on the centre tiles."""
        import torch

        self.device = torch.device(device)
        self.iid = iid.eval().to(self.device)
        self.tile, self.pad = tile, pad
        if isinstance(detector, str):
            if detector != "mtcnn":
                raise ValueError(f"detector must be a callable, 'mtcnn' or None, not {detector!r}")
            detector = None
            if iid.variant != "d":
                from crct_cli.tracking.detector import FaceDetector

                detector = FaceDetector(self.device)
        assert detector is None or callable(detector)
        self.detector = detector

    @property
    def variant(self) -> str:
        return self.iid.variant

    def pass_through(self) -> tuple[int, ...]:
        return self.iid.pass_through

    def crop_probabilities(self, crops: np.ndarray) -> np.ndarray:
        """The classifier's class probabilities of uint8 crops, (N, 5)."""
        import torch

        from crct_cli.models.fadenn import to_tensor

        if self.iid.classifier is None:
            raise ValueError("FADeNN-D has no noise classifier")
        with torch.inference_mode():
            logits = self.iid.classifier(to_tensor(crops, self.device))[0]
            return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def apply_class(self, image: np.ndarray, cls: int) -> np.ndarray:
        """One DAE over the whole picture at full resolution; a gray picture stays gray."""
        import torch

        from crct_cli.models.fadenn import DAE, to_tensor, to_uint8

        if cls == 0:
            dae: object = self.iid.dae
        else:
            assert self.iid.daes is not None  # classes 1-4 are S's and M's, which have DAEs
            dae = self.iid.daes[cls - 1]
        assert isinstance(dae, DAE)
        with torch.inference_mode():
            x = to_tensor(image[None], self.device)
            return as_gray_as(image, to_uint8(tiled(dae, x, self.tile, self.pad))[0])


@dataclass
class DenoiseRecord:
    """What was done to one input file."""

    input: str
    output: str
    kind: str  # "image" or "video"
    classes: list[int] = field(default_factory=list)  # one per image / frame; empty for D
    probabilities: list[float] | None = None  # images only
    fps: float | None = None  # videos only
    frames: int = 0  # videos only
    #: what each class was decided on, one per image / frame: "faces" or "tiles"
    bases: list[str] = field(default_factory=list)
    #: images only: the landmark boxes of the faces classified (x, y, w, h)
    faces: list[list[float]] = field(default_factory=list)
    #: videos only: frames the header promised that never decoded (a file cut short)
    missing_frames: int = 0

    def counts(self) -> dict[str, int]:
        c = Counter(CLASS_NAMES[k] for k in self.classes)
        return {name: c[name] for name in CLASS_NAMES if c[name]}


@dataclass
class DenoisePlan:
    """Every file ``crct denoise`` will write, validated before anything is written."""

    out_dir: Path
    jobs: list[tuple[Item, Path]]
    skipped: list[Path]
    #: files that failed in :func:`run_plan`, with their line
    failed: dict[Path, str] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        """Files of this kind written (all of them until :func:`run_plan` meets a bad one)."""
        return sum(1 for item, _ in self.jobs if item.kind == kind and item.src not in self.failed)


def plan_denoise(
    paths: Sequence[Path], out_dir: Path, on_failure: OnFailure | None = None
) -> DenoisePlan:
    """Expand the inputs (images, videos, folders); refuse outputs that would overwrite them.

    Nothing is written yet, so a later error (a missing weight file) leaves no folder behind.
    With ``on_failure`` a missing or unusable input is told there and left out; when nothing is
    left the plan has no jobs.
    """
    told: list[str] = []

    def tell(line: str) -> None:
        told.append(line)
        if on_failure is not None:
            on_failure(line)

    items, skipped = collect_items(
        [Path(p) for p in paths], out_dir, None if on_failure is None else tell
    )
    jobs = [(item, out_dir / item.rel) for item in items]
    sources = {item.src.resolve() for item in items}
    for _, dst in jobs:
        if dst.resolve() in sources:
            raise CrctError(f"{dst}: output would overwrite an input; choose another --out")
    if not any(item.kind != "copy" for item in items):
        if told:
            return DenoisePlan(out_dir, [], skipped)
        raise CrctError(f"no images or videos in {', '.join(map(str, paths))}")
    check_writable_folder(out_dir)  # one line now, not one per file after its denoising
    return DenoisePlan(out_dir, jobs, skipped)


def denoise_image_file(src: Path, dst: Path, den: ImageDenoiser) -> DenoiseRecord:
    image = read_image(src)
    out, cls, probs = den(image)
    if cls is not None and cls in den.iid.pass_through:
        copy_file(src, dst)  # eq. 6: a clean image is not touched, not even re-encoded
    else:
        write_image(dst, out[..., 0] if is_gray(image) else out)
    vote = den.last_vote
    return DenoiseRecord(
        str(src),
        str(dst),
        "image",
        [] if cls is None else [cls],
        None if probs is None else [round(float(p), 4) for p in probs],
        bases=[] if vote is None else [vote.basis],
        faces=[] if vote is None else [[round(float(v), 1) for v in b] for b in vote.boxes],
    )


def denoise_video_file(
    src: Path,
    dst: Path,
    den: ImageDenoiser,
    on_frame: Callable[[int, int | None], None] | None = None,
    smoothing: float = 0.8,
    detect_every: int = DETECT_EVERY,
) -> DenoiseRecord:
    """Every frame, written at the source frame rate (temporary name, renamed when complete);
    classes decided on probabilities averaged over frames (:class:`ClassSmoother`), faces
    looked for on every ``detect_every``-th frame from the first (the frames between are
    classified as the last look's frame was: on the crops of the faces it found, or on their
    own tiles where it found none)."""
    from crct_cli.io.video import VideoWriter, iter_frames, probe_video
    from crct_cli.tracking.pipeline import missing_frames

    check_smoothing(smoothing)
    detect_every = check_detect_every(detect_every)
    info = probe_video(src)
    record = DenoiseRecord(str(src), str(dst), "video", fps=info.fps)
    smoother = ClassSmoother(smoothing)
    writer: VideoWriter | None = None
    faces: np.ndarray | None = None
    reached = 0
    with contextlib.closing(iter_frames(src)) as frames:
        try:
            for k, frame in enumerate(frames):
                if den.variant != "d" and k % detect_every == 0:
                    faces = den.find_faces(frame.image)
                out, cls, _ = den(frame.image, smoother, faces)
                if writer is None:
                    h, w = frame.image.shape[:2]
                    writer = VideoWriter(dst, info.fps, w, h)
                writer.write(out, frame.index, frame.time)
                record.frames += 1
                reached = frame.index + 1
                if cls is not None:
                    record.classes.append(cls)
                if den.last_vote is not None:
                    record.bases.append(den.last_vote.basis)
                if on_frame is not None:
                    on_frame(k + 1, info.n_frames)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    if writer is None:
        raise CrctError(f"{src}: the video has no frames")
    writer.close()
    record.missing_frames = missing_frames(info.n_frames, reached)
    return record


def run_plan(
    plan: DenoisePlan,
    den: ImageDenoiser,
    on_item: Callable[[Path], None] | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
    smoothing: float = 0.8,
    on_failure: OnFailure | None = None,
    detect_every: int = DETECT_EVERY,
) -> list[DenoiseRecord]:
    """Write every output; returns one record per image or video (copied files excluded).

    Without ``on_failure`` the first bad input raises; with it each is told there in one line
    (and kept in ``plan.failed``) and the others are still written.
    """
    check_smoothing(smoothing)  # a bad option is no bad input: refused before anything is written
    detect_every = check_detect_every(detect_every)
    make_output_folder(plan.out_dir)
    records = []
    for item, dst in plan.jobs:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CrctError(f"{dst.parent}: cannot create folder ({exc.strerror})") from None
        try:
            if item.kind == "copy":
                copy_file(item.src, dst)
            elif item.kind == "image":
                records.append(denoise_image_file(item.src, dst, den))
            else:
                records.append(
                    denoise_video_file(item.src, dst, den, on_frame, smoothing, detect_every)
                )
        except (CrctError, OSError) as exc:
            plan.failed[item.src] = report_failure(on_failure, item.src, exc)
        if on_item is not None:
            on_item(item.src)
    return records


def classes_document(
    records: Sequence[DenoiseRecord],
    variant: str,
    weights: str,
    smoothing: float = 0.8,
    detect_every: int = DETECT_EVERY,
) -> dict:
    """The ``noise_classes.json`` content (schema ``crct.noise_classes/1``)."""
    images = [
        {
            "input": r.input,
            "output": r.output,
            "class": CLASS_NAMES[r.classes[0]],
            "probabilities": dict(zip(CLASS_NAMES, r.probabilities or [], strict=False)),
            **({"classified_on": r.bases[0], "faces": r.faces} if r.bases else {}),
        }
        for r in records
        if r.kind == "image"
    ]
    videos = [
        {
            "input": r.input,
            "output": r.output,
            "fps": r.fps,
            "counts": r.counts(),
            "frames": [CLASS_NAMES[k] for k in r.classes],
            **(
                {"frames_classified_on": {b: r.bases.count(b) for b in ("faces", "tiles")}}
                if r.bases
                else {}
            ),
        }
        for r in records
        if r.kind == "video"
    ]
    return {
        "schema": SCHEMA,
        "variant": variant,
        "weights": weights,
        "classes": list(CLASS_NAMES),
        "method": f"mean class probability over the classifier's training crops ({CROP_SIZE} px, "
        f"landmark box x {CROP_CONTEXT}, the face shrunk to at most {TRAIN_MAX_FACE:g} px) of up "
        f"to {MAX_FACES} faces MTCNN finds in each image or frame (classified_on: faces, with "
        "their landmark boxes x, y, w, h in faces); where it finds none, over up to 9 "
        "full-resolution 112-px tiles around the centre (classified_on: tiles); video frames "
        "use the exponential average of those probabilities over frames (weight "
        f"{smoothing} on the history); in a video, faces are looked for on frames 0, "
        f"{detect_every}, {2 * detect_every}, ... (detect_every), the frames between classified "
        "on the crops of the faces the last look found, or on their tiles where it found none",
        "smoothing": smoothing,
        "detect_every": detect_every,
        "images": images,
        "videos": videos,
    }


def write_classes_json(
    out_dir: Path,
    records: Sequence[DenoiseRecord],
    variant: str,
    weights: str,
    smoothing: float = 0.8,
    detect_every: int = DETECT_EVERY,
) -> Path:
    path = out_dir / CLASSES_JSON
    doc = classes_document(records, variant, weights, smoothing, check_detect_every(detect_every))
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return path


def noise_classes_table(records: Sequence[DenoiseRecord], title: str, limit: int = 50) -> Table:
    """One row per image (its class and probability) or video (frames per class); outputs
    mirror the inputs under the output folder."""
    table = Table(title=title)
    table.add_column("input", overflow="fold")
    table.add_column("noise class", no_wrap=True)
    for r in records[:limit]:
        if r.kind == "image":
            p = (r.probabilities or [0.0] * len(CLASS_NAMES))[r.classes[0]]
            label = f"{CLASS_NAMES[r.classes[0]]} ({p:.2f})"
            if r.bases == ["tiles"]:
                label += ", no face: tiles"
        else:
            label = ", ".join(f"{name} {n}" for name, n in r.counts().items()) + " frames"
            if "tiles" in r.bases:
                label += f" ({r.bases.count('tiles')} on tiles: no face found)"
        table.add_row(r.input, label)
    if len(records) > limit:
        table.add_row(f"... {len(records) - limit} more in {CLASSES_JSON}", "")
    return table


@contextlib.contextmanager
def denoise_progress(
    console: Console, n_items: int
) -> Iterator[tuple[Callable[[Path], None], Callable[[int, int | None], None]]]:
    """One live display with a bar for files and one for the frames of the current video."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        files = progress.add_task("denoising", total=n_items)
        frames = progress.add_task("frames", total=None, visible=False)

        def on_item(_path: Path) -> None:
            progress.advance(files)
            progress.update(frames, visible=False, completed=0)

        def on_frame(done: int, total: int | None) -> None:
            progress.update(frames, completed=done, total=total, visible=True)

        yield on_item, on_frame
