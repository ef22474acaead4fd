"""Each layer's health on one fixed batch: gradient size, dead ReLUs, weights, activations.

``LayerProbe(model, x, y)`` builds, once, a sub-model that returns the outputs of every
layer that has a kernel (Conv2D, Dense) or ends in a ReLU; ``probe.measure(epoch)`` then runs
the fixed batch through it and returns an ``EpochHealth``: per layer the L2 norm of the loss
gradient with respect to its kernel (sparse categorical cross-entropy of the model's
softmax, mean over the batch), the share of dead ReLU units (a Conv2D filter or a Dense
unit whose output is 0 at every position of every image in the batch), and histograms of
its kernel weights and of its outputs on the batch. Used by a training's callback at each
epoch end (``cnnlib.training.trainer``); the arrays are small (``BINS`` counts per layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

__all__ = ["BINS", "EpochHealth", "LayerHealth", "LayerProbe", "histogram"]

#: Bins of every histogram.
BINS = 24


def histogram(values: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts (bins,) int64, edges (bins + 1,) float64) of the finite values (equal widths
    between their minimum and maximum; one bin around the value when all are equal)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(bins, np.int64), np.linspace(0.0, 1.0, bins + 1)
    low, high = float(v.min()), float(v.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(low, high))
    return counts.astype(np.int64), edges


@dataclass(frozen=True, eq=False)
class LayerHealth:
    """One layer at one epoch end. ``grad_norm``: L2 norm of d(loss)/d(kernel) (None: no
    kernel); ``dead_share``: share of its ReLU units dead on the whole batch, 0…1 (None: no
    ReLU); ``weights`` / ``activations``: (counts, edges) histograms (weights None without a
    kernel)."""

    name: str
    kind: str  #: the Keras class name, e.g. "Conv2D"
    grad_norm: float | None
    dead_share: float | None
    units: int  #: filters or units whose deadness is counted
    weights: tuple[np.ndarray, np.ndarray] | None
    activations: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class EpochHealth:
    """Every probed layer at the end of ``epoch`` (1-based), on ``images`` fixed images."""

    epoch: int
    images: int
    layers: tuple[LayerHealth, ...]


def _is_relu(layer) -> bool:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    return type(layer).__name__ == "ReLU" or name == "relu"


class LayerProbe:
    """Measures ``EpochHealth`` of ``model`` on the fixed batch ``x`` (N, H, W, C) raw pixels
    with labels ``y`` (N,) ints. Raises ``InvalidArgumentError`` for an empty batch or
    mismatched labels."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray):
        import keras

        x = np.asarray(x, np.float32)
        y = np.asarray(y).astype(np.int64).ravel()
        if x.ndim != 4 or len(x) == 0 or len(x) != len(y):
            raise InvalidArgumentError(
                f"The health batch must be (N, H, W, C) images with N labels; got {x.shape} "
                f"and {y.shape}."
            )
        self.model, self.x, self.y = model, x, y
        self.layers = [
            layer for layer in model.layers if hasattr(layer, "kernel") or _is_relu(layer)
        ]
        self._outputs = keras.Model(model.inputs[0], [layer.output for layer in self.layers])

    def measure(self, epoch: int) -> EpochHealth:
        import tensorflow as tf

        kernels = [layer.kernel for layer in self.layers if hasattr(layer, "kernel")]
        with tf.GradientTape() as tape:
            probabilities = self.model(self.x, training=False)
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(
                    self.y, tf.cast(probabilities, tf.float32)
                )
            )
        grads = iter(tape.gradient(loss, kernels))
        outputs = self._outputs(self.x, training=False)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        rows = []
        for layer, out in zip(self.layers, outputs, strict=True):
            a = np.asarray(out, np.float32)  # (N, ..., units)
            grad_norm = weights = None
            if hasattr(layer, "kernel"):
                g = next(grads)
                grad_norm = float(tf.norm(tf.cast(g, tf.float32))) if g is not None else 0.0
                weights = histogram(np.asarray(layer.kernel))
            dead = None
            units = int(a.shape[-1])
            if _is_relu(layer):
                fired = (a > 0).reshape(-1, units).any(axis=0)
                dead = float(1.0 - fired.mean())
            rows.append(
                LayerHealth(
                    layer.name,
                    type(layer).__name__,
                    grad_norm,
                    dead,
                    units,
                    weights,
                    histogram(a),
                )
            )
        return EpochHealth(epoch, len(self.x), tuple(rows))
