"""A map of the data as the model sees it: the backbone's feature vectors projected to 2-D.

``pca_2d(features)`` finds the two directions along which the feature vectors vary most
(principal component analysis) and places each image on them: images the model finds alike
land close together, and a class that overlaps another on the map is one it confuses.

``classifier_features(model, x)`` gives the vectors a classifier's last layer reads (the
backbone's pooled features of a transfer model, the last hidden layer of a convnet trained
from scratch); Keras is imported only there. ``pca_2d`` is pure NumPy: the components come
from the eigenvectors of the smaller of the covariance (D × D) and Gram (N × N) matrices, so
a few hundred images of 1,280 features take milliseconds; each component's sign is fixed
(its largest entry positive) so the map is the same from run to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

__all__ = ["FeatureMap", "classifier_features", "pca_2d"]


@dataclass(frozen=True)
class FeatureMap:
    """A 2-D PCA of N feature vectors of D numbers.

    ``points`` (N, 2) float64: each image's coordinates; ``components`` (2, D): the two
    unit directions (zero rows where the data has fewer than two directions of variance);
    ``mean`` (D,): the centre; ``explained`` (2,): the share of the total variance along
    each direction (0…1).
    """

    points: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    explained: np.ndarray

    def project(self, features: np.ndarray) -> np.ndarray:
        """(M, D) more feature vectors (e.g. a new photo's) → (M, 2) on the same map."""
        x = np.asarray(features, dtype=np.float64)
        return (x - self.mean) @ self.components.T


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Each row flipped so that its entry of largest magnitude is positive."""
    if not vectors.size:
        return vectors
    pivots = vectors[np.arange(len(vectors)), np.abs(vectors).argmax(axis=1)]
    return vectors * np.where(pivots < 0, -1.0, 1.0)[:, None]


def pca_2d(features: np.ndarray) -> FeatureMap:
    """The 2-D PCA map of ``features`` (N, D) (N ≥ 2 finite vectors)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidArgumentError(f"A map needs at least 2 feature vectors (N, D); got {x.shape}.")
    if not np.isfinite(x).all():
        raise InvalidArgumentError("The feature vectors contain NaN or infinite values.")
    n, d = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    if d <= n:  # eigenvectors of the covariance are the components
        values, vectors = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(values)[::-1][:2]
        values, components = values[order], vectors[:, order].T
    else:  # eigenvectors of the Gram matrix give them through Xᵀ u / √λ
        values, vectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(values)[::-1][:2]
        values = values[order]
        with np.errstate(invalid="ignore", divide="ignore"):
            components = (centred.T @ vectors[:, order] / np.sqrt(np.maximum(values, 0))).T
    total = float((centred**2).sum())
    tiny = values <= max(total, 1e-300) * 1e-12  # directions without variance
    components = np.where(tiny[:, None], 0.0, np.nan_to_num(components))
    components = _fix_signs(components)
    if len(components) < 2:  # one feature: the second direction does not exist
        components = np.vstack([components, np.zeros((2 - len(components), d))])
        values = np.concatenate([values, np.zeros(2 - len(values))])
        tiny = np.concatenate([tiny, np.ones(2 - len(tiny), bool)])
    explained = np.where(tiny, 0.0, np.maximum(values, 0) / total if total else 0.0)
    return FeatureMap(
        points=centred @ components.T, components=components, mean=mean, explained=explained
    )


def classifier_features(model: Any, x: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """(N, D) float32: what ``model``'s last layer (its classifier) reads for the images
    ``x`` (N, H, W, C) raw pixels, in inference mode (dropout and augmentation off). For a
    Sequential or functional Keras model whose last layer takes one tensor."""
    import keras

    last = model.layers[-1]
    try:
        source = last.input
    except (AttributeError, ValueError) as err:
        raise InvalidArgumentError(
            f"The model's last layer ({last.name}) has no single input to map."
        ) from err
    if isinstance(source, list | tuple):
        raise InvalidArgumentError(f"The model's last layer ({last.name}) takes several inputs.")
    reader = keras.Model(model.inputs, source)
    out = reader.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float32).reshape(len(x), -1)
