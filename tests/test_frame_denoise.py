"""The temporal filter before the networks (``crct track --temporal-denoise``): the noise of a
still scene averaged out, a moving edge left where it is, clean video untouched, and the
frames the tracker and the benchmark read are the filtered ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crct_cli import Tracker
from crct_cli.bench.methods import TrackerMethod, frames_for
from crct_cli.errors import CrctError
from crct_cli.io.video import Frame, VideoWriter, iter_frames
from crct_cli.tracking import frame_denoise
from crct_cli.tracking.frame_denoise import (
    FrameDenoiseConfig,
    FrameDenoiser,
    compare_factor,
    denoise_frames,
    noise_level,
)
from crct_cli.tracking.tracker import TrackerConfig

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def scene(h: int = 72, w: int = 96) -> np.ndarray:
    """A smooth RGB picture: gradients and a soft dark disc (no texture to mistake for noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = 60 * np.exp(-(((x - w / 2) ** 2 + (y - h / 2) ** 2) / (2 * (h / 5) ** 2)))
    grey = 90 + 50 * x / w + 30 * y / h - disc
    return np.stack([grey, grey * 0.9 + 10, grey * 0.8 + 20], axis=-1)


def noisy(picture: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(picture + rng.normal(0, sigma, picture.shape) + 0.5, 0, 255).astype(np.uint8)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def test_the_noise_estimate_reads_the_noise_it_was_given() -> None:
    rng = np.random.default_rng(0)
    grey = scene()[..., 0]
    for sigma in (3.0, 6.0, 12.0):
        got = noise_level(grey + rng.normal(0, sigma, grey.shape).astype(np.float32))
        assert abs(got - sigma) < 0.12 * sigma, (sigma, got)
    assert noise_level(np.clip(grey + 0.5, 0, 255).astype(np.uint8)) < 0.5
    assert noise_level(np.zeros((2, 40), np.uint8)) == 0.0


def test_a_still_scene_loses_most_of_its_noise_and_every_frame_comes_out_in_order() -> None:
    rng = np.random.default_rng(1)
    clean = scene()
    frames = [Frame(k, k / 25, noisy(clean, 8.0, rng)) for k in range(9)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=2)))
    assert [(f.index, f.time) for f in out] == [(f.index, f.time) for f in frames]
    for k in range(2, 7):  # four neighbours each
        before, after = rms(frames[k].image, clean), rms(out[k].image, clean)
        assert after < 0.6 * before, (k, before, after)
        assert out[k].image.dtype == np.uint8 and out[k].image.shape == clean.shape


def test_a_moving_square_keeps_its_edges() -> None:
    """A bright square moving 8 px a frame over a dark noisy ground: the frames around hold it
    elsewhere, and none of it is smeared into the filtered frame."""
    rng = np.random.default_rng(2)
    frames = []
    for k in range(7):
        picture = np.full((64, 120, 3), 40.0)
        picture[20:44, 20 + 8 * k : 44 + 8 * k] = 200.0
        frames.append(Frame(k, k / 25, noisy(picture, 6.0, rng)))
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=2)))
    k = 3  # the square at x 44-68; its neighbours hold it at 28-52 ... 60-84
    grey = out[k].image.astype(np.float64).mean(axis=2)
    assert grey[23:41, 47:65].mean() > 190  # its inside, 3 px in from each edge
    assert abs(grey[23:41, 28:41].mean() - 40) < 6  # where it was two frames before
    assert abs(grey[23:41, 71:82].mean() - 40) < 6  # where it will be two frames after
    assert rms(out[k].image[50:, :], np.full((14, 120, 3), 40.0)) < 4  # the ground, quieter


def test_large_frames_are_compared_shrunk_and_filtered_as_at_full_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """720p and larger are compared at about 360 px on the short side (the weights made there,
    then enlarged): the noise of the still ground goes, the moving square is not smeared, and
    the result lies close to that of comparing at full size."""
    assert [compare_factor((h, 2 * h, 3)) for h in (300, 360, 719, 720, 1080, 2160)] == [
        1, 1, 1, 2, 3, 6,
    ]  # fmt: skip
    rng = np.random.default_rng(9)
    frames = []
    for k in range(5):
        picture = np.full((720, 1280, 3), 40.0)
        picture[200:500, 200 + 60 * k : 500 + 60 * k] = 200.0  # 60 px a frame
        frames.append(Frame(k, k / 25, noisy(picture, 6.0, rng)))
    shrunk = list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=2)))[2].image
    grey = shrunk.astype(np.float64).mean(axis=2)
    assert grey[210:490, 330:610].mean() > 190  # the square at x 320-620, 10 px in
    assert abs(grey[210:490, 200:310].mean() - 40) < 6  # where it was two frames before
    assert abs(grey[210:490, 630:740].mean() - 40) < 6  # where it will be two frames after
    ground = np.full((200, 1280, 3), 40.0)
    assert rms(shrunk[520:], ground) < 0.6 * rms(frames[2].image[520:], ground)
    monkeypatch.setattr(frame_denoise, "COMPARE_SHORT_SIDE", 10_000)  # compare at full size
    full = list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=2)))[2].image
    assert not np.array_equal(full, shrunk)
    assert np.abs(full.astype(np.float64) - shrunk).mean() < 0.5


