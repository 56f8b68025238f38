"""``iter_frames(skip=...)`` seeks on long skips: the same frames, numbers and times as decoding
through, on B-frames, variable frame rates and the codecs it seeks in; elsewhere it decodes."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from crct_cli.errors import CrctError
from crct_cli.io import video
from crct_cli.io.video import has_encoder, iter_frames

N_FRAMES = 150


def _picture(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Frame ``i``: a texture drifting a pixel a frame (so that encoders predict frames from
    one another) under bars that spell ``i`` in binary (so that no two frames look alike)."""
    texture = np.random.default_rng(0).integers(40, 90, (height, 2 * width, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.roll(texture, i, axis=1)[:, :width])
    for bit in range(8):
        if i >> bit & 1:
            image[:, bit * 8 : bit * 8 + 6] = 230
    return image


def _number(image: np.ndarray) -> int:
    """The frame number ``_picture`` spelt in bars."""
    return sum(int(image[:, bit * 8 + 3].mean() > 160) << bit for bit in range(8))


def _write(
    path: Path,
    codec: str,
    stamps: list[int],
    options: dict[str, str],
    container_options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode ``_picture(i)`` at presentation time ``stamps[i]`` milliseconds."""
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.options = options
        for i, stamp in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(_picture(i), format="rgb24")
            frame.pts = stamp
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _regular() -> list[int]:
    return [40 * i for i in range(N_FRAMES)]


def _variable() -> list[int]:
    """Gaps of 20-100 ms, as a phone's variable frame rate writes them."""
    gaps = np.random.default_rng(7).integers(20, 101, N_FRAMES)
    return [int(t) for t in np.concatenate([[0], np.cumsum(gaps[1:])])]


#: keyframes only every ``g`` frames, never at a "scene cut"
X264 = {"preset": "veryfast", "x264-params": "scenecut=0"}

CLIPS = [
    ("h264_bframes.mp4", "libx264", _regular, {"g": "12", "bf": "3", **X264}),
    ("h264_vfr.mkv", "libx264", _variable, {"g": "10", "bf": "2", **X264}),
    ("h264_vfr.mp4", "libx264", _variable, {"g": "17", "bf": "3", **X264}),
    ("mpeg4.mp4", "mpeg4", _regular, {"g": "15", "bf": "2", "sc_threshold": "1000000000"}),
    ("vp9.webm", "libvpx-vp9", _regular, {"g": "20", "deadline": "realtime", "cpu-used": "8"}),
]


@pytest.fixture
def count_decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many frames the decoder gave, over all readings of the file."""
    counted = [0]
    decode = video._decode

    def counting(*args: object) -> Iterator[av.VideoFrame]:
        for frame in decode(*args):  # type: ignore[arg-type]
            counted[0] += 1
            yield frame

    monkeypatch.setattr(video, "_decode", counting)
    return counted


def _through(path: Path, skip: int, count: int | None) -> list[video.Frame]:
    return list(iter_frames(path, count, skip=0))[skip : None if count is None else skip + count]


def _same(a: list[video.Frame], b: list[video.Frame]) -> bool:
    return len(a) == len(b) and all(
        x.index == y.index and x.time == y.time and np.array_equal(x.image, y.image)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(("name", "codec", "stamps", "options"), CLIPS, ids=[c[0] for c in CLIPS])
def test_a_long_skip_seeks_and_gives_the_frames_decoding_through_gives(
    tmp_path, monkeypatch, count_decoded, name, codec, stamps, options
) -> None:
    if not has_encoder(codec):
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = _write(tmp_path / name, codec, stamps(), options)
    whole = list(iter_frames(path))
    assert len(whole) == N_FRAMES and len({f.time for f in whole}) == N_FRAMES
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    for skip in (20, 57, 96, 120, N_FRAMES - 1):
        count_decoded[0] = 0
        got = list(iter_frames(path, 15, skip=skip))
        assert _same(got, whole[skip : skip + 15]), (name, skip)
        # sought, not decoded through: at most a keyframe interval before the skip decoded
        assert count_decoded[0] < len(got) + 25, (name, skip, count_decoded[0])
    # each frame's own picture, found again by its bars, so no two frames were swapped
    assert _number(next(iter_frames(path, 1, skip=101)).image) == 101


def test_a_short_skip_decodes_through(tmp_path, count_decoded) -> None:
    path = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "3", **X264})
    assert video.SEEK_MIN_SKIP > 40
    frames = list(iter_frames(path, 5, skip=40))
    assert [f.index for f in frames] == list(range(40, 45)) and count_decoded[0] == 45


def test_a_missed_seek_reads_the_file_again_from_the_start(
    tmp_path, monkeypatch, count_decoded
) -> None:
    """Should seeking land past the frame asked for, the keyframe before is tried, and then
    the frames come from decoding through."""
    path = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "3", **X264})
    whole = list(iter_frames(path))
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    point = video._seek_point(path, 70)
    assert point is not None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        later = [p.pts for p in container.demux(stream) if p.is_keyframe and p.pts > point.pts]
    # the keyframe after frame 70, where a demuxer that seeks by other timestamps could land
    for starts, reads_again in (((later[0], point.starts[0]), False), ((later[0],), True)):
        wrong = video._SeekPoint(starts=starts, pts=point.pts)
        monkeypatch.setattr(video, "_seek_point", lambda p, s, wrong=wrong: wrong)
        count_decoded[0] = 0
        assert _same(list(iter_frames(path, 10, skip=70)), whole[70:80])
        # the second try decodes from frame 70's keyframe; without one, from frame 0 again
        assert (count_decoded[0] >= 80) is reads_again, count_decoded[0]


def test_past_the_end_says_how_many_frames_without_decoding(
    tmp_path, monkeypatch, count_decoded
) -> None:
    path = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "3", **X264})
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    with pytest.raises(CrctError, match=f"skip_frames is 500, but the video has {N_FRAMES} frames"):
        list(iter_frames(path, skip=500))
    assert count_decoded[0] == 0
    # decoding through says the same
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 10**6)
    with pytest.raises(CrctError, match=f"skip_frames is 500, but the video has {N_FRAMES} frames"):
        list(iter_frames(path, skip=500))


def _remux_from(src: Path, dst: Path, first: int) -> Path:
    """``src``'s packets from the ``first``-th on (decoding order), copied without decoding:
    a file that starts on a frame that is not a keyframe, as a careless cut leaves it."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for i, packet in enumerate(p for p in inp.demux(stream) if p.size):
            if i >= first:
                packet.stream = copy
                out.mux(packet)
    return dst


def test_where_packets_cannot_number_the_frames_it_decodes_through(
    tmp_path, monkeypatch, count_decoded, make_video
) -> None:
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    clip = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "0", **X264})
    cut = _remux_from(clip, tmp_path / "cut.mp4", 5)  # the decoder drops 5..11
    avi = make_video("clip.avi", n_frames=60, codec="mpeg4")  # AVI: packets are not frames
    for path in (cut, avi):
        assert video._seek_point(path, 30) is None
        whole = list(iter_frames(path))
        count_decoded[0] = 0
        assert _same(list(iter_frames(path, 10, skip=30)), whole[30:40])
        assert count_decoded[0] == 40, path.name


