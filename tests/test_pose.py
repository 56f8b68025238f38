"""Head pose (``crct track --pose``, ``Tracker(pose=True)``): the 3D face learnt by factorising
2D views, the pose solver against known poses, mirror images, the shipped model, and the pose
columns of landmarks.csv and track.json."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from clips import write_mirrored_pair
from typer.testing import CliRunner

from crct_cli import Tracker
from crct_cli.cli import app
from crct_cli.errors import CrctError
from crct_cli.io.images import read_image
from crct_cli.io.landmarks import write_pts
from crct_cli.io.openface_csv import COLUMNS, read_landmarks_csv
from crct_cli.io.track_json import read_track_json
from crct_cli.landmarks import FLIP_PERMUTATION
from crct_cli.models.weights import WEIGHTS_DIR, read_manifest
from crct_cli.pose import (
    EYE_WIDTH_MM,
    FACE_MODEL_FILE,
    POSE_COLUMNS,
    default_focal,
    euler_to_rotation,
    fit_face_model,
    head_pose,
    project,
    read_face_model,
    rotation_to_euler,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def mirrored_pose(pose: np.ndarray) -> np.ndarray:
    """The pose of the face's mirror image about the camera's vertical plane."""
    return pose * np.array([-1, 1, 1, 1, -1, -1])


def symmetric_face(rng: np.random.Generator) -> np.ndarray:
    """A random rigid face (68, 3), mm, symmetric under the flip permutation, whose landmarks
    sit where a face's do (eyes across, chin below the bridge, nose forward)."""
    model = read_face_model(WEIGHTS_DIR / FACE_MODEL_FILE)
    face = model + rng.normal(0, 4.0, model.shape)
    mirror = face[list(FLIP_PERMUTATION)] * [-1, 1, 1]
    return (face + mirror) / 2


