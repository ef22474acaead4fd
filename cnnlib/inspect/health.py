"""Each layer's health on one fixed batch: gradient size, dead ReLUs, weights, activations.

``LayerProbe(model, x, y)`` builds, once, a sub-model that returns the outputs of every
layer that has a kernel (Conv2D, Dense) or ends in a ReLU; ``probe.measure(epoch)`` then runs
the fixed batch through it and returns an ``EpochHealth``: per layer the L2 norm of the loss
gradient with respect to its kernel (sparse categorical cross-entropy of the model's
softmax, mean over the batch), the share of dead ReLU units (a Conv2D filter or a Dense
unit whose output is 0 at every position of every image in the batch), and histograms of
its kernel weights and of its outputs on the batch. ``layers=`` probes only the named layers
(e.g. those that learn while a pretrained base stays frozen).

``CamProbe(model, x, y)`` draws where the model looks: ``probe.measure(epoch)`` returns a
``CamSnapshot``, the Grad-CAM of each of a few fixed images (spread over the classes) for
its true class at the
model's last Conv2D layer, with what the model answered. Both are used by a training's
callback at each epoch end (``cnnlib.training.trainer``); the arrays are small (``BINS``
counts per layer, ``CAM_IMAGES`` maps at the layer's resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect.saliency import (
    cam_from_gradients,
    class_activation_map,
    frozen_cam_functions,
)

__all__ = [
    "BINS",
    "CAM_IMAGES",
    "CamProbe",
    "CamSnapshot",
    "EpochHealth",
    "LayerHealth",
    "LayerProbe",
    "histogram",
    "last_conv2d",
    "spread_over_classes",
]

#: Bins of every histogram.
BINS = 24
#: Fixed images whose Grad-CAM is redrawn at each epoch end.
CAM_IMAGES = 4


def histogram(values: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts (bins,) int64, edges (bins + 1,) float64) of the finite values (equal widths
    between their minimum and maximum; one bin around the value when all are equal)."""
    v = np.asarray(values).ravel()
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]  # a float32 layer output stays float32: no copy twice its size
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


def _fixed_batch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y (N,) int64); raises ``InvalidArgumentError`` unless x is N ≥ 1 inputs
    (N, ...) with N labels."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64).ravel()
    if x.ndim < 2 or len(x) == 0 or len(x) != len(y):
        raise InvalidArgumentError(
            f"The fixed batch must be N inputs with N labels; got {x.shape} and {y.shape}."
        )
    return x, y


def _output_bytes(layer) -> int:
    """Bytes of ``layer``'s float32 output for one image (0 when a size is not fixed)."""
    dims = tuple(layer.output.shape[1:])
    if any(d is None for d in dims):
        return 0
    return int(np.prod(dims, dtype=np.int64)) * 4


