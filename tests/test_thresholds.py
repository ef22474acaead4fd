"""cnnlib.training.thresholds against coverage and accuracy worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.thresholds import (
    NOT_SURE,
    answer,
    confidences,
    predictions_with_threshold,
    threshold_curve,
    threshold_effect,
    threshold_for_accuracy,
)

# Eight predictions over three classes, by hand:
#   sample:      0    1    2    3    4    5    6    7
#   label:       0    0    0    1    1    1    2    2
#   top class:   0    0    1    1    1    0    2    2
#   confidence: .95  .60  .55  .90  .70  .80  .50  .40
#   right:       y    y    n    y    y    n    y    y
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
PROBS = np.array(
    [
        [0.95, 0.03, 0.02],
        [0.60, 0.30, 0.10],
        [0.25, 0.55, 0.20],
        [0.05, 0.90, 0.05],
        [0.20, 0.70, 0.10],
        [0.80, 0.15, 0.05],
        [0.30, 0.20, 0.50],
        [0.35, 0.25, 0.40],
    ]
)


def test_curve_by_hand():
    curve = threshold_curve(PROBS, LABELS, [0.0, 0.5, 0.6, 0.75, 0.9, 0.96])
    # answered: all 8; conf >= .5: 7 (not .40); >= .6: 5 (.95 .60 .90 .70 .80);
    # >= .75: 3 (.95 .90 .80); >= .9: 2; >= .96: 0
    np.testing.assert_array_equal(curve.answered, [8, 7, 5, 3, 2, 0])
    # right among them: 6 of 8; 5 of 7 (drop sample 7, right); 4 of 5 (.95 .60 .90 .70 right,
    # .80 wrong); 2 of 3; 2 of 2; none
    np.testing.assert_array_equal(curve.correct, [6, 5, 4, 2, 2, 0])
    np.testing.assert_allclose(curve.coverage, [1, 7 / 8, 5 / 8, 3 / 8, 2 / 8, 0])
    np.testing.assert_allclose(curve.accuracy[:5], [6 / 8, 5 / 7, 4 / 5, 2 / 3, 1])
    assert math.isnan(curve.accuracy[5])


def test_default_sweep_is_monotone_in_coverage():
    curve = threshold_curve(PROBS, LABELS)
    assert curve.thresholds[0] == 0 and curve.thresholds[-1] == 1 and len(curve.thresholds) == 101
    assert np.all(np.diff(curve.answered) <= 0)
    assert curve.answered[0] == 8 and curve.total == 8


def test_threshold_for_accuracy_is_the_lowest_that_reaches_it():
    curve = threshold_curve(PROBS, LABELS, [0.0, 0.5, 0.6, 0.75, 0.9, 0.96])
    assert threshold_for_accuracy(curve, 0.8) == 0.6
    assert threshold_for_accuracy(curve, 1.0) == 0.9
    assert threshold_for_accuracy(curve, 0.75) == 0.0  # all answered: 6/8
    assert threshold_for_accuracy(curve, 0.76) == 0.6  # not 0.5: 5/7 = 0.714
    assert threshold_for_accuracy(threshold_curve(PROBS, LABELS, [0.0, 0.96]), 0.9) is None


def test_effect_per_true_class_by_hand():
    effect = threshold_effect(PROBS, LABELS, 0.6)
    # class 0: samples 0 (.95 right), 1 (.60 right), 2 (.55: not sure) → 2 answered, 2 right
    # class 1: 3 (.90 right), 4 (.70 right), 5 (.80 wrong) → 3 answered, 2 right
    # class 2: 6 (.50), 7 (.40): both not sure
    np.testing.assert_array_equal(effect.total, [3, 3, 2])
    np.testing.assert_array_equal(effect.answered, [2, 3, 0])
    np.testing.assert_array_equal(effect.correct, [2, 2, 0])
    np.testing.assert_array_equal(effect.not_sure, [1, 0, 2])
    np.testing.assert_array_equal(effect.wrong, [0, 1, 0])
    np.testing.assert_allclose(effect.coverage, [2 / 3, 1, 0])
    np.testing.assert_allclose(effect.accuracy[:2], [1, 2 / 3])
    assert math.isnan(effect.accuracy[2])
    assert effect.overall_coverage == pytest.approx(5 / 8)
    assert effect.overall_accuracy == pytest.approx(4 / 5)


def test_not_sure_below_the_threshold_and_at_it_an_answer():
    np.testing.assert_array_equal(
        predictions_with_threshold(PROBS, 0.6), [0, 0, NOT_SURE, 1, 1, 0, NOT_SURE, NOT_SURE]
    )
    np.testing.assert_allclose(confidences(PROBS), [0.95, 0.6, 0.55, 0.9, 0.7, 0.8, 0.5, 0.4])
    names = ["cat", "dog", "fox"]
    assert answer(PROBS[1], names, 0.6) == ("cat", pytest.approx(0.6))
    assert answer(PROBS[2], names, 0.6) == ("not sure", pytest.approx(0.55))
    assert answer(PROBS[2], names, 0.0)[0] == "dog"


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidArgumentError):
        threshold_curve(PROBS, LABELS[:3])
    with pytest.raises(InvalidArgumentError):
        threshold_curve(PROBS, LABELS, [1.5])
    with pytest.raises(InvalidArgumentError):
        threshold_effect(PROBS, LABELS + 1, 0.5)
    with pytest.raises(InvalidArgumentError):
        answer(PROBS[0], ["a", "b"], 0.5)
    with pytest.raises(InvalidArgumentError):
        predictions_with_threshold(PROBS, -0.1)
