"""How well a trained classifier does on test data: accuracy, loss, per-class accuracy,
the confusion matrix, which images fall in each of its cells, and the most confident mistakes.

The pure functions take labels and probabilities as NumPy arrays; ``evaluate_model`` runs a
Keras model over the test images once and computes everything from its probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.training_data import as_images

__all__ = [
    "Evaluation",
    "accuracy",
    "cell_indices",
    "confusion_matrix",
    "cross_entropy",
    "evaluate_model",
    "evaluation_from_probabilities",
    "most_confident_mistakes",
    "per_class_accuracy",
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
