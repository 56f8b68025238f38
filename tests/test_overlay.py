"""``crct draw``: a run's overlay drawn again from its track.json, and .pts folders beside it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from crct_cli.draw import FACE_COLOURS
from crct_cli.errors import CrctError
from crct_cli.io.landmarks import write_pts
from crct_cli.io.track_json import SCHEMA_FACES, FaceRecord, FacesRecord, TrackJsonWriter
from crct_cli.io.video import count_packet_frames, iter_frames, probe_video
from crct_cli.overlay import PTS_COLOURS, draw_overlay

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "astronaut.mp4"


def _frames(path: Path) -> list[np.ndarray]:
    return [f.image.astype(np.int16) for f in iter_frames(path)]


def _drawn(overlay: list[np.ndarray], raw: list[np.ndarray]) -> np.ndarray:
    """(frames, H, W) bool: where the overlay's picture is not the video's (what was drawn)."""
    return np.stack([np.abs(o - r).max(axis=2) > 60 for o, r in zip(overlay, raw, strict=True)])


def _points(x: float, ys: tuple[float, ...]) -> np.ndarray:
    """68 points on a few spots of one column (a .pts file needs 68)."""
    return np.array([[x, ys[i % len(ys)]] for i in range(68)], dtype=np.float64)


def _write_run(
    run: Path, video: Path, n: int, shift: float = 0.0, header: dict | None = None
) -> Path:
    """A run folder with a track.json of one face at the same spots in frames 0..n-1."""
    run.mkdir(parents=True, exist_ok=True)
    info = probe_video(video)
    head = {
        "video": str(video),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "n_frames": info.n_frames,
        "method": "crct",
        "faces": 1,
        "config": {},
        **(header or {}),
    }
    points = _points(20.0 + shift, (20.0, 40.0))
    box = np.array([10.0 + shift, 10.0, 30.0, 40.0])
    with TrackJsonWriter(run / "track.json", head, SCHEMA_FACES) as writer:
        start = int(head.get("skip_frames", 0))
        for i in range(start, start + n):
            writer.add(FacesRecord(i, i / 25.0, [FaceRecord(0, box, points, 0.9, "tracked")]))
        writer.close({})
    return run


def test_pts_colours_are_not_face_colours() -> None:
    assert not set(PTS_COLOURS) & set(FACE_COLOURS)


def test_a_run_is_drawn_again_as_track_overlay_drew_it(tmp_path: Path) -> None:
    """The pixels crct track --overlay changed are the ones crct draw changes from track.json;
    a run whose points lie 6 px aside does not draw them."""
    from crct_cli.api import Tracker
    from crct_cli.tracking.pipeline import FrameRange, track_video

    (tmp_path / "in").mkdir()
    shutil.copy(SAMPLE, tmp_path / "in" / "a.mp4")
    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:  # tracked by a relative path, from in/
        patch.chdir(tmp_path / "in")
        track_video(Path("a.mp4"), Path("../run"), Tracker(), True, frames_in=FrameRange(count=8))
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(SAMPLE, tmp_path / "elsewhere" / "a.mp4")  # same name, not the same video
    (tmp_path / "elsewhere" / "a.mp4").write_bytes(b"not a video at all")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path / "elsewhere")
        summary = draw_overlay(run)
    assert summary.video == tmp_path / "in" / "a.mp4"
    assert summary.out == run / "draw.mp4" and summary.frames == summary.with_run == 8
    raw = _frames(SAMPLE)[:8]
    before, again = _drawn(_frames(run / "overlay.mp4"), raw), _drawn(_frames(summary.out), raw)
    assert before.sum() > 500
    assert (before & again).sum() / (before | again).sum() > 0.9

    track = json.loads((run / "track.json").read_text())
    for frame in track["frames"]:
        for face in frame["faces"]:
            face["points"] = [[x + 6, y] for x, y in face["points"]]
            face["box"][0] += 6
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "track.json").write_text(json.dumps(track))
    draw_overlay(moved / "track.json", tmp_path / "moved.mp4")
    aside = _drawn(_frames(tmp_path / "moved.mp4"), raw)
    assert (before & aside).sum() / (before | aside).sum() < 0.5


def test_pts_folders_are_drawn_in_their_colour_on_their_frames(make_video, tmp_path) -> None:
    video = make_video(n_frames=10)
    truth = tmp_path / "truth"
    truth.mkdir()
    spots = (20.0, 35.0, 50.0)
    for k in range(1, 6):  # frames 1-5 only
        write_pts(truth / f"{k:06d}.pts", _points(89.0, spots))
    (truth / "notes.pts").write_text("not a frame")  # not numbered: left alone
    out = tmp_path / "cmp.mp4"
    summary = draw_overlay(None, out, video=video, pts=[truth])
    assert summary.frames == 10 and summary.with_pts == (5,) and summary.with_run == 0
    raw, drawn = _frames(video), _frames(out)
    for i, (r, d) in enumerate(zip(raw, drawn, strict=True)):
        at = [d[int(y), 89].mean() - r[int(y), 89].mean() for y in spots]
        if i < 5:
            assert min(at) > 60, (i, at)  # white crosses on the dark background
        else:
            assert max(np.abs(at)) < 25, (i, at)


def test_the_runs_frames_are_drawn_unless_told(make_video, tmp_path) -> None:
    video = make_video(n_frames=20)
    run = _write_run(tmp_path / "run", video, 5, header={"skip_frames": 3, "max_frames": 5})
    summary = draw_overlay(run)
    assert (summary.frames, summary.with_run) == (5, 5)
    again = draw_overlay(run, tmp_path / "all.mp4", skip_frames=0, max_frames=12)
    assert (again.frames, again.with_run) == (12, 5)
    earlier = draw_overlay(run, tmp_path / "earlier.mp4", skip_frames=1)  # to the run's end
    assert (earlier.frames, earlier.with_run) == (7, 5)


def test_a_run_finds_its_own_video_and_no_other(make_video, tmp_path, monkeypatch) -> None:
    """From another folder, by the marker's path; a file of the same name that is another
    video (other frames) is never taken, nor is one given that differs from the run's."""
    video = make_video(n_frames=6)
    monkeypatch.chdir(tmp_path)
    run = _write_run(tmp_path / "runs" / "run", Path(video.name), 6)  # relative to tmp_path
    marker = {"schema": "crct.input/1", "input": {"path": str(video), "name": video.name}}
    (run / ".crct-input.json").write_text(json.dumps(marker))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_video("elsewhere/clip.mp4", n_frames=9)  # the same name, 9 frames
    monkeypatch.chdir(elsewhere)
    assert draw_overlay(run).video == video
    (run / ".crct-input.json").unlink()
    with pytest.raises(CrctError, match="video is needed: clip.mp4 is not the video the run tr"):
        draw_overlay(run, tmp_path / "x.mp4")  # the 9 frames one, the only one found
    os.replace(elsewhere / "clip.mp4", elsewhere / "other.mp4")
    with pytest.raises(CrctError, match="video is needed: clip.mp4, the video it tracked, is not"):
        draw_overlay(run, tmp_path / "x.mp4")
    os.replace(elsewhere / "other.mp4", elsewhere / "clip.mp4")
    with pytest.raises(CrctError, match="has 9 frames, but the run's video had 6"):
        draw_overlay(run, tmp_path / "x.mp4", video=elsewhere / "clip.mp4")
    assert draw_overlay(run, tmp_path / "x.mp4", video=video).frames == 6


