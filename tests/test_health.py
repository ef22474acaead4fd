"""Layer health (``cnnlib.inspect.health``) against hand computations: the gradient of a
softmax regression's cross-entropy is Xᵀ(P − Y)/N; a ReLU unit with zero weights and a
negative bias is dead on every image; histograms count every value; and a real tiny
training reports one health record per epoch."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect.health import BINS, CamProbe, LayerProbe, histogram, spread_over_classes

keras = pytest.importorskip("keras")


def _regression(seed: int = 0):
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(flat)
    out = keras.layers.Dense(3, activation="softmax", name="out")(hidden)
    model = keras.Model(inputs, out)
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(16, 6)).astype("float32"), np.zeros(6, "float32")
    w[:, :2], b[:2] = 0.0, -1.0  # units 0 and 1: 0 for every input
    model.get_layer("hidden").set_weights([w, b])
    return model


def test_gradient_norm_and_dead_units_match_hand_computations():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(10, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, size=10)
    model = _regression()
    health = LayerProbe(model, x, y).measure(3)
    assert health.epoch == 3 and health.images == 10
    by_name = {row.name: row for row in health.layers}
    assert set(by_name) == {"hidden", "out"}
    # Softmax regression on the hidden layer's output: dL/dW = Hᵀ (P − onehot(y)) / N.
    w, b = model.get_layer("hidden").get_weights()
    h = np.maximum(x.reshape(10, 16) @ w + b, 0)
    wo, bo = model.get_layer("out").get_weights()
    z = h @ wo + bo
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = h.T @ (p - np.eye(3)[y]) / 10
    assert by_name["out"].grad_norm == pytest.approx(np.linalg.norm(grad), rel=1e-4)
    assert by_name["out"].dead_share is None  # softmax, not a ReLU
    hidden = by_name["hidden"]
    fired = (h > 0).any(axis=0)
    assert not fired[:2].any()
    assert hidden.dead_share == pytest.approx(1 - fired.mean()) and hidden.dead_share >= 2 / 6
    assert hidden.units == 6
    counts, edges = hidden.weights
    assert counts.sum() == 16 * 6 and len(edges) == BINS + 1
    assert edges[0] == pytest.approx(w.min()) and edges[-1] == pytest.approx(w.max())
    assert hidden.activations[0].sum() == 10 * 6


def test_histogram_of_equal_values_and_refusals():
    counts, edges = histogram(np.full(5, 2.0))
    assert counts.sum() == 5 and edges[0] < 2.0 < edges[-1]
    counts, _ = histogram(np.array([np.nan, 1.0, np.inf]))
    assert counts.sum() == 1
    with pytest.raises(InvalidArgumentError):
        LayerProbe(_regression(), np.zeros((0, 4, 4, 1)), np.zeros(0))
    with pytest.raises(InvalidArgumentError):
        LayerProbe(_regression(), np.zeros((3, 4, 4, 1)), np.zeros(2))


def test_only_the_named_layers_are_probed_and_a_head_on_features_is_probed_too():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(5, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, size=5)
    model = _regression()
    assert LayerProbe.probed(model) == ["hidden", "out"]
    health = LayerProbe(model, x, y, layers=["out"]).measure(1)
    assert [row.name for row in health.layers] == ["out"]
    full = LayerProbe(model, x, y).measure(1)
    assert health.layers[0].grad_norm == pytest.approx(full.layers[1].grad_norm, rel=1e-6)
    for bad in (["flatten"], ["no_such_layer"], []):
        with pytest.raises(InvalidArgumentError):
            LayerProbe(model, x, y, layers=bad)
    # A head on (N, D) features: the probe takes the model's own inputs.
    inputs = keras.Input((16,))
    head = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="p")(inputs))
    (row,) = LayerProbe(head, x.reshape(5, 16), y).measure(2).layers
    assert (row.name, row.dead_share, row.activations[0].sum()) == ("p", None, 15)


def test_the_probed_batch_is_cut_to_the_activation_budget():
    """The own-images convnet at 224 × 224: its probed outputs are 10.8 MB an image
    (222²·32 + 109²·64 + 52²·128 + 128 + 4 floats), so 64 MiB keeps 6 of 64 images."""
    from cnnlib.training.transfer import build_scratch_model

    model = build_scratch_model((224, 224, 3), 4)
    per_image = 4 * (222 * 222 * 32 + 109 * 109 * 64 + 52 * 52 * 128 + 128 + 4)
    x, y = np.zeros((64, 224, 224, 3), np.float32), np.arange(64) % 4
    probe = LayerProbe(model, x, y, max_bytes=64 * 2**20)
    assert len(probe.x) == len(probe.y) == 64 * 2**20 // per_image == 6
    assert len(LayerProbe(model, x, y, max_bytes=1).x) == 1  # never empty
    assert len(LayerProbe(_regression(), np.zeros((9, 4, 4, 1)), np.zeros(9)).x) == 9


def test_the_fixed_gradcam_images_are_spread_over_the_classes():
    assert spread_over_classes(np.array([0, 0, 0, 1, 1, 2]), 4).tolist() == [0, 3, 5, 1]
    assert spread_over_classes(np.array([2, 2, 2]), 4).tolist() == [0, 1, 2]
    assert spread_over_classes(np.array([1, 0, 1, 0]), 2).tolist() == [0, 1]
    with pytest.raises(InvalidArgumentError, match="Conv2D"):
        CamProbe(_regression(), np.zeros((2, 4, 4, 1)), np.zeros(2))


def _frozen_base_under_a_head(seed: int = 0):
    """conv → BatchNorm → ReLU (frozen, as a backbone) → GAP → Dense softmax (the head)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.Conv2D(6, 3, name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, out)
    for layer in model.layers[:-1]:
        layer.trainable = False
    bn = model.get_layer("bn")
    bn.set_weights([w + 0.5 for w in bn.get_weights()])  # not the identity
    return model


