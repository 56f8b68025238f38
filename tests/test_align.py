"""``align_images`` with fake detect/localize callables: files written, folders, refusals."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crct_cli.align_images import align_images, collect_images
from crct_cli.errors import CrctError
from crct_cli.io.images import read_image, write_image
from crct_cli.io.landmarks import read_pts, write_pts
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection

_UNIT = np.random.default_rng(5).uniform(0.0, 1.0, (68, 2))
_UNIT = (_UNIT - _UNIT.min(axis=0)) / (_UNIT.max(axis=0) - _UNIT.min(axis=0))

Draw = Callable[..., np.ndarray]


def shape_in(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return box[:2] + _UNIT * box[2:]


def det(box: list[float], score: float) -> Detection:
    b = np.array(box, dtype=np.float64)
    return Detection(b, b.copy(), score)


class Fakes:
    """Detections scripted by image width (each test image has its own); calls recorded."""

    def __init__(self, by_width: dict[int, list[Detection]] | None = None) -> None:
        self.by_width = by_width or {}
        self.detected: list[int] = []
        self.localized: list[tuple[int, np.ndarray]] = []

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        self.detected.append(image.shape[1])
        return list(self.by_width.get(image.shape[1], [det([5, 5, 20, 20], 0.99)]))

    def localize(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        self.localized.append((image.shape[1], np.array(box)))
        return shape_in(box)


def no_detect(image: np.ndarray) -> list[Detection]:
    raise AssertionError("detect must not be called with box_from_pts")


def save(path: Path, draw: Draw, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, draw(width, height))
    return path


def test_folders_are_mirrored(tmp_path: Path, face_image: Draw) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", face_image, 64)
    save(src / "sub" / "b.jpg", face_image, 72)
    save(src / "sub" / "deeper" / "c.png", face_image, 80)
    (src / "sub" / "notes.txt").write_text("not an image")
    # hidden files are passed over, as crct track's walk does: macOS's AppleDouble ._a.png
    # (no picture in it: it was an error line a photo), a hidden folder's pictures
    (src / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    save(src / ".thumbs" / "d.png", face_image, 88)
    fakes = Fakes()
    summary = align_images([src], out, fakes.detect, fakes.localize)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.pts", "faces.csv", "sub/b.pts", "sub/deeper/c.pts"]
    assert summary.images == 3 and summary.faces == 3 and summary.without_face == []
    assert sorted(fakes.detected) == [64, 72, 80]
    assert np.allclose(read_pts(out / "a.pts"), shape_in([5, 5, 20, 20]), atol=1e-3)


def test_faces_by_confidence_name_and_name_1(tmp_path: Path, face_image: Draw) -> None:
    image = save(tmp_path / "in" / "two.png", face_image, 64)
    weak, strong = det([30, 10, 20, 24], 0.92), det([4, 6, 22, 26], 0.999)
    fakes = Fakes({64: [weak, strong]})  # the detector's order is not trusted
    out = tmp_path / "out"
    summary = align_images([image], out, fakes.detect, fakes.localize)
    assert sorted(p.name for p in out.iterdir()) == ["faces.csv", "two.pts", "two_1.pts"]
    assert np.allclose(box_from_points(read_pts(out / "two.pts")), strong.box, atol=2e-3)
    # faces.csv: each face's file, the detector's confidence and its points' box, in order
    with open(out / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["face"], r["pts"], r["detection_score"]) for r in rows] == [
        ("0", "two.pts", "0.9990"),
        ("1", "two_1.pts", "0.9200"),
    ]
    assert all(r["image"] == str(image) for r in rows)
    box = [float(rows[0][k]) for k in ("box_x", "box_y", "box_w", "box_h")]
    assert np.allclose(box, box_from_points(read_pts(out / "two.pts")), atol=0.06)
    assert np.allclose(box_from_points(read_pts(out / "two_1.pts")), weak.box, atol=2e-3)
    assert summary.faces == 2 and summary.images == 1
    assert summary.written == [str(out / "two.pts"), str(out / "two_1.pts")]


def test_extra_faces_never_take_another_images_name(tmp_path: Path, face_image: Draw) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", face_image, 64)  # three faces
    save(src / "a_1.png", face_image, 72)  # one face, whose landmarks own a_1.pts
    faces = [det([4, 4, 20, 20], 0.99), det([30, 4, 20, 20], 0.95), det([4, 26, 20, 20], 0.9)]
    fakes = Fakes({64: faces})
    summary = align_images([src], out, fakes.detect, fakes.localize)
    names = ["a.pts", "a_1.pts", "a_2.pts", "a_3.pts", "faces.csv"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert summary.faces == 4
    # a_1.pts is the image a_1.png's face, a.png's second and third faces are a_2 and a_3
    assert np.allclose(read_pts(out / "a_1.pts"), shape_in([5, 5, 20, 20]), atol=1e-3)
    assert np.allclose(box_from_points(read_pts(out / "a_2.pts")), faces[1].box, atol=2e-3)
    assert np.allclose(box_from_points(read_pts(out / "a_3.pts")), faces[2].box, atol=2e-3)


def test_box_from_pts_uses_exactly_the_box_beside_the_image(
    tmp_path: Path, face_image: Draw
) -> None:
    src = tmp_path / "in"
    image = save(src / "gt.png", face_image, 64)
    truth = np.random.default_rng(1).uniform(8, 40, (68, 2))
    write_pts(image.with_suffix(".pts"), truth)
    fakes = Fakes()
    out = tmp_path / "out"
    summary = align_images([src], out, no_detect, fakes.localize, box_from_pts=True)
    ((width, box),) = fakes.localized
    assert width == 64
    assert np.array_equal(box, box_from_points(read_pts(image.with_suffix(".pts"))))
    assert np.allclose(box, box_from_points(truth), atol=2e-3)
    assert summary.faces == 1 and (out / "gt.pts").is_file()


def test_box_from_pts_without_pts_file_is_an_error(tmp_path: Path, face_image: Draw) -> None:
    image = save(tmp_path / "in" / "lonely.png", face_image)
    fakes = Fakes()
    with pytest.raises(CrctError, match="lonely.pts"):
        align_images([image], tmp_path / "out", no_detect, fakes.localize, box_from_pts=True)


@pytest.mark.parametrize("box_from_pts", [True, False])
def test_refuses_to_overwrite_ground_truth(
    tmp_path: Path, face_image: Draw, box_from_pts: bool
) -> None:
    src = tmp_path / "in"
    image = save(src / "gt.png", face_image)
    write_pts(image.with_suffix(".pts"), np.random.default_rng(2).uniform(8, 40, (68, 2)))
    before = image.with_suffix(".pts").read_bytes()
    fakes = Fakes()
    detect = no_detect if box_from_pts else fakes.detect
    with pytest.raises(CrctError, match="overwrite"):
        align_images([src], src, detect, fakes.localize, box_from_pts=box_from_pts)
    with pytest.raises(CrctError, match="overwrite"):  # the same folder spelt differently
        align_images([image], src / "." / "x" / "..", detect, fakes.localize, box_from_pts)
    assert image.with_suffix(".pts").read_bytes() == before
    assert fakes.localized == [] and fakes.detected == []


def test_image_without_face_is_listed(tmp_path: Path, face_image: Draw) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "face.png", face_image, 64)
    empty = save(src / "empty.png", face_image, 70)
    seen: list[Path] = []
    fakes = Fakes({70: []})
    summary = align_images([src], out, fakes.detect, fakes.localize, on_image=seen.append)
    assert summary.without_face == [str(empty)]
    assert summary.images == 2 and summary.faces == 1
    assert sorted(p.name for p in out.iterdir()) == ["face.pts", "faces.csv"]
    assert sorted(p.name for p in seen) == ["empty.png", "face.png"]
    with open(out / "faces.csv", newline="") as fh:  # the photo without a face is listed too
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    assert rows[str(empty)]["pts"] == "" and rows[str(empty)]["face"] == ""


def test_overlay_is_written(tmp_path: Path, face_image: Draw) -> None:
    image = save(tmp_path / "in" / "pic.png", face_image, 64, 48)
    out = tmp_path / "out"
    fakes = Fakes({64: [det([10, 8, 30, 30], 0.99), det([40, 5, 15, 15], 0.95)]})
    align_images([image], out, fakes.detect, fakes.localize, overlay=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "faces.csv",
        "pic.pts",
        "pic_1.pts",
        "pic_overlay.jpg",
    ]
    drawn = read_image(out / "pic_overlay.jpg")
    assert drawn.shape == (48, 64, 3)
    assert np.abs(drawn.astype(int) - read_image(image).astype(int)).max() > 100


def test_non_image_and_missing_paths_are_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fakes = Fakes()
    with pytest.raises(CrctError, match="not an image"):
        align_images([text], tmp_path / "out", fakes.detect, fakes.localize)
    with pytest.raises(CrctError, match="no such"):
        align_images([tmp_path / "nope.png"], tmp_path / "out", fakes.detect, fakes.localize)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrctError, match="no images"):
        collect_images([tmp_path / "empty"])
    assert not (tmp_path / "out").exists()


def test_two_inputs_with_one_output_are_refused(tmp_path: Path, face_image: Draw) -> None:
    save(tmp_path / "in" / "a.png", face_image)
    save(tmp_path / "in" / "a.jpg", face_image)
    fakes = Fakes()
    with pytest.raises(CrctError, match=r"a\.pts"):
        align_images([tmp_path / "in"], tmp_path / "out", fakes.detect, fakes.localize)
    x = save(tmp_path / "x" / "same.png", face_image)
    y = save(tmp_path / "y" / "same.png", face_image)
    with pytest.raises(CrctError, match=r"same\.pts"):
        align_images([x, y], tmp_path / "out", fakes.detect, fakes.localize)
    assert not (tmp_path / "out").exists() and fakes.detected == []


def jpeg_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    """A JPEG of ``rgb`` as stored, with an EXIF orientation tag (1-8) as phones write it."""
    import struct

    import cv2

    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    jpeg = encoded.tobytes()
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    assert jpeg[2:4] == b"\xff\xe0"  # after the JFIF header
    at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:at] + segment + jpeg[at:]


def test_a_phones_sideways_jpeg_is_read_upright(tmp_path: Path) -> None:
    """EXIF orientation 6 (stored turned a quarter anticlockwise, shown turned back) and 3
    (upside down) are read as a viewer shows them; without the tag, as stored."""
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:10, :20] = (250, 30, 30)  # a red block at the top left
    stored = np.rot90(upright).copy()  # a quarter turn anticlockwise: 60 high, 40 wide
    (tmp_path / "six.jpg").write_bytes(jpeg_with_orientation(stored, 6))
    (tmp_path / "three.jpg").write_bytes(jpeg_with_orientation(upright[::-1, ::-1].copy(), 3))
    (tmp_path / "one.jpg").write_bytes(jpeg_with_orientation(stored, 1))
    for name in ("six.jpg", "three.jpg"):
        image = read_image(tmp_path / name)
        assert image.shape == upright.shape, name
        assert np.abs(image.astype(int) - upright).mean() < 3, name  # JPEG's own error
        assert image[2:8, 2:18, 0].min() > 200 and image[20:, 30:].max() < 40, name
    assert read_image(tmp_path / "one.jpg").shape == stored.shape


def test_grey_sixteen_bit_and_alpha_pictures_are_read_as_rgb(tmp_path: Path) -> None:
    import cv2

    grey = np.tile(np.arange(0, 200, 4, dtype=np.uint8), (30, 1))
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    deep = (grey.astype(np.uint16) * 300).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    rgba = np.dstack(
        [np.full((30, 50, 3), (10, 120, 240), np.uint8), np.full((30, 50), 7, np.uint8)]
    )
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)  # BGRA on disk
    got = read_image(tmp_path / "grey.png")
    assert got.shape == (30, 50, 3) and (got == grey[..., None]).all()
    got = read_image(tmp_path / "deep.png")
    assert got.dtype == np.uint8 and (got[..., 0] == got[..., 2]).all()
    assert (got[..., 0] == np.round(deep / 257.0)).all()  # 65535 is white, as viewers show it
    lit = deep.copy()
    lit[:3, :3] = 65535  # one highlight: the rest of the frame reads as it did (no flicker)
    cv2.imwrite(str(tmp_path / "lit.png"), lit)
    assert (read_image(tmp_path / "lit.png")[3:] == got[3:]).all()
    cv2.imwrite(str(tmp_path / "float.tif"), np.full((30, 50), 0.5, np.float32))
    assert (read_image(tmp_path / "float.tif") == 128).all()  # a float TIFF's 0-1
    cv2.imwrite(str(tmp_path / "float255.tif"), np.full((30, 50), 100.0, np.float32))
    assert (read_image(tmp_path / "float255.tif") == 100).all()  # one holding 0-255
    twelve = (grey.astype(np.uint16) * 20).astype(np.uint16)  # a 12-bit camera's, up to 3920
    cv2.imwrite(str(tmp_path / "twelve.png"), twelve)
    assert (read_image(tmp_path / "twelve.png")[..., 0] == np.round(twelve / 4095 * 255)).all()
    assert (read_image(tmp_path / "alpha.png") == (240, 120, 10)).all()


def test_an_output_folder_inside_the_input_is_not_read_as_input(
    tmp_path: Path, face_image: Draw
) -> None:
    """``crct align photos --out photos/out`` twice: the second run reads the photos, not the
    overlays and crops the first wrote (which it would align again, as ..._overlay_overlay)."""
    from crct_cli.align_images import collect_images

    src = tmp_path / "photos"
    save(src / "a.png", face_image, 64)
    save(src / "sub" / "b.png", face_image, 64)
    save(src / "out" / "a_overlay.jpg", face_image, 64)  # a run before
    save(src / "out" / "sub" / "b_crop.png", face_image, 64)
    names = [rel.as_posix() for _, rel in collect_images([src], out=src / "out")]
    assert names == ["a", "sub/b"]
    assert len(collect_images([src])) == 4  # without the output folder named: every image


def test_names_with_dots_keep_them(tmp_path: Path, face_image: Draw) -> None:
    """A photo named with dots (a date, First.Last) keeps its whole name in every output: its
    crops went to the name cut at the last dot (``2024.01.png``), one photo's over another's
    and over the landmarks of a photo ``2024.01.jpg``."""
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "2024.01.01.png", face_image, 64)
    save(src / "2024.01.02.png", face_image, 72)
    save(src / "2024.01.png", face_image, 80)
    fakes = Fakes()
    align_images([src], out, fakes.detect, fakes.localize, crops=24)
    stems = ["2024.01.01", "2024.01.02", "2024.01"]
    expected = sorted(
        [f"{s}.pts" for s in stems]
        + [f"{s}_crop.{e}" for s in stems for e in ("png", "pts")]
        + ["faces.csv"]
    )
    assert sorted(p.name for p in out.iterdir()) == expected
    # 2024.01.pts holds the photo's own points, not a crop's
    assert np.allclose(read_pts(out / "2024.01.pts"), shape_in([5, 5, 20, 20]), atol=1e-3)


def test_refuses_to_overwrite_ground_truth_of_a_name_with_dots(
    tmp_path: Path, face_image: Draw
) -> None:
    """``face.v2.jpg``'s labels are ``face.v2.pts``: the output beside it is refused as for any
    other name (the check looked at ``face.pts`` and let the labels be overwritten)."""
    image = save(tmp_path / "face.v2.png", face_image)
    labels = image.with_suffix(".pts")
    write_pts(labels, np.random.default_rng(3).uniform(8, 40, (68, 2)))
    before = labels.read_bytes()
    fakes = Fakes()
    with pytest.raises(CrctError, match="overwrite|beside"):
        align_images([image], tmp_path, fakes.detect, fakes.localize)
    assert labels.read_bytes() == before


def test_a_photo_aligned_again_keeps_no_face_it_no_longer_has(
    tmp_path: Path, face_image: Draw
) -> None:
    """Aligned again into the same folder, a photo in which fewer faces are found (another
    --min-face, another model) loses the earlier run's extra ``NAME_1.pts`` and its crops,
    which faces.csv no longer lists; another photo's files stay."""
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "two.png", face_image, 64)
    save(src / "two_1.png", face_image, 72)  # owns two_1.pts: two.png's second face is two_2
    save(src / "one.png", face_image, 80)
    faces = [det([4, 4, 20, 20], 0.99), det([30, 4, 20, 20], 0.95)]
    align_images([src], out, Fakes({64: faces}).detect, Fakes().localize, crops=24)
    assert (out / "two_2.pts").is_file() and (out / "two_2_crop.png").is_file()
    align_images([src], out, Fakes({64: faces[:1], 80: []}).detect, Fakes().localize)
    left = sorted(p.name for p in out.iterdir())
    assert left == [
        "faces.csv", "two.pts", "two_1.pts", "two_1_crop.png", "two_1_crop.pts",
        "two_crop.png", "two_crop.pts",
    ]  # fmt: skip
    with open(out / "faces.csv", newline="") as fh:
        listed = sorted(r["pts"] for r in csv.DictReader(fh) if r["pts"])
    assert listed == ["two.pts", "two_1.pts"]


def test_a_scheduler_s_sigterm_stops_crct_align_as_ctrl_c_does(
    tmp_path: Path, face_image: Draw
) -> None:
    """timeout, SLURM and docker stop send SIGTERM: crct align stops as after Ctrl-C, one line
    and exit 130, as the README's exit codes say (it died silently with 143)."""
    import signal
    import subprocess
    import sys
    import time

    save(tmp_path / "in" / "a.png", face_image, 64)
    started = tmp_path / "started"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import crct_cli.align_images as align\n"
        "def slow(*args, **kwargs):\n"
        f"    Path({str(started)!r}).touch()\n"
        "    time.sleep(120)\n"
        "align.align_images = slow\n"
        "from crct_cli.cli import app\n"
        "sys.argv = ['crct', *sys.argv[1:]]\n"
        "app()\n"
    )
    args = ["align", tmp_path / "in", "--out", tmp_path / "out", "--backend", "onnx"]
    child = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the run never started aligning"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr[-2000:]
    assert stderr.strip().endswith("crct: interrupted")