def test_bad_requests_are_one_clear_error(make_video, tmp_path) -> None:
    video = make_video(n_frames=4)
    other = make_video("other.mp4", n_frames=4, width=64, height=48)
    run = _write_run(tmp_path / "run", video, 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "d.mp4").mkdir()
    cases = [
        (lambda: draw_overlay(video), "video takes a video; .* is given as the run"),
        (lambda: draw_overlay(empty), "no track.json"),
        (lambda: draw_overlay(tmp_path / "d.mp4"), "no track.json"),
        (lambda: draw_overlay(run, tmp_path / "d.mp4"), "out is the video to write, not a"),
        (lambda: draw_overlay(run, tmp_path / "o.mp4", pts=tmp_path / "no"), "no such folder"),
        (lambda: draw_overlay(None, tmp_path / "o.mp4"), "nothing to draw"),
        (
            lambda: draw_overlay(None, tmp_path / "o.mp4", pts=[run]),
            "video is needed: without a run",
        ),
        (lambda: draw_overlay(None, video=video, pts=[empty]), "out is needed: without a run"),
        (lambda: draw_overlay(None, tmp_path / "o.mp4", video=video, pts=[empty]), "none here"),
        (lambda: draw_overlay(run, tmp_path / "o.mp4", video=other), "is 64x48, but the run"),
        (lambda: draw_overlay(run, video, overwrite=True), "is the video drawn on"),
        (lambda: draw_overlay(run, tmp_path / "o.txt"), "FILE.mp4"),
        (lambda: draw_overlay(run, other), "already there"),
        (lambda: draw_overlay(tmp_path / "nothing"), "no such track file"),
        (lambda: draw_overlay(run, tmp_path / "o.mp4", skip_frames=10), "skip_frames is 10, but"),
    ]
    for call, words in cases:
        with pytest.raises(CrctError, match=words):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["clip.mp4", "other.mp4", "run", "empty", "d.mp4"]
    )  # nothing written, no temporary file left


