"""Streaming video I/O: decode, timestamps, rotation, odd/gray sources, writer, bad input."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import weakref
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from crct_cli.errors import CrctError
from crct_cli.io import video
from crct_cli.io.video import (
    VideoWriter,
    apply_rotation,
    h264_roundtrip,
    has_encoder,
    is_video,
    iter_frames,
    probe_video,
    rate_fraction,
)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 pictures."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------------------------
# Reading


def test_decode_counts_times_and_pixels(make_video, face_image) -> None:
    path = make_video(n_frames=30, width=96, height=72, fps=25)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(30))
    times = np.array([f.time for f in frames])
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, np.arange(30) / 25.0, atol=1e-3)
    for f in frames[::7]:
        assert f.image.shape == (72, 96, 3) and f.image.dtype == np.uint8
        # The right picture in RGB order: close to what was drawn, far from its BGR swap.
        expected = face_image(96, 72, f.index / 25.0)
        assert _mad(f.image, expected) < 6
        assert _mad(f.image, expected[:, :, ::-1]) > 3 * _mad(f.image, expected)


def test_probe_reports_stream_facts(make_video) -> None:
    path = make_video(n_frames=30, width=96, height=72, fps=Fraction(30000, 1001))
    info = probe_video(path)
    assert (info.width, info.height, info.rotation, info.n_frames) == (96, 72, 0, 30)
    assert info.fps == pytest.approx(30000 / 1001, abs=1e-6)
    assert info.duration == pytest.approx(30 * 1001 / 30000, abs=0.05)
    assert info.path == Path(path)
    times = [f.time for f in iter_frames(path)]
    np.testing.assert_allclose(times, np.arange(30) * 1001 / 30000, atol=1e-3)


def test_iter_frames_is_a_lazy_generator_that_keeps_nothing(make_video) -> None:
    path = make_video(n_frames=12)
    gen = iter_frames(path)
    assert inspect.isgenerator(gen)
    first = next(gen)
    ref = weakref.ref(first)
    del first
    next(gen)
    assert ref() is None, "the generator must not hold on to frames it has yielded"
    gen.close()
    assert [f.index for f in iter_frames(path, max_frames=5)] == [0, 1, 2, 3, 4]
    assert list(iter_frames(path, max_frames=0)) == []


_MEMORY_PROBE = """
import os
import sys
from crct_cli.io.video import iter_frames

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

keep = sys.argv[2] == "keep"
kept, base, peak, decoded = [], 0, 0, 0
for f in iter_frames(sys.argv[1]):
    decoded += f.image.nbytes
    if keep:
        kept.append(f)
    if f.index == 20:
        base = rss()
    elif f.index > 20:
        peak = max(peak, rss())
