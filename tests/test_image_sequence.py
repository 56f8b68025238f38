"""Image sequences (a folder of frames as one video): reading in natural name order, which
folders are sequences, one-line errors, and ``crct track`` on a folder of a video's frames
giving that video's points.

The tracking tests run test_batch's fake networks (they find the cartoon face by its colour)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_batch import crct, fakes, touch  # noqa: F401  (fakes: a fixture)

from crct_cli.batch.discover import discover
from crct_cli.batch.resume import input_stamp
from crct_cli.batch.summary import read_summary
from crct_cli.errors import CrctError
from crct_cli.io.images import MAX_IMAGE_PIXELS, read_image, write_image
from crct_cli.io.landmarks import read_pts
from crct_cli.io.sequence import SEQUENCE_FPS, sequence_images
from crct_cli.io.track_json import read_track_json
from crct_cli.io.video import iter_frames, probe_video


def frames_folder(video: Path, folder: Path, name: str = "frame{}.png") -> list[np.ndarray]:
    """The decoded frames of ``video`` as lossless images ``frame0.png, frame1.png...``
    (unpadded numbers, so that only a natural sort puts frame10 after frame9)."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [f.image for f in iter_frames(video)]
    for k, image in enumerate(frames):
        write_image(folder / name.format(k), image)
    return frames


def test_the_frames_come_in_natural_name_order_at_the_given_rate(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    frames = frames_folder(make_video("clip.mp4", n_frames=12), tmp_path / "seq")
    touch(tmp_path / "seq", ".hidden.png", "notes.txt")
    assert [p.name for p in sequence_images(tmp_path / "seq")][9:] == [
        "frame9.png",
        "frame10.png",
        "frame11.png",
    ]
    got = list(iter_frames(tmp_path / "seq", fps=20.0))
    assert [f.index for f in got] == list(range(12))
    assert [f.time for f in got] == pytest.approx([k / 20.0 for k in range(12)])
    assert all(np.array_equal(f.image, want) for f, want in zip(got, frames, strict=True))
    assert [f.time for f in iter_frames(tmp_path / "seq", max_frames=3)] == pytest.approx(
        [0.0, 1 / SEQUENCE_FPS, 2 / SEQUENCE_FPS]
    )
    info = probe_video(tmp_path / "seq", fps=20.0)
    assert (info.width, info.height, info.fps, info.n_frames) == (96, 72, 20.0, 12)
    assert info.duration == pytest.approx(0.6)


def test_a_frame_of_another_size_is_one_clear_error_an_unreadable_one_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seq = tmp_path / "seq"
    seq.mkdir()
    for k in range(3):
        write_image(seq / f"{k:03d}.png", np.full((20, 30, 3), 40 * k, np.uint8))
    write_image(seq / "003.png", np.zeros((21, 30, 3), np.uint8))
    with pytest.raises(
        CrctError, match=r"003\.png: 30x21, but the sequence's first image is 30x20"
    ):
        list(iter_frames(seq))
    (seq / "003.png").write_bytes(b"not a png")  # damaged: passed over, as a video's frame
    write_image(seq / "004.png", np.full((20, 30, 3), 200, np.uint8))
    with caplog.at_level("WARNING", logger="crct_cli"):
        frames = list(iter_frames(seq))
    assert [f.index for f in frames] == [0, 1, 2, 4] and frames[3].time == pytest.approx(4 / 30)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "003.png: not a readable image" in said[0]
    assert said[0].endswith("frame 4 passed over")
    (seq / "000.png").write_bytes(b"")  # the first unreadable: the next one gives the size
    assert probe_video(seq).width == 30 and [f.index for f in iter_frames(seq)] == [1, 2, 4]
    write_image(seq / "000.png", np.full((20, 30, 3), 0, np.uint8))
    (seq / "004.png").unlink()
    # frames skipped are not read, but the first image still sets the size the header gives
    write_image(seq / "003.png", np.zeros((21, 30, 3), np.uint8))
    other_size = r"003\.png: 30x21, but the sequence's first image is 30x20"
    with pytest.raises(CrctError, match=other_size):
        list(iter_frames(seq, skip=3))
    assert [f.index for f in iter_frames(seq, max_frames=2, skip=1)] == [1, 2]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrctError, match="no images in this folder"):
        probe_video(tmp_path / "empty")
    with pytest.raises(CrctError, match="^sequence_fps must be a positive"):
        list(iter_frames(seq, fps=0.0))