def test_an_existing_overlay_is_replaced_only_when_asked(make_video, tmp_path) -> None:
    video = make_video(n_frames=4)
    run = _write_run(tmp_path / "run", video, 4)
    shutil.copy(video, run / "draw.mp4")
    with pytest.raises(CrctError, match="overwrite is False, and the file is already there"):
        draw_overlay(run)
    assert (run / "draw.mp4").read_bytes() == video.read_bytes()
    draw_overlay(run, overwrite=True)
    assert (run / "draw.mp4").read_bytes() != video.read_bytes()


def test_crct_draw_draws_a_run_and_says_what_it_drew(make_video, tmp_path) -> None:
    from typer.testing import CliRunner

    from crct_cli.cli import app

    video = make_video(n_frames=6)
    run = _write_run(tmp_path / "run", video, 4)
    truth = tmp_path / "truth"
    truth.mkdir()
    write_pts(truth / "000002.pts", _points(89.0, (30.0,)))
    runner = CliRunner()
    done = runner.invoke(app, ["draw", str(run), "--pts", str(truth), "--max-frames", "5"])
    assert done.exit_code == 0, done.output
    assert "5 frames of" in done.output and "points on 4" in done.output
    assert "truth on 1 (white)" in done.output and (run / "draw.mp4").is_file()
    again = runner.invoke(app, ["draw", str(run)])
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert again.output.strip().endswith("--overwrite replaces the file already there")
    alone = runner.invoke(app, ["draw", "--pts", str(truth)])
    assert alone.exit_code == 2 and "--video is needed" in alone.output
    deep = tmp_path / "new" / "sub" / "d.mp4"  # its folders made, as every --out's
    made = runner.invoke(app, ["draw", str(run), "--max-frames", "5", "--out", str(deep)])
    assert made.exit_code == 0, made.output
    assert deep.is_file()


def test_odd_pts_folders_are_drawn_and_a_bad_file_is_left_out(make_video, tmp_path) -> None:
    video = make_video(n_frames=4)
    odd = tmp_path / "faces" / "1" / "annot"  # numbered from 0, 49 points, one bad, one huge
    odd.mkdir(parents=True)
    write_pts(odd / "000000.pts", _points(89.0, (30.0,))[:49])
    (odd / "000001.pts").write_text("garbage")
    write_pts(odd / "000002.pts", np.vstack([_points(89.0, (30.0,))[:67], [[1e12, 1e12]]]))
    out = tmp_path / "o.mp4"
    summary = draw_overlay(None, out, video=video, pts=str(odd))  # one folder, as a str
    assert summary.with_pts == (2,) and len(summary.bad_pts) == 1
    assert "000001.pts" in summary.bad_pts[0]
    raw, drawn = _frames(video), _frames(out)
    marked = [d[30, 89].mean() - r[30, 89].mean() > 60 for r, d in zip(raw, drawn, strict=True)]
    assert marked == [True, False, True, False]
    from crct_cli.overlay import _legend_names

    assert _legend_names([odd]) == ["faces/1/annot"]
    twins = [tmp_path / "a" / "faces" / "1" / "annot", tmp_path / "b" / "faces" / "1" / "annot"]
    assert _legend_names(twins) == ["a/faces/1/annot", "b/faces/1/annot"]


