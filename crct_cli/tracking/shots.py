"""Shot cuts: where an edited video jumps from one shot to another.

Why: every track of crct follows a face from one frame to the next. Across a cut the frame
shows another scene, and a track held where its face was would take whoever stands there now
(an interview's reverse shot puts the other speaker where the first one was): ids would follow
places, not people, BT would read two unrelated pictures as one face's motion, and the filters
that read several frames (``--smooth``, ``--lookahead``) would blend two people's points. At a
cut every track ends and faces are found afresh, as at the start of a video.

A frame is a cut when it differs from the frame before both in layout and in colour:

- layout: both frames shrunk to :attr:`ShotCutConfig.width` pixels wide in grey, cut into a
  :attr:`~ShotCutConfig.grid` x grid of blocks; each block of this frame is correlated with the
  same block of the frame before, shifted by up to :attr:`~ShotCutConfig.shift` pixels each way,
  and the best correlation kept. The median over the blocks is below
  :attr:`~ShotCutConfig.correlation`. A correlation ignores gain and offset (a flash, light
  drifting, a dimmed camera), the shift follows a pan or a moving face, the median a strip
  or a hand over part of the picture, and the small size noise, blur and low resolution;
- colour: the histograms of hue and saturation, or those of grey level (the larger of the two
  distances: grey video has no hue), lie further apart than :attr:`~ShotCutConfig.histogram`
  (Bhattacharyya distance, 0 to 1). A whip pan or a jump of the camera within one scene changes
  the layout, not the colours; a change of light alone passes this test, not the layout's.

Only blocks textured in both frames have a say (a wall, a black frame, a block dimmed flat
tell nothing of the layout). Where fewer than :attr:`~ShotCutConfig.min_blocks` have (two
speakers each before a plain wall, a reverse shot), hue and saturation decide alone, at the
higher bar :attr:`~ShotCutConfig.flat_histogram` (the light dimmed on a plain wall moves the
grey levels, not the hues; plain grey video is then one shot). While a frame is flat all over
(a fade to black) the frame before it stays the reference, so a new shot that fades in is still
compared with the old one. Gradual transitions (dissolves) are not looked for: the tracks
follow or lose their faces through them as through any change of picture. Measured in
docs/benchmarks.md (session 53): no cut in any frame of the real validation videos, clean or
degraded, nor of synthetic categories 1 and 2 and the multi-face set; category 3's camera,
which sometimes jumps half a frame or zooms threefold between two frames, passes for 18 cuts in
5,400 frames; every cut spliced between two of those videos is found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from crct_cli.errors import CrctError, option_error

#: ``crct track --shot-cuts``'s default
SHOT_CUTS = True

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class ShotCutConfig:
    """When a frame starts a new shot (see the module docstring for why each part)."""

    correlation: float = 0.9  #: a cut's blocks correlate (median) below this with the last frame
    histogram: float = 0.45  #: and its colours at least this far from that frame's (0 to 1)
    width: int = 64  #: pixels across the frames are compared at
    grid: int = 4  #: blocks along each side
    shift: int = 4  #: pixels (at ``width``) a block may have moved
    flat: float = 2.0  #: grey levels of spread below which a block is flat
    min_blocks: int = 3  #: blocks textured in both frames that the layout needs to have a say
    flat_histogram: float = 0.6  #: the hue distance a cut needs where the layout has no say

    def check(self, error: type[Exception] = CrctError) -> None:
        if not -1.0 <= self.correlation <= 1.0:
            raise option_error(
                error, "cut_correlation", f"must be in [-1, 1], got {self.correlation}"
            )
        if not 0.0 <= self.histogram <= 1.0:
            raise option_error(error, "cut_histogram", f"must be in [0, 1], got {self.histogram}")


def _histograms(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue-saturation and grey-level histograms of a shrunk RGB frame, each summing to 1."""
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    grey = cv2.calcHist([cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)], [0], None, [32], [0, 256])
    return hs / max(float(hs.sum()), 1.0), grey / max(float(grey.sum()), 1.0)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class _Picture:
    """One frame as the comparison reads it."""

    grey: np.ndarray  #: (h, w) float32, shrunk
    hs: np.ndarray
    levels: np.ndarray
    textured: bool  #: some block is not flat


