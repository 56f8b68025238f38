"""``crct align``, ``denoise`` and ``degrade`` over several inputs: one bad input never stops
the others (one ``crct: error:`` line each, the rest written, exit 2 at the end), NaN options
are refused, a photo without a face is a warning, and ``--weights``
takes the user's own path.

The networks run for real (ONNX Runtime on the CPU, the shipped weights) in ``align``;
``denoise`` runs a tiny scripted IID (``weights.WEIGHTS_DIR`` patched, as in
``test_denoise_cli``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_synthetic_video
from typer.testing import CliRunner

from crct_cli.cli import app
from crct_cli.io.images import read_image, write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import iter_frames
from crct_cli.models import weights

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NETS = ("--backend", "onnx", "--device", "cpu")


def crct(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(result) -> list[str]:
    """The ``crct: error:`` lines of a run that must not have crashed."""
    assert "Traceback" not in result.output
    return [ln for ln in result.stderr.splitlines() if ln.startswith("crct: error: ")]


def face_photo(path: Path, side: int = 160) -> Path:
    """The sample astronaut, small: MTCNN finds her face."""
    rgb = read_image(SAMPLES / "astronaut.jpg")
    write_image(path, cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA))
    return path


def corrupt(path: Path) -> Path:
    path.write_bytes(b"\xff\xd8\xff garbage, not a picture")
    return path


@pytest.fixture
def iid_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny IID-D (its DAE adds a constant) as the weights folder's ``iid_d.pt``."""
    import torch

    from crct_cli.models.fadenn import (
        IID,
        ClassifierConfig,
        DAEConfig,
        IIDConfig,
        iid_weight_config,
    )

    tiny = (4, 6, 8)
    iid = IID(IIDConfig("d", DAEConfig(tiny), ClassifierConfig(tiny, hidden=8)))
    with torch.no_grad():
        iid.dae.decoder.out.bias.fill_(0.1)  # type: ignore[union-attr]
    folder = tmp_path / "weights"
    weights.save_weights(folder / "iid_d.pt", "iid", iid_weight_config(iid), iid.state_dict())
    monkeypatch.setattr(weights, "WEIGHTS_DIR", folder)
    return folder


# ------------------------------------------------------------------ 1: bad files among good


def test_align_goes_on_past_a_corrupt_image(tmp_path: Path) -> None:
    src = tmp_path / "imgs"
    src.mkdir()
    face_photo(src / "a.jpg")
    corrupt(src / "b_bad.jpg")
    face_photo(src / "c.jpg")
    result = crct("align", src, "--out", tmp_path / "out", *NETS)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert "b_bad.jpg" in line and "not a readable image" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pts", "c.pts", "faces.csv"]
    listed = (tmp_path / "out" / "faces.csv").read_text()
    assert "b_bad.jpg" not in listed and "c.jpg" in listed  # a failure is an error, not a row


def test_align_box_from_pts_goes_on_past_bad_pts(tmp_path: Path) -> None:
    src = tmp_path / "bfp"
    src.mkdir()
    box = np.column_stack([np.linspace(40, 120, 68), np.linspace(30, 130, 68)])
    for name in ("a", "b", "c", "d"):
        face_photo(src / f"{name}.jpg")
    write_pts(src / "a.pts", box)
    (src / "b.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")  # malformed
    write_pts(src / "d.pts", box + 1)  # c has no .pts at all
    result = crct("align", src, "--out", tmp_path / "out", "--box-from-pts", *NETS)
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 2 and "b.pts" in lines[0] and "c.pts" in lines[1], lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pts", "d.pts", "faces.csv"]