def test_the_mean_is_within_a_grey_level_of_the_exact_weights() -> None:
    """The filter keeps its weights in 1/255 steps; written out here in float64 from the
    module's definition (blurred grey differences, exp(-(d / (s n))^2), the noise the median of
    the frames' estimates), the mean it makes is at most one grey level away."""
    rng = np.random.default_rng(4)
    frames = []
    for k in range(5):
        picture = scene(60, 80)
        picture[10:30, 10 + 6 * k : 30 + 6 * k] = 220.0  # a square moving 6 px a frame
        frames.append(Frame(k, k / 25, noisy(picture, 7.0, rng)))
    config = FrameDenoiseConfig(radius=2)
    got = list(denoise_frames(iter(frames), config))[2].image.astype(np.float64)

    greys = [cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY) for f in frames]
    level = float(np.median([noise_level(g) for g in greys[:3]]))  # frame 2 and those before
    blurred = [cv2.GaussianBlur(g.astype(np.float32), (0, 0), config.blur) for g in greys]
    total = np.zeros(frames[2].image.shape)
    weights = np.zeros(frames[2].image.shape[:2])
    for k in range(5):
        d = blurred[k].astype(np.float64) - blurred[2]
        w = np.exp(-((d / (config.strength * level)) ** 2))
        total += w[..., None] * frames[k].image
        weights += w
    exact = total / weights[..., None]
    assert np.abs(got - exact).max() <= 1.0
    assert np.abs(got - frames[2].image).max() > 5  # and it did filter the frame


def test_clean_video_passes_untouched() -> None:
    rng = np.random.default_rng(3)
    clean = scene()
    frames = [Frame(k, k / 25, noisy(clean, 0.4, rng)) for k in range(6)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig()))
    assert all(a is b for a, b in zip(out, frames, strict=True))
    assert list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=0))) == frames


def test_a_moment_of_noise_between_clean_frames_is_left_as_it_is() -> None:
    """The filter is for footage noisy throughout (a dim camera): a burst of noisy frames
    in clean video passes untouched; a video noisy from its start is filtered from its first
    frame."""
    rng = np.random.default_rng(7)
    clean = scene()
    sigmas = [0.3] * 10 + [8.0] * 10 + [0.3] * 10
    frames = [Frame(k, k / 25, noisy(clean, s, rng)) for k, s in enumerate(sigmas)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig()))
    assert all(a is b for a, b in zip(out, frames, strict=True))
    frames = [Frame(k, k / 25, noisy(clean, 8.0, rng)) for k in range(4)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig()))
    assert rms(out[0].image, clean) < 0.75 * rms(frames[0].image, clean)


def test_a_file_opening_on_a_noise_burst_is_left_as_it_is() -> None:
    """A file's first frames have few frames before them: there the first second decides with
    them, so a burst as the video opens passes untouched (before session 40 it was filtered),
    while a file noisy throughout is filtered from its first frame at one strength, however
    short it is; a live stream, which cannot wait, filters a noisy opening at once."""
    rng = np.random.default_rng(8)
    clean = scene()
    sigmas = [8.0] * 10 + [0.3] * 20
    frames = [Frame(k, k / 25, noisy(clean, s, rng)) for k, s in enumerate(sigmas)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig()))
    assert all(a is b for a, b in zip(out, frames, strict=True))
    live = list(denoise_frames(iter(frames), FrameDenoiseConfig(), two_sided=False))
    assert sum(a is not b for a, b in zip(live, frames, strict=True)) >= 8

    denoiser = FrameDenoiser(FrameDenoiseConfig())
    frames = [Frame(k, k / 25, noisy(clean, 8.0, rng)) for k in range(40)]
    ready = [len(denoiser.push(f)) for f in frames]
    assert ready[:24] == [0] * 24  # held until the first second has been read
    assert sum(ready) + len(denoiser.flush()) == 40
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig()))
    assert [f.index for f in out] == list(range(40))
    for k in (0, 1, 12, 23, 30):
        assert rms(out[k].image, clean) < 0.75 * rms(frames[k].image, clean), k
    short = list(denoise_frames(iter(frames[:5]), FrameDenoiseConfig()))
    assert all(
        rms(a.image, clean) < 0.8 * rms(b.image, clean)
        for a, b in zip(short, frames[:5], strict=True)
    )