print(decoded, peak - base)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_over_a_long_video(tmp_path, make_video) -> None:
    # 400 frames of 320x240 are 92 MB decoded; streaming must hold a few frames at most.
    # Measured in a fresh process, so nothing else the test session allocated moves the RSS.
    path = make_video("long.mp4", n_frames=400, width=320, height=240, codec="mpeg4")

    def growth(mode: str) -> tuple[int, int]:
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(path), mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        decoded, grew = done.stdout.split()
        return int(decoded), int(grew)

    decoded, grew = growth("stream")
    assert decoded == 400 * 320 * 240 * 3
    assert grew < 20e6, f"RSS grew {grew / 1e6:.1f} MB while streaming"
    # Control: the same measurement does see frames that are kept.
    assert growth("keep")[1] > 50e6


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [("odd.avi", "mpeg4", "yuv420p"), ("odd.mp4", "libx264", "yuv444p")],
)
def test_odd_size_source(make_video, face_image, name, codec, pix_fmt) -> None:
    path = make_video(name, width=63, height=47, n_frames=5, codec=codec, pix_fmt=pix_fmt)
    info = probe_video(path)
    assert (info.width, info.height) == (63, 47)
    frames = list(iter_frames(path))
    assert len(frames) == 5
    assert frames[0].image.shape == (47, 63, 3)
    assert _mad(frames[0].image, face_image(63, 47, 0.0)) < 8


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [
        ("gray.mkv", "ffv1", "gray"),
        ("gray.avi", "rawvideo", "gray"),
        ("j.avi", "mjpeg", "yuvj420p"),
    ],
)
def test_grayscale_and_full_range_sources_decode_to_rgb(
    make_video, face_image, name, codec, pix_fmt
) -> None:
    path = make_video(name, codec=codec, pix_fmt=pix_fmt, width=65, height=49, n_frames=4)
    with av.open(str(path)) as container:
        assert container.streams.video[0].format.name == pix_fmt  # the source really is that
    frames = list(iter_frames(path))
    assert len(frames) == 4
    image = frames[2].image
    assert image.shape == (49, 65, 3) and image.dtype == np.uint8
    expected = face_image(65, 49, 2 / 25.0)
    if pix_fmt == "gray":
        assert np.array_equal(image[:, :, 0], image[:, :, 1])
        assert np.array_equal(image[:, :, 1], image[:, :, 2])
        luma = expected.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        assert np.abs(image[:, :, 0] - luma).mean() < 6
    else:
        assert _mad(image, expected) < 8


@pytest.mark.parametrize(("rotation", "k"), [(90, 1), (-90, 3), (180, 2)])
def test_rotation_metadata_is_applied(make_video, face_image, rotation, k) -> None:
    path = make_video("rot.mp4", width=96, height=64, n_frames=3, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == k * 90
    expected_size = (64, 96) if k % 2 else (96, 64)
    assert (info.width, info.height) == expected_size
    image = next(iter_frames(path)).image
    assert image.shape == (expected_size[1], expected_size[0], 3)
    upright = np.rot90(face_image(96, 64, 0.0), k)
    assert _mad(image, upright) < 6
    if k == 2:
        assert _mad(image, face_image(96, 64, 0.0)) > 3 * _mad(image, upright)


def test_apply_rotation_turns_counter_clockwise() -> None:
    image = np.arange(6).reshape(2, 3)  # [[0 1 2], [3 4 5]]
    # A quarter turn counter-clockwise brings the top-right corner to the top-left.
    assert apply_rotation(image, 90).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert apply_rotation(image, 270).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert apply_rotation(image, -90).tolist() == apply_rotation(image, 270).tolist()
    assert apply_rotation(image, 180).tolist() == [[5, 4, 3], [2, 1, 0]]
    assert apply_rotation(image, 0) is image


def test_is_video() -> None:
    assert is_video("a/b/CLIP.MP4") and is_video("x.avi") and is_video("x.mkv")
    assert not is_video("x.jpg") and not is_video("x.pts") and not is_video("mp4")


# --------------------------------------------------------------------------------------------
# Bad input


def _bad_file(tmp_path: Path, kind: str, make_video) -> Path:
    if kind == "missing":
        return tmp_path / "nope.mp4"
    if kind == "directory":
        (tmp_path / "dir.mp4").mkdir()
        return tmp_path / "dir.mp4"
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    elif kind == "text":
        path.write_text("not a video\n" * 50)
    elif kind == "truncated":
        good = make_video("good.mp4", n_frames=10).read_bytes()
        path.write_bytes(good[: len(good) // 2])  # moov (the index) is at the end: lost
    elif kind == "no_frames":
        # A valid AVI header and index but no frame data at all.
        good = make_video("good.avi", n_frames=10, codec="mpeg4").read_bytes()
        path = tmp_path / "no_frames.avi"
        path.write_bytes(good[: good.find(b"movi") + 4])
    elif kind == "zeroed":
        # Container intact, every compressed frame overwritten with zeros.
        data = bytearray(make_video("good2.mp4", n_frames=10).read_bytes())
        start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4
        data[start:end] = bytes(end - start)
        path.write_bytes(bytes(data))
    elif kind == "audio_only":
        path = tmp_path / "audio.wav"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("pcm_s16le", rate=8000)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 800), np.int16), format="s16", layout="mono"
            )
            frame.sample_rate = 8000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    return path


