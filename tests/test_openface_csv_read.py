"""``read_landmarks_csv`` (so ``crct benchmark --pred``) on CSVs laid out as OpenFace writes them.

The files are built here column by column after OpenFace's ``RecorderCSV.cpp`` (2.x: ``frame,
face_id, timestamp, confidence, success``, gaze and eye landmarks, pose, 2D and 3D landmarks, model
parameters, action units, ``", "`` between every value; OpenFace 2.0's first writer, and the
header on its wiki's Output-Format page: the same without ``face_id``), not with crct's writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crct_cli.bench.multi_face import read_predictions
from crct_cli.io.openface_csv import read_landmarks_csv

AU_REG = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14"]
AU_CLASS = sorted([*AU_REG, "AU28"])
FOUND = [(1, 0, True), (3, 0, True), (4, 0, True)]  # frame, face_id, success: frame 2 has no face


def points_of(frame: int) -> np.ndarray:
    """68 distinct points that move with the frame."""
    i = np.arange(68, dtype=np.float64)
    return np.stack([100.0 + 2.0 * i + frame, 50.0 + i + 0.5 * frame], axis=1)


def openface_csv(path: Path, frames: int, face_id: bool) -> Path:
    """A FeatureExtraction file of one face over ``frames`` frames, every option on; frame 2 is
    a frame without a face (OpenFace's reset model: zeros, success 0)."""
    head = ["frame", *(["face_id"] if face_id else []), "timestamp", "confidence", "success"]
    head += [f"gaze_{e}_{c}" for e in (0, 1) for c in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    head += [f"eye_lmk_{c}_{i}" for c in "xyXYZ" for i in range(56)]
    head += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    head += [f"{c}_{i}" for c in "xyXYZ" for i in range(68)]
    head += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty", *(f"p_{i}" for i in range(34))]
    head += [f"{a}_r" for a in AU_REG] + [f"{a}_c" for a in AU_CLASS]
    lines = [", ".join(head)]
    for k in range(1, frames + 1):
        found = k != 2
        pts = points_of(k) if found else np.zeros((68, 2))
        row = [str(k), *(["0"] if face_id else []), f"{(k - 1) / 25:.3f}"]
        row += ["0.98" if found else "0.00", "1" if found else "0"]
        row += ["0.1"] * (8 + 5 * 56 + 6)
        row += [f"{v:.1f}" for v in pts[:, 0]] + [f"{v:.1f}" for v in pts[:, 1]]
        row += ["1.0"] * (3 * 68) + ["0.5"] * 40 + ["0.00"] * len(AU_REG) + ["0.0"] * len(AU_CLASS)
        assert len(row) == len(head)
        lines.append(", ".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_openface_2x_file_is_read(tmp_path: Path) -> None:
    rows = read_landmarks_csv(openface_csv(tmp_path / "of.csv", 4, face_id=True))
    assert [(r.frame, r.face_id, r.success) for r in rows] == FOUND
    np.testing.assert_allclose(rows[1].points, points_of(3), atol=0.05)
    assert rows[1].confidence == 0.98 and rows[1].timestamp == 0.08


def test_openface_file_without_face_id_is_one_face(tmp_path: Path) -> None:
    path = openface_csv(tmp_path / "of20.csv", 4, face_id=False)
    rows = read_landmarks_csv(path)
    assert [(r.frame, r.face_id, r.success) for r in rows] == FOUND
    np.testing.assert_allclose(rows[2].points, points_of(4), atol=0.05)
    predictions = read_predictions(path)  # crct benchmark --pred's multi-face reading
    assert sorted(predictions) == [1, 3, 4]
    assert [f.face_id for f in predictions[3]] == [0]
