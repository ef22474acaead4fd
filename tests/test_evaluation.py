"""cnnlib.training.evaluation against hand-computed cases and Keras' own loss and accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.evaluation import (
    accuracy,
    cell_indices,
    confusion_matrix,
    cross_entropy,
    evaluate_model,
    evaluation_from_probabilities,
    most_confident_mistakes,
    per_class_accuracy,
    smooth_curve,
)

# Six samples, three classes, worked out by hand:
#   sample: 0    1    2    3    4    5
#   label:  0    0    1    1    2    2
#   pred:   0    1    1    1    0    2      (argmax of each row below)
LABELS = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],  # mistake, confidence 0.6
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.9, 0.05, 0.05],  # mistake, confidence 0.9
        [0.25, 0.25, 0.5],
    ]
)


def test_confusion_matrix_by_hand():
    predictions = PROBS.argmax(axis=1)
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(LABELS, predictions, 3), expected)
    assert confusion_matrix(LABELS, predictions, 3).sum() == len(LABELS)


def test_accuracy_and_per_class_by_hand():
    predictions = PROBS.argmax(axis=1)
    assert accuracy(LABELS, predictions) == pytest.approx(4 / 6)
    confusion = confusion_matrix(LABELS, predictions, 4)  # class 3 has no sample
    per_class = per_class_accuracy(confusion)
    np.testing.assert_allclose(per_class[:3], [0.5, 1.0, 0.5])
    assert math.isnan(per_class[3])


def test_cross_entropy_by_hand():
    expected = -np.mean(np.log([0.7, 0.3, 0.8, 0.5, 0.05, 0.5]))
    assert cross_entropy(PROBS, LABELS) == pytest.approx(expected)
    # A probability of 0 for the true class is clipped to 1e-7 as Keras does.
    assert cross_entropy(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(1e-7))


def test_cells_and_mistakes_by_hand():
    predictions = PROBS.argmax(axis=1)
    np.testing.assert_array_equal(cell_indices(LABELS, predictions, 0, 1), [1])
    np.testing.assert_array_equal(cell_indices(LABELS, predictions, 1, 1), [2, 3])
    assert cell_indices(LABELS, predictions, 1, 2).size == 0
    np.testing.assert_array_equal(most_confident_mistakes(PROBS, LABELS, 5), [4, 1])
    np.testing.assert_array_equal(most_confident_mistakes(PROBS, LABELS, 1), [4])


def test_mistakes_with_equal_confidence_are_ordered_by_index():
    probs = np.array([[0.2, 0.8], [0.2, 0.8], [0.8, 0.2]])
    np.testing.assert_array_equal(most_confident_mistakes(probs, np.array([0, 0, 1])), [0, 1, 2])


def test_evaluation_object_collects_everything():
    ev = evaluation_from_probabilities(PROBS, LABELS)
    assert ev.accuracy == pytest.approx(4 / 6) and ev.num_classes == 3
    assert ev.loss == pytest.approx(cross_entropy(PROBS, LABELS))
    np.testing.assert_array_equal(ev.cell(2, 0), [4])
    np.testing.assert_array_equal(ev.confident_mistakes(), [4, 1])
    np.testing.assert_allclose(ev.per_class, [0.5, 1.0, 0.5])


def test_bad_inputs_are_refused_with_messages():
    with pytest.raises(InvalidArgumentError, match="must match"):
        accuracy(np.array([0, 1]), np.array([0]))
    with pytest.raises(InvalidArgumentError, match="outside the classes"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(InvalidArgumentError, match="probabilities of shape"):
        cross_entropy(np.ones((3, 2)) / 2, np.array([0, 1]))
    with pytest.raises(InvalidArgumentError, match="integers"):
        confusion_matrix(np.array([0.5]), np.array([0]), 2)


@pytest.mark.slow
def test_evaluate_model_agrees_with_keras(mnist_test_set):
    """Loss and accuracy equal Keras' own ``evaluate`` on real digits (a small trained model)."""
    keras = pytest.importorskip("keras")

    x, y = (a[:1500] for a in mnist_test_set)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(  # owns its rescaling, as the app's models: raw pixels in
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(10, "softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1000, :, :, None], y[:1000], epochs=2, verbose=0)
    loss, acc = model.evaluate(x[1000:, :, :, None], y[1000:], verbose=0)
    ev = evaluate_model(model, x[1000:], y[1000:])  # raw uint8 (N, 28, 28): no scaling here
    assert ev.loss == pytest.approx(loss, rel=1e-4)
    assert ev.accuracy == pytest.approx(acc, abs=1e-6)
    assert ev.accuracy > 0.5  # a real, trained model, not chance
    assert ev.confusion.sum() == 500 and ev.probabilities.shape == (500, 10)


def test_smooth_curve_is_a_bias_corrected_moving_average():
    np.testing.assert_allclose(smooth_curve([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0])
    # Constant input stays constant (bias correction: no pull towards 0 at the start).
    np.testing.assert_allclose(smooth_curve([5.0] * 4, 0.9), [5.0] * 4)
    # By hand, weight 0.5: a1 = 0.5, a2 = 0.5·0.5 + 0.5·3 = 1.75 → 0.5/0.5 = 1, 1.75/0.75.
    np.testing.assert_allclose(smooth_curve([1.0, 3.0], 0.5), [1.0, 1.75 / 0.75])
    smoothed = smooth_curve([1.0, np.nan, 1.0], 0.5)
    np.testing.assert_allclose(smoothed, [1.0, 1.0, 1.0])
    with pytest.raises(InvalidArgumentError):
        smooth_curve([1.0], 1.0)
