"""The hardest real-video set of the robustness table: several degradations at once.

Every frame gets ``crct degrade``'s blur level 3, then noise level 2, then intensity level 2
(x0.5); a third of the frames, in bursts of about a second, also get a dark strip across the
frame (a quarter of its height, somewhere in its middle half, where people's faces are). The
strips and the noise come from ``--seed``, so a set is rebuilt exactly.

    python -m crct_cli.bench.hard_video talk.mp4 --out runs/talk-hard.mp4 --seed 0

The set is written as crct writes videos (H.264 crf 20, 4:2:0), as every set of the project's
tables was; that coding keeps about 0.6 of the added noise's standard deviation.
``--lossless`` writes every pixel (4:4:4, several times larger), the combination at full
strength.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from crct_cli import noise
from crct_cli.errors import CrctError
from crct_cli.io.video import VideoWriter, iter_frames, probe_video

#: (noise type, level) applied to every frame, in this order.
COMBINATION: tuple[tuple[str, int], ...] = (("blur", 3), ("noise", 2), ("scale", 2))
STRIP_SHARE = 1 / 3  # of the frames
STRIP_HEIGHT = 0.25  # of the frame height
STRIP_LEVEL = 0.1  # the strip's pixels keep this share of their intensity


def strip_frames(n_frames: int, fps: float, rng: np.random.Generator) -> dict[int, int]:
    """Frame -> top row share (in thousandths) of its strip: bursts of about a second."""
    burst = max(1, round(fps))
    starts = np.arange(0, n_frames, burst)
    chosen = rng.choice(len(starts), size=round(len(starts) * STRIP_SHARE), replace=False)
    out: dict[int, int] = {}
    for k in sorted(chosen):
        top = int(rng.integers(250, 750 - int(STRIP_HEIGHT * 1000)))
        for t in range(starts[k], min(n_frames, starts[k] + burst)):
            out[t] = top
    return out


def harden(image: np.ndarray, strip_top: int | None, rng: np.random.Generator) -> np.ndarray:
    """One frame of the combination (``strip_top`` in thousandths of the height, or None)."""
    out = image
    for kind, level in COMBINATION:
        out = noise.degrade(out, kind, level, rng)
    if strip_top is not None:
        h = out.shape[0]
        y0 = h * strip_top // 1000
        y1 = y0 + int(STRIP_HEIGHT * h)
        out = out.copy()
        out[y0:y1] = (out[y0:y1].astype(np.float32) * STRIP_LEVEL).astype(np.uint8)
    return out


def harden_video(video: Path, out: Path, seed: int = 0, lossless: bool = False) -> int:
    """Write the combination of ``video`` to ``out``; returns the frame count."""
    info = probe_video(video)
    n = info.n_frames or sum(1 for _ in iter_frames(video))
    rng = np.random.default_rng(seed)
    strips = strip_frames(n, info.fps, rng)
    count = 0
    with VideoWriter(out, info.fps, info.width, info.height, lossless=lossless) as writer:
        for frame in iter_frames(video):
            writer.write(harden(frame.image, strips.get(frame.index), rng), frame.index)
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="output video file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lossless", action="store_true", help="every pixel kept (the noise at full strength)"
    )
    args = parser.parse_args(argv)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        count = harden_video(args.video, args.out, args.seed, args.lossless)
        print(f"{args.out}: {count} frames")
    except CrctError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
