"""``Tracker.track(frames)``: frames the caller decoded, tracked as a video file is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crct_cli.api import Tracker, _check_image
from crct_cli.errors import CrctError
from crct_cli.io.arrays import is_frame_source, iter_arrays
from crct_cli.io.video import iter_frames, probe_video

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"


def test_paths_are_decoded_and_arrays_are_not() -> None:
    assert not is_frame_source("a.mp4") and not is_frame_source(SAMPLE)
    assert is_frame_source(np.zeros((2, 4, 4, 3), np.uint8)) and is_frame_source([])


def test_arrays_become_numbered_timed_frames_of_their_own() -> None:
    buffer = np.zeros((6, 8, 3), np.uint8)

    def capture():  # one buffer, overwritten for every frame, as a capture loop does
        for k in range(7):
            buffer[:] = k
            yield buffer

    frames = list(iter_arrays(capture(), 25.0, _check_image, max_frames=3, skip=2))
    assert [f.index for f in frames] == [2, 3, 4]
    assert [f.time for f in frames] == [2 / 25, 3 / 25, 4 / 25]
    assert [int(f.image[0, 0, 0]) for f in frames] == [2, 3, 4]  # copies, not the buffer
    grey = list(iter_arrays(np.full((2, 5, 6, 1), 9, np.uint8), 30.0, _check_image))
    assert grey[1].image.shape == (5, 6, 3) and int(grey[1].image.max()) == 9
    video = np.arange(3 * 6 * 8 * 3, dtype=np.uint8).reshape(3, 6, 8, 3)
    held = [f.image for f in iter_arrays(video, 25.0, _check_image)]
    video[:] = 0  # the caller's array is theirs to change: each frame was copied once
    assert all(f.any() and not np.may_share_memory(f, video) for f in held)
    made: list[np.ndarray] = []

    def converting(array: np.ndarray) -> np.ndarray:  # as a grey frame's check makes one anew
        made.append(np.repeat(array[..., None], 3, axis=2))
        return made[-1]

    anew = list(iter_arrays(np.zeros((2, 4, 5), np.uint8), 25.0, converting))
    assert all(f.image is m for f, m in zip(anew, made, strict=True))  # not copied again
    grey_buffer = np.zeros((6, 8), np.uint8)

    def grey_capture():
        for k in range(3):
            grey_buffer[:] = k
            yield grey_buffer

    assert [int(f.image[0, 0, 1]) for f in iter_arrays(grey_capture(), 25.0, _check_image)] == [
        0,
        1,
        2,
    ]


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        (np.zeros((5, 6, 3), np.uint8), "one image: step"),
        (7, "takes a video's path or its frames, got int"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], "frame 1: "),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], "frame 1: 4x5, but"),
        ([], "no frames to track"),
    ],
)
def test_bad_frames_are_one_clear_error(frames, words) -> None:
    with pytest.raises(CrctError, match=words):
        list(iter_arrays(frames, 30.0, _check_image))


def test_frames_in_memory_track_as_their_file_does() -> None:
    """Decoded by the caller, the sample's frames give the file's points (same times)."""
    fps = probe_video(SAMPLE).fps
    decoded = list(iter_frames(SAMPLE, max_frames=12))
    tracker = Tracker(sequence_fps=fps)
    from_file = list(tracker.track(SAMPLE, max_frames=10, skip_frames=2))
    as_list = list(tracker.track([f.image for f in decoded], max_frames=10, skip_frames=2))
    as_array = list(tracker.track(np.stack([f.image for f in decoded])[2:]))
    assert [f.index for f in as_list] == [f.index for f in from_file] == list(range(2, 12))
    assert [f.index for f in as_array] == list(range(10))
    np.testing.assert_allclose([f.time for f in as_list], [f.time for f in from_file], atol=1e-6)
    for a, b, c in zip(from_file, as_list, as_array, strict=True):
        assert (
            [x.state for x in a.faces] == [x.state for x in b.faces] == [x.state for x in c.faces]
        )
        np.testing.assert_allclose(b.faces[0].points, a.faces[0].points, atol=1e-3)
        np.testing.assert_allclose(c.faces[0].points, a.faces[0].points, atol=1e-3)
        assert b.image is not None and np.array_equal(b.image, a.image)


def test_a_source_is_read_on_the_callers_thread_and_never_past_max_frames() -> None:
    """A source bound to its thread works, and a camera is not asked for a frame more."""
    import threading

    decoded = [f.image for f in iter_frames(SAMPLE, max_frames=3)]
    threads = []

    def camera():
        for image in decoded:
            threads.append(threading.current_thread())
            yield image
        raise RuntimeError("asked for a frame past max_frames")

    frames = list(Tracker(lookahead=False).track(camera(), max_frames=3))
    assert len(frames) == 3 and set(threads) == {threading.main_thread()}


def test_grey_stacks_and_bad_counts() -> None:
    grey = np.stack([f.image[..., 1] for f in iter_frames(SAMPLE, max_frames=2)])
    assert [f.index for f in Tracker().track(grey)] == [0, 1]
    for bad, words in ((-1, "must be 0 or more"), (2.5, "must be a whole number")):
        with pytest.raises(CrctError, match=f"max_frames {words}"):
            list(Tracker().track(grey, max_frames=bad))