class LayerProbe:
    """Measures ``EpochHealth`` of ``model`` on the fixed batch ``x`` (N, ...) of the model's
    inputs (raw pixels (N, H, W, C) for an image model; (N, D) features for a head on cached
    features) with labels ``y`` (N,) ints. ``layers``: the names of the layers to probe (in
    the model's order; each must have a kernel or end in a ReLU); None: every such layer.
    ``max_bytes``: the probed layers' outputs on the batch (float32) must fit in this many
    bytes (default ``budgets().activation_bytes``): the batch keeps its first images that
    fit, at least one (``EpochHealth.images`` says how many; e.g. 24 of 64 photos of
    224 × 224 for the own-images convnet). Raises ``InvalidArgumentError`` for an empty
    batch, mismatched labels or a layer that cannot be probed."""

    def __init__(
        self,
        model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        layers: Sequence[str] | None = None,
        max_bytes: int | None = None,
    ):
        import keras

        self.model = model
        x, y = _fixed_batch(x, y)
        probed = [model.get_layer(name) for name in self.probed(model)]
        if layers is not None:
            wanted = set(layers)
            unknown = wanted - {layer.name for layer in probed}
            if unknown or not wanted:
                raise InvalidArgumentError(
                    f"These layers have no kernel nor ReLU to probe: {sorted(unknown)}."
                    if unknown
                    else "Name at least one layer to probe."
                )
            probed = [layer for layer in probed if layer.name in wanted]
        self.layers = probed
        per_image = sum(_output_bytes(layer) for layer in probed)
        budget = max_bytes if max_bytes is not None else budgets().activation_bytes
        keep = max(1, budget // per_image) if per_image else len(x)
        self.x, self.y = x[:keep], y[:keep]
        self._outputs = keras.Model(model.inputs[0], [layer.output for layer in self.layers])

    @staticmethod
    def probed(model) -> list[str]:
        """The names of ``model``'s layers a probe can measure: those with a kernel or ending
        in a ReLU, in the model's order."""
        return [layer.name for layer in model.layers if hasattr(layer, "kernel") or _is_relu(layer)]

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


@dataclass(frozen=True, eq=False)
class CamSnapshot:
    """Grad-CAM of a few fixed images at the end of ``epoch`` (1-based): ``images`` (n, H, W,
    C) raw pixels, ``labels`` and ``predicted`` (n,) classes, ``confidence`` (n,) the
    predicted class's probability, ``maps`` (n, h, w) float32 in [0, 1], each for the image's
    true class, at the Conv2D layer ``layer``'s resolution."""

    epoch: int
    layer: str
    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    maps: np.ndarray


def last_conv2d(model) -> str | None:
    """The name of ``model``'s last Conv2D layer (where Grad-CAM looks), or None."""
    names = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    return names[-1] if names else None


def spread_over_classes(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` of the labels ``y`` (fewer when there are fewer), taking the first
    unused image of each class in turn (classes in order of first appearance): (k,) int64,
    so a few fixed images show as many classes as they can."""
    y = np.asarray(y).ravel()
    queues = {int(c): list(np.flatnonzero(y == c)) for c in dict.fromkeys(y.tolist())}
    chosen: list[int] = []
    while len(chosen) < min(n, len(y)):
        for queue in queues.values():
            if queue and len(chosen) < n:
                chosen.append(int(queue.pop(0)))
    return np.array(chosen, np.int64)


class CamProbe:
    """Grad-CAM of ``n`` fixed images for ``model`` (raw pixels → class probabilities) at
    its last Conv2D layer: ``n`` of ``x`` (N, H, W, C) raw pixels with labels ``y`` (N,),
    spread over the classes (``spread_over_classes``). The model is read at each
    ``measure``, so its weights may change between calls (a training, or a head's weights
    copied in). ``frozen``: the layers up to that Conv2D never change (a frozen backbone
    under a new head): their feature maps are computed once and each ``measure`` runs only
    the layers after them (``frozen_cam_functions``: the same maps). Raises
    ``InvalidArgumentError`` for a model without a Conv2D layer, an empty batch or
    mismatched labels."""

    def __init__(
        self, model, x: np.ndarray, y: np.ndarray, n: int = CAM_IMAGES, *, frozen: bool = False
    ):
        self.model = model
        x, y = _fixed_batch(x, y)
        chosen = spread_over_classes(y, n)
        self.x, self.y = x[chosen], y[chosen]
        layer = last_conv2d(model)
        if layer is None:
            raise InvalidArgumentError(f"{model.name} has no Conv2D layer for Grad-CAM.")
        self.layer = layer
        self._frozen = None
        if frozen:
            features, scores = frozen_cam_functions(model, layer)
            self._frozen = (features(self.x), scores)

    def measure(self, epoch: int) -> CamSnapshot:
        if self._frozen is not None:
            feats, scores = self._frozen
            out = scores(feats, self.y.astype(np.int32))
            probabilities, grads = (np.asarray(t, np.float32) for t in out)
            maps = np.stack([cam_from_gradients(a, g) for a, g in zip(feats, grads, strict=True)])
        else:
            probabilities = np.asarray(self.model(self.x, training=False), np.float32)
            maps = np.stack(
                [
                    class_activation_map(self.model, image, int(label), layer=self.layer)
                    for image, label in zip(self.x, self.y, strict=True)
                ]
            )
        maps = maps.astype(np.float32)
        predicted = probabilities.argmax(axis=1)
        return CamSnapshot(
            epoch,
            self.layer,
            self.x.copy(),
            self.y.copy(),
            predicted,
            probabilities[np.arange(len(self.x)), predicted],
            maps,
        )