class ShotCutDetector:
    """Says, frame after frame, whether a frame starts a new shot (``__call__``)."""

    def __init__(self, config: ShotCutConfig | None = None) -> None:
        self.config = config or ShotCutConfig()
        self.config.check()
        self._last: _Picture | None = None
        #: cuts found since :meth:`reset`
        self.cuts = 0

    def reset(self) -> None:
        """A new video: its first frame is no cut."""
        self._last, self.cuts = None, 0

    def __call__(self, image: np.ndarray) -> bool:
        """Whether RGB ``image`` starts a new shot (never the first frame after :meth:`reset`)."""
        picture = self._picture(image)
        last = self._last
        if not picture.textured and last is not None:
            return False  # a flat frame (a fade): compared with nothing, the reference stays
        self._last = picture
        if last is None or picture.grey.shape != last.grey.shape:
            return False
        cut = self._cut(last, picture)
        self.cuts += cut
        return cut

    def _picture(self, image: np.ndarray) -> _Picture:
        cfg = self.config
        if image.ndim == 2 or image.shape[2] == 1:
            image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
        height, width = image.shape[:2]
        rows = round(cfg.width * height / max(width, 1))  # a tall frame: at most 4 widths
        size = (cfg.width, min(4 * cfg.width, max(cfg.grid * 2, rows)))
        small = cv2.resize(np.ascontiguousarray(image[..., :3]), size, interpolation=cv2.INTER_AREA)
        grey = small.astype(np.float32) @ _LUMA
        hs, levels = _histograms(small)
        blocks = self._blocks(grey)
        return _Picture(grey, hs, levels, bool((blocks.std(axis=1) >= cfg.flat).any()))

    def _blocks(self, grey: np.ndarray) -> np.ndarray:
        """(grid * grid, block pixels): the frame's blocks, row by row."""
        g = self.config.grid
        bh, bw = grey.shape[0] // g, grey.shape[1] // g
        blocks = grey[: bh * g, : bw * g].reshape(g, bh, g, bw).transpose(0, 2, 1, 3)
        return blocks.reshape(g * g, -1)

    def correlation(self, before: np.ndarray, after: np.ndarray) -> float:
        """The median over ``after``'s blocks of the best correlation with ``before`` shifted
        by up to ``shift`` pixels. A block votes where it is textured in both frames at some
        shift: a flat block says nothing of the layout, and a dimmed one may turn flat (NaN
        when fewer than ``min_blocks`` vote)."""
        cfg = self.config
        s = cfg.shift
        now = self._blocks(after)
        now = now - now.mean(axis=1, keepdims=True)
        now_spread = np.sqrt((now**2).mean(axis=1))
        padded = np.pad(before, s, mode="edge")
        height, width = before.shape
        best = np.full(len(now), -np.inf)
        for dy in range(2 * s + 1):
            for dx in range(2 * s + 1):
                then = self._blocks(padded[dy : dy + height, dx : dx + width])
                then = then - then.mean(axis=1, keepdims=True)
                then_spread = np.sqrt((then**2).mean(axis=1))
                both = (then_spread >= cfg.flat) & (now_spread >= cfg.flat)
                r = (now * then).mean(axis=1) / np.maximum(now_spread * then_spread, 1e-6)
                best = np.where(both, np.maximum(best, r), best)
        voting = np.isfinite(best)
        if voting.sum() < max(1, cfg.min_blocks):
            return float("nan")
        return float(np.median(best[voting]))

    def _cut(self, before: _Picture, after: _Picture) -> bool:
        cfg = self.config
        colour = max(_distance(before.hs, after.hs), _distance(before.levels, after.levels))
        if colour < cfg.histogram:
            return False  # same colours: one scene (the layout is not looked at)
        layout = self.correlation(before.grey, after.grey)
        if math.isnan(layout):  # too few blocks to tell: hue and saturation decide (a change
            return _distance(before.hs, after.hs) >= cfg.flat_histogram  # of light moves grey)
        return layout < cfg.correlation
