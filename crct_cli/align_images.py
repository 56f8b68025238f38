"""``crct align``: 68 landmarks for still images.

Faces come from MTCNN (``NAME.pts`` the most confident, ``NAME_1.pts``, ``NAME_2.pts``... the
others; the numbering skips a name that another input image owns, so face 2 of ``a.png`` never
overwrites the landmarks of an image ``a_1.png``), or, with ``box_from_pts``, from the box of
the ``NAME.pts`` beside each image: the papers' evaluation protocol, where nothing but that
box is read from the file. Folders are walked recursively and mirrored under the output folder.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crct_cli.draw import draw_landmarks
from crct_cli.errors import CrctError, OnFailure, OptionError, report_failure
from crct_cli.geometry import face_crop
from crct_cli.io.atomic import make_output_folder, write_text_atomic
from crct_cli.io.images import is_image, read_image, write_image
from crct_cli.io.landmarks import check_pts_origin, read_pts, write_pts
from crct_cli.landmarks import box_from_points
from crct_cli.pose import POSE_COLUMNS, pose_text
from crct_cli.tracking.orientation import (
    AUTO,
    orient_still,
    parse_rotate,
    turn,
    turn_points,
    unturn_points,
)

#: ``crct align --pose``: every face's head pose, beside the .pts files
POSES_CSV = "poses.csv"
#: ``crct align``'s index of what it found: a row per face, and one per photo without a face
FACES_CSV = "faces.csv"
FACES_COLUMNS = ("image", "face", "pts", "detection_score", "box_x", "box_y", "box_w", "box_h")


@dataclass
class AlignSummary:
    images: int = 0
    faces: int = 0
    without_face: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  #: one line per image that could not be done
    turned: dict[str, int] = field(default_factory=dict)  #: images read turned: clockwise degrees


def _images_of(path: Path, skip: Path | None = None) -> list[tuple[Path, Path]]:
    if path.is_dir():
        if skip is not None and path.resolve() == skip:  # every image would be left out
            raise CrctError(
                f"{path}: the output folder cannot be the input folder (each NAME.pts would "
                "land beside its image, where a dataset keeps its labels); use another --out"
            )
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and is_image(p) and not _hidden(p.relative_to(path))
        )
        if skip is not None:  # an output folder inside the input: earlier results, not inputs
            found = [p for p in found if not p.resolve().is_relative_to(skip)]
        return [(p, p.relative_to(path).with_suffix("")) for p in found]
    if path.is_file():
        if not is_image(path):
            from crct_cli.io.video import is_video

            if is_video(path):
                raise CrctError(f"{path}: a video; crct track follows faces through videos")
            raise CrctError(f"{path}: not an image (crct align takes images and folders)")
        return [(path, Path(path.stem))]
    raise CrctError(f"{path}: no such file or folder")


def _hidden(rel: Path) -> bool:
    """A hidden file or folder in a walked folder, passed over as ``crct track`` and ``crct
    degrade`` pass it: macOS's ``._IMG.jpg`` (no picture in it), a write's ``.x.partial.png``."""
    return any(part.startswith(".") for part in rel.parts)


def collect_images(
    paths: Sequence[Path], on_failure: OnFailure | None = None, out: Path | None = None
) -> list[tuple[Path, Path]]:
    """(image, output path relative to the output folder, without suffix), sorted per input;
    a folder's images inside ``out`` (the output folder, put inside an input) are left out.

    A missing path or a non-image raises, or with ``on_failure`` is told there and left out
    (then no images at all is an empty list once something was told). Two images with one
    output name always raise: which one to keep is the user's choice.
    """
    items: list[tuple[Path, Path]] = []
    failures = 0
    for path in paths:
        try:
            items += _images_of(path, None if out is None else out.resolve())
        except (CrctError, OSError) as exc:
            report_failure(on_failure, path, exc)
            failures += 1
    if not items:
        if failures:
            return []
        raise CrctError(f"no images found in {', '.join(map(str, paths))}")
    seen: dict[Path, Path] = {}
    for image, rel in items:
        if rel in seen:
            raise CrctError(f"{image} and {seen[rel]} would both write {rel}.pts")
        seen[rel] = image
    return items


def _face_names(rel: Path, n: int, owned: set[Path]) -> list[str]:
    """Output stems for ``n`` faces: ``NAME``, then ``NAME_1``, ``NAME_2``... skipping any that
    another input image owns."""
    names, k = [rel.name], 1
    while len(names) < n:
        if rel.with_name(f"{rel.name}_{k}") not in owned:
            names.append(f"{rel.name}_{k}")
        k += 1
    return names


def _crop_stem(rel: Path, name: str, owned: set[Path]) -> Path:
    """``NAME_crop`` beside ``NAME.pts``, refused when it is another input image's own name."""
    stem = rel.with_name(f"{name}_crop")
    if stem in owned:
        raise CrctError(
            f"{stem}.pts: --crops would write over the landmarks of the image {stem.name}; "
            "rename that image or align without --crops"
        )
    return stem