BAD_KINDS = [
    "missing",
    "directory",
    "empty",
    "random",
    "text",
    "truncated",
    "no_frames",
    "zeroed",
    "audio_only",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_videos_raise_one_line_crct_error(tmp_path, make_video, kind) -> None:
    path = _bad_file(tmp_path, kind, make_video)
    with pytest.raises(CrctError) as probe_err:
        probe_video(path)
    with pytest.raises(CrctError) as iter_err:
        list(iter_frames(path))
    for err in (probe_err, iter_err):
        message = str(err.value)
        assert str(path) in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# Writing


def _frames(width: int, height: int, n: int, face_image) -> list[np.ndarray]:
    return [face_image(width, height, i / 10.0) for i in range(n)]


@pytest.mark.parametrize(
    ("fps", "exact"),
    [(25.0, Fraction(25)), (23.976, Fraction(24000, 1001)), (12.5, Fraction(25, 2))],
)
def test_writer_keeps_the_frame_rate(tmp_path, face_image, fps, exact) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps, 64, 48) as writer:
        for image in _frames(64, 48, 12, face_image):
            writer.write(image)
    info = probe_video(path)
    assert info.fps == pytest.approx(float(exact), abs=1e-6)
    assert info.n_frames == 12
    times = [f.time for f in iter_frames(path)]
    np.testing.assert_allclose(times, np.arange(12) / float(exact), atol=1e-3)


@pytest.mark.parametrize(
    ("fps", "exact"),
    [
        (23.976, Fraction(24000, 1001)),
        (29.97, Fraction(30000, 1001)),
        (24000 / 1001, Fraction(24000, 1001)),
        (25, Fraction(25)),
        (12.5, Fraction(25, 2)),
        (Fraction(7, 3), Fraction(7, 3)),
    ],
)
def test_rate_fraction(fps, exact) -> None:
    assert rate_fraction(fps) == exact


def test_rate_fraction_rejects_nonsense() -> None:
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            rate_fraction(bad)


def test_writer_round_trip_pixels_and_h264_by_default(tmp_path, face_image) -> None:
    path = tmp_path / "out.mp4"
    images = _frames(96, 72, 8, face_image)
    with VideoWriter(path, 25, 96, 72) as writer:
        for image in images:
            writer.write(image)
    if has_encoder("libx264"):
        assert writer.codec == "libx264"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.format.name == "yuv420p"
    decoded = [f.image for f in iter_frames(path)]
    assert len(decoded) == 8
    assert max(_mad(a, b) for a, b in zip(decoded, images, strict=True)) < 6


@pytest.mark.skipif(not has_encoder("libx264"), reason="this PyAV build has no libx264")
def test_h264_roundtrip_keeps_a_picture_and_loses_a_dim_faces_detail_first(face_image) -> None:
    """``--compression``'s picture: one H.264 frame, any size, the same every time; at a
    high CRF a dim, noisy face keeps far less of its detail than a bright one does."""
    face = face_image(65, 47)
    once = h264_roundtrip(face, 18.0)
    assert once.shape == face.shape and once.dtype == np.uint8  # odd sides cut back
    assert np.array_equal(once, h264_roundtrip(face, 18.0))
    assert _mad(once, face) < 6
    rng = np.random.default_rng(0)
    noisy = np.clip(face_image(96, 96).astype(np.float32) + rng.normal(0, 20, (96, 96, 3)), 0, 255)
    dim = (noisy * 0.05).astype(np.uint8)  # the dark strip of hard footage: 5% of the light
    bright = noisy.astype(np.uint8)

    def kept(picture: np.ndarray, crf: float) -> float:
        """Correlation of the picture's detail (minus its blur) before and after."""
        out = h264_roundtrip(picture, crf).astype(np.float32)
        ref = picture.astype(np.float32)
        detail = ref - cv2.blur(ref, (5, 5))
        return float(np.corrcoef(detail.ravel(), (out - cv2.blur(out, (5, 5))).ravel())[0, 1])

    assert kept(bright, 18.0) > 0.7 and kept(bright, 36.0) > kept(dim, 36.0) + 0.3
    assert kept(dim, 18.0) > kept(dim, 36.0)


