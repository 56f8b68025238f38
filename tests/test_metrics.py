"""Metrics on hand-computable cases: NME per normalisation, CED, AUC, failure rate, IoU, OPE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crct_cli import metrics


def face(x0: float = 10.0, y0: float = 20.0, w: float = 60.0, h: float = 80.0) -> np.ndarray:
    """68 points whose tight box is exactly (x0, y0, w, h), outer eye corners w / 2 apart."""
    rng = np.random.default_rng(0)
    pts = np.column_stack([x0 + w * rng.random(68), y0 + h * rng.random(68)])
    pts[0] = (x0, y0)
    pts[16] = (x0 + w, y0 + h)
    pts[36] = (x0 + w / 4, y0 + h / 3)
    pts[45] = (x0 + 3 * w / 4, y0 + h / 3)
    return pts


@pytest.mark.parametrize(
    ("norm", "length"),
    [("diagonal", 100.0), ("area", math.sqrt(60.0 * 80.0)), ("interocular", 30.0)],
)
def test_nme_of_a_constant_offset_is_offset_over_the_normaliser(norm: str, length: float) -> None:
    gt = face()
    pred = gt + np.array([3.0, 4.0])  # every point 5 px off
    assert metrics.normalizer(gt, norm)[0] == pytest.approx(length)  # type: ignore[arg-type]
    assert metrics.nme(pred, gt, norm)[0] == pytest.approx(5.0 / length)  # type: ignore[arg-type]


def test_interocular_refuses_markups_whose_indices_36_and_45_are_other_points() -> None:
    """49 and 51 points (68 without the jaw, and without the mouth's corners) put the outer eye
    corners at 19 and 28: at 36 and 45 they hold mouth and eye points, a normaliser several
    times too short. Other markups must be turned into 68 points first."""
    for count in (39, 49, 51, 66):
        with pytest.raises(ValueError, match="68-point"):
            metrics.normalizer(face()[:count], "interocular")
    assert metrics.normalizer(face()[17:], "diagonal")[0] > 0  # the box needs no named points


def test_nme_is_per_image_and_missing_predictions_are_inf() -> None:
    gt = np.stack([face(), face(w=30.0, h=40.0)])  # diagonals 100 and 50
    pred = gt.copy()
    pred[0, :34] += (6.0, 8.0)  # half the points 10 px off: mean error 5 px
    pred[1] += (0.0, 1.0)
    errors = metrics.nme(pred, gt)
    np.testing.assert_allclose(errors, [0.05, 1.0 / 50.0])
    pred[1, 7] = np.nan  # one missing point makes the whole prediction missing
    assert metrics.nme(pred, gt)[1] == math.inf


def test_nme_rejects_degenerate_ground_truth_and_shape_mismatch() -> None:
    flat = np.zeros((68, 2))
    with pytest.raises(ValueError, match="normalising length"):
        metrics.nme(flat, flat)
    with pytest.raises(ValueError, match="shape"):
        metrics.nme(face()[:60], face())


def test_auc_is_exact_step_integral() -> None:
    errors = [0.02, 0.04, 0.10, math.inf]
    # CED is 0 on [0, .02), 1/4 on [.02, .04), 1/2 on [.04, .08]: area .02/4 + .04/2 = .025
    assert metrics.auc(errors, 0.08) == pytest.approx(0.025 / 0.08)
    # cross-check against a fine numerical integration of the CED
    x = np.linspace(0.0, 0.08, 200_001)
    _, y = metrics.ced(errors, x)
    assert metrics.auc(errors, 0.08) == pytest.approx(np.trapezoid(y, x) / 0.08, abs=1e-4)
    assert metrics.auc([0.0, 0.0]) == 1.0
    assert metrics.auc([]) == 0.0
    assert metrics.auc([np.nan]) == 0.0  # NaN counts as missing


def test_failure_rate_is_strictly_above_threshold() -> None:
    assert metrics.failure_rate([0.02, 0.08, 0.0800001, math.inf], 0.08) == 0.5
    assert metrics.failure_rate([]) == 0.0


def test_ced_steps_and_thresholds() -> None:
    x, y = metrics.ced([0.3, 0.1, 0.1, math.inf])
    np.testing.assert_allclose(x, [0.1, 0.1, 0.3])
    np.testing.assert_allclose(y, [0.5, 0.5, 0.75])
    _, y = metrics.ced([0.3, 0.1, 0.1, math.inf], [0.0, 0.1, 0.2, 1.0])
    np.testing.assert_allclose(y, [0.0, 0.5, 0.5, 0.75])


def test_summarize_means_over_present_predictions_only() -> None:
    s = metrics.summarize([0.02, 0.04, 0.12, math.inf])
    assert (s.count, s.missing) == (4, 1)
    assert s.mean_nme == pytest.approx(0.06)
    assert s.median_nme == pytest.approx(0.04)
    assert s.failure_rate == 0.5
    assert s.auc == pytest.approx((0.06 + 0.04) / 4 / 0.08)
    assert math.isnan(metrics.summarize([math.inf]).mean_nme)


def test_iou_of_known_boxes() -> None:
    a = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]]
    b = [[5, 0, 10, 10], [0, 0, 10, 10], [10, 0, 5, 5], [np.nan] * 4, [1, 1, 2, 2]]
    np.testing.assert_allclose(metrics.iou(a, b), [50 / 150, 1.0, 0.0, 0.0, 4 / 16])
    assert metrics.iou([0, 0, 0, 0], [0, 0, 0, 0])[0] == 0.0


def test_success_curve_and_auc_follow_otb() -> None:
    ious = [1.0, 0.5, 0.0]
    t, s = metrics.success_curve(ious)
    assert len(t) == 21 and t[0] == 0.0 and t[-1] == 1.0
    np.testing.assert_allclose(s[:10], 2 / 3)  # t = 0 .. 0.45: IoU 1 and 0.5 pass
    np.testing.assert_allclose(s[10:20], 1 / 3)  # t = 0.5 .. 0.95: only IoU 1 (strict >)
    assert s[20] == 0.0
    assert metrics.success_auc(ious) == pytest.approx(10 / 21)
    assert metrics.success_auc([np.nan, 1.0]) == pytest.approx(20 / 21 / 2)