def test_which_folders_are_sequences(tmp_path: Path) -> None:
    """Images and no video, and nothing to track below: a sequence. Loose images beside
    videos or sequences (a cover) are left; a video beside images makes the folder a video's."""
    root, out = tmp_path / "data", tmp_path / "out"
    touch(root, "cover.jpg", "S005/001/0001.png", "S005/001/0002.png", "S005/002/a.jpg")
    touch(root, "S005/001/annot/0001.pts", "clips/talk.mp4", "clips/still.png")
    touch(root, "mixed/x.png", "mixed/deeper/y.png")
    jobs = discover([root], out)
    assert [(j.output, j.source.is_dir()) for j in jobs] == [
        ("S005/001", True),
        ("S005/002", True),
        ("clips/talk", False),
        ("mixed/deeper", True),
    ]
    assert jobs[0].out_dir == out / "S005/001" and jobs[0].label == str(root / "S005/001")
    lone = discover([root / "S005/001"], out)  # named alone: OUT itself, as a lone video
    assert [(j.out_dir, j.output) for j in lone] == [(out, ".")]
    two = discover([root / "S005/001", root / "clips/talk.mp4"], out)
    assert [j.output for j in two] == ["001", "talk"]
    assert [j.output for j in discover([root / "clips"], out)] == ["talk"]  # still.png left
    with pytest.raises(CrctError, match="no video files .* and no folder of images"):
        discover([root / "S005/001/annot"], out)