def check_still_rotate(rotate: Any, box_from_pts: bool) -> int | str:
    """``--rotate`` for stills: a quarter turn, or ``"auto"`` (found by the detector, so not
    with the boxes given by ``--box-from-pts``)."""
    angle = parse_rotate(rotate)
    if angle == AUTO and box_from_pts:
        raise OptionError(
            "rotate",
            "'auto' finds the turn with the face detector; with boxes given, give the turn "
            "(0, 90, 180 or 270)",
            cli="auto finds the turn with the face detector; with --box-from-pts give "
            "0, 90, 180 or 270",
        )
    return angle


@dataclass(frozen=True)
class StillInput:
    """A photo as read (EXIF applied), the clockwise turn its faces are read in, the photo so
    turned, and the faces' boxes there, most confident first: what ``crct align`` and
    ``Tracker.align`` give FLL, whose points :meth:`back` puts in the photo's own pixels."""

    image: np.ndarray
    clockwise: int
    turned: np.ndarray
    boxes: np.ndarray  #: (N, 4) x, y, w, h in the turned photo
    scores: list[float] | None = None  #: the detector's, box by box (None: boxes given)

    @classmethod
    def detected(
        cls, image: np.ndarray, detect: Callable[[np.ndarray], list], rotate: int | str
    ) -> StillInput:
        """The faces ``detect`` finds, in the turn ``rotate`` asks for (``"auto"``: the quarter
        turn in which it finds a face most surely, :func:`orient_still`)."""
        if rotate == AUTO:
            clockwise, found = orient_still(image, detect)
            turned = turn(image, clockwise)
        else:
            clockwise = int(rotate)
            turned = turn(image, clockwise)
            found = detect(turned)
        ranked = sorted(found, key=lambda d: -d.score)
        boxes = np.array([d.box for d in ranked], dtype=np.float64).reshape(-1, 4)
        return cls(image, clockwise, turned, boxes, [float(d.score) for d in ranked])

    @classmethod
    def boxed(cls, image: np.ndarray, boxes: np.ndarray, clockwise: int) -> StillInput:
        """Boxes given in the photo's pixels (x, y, w, h), turned with it."""
        if clockwise == 0:  # as given, to the last bit
            return cls(image, 0, image, np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        height, width = image.shape[:2]
        corners = np.stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        turned_boxes = [box_from_points(turn_points(c, clockwise, width, height)) for c in corners]
        turned = turn(image, clockwise)
        return cls(image, clockwise, turned, np.array(turned_boxes).reshape(-1, 4))

    def back(self, points: np.ndarray) -> np.ndarray:
        """Points read in the turned photo, in the photo's own pixels."""
        height, width = self.image.shape[:2]
        return unturn_points(points, self.clockwise, width, height)


def _read_input(
    image_path: Path,
    detect: Callable[[np.ndarray], list],
    box_from_pts: bool,
    rotate: int | str = 0,
) -> StillInput:
    """The photo, its turn and its face boxes (:class:`StillInput`); everything that can fail
    on a bad input (a corrupt image, a missing or malformed ``.pts``) fails here, before any
    output."""
    image = read_image(image_path)
    if not box_from_pts:
        return StillInput.detected(image, detect, rotate)
    pts_path = image_path.with_suffix(".pts")
    if not pts_path.is_file():
        raise CrctError(f"{image_path}: --box-from-pts needs {pts_path.name} beside it")
    box = box_from_points(read_pts(pts_path))
    if boxes_outside(box[None], image.shape):
        raise CrctError(f"{image_path}: the box of {pts_path.name} lies outside the photo")
    return StillInput.boxed(image, box[None], int(rotate))  # "auto" is refused with boxes


def boxes_outside(boxes: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    """Which (N, 4) ``x, y, w, h`` boxes cover none of a ``shape`` photo: FLL would place
    points in its padding and FV still score them (a mistyped box, another photo's labels)."""
    height, width = shape[:2]
    x, y, w, h = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T
    return np.flatnonzero((x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0)).tolist()


def align_images(
    paths: Sequence[Path],
    out_dir: Path,
    detect: Callable[[np.ndarray], list],
    localize: Callable[[np.ndarray, np.ndarray], np.ndarray],
    box_from_pts: bool = False,
    overlay: bool = False,
    on_image: Callable[[Path], None] | None = None,
    items: list[tuple[Path, Path]] | None = None,
    crops: int = 0,
    pose: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
    on_failure: OnFailure | None = None,
    rotate: int | str = 0,
    pts_origin: int = 0,
) -> AlignSummary:
    """Write landmarks for every image; returns what was done (images without a face too).

    ``items`` is ``collect_images(paths)`` when the caller already walked the folders;
    ``crops``: each face is also written cut out with its eyes level, ``crops`` px square, as
    ``NAME_crop.png`` with its points in the crop, ``NAME_crop.pts`` (0: none); ``pose(points,
    width, height)``: each face's head pose goes to ``poses.csv`` (a row per ``.pts`` file,
    written under a temporary name once every image is done). ``on_failure``: an image that
    cannot be read (or its ``.pts`` with ``box_from_pts``) is told there, in one line, and the
    others are still done; without it the first such image raises. ``rotate``: each image is
    turned this many degrees clockwise (or, ``"auto"``, the quarter turn in which the detector
    finds a face most surely) for the networks; the points are given back in the image's own
    pixels, so ``NAME.pts`` still pairs with the image (:attr:`AlignSummary.turned`).
    ``pts_origin`` (``--pts-origin``) is added to the points of every ``.pts`` file written
    (1: 300-W's convention); faces.csv and poses.csv keep crct's 0.
    """
    rotate = check_still_rotate(rotate, box_from_pts)
    pts_origin = check_pts_origin(pts_origin)
    items = collect_images(paths, on_failure) if items is None else items
    inputs = {p.resolve() for p, _ in items}
    for source, rel in items:
        target = _with_ext(out_dir / rel, ".pts").resolve()
        if target == source.with_suffix(".pts").resolve():
            raise CrctError(
                f"{out_dir}: {target.name} would be written beside {source.name}, where a "
                "dataset keeps its labels; use another --out"
            )
        if target in inputs:
            raise CrctError(f"{out_dir}: output would overwrite {source.with_suffix('.pts')}")
    make_output_folder(out_dir)
    if not os.access(out_dir, os.W_OK | os.X_OK):  # one line, not one per image
        raise CrctError(f"{out_dir}: output folder is not writable")
    owned = {rel for _, rel in items}  # every image's own NAME.pts, reserved up front
    if crops:  # NAME_crop.* must not be another image's NAME.pts
        for _, rel in items:
            _crop_stem(rel, rel.name, owned)
    summary = AlignSummary()
    earlier = _earlier_faces(out_dir)
    rows: list[list[Any]] = []
    index: list[list[Any]] = []  # faces.csv
    for image_path, rel in items:
        try:
            given = _read_input(image_path, detect, box_from_pts, rotate)
        except (CrctError, OSError) as exc:
            summary.failed.append(report_failure(on_failure, image_path, exc))
            if on_image is not None:
                on_image(image_path)
            continue
        summary.images += 1
        image, boxes = given.image, list(given.boxes)
        names = _face_names(rel, len(boxes), owned)
        _remove_earlier(out_dir, earlier.get(rel.as_posix(), []), rel, names[: len(boxes)], owned)
        if given.clockwise:
            summary.turned[str(image_path)] = given.clockwise
        if not boxes:
            summary.without_face.append(str(image_path))
            index.append([str(image_path), *[""] * (len(FACES_COLUMNS) - 1)])
            if on_image is not None:
                on_image(image_path)
            continue
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        drawn = image
        scores: list[float | None] = [None] * len(boxes)  # boxes given: no detector's score
        if given.scores is not None:
            scores = [*given.scores]
        for k, (box, name, score) in enumerate(zip(boxes, names, scores, strict=True)):
            points = given.back(localize(given.turned, box))
            pts_file = target.with_name(f"{name}.pts")
            write_pts(pts_file, points, pts_origin)
            shown = pts_file.relative_to(out_dir).as_posix()
            found = "" if score is None else f"{score:.4f}"
            index.append([str(image_path), k, shown, found, *_cells(box_from_points(points))])
            if crops:
                crop, inside = face_crop(image, points, crops)
                stem = out_dir / _crop_stem(rel, name, owned)
                write_image(_with_ext(stem, ".png"), crop)
                write_pts(_with_ext(stem, ".pts"), inside, pts_origin)
            if pose is not None:
                values = pose_text(pose(points, image.shape[1], image.shape[0]))
                rows.append([shown, *values])
            summary.written.append(str(pts_file))
            summary.faces += 1
            if overlay:
                drawn = draw_landmarks(drawn, points, box_from_points(points))
        if overlay:
            write_image(target.with_name(f"{target.name}_overlay.jpg"), drawn)
        if on_image is not None:
            on_image(image_path)
    if pose is not None:
        _write_csv(out_dir / POSES_CSV, ["pts", *POSE_COLUMNS], rows)
    if index:  # some photo was read: what was found in each
        _write_csv(out_dir / FACES_CSV, list(FACES_COLUMNS), index)
    return summary


def _earlier_faces(out_dir: Path) -> dict[str, list[str]]:
    """The ``.pts`` files an earlier run's ``faces.csv`` in ``out_dir`` lists, by the output
    stem of their photo (its face 0's file, ``sub/NAME``); empty when there is none."""
    try:
        with open(out_dir / FACES_CSV, newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    by_image: dict[str, list[str]] = {}
    stems: dict[str, str] = {}
    for row in table:
        image, pts = row.get("image") or "", row.get("pts") or ""
        if not pts.endswith(".pts"):
            continue
        by_image.setdefault(image, []).append(pts)
        if row.get("face") == "0":
            stems[image] = pts[: -len(".pts")]
    return {stems[image]: files for image, files in by_image.items() if image in stems}


def _remove_earlier(
    out_dir: Path, files: list[str], rel: Path, names: list[str], owned: set[Path]
) -> None:
    """A photo aligned again: the faces an earlier run wrote for it that this run does not
    (it finds fewer, or none) are removed with their crops, so the folder holds what
    ``faces.csv`` says (``crct benchmark --pred`` would score a stale ``NAME_1.pts``)."""
    keep = {rel.with_name(name).as_posix() for name in names}
    for pts in files:
        stem = pts[: -len(".pts")]
        mine = Path(stem).parent == rel.parent and Path(stem).name.startswith(rel.name)
        if stem in keep or (Path(stem) in owned and Path(stem) != rel) or not mine:
            continue  # rewritten now, another photo's, or not this photo's
        for ext in (".pts", "_crop.png", "_crop.pts"):
            (out_dir / f"{stem}{ext}").unlink(missing_ok=True)


def _with_ext(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext``: an output stem is a photo's name without its suffix, which may hold
    dots of its own (``2024.01.01``, ``Jane.Doe``) that ``with_suffix`` would cut at."""
    return stem.with_name(stem.name + ext)


def _cells(box: np.ndarray) -> list[str]:
    return [f"{v:.1f}" for v in box]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([header, *rows])
    write_text_atomic(path, table.getvalue())