def test_a_frozen_base_probe_computes_the_same_gradcam_from_cached_maps():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, size=(6, 12, 12, 3)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2])
    model = _frozen_base_under_a_head()
    full, fast = CamProbe(model, x, y, 4), CamProbe(model, x, y, 4, frozen=True)
    for epoch in (1, 2):  # the head changes between epochs; the base does not
        a, b = full.measure(epoch), fast.measure(epoch)
        assert a.layer == b.layer == "conv_b" and b.maps.shape == (4, 8, 8)
        np.testing.assert_allclose(b.maps, a.maps, atol=1e-5)
        assert b.maps.max() == 1.0  # a real map, not all zeros
        np.testing.assert_array_equal(b.predicted, a.predicted)
        np.testing.assert_allclose(b.confidence, a.confidence, rtol=1e-5)
        head = model.get_layer("head")
        head.set_weights([rng.normal(size=w.shape).astype("float32") for w in head.weights])


@pytest.mark.slow
def test_a_training_reports_each_layers_health_every_epoch(mnist_test_set):
    from cnnlib.training.trainer import HEALTH_IMAGES, TrainConfig, TrainingJob, TrainingSlots
    from tests.backend_workers import small_model

    x, y = mnist_test_set
    config = TrainConfig(batch_size=50, epochs=2, validation_split=0.2)
    job = TrainingJob(
        small_model,
        ((x[:500], y[:500]), (None, None)),
        config,
        slots=TrainingSlots(1),
        health=True,
        isolate=False,
    )
    p = job.start().wait(300)
    assert p.state == "finished", p.error
    assert [h.epoch for h in p.health] == [1, 2]
    last = p.health[-1]
    assert last.images == HEALTH_IMAGES
    assert [row.kind for row in last.layers] == ["Conv2D", "Dense"]
    assert all(row.grad_norm is not None and row.grad_norm > 0 for row in last.layers)
    conv = last.layers[0]
    assert conv.dead_share is not None and 0 <= conv.dead_share <= 1 and conv.units == 8
    kernel = job.model.get_layer(conv.name).get_weights()[0]
    assert conv.weights[0].sum() == kernel.size
    # Grad-CAM of the four fixed validation images, redrawn at the last epoch end: the
    # trained model's own maps for their true classes, and its own answers.
    from cnnlib.inspect.saliency import class_activation_map
    from cnnlib.training.trainer import CAM_IMAGES

    cams = p.cams
    assert cams is not None and cams.epoch == 2 and len(cams.maps) == CAM_IMAGES
    assert cams.layer == conv.name and cams.maps.shape[1:] == (14, 14)
    probabilities = job.model.predict(cams.images, verbose=0)
    np.testing.assert_array_equal(cams.predicted, probabilities.argmax(1))
    for image, label, cam in zip(cams.images, cams.labels, cams.maps, strict=True):
        expected = class_activation_map(job.model, image, int(label), layer=cams.layer)
        np.testing.assert_allclose(cam, expected, atol=1e-4)