def test_denoise_goes_on_past_a_bad_video(tmp_path: Path, iid_weights: Path) -> None:
    face = face_photo(tmp_path / "face.png", 64)
    text = tmp_path / "text.mp4"
    text.write_text("hello, this is not a video\n")
    clip = write_synthetic_video(tmp_path / "clip.mp4", n_frames=3, width=64, height=48)
    result = crct("denoise", face, text, clip, "--out", tmp_path / "out", "--variant", "d")
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert "text.mp4" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "face.png"]
    assert len(list(iter_frames(tmp_path / "out" / "clip.mp4"))) == 3


@pytest.mark.parametrize("sets", [["--noise", "blur", "--level", "1"], ["--all"]])
def test_degrade_goes_on_past_a_corrupt_image(tmp_path: Path, sets: list[str]) -> None:
    src = tmp_path / "imgs"
    src.mkdir()
    face_photo(src / "a.png", 32)
    corrupt(src / "b_bad.png")
    face_photo(src / "c.png", 32)
    result = crct("degrade", src, "--out", tmp_path / "out", *sets)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)  # once, not once per set
    assert "b_bad.png" in line
    written = list((tmp_path / "out").rglob("*.png"))
    assert {p.name for p in written} == {"a.png", "c.png"}  # the clean set too: no bad copy
    assert len(written) == (26 if "--all" in sets else 2)
    assert "1 failed" in result.stderr


# ------------------------------------------------------- 2: missing or unreadable named input


@pytest.mark.parametrize("command", ["align", "denoise", "degrade"])
def test_a_missing_named_input_fails_alone(
    tmp_path: Path, request: pytest.FixtureRequest, command: str
) -> None:
    if command == "denoise":
        request.getfixturevalue("iid_weights")  # align keeps the shipped weights
    face = face_photo(tmp_path / "face.jpg")
    extra = {
        "align": [*NETS],
        "denoise": ["--variant", "d"],
        "degrade": ["--noise", "blur", "--level", "1"],
    }[command]
    out = tmp_path / "out"
    result = crct(command, face, tmp_path / "nope.jpg", "--out", out, *extra)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert "nope.jpg" in line and "no such file" in line
    written = "face.pts" if command == "align" else "face.jpg"
    assert (out / written).is_file()


def _unprivileged() -> list[str] | None:
    """A prefix that makes permissions count (root reads any file), or None where none can."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize("command", ["align", "degrade"])
def test_an_unreadable_named_input_fails_alone(tmp_path: Path, command: str) -> None:
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: every file is readable")
    face = face_photo(tmp_path / "face.png", 64 if command == "degrade" else 160)
    locked = face_photo(tmp_path / "locked.png", 64)
    locked.chmod(0)
    extra = [*NETS] if command == "align" else ["--noise", "blur", "--level", "1"]
    out = tmp_path / "out"
    try:
        run = subprocess.run(
            [*prefix, sys.executable, "-m", "crct_cli", command, str(face), str(locked)]
            + ["--out", str(out), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        locked.chmod(0o644)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("crct: error: ")]
    assert len(lines) == 1 and "locked.png" in lines[0] and "permission denied" in lines[0]
    assert (out / ("face.pts" if command == "align" else "face.png")).is_file()


# ------------------------------------------------------------------------ 3: NaN options


@pytest.mark.parametrize("value", ["nan", "-nan"])
def test_denoise_smoothing_nan_is_refused(tmp_path: Path, iid_weights: Path, value: str) -> None:
    face = face_photo(tmp_path / "face.png", 32)
    args = ["--out", tmp_path / "out", "--variant", "d", "--smoothing", value]
    result = crct("denoise", face, *args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("crct: error: --smoothing") and "nan" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 5: a photo with no face


def test_a_photo_without_a_face_is_one_warning_and_exit_0(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    write_image(gray, np.full((120, 160), 128, np.uint8))
    alone = crct("align", gray, "--out", tmp_path / "one", *NETS)
    among = crct("align", face_photo(tmp_path / "face.jpg"), gray, "--out", tmp_path / "two", *NETS)
    for result in (alone, among):
        assert result.exit_code == 0, result.output
        assert error_lines(result) == []
        assert result.stderr.count("no face found") == 1, result.stderr
        assert f"crct: warning: {gray}: no face found" in result.stderr
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["face.pts", "faces.csv"]


# ------------------------------------------------------------------ 6: --weights as given


def test_weights_path_is_taken_as_the_user_gave_it(
    tmp_path: Path, iid_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    face = face_photo(tmp_path / "face.png", 32)
    result = crct("denoise", face, "--out", "out", "--variant", "d", "--weights", "in/nope.pt")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "in/nope.pt" in line and str(iid_weights) not in line and "reinstall" not in line
    (tmp_path / "mine").mkdir()
    shutil.copy(iid_weights / "iid_d.pt", tmp_path / "mine" / "d.pt")
    result = crct("denoise", face, "--out", "out", "--variant", "d", "--weights", "mine/d.pt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "face.png").is_file()


# ------------------------------------------------------------------ HEIC/HEIF and AVIF photos


def aligned_like_png(tmp_path: Path, name: str) -> Path:
    """The small astronaut as PNG and as ``name`` (another format) in one folder, aligned by
    crct align: the same face, within what the format's compression moves. The folder."""
    from crct_cli.io.landmarks import read_pts

    src = tmp_path / "photos"
    src.mkdir()
    face_photo(src / "face.png")
    write_image(src / name, read_image(src / "face.png"))
    result = crct("align", src, "--out", tmp_path / "out", *NETS)
    assert result.exit_code == 0, result.output
    png = read_pts(tmp_path / "out" / "face.pts")
    other = read_pts(tmp_path / "out" / f"{Path(name).stem}.pts")
    assert np.abs(png - other).max() < 3.0
    return src