def test_h264_roundtrip_without_an_encoder_is_one_clear_error(monkeypatch, face_image) -> None:
    monkeypatch.setattr(video, "has_encoder", lambda name: False)
    with pytest.raises(CrctError, match="no libx264 encoder"):
        h264_roundtrip(face_image(32, 32), 20.0)


def test_writer_pads_odd_sizes(tmp_path, face_image) -> None:
    path = tmp_path / "odd.mp4"
    images = _frames(65, 47, 4, face_image)
    with VideoWriter(path, 25, 65, 47) as writer:
        assert (writer.out_width, writer.out_height) == (66, 48)
        for image in images:
            writer.write(image)
    info = probe_video(path)
    assert (info.width, info.height) == (66, 48)
    out = next(iter_frames(path)).image
    assert _mad(out[:47, :65], images[0]) < 6  # the picture, unmoved
    assert _mad(out[:47, 65], images[0][:, 64]) < 10  # the pad repeats the edge
    assert _mad(out[47, :65], images[0][46]) < 10


def test_writer_falls_back_to_mpeg4(tmp_path, face_image, monkeypatch) -> None:
    monkeypatch.setattr(video, "has_encoder", lambda name: name != "libx264")
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 25, 64, 48) as writer:
        for image in _frames(64, 48, 5, face_image):
            writer.write(image)
    assert writer.codec == "mpeg4"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert len(list(iter_frames(path))) == 5


@pytest.mark.skipif(not has_encoder("libvpx-vp9"), reason="no VP9 encoder in this PyAV build")
def test_writer_picks_a_codec_the_container_takes(tmp_path, face_image) -> None:
    path = tmp_path / "out.webm"  # WebM takes neither H.264 nor MPEG-4
    with VideoWriter(path, 25, 64, 48) as writer:
        for image in _frames(64, 48, 3, face_image):
            writer.write(image)
    assert writer.codec == "libvpx-vp9"
    assert len(list(iter_frames(path))) == 3


def test_writer_unknown_codec_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CrctError, match="no usable video encoder"):
        VideoWriter(tmp_path / "out.mp4", 25, 64, 48, codec="no-such-codec")
    assert list(tmp_path.iterdir()) == []


def test_writer_unwritable_folder(tmp_path) -> None:
    with pytest.raises(CrctError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 25, 64, 48)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CrctError, match="not a folder"):
        VideoWriter(tmp_path / "file" / "out.mp4", 25, 64, 48)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_writer_read_only_folder(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CrctError, match="not writable"):
            VideoWriter(folder / "out.mp4", 25, 64, 48)
    finally:
        folder.chmod(0o755)


