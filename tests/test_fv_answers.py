"""``crct train fv --fll-answers``: FV trained on FLL's own answers, labelled by their error.

The localiser is replaced by fakes whose answers have a known error, so the labelling rule
(right below ``ANSWER_RIGHT``, wrong above ``ANSWER_WRONG``, left out between) and the batch
composition are checked exactly; the multi-image aligner pass is checked against the
one-image one with a real (untrained) FLL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from crct_cli.aligner import AlignConfig, Aligner
from crct_cli.landmarks import box_from_points
from crct_cli.models.backbone import BackboneConfig
from crct_cli.models.fll import FLLConfig, LandmarkLocalizer
from crct_cli.models.fv import FVConfig
from crct_cli.train.data import NO_AUGMENT, Face, augmented_crop
from crct_cli.train.fv import (
    ANSWER_RIGHT,
    ANSWER_SHIFT,
    ANSWER_WRONG,
    FRAME_CONTEXT,
    FRAME_SIZE,
    TrainFVConfig,
    answer_candidates,
    make_fv_batch,
    shifted_box,
)

SMALL = dataclasses.replace(
    BackboneConfig(stem=(8, 8, 16), width_a=16, width_b=32, width_c=64),
    blocks_a=1,
    blocks_b=1,
    blocks_c=1,
)


def a_face(seed: int = 0) -> Face:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (240, 260, 3), dtype=np.uint8)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([130 + 40 * np.cos(t) * (1 + 0.1 * np.sin(3 * t)), 120 + 50 * np.sin(t)], 1)
    return Face("synthetic", image, points)


def config(share: float) -> TrainFVConfig:
    return TrainFVConfig(
        train=[],
        val=[],
        augment=NO_AUGMENT,
        fll_answers=share,
        model=FVConfig(crop_size=32, context=2.0, patch=4, width=8),
    )


def truth_in_frame(face: Face) -> np.ndarray:
    """Where the face's points land in its training frame (no augmentation: no randomness)."""
    rng = np.random.default_rng(0)
    return augmented_crop(face, rng, FRAME_SIZE, FRAME_CONTEXT, NO_AUGMENT)[1]


def fake_localiser(truth: np.ndarray, error: float):
    """Answers ``truth`` moved by ``error`` of its box diagonal, whatever the box."""
    diagonal = float(np.hypot(*box_from_points(truth)[2:]))
    calls: list[tuple[int, np.ndarray]] = []

    def answers(frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        assert len(frames) == len(boxes)
        assert all(f.shape == (FRAME_SIZE, FRAME_SIZE, 3) for f in frames)
        calls.append((len(frames), boxes.copy()))
        return np.stack([truth + [error * diagonal, 0.0]] * len(boxes))

    return answers, calls


@pytest.mark.parametrize(
    ("error", "label"),
    [(0.0, 1.0), (0.6 * ANSWER_RIGHT, 1.0), (1.5 * ANSWER_WRONG, 0.0), (0.5, 0.0)],
)
def test_answers_are_labelled_by_their_error(error: float, label: float) -> None:
    face = a_face()
    answers, calls = fake_localiser(truth_in_frame(face), error)
    out = answer_candidates([face], config(1.0), np.random.default_rng(1), 12, answers)
    assert len(calls) == 1 and calls[0][0] == 12  # one batched pass for all of them
    assert len(out) == 12
    assert {lab for _, _, lab in out} == {label}


def test_answers_between_right_and_wrong_are_left_out() -> None:
    face = a_face()
    between = 0.5 * (ANSWER_RIGHT + ANSWER_WRONG)
    answers, _ = fake_localiser(truth_in_frame(face), between)
    assert answer_candidates([face], config(1.0), np.random.default_rng(1), 12, answers) == []
    # in a batch they are replaced by the usual candidates, unless told not to fill
    cfg = config(0.5)
    x, p, y = make_fv_batch([face], cfg, np.random.default_rng(2), 16, answers)
    assert x.shape[0] == p.shape[0] == y.shape[0] == 16
    x, p, y = make_fv_batch([face], config(1.0), np.random.default_rng(2), 16, answers, fill=False)
    assert x.shape == (0, 3, 32, 32) and p.shape == (0, 68, 2) and y.shape == (0,)


def test_a_batch_holds_its_share_of_answers() -> None:
    face = a_face()
    answers, calls = fake_localiser(truth_in_frame(face), 0.0)  # every answer right: label 1
    x, p, y = make_fv_batch([face], config(0.25), np.random.default_rng(3), 16, answers)
    assert calls[0][0] == 4 and x.shape == (16, 3, 32, 32) and p.shape == (16, 68, 2)
    assert torch.all(y[:4] == 1)
    # the rest are the papers' candidates, about half of them negatives
    assert 0 < float(y[4:].sum()) < 12
    _, _, y0 = make_fv_batch([face], config(0.25), np.random.default_rng(3), 16, None)
    assert y0.shape == (16,)  # without a localiser the share is ignored


def test_shifted_boxes_stay_within_the_shift_and_scale_they_promise() -> None:
    rng = np.random.default_rng(4)
    box = np.array([50.0, 60.0, 80.0, 100.0])
    side = np.sqrt(80 * 100)
    shifts, scales = [], []
    for _ in range(500):
        b = shifted_box(box, rng)
        shifts.append(np.linalg.norm((b[:2] + b[2:] / 2) - (box[:2] + box[2:] / 2)) / side)
        scales.append(b[2] / box[2])
        assert b[2] / box[2] == pytest.approx(b[3] / box[3])  # the aspect ratio is kept
    assert max(shifts) <= ANSWER_SHIFT + 1e-9 and min(shifts) < 0.05
    assert np.median(shifts) == pytest.approx(ANSWER_SHIFT / 2, abs=0.08)
    assert 0.6 < min(scales) and max(scales) < 1.7 and abs(np.log(np.median(scales))) < 0.05


def test_the_recorded_command_reproduces_the_share() -> None:
    cfg = dataclasses.replace(config(0.5), augment=TrainFVConfig(train=[], val=[]).augment)
    assert "--fll-answers 0.5" in cfg.command()
    plain = TrainFVConfig(train=[], val=[])
    assert "--fll-answers" not in plain.command()  # earlier weight files read as they did


def test_align_many_reads_each_box_in_its_own_image() -> None:
    torch.manual_seed(0)
    cfg = FLLConfig(input_size=64, context=1.35, hidden=16, backbone=SMALL)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    boxes = np.array([[20.0, 30.0, 50.0, 60.0], [60.0, 10.0, 40.0, 40.0], [30, 40, 70, 50]])
    for config_ in (AlignConfig(refine=0), AlignConfig(refine=1, blend=True)):
        aligner = Aligner(LandmarkLocalizer(cfg).eval(), "cpu", config_)
        many = aligner.align_many(images, boxes)
        one_by_one = np.stack(
            [aligner(im, b[None])[0] for im, b in zip(images, boxes, strict=True)]
        )
        assert np.allclose(many, one_by_one, atol=1e-4)
        # and the images matter: the same boxes in one image give other points
        same = aligner(images[0], boxes)
        assert not np.allclose(many[1:], same[1:], atol=1e-3)
    assert aligner.align_many([], np.zeros((0, 4))).shape == (0, 68, 2)
