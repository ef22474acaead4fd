"""How well a trained classifier does on test data: accuracy, loss, per-class accuracy,
precision and recall, the confusion matrix, which images fall in each of its cells, the most
confident mistakes, the most-confused pairs of classes, and a held-out test set's result set
beside the validation score (``held_out_test``: the gap between them explained).

The pure functions take labels and probabilities as NumPy arrays; ``evaluate_model`` runs a
Keras model over the test images once and computes everything from its probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.training_data import as_images

__all__ = [
    "ConfusedPair",
    "Evaluation",
    "HeldOutTest",
    "accuracy",
    "cell_indices",
    "confusion_matrix",
    "cross_entropy",
    "evaluate_model",
    "evaluation_from_probabilities",
    "gap_sentence",
    "held_out_test",
    "most_confident_mistakes",
    "most_confused_pairs",
    "per_class_accuracy",
    "precision_recall",
    "predict_probabilities",
    "smooth_curve",
]

#: Keras clips probabilities to [eps, 1 - eps] before the log in its cross-entropy.
_EPSILON = 1e-7


def _labels(y: np.ndarray, name: str = "labels") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidArgumentError(f"{name} must be a 1-D array of class indices, got {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgumentError(f"{name} must be integers (class indices), got {y.dtype}.")
    return y.astype(np.int64)


def _probabilities(probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise InvalidArgumentError(
            f"Expected probabilities of shape ({y.shape[0]}, classes), got {p.shape}."
        )
    return p


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the labels (0.0 for no samples)."""
    y_true, y_pred = _labels(y_true), _labels(y_pred, "predictions")
    if y_true.shape != y_pred.shape:
        raise InvalidArgumentError(
            f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions; they must match."
        )
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def cross_entropy(probabilities: np.ndarray, y_true: np.ndarray) -> float:
    """Mean categorical cross-entropy (natural log) of softmax outputs (N, K) vs labels (N,).

    Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does, so this equals Keras'
    ``sparse_categorical_crossentropy`` on the same outputs.
    """
    y = _labels(y_true)
    p = _probabilities(probabilities, y)
    if not y.size:
        return 0.0
    picked = np.clip(p[np.arange(y.size), y], _EPSILON, 1.0 - _EPSILON)
    return float(-np.mean(np.log(picked)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    y_true, y_pred = _labels(y_true), _labels(y_pred, "predictions")
    if y_true.shape != y_pred.shape:
        raise InvalidArgumentError(
            f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions; they must match."
        )
    for name, y in (("label", y_true), ("prediction", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise InvalidArgumentError(
                f"A {name} is outside the classes 0…{num_classes - 1}: {int(y.min())}…"
                f"{int(y.max())}."
            )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """(K,) float64: for each true class, the fraction predicted correctly (NaN if absent)."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def precision_recall(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision (K,), recall (K,)) float64 from a confusion matrix (row = true class).

    Precision of class k: of the images predicted k, the share that are k (NaN when nothing
    was predicted k). Recall: of the images of class k, the share predicted k (NaN when the
    class has no image; equal to ``per_class_accuracy``).
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise InvalidArgumentError(f"A confusion matrix is square; got {confusion.shape}.")
    hits = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, hits / predicted, np.nan)
    return precision, per_class_accuracy(confusion)


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` images of class ``true`` were predicted as ``predicted`` (class indices)."""

    true: int
    predicted: int
    count: int


def most_confused_pairs(
    confusion: np.ndarray, *, top: int = 5, min_count: int = 1
) -> list[ConfusedPair]:
    """The off-diagonal cells of a confusion matrix with at least ``min_count`` images, most
    images first (ties: by true class, then predicted class), at most ``top`` of them."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise InvalidArgumentError(f"A confusion matrix is square; got {confusion.shape}.")
    cells = [
        ConfusedPair(int(t), int(p), int(confusion[t, p]))
        for t, p in zip(*np.nonzero(confusion >= max(1, min_count)), strict=True)
        if t != p
    ]
    cells.sort(key=lambda c: (-c.count, c.true, c.predicted))
    return cells[: max(0, top)]


def cell_indices(
    y_true: np.ndarray, y_pred: np.ndarray, true_class: int, predicted_class: int
) -> np.ndarray:
    """Indices (ascending, int64) of the samples in one confusion-matrix cell."""
    y_true, y_pred = _labels(y_true), _labels(y_pred, "predictions")
    return np.flatnonzero((y_true == true_class) & (y_pred == predicted_class)).astype(np.int64)


def most_confident_mistakes(
    probabilities: np.ndarray, y_true: np.ndarray, count: int = 16
) -> np.ndarray:
    """Indices of up to ``count`` misclassified samples, most confident wrong answer first.

    Confidence is the probability the model gave to its (wrong) predicted class; ties are
    broken by index so the order is reproducible.
    """
    y = _labels(y_true)
    p = _probabilities(probabilities, y)
    predicted = p.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = p[wrong, predicted[wrong]]
    order = np.lexsort((wrong, -confidence))
    return wrong[order[: max(0, count)]].astype(np.int64)


def smooth_curve(values: list[float] | np.ndarray, weight: float = 0.8) -> np.ndarray:
    """Exponential moving average of a noisy curve, bias-corrected (as TensorBoard draws it).

    ``weight`` in [0, 1): 0 returns the values unchanged, closer to 1 smooths more. The first
    points are not pulled towards 0: each is divided by 1 − weight^(i+1). NaNs are skipped.
    """
    if not 0.0 <= weight < 1.0:
        raise InvalidArgumentError(f"The smoothing weight must be in [0, 1), got {weight}.")
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    average, count = 0.0, 0
    for i, value in enumerate(values):
        if np.isfinite(value):
            average = weight * average + (1.0 - weight) * value
            count += 1
        out[i] = average / (1.0 - weight**count) if count else np.nan
    return out


def predict_probabilities(model: Any, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Run a Keras classifier on ``x``; returns its softmax outputs (N, K) as float32.

    ``x``: RAW pixels (N, H, W) or (N, H, W, C), uint8 or float in 0…255, exactly what the
    model was trained on: the model owns its rescaling (a ``Rescaling`` layer).
    """
    if not len(x):
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    x = as_images(x)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


@dataclass(frozen=True)
class Evaluation:
    """A model's results on a test set.

    ``probabilities`` (N, K) float32; ``predictions`` and ``labels`` (N,) int64;
    ``accuracy`` and ``loss`` (mean cross-entropy) scalars; ``per_class`` (K,) accuracies
    (NaN for a class with no test sample); ``confusion`` (K, K) counts, row = true class.
    """

    probabilities: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    accuracy: float
    loss: float
    per_class: np.ndarray
    confusion: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    def cell(self, true_class: int, predicted_class: int) -> np.ndarray:
        """Indices of the test samples of ``true_class`` predicted as ``predicted_class``."""
        return cell_indices(self.labels, self.predictions, true_class, predicted_class)

    def confident_mistakes(self, count: int = 16) -> np.ndarray:
        """Indices of the ``count`` most confident mistakes (see ``most_confident_mistakes``)."""
        return most_confident_mistakes(self.probabilities, self.labels, count)


def evaluation_from_probabilities(probabilities: np.ndarray, y_true: np.ndarray) -> Evaluation:
    """Every metric of ``Evaluation`` from softmax outputs (N, K) and labels (N,)."""
    y = _labels(y_true)
    p = _probabilities(probabilities, y)
    predictions = p.argmax(axis=1).astype(np.int64)
    confusion = confusion_matrix(y, predictions, p.shape[1])
    return Evaluation(
        probabilities=p.astype(np.float32),
        predictions=predictions,
        labels=y,
        accuracy=accuracy(y, predictions),
        loss=cross_entropy(p, y),
        per_class=per_class_accuracy(confusion),
        confusion=confusion,
    )


def evaluate_model(
    model: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int = 512
) -> Evaluation:
    """Run ``model`` over the test images ``x`` (raw pixels, see ``predict_probabilities``)
    once and compute every metric against ``y``."""
    y = _labels(y)
    if len(x) != len(y):
        raise InvalidArgumentError(f"{len(x)} test images but {len(y)} labels; they must match.")
    return evaluation_from_probabilities(predict_probabilities(model, x, batch_size=batch_size), y)


# --------------------------------------------------------------------------------------------
# A held-out test set beside the validation score
# --------------------------------------------------------------------------------------------


def _standard_error(accuracy_value: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` images, with the
    Agresti-Coull adjustment (one success and one failure added) so that 0 % and 100 % do
    not claim certainty."""
    p = (accuracy_value * n + 1) / (n + 2)
    return math.sqrt(p * (1 - p) / (n + 2))


def gap_sentence(
    validation_accuracy: float, validation_size: int, test_accuracy: float, test_size: int
) -> tuple[float, str]:
    """(noise, sentence): the gap between validation and test accuracy explained for a
    learner. ``noise`` is the gap chance alone gives (two standard errors of the difference,
    as a fraction); the sentence says whether the gap is within it and what it means."""
    noise = 2 * math.hypot(
        _standard_error(validation_accuracy, validation_size),
        _standard_error(test_accuracy, test_size),
    )
    gap = validation_accuracy - test_accuracy
    both = (
        f"Test accuracy is {100 * test_accuracy:.1f} % on {test_size} images the model never "
        f"saw; validation accuracy was {100 * validation_accuracy:.1f} % on {validation_size}."
    )
    if abs(gap) <= noise:
        return noise, (
            f"{both} They differ by {100 * abs(gap):.1f} points, within the ±{100 * noise:.1f} "
            "that chance gives with this many images: the validation score was an honest "
            "estimate of how the model does on new images."
        )
    if gap > 0:
        return noise, (
            f"{both} Test is {100 * gap:.1f} points lower, more than the ±{100 * noise:.1f} "
            "chance explains. The validation images helped pick this model (early stopping "
            "kept its best epoch on them, and any settings you compared were judged on them), "
            "so they flatter it; or the test images differ from the training images (other "
            "lighting, backgrounds or camera). The test mistakes show which."
        )
    return noise, (
        f"{both} Test is {100 * -gap:.1f} points higher, more than the ±{100 * noise:.1f} "
        "chance explains: the test images are easier than the validation images (closer to "
        "the training images, or fewer hard cases). Don't expect this score on new photos."
    )


@dataclass(frozen=True)
class HeldOutTest:
    """A held-out test set's results beside the validation score.

    ``evaluation``: every metric on the test images; ``precision`` and ``recall`` (K,)
    (NaN where undefined, see ``precision_recall``); ``gap`` = validation − test accuracy
    (fraction; positive when the test is worse); ``noise``: the gap chance alone gives;
    ``explanation``: a sentence for the learner (``gap_sentence``).
    """

    evaluation: Evaluation
    precision: np.ndarray
    recall: np.ndarray
    validation_accuracy: float
    validation_size: int
    gap: float
    noise: float
    explanation: str

    @property
    def accuracy(self) -> float:
        return self.evaluation.accuracy


def held_out_test(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    validation_accuracy: float,
    validation_size: int,
) -> HeldOutTest:
    """The test set's metrics from its softmax outputs (N, K) and labels (N,), with the
    validation–test gap explained. Raises ``InvalidArgumentError`` for an empty test set or
    a validation score that is not a fraction of at least one image."""
    y = _labels(labels)
    if not y.size:
        raise InvalidArgumentError("The test set is empty: add test images first.")
    if not 0.0 <= validation_accuracy <= 1.0 or validation_size < 1:
        raise InvalidArgumentError(
            f"The validation accuracy must be a fraction of at least one image; got "
            f"{validation_accuracy!r} on {validation_size!r}."
        )
    evaluation = evaluation_from_probabilities(probabilities, y)
    precision, recall = precision_recall(evaluation.confusion)
    noise, sentence = gap_sentence(
        validation_accuracy, validation_size, evaluation.accuracy, int(y.size)
    )
    return HeldOutTest(
        evaluation=evaluation,
        precision=precision,
        recall=recall,
        validation_accuracy=float(validation_accuracy),
        validation_size=int(validation_size),
        gap=float(validation_accuracy - evaluation.accuracy),
        noise=noise,
        explanation=sentence,
    )