def test_a_folder_of_frames_pairs_pts_files_by_image_name(make_video, tmp_path) -> None:
    """A frame missing from the folder keeps the later files on their own images."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for f in iter_frames(make_video(n_frames=5)):
        if f.index != 1:  # 000002.png is missing
            from crct_cli.io.images import write_image

            write_image(frames / f"{f.index + 1:06d}.png", f.image)
    labels = tmp_path / "labels"
    labels.mkdir()
    write_pts(labels / "000003.pts", _points(89.0, (30.0,)))  # the image 000003.png: frame 1
    out = tmp_path / "o.mp4"
    assert draw_overlay(None, out, video=frames, pts=[labels]).with_pts == (1,)
    drawn = _frames(out)
    assert [int(d[30, 89].mean() > 150) for d in drawn] == [0, 1, 0, 0]


def test_a_runs_own_annot_goes_by_frame_and_its_frames_by_their_bytes(make_video, tmp_path):
    """A folder of frames named from 000000: crct's annot/ counts frames from 000001.pts
    all the same; an image edited since the run is not the run's video any more."""
    from crct_cli.io.images import write_image

    frames = tmp_path / "frames"
    frames.mkdir()
    for f in iter_frames(make_video(n_frames=4)):
        write_image(frames / f"{f.index:06d}.png", f.image)
    run = _write_run(tmp_path / "run", frames, 4)
    (run / "annot").mkdir()
    for k in range(1, 5):
        write_pts(run / "annot" / f"{k:06d}.pts", _points(89.0, (30.0,)))
    size = sum(p.stat().st_size for p in frames.iterdir())
    marker = {"schema": "crct.input/1", "input": {"path": str(frames), "size": size}}
    (run / ".crct-input.json").write_text(json.dumps(marker))
    assert draw_overlay(run, pts=[run / "annot"]).with_pts == (4,)
    write_image(frames / "000002.png", np.zeros((72, 96, 3), np.uint8))
    with pytest.raises(CrctError, match="is not the video the run tracked .has .* bytes"):
        draw_overlay(run, tmp_path / "again.mp4")


def test_a_bad_count_says_what_leaving_it_out_draws(make_video, tmp_path) -> None:
    from crct_cli.errors import error_text

    video = make_video(n_frames=4)
    run = _write_run(tmp_path / "run", video, 4)
    for bad in (0, 2.5):
        with pytest.raises(
            CrctError, match=r"max_frames must be a whole number, 1 or more \(None: the run's"
        ) as caught:
            draw_overlay(run, tmp_path / "o.mp4", max_frames=bad)
        assert "(unset: the run's frames)" in error_text(caught.value, flags=True)


def test_a_video_that_declares_no_frame_count_is_counted(make_video, tmp_path) -> None:
    """A Matroska file declares no frame count, so size and rate alone would let a same-sized
    other video pass: a run read to its end knows its video's length, and a video of another
    length is refused before drawing (its packets counted) or, where its packets cannot say
    (VP8 here, whose hidden frames are packets too), once decoded (nothing kept)."""
    video = make_video("clip.mkv", n_frames=6)
    assert probe_video(video).n_frames is None
    run = _write_run(tmp_path / "run", video, 6)
    assert draw_overlay(run).frames == 6
    for name, n, codec in (
        ("longer.mkv", 9, "libx264"),
        ("shorter.mkv", 4, "libx264"),
        ("declared.mp4", 9, "libx264"),
        ("vp8.mkv", 9, "libvpx"),
        ("vp8short.mkv", 4, "libvpx"),
    ):
        other = make_video(name, n_frames=n, codec=codec)
        for count in (None, 1000):  # a draw that runs out before its count reached the end too
            with pytest.raises(CrctError, match=f"has {n} frames, but the run's video had 6"):
                draw_overlay(run, tmp_path / "o.mp4", video=other, max_frames=count)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("o.", ".o"))]
    part = draw_overlay(run, tmp_path / "part.mp4", video=tmp_path / "vp8.mkv", max_frames=3)
    assert part.frames == 3  # it stopped where told: the video's length is not known


def test_a_found_video_is_counted_once_and_a_changed_one_again(
    make_video, tmp_path, monkeypatch
) -> None:
    """The packets of a found Matroska video are read once for choosing it and drawing it,
    and read again once the file changes."""
    import crct_cli.overlay as overlay

    calls = []

    def counting(path):
        calls.append(path)
        return count_packet_frames(path)

    monkeypatch.setattr(overlay, "count_packet_frames", counting)
    overlay._packet_count.cache_clear()
    video = make_video("clip.mkv", n_frames=6)
    run = _write_run(tmp_path / "run", video, 6)
    assert draw_overlay(run).frames == 6 and len(calls) == 1
    make_video("clip.mkv", n_frames=9)  # the same name, another video
    with pytest.raises(CrctError, match="has 9 frames, but the run's video had 6"):
        draw_overlay(run, tmp_path / "o.mp4")
    assert len(calls) == 2