def test_writer_uses_a_temporary_name_until_closed(tmp_path, face_image) -> None:
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, 25, 64, 48)
    for image in _frames(64, 48, 60, face_image):  # enough for the encoder to emit packets
        writer.write(image)
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".out.partial.mp4"]
    assert (tmp_path / ".out.partial.mp4").stat().st_size > 0
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_failing_write_leaves_no_file(tmp_path, face_image) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, 25, 64, 48) as writer:
        for image in _frames(64, 48, 3, face_image):
            writer.write(image)
        raise RuntimeError("the tracker crashed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="expected a"), VideoWriter(path, 25, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.write(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_without_frames_saves_nothing(tmp_path) -> None:
    with pytest.raises(CrctError, match="no frame"), VideoWriter(tmp_path / "out.mp4", 25, 8, 8):
        pass
    assert list(tmp_path.iterdir()) == []


def test_writer_accepts_gray_frames(tmp_path) -> None:
    path = tmp_path / "gray.mp4"
    gray = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    with VideoWriter(path, 25, 64, 48) as writer:
        writer.write(gray)
    out = next(iter_frames(path)).image
    assert out.shape == (48, 64, 3)
    assert _mad(out, np.repeat(gray[:, :, None], 3, axis=2)) < 4


SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_shipped_sample_clip() -> None:
    clip = SAMPLES / "astronaut.mp4"
    assert clip.stat().st_size < 2 * 1024 * 1024
    info = probe_video(clip)
    assert (info.width, info.height, info.fps, info.n_frames) == (360, 360, 25.0, 75)
    frames = list(iter_frames(clip))
    assert len(frames) == 75 and frames[-1].time == pytest.approx(74 / 25, abs=1e-3)
    # The synthetic camera moves: consecutive frames differ, and the blurred ones are softer.
    assert _mad(frames[0].image, frames[10].image) > 5
    sharpness = [float(np.abs(np.diff(f.image.astype(np.int16), axis=1)).mean()) for f in frames]
    assert sharpness[38] < 0.7 * sharpness[30]
    assert (SAMPLES / "astronaut.jpg").stat().st_size < 200 * 1024


def test_prefetched_frames_come_in_order_and_errors_reach_the_reader(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    import threading

    from crct_cli.io.video import prefetch_frames

    clip = make_video("pre.mp4", n_frames=9, width=32, height=24)
    plain = list(iter_frames(clip))
    ahead = list(prefetch_frames(iter_frames(clip), depth=2))
    assert [f.index for f in ahead] == list(range(9))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ahead, plain, strict=True))
    with pytest.raises(CrctError, match="missing.mp4"):
        list(prefetch_frames(iter_frames(tmp_path / "missing.mp4")))
    # a reader that stops early stops the decoding thread too
    reader = prefetch_frames(iter_frames(clip), depth=1)
    next(reader)
    reader.close()
    assert not any(t.name == "crct-decode" and t.is_alive() for t in threading.enumerate())