def test_an_added_image_changes_the_stamp(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    seq.mkdir()
    for k in range(3):
        write_image(seq / f"{k}.png", np.full((8, 8, 3), k, np.uint8))
    first = input_stamp(seq)
    assert first["images"] == 3 and first["size"] == sum(p.stat().st_size for p in seq.iterdir())
    write_image(seq / "3.png", np.zeros((8, 8, 3), np.uint8))
    assert input_stamp(seq) != first


def test_crct_track_on_a_folder_of_a_videos_frames_gives_the_videos_points(
    make_video: Callable[..., Path],
    tmp_path: Path,
    fakes: None,  # noqa: F811
) -> None:
    clip = make_video("clip.mp4", n_frames=14, width=128, height=96)
    frames_folder(clip, tmp_path / "frames")
    video_run = crct("track", clip, "--out", tmp_path / "v")
    assert video_run.exit_code == 0, video_run.output
    # the video's own 25 fps, so that the smoothing counts the same seconds
    seq_run = crct("track", tmp_path / "frames", "--out", tmp_path / "s", "--sequence-fps", "25")
    assert seq_run.exit_code == 0, seq_run.output
    names = sorted(p.name for p in (tmp_path / "v/annot").glob("*.pts"))
    assert len(names) == 14 and names == sorted(p.name for p in (tmp_path / "s/annot").iterdir())
    for name in names:
        assert np.array_equal(
            read_pts(tmp_path / "v/annot" / name), read_pts(tmp_path / "s/annot" / name)
        )
    track = read_track_json(tmp_path / "s/track.json")
    assert track.header["fps"] == 25.0 and track.header["n_frames"] == 14
    assert track.header["images"][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert track.header["config"]["sequence_fps"] == 25.0
    # done: a re-run skips it, until an image is added
    again = crct("track", tmp_path / "frames", "--out", tmp_path / "s", "--sequence-fps", "25")
    assert again.exit_code == 0 and "already tracked" in again.stderr
    write_image(tmp_path / "frames/frame14.png", read_image(tmp_path / "frames/frame13.png"))
    grown = crct("track", tmp_path / "frames", "--out", tmp_path / "s", "--sequence-fps", "25")
    assert grown.exit_code == 0 and "already tracked" not in grown.stderr
    # --max-frames: the header names the images tracked, frame index 0 first
    first = crct("track", tmp_path / "frames", "--out", tmp_path / "f", "--max-frames", "4")
    assert first.exit_code == 0, first.output
    head = read_track_json(tmp_path / "f/track.json").header
    assert head["images"] == [f"frame{k}.png" for k in range(4)] and head["max_frames"] == 4
    # --skip-frames: the images before are not read; images stays indexed by frame number
    mid = ["--skip-frames", "2", "--max-frames", "3"]
    run = crct("track", tmp_path / "frames", "--out", tmp_path / "m", *mid)
    assert run.exit_code == 0, run.output
    track = read_track_json(tmp_path / "m/track.json")
    assert [f.index for f in track.frames] == [2, 3, 4]
    assert track.header["images"] == [f"frame{k}.png" for k in range(5)]
    assert sorted(p.name for p in (tmp_path / "m/annot").iterdir())[0] == "000003.pts"
    for name in ("000003.pts", "000005.pts"):  # as the whole run: these fakes need no history
        assert np.array_equal(
            read_pts(tmp_path / "m/annot" / name), read_pts(tmp_path / "s/annot" / name)
        )
    assert len(list((tmp_path / "s/annot").glob("*.pts"))) == 15


def test_a_deep_sequence_reads_every_frame_as_its_first(tmp_path: Path) -> None:
    """16-bit frames of a 12-bit camera read at the 12-bit range, and one frame's highlight
    (a full 16-bit value) does not dim that frame: every frame is read as deep as the first."""
    import cv2

    seq = tmp_path / "seq"
    seq.mkdir()
    scene = np.tile(np.arange(100, 4000, 78, dtype=np.uint16), (40, 1))
    for k in range(4):
        frame = scene.copy()
        if k == 2:
            frame[:4, :4] = 65535
        cv2.imwrite(str(seq / f"{k}.png"), frame)
    frames = [f.image[..., 0] for f in iter_frames(seq)]
    expected = np.round(scene / 4095 * 255)
    for k, image in enumerate(frames):
        assert (image[4:] == expected[4:]).all(), k
    assert frames[2][:4, :4].min() == 255


def test_a_bad_frame_fails_its_sequence_alone_a_damaged_one_is_passed_over(
    make_video: Callable[..., Path],
    tmp_path: Path,
    fakes: None,  # noqa: F811
) -> None:
    clip = make_video("clip.mp4", n_frames=6, width=128, height=96)
    frames_folder(clip, tmp_path / "in/good")
    frames_folder(clip, tmp_path / "in/bad")
    frames_folder(clip, tmp_path / "in/damaged")
    write_image(tmp_path / "in/bad/frame4.png", np.zeros((95, 128, 3), np.uint8))
    (tmp_path / "in/damaged/frame4.png").write_bytes(b"broken")
    result = crct("track", tmp_path / "in", "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 2
    assert "frame4.png: 128x95, but the sequence's first image is 128x96" in result.stderr
    assert "Traceback" not in result.output
    assert len(list((tmp_path / "out/good/annot").glob("*.pts"))) == 6
    assert not (tmp_path / "out/bad/track.json").exists()
    # a damaged frame: its number a gap, the frames after it theirs; the worker's warning
    # printed by the command (above its bars, not into them from the worker's stderr), and
    # kept in track.json and summary.csv, also when a second run keeps the outputs
    warned = [line for line in result.stderr.splitlines() if "damaged/frame4.png" in line]
    assert len(warned) == 1 and warned[0].startswith("crct: warning: "), result.stderr
    assert warned[0].endswith("(corrupt or unsupported format); frame 5 passed over")
    summary = read_track_json(tmp_path / "out/damaged/track.json").summary
    assert summary["status"] == "ok" and len(summary["warnings"]) == 1
    assert "frame4.png: not a readable image" in summary["warnings"][0]
    assert read_track_json(tmp_path / "out/good/track.json").summary["warnings"] == []
    for run in range(2):
        if run:
            again = crct("track", tmp_path / "in", "--out", tmp_path / "out", "--workers", "1")
            assert again.exit_code == 2
        rows = {r["output"]: r for r in read_summary(tmp_path / "out/summary.csv")}
        assert rows["damaged"]["warnings"].endswith("frame 5 passed over"), run
        assert rows["good"]["warnings"] == ""
        assert rows["damaged"]["skipped"] == ("yes" if run else "")
    names = sorted(p.name for p in (tmp_path / "out/damaged/annot").glob("*.pts"))
    assert names == [f"{k:06d}.pts" for k in (1, 2, 3, 4, 6)]


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a grey PNG of that size (its pixels never follow): what a reader
    sees before deciding to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_picture_too_large_to_decode_is_refused_from_its_header(
    tmp_path: Path,
    fakes: None,  # noqa: F811
) -> None:
    """A few bytes of PNG can claim 20,000 x 20,000 pixels (decoding and detecting in it would
    take tens of gigabytes): refused before decoding, in one line, as a sequence's frame too."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(20_000, 20_000))
    with pytest.raises(CrctError, match=r"huge\.png: .* is too large .*resize it first"):
        read_image(huge)
    big = tmp_path / "big.png"
    big.write_bytes(png_header(12_000, 9_000))  # over crct's limit, under Pillow's
    with pytest.raises(CrctError, match="12000 x 9000 pixels is too large"):
        read_image(big)
    under = tmp_path / "under.png"
    under.write_bytes(png_header(10_000, MAX_IMAGE_PIXELS // 10_000))  # at the limit: decoded
    with pytest.raises(CrctError, match="not a readable image"):  # (and found truncated)
        read_image(under)
    seq = tmp_path / "seq"
    seq.mkdir()
    write_image(seq / "000.png", np.zeros((20, 30, 3), np.uint8))
    (seq / "001.png").write_bytes(png_header(30_000, 30_000))
    result = crct("track", seq, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "001.png: more than 100 megapixels is too large" in result.stderr
    assert result.stderr.strip().count("\n") == 0
