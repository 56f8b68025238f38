"""The crct.track/1 JSON file: streaming writer, reader, schema validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crct_cli.errors import CrctError
from crct_cli.io.track_json import SCHEMA, FrameRecord, TrackJsonWriter, read_track_json

HEADER: dict[str, Any] = {
    "video": "samples/astronaut.mp4",
    "width": 360,
    "height": 360,
    "fps": 25.0,
    "n_frames": 75,
    "method": "crct",
    "config": {"redetect_every": 0, "threshold": np.float32(0.5)},
}


def _records(n: int, seed: int = 0) -> list[FrameRecord]:
    rng = np.random.default_rng(seed)
    states = ["redetected", "tracked", "tracked", "lost", "lost", "redetected"]
    out = []
    for i in range(n):
        state = states[i % len(states)]
        points = rng.uniform(0, 360, (68, 2)) if i % 6 != 4 else None  # one lost without points
        box = None if points is None else [1.5 * i, 2.0, 100.25, 120.0]
        score = None if points is None else float(rng.uniform(0, 1))
        out.append(FrameRecord(i * 2, i * 0.08, box, points, score, state))
    return out


def _write(path: Path, records: list[FrameRecord], summary: dict | None = None) -> None:
    with TrackJsonWriter(path, HEADER) as writer:
        for record in records:
            writer.add(record)
        writer.close(summary)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "track.json"
    records = _records(13)
    _write(path, records, {"runtime_s": 1.25})
    track = read_track_json(path)
    assert track.header["schema"] == SCHEMA
    assert track.video == HEADER["video"] and track.fps == 25.0 and track.method == "crct"
    assert track.header["config"] == {"redetect_every": 0, "threshold": 0.5}
    assert len(track.frames) == 13
    for got, want in zip(track.frames, records, strict=True):
        assert (got.index, got.state) == (want.index, want.state)
        assert got.time == pytest.approx(want.time, abs=1e-6)
        if want.points is None:
            assert got.points is None and got.box is None and got.score is None
        else:
            np.testing.assert_allclose(got.points, want.points, atol=5e-4)
            np.testing.assert_allclose(got.box, want.box, atol=5e-4)
            assert got.score == pytest.approx(want.score, abs=1e-6)
    counts = {s: sum(r.state == s for r in records) for s in ("tracked", "redetected", "lost")}
    assert track.summary == {"frames_written": 13, "states": counts, "runtime_s": 1.25}


def test_file_is_plain_json_with_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "track.json"
    _write(path, _records(2))
    data = json.loads(path.read_text())
    assert list(data) == [
        "schema",
        "video",
        "width",
        "height",
        "fps",
        "n_frames",
        "method",
        "config",
        "frames",
        "summary",
    ]
    assert list(data["frames"][0]) == ["index", "time", "box", "points", "score", "state"]
    assert len(data["frames"][0]["points"]) == 68


def test_empty_track_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    _write(path, [])
    track = read_track_json(path)
    assert track.frames == [] and track.summary["frames_written"] == 0


def test_writer_streams_to_a_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "track.json"
    writer = TrackJsonWriter(path, HEADER)
    for record in _records(60):
        writer.add(record)
    # Frames are already on disk (beyond any write buffer), under the temporary name only.
    tmp = tmp_path / ".track.partial.json"
    assert not path.exists() and tmp.stat().st_size > 60 * 68 * 2 * 4
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["track.json"]
    assert len(read_track_json(path).frames) == 60


def test_exception_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), TrackJsonWriter(tmp_path / "t.json", HEADER) as writer:
        writer.add(_records(1)[0])
        raise RuntimeError("tracker failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (FrameRecord(0, 0.0, None, None, None, "gone"), "state must be one of"),
        (FrameRecord(0, 0.0, [0, 0, 1, 1], np.zeros((67, 2)), 0.5, "tracked"), "68 [x, y]"),
        (FrameRecord(0, 0.0, [0, 0, 1], np.zeros((68, 2)), 0.5, "tracked"), "box must be"),
        (FrameRecord(0, 0.0, [0, 0, -1, 1], np.zeros((68, 2)), 0.5, "tracked"), ">= 0"),
        (FrameRecord(0, 0.0, [0, 0, 1, 1], np.zeros((68, 2)), 1.5, "tracked"), "probability"),
        (FrameRecord(0, 0.0, None, None, 0.5, "tracked"), "needs points and a box"),
        (FrameRecord(-1, 0.0, None, None, None, "lost"), "index must be"),
        (FrameRecord(0, float("nan"), None, None, None, "lost"), "time must be"),
        (FrameRecord(0, 0.0, [0, 0, 1, 1], np.full((68, 2), np.nan), None, "lost"), "68 [x, y]"),
    ],
)
def test_writer_refuses_records_that_break_the_schema(tmp_path, record, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        with TrackJsonWriter(tmp_path / "t.json", HEADER) as writer:
            writer.add(record)
    assert list(tmp_path.iterdir()) == []


def test_writer_requires_increasing_indices_and_a_full_header(tmp_path: Path) -> None:
    writer = TrackJsonWriter(tmp_path / "t.json", HEADER)
    writer.add(FrameRecord(3, 0.1))
    with pytest.raises(ValueError, match="increase"):
        writer.add(FrameRecord(3, 0.2))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    header = {k: v for k, v in HEADER.items() if k != "fps"}
    with pytest.raises(ValueError, match="fps"):
        TrackJsonWriter(tmp_path / "t.json", header)
    with pytest.raises(ValueError, match="must not set"):
        TrackJsonWriter(tmp_path / "t.json", {**HEADER, "frames": []})
    with pytest.raises(CrctError, match="does not exist"):
        TrackJsonWriter(tmp_path / "no" / "t.json", HEADER)


def _valid(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "valid.json"
    _write(path, _records(3))
    return json.loads(path.read_text())


def _break(data: dict[str, Any], how: str) -> Any:
    if how == "schema":
        data["schema"] = "crct.track/99"
    elif how == "no_schema":
        del data["schema"]
    elif how == "width":
        data["width"] = "360"
    elif how == "n_frames":
        data["n_frames"] = -1
    elif how == "config":
        data["config"] = []
    elif how == "frames":
        data["frames"] = {}
    elif how == "summary":
        del data["summary"]
    elif how == "points":
        data["frames"][0]["points"] = data["frames"][0]["points"][:10]
    elif how == "string_coordinate":
        data["frames"][0]["points"][5][0] = "12.5"
    elif how == "bool_index":
        data["frames"][0]["index"] = True
    elif how == "state":
        data["frames"][1]["state"] = "re-detected"
    elif how == "order":
        data["frames"][2]["index"] = data["frames"][1]["index"]
    elif how == "frame_key":
        del data["frames"][1]["score"]
    elif how == "top_list":
        return [data]
    return data


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("schema", "not a crct track file"),
        ("no_schema", "not a crct track file"),
        ("width", "width must be a positive integer"),
        ("n_frames", "n_frames must be"),
        ("config", "config must be an object"),
        ("frames", "frames must be a list"),
        ("summary", "summary must be an object"),
        ("points", r"frames\[0\]: points must be 68"),
        ("string_coordinate", r"frames\[0\]: points must be 68"),
        ("bool_index", r"frames\[0\]: index must be"),
        ("state", r"frames\[1\]: state must be one of"),
        ("order", r"frames\[2\]: index"),
        ("frame_key", r"frames\[1\]: missing score"),
        ("top_list", "top level is not an object"),
    ],
)
def test_reader_validates_the_schema(tmp_path: Path, how: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_break(_valid(tmp_path), how)))
    with pytest.raises(CrctError, match=message) as err:
        read_track_json(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_reader_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CrctError, match="no such track file"):
        read_track_json(tmp_path / "nope.json")
    truncated = tmp_path / "cut.json"
    _write(truncated, _records(3))
    truncated.write_text(truncated.read_text()[:-40])
    with pytest.raises(CrctError, match="not valid JSON"):
        read_track_json(truncated)


def test_arrays_give_each_face_over_the_frames_with_nan_where_none(tmp_path: Path) -> None:
    """``TrackFile.arrays(face_id)``: row i is frame record i; a face without a record in a
    frame is ``absent``, a lost one without points NaN; version 1 files read as face 0."""
    from crct_cli.io.track_json import SCHEMA_FACES, FaceRecord, FacesRecord

    rng = np.random.default_rng(3)
    pts = [rng.uniform(0, 300, (68, 2)) for _ in range(4)]
    pose = np.array([1.0, 2.0, 500.0, 0.1, -0.2, 0.05])
    frames = [
        FacesRecord(0, 0.0, [FaceRecord(0, np.array([1.0, 2, 30, 40]), pts[0], 0.9, "redetected")]),
        FacesRecord(
            1,
            0.04,
            [
                FaceRecord(0, np.array([2.0, 2, 30, 40]), pts[1], 0.8, "tracked", pose),
                FaceRecord(3, np.array([9.0, 9, 20, 20]), pts[2], 0.7, "redetected"),
            ],
        ),
        FacesRecord(2, 0.08, [FaceRecord(0, None, None, None, "lost")]),
    ]
    path = tmp_path / "multi.json"
    with TrackJsonWriter(path, {**HEADER, "faces": None}, SCHEMA_FACES) as writer:
        for record in frames:
            writer.add(record)
    run = read_track_json(path)
    assert run.face_ids == [0, 3]
    zero = run.arrays(0)
    assert list(zero.states) == ["redetected", "tracked", "lost"]
    assert list(zero.found) == [True, True, False]
    np.testing.assert_allclose(zero.points[:2], np.stack(pts[:2]), atol=1e-3)
    assert np.isnan(zero.points[2]).all() and np.isnan(zero.boxes[2]).all()
    np.testing.assert_allclose(zero.scores[:2], [0.9, 0.8])
    np.testing.assert_allclose(zero.poses[1], pose, atol=1e-3)
    assert np.isnan(zero.poses[[0, 2]]).all()
    np.testing.assert_allclose(zero.time, [0.0, 0.04, 0.08])
    three = run.arrays(3)
    assert list(three.states) == ["absent", "redetected", "absent"]
    np.testing.assert_allclose(three.points[1], pts[2], atol=1e-3)
    np.testing.assert_allclose(three.boxes[1], [9, 9, 20, 20])
    one = tmp_path / "one.json"
    _write(one, _records(6))
    single = read_track_json(one).arrays()
    assert list(single.index) == [0, 2, 4, 6, 8, 10]
    assert np.isnan(single.points[4]).all() and not np.isnan(single.points[3]).any()