def test_videos_open_with_pyav_releases_that_dropped_metadata_errors(
    make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyAV 19 refuses ``av.open(..., metadata_errors=...)`` (found on a fresh GPU machine);
    crct reads the video all the same, and a broken file is still one CrctError line."""
    import av

    import crct_cli.io.video as video

    clip = make_video("new_pyav.mp4", n_frames=5, width=32, height=24)
    before = [f.image for f in iter_frames(clip)]
    real_open = av.open
    calls: list[dict] = []

    def open_without_the_word(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        if "metadata_errors" in kwargs:
            raise TypeError("open() got an unexpected keyword argument 'metadata_errors'")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(video.av, "open", open_without_the_word)
    after = [f.image for f in iter_frames(clip)]
    assert len(after) == 5 and all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert any("metadata_errors" not in c for c in calls)  # the second, plain call read it
    assert probe_video(clip).n_frames == 5
    broken = clip.with_name("broken.mp4")
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(CrctError, match="broken.mp4"):
        list(iter_frames(broken))


def test_packets_count_the_frames_of_a_video_that_declares_none(make_video, tmp_path) -> None:
    from crct_cli.io.video import count_packet_frames

    mkv = make_video("a.mkv", n_frames=7)
    assert probe_video(mkv).n_frames is None
    assert count_packet_frames(mkv) == 7 == sum(1 for _ in iter_frames(mkv))
    assert count_packet_frames(make_video("b.webm", n_frames=5, codec="libvpx-vp9")) == 5
    assert count_packet_frames(make_video("c.mkv", n_frames=5, codec="ffv1")) == 5  # intra-only
    assert count_packet_frames(make_video("d.avi", n_frames=5, codec="mpeg4")) is None  # unsure
    (tmp_path / "not.mkv").write_bytes(b"not a video")
    assert count_packet_frames(tmp_path / "not.mkv") is None


def test_writer_given_frame_numbers_holds_the_picture_over_a_missing_frame(
    tmp_path, face_image
) -> None:
    """A frame the source lost (``index`` jumps) is the picture before it, written again, so
    the video keeps the source's timing and frame k is still the source's frame k."""
    h, w = 64, 96
    pictures = [np.full((h, w, 3), 40 * k, np.uint8) for k in range(5)]
    out = tmp_path / "held.mp4"
    buffer = np.empty((h, w, 3), np.uint8)  # one buffer refilled, as a decoder's may be
    with VideoWriter(out, 25, w, h) as writer:
        for k in (0, 1, 3, 4):  # frame 2 lost
            buffer[...] = pictures[k]
            writer.write(buffer, k)
    back = [f.image.astype(int) for f in iter_frames(out)]
    assert len(back) == 5
    means = [round(float(b.mean())) for b in back]
    assert abs(means[2] - 40) <= 2 and abs(means[3] - 120) <= 2 and abs(means[4] - 160) <= 2


def test_a_cover_picture_stored_before_the_video_is_not_taken_for_it(tmp_path) -> None:
    """A Matroska file whose first video stream is one still picture (a thumbnail a tagger or a
    downloader stored) and whose second is the video: crct reads the video, as FFmpeg picks
    it, not the one-frame picture."""
    path = tmp_path / "covered.mkv"
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        still = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
        still = still.reformat(format="yuvj420p")
        still.pts = 0
        for packet in [*cover.encode(still), *cover.encode(None)]:
            container.mux(packet)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 8 * i, np.uint8), "rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    info = probe_video(path)
    frames = list(iter_frames(path))
    assert (info.width, info.height) == (96, 64) and len(frames) == 30
    assert frames[-1].image.shape == (64, 96, 3) and frames[-1].time == pytest.approx(29 / 25)


def test_a_video_whose_picture_changes_size_keeps_the_size_it_began_with(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two MPEG-PS recordings joined (``cat a.mpg b.mpg``: 640x360, then 320x180 and 160x160):
    every frame comes at the first size, the same shape fitted whole (a square one centred on
    black), so the header, the overlay and the points agree; one warning says where."""
    from crct_cli.io.video import fit_into

    parts = []
    for k, (w, h, value) in enumerate(((64, 36, 60), (32, 18, 120), (16, 16, 200))):
        part = tmp_path / f"{k}.mpg"
        with av.open(str(part), mode="w") as container:
            stream = container.add_stream("mpeg2video", rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for i in range(6):
                picture = np.full((h, w, 3), value, np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        parts.append(part.read_bytes())
    joined = tmp_path / "joined.mpg"
    joined.write_bytes(b"".join(parts))
    with caplog.at_level("WARNING", logger="crct_cli"):
        frames = list(iter_frames(joined))
    # (the demuxer may drop a frame where two parts meet)
    assert len(frames) >= 15 and {f.image.shape for f in frames} == {(36, 64, 3)}
    middle = [int(f.image[18, 32, 0]) for f in frames]
    assert abs(middle[0] - 60) < 8 and any(abs(v - 120) < 8 for v in middle)
    square = frames[-1].image  # 16x16 scaled to 36x36, centred: black on both sides
    assert square[:, :10].max() < 20 and square[:, -10:].max() < 20 and square[18, 32, 0] > 180
    said = [r.getMessage() for r in caplog.records if "changes size" in r.getMessage()]
    assert len(said) == 1 and "(32x18 as stored; the video began at 64x36)" in said[0]
    later = list(iter_frames(joined, skip=len(frames) - 3))  # begun past the change
    assert {f.image.shape for f in later} == {(36, 64, 3)}
    assert fit_into(np.zeros((10, 20, 3), np.uint8), (40, 20)).shape == (20, 40, 3)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_an_overlay_keeps_a_variable_frame_rate_source_s_times(tmp_path: Path, codec: str) -> None:
    """Frames written with their source times (a phone's irregular intervals, two frames 20 ms
    apart) come back at those times to the tick (1/1008 s at 24 fps), not at one frame a 1/fps;
    a steady source's frames stay exactly 1/fps apart."""
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    times = [0.0, 0.02, 0.3, 0.32, 0.5, 0.52, 0.54, 1.0, 1.02, 1.3]
    picture = np.zeros((48, 64, 3), np.uint8)
    with VideoWriter(tmp_path / "vfr.mp4", 24, 64, 48, codec=codec) as writer:
        for k, time in enumerate(times):
            writer.write(picture, k, 10.0 + time)  # counted from the first frame's time
    back = [f.time for f in iter_frames(tmp_path / "vfr.mp4")]
    tick = 1 / (24 * 42)
    np.testing.assert_allclose(back, times, atol=tick / 2 + 1e-6)
    with VideoWriter(tmp_path / "cfr.mp4", Fraction(30000, 1001), 64, 48, codec=codec) as writer:
        for k in range(12):
            writer.write(picture, k, k * 1001 / 30000)
    assert probe_video(tmp_path / "cfr.mp4").fps == pytest.approx(30000 / 1001, abs=1e-6)
    back = [f.time for f in iter_frames(tmp_path / "cfr.mp4")]
    np.testing.assert_allclose(back, np.arange(12) * 1001 / 30000, atol=1e-6)


def test_a_phone_s_turned_video_read_from_a_later_frame_is_not_squeezed(
    make_video, caplog: pytest.LogCaptureFixture
) -> None:
    """A phone stores portrait video as landscape frames with a display matrix: read from a
    later frame, every frame is turned as from the start, its own size (the size the header
    gives, compared before turning), with no warning of a size change."""
    clip = make_video("phone.mp4", n_frames=8, width=96, height=64, rotation=90)
    whole = list(iter_frames(clip))
    with caplog.at_level("WARNING", logger="crct_cli"):
        later = list(iter_frames(clip, skip=3))
    assert {f.image.shape for f in whole} == {f.image.shape for f in later} == {(96, 64, 3)}
    assert all((a.image == b.image).all() for a, b in zip(whole[3:], later, strict=True))
    assert not [r for r in caplog.records if "changes size" in r.getMessage()]


def test_avi_and_mpeg_overlays_keep_one_tick_a_frame_and_videos_start_at_zero(
    tmp_path: Path,
) -> None:
    """AVI and MPEG program streams take their rate from the time base: there every frame is
    one tick (a millisecond's would read as 1000 fps, with empty frames between); a video
    written without times starts at 0; a frame lost between timed ones is held at its share
    of the time between (not pushed past the next)."""
    picture = np.zeros((48, 64, 3), np.uint8)
    for name in ("o.avi", "o.mpg", "o.mp4"):
        with VideoWriter(tmp_path / name, 25, 64, 48) as writer:
            for k in range(10):
                writer.write(picture, k, k / 25 + (0.01 if k % 2 else 0.0))
        if name != "o.mp4":  # one tick a frame: the rate as given, whatever the times
            assert probe_video(tmp_path / name).fps == pytest.approx(25.0), name
        times = [f.time for f in iter_frames(tmp_path / name)]
        assert len(times) == 10, name
        if name != "o.avi":  # (AVI has no times of its own: H.264's read as they come)
            assert times[0] == pytest.approx(0.0, abs=1e-3), name
    with VideoWriter(tmp_path / "gap.mp4", 25, 64, 48) as writer:
        for k, time in ((0, 0.0), (1, 0.04), (4, 0.1), (5, 0.14)):  # 2 and 3 lost
            writer.write(picture, k, time)
    times = [f.time for f in iter_frames(tmp_path / "gap.mp4")]
    np.testing.assert_allclose(times, [0.0, 0.04, 0.06, 0.08, 0.1, 0.14], atol=1e-3)