def _trim_start(src: Path, dst: Path, frames: int) -> Path:
    """``src`` (25 fps MP4) with its edit list starting ``frames`` frames in, as a trim without
    re-encoding leaves it: the frames before stay in the file, marked to be dropped."""
    import struct

    data = bytearray(src.read_bytes())
    at = data.find(b"elst")
    duration, media_time = struct.unpack(">Ii", data[at + 12 : at + 20])
    with av.open(str(src)) as container:
        ticks = int(1 / (25 * container.streams.video[0].time_base))
    data[at + 12 : at + 20] = struct.pack(
        ">Ii", duration - frames * 40, media_time + frames * ticks
    )
    dst.write_bytes(bytes(data))
    return dst


OPEN_GOP = {"preset": "veryfast", "x264-params": "open-gop=1:keyint=12:min-keyint=12:scenecut=0"}


def test_files_cut_without_re_encoding_are_numbered_as_decoding_through_numbers_them(
    tmp_path, monkeypatch, count_decoded
) -> None:
    """A trim by edit list (frames before it decoded, never shown) still seeks; a stream cut at
    an open GOP's keyframe (the frames shown before it are dropped) decodes through."""
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    clip = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "30", "bf": "3", **X264})
    trimmed = _trim_start(clip, tmp_path / "trimmed.mp4", 5)
    whole = list(iter_frames(trimmed))
    assert len(whole) == N_FRAMES - 5 and _number(whole[0].image) == 5  # the trim shows
    count_decoded[0] = 0
    assert _same(list(iter_frames(trimmed, 10, skip=100)), whole[100:110])
    assert count_decoded[0] < 60  # sought
    with pytest.raises(CrctError, match=f"but the video has {N_FRAMES - 5} frames"):
        list(iter_frames(trimmed, skip=N_FRAMES))

    source = _write(tmp_path / "open.mkv", "libx264", _regular(), {"bf": "3", **OPEN_GOP})
    with av.open(str(source)) as container:
        keys = [i for i, p in enumerate(container.demux(video=0)) if p.is_keyframe and p.size]
    cut = _remux_from(source, tmp_path / "cut.mkv", keys[1])
    whole = list(iter_frames(cut))
    assert video._seek_point(cut, 60) is None
    assert _same(list(iter_frames(cut, 10, skip=60)), whole[60:70])


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "audio_only"])
def test_a_long_skip_of_a_bad_file_is_one_line(tmp_path, monkeypatch, kind) -> None:
    from test_video import _bad_file

    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    path = _bad_file(tmp_path, kind, None)  # these kinds need no clip of their own
    with pytest.raises(CrctError) as err:
        list(iter_frames(path, skip=100))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_file_past_its_end_says_what_decoding_through_says(
    tmp_path, monkeypatch
) -> None:
    """Packets listed in the index whose data is gone are no frames."""
    clip = _write(
        tmp_path / "clip.mp4",
        "libx264",
        _regular(),
        {"g": "12", "bf": "3", **X264},
        {"movflags": "faststart"},
    )
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    messages = []
    for limit in (20, 10**6):
        monkeypatch.setattr(video, "SEEK_MIN_SKIP", limit)
        with pytest.raises(CrctError) as err:
            list(iter_frames(cut, skip=N_FRAMES - 20))
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "but the video has" in messages[0]