def test_a_phone_s_heic_photo_is_read_upright_and_aligned(tmp_path: Path) -> None:
    """HEIC (an iPhone's photos) through pillow-heif: turned as the photo says (its EXIF
    orientation, which pillow-heif stores as a HEIF transform), aligned like its JPEG, and
    written back as HEIC by crct degrade."""
    heif = pytest.importorskip("pillow_heif", reason="HEIC photos need crct[heif] (pillow-heif)")
    from PIL import Image

    heif.register_heif_opener()
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :20] = 255  # a mark top left, as stored
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    picture.save(tmp_path / "oriented.heic", exif=exif.tobytes(), quality=95)
    upright = read_image(tmp_path / "oriented.heic")
    ys, xs = np.nonzero(upright[..., 0] > 128)
    assert upright.shape == (60, 40, 3) and xs.mean() > 30 and ys.mean() < 15  # top right

    src = aligned_like_png(tmp_path, "face_phone.heic")
    done = crct("degrade", src / "face_phone.heic", "--out", tmp_path / "deg", "--noise", "blur",
                "--level", "1")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert read_image(tmp_path / "deg" / "face_phone.heic").shape == (160, 160, 3)


@pytest.fixture
def no_pillow_heif(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pillow-heif as if not installed (its import fails), its registration forgotten before
    and after (an earlier test of this process may have registered it)."""
    from crct_cli.io import images

    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    images._heif.cache_clear()
    yield
    images._heif.cache_clear()


def test_without_pillow_heif_a_heic_photo_fails_alone_saying_how_to_read_it(
    tmp_path: Path, no_pillow_heif: None
) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    face_photo(src / "a.jpg")
    (src / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # never opened
    result = crct("align", src, "--out", tmp_path / "out", *NETS)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert "IMG_0001.HEIC" in line and "pip install 'crct[heif]'" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pts", "faces.csv"]


def test_an_avif_photo_is_read_and_aligned_where_opencv_has_avif(tmp_path: Path) -> None:
    if not cv2.imencode(".avif", np.zeros((16, 16, 3), np.uint8))[0]:
        pytest.skip("this OpenCV build has no AVIF codec")
    aligned_like_png(tmp_path, "face_avif.avif")
