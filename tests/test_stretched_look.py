"""The sensitive look's last try: MTCNN on the frame with its colours stretched.

A washed-out, colour-cast frame (the sample photograph at 15% of its contrast under a teal
cast) hides the face from MTCNN's usual and sensitive looks; stretched, it is found, and
only when ``stretched_look`` asks for it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from crct_cli.runtime import Runtime
from crct_cli.tracking.detector import (
    RELAXED_MIN_SCORE,
    RELAXED_THRESHOLDS,
    STRETCH_MIN_SPAN,
    stretch_contrast,
)
from crct_cli.tracking.networks import CRCTNetworks

ROOT = Path(__file__).resolve().parents[1]
#: The centre of the astronaut's face: of the box of FLL's 68 points on the sample, rounded.
FACE_CENTRE = np.array([225.0, 133.0])


@pytest.fixture(scope="module")
def washed_out() -> np.ndarray:
    photo = cv2.cvtColor(cv2.imread(str(ROOT / "samples" / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    cast = np.array([70.0, 150.0, 140.0])
    return np.clip(photo * 0.15 + cast * 0.85, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def detector():
    return Runtime("auto", "cpu", ROOT / "weights", 1).detector()


def test_stretch_spreads_each_channel_and_keeps_order(washed_out: np.ndarray) -> None:
    out = stretch_contrast(washed_out)
    assert out.shape == washed_out.shape and out.dtype == np.uint8
    for c in range(3):
        lo, hi = np.percentile(out[..., c], [1, 99])
        assert lo <= 2 and hi >= 253, c  # each channel now spans the range
        before = washed_out[..., c].ravel().astype(int)
        after = out[..., c].ravel().astype(int)
        order = np.argsort(before, kind="stable")
        assert (np.diff(after[order]) >= 0).all()  # a monotonic map of the levels
    flat = np.full((32, 32, 3), 120, dtype=np.uint8)
    assert (stretch_contrast(flat) == 0).all()  # nothing to stretch: no blow-up of noise
    noisy = np.clip(flat + np.random.default_rng(0).normal(0, 2, flat.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    gain = np.ptp(stretch_contrast(noisy).astype(int)) / np.ptp(noisy.astype(int))
    assert gain <= 255 / STRETCH_MIN_SPAN + 0.5  # a near-flat frame's noise: gain capped


def test_a_washed_out_face_is_found_only_stretched(washed_out: np.ndarray, detector) -> None:
    assert detector(washed_out) == []
    assert detector(washed_out, RELAXED_MIN_SCORE, RELAXED_THRESHOLDS) == []
    (found,) = detector(stretch_contrast(washed_out), RELAXED_MIN_SCORE, RELAXED_THRESHOLDS)
    centre = found.box[:2] + found.box[2:] / 2
    assert np.linalg.norm(centre - FACE_CENTRE) < 0.25 * np.hypot(*found.box[2:])


def networks_with(detector, stretched_look: bool) -> CRCTNetworks:
    """The networks' detection alone (no other network loaded)."""
    nets = object.__new__(CRCTNetworks)
    nets.detector, nets.stretched_look, nets.timings = detector, stretched_look, defaultdict(list)
    return nets


def test_the_sensitive_look_tries_the_stretched_frame_last(
    washed_out: np.ndarray, detector
) -> None:
    calls: list[bool] = []

    def recording(image: np.ndarray, *settings) -> list:
        calls.append(bool(settings))
        return detector(image, *settings)

    on = networks_with(recording, stretched_look=True)
    assert on.detect(washed_out) == []  # the usual look never stretches
    assert calls == [False]
    calls.clear()
    assert len(on.detect(washed_out, relaxed=True)) == 1
    assert calls == [True, True]  # the frame, then the stretched frame
    calls.clear()
    off = networks_with(recording, stretched_look=False)
    assert off.detect(washed_out, relaxed=True) == []
    assert calls == [True]


def test_the_option_reaches_the_networks() -> None:
    from crct_cli.api import Tracker

    assert Tracker(stretched_look=True, device="cpu").networks.stretched_look is True
    assert Tracker(stretched_look=False, device="cpu").networks.stretched_look is False
