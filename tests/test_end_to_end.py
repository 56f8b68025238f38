"""The shipped weights on the bundled sample: points must land on the face.

These run the real command line with the real networks (MTCNN, BT, FV, FLL) on
``samples/astronaut.mp4`` and ``samples/astronaut.jpg``; checks are anatomical and against an
independent MTCNN detection, so they fail if a model or the geometry is broken.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crct_cli.cli import app
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import read_pts
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import iter_frames

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def detector():
    from crct_cli.tracking.detector import FaceDetector

    return FaceDetector("cpu")


def assert_on_face(points: np.ndarray, raw_box: np.ndarray) -> None:
    """Inside the detector's box (with a margin), eyes above the nose above the mouth."""
    x, y, w, h = raw_box
    margin = 0.15
    assert np.all(points[:, 0] > x - margin * w) and np.all(points[:, 0] < x + (1 + margin) * w)
    assert np.all(points[:, 1] > y - margin * h) and np.all(points[:, 1] < y + (1 + margin) * h)
    eyes_y = points[36:48, 1].mean()
    nose_y = points[30:36, 1].mean()
    mouth_y = points[48:68, 1].mean()
    assert eyes_y < nose_y < mouth_y
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # subject's right eye on image left
    assert points[0, 0] < points[16, 0]  # jaw runs left to right in the image


def run(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_align_finds_the_astronaut(tmp_path: Path, detector) -> None:
    run("align", SAMPLES / "astronaut.jpg", "--out", tmp_path)
    points = read_pts(tmp_path / "astronaut.pts")
    dets = detector(read_image(SAMPLES / "astronaut.jpg"))
    assert_on_face(points, dets[0].raw_box)


def test_track_stays_on_the_face(tmp_path: Path, detector) -> None:
    run("track", SAMPLES / "astronaut.mp4", "--out", tmp_path, "--overlay")
    frames = list(iter_frames(SAMPLES / "astronaut.mp4"))
    files = sorted((tmp_path / "annot").glob("*.pts"))
    assert [f.name for f in files] == [f"{i + 1:06d}.pts" for i in range(len(frames))]
    track = read_track_json(tmp_path / "track.json")
    states = [f.state for f in track.frames]
    assert states.count("lost") <= len(states) // 10, states
    for k in range(0, len(frames), 10):  # every 10th frame against a fresh detection
        dets = detector(frames[k].image)
        assert dets, f"MTCNN finds no face in frame {k}"
        assert_on_face(read_pts(files[k]), dets[0].raw_box)
    assert (tmp_path / "overlay.mp4").is_file()