def views(face: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` scaled orthographic views of ``face``: yaw to 60 degrees, pitch and roll to 20,
    each at its own scale and place, with half a pixel of noise."""
    out = []
    for _ in range(n):
        angles = np.radians([rng.uniform(-20, 20), rng.uniform(-60, 60), rng.uniform(-20, 20)])
        seen = face @ euler_to_rotation(angles).T
        out.append(seen[:, :2] * rng.uniform(0.8, 2.0) + rng.uniform(50, 300, 2))
    return np.array(out) + rng.normal(0, 0.5, (n, 68, 2))


def aligned_gap(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance (mm) between two 3D shapes after the best rotation of one onto the other."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    turn = u @ vt
    if np.linalg.det(turn) < 0:
        return math.inf
    return float(np.sqrt(((a @ turn.T - b) ** 2).sum(axis=1).mean()))


def test_euler_angles_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        angles = rng.uniform(-1.2, 1.2, 3)
        rotation = euler_to_rotation(angles)
        assert np.allclose(rotation @ rotation.T, np.eye(3))
        assert np.allclose(rotation_to_euler(rotation), angles)


def test_the_factorisation_recovers_a_rigid_face_from_its_views() -> None:
    rng = np.random.default_rng(1)
    face = symmetric_face(rng)
    face *= EYE_WIDTH_MM / np.linalg.norm(face[45] - face[36])
    model = fit_face_model(views(face, rng, 300), mirror=False)
    assert aligned_gap(model, face) < 1.5  # mm, on a face about 150 mm across
    flat = face.copy()
    flat[:, 2] = 0  # a model without depth is far off
    assert aligned_gap(flat, face) > 10
    assert model[30, 2] < model[[0, 16], 2].mean()  # the nose comes towards the camera
    assert model[45, 0] > model[36, 0] and model[8, 1] > model[27, 1]
    assert np.linalg.norm(model[45] - model[36]) == pytest.approx(EYE_WIDTH_MM)
    with pytest.raises(CrctError):
        fit_face_model(views(face, rng, 2))


def test_the_pose_of_a_projected_face_is_the_pose_it_was_projected_at() -> None:
    model = read_face_model(WEIGHTS_DIR / FACE_MODEL_FILE)
    rng = np.random.default_rng(2)
    for _ in range(20):
        angles = np.radians([rng.uniform(-30, 30), rng.uniform(-60, 60), rng.uniform(-30, 30)])
        pose = np.concatenate([rng.uniform(-150, 150, 2), [rng.uniform(400, 2000)], angles])
        points = project(model, pose, 900.0, (640, 360)) + rng.normal(0, 0.3, (68, 2))
        found = head_pose(points, 1280, 720, model, focal=900.0)
        assert np.degrees(np.abs(found[3:] - pose[3:])).max() < 1.0
        assert np.abs(found[:3] - pose[:3]).max() < 0.03 * pose[2]
    frontal = project(model, [0, 0, 600, 0, 0, 0], 500.0, (320, 240))
    assert np.abs(head_pose(frontal, 640, 480, model)[3:]).max() < 1e-3  # 500 px at 640x480


def open_jaw(model: np.ndarray, degrees: float) -> np.ndarray:
    """The model with its jaw dropped: the lower jaw line (points 3-13) and the lower lips
    (55-59, 65-67) turned ``degrees`` about the axis through the jaw's ends (0 and 16)."""
    face = model.copy()
    lower = [*range(3, 14), *range(55, 60), 65, 66, 67]
    hinge = (face[0] + face[16]) / 2
    drop = euler_to_rotation((-math.radians(degrees), 0, 0))
    face[lower] = (face[lower] - hinge) @ drop.T + hinge
    return face


def test_an_open_mouth_does_not_read_as_a_nod() -> None:
    """The skull's points lead the fit, so a dropped jaw leaves the pose where the head is;
    a fit of all 68 points alike reads the same face as tipped by about 2 degrees."""
    model = read_face_model(WEIGHTS_DIR / FACE_MODEL_FILE)
    rng = np.random.default_rng(5)
    rigid, alike = [], []
    for _ in range(30):
        angles = np.radians([rng.uniform(-25, 25), rng.uniform(-50, 50), rng.uniform(-25, 25)])
        pose = np.concatenate([rng.uniform(-40, 40, 2), [rng.uniform(500, 900)], angles])
        points = project(open_jaw(model, 10.0), pose, 500.0, (320, 240))
        points += rng.normal(0, 0.3, points.shape)
        rigid.append(np.degrees(np.abs(head_pose(points, 640, 480, model)[3:] - pose[3:])))
        found = head_pose(points, 640, 480, model, weights=np.ones(68))
        alike.append(np.degrees(np.abs(found[3:] - pose[3:])))
    rigid_err, alike_err = np.median(rigid, axis=0), np.median(alike, axis=0)
    assert rigid_err.max() < 1.2  # degrees of pitch, yaw and roll (median over the poses)
    assert rigid_err[0] < 0.5 * alike_err[0]  # the pitch the open mouth put in, halved at least
    # with the mouth closed both fits find the pose
    closed = project(model, [10, -5, 700, 0.2, -0.4, 0.1], 500.0, (320, 240))
    for weights in (None, np.ones(68)):
        found = head_pose(closed, 640, 480, model, weights=weights)
        assert np.allclose(found[3:], [0.2, -0.4, 0.1], atol=1e-4)


def test_a_mirrored_face_has_the_mirrored_pose() -> None:
    model = read_face_model(WEIGHTS_DIR / FACE_MODEL_FILE)
    pose = np.array([40.0, -20.0, 700.0, 0.2, 0.5, -0.15])
    points = project(model, pose, 600.0, (320, 240))
    mirror = points[list(FLIP_PERMUTATION)].copy()
    mirror[:, 0] = 640 - mirror[:, 0]
    found = head_pose(mirror, 640, 480, model, focal=600.0)
    assert np.allclose(found, mirrored_pose(pose), atol=1e-3 * 700)


def test_the_shipped_model_is_a_symmetric_face_listed_in_the_manifest(tmp_path: Path) -> None:
    path = WEIGHTS_DIR / FACE_MODEL_FILE
    model = read_face_model(path)
    assert np.abs(model[list(FLIP_PERMUTATION)] * [-1, 1, 1] - model).max() < 0.5
    assert model[30, 2] < model[[0, 16], 2].mean() - 50  # the nose well in front of the ears
    entry = read_manifest(WEIGHTS_DIR)["weights"][FACE_MODEL_FILE]
    assert entry["command"].startswith("crct train face3d ")
    assert entry["val_metrics"]["model_nme"] < entry["val_metrics"]["flat_nme"]
    shutil.copy(WEIGHTS_DIR / "manifest.json", tmp_path / "manifest.json")
    doc = json.loads(path.read_text())
    doc["points_mm"][30][2] += 1.0
    (tmp_path / FACE_MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(CrctError, match="corrupt"):
        read_face_model(tmp_path / FACE_MODEL_FILE)
    with pytest.raises(CrctError, match="missing"):
        read_face_model(tmp_path / "nothing.json")


def test_crct_train_face3d_learns_a_model_from_markup(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    face = symmetric_face(rng)
    folders = {"train": 120, "val": 30}
    blank = np.zeros((4, 4, 3), np.uint8)
    for name, n in folders.items():
        (tmp_path / name).mkdir()
        for i, shape in enumerate(views(face, rng, n)):
            write_pts(tmp_path / name / f"{i:03d}.pts", shape)
            cv2.imwrite(str(tmp_path / name / f"{i:03d}.png"), blank)
    out = tmp_path / "w" / FACE_MODEL_FILE
    result = CliRunner().invoke(
        app,
        [
            "train",
            "face3d",
            str(tmp_path / "train"),
            "--val",
            str(tmp_path / "val"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    model = read_face_model(out)  # checked against the manifest written beside it
    face *= EYE_WIDTH_MM / np.linalg.norm(face[45] - face[36])
    assert aligned_gap(model, face) < 3.0
    entry = read_manifest(out.parent)["weights"][FACE_MODEL_FILE]
    assert entry["kind"] == "face3d" and "--val" in entry["command"]
    metrics = entry["val_metrics"]
    assert metrics["faces"] == 30 and metrics["model_nme"] < 0.5 * metrics["flat_nme"]
    assert metrics["yaw_rank_correlation"] > 0.9


@pytest.fixture(scope="module")
def mirrored_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut and her mirror image, placed mirror-wise about the frame's middle."""
    face = read_image(SAMPLES / "astronaut.jpg")[::2, ::2]
    return write_mirrored_pair(tmp_path_factory.mktemp("pose") / "pair.mp4", face, 6)


def test_two_mirrored_faces_get_mirrored_poses(mirrored_pair: Path) -> None:
    """The two faces are mirror images about the frame's middle, so their poses are; and each,
    a photograph taken head-on pasted off the camera's axis, turns towards the camera by the
    angle at which the camera sees it (positive yaw: the nose towards the image's left)."""
    tracker = Tracker(faces="all", device="cpu", backend="onnx", pose=True, flip=True)
    frames = list(tracker.track(mirrored_pair))
    assert len(frames) == 6
    height, width = frames[0].image.shape[:2]
    focal = default_focal(width, height)
    for frame in frames:
        left, right = frame.face(0), frame.face(1)
        assert left is not None and right is not None
        assert left.pose is not None and right.pose is not None
        gap = right.pose - mirrored_pose(left.pose)
        assert np.degrees(np.abs(gap[3:])).max() < 1.0, frame.index
        assert np.abs(gap[:3]).max() < 0.015 * left.pose[2], frame.index
        for face in (left, right):
            seen = math.atan((face.points[:, 0].mean() - width / 2) / focal)
            assert abs(math.degrees(face.pose[4] - seen)) < 4.0, (frame.index, face.face_id)
    plain = Tracker(faces="all", device="cpu", backend="onnx")
    assert all(f.pose is None for frame in plain.track(mirrored_pair) for f in frame.faces)


def test_crct_track_pose_writes_openface_s_pose_columns(tmp_path: Path) -> None:
    video = SAMPLES / "astronaut.mp4"
    args = ["track", str(video), "--device", "cpu", "--backend", "onnx"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "p"), "--pose"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p" / "landmarks.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == COLUMNS + POSE_COLUMNS
    track = read_track_json(tmp_path / "p" / "track.json")
    assert track.header["config"]["pose"] is True
    api = {
        f.index: f.faces[0] for f in Tracker(device="cpu", backend="onnx", pose=True).track(video)
    }
    assert len(rows) == len(api) == len(track.faces)
    for row, record in zip(rows, track.faces, strict=True):
        pose = np.array([float(v) for v in row[-6:]])
        expected = api[int(row[0]) - 1].pose
        assert np.abs(pose - expected).max() < 0.06  # 0.1 mm, 0.001 rad as written
        assert record.faces[0].pose is not None
        assert np.array_equal(record.faces[0].pose, pose)
    assert len(read_landmarks_csv(tmp_path / "p" / "landmarks.csv")) == len(rows)
    doc = json.loads((tmp_path / "p" / "track.json").read_text())
    doc["frames"][0]["faces"][0]["pose"] = [1.0, 2.0]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(CrctError, match="pose must be 6 numbers"):
        read_track_json(tmp_path / "bad.json")
    # without --pose the files are as before; a bad focal length is one line
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "q" / "landmarks.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    assert (
        "pose"
        not in json.loads((tmp_path / "q" / "track.json").read_text())["frames"][0]["faces"][0]
    )
    # a folder tracked without pose is tracked again when asked for it (not skipped as done)
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "q"), "--pose"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "q" / "landmarks.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS + POSE_COLUMNS
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "r"), "--pose", "--focal-length", "0"]
    )
    assert result.exit_code == 2
    assert "--focal-length must be > 0" in result.output and "Traceback" not in result.output


def test_the_overlay_draws_the_head_s_axes_where_the_pose_puts_them() -> None:
    from crct_cli.draw import POSE_AXIS_MM, draw_faces, pose_axes
    from crct_cli.tracking.multi import Face

    f = default_focal(640, 480)
    ends = pose_axes([0, 0, 500, 0, 0, 0], 640, 480)
    assert np.allclose(ends[0], [320, 240]) and np.allclose(ends[3], [320, 240])
    assert np.allclose(ends[1], [320 + f * POSE_AXIS_MM / 500, 240])  # x to the image's right
    assert np.allclose(ends[2], [320, 240 + f * POSE_AXIS_MM / 500])  # y down
    turned = pose_axes([0, 0, 500, 0, 0.5, 0], 640, 480)
    assert turned[3, 0] < 320 - 20  # Ry > 0: the face turns to the image's left
    black = np.zeros((480, 640, 3), np.uint8)
    face = Face(0, None, None, None, "tracked", np.array([0, 0, 500, 0, 0.5, 0]))
    drawn = draw_faces(black, [face])
    tip = np.round(turned[3]).astype(int)
    assert drawn[tip[1], tip[0]].any() and drawn[240, 320].any()
    assert not draw_faces(black, [Face(0, None, None, None, "tracked")]).any()


def test_crct_align_pose_writes_each_face_s_pose_beside_its_points(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", photos / "astronaut.jpg")
    args = ["align", str(photos), "--out", str(tmp_path / "out"), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--backend", "onnx", "--pose"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "poses.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["pts", *POSE_COLUMNS]
    assert [r[0] for r in rows[1:]] == ["astronaut.pts"]
    assert (tmp_path / "out" / "astronaut.pts").is_file()
    (face,) = Tracker(device="cpu", backend="onnx", pose=True).align(photos / "astronaut.jpg")
    assert face.pose is not None
    assert np.abs(np.array([float(v) for v in rows[1][1:]]) - face.pose).max() < 0.06
    assert [len(v.split(".")[1]) for v in rows[1][1:]] == [1, 1, 1, 3, 3, 3]  # OpenFace's decimals
    assert abs(face.pose[4]) < 0.15 and abs(face.pose[5]) < 0.15  # she faces the camera, upright


def test_step_gives_each_face_its_pose_from_the_frame_s_size() -> None:
    """A live loop's frames (Tracker.step) get the pose their points give in that frame."""
    from crct_cli.io.video import iter_frames

    tracker = Tracker(device="cpu", backend="onnx", pose=True, focal_length=300.0)
    model = read_face_model(WEIGHTS_DIR / FACE_MODEL_FILE)
    for decoded in iter_frames(SAMPLES / "astronaut.mp4", 3):
        (face,) = tracker.step(decoded.image).faces
        assert face.points is not None and face.pose is not None
        h, w = decoded.image.shape[:2]
        assert np.array_equal(face.pose, head_pose(face.points, w, h, model, focal=300.0))


def test_the_openface_style_puts_the_pose_before_the_points_at_fixed_decimals(
    tmp_path: Path,
) -> None:
    """FeatureExtraction's column order (pose, then x_0...), its fixed decimals, and a row of
    zeros for a frame without a face; crct's style keeps the pose after ``y_67``."""
    from crct_cli.io.openface_csv import LandmarksCsvWriter
    from crct_cli.tracking.multi import Face

    points = np.arange(136, dtype=np.float64).reshape(68, 2)
    pose = np.array([-0.04, 2.0, 500.0, 0.15, -0.0001, 1.23456])
    face = Face(0, points, np.array([0.0, 0.0, 70.0, 70.0]), 0.9, "tracked", pose=pose)
    for style in ("openface", "crct"):
        with LandmarksCsvWriter(tmp_path / f"{style}.csv", pose=True, style=style) as writer:
            writer.add(0, 0.0, [face])
            writer.add(1, 0.04, [])
        with open(tmp_path / f"{style}.csv", newline="") as fh:
            rows = list(csv.reader(fh, skipinitialspace=True))
        header = rows[0]
        named = dict(zip(header, rows[1], strict=True))
        assert [named[c] for c in POSE_COLUMNS] == [
            "0.0",
            "2.0",
            "500.0",
            "0.150",
            "0.000",
            "1.235",
        ]
        assert named["x_1"] == "2.000" and named["y_67"] == "135.000"
        if style == "openface":
            assert header.index("pose_Rz") < header.index("x_0")
            assert rows[2][:5] == ["2", "0", "0.040", "0", "0"] and set(rows[2][5:]) == {"0"}
        else:
            assert tuple(header) == COLUMNS + POSE_COLUMNS and len(rows) == 2
