"""Calibration: is a model's 93 % confidence right 93 % of the time?

- ``reliability(probabilities, labels, bins=10)``: the reliability diagram's numbers and the
  expected calibration error (Guo et al., "On Calibration of Modern Neural Networks", ICML
  2017). Each prediction falls in one of ``bins`` equal-width bins by its top probability
  (bin m holds confidences in ((m−1)/M, m/M], the first bin includes 0); per bin the mean
  confidence, the accuracy and the count; ECE = Σ_m (count_m / N) · |accuracy_m −
  confidence_m|.
- ``fit_temperature(logits, labels)``: temperature scaling (Guo et al.): the one T > 0 that
  minimises the negative log-likelihood of softmax(logits / T) on held-out data. T > 1
  softens an over-confident model; the predicted class never changes.
- ``softmax(logits, temperature=1)`` and ``nll(logits, labels, temperature=1)``.
- ``model_logits(model, x)``: a Keras classifier's logits, for a model whose output is a
  softmax (read from the softmax layer's input, as the saliency maps do).
- ``calibration_report(model, x_test, y_test, x_val=..., y_val=...)``: all of it for one
  trained model, as a page shows it: the test set's reliability, T fitted on the validation
  set, and the test set's reliability with T.

NumPy and SciPy only, except ``model_logits`` (Keras, imported lazily).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import saliency

__all__ = [
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "CalibrationReport",
    "Reliability",
    "calibrated_probabilities",
    "calibration_report",
    "fit_temperature",
    "model_logits",
    "nll",
    "reliability",
    "softmax",
]

#: The range ``fit_temperature`` searches; a fit at either end means the data push T further
#: (e.g. a model that is right on every validation example wants T → 0).
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
MAX_BINS = 100


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: ``bins`` equal-width bins of the top probability.

    ``edges``: (bins + 1,) from 0 to 1. Per bin, (bins,) arrays: ``confidence`` (mean top
    probability), ``accuracy`` (share of correct predictions), both NaN for an empty bin, and
    ``count`` (int64). ``ece``: the expected calibration error in [0, 1]; ``accuracy_all``
    and ``confidence_all``: over all N predictions.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ece: float
    accuracy_all: float
    confidence_all: float

    @property
    def bins(self) -> int:
        return int(self.count.size)

    @property
    def gap(self) -> np.ndarray:
        """(bins,) confidence − accuracy: positive where the model is over-confident."""
        return self.confidence - self.accuracy


def _check_labels(labels: Any, n: int, classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgumentError(
            f"labels must be {n} whole numbers (one per row); got an array of shape {y.shape} "
            f"and type {y.dtype}."
        )
    if n and (y.min() < 0 or y.max() >= classes):
        raise InvalidArgumentError(f"labels must be class indices from 0 to {classes - 1}.")
    return y.astype(np.int64)


def _check_matrix(values: Any, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 2:
        raise InvalidArgumentError(
            f"{what} must be (N, classes) with N ≥ 1 and at least 2 classes; got shape {a.shape}."
        )
    if not np.all(np.isfinite(a)):
        raise InvalidArgumentError(f"{what} contain NaN or infinite values.")
    return a


def reliability(probabilities: Any, labels: Any, *, bins: int = 10) -> Reliability:
    """The reliability diagram and ECE of (N, K) ``probabilities`` (rows of class
    probabilities) against (N,) integer ``labels``, in ``bins`` equal-width bins (1 to
    ``MAX_BINS``) of each row's top probability."""
    p = _check_matrix(probabilities, "probabilities")
    if p.min() < 0 or p.max() > 1 + 1e-6:
        raise InvalidArgumentError("probabilities must lie between 0 and 1.")
    y = _check_labels(labels, p.shape[0], p.shape[1])
    if (
        isinstance(bins, bool)
        or not isinstance(bins, int | np.integer)
        or not 1 <= bins <= MAX_BINS
    ):
        raise InvalidArgumentError(f"bins must be a whole number from 1 to {MAX_BINS}.")
    top = np.minimum(p.max(axis=1), 1.0)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin m holds ((m-1)/M, m/M]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.ceil(top * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=top, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] / top.size * np.abs(accuracy[filled] - confidence[filled])))
    return Reliability(
        edges=edges,
        confidence=confidence,
        accuracy=accuracy,
        count=count.astype(np.int64),
        ece=ece,
        accuracy_all=float(correct.mean()),
        confidence_all=float(top.mean()),
    )


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) of (N, K) logits, row by row: (N, K) float64."""
    z = _check_matrix(logits, "logits") / _check_temperature(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_temperature(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, int | float | np.floating) or not t > 0:
        raise InvalidArgumentError(f"The temperature must be a positive number, got {t!r}.")
    return float(t)


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean of log Σ_j exp(d_j) with d = (z − z_label) / t, as m + log1p(Σ_{j ≠ top}
    exp(d_j − m)), m = max_j d_j: exact to the last bit even when the label's probability is
    1 − 1e-18 (so a search for T still sees the NLL fall)."""
    rows = np.arange(len(y))
    d = (z - z[rows, y][:, None]) / t
    m = d.max(axis=1)
    e = np.exp(d - m[:, None])
    e[rows, d.argmax(axis=1)] = 0.0
    return float(np.mean(m + np.log1p(e.sum(axis=1))))


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of softmax(logits / temperature) for ``labels``."""
    z = _check_matrix(logits, "logits")
    y = _check_labels(labels, z.shape[0], z.shape[1])
    return _nll(z, y, _check_temperature(temperature))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The temperature T in [``MIN_TEMPERATURE``, ``MAX_TEMPERATURE``] minimising
    ``nll(logits, labels, T)``; use held-out (validation) logits, never the training set's.

    The NLL is convex in 1/T, so it has one minimum on the range: found by bounded Brent
    search over log T to a relative precision of about 1e-6.
    """
    from scipy import optimize

    z = _check_matrix(logits, "logits")
    y = _check_labels(labels, z.shape[0], z.shape[1])
    found = optimize.minimize_scalar(
        lambda log_t: _nll(z, y, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.exp(found.x))


def model_logits(model: Any, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """(N, K) float32 logits of a Keras classifier (or ``PretrainedModel``) for an (N, H, W,
    C) batch prepared as the model expects: the input of its softmax (h·W + b for a softmax
    Dense layer), or its output when it has no softmax head."""
    import keras

    keras_model, lock = saliency.keras_model_and_lock(model)
    source, to_logits = saliency.logit_source(keras_model)
    sub = saliency.model_function(
        keras_model, "logits", lambda: keras.Model(keras_model.inputs[0], source)
    )
    a = np.asarray(x, dtype=np.float32)
    shape = saliency.input_shape(keras_model)
    if a.ndim != 4 or tuple(a.shape[1:]) != shape:
        raise InvalidArgumentError(
            f"The model takes a batch of shape (N, {', '.join(map(str, shape))}); got {a.shape}."
        )
    parts = []
    for i in range(0, len(a), batch_size):
        with lock:
            out = to_logits(sub(a[i : i + batch_size], training=False))
        parts.append(keras.ops.convert_to_numpy(out).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, saliency.num_classes(keras_model)))


@dataclass(frozen=True)
class CalibrationReport:
    """One trained classifier's calibration on a test set, before and after temperature
    scaling.

    ``before``: the test set's ``Reliability`` of the model's own probabilities (T = 1);
    ``temperature``: T fitted on the validation set (None without one); ``after``: the test
    set's ``Reliability`` of softmax(logits / T) (None without T); ``nll_before`` and
    ``nll_after``: the test set's mean negative log-likelihood (nats) at T = 1 and at T;
    ``test_count`` and ``validation_count``: the images each set holds.
    """

    before: Reliability
    temperature: float | None
    after: Reliability | None
    nll_before: float
    nll_after: float | None
    test_count: int
    validation_count: int


def calibration_report(
    model: Any,
    x_test: np.ndarray,
    y_test: Any,
    *,
    x_val: np.ndarray | None = None,
    y_val: Any = None,
    bins: int = 10,
) -> CalibrationReport:
    """The test set's reliability diagram and ECE for ``model``, and again after temperature
    scaling fitted on (``x_val``, ``y_val``) when given (never on the test set).

    ``x_test``, ``x_val``: (N, H, W, C) batches prepared as the model expects (see
    ``model_logits``); ``y_test``, ``y_val``: (N,) class indices. One pass of the model over
    each set.
    """
    z_test = model_logits(model, x_test)
    y = _check_labels(y_test, z_test.shape[0], z_test.shape[1])
    before = reliability(softmax(z_test), y, bins=bins)
    nll_before = nll(z_test, y)
    if x_val is None or y_val is None or len(x_val) == 0:
        return CalibrationReport(before, None, None, nll_before, None, len(y), 0)
    z_val = model_logits(model, x_val)
    t = fit_temperature(z_val, y_val)
    after = reliability(softmax(z_test, t), y, bins=bins)
    return CalibrationReport(before, t, after, nll_before, nll(z_test, y, t), len(y), len(z_val))


def calibrated_probabilities(model: Any, x: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / ``temperature``) of ``model`` for an (N, H, W, C) batch prepared as
    the model expects: (N, K) float64, the probabilities a temperature-scaled model reports
    (same predicted class as the model's own)."""
    return softmax(model_logits(model, x), _check_temperature(temperature))
