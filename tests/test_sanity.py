"""cnnlib.inspect.sanity: cascading randomisation (Adebayo et al. 2018) on a clone.

Fast tests use the known-region model of test_saliency; the slow test trains the app's
default MNIST convnet briefly on the real MNIST test set and checks the paper's finding:
gradients and Grad-CAM decorrelate from the trained model's map as the layers are
re-initialised, an edge detector (which ignores the model) does not.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlib.saliency
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import blocks, saliency, sanity
from tests.test_saliency import SIZE, _build


@pytest.fixture(scope="module")
def model():
    return _build("softmax")


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(0)
    img = rng.uniform(-0.05, 0.05, size=(SIZE, SIZE, 1)).astype(np.float32)
    img[4:12, 12:20] = 1.0
    img[14:22, 2:10] = -1.0
    return img


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("method", ["gradients", "gradcam", "scorecam", "edges"])
def test_the_shared_model_is_never_modified(model, x, method):
    before = _weights(model)
    functions = saliency.cached_function_count(model)
    result = cnnlib.saliency.sanity_check(model, x, 0, method=method)
    for a, b in zip(before, model.get_weights(), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()  # bit-identical
    assert saliency.cached_function_count(model) == functions  # the clone has its own
    assert result.layers == (("predictions",), ("target",), (model.layers[0].name,))
    assert len(result.maps) == 3 and result.rank_correlation.shape == result.ssim.shape == (3,)
    for m in result.maps:
        assert m.shape == (SIZE, SIZE) and m.dtype == np.float32 and 0 <= m.min() <= m.max() <= 1
    np.testing.assert_allclose(
        result.original,
        saliency.saliency_map(model, x, 0, method=method)
        if method != "edges"
        else sanity.edge_map(x),
        atol=1e-6,
    )


def test_maps_change_once_the_top_layer_is_random_but_edges_do_not(model, x):
    grads = sanity.sanity_check(model, x, 0, method="gradients", steps=1)
    assert grads.steps == 1 and grads.layers == (("predictions",),)
    assert grads.rank_correlation[0] < 0.9
    edges = sanity.sanity_check(model, x, 0, method="edges")
    np.testing.assert_allclose(edges.rank_correlation, 1.0)
    np.testing.assert_allclose(edges.ssim, 1.0)
    assert edges.label == "Edge detector (ignores the model)"


@pytest.mark.slow
def test_the_same_seed_gives_the_same_cascade(model, x):
    a = sanity.sanity_check(model, x, 0, method="gradients", seed=3)
    b = sanity.sanity_check(model, x, 0, method="gradients", seed=3)
    c = sanity.sanity_check(model, x, 0, method="gradients", seed=4)
    for m, n in zip(a.maps, b.maps, strict=True):
        np.testing.assert_array_equal(m, n)
    assert not all(np.array_equal(m, n) for m, n in zip(a.maps, c.maps, strict=True))


def test_rank_correlation_by_hand():
    # Spearman: 1 − 6 Σ d² / (n (n² − 1)); ranks 1 2 3 4 vs 1 3 2 4: Σ d² = 2.
    assert sanity.rank_correlation(np.array([1, 2, 3, 4]), np.array([10, 30, 20, 40])) == (
        pytest.approx(1 - 6 * 2 / (4 * 15))
    )
    assert sanity.rank_correlation(np.arange(9), -np.arange(9)) == pytest.approx(-1)
    # Ties get their mean rank: a = (1, 1, 2) → ranks (1.5, 1.5, 3); b = (1, 2, 3).
    ra, rb = np.array([1.5, 1.5, 3]), np.array([1, 2, 3])
    pearson = np.corrcoef(ra, rb)[0, 1]
    assert sanity.rank_correlation(np.array([1, 1, 2]), np.array([1, 2, 3])) == (
        pytest.approx(pearson)
    )
    assert sanity.rank_correlation(np.zeros(5), np.zeros(5)) == 1.0
    assert sanity.rank_correlation(np.zeros(5), np.arange(5)) == 0.0


def test_ssim():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(16, 16))
    assert sanity.structural_similarity(a, a) == pytest.approx(1.0)
    assert sanity.structural_similarity(a, rng.uniform(size=(16, 16))) < 0.3
    assert sanity.structural_similarity(a[:5, :5], a[:5, :5]) == pytest.approx(1.0)  # window 5
    with pytest.raises(InvalidArgumentError):
        sanity.structural_similarity(a, a[:8])


def test_reinitialise_draws_from_the_layers_initializers():
    import keras

    layer = keras.layers.Dense(50, bias_initializer="ones")
    layer.build((None, 30))
    layer.set_weights([np.full((30, 50), 9.0, np.float32), np.full(50, 9.0, np.float32)])
    sanity._reinitialise(layer, np.random.SeedSequence(0))
    kernel, bias = layer.get_weights()
    limit = np.sqrt(6 / (30 + 50))  # Glorot uniform
    assert np.abs(kernel).max() <= limit and kernel.std() == pytest.approx(limit / np.sqrt(3), 0.1)
    np.testing.assert_array_equal(bias, 1.0)
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4))
    bn.set_weights([np.full(4, 3.0, np.float32)] * 4)
    sanity._reinitialise(bn, np.random.SeedSequence(0))
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(
        np.stack([gamma, beta, mean, var]), [[1] * 4, [0] * 4, [0] * 4, [1] * 4]
    )


def test_blocks_are_randomised_together_and_nested_models_are_reached():
    import keras

    inner_in = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(2, 3, name="block1_conv1")(inner_in)
    h = keras.layers.Conv2D(2, 3, name="block1_conv2")(h)
    h = keras.layers.MaxPooling2D(name="block1_pool")(h)
    h = keras.layers.Conv2D(3, 3, name="block2_conv1")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Rescaling(1 / 255),
            backbone,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="predictions"),
        ]
    )
    assert sanity.randomisation_steps(model) == [
        ("predictions",),
        ("block2_conv1",),
        ("block1_conv1", "block1_conv2"),
    ]
    before = _weights(model)
    img = np.random.default_rng(0).uniform(0, 255, (12, 12, 1)).astype(np.float32)
    result = sanity.sanity_check(model, img, 1, method="smoothgrad", options={"samples": 2})
    assert result.steps == 3
    for a, b in zip(before, model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_block_names():
    assert blocks.block_of("conv3_block2_1_conv") == "conv3_block2"
    assert blocks.block_of("conv5_block3_out") == "conv5_block3"
    assert blocks.block_of("block4_conv1") == "block4"
    assert blocks.block_of("block_13_expand") == "block_13"
    for alone in ("conv1_conv", "predictions", "conv2d_1", "myblock1_conv"):
        assert blocks.block_of(alone) == alone


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lime"}, "Unknown method"),
        ({"method": "gradients", "steps": 0}, "steps"),
        ({"method": "gradients", "steps": 4}, "steps"),
        ({"method": "edges", "options": {"samples": 2}}, "no options"),
        ({"method": "smoothgrad", "options": {"steps": 2}}, "no option"),
        ({"method": "gradients", "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_refused_before_cloning(model, x, kwargs, match, monkeypatch):
    monkeypatch.setattr(sanity, "_clone", lambda m: pytest.fail("cloned before checking"))
    with pytest.raises(InvalidArgumentError, match=match):
        sanity.sanity_check(model, x, 0, **kwargs)
    with pytest.raises(InvalidArgumentError, match="from 0 to 2"):
        sanity.sanity_check(model, x, 3, method="gradients")


# ---------------------------------------------------------------- a trained MNIST convnet

#: Test digits the maps are drawn for (not trained on), and how many.
CHECKED = slice(9000, 9008)


@pytest.fixture(scope="module")
def trained(mnist_test_set):
    """The app's default MNIST convnet, one epoch on the first 9,000 test digits (about 95 %
    on the other 1,000)."""
    import keras

    from cnnlib.models import build_fast_convnet

    digits, labels = mnist_test_set
    x = digits[:, :, :, None].astype(np.float32)
    y = labels.astype(np.int64)
    keras.utils.set_random_seed(0)
    model = build_fast_convnet(seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:9000], y[:9000], epochs=1, batch_size=64, verbose=0)
    accuracy = model.evaluate(x[9000:], y[9000:], verbose=0)[1]
    assert accuracy > 0.9
    return model, x[CHECKED], y[CHECKED]


@pytest.mark.slow
def test_trained_mnist_maps_decorrelate_and_edges_do_not(trained):
    """Mean over 8 held-out digits of each step's rank correlation with the trained map:
    below 0.5 by the last step for gradients and Grad-CAM (Adebayo et al.'s Fig. 2); an edge
    detector's stays 1."""
    model, xs, ys = trained
    before = _weights(model)
    last = {}
    for method in ("gradients", "gradcam", "edges"):
        rc = np.array(
            [
                sanity.sanity_check(model, img, int(cls), method=method).rank_correlation
                for img, cls in zip(xs, ys, strict=True)
            ]
        )
        last[method] = rc.mean(axis=0)[-1]
    assert last["gradients"] < 0.5 and last["gradcam"] < 0.5, last
    assert last["edges"] >= 0.9
    for a, b in zip(before, model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
