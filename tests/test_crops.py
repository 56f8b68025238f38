"""``crct track --crops SIZE``: each face cut out with its eyes level, its points in the crop's
pixels, written beside the points; resuming knows whether a run wrote them and at what size.

The tracking tests run test_batch's fake networks (they find the cartoon face by its colour)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_batch import crct, fakes  # noqa: F401  (fakes: a fixture)
from test_geometry_models import ibug_template

from crct_cli.geometry import face_crop
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import read_pts


def test_a_face_crop_levels_the_eyes_and_its_points_sit_on_the_face() -> None:
    """Dots drawn on a tilted face's 68 points: in the crop the eyes are level, the face is
    centred, and every point of the crop's .pts lies on its dot."""
    turn = np.radians(25.0)
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    points = ibug_template() @ rot.T * 1.5 + np.array([130.0, 110.0])
    ys, xs = np.mgrid[0:240, 0:260].astype(np.float64)
    picture = np.zeros((240, 260), np.float64)
    for x, y in points:
        picture += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    image = np.repeat(picture.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    crop, inside = face_crop(image, points, 96)
    assert crop.shape == (96, 96, 3) and inside.shape == (68, 2)
    eyes = inside[36:42].mean(axis=0), inside[42:48].mean(axis=0)
    assert abs(eyes[0][1] - eyes[1][1]) < 1e-6 and eyes[0][0] < eyes[1][0]
    lo, hi = inside.min(axis=0), inside.max(axis=0)
    assert np.allclose((lo + hi) / 2, 47.5, atol=1e-6)
    assert 96 / 1.3 < max(hi - lo) < 96 / 1.2  # the face fills the crop but the context
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64)
    bright = [cv2.getRectSubPix(grey.astype(np.float32), (1, 1), tuple(p))[0, 0] for p in inside]
    assert min(bright) > 60 and grey.mean() < 40  # on the dots, in a dark picture


def test_crct_track_writes_the_crops_and_resumes_by_their_size(
    make_video: Callable[..., Path],
    tmp_path: Path,
    fakes: None,  # noqa: F811
) -> None:
    clip = make_video("clip.mp4", n_frames=8, width=128, height=96)
    out = tmp_path / "out"
    first = crct("track", clip, "--out", out, "--crops", "48")
    assert first.exit_code == 0, first.output
    annot = sorted(p.name for p in (out / "annot").glob("*.pts"))
    assert len(annot) == 8
    assert sorted(p.name for p in (out / "crops").glob("*.pts")) == annot
    assert len(list((out / "crops").glob("*.png"))) == 8
    assert read_image(out / "crops/000001.png").shape == (48, 48, 3)
    inside = read_pts(out / "crops/000001.pts")
    assert inside.min() > 0 and inside.max() < 48
    again = crct("track", clip, "--out", out, "--crops", "48")
    assert "already tracked" in again.stderr
    smaller = crct("track", clip, "--out", out, "--crops", "32")  # another size: tracked again
    assert smaller.exit_code == 0 and "already tracked" not in smaller.stderr
    assert read_image(out / "crops/000001.png").shape == (32, 32, 3)
    assert "already tracked" in crct("track", clip, "--out", out).stderr  # none asked: done
    redo = crct("track", clip, "--out", out, "--overwrite")
    assert redo.exit_code == 0 and not (out / "crops").exists()  # a run without them
    several = crct("track", clip, "--out", tmp_path / "all", "--faces", "all", "--crops", "32")
    assert several.exit_code == 0, several.output
    assert len(list((tmp_path / "all/faces/0/crops").glob("*.png"))) == 8


@pytest.mark.parametrize("size", ["5", "2000", "-1"])
def test_a_bad_crop_size_is_one_line(size: str, tmp_path: Path) -> None:
    result = crct("track", tmp_path / "a.mp4", "--out", tmp_path / "o", "--crops", size)
    assert result.exit_code == 2
    assert "--crops must be 0 (none) or a side of 16 to 1024 pixels" in result.stderr


def test_crct_align_writes_each_faces_crop_beside_its_points(
    tmp_path: Path, face_image: Callable[..., np.ndarray]
) -> None:
    from test_align import Fakes, det, save

    from crct_cli.align_images import align_images
    from crct_cli.errors import CrctError

    save(tmp_path / "in/a.png", face_image, 64, 48)
    two = Fakes({64: [det([5, 5, 20, 20], 0.99), det([35, 10, 20, 24], 0.9)]})
    out = tmp_path / "out"
    align_images([tmp_path / "in"], out, two.detect, two.localize, crops=32)
    assert sorted(p.name for p in out.iterdir()) == [
        "a.pts",
        "a_1.pts",
        "a_1_crop.png",
        "a_1_crop.pts",
        "a_crop.png",
        "a_crop.pts",
        "faces.csv",
    ]
    assert read_image(out / "a_1_crop.png").shape == (32, 32, 3)
    inside = read_pts(out / "a_1_crop.pts")
    assert inside.min() > 0 and inside.max() < 32
    # another image named like a crop: refused before anything is written
    save(tmp_path / "clash/x.png", face_image, 64, 48)
    save(tmp_path / "clash/x_crop.png", face_image, 64, 48)
    with pytest.raises(CrctError, match="--crops would write over the landmarks of the image"):
        align_images([tmp_path / "clash"], tmp_path / "o2", two.detect, two.localize, crops=32)
    assert not any((tmp_path / "o2").glob("*.pts"))
    assert (
        "--crops must be 0" in crct("align", tmp_path / "in", "--out", out, "--crops", "3").stderr
    )