def _spoil_packets(src: Path, dst: Path, which: list[int]) -> list[int]:
    """Copy ``src`` (25 fps) with the packets ``which`` (decoding order) overwritten by 0xff
    bytes, as a damaged disk or transfer leaves them; returns their frame numbers. The
    decoder refuses such a packet, so its frame never comes out; the frames after it decode.
    (A packet's bytes are looked for from its position on: Matroska's position is its block's.)"""
    data = bytearray(src.read_bytes())
    numbers = []
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        for k in which:
            payload = bytes(packets[k])
            at = data.find(payload, max(0, packets[k].pos - 64))
            data[at : at + len(payload)] = b"\xff" * len(payload)
            numbers.append(round(packets[k].pts * stream.time_base * 25))
    dst.write_bytes(bytes(data))
    return numbers


def _spoil_packet(src: Path, dst: Path, k: int) -> int:
    """:func:`_spoil_packets` of one packet that is not a keyframe."""
    with av.open(str(src)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        assert not packets[k].is_keyframe
    return _spoil_packets(src, dst, [k])[0]


def _keyframe_packets(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    return [k for k, p in enumerate(packets) if p.is_keyframe]


def _numbered_by_time(frames: list[video.Frame]) -> bool:
    numbers = [f.index for f in frames]
    return numbers == sorted(set(numbers)) and all(f.index == round(f.time * 25) for f in frames)


def test_a_frame_lost_to_a_corrupt_packet_keeps_its_number(tmp_path, monkeypatch) -> None:
    """The frames after a frame that fails to decode keep their numbers (their times' places
    at 25 fps) decoding through, and seeking finds the same frames under the same numbers."""
    clip = _write(tmp_path / "clip.mp4", "libx264", _regular(), {"g": "12", "bf": "3", **X264})
    bad = tmp_path / "bad.mp4"
    lost = _spoil_packet(clip, bad, 40)  # MP4's packet position is its data's
    whole = list(iter_frames(bad))
    numbers = [f.index for f in whole]
    assert len(whole) == N_FRAMES - 1 and numbers == [k for k in range(N_FRAMES) if k != lost]
    assert numbers == sorted(set(numbers)) and numbers[-1] == N_FRAMES - 1
    assert all(f.index == round(f.time * 25) for f in whole)
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 20)
    for skip in (60, 100):  # after the lost frame: sought by the packets' timestamps
        got = list(iter_frames(bad, 10, skip=skip))
        assert _same(got, [f for f in whole if skip <= f.index < skip + 10]), skip


def test_a_lost_first_frame_or_keyframe_leaves_the_others_their_numbers(
    tmp_path, monkeypatch
) -> None:
    """Frames lost before the first one decoded count too, and so do the frames a decoder
    gives out of order after a lost keyframe (shown before it, decoded after later ones: their
    places have passed, so they are dropped); seeking finds the same numbers, and a range asked
    for is not overrun where frames are missing."""
    cases = []
    if has_encoder("mjpeg"):  # every frame a keyframe: the first packet lost
        mjpeg = _write(tmp_path / "mjpeg.mkv", "mjpeg", _regular()[:40], {}, pix_fmt="yuvj420p")
        cases.append((_spoil_packets(mjpeg, tmp_path / "first.mkv", [0]), "first.mkv", 40))
    options = {"g": "12", "bf": "3", **X264}
    h264 = _write(tmp_path / "h264.mp4", "libx264", _regular()[:100], options)
    second_key = _keyframe_packets(h264)[1]
    cases.append((_spoil_packets(h264, tmp_path / "key.mp4", [second_key]), "key.mp4", 100))
    for lost, name, n in cases:
        path = tmp_path / name
        monkeypatch.setattr(video, "SEEK_MIN_SKIP", 10**9)
        whole = list(iter_frames(path))
        assert _numbered_by_time(whole) and whole[-1].index == n - 1, name
        assert not set(lost) & {f.index for f in whole}
        monkeypatch.setattr(video, "SEEK_MIN_SKIP", 10)
        for skip in (20, 30, n - 1):
            got = list(iter_frames(path, 3, skip=skip))
            assert [(f.index, f.time) for f in got] == [
                (f.index, f.time) for f in whole if skip <= f.index < skip + 3
            ], (name, skip)
    clip = _write(tmp_path / "clip.mp4", "libx264", _regular()[:60], {"g": "12", "bf": "0", **X264})
    (lost,) = _spoil_packets(clip, tmp_path / "gap.mp4", [13])
    got = [f.index for f in iter_frames(tmp_path / "gap.mp4", 4, skip=lost - 3)]
    assert got == [lost - 3, lost - 2, lost - 1]  # frames lost-3 .. lost: the last one is lost


def test_an_intra_only_avi_keeps_a_lost_frame_s_number(tmp_path, monkeypatch) -> None:
    """A webcam's MJPEG in AVI: each packet is one frame, so a frame lost to a corrupt packet is
    a gap in the numbers, as in MP4 and Matroska, not a shift of every later frame; seeking
    finds the same numbers."""
    if not has_encoder("mjpeg"):
        pytest.skip("this FFmpeg has no MJPEG encoder")
    clip = _write(tmp_path / "cam.avi", "mjpeg", _regular()[:60], {}, pix_fmt="yuvj420p")
    (lost,) = _spoil_packets(clip, tmp_path / "bad.avi", [20])
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 10**9)
    whole = list(iter_frames(tmp_path / "bad.avi"))
    assert [f.index for f in whole] == [k for k in range(60) if k != lost]
    assert _numbered_by_time(whole)
    monkeypatch.setattr(video, "SEEK_MIN_SKIP", 10)
    for skip in (15, 30, 59):
        got = list(iter_frames(tmp_path / "bad.avi", 3, skip=skip))
        assert [(f.index, f.time) for f in got] == [
            (f.index, f.time) for f in whole if skip <= f.index < skip + 3
        ], skip
