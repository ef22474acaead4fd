"""cnnlib.inspect.data_map.pca_2d against numpy.linalg.svd (an independent route to PCA)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect.data_map import pca_2d


def svd_reference(x: np.ndarray):
    """(points (N, 2), components (2, D), explained (2,)) by SVD of the centred data, each
    component's sign fixed the same way (largest entry positive)."""
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2].copy()
    for row in components:
        if row[np.abs(row).argmax()] < 0:
            row *= -1
    return centred @ components.T, components, s[:2] ** 2 / np.sum(s**2)


@pytest.mark.parametrize("shape", [(300, 40), (30, 1280)])  # covariance route; Gram route
def test_pca_matches_svd(shape):
    rng = np.random.default_rng(0)
    n, d = shape
    # Anisotropic data: two strong directions, then noise, shifted away from the origin.
    basis = np.linalg.qr(rng.normal(size=(d, 3)))[0]  # 3 orthonormal directions
    x = rng.normal(size=(n, 3)) * [10.0, 4.0, 1.0] @ basis.T + rng.normal(0, 0.1, (n, d)) + 5
    points, components, explained = svd_reference(x)
    result = pca_2d(x.astype(np.float32))
    np.testing.assert_allclose(result.components, components, atol=1e-4)
    np.testing.assert_allclose(result.points, points, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(result.explained, explained, rtol=1e-5)
    assert result.explained[0] > result.explained[1] > 0
    np.testing.assert_allclose(result.project(x[:3]), result.points[:3], rtol=1e-6, atol=1e-6)


def test_separable_classes_land_apart():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (50, 20))
    b = rng.normal(0, 1, (50, 20)) + 6
    points = pca_2d(np.vstack([a, b])).points
    assert np.all(np.sign(points[:50, 0]) != np.sign(points[50:, 0]).min())


def test_degenerate_inputs():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 2.0])  # one direction of variance
    result = pca_2d(line)
    np.testing.assert_allclose(result.explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.components[1], 0.0)
    np.testing.assert_allclose(result.components[0], [1 / 3, 2 / 3, 2 / 3])
    same = pca_2d(np.ones((4, 3)))
    np.testing.assert_allclose(same.points, 0.0)
    np.testing.assert_allclose(same.explained, 0.0)
    one_feature = pca_2d(np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(one_feature.points, [[-1, 0], [1, 0]])
    with pytest.raises(InvalidArgumentError):
        pca_2d(np.ones((1, 3)))
    with pytest.raises(InvalidArgumentError):
        pca_2d(np.array([[0.0, np.nan], [1.0, 2.0]]))


@pytest.mark.slow
def test_classifier_features_are_what_the_last_layer_reads():
    """The features, through the last Dense layer's own weights and a softmax, give the
    model's probabilities (scratch Sequential with augmentation, and a functional model)."""
    import keras

    from cnnlib.inspect.data_map import classifier_features
    from cnnlib.training.transfer import build_scratch_model

    x = np.random.default_rng(3).uniform(0, 255, (5, 24, 24, 3)).astype(np.float32)
    inputs = keras.Input((24, 24, 3))
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3)(inputs))
    functional = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    for model in (build_scratch_model((24, 24, 3), 4, augment=("flip",), seed=0), functional):
        features = classifier_features(model, x)
        w, b = model.layers[-1].get_weights()
        assert features.shape == (5, w.shape[0])
        logits = features @ w + b
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(expected, model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
