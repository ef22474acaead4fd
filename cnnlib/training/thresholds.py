"""An honest "I don't know": a confidence threshold below which the model answers "not sure".

A classifier's confidence is its top probability. With a threshold t, it answers only when
that confidence is at least t: *coverage* is the share of images it answers, *accuracy* the
share of those answers that are right. Raising t trades coverage for accuracy;
``threshold_curve`` computes both for every threshold, ``threshold_effect`` shows what one
threshold does to each class, and ``answer`` is the rule the prediction panel, the live
webcam and the exported snippet apply (the same comparison, ``confidence >= threshold``).

Pure NumPy; probabilities are softmax outputs (N, K), labels class indices (N,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "NOT_SURE",
    "NOT_SURE_LABEL",
    "ThresholdCurve",
    "ThresholdEffect",
    "answer",
    "confidences",
    "predictions_with_threshold",
    "threshold_curve",
    "threshold_effect",
    "threshold_for_accuracy",
]

#: The prediction given below the threshold.
NOT_SURE = -1
#: What a learner reads for it.
NOT_SURE_LABEL = "not sure"
#: The thresholds ``threshold_curve`` sweeps by default: 0, 0.01, …, 1.
DEFAULT_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


def _check(probabilities: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise InvalidArgumentError(f"Probabilities are (N, classes); got {p.shape}.")
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (p.shape[0],) or (y.size and not np.issubdtype(y.dtype, np.integer)):
            raise InvalidArgumentError(
                f"Expected {p.shape[0]} integer labels for {p.shape[0]} predictions; got "
                f"{y.shape} {y.dtype}."
            )
        if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
            raise InvalidArgumentError(f"A label is outside the classes 0…{p.shape[1] - 1}.")
    return p


def _threshold(threshold: float) -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidArgumentError(f"The threshold is a probability in [0, 1]; got {threshold}.")
    return float(threshold)


def confidences(probabilities: np.ndarray) -> np.ndarray:
    """(N,) float64: each prediction's top probability."""
    return _check(probabilities).max(axis=1)


def predictions_with_threshold(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) int64: the top class where its probability is at least ``threshold``, else
    ``NOT_SURE`` (−1)."""
    p = _check(probabilities)
    t = _threshold(threshold)
    top = p.argmax(axis=1).astype(np.int64)
    return np.where(p.max(axis=1) >= t, top, NOT_SURE)


def answer(
    probabilities: Sequence[float] | np.ndarray, class_names: Sequence[str], threshold: float
) -> tuple[str, float]:
    """(class name or "not sure", top probability) for one image's probabilities (K,)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or len(p) != len(class_names):
        raise InvalidArgumentError(
            f"{len(class_names)} class names but probabilities shaped {p.shape}."
        )
    best = int(p.argmax())
    confident = p[best] >= _threshold(threshold)
    return (class_names[best] if confident else NOT_SURE_LABEL), float(p[best])


@dataclass(frozen=True)
class ThresholdCurve:
    """Coverage and accuracy for each threshold (arrays of the same length T).

    ``answered`` and ``correct`` count images (int64); ``coverage`` = answered / total;
    ``accuracy`` = correct / answered (NaN where nothing is answered).
    """

    thresholds: np.ndarray
    answered: np.ndarray
    correct: np.ndarray
    total: int

    @property
    def coverage(self) -> np.ndarray:
        return self.answered / self.total if self.total else np.zeros(len(self.thresholds))

    @property
    def accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.answered > 0, self.correct / self.answered, np.nan)


def threshold_curve(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] | None = None
) -> ThresholdCurve:
    """Coverage and accuracy of the answers at each threshold (default
    ``DEFAULT_THRESHOLDS``; each in [0, 1], sorted ascending in the result)."""
    p = _check(probabilities, labels)
    y = np.asarray(labels, dtype=np.int64)
    t = np.sort(np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, float))
    if t.ndim != 1 or not t.size or t.min() < 0 or t.max() > 1:
        raise InvalidArgumentError("Thresholds are probabilities in [0, 1].")
    confidence = p.max(axis=1)
    right = p.argmax(axis=1) == y
    covered = confidence[None, :] >= t[:, None]  # (T, N)
    return ThresholdCurve(
        thresholds=t,
        answered=covered.sum(axis=1).astype(np.int64),
        correct=(covered & right[None, :]).sum(axis=1).astype(np.int64),
        total=int(y.size),
    )


def threshold_for_accuracy(curve: ThresholdCurve, target: float) -> float | None:
    """The lowest threshold of ``curve`` whose answers are at least ``target`` accurate
    (most coverage for that accuracy), or None when no threshold reaches it."""
    reached = np.flatnonzero((curve.answered > 0) & (curve.accuracy >= target))
    return float(curve.thresholds[reached[0]]) if reached.size else None


@dataclass(frozen=True)
class ThresholdEffect:
    """What one threshold does to each class (arrays (K,), by TRUE class).

    ``total``: images of the class; ``answered``: those the model answers for (confidence ≥
    threshold); ``correct``: those answered with the right class; ``not_sure``: those it
    declines; ``wrong``: answered but wrong. Overall figures are the sums.
    """

    threshold: float
    total: np.ndarray
    answered: np.ndarray
    correct: np.ndarray

    @property
    def not_sure(self) -> np.ndarray:
        return self.total - self.answered

    @property
    def wrong(self) -> np.ndarray:
        return self.answered - self.correct

    @property
    def coverage(self) -> np.ndarray:
        """(K,) answered / total (NaN for a class without images)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.answered / self.total, np.nan)

    @property
    def accuracy(self) -> np.ndarray:
        """(K,) correct / answered (NaN where nothing is answered)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.answered > 0, self.correct / self.answered, np.nan)

    @property
    def overall_coverage(self) -> float:
        return float(self.answered.sum() / self.total.sum()) if self.total.sum() else 0.0

    @property
    def overall_accuracy(self) -> float:
        answered = self.answered.sum()
        return float(self.correct.sum() / answered) if answered else float("nan")


def threshold_effect(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float
) -> ThresholdEffect:
    """Per true class: how many images are answered, right, or "not sure" at
    ``threshold``."""
    p = _check(probabilities, labels)
    y = np.asarray(labels, dtype=np.int64)
    k = p.shape[1]
    predicted = predictions_with_threshold(p, threshold)
    answered = predicted != NOT_SURE
    return ThresholdEffect(
        threshold=_threshold(threshold),
        total=np.bincount(y, minlength=k).astype(np.int64),
        answered=np.bincount(y[answered], minlength=k).astype(np.int64),
        correct=np.bincount(y[answered & (predicted == y)], minlength=k).astype(np.int64),
    )
