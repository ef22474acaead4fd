"""Held-out test metrics (cnnlib.training.evaluation): precision and recall, the most-confused
pairs and the validation–test gap, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.evaluation import (
    ConfusedPair,
    gap_sentence,
    held_out_test,
    most_confused_pairs,
    precision_recall,
)

# Rows: true class; columns: predicted.
CONFUSION = np.array(
    [
        [5, 3, 0, 0],
        [1, 4, 0, 0],
        [2, 0, 6, 0],
        [0, 0, 0, 0],  # class 3: no image, never predicted
    ]
)


def test_precision_and_recall_by_hand():
    precision, recall = precision_recall(CONFUSION)
    # predicted 0: 5 + 1 + 2 = 8, 5 right; predicted 1: 3 + 4 = 7, 4 right; predicted 2: 6
    np.testing.assert_allclose(precision[:3], [5 / 8, 4 / 7, 1.0])
    np.testing.assert_allclose(recall[:3], [5 / 8, 4 / 5, 6 / 8])
    assert math.isnan(precision[3]) and math.isnan(recall[3])


def test_most_confused_pairs_by_hand():
    assert most_confused_pairs(CONFUSION) == [
        ConfusedPair(0, 1, 3),
        ConfusedPair(2, 0, 2),
        ConfusedPair(1, 0, 1),
    ]
    assert most_confused_pairs(CONFUSION, top=1) == [ConfusedPair(0, 1, 3)]
    assert most_confused_pairs(CONFUSION, min_count=2) == [
        ConfusedPair(0, 1, 3),
        ConfusedPair(2, 0, 2),
    ]
    # ties: by true class, then predicted class
    tie = np.array([[0, 2, 2], [2, 0, 0], [0, 0, 1]])
    assert [(p.true, p.predicted) for p in most_confused_pairs(tie)] == [(0, 1), (0, 2), (1, 0)]
    assert most_confused_pairs(np.eye(3, dtype=int)) == []


def test_gap_noise_by_hand():
    # validation 0.9 on 100, test 0.8 on 50 (Agresti-Coull: (k + 1) / (n + 2))
    pv, pt = 91 / 102, 41 / 52
    noise = 2 * math.sqrt(pv * (1 - pv) / 102 + pt * (1 - pt) / 52)
    got, sentence = gap_sentence(0.9, 100, 0.8, 50)
    assert got == pytest.approx(noise)  # ≈ 0.129: a 10-point gap is within chance here
    assert "within" in sentence and "10.0 points" in sentence and "80.0 %" in sentence


def test_gap_sentences_say_which_way():
    _, lower = gap_sentence(0.95, 1000, 0.80, 1000)
    assert "15.0 points lower" in lower and "flatter" in lower
    _, higher = gap_sentence(0.80, 1000, 0.95, 1000)
    assert "15.0 points higher" in higher and "easier" in higher


def test_held_out_test_collects_everything():
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.1, 0.1, 0.8]]
    )
    result = held_out_test(probs, labels, validation_accuracy=0.9, validation_size=40)
    assert result.accuracy == pytest.approx(0.8)
    np.testing.assert_allclose(result.precision, [1.0, 2 / 3, 1.0])
    np.testing.assert_allclose(result.recall, [0.5, 1.0, 1.0])
    assert result.gap == pytest.approx(0.1)
    assert result.explanation == gap_sentence(0.9, 40, 0.8, 5)[1]
    with pytest.raises(InvalidArgumentError, match="empty"):
        held_out_test(probs[:0], labels[:0], validation_accuracy=0.9, validation_size=40)
    with pytest.raises(InvalidArgumentError):
        held_out_test(probs, labels, validation_accuracy=90, validation_size=40)