def test_a_run_cut_by_max_frames_past_the_end_read_its_video_to_the_end(make_video, tmp_path):
    """A run told --max-frames 100 on a 6-frame video wrote 6: it read the whole video, so its
    length is known as well as a run without the option's."""
    video = make_video("clip.mkv", n_frames=6)
    other = make_video("other.mkv", n_frames=9)
    run = _write_run(tmp_path / "run", video, 6, header={"max_frames": 100})
    with pytest.raises(CrctError, match="has 9 frames, but the run's video had 6"):
        draw_overlay(run, tmp_path / "o.mp4", video=other)
    assert draw_overlay(run).frames == 6
    cut = _write_run(tmp_path / "cut", video, 4, header={"max_frames": 4})
    assert draw_overlay(cut, tmp_path / "cut.mp4", video=other).frames == 4  # length unknown


def test_a_found_video_that_is_not_the_runs_is_named_as_found(make_video, tmp_path) -> None:
    """Where the run's own path holds another video of another length, the refusal names the
    video it found and asks for video=; a same-named right one elsewhere is still taken."""
    video = make_video("clip.mkv", n_frames=6)
    run = _write_run(tmp_path / "runs" / "run", video, 6)
    moved = tmp_path / "moved.mkv"
    os.replace(video, moved)
    make_video("clip.mkv", n_frames=9, codec="ffv1")  # another video where the run's was
    with pytest.raises(CrctError, match=r"video is needed: .*clip.mkv is not the video the run"):
        draw_overlay(run, tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()
    assert draw_overlay(run, tmp_path / "o.mp4", video=moved).frames == 6


def test_the_runs_own_overlay_name_is_left_to_crct_track(make_video, tmp_path) -> None:
    """crct track --overlay writes RUN/overlay.mp4 and a run without it removes a stale one, so
    a drawing there would be replaced or lost: refused, with the default named."""
    video = make_video(n_frames=4)
    run = _write_run(tmp_path / "run", video, 4)
    with pytest.raises(CrctError, match="out is a run's overlay.mp4, .* default is draw.mp4"):
        draw_overlay(run, run / "overlay.mp4")
    with pytest.raises(CrctError, match="out is a run's overlay.mp4"):
        draw_overlay(run / "track.json", run / "sub" / ".." / "overlay.mp4")
    link = tmp_path / "link.json"
    link.symlink_to(run / "track.json")
    with pytest.raises(CrctError, match="out is a run's overlay.mp4"):  # the link's folder too
        draw_overlay(link, run / "overlay.mp4")
    truth = tmp_path / "truth"
    truth.mkdir()
    write_pts(truth / "000001.pts", _points(30.0, (30.0,)))
    with pytest.raises(CrctError, match="out is a run's overlay.mp4"):  # without a run as well
        draw_overlay(None, run / "overlay.mp4", video=video, pts=[truth], overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["track.json"]
    assert draw_overlay(run, tmp_path / "overlay.mp4").frames == 4  # elsewhere it is any name


def test_a_frame_lost_to_a_corrupt_packet_is_a_gap_in_the_run_and_held_in_its_videos(
    tmp_path: Path,
) -> None:
    """crct track on a video with one frame that fails to decode: the later frames keep their
    numbers (track.json, annot/), no frame is said to be missing from the file, and the
    overlay and crct draw's video keep the source's timing, the picture before held over
    the lost frame."""
    from test_video_seek import _spoil_packet

    from crct_cli.api import Tracker
    from crct_cli.tracking.pipeline import FrameRange, track_video

    bad = tmp_path / "bad.mp4"
    lost = _spoil_packet(SAMPLE, bad, 20)
    run = tmp_path / "run"
    track_video(bad, run, Tracker(), True, frames_in=FrameRange(count=30))
    track = json.loads((run / "track.json").read_text())
    assert [f["index"] for f in track["frames"]] == [k for k in range(30) if k != lost]
    assert track["summary"]["missing_frames"] == 0
    assert not (run / "annot" / f"{lost + 1:06d}.pts").exists()
    assert (run / "annot" / f"{lost + 2:06d}.pts").exists()
    for video in (run / "overlay.mp4", draw_overlay(run).out):
        frames = _frames(video)
        assert len(frames) == 30
        held = np.abs(frames[lost].astype(int) - frames[lost - 1]).mean()
        moved = np.abs(frames[lost + 1].astype(int) - frames[lost]).mean()
        assert held < 1 < moved, (video, held, moved)
