"""``track_video`` end to end on generated clips, with fake networks that find the cartoon face.

The fakes locate the face by its skin colour, so the points written for a frame tell which
decoded picture they came from: the test can check that ``00000k.pts`` belongs to frame k-1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crct_cli.api
from crct_cli.api import Tracker
from crct_cli.batch.worker import settings_of
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import read_pts
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import iter_frames, probe_video
from crct_cli.landmarks import box_from_points
from crct_cli.tracking.detector import Detection
from crct_cli.tracking.pipeline import track_video as _track_video
from crct_cli.tracking.tracker import TrackerConfig

W, H, N = 128, 96, 8
SKIN = np.array([225, 180, 150])

_UNIT = np.random.default_rng(3).uniform(0.0, 1.0, (68, 2))
_UNIT = (_UNIT - _UNIT.min(axis=0)) / (_UNIT.max(axis=0) - _UNIT.min(axis=0))


def skin_centre(image: np.ndarray) -> np.ndarray:
    """Centroid of the skin-coloured pixels: where the cartoon face is."""
    mask = np.abs(image.astype(np.int32) - SKIN).sum(axis=2) < 60
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def box_at(centre: np.ndarray, size: tuple[float, float] = (30.0, 40.0)) -> np.ndarray:
    w, h = size
    return np.array([centre[0] - w / 2, centre[1] - h / 2, w, h])


def shape_in(box: np.ndarray) -> np.ndarray:
    return box[:2] + _UNIT * box[2:]


class FaceNets:
    """Fake Networks: detect/BT/FLL put a shape on the skin blob; FV always accepts."""

    def __init__(
        self, face_from: int = 0, fail_at_bt: int | None = None, find_faces: bool = True
    ) -> None:
        self.face_from = face_from
        self.fail_at_bt = fail_at_bt
        self.find_faces = find_faces
        self.n_detect = self.n_bt = 0

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list[Detection]:
        self.n_detect += 1
        if not self.find_faces or self.n_detect <= self.face_from:
            return []
        box = box_at(skin_centre(image))
        return [Detection(box, box.copy(), 0.99)]

    def bt_step(self, prev: np.ndarray, cur: np.ndarray, box: np.ndarray, state: Any) -> tuple:
        self.n_bt += 1
        if self.fail_at_bt is not None and self.n_bt >= self.fail_at_bt:
            raise RuntimeError("network exploded")
        return shape_in(box_at(skin_centre(cur), tuple(box[2:]))), self.n_bt

    def validate(self, image: np.ndarray, points: np.ndarray) -> float:
        return 0.9

    def localize(self, image: np.ndarray, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        return shape_in(box_at(skin_centre(image), tuple(box[2:])))


def track_video(
    clip: Path,
    out: Path,
    nets: Any,
    config: TrackerConfig,
    init_box: np.ndarray | None = None,
    overlay: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
    **options: Any,
) -> Any:
    """``track_video`` through the public Tracker, built on the fake networks."""
    tracker = Tracker(
        networks=nets,
        mode=config.mode,
        tb=config.tb,
        tc=config.tc,
        seq_bt=config.seq_bt,
        init_box=init_box,
        **options,
    )
    return _track_video(clip, out, tracker, overlay, on_frame)


def box_centre(points: np.ndarray) -> np.ndarray:
    box = box_from_points(points)
    return box[:2] + box[2:] / 2


def original_centres(draw: Callable[..., np.ndarray], n: int) -> np.ndarray:
    """Face centres of the pictures the clip was encoded from (conftest's ``draw_face``)."""
    return np.stack([skin_centre(draw(W, H, i / 25.0)) for i in range(n)])


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def clip(make_video: Callable[..., Path]) -> Path:
    return make_video("clip.mp4", n_frames=N, width=W, height=H, fps=25)


def test_track_writes_one_pts_per_frame_in_decoding_order(
    clip: Path, tmp_path: Path, face_image: Callable[..., np.ndarray]
) -> None:
    out = tmp_path / "out"
    progress: list[tuple[int, int | None]] = []
    summary = track_video(
        clip,
        out,
        FaceNets(),
        TrackerConfig(),
        overlay=True,
        on_frame=lambda done, total: progress.append((done, total)),
    )
    assert listing(out) == ["annot", "landmarks.csv", "overlay.mp4", "track.json"]
    names = listing(out / "annot")
    assert names == [f"{k:06d}.pts" for k in range(1, N + 1)]
    centres = original_centres(face_image, N)
    for k, name in enumerate(names, start=1):
        c = box_centre(read_pts(out / "annot" / name))
        # the points sit on the face of frame k-1, and no other frame's face is as close
        assert np.linalg.norm(c - centres[k - 1]) < 0.7
        assert int(np.argmin(np.linalg.norm(centres - c, axis=1))) == k - 1
    assert [d for d, _ in progress] == list(range(1, N + 1))
    assert {t for _, t in progress} <= {N, None}
    assert summary.frames == N and summary.with_points == N
    assert (summary.redetected, summary.tracked, summary.lost) == (1, N - 1, 0)


def test_track_json_validates_and_matches_pts(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    init = np.array([40.0, 30.0, 30.0, 40.0])
    track_video(clip, out, FaceNets(), TrackerConfig(tb=0.7, seq_bt=4), init_box=init)
    track = read_track_json(out / "track.json")
    assert (track.header["width"], track.header["height"]) == (W, H)
    assert track.header["fps"] == pytest.approx(25.0)
    assert track.header["method"] == "crct"
    assert track.header["config"]["tb"] == pytest.approx(0.7)
    assert track.header["config"]["seq_bt"] == 4
    assert track.header["config"]["init_box"] == pytest.approx(list(init))
    assert [f.index for f in track.frames] == list(range(N))
    times = [f.time for f in track.frames]
    assert times == sorted(times) and times[1] == pytest.approx(0.04)
    assert [f.state for f in track.frames] == ["redetected"] + ["tracked"] * (N - 1)
    for f in track.frames:
        pts = read_pts(out / "annot" / f"{f.index + 1:06d}.pts")
        assert np.allclose(f.points, pts, atol=1e-3)
        assert np.allclose(f.box, box_from_points(f.points), atol=1e-6)
        assert f.score is None or 0.0 <= f.score <= 1.0
    s = track.summary
    assert s["frames"] == N and s["with_points"] == N
    assert s["states"] == {"tracked": N - 1, "redetected": 1, "lost": 0}
    assert s["redetections"] == 0 and s["seconds"] > 0


def test_frames_before_the_face_are_lost_and_have_no_file(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = track_video(clip, out, FaceNets(face_from=2), TrackerConfig(), backfill=0)
    assert listing(out / "annot") == [f"{k:06d}.pts" for k in range(3, N + 1)]
    track = read_track_json(out / "track.json")
    assert [f.state for f in track.frames[:3]] == ["lost", "lost", "redetected"]
    assert track.frames[0].points is None and track.frames[1].box is None
    assert summary.with_points == N - 2 and summary.lost == 2


def test_the_first_face_is_carried_back_to_the_frames_before_it(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the frames before the first detection wait for it and get FLL's points in
    its first box, marked lost, in order; ``backfill`` bounds how many wait. (Without
    ``backtrack``: with it, the face is then followed back into them, below.)"""
    out = tmp_path / "out"
    nets = FaceNets(face_from=3)
    summary = track_video(clip, out, nets, TrackerConfig(), backtrack=0)
    assert listing(out / "annot") == [f"{k:06d}.pts" for k in range(1, N + 1)]
    track = read_track_json(out / "track.json")
    assert [f.state for f in track.frames[:4]] == ["lost", "lost", "lost", "redetected"]
    assert [f.index for f in track.frames] == list(range(N))
    first_box = track.frames[3].box
    for decoded, f in zip(iter_frames(clip, 3), track.frames[:3], strict=True):
        expected = nets.localize(decoded.image, first_box)  # FLL in the first face's box
        assert np.allclose(f.points, expected, atol=1e-3) and f.score == pytest.approx(0.9)
    assert summary.with_points == N and summary.lost == 3
    assert track.header["config"]["backfill"] == 50
    # a run with another backfill is not taken for this one when resuming
    assert settings_of({})["backfill"] == 50 and settings_of({"backfill": 0})["backfill"] == 0
    # by default the first face is followed back into them too (these networks' validator
    # accepts every face): tracked, with BT's and FLL's points
    frames = list(Tracker(networks=FaceNets(face_from=3)).track(clip))
    assert [f.faces[0].state for f in frames[:4]] == ["tracked", "tracked", "tracked", "redetected"]

    # only the last two frames before the face wait; the first comes out without a face
    frames = list(Tracker(networks=FaceNets(face_from=3), backfill=2).track(clip))
    assert [f.index for f in frames] == list(range(N))
    assert [bool(f.faces) for f in frames[:4]] == [False, True, True, True]
    # the memory cap counts too: room for one frame and a half, so one waits
    frame_bytes = next(iter(iter_frames(clip, 1))).image.nbytes
    monkeypatch.setattr(crct_cli.api, "BACKFILL_MB", 1.5 * frame_bytes / 2**20)
    frames = list(Tracker(networks=FaceNets(face_from=3)).track(clip))
    assert [bool(f.faces) for f in frames[:4]] == [False, False, True, True]
    monkeypatch.undo()
    # a video without a face: every frame, in order, none with points
    frames = list(Tracker(networks=FaceNets(find_faces=False)).track(clip))
    assert [f.index for f in frames] == list(range(N)) and not any(f.faces for f in frames)
    with pytest.raises(CrctError, match="^backfill "):
        Tracker(networks=FaceNets(), backfill=-1)


def test_overlay_has_the_source_frame_count_and_rate(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    track_video(clip, out, FaceNets(), TrackerConfig(), overlay=True)
    info, src = probe_video(out / "overlay.mp4"), probe_video(clip)
    assert info.fps == pytest.approx(src.fps)
    assert (info.width, info.height) == (W, H)
    frames = list(iter_frames(out / "overlay.mp4"))
    assert len(frames) == N
    # something was drawn: the overlay differs from the source frame
    source = next(iter_frames(clip)).image
    assert np.abs(frames[0].image.astype(int) - source.astype(int)).max() > 100


def test_no_face_anywhere_is_a_result_with_every_frame_lost(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = track_video(clip, out, FaceNets(find_faces=False), TrackerConfig(), overlay=True)
    assert summary.status == "no_face" and summary.frames == N and summary.with_points == 0
    assert listing(out) == ["annot", "landmarks.csv", "overlay.mp4", "track.json"]
    assert listing(out / "annot") == []
    track = read_track_json(out / "track.json")
    assert [f.state for f in track.frames] == ["lost"] * N
    assert all(f.points is None for f in track.frames)
    assert all(frame.faces == [] for frame in track.faces)
    assert track.summary["status"] == "no_face"
    assert (out / "landmarks.csv").read_text().count("\n") == 1  # the header alone


def test_a_missing_video_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CrctError, match="missing.mp4"):
        track_video(tmp_path / "missing.mp4", tmp_path / "out", FaceNets(), TrackerConfig())


def test_networks_failing_midway_leave_nothing_finished(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="exploded"):
        track_video(clip, out, FaceNets(fail_at_bt=4), TrackerConfig(), overlay=True)
    assert listing(out) == []  # no annot, track.json, overlay.mp4, nor any .partial


def test_failure_over_a_finished_run_keeps_the_old_outputs(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    track_video(clip, out, FaceNets(), TrackerConfig())
    before = {p: (out / "annot" / p).read_bytes() for p in listing(out / "annot")}
    track_json = (out / "track.json").read_bytes()
    with pytest.raises(RuntimeError):
        track_video(clip, out, FaceNets(fail_at_bt=3), TrackerConfig(tb=0.3))
    assert listing(out) == ["annot", "landmarks.csv", "track.json"]
    assert {p: (out / "annot" / p).read_bytes() for p in listing(out / "annot")} == before
    assert (out / "track.json").read_bytes() == track_json


def test_rerun_replaces_annot_cleanly(
    clip: Path, make_video: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    track_video(clip, out, FaceNets(), TrackerConfig())
    (out / "annot" / "stray.txt").write_text("from an older run")
    short = make_video("short.mp4", n_frames=5, width=W, height=H, fps=25)
    summary = track_video(short, out, FaceNets(), TrackerConfig())
    assert summary.frames == 5
    assert listing(out) == ["annot", "landmarks.csv", "track.json"]  # no .old / .partial
    assert listing(out / "annot") == [f"{k:06d}.pts" for k in range(1, 6)]
    track = read_track_json(out / "track.json")
    assert len(track.frames) == 5 and track.header["video"] == str(short)