def test_a_large_noisy_opening_holds_no_more_than_its_share_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(9)
    clean = scene()
    monkeypatch.setattr(frame_denoise, "OPENING_MB", 4 * clean.size / 2**20)  # 3 frames' worth
    denoiser = FrameDenoiser(FrameDenoiseConfig(radius=1))
    frames = [Frame(k, k / 25, noisy(clean, 8.0, rng)) for k in range(6)]
    ready = [[f.index for f in denoiser.push(frame)] for frame in frames]
    assert ready == [[], [], [0, 1], [2], [3], [4]]
    (last,) = denoiser.flush()
    assert rms(last.image, clean) < 0.8 * rms(frames[5].image, clean)


def test_a_live_stream_gets_each_frame_at_once_from_the_frames_before() -> None:
    rng = np.random.default_rng(4)
    clean = scene()
    denoiser = FrameDenoiser(FrameDenoiseConfig(radius=2), two_sided=False)
    outs = []
    for k in range(6):
        frame = Frame(k, k / 25, noisy(clean, 8.0, rng))
        (done,) = denoiser.push(frame)
        assert done.index == k
        outs.append((frame, done))
    assert np.array_equal(outs[0][1].image, outs[0][0].image)  # nothing before the first
    for frame, done in outs[2:]:
        assert rms(done.image, clean) < 0.75 * rms(frame.image, clean)
    assert denoiser.flush() == []


def test_a_change_of_frame_size_flushes_the_frames_waiting() -> None:
    rng = np.random.default_rng(5)
    small, large = scene(40, 50), scene(60, 80)
    frames = [Frame(k, k / 25, noisy(small if k < 4 else large, 8.0, rng)) for k in range(8)]
    out = list(denoise_frames(iter(frames), FrameDenoiseConfig(radius=2)))
    assert [f.index for f in out] == list(range(8))
    assert [f.image.shape for f in out] == [f.image.shape for f in frames]


def test_bad_settings_are_clear_errors() -> None:
    for radius in (-1, 13):
        with pytest.raises(CrctError, match="^temporal_radius "):
            FrameDenoiseConfig(radius=radius).check()
    for strength in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(CrctError, match="^temporal_strength "):
            FrameDenoiseConfig(strength=strength).check()
    for threshold in (-0.5, float("nan")):
        with pytest.raises(CrctError, match="^noise_threshold "):
            FrameDenoiseConfig(threshold=threshold).check()
    with pytest.raises(CrctError, match="^temporal_radius "):
        Tracker(temporal_radius=-2, networks=object())


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut clip's first 12 frames, darkened and with strong noise."""
    rng = np.random.default_rng(6)
    frames = [f.image for f in iter_frames(SAMPLES / "astronaut.mp4", 12)]
    path = tmp_path_factory.mktemp("clips") / "noisy.mp4"
    with VideoWriter(path, 25.0, frames[0].shape[1], frames[0].shape[0]) as writer:
        for image in frames:
            writer.write(noisy(image * 0.5, 12.0, rng))
    return path


class Recording:
    """Networks that record the pictures they are shown and find nothing (every frame lost)."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def detect(self, image: np.ndarray, relaxed: bool = False) -> list:
        if not relaxed:
            self.seen.append(image.copy())
        return []


def test_the_tracker_and_the_benchmark_read_the_filtered_frames(noisy_clip: Path) -> None:
    decoded = [f.image for f in iter_frames(noisy_clip)]
    filtered = [f.image for f in denoise_frames(iter_frames(noisy_clip), FrameDenoiseConfig())]
    assert noise_level(decoded[5][..., 1]) >= FrameDenoiseConfig.threshold
    assert not np.array_equal(decoded[5], filtered[5])

    def seen(tracker: Tracker) -> list[np.ndarray]:
        nets = tracker.networks
        frames = [f.image for f in tracker.track(noisy_clip)]
        assert len(nets.seen) == len(frames) == len(decoded)
        for shown, given in zip(nets.seen, frames, strict=True):
            assert np.array_equal(shown, given)  # what is written is what the networks saw
        return nets.seen

    on = Tracker(networks=Recording(), backfill=0)
    assert on.describe()["temporal_denoise"] is True and on.describe()["temporal_radius"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(seen(on), filtered, strict=True))
    off = Tracker(networks=Recording(), backfill=0, temporal_denoise=False)
    assert off.describe()["temporal_denoise"] is False
    assert all(np.array_equal(a, b) for a, b in zip(seen(off), decoded, strict=True))

    live = [f.image for f in denoise_frames(iter_frames(noisy_clip), FrameDenoiseConfig(), False)]
    stepped = Tracker(networks=Recording())
    for k, image in enumerate(decoded):
        stepped.step(image, time_s=k / 25)
    assert all(np.array_equal(a, b) for a, b in zip(stepped.networks.seen, live, strict=True))
    assert not np.array_equal(live[5], filtered[5])  # the frames before only

    method = TrackerMethod(Recording(), TrackerConfig(), frame_denoise=FrameDenoiseConfig())  # type: ignore[arg-type]
    benched = [f.image for f in frames_for(method, iter_frames(noisy_clip))]
    assert all(np.array_equal(a, b) for a, b in zip(benched, filtered, strict=True))
