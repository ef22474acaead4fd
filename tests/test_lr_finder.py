"""cnnlib.training.lr_finder on a known problem, softmax regression on real Fashion-MNIST
pixels: the range test's curve has the textbook shape (flat near ln 10, falling, then
diverging) and the suggested rate trains better than a tiny or a huge one."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.mnist import read_idx
from cnnlib.training.lr_finder import lr_range_test, smoothed_losses


@pytest.fixture(scope="module")
def pixels(fashion_dir):
    """2,000 Fashion-MNIST images as (2000, 784) float32 in [0, 1], and their labels."""
    x = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")[:2000]
    y = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")[:2000]
    return x.reshape(len(x), -1).astype(np.float32) / 255, y.astype(np.int64)


def softmax_regression(seed: int = 0):
    keras.utils.set_random_seed(seed)  # the same starting weights whatever ran before
    inputs = keras.Input((784,))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))


def test_smoothing_is_fastais_bias_corrected_average():
    beta = 0.9
    a1 = (1 - beta) * 2.0
    a2 = beta * a1 + (1 - beta) * 1.0
    a3 = beta * a2 + (1 - beta) * 4.0
    expected = [a1 / (1 - beta), a2 / (1 - beta**2), a3 / (1 - beta**3)]
    np.testing.assert_allclose(smoothed_losses(np.array([2.0, 1.0, 4.0]), beta), expected)
    np.testing.assert_allclose(smoothed_losses(np.full(5, 3.0)), 3.0)


@pytest.mark.slow
def test_range_test_curve_is_flat_then_falls_then_diverges(pixels):
    x, y = pixels
    result = lr_range_test(softmax_regression(), x, y, steps=100, seed=0)
    n = len(result.rates)
    np.testing.assert_allclose(result.rates[0], 1e-7)
    np.testing.assert_allclose(np.diff(np.log(result.rates)), np.log(1e8) / 99)  # exponential
    flat = result.smoothed[: n // 4]  # rates up to ~1e-5: too small to move the weights
    assert np.ptp(flat) < 0.1 * flat.mean(), flat
    assert abs(flat.mean() - math.log(10)) < 0.5  # about chance level for 10 classes
    lowest = int(np.argmin(result.smoothed))
    assert n // 2 < lowest < n - 1
    assert result.smoothed[lowest] < 0.7 * flat.mean()  # falling: it learns
    assert result.diverged and n < 100  # then it blew up and the test stopped
    assert result.smoothed[-1] > result.smoothed[lowest] + 1.0
    assert result.suggested == pytest.approx(result.minimum_rate / 10)
    assert 1e-4 < result.suggested < 0.1
    assert result.rates[n // 10] <= result.steepest_rate <= result.minimum_rate


@pytest.mark.slow
def test_suggested_rate_trains_better_than_a_tiny_or_a_huge_one(pixels):
    x, y = pixels
    suggested = lr_range_test(softmax_regression(), x, y, seed=1).suggested
    losses = {}
    for name, rate in {"tiny": 1e-6, "suggested": suggested, "huge": 10.0}.items():
        model = softmax_regression()
        model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy")
        losses[name] = model.fit(x, y, epochs=1, batch_size=32, verbose=0).history["loss"][-1]
    assert losses["suggested"] < 0.6 * losses["tiny"], losses
    assert losses["suggested"] < 0.5 * losses["huge"] or not np.isfinite(losses["huge"]), losses


def test_bad_arguments(pixels):
    x, y = pixels
    with pytest.raises(InvalidArgumentError):
        lr_range_test(softmax_regression(), x, y[:-1])
    with pytest.raises(InvalidArgumentError):
        lr_range_test(softmax_regression(), x, y, start=1.0, end=0.1)
    with pytest.raises(InvalidArgumentError):
        lr_range_test(softmax_regression(), x, y.astype(float))


@pytest.mark.slow
def test_the_job_runs_the_range_test_of_a_transfer_recipe_on_the_backbones_features(
    fashion_dir,
):
    from cnnlib.training.lr_finder import LrFinderJob
    from cnnlib.training.transfer import OwnImagesRecipe
    from cnnlib.uploads.folders import example_archive, open_archive

    with open_archive(example_archive(10)) as folders:
        data = folders.split(32, validation_fraction=0.2)
        # random MobileNetV2 weights (weights=None): for tests and timing only
        recipe = OwnImagesRecipe(recipe="transfer", weights=None, image_size=32)
        job = LrFinderJob(data, recipe, isolate=False).start()
        p = job.wait(300)
        assert p.state == "finished", p.error
        assert p.stage == "range test" and p.images_total == 40  # 32 train + 8 validation
        test = job.result()
        assert test.suggested == pytest.approx(test.minimum_rate / 10)
        assert 10 <= len(test.losses) <= 100 and np.isfinite(test.losses[0])
        with pytest.raises(InvalidArgumentError):
            LrFinderJob(folders.split(32, validation_fraction=0.2), "scratch")


@pytest.mark.slow
def test_the_job_runs_where_the_backend_says_and_its_curve_comes_back(fashion_dir, backend):
    """On the child process (the default) and on a Ray actor (``CNNLAB_RAY_ADDRESS``): the
    range test runs away from the server, and its curve comes back whole: one loss per
    rate, rising rates, the suggestion a tenth of the rate at the lowest smoothed loss."""
    import os

    from cnnlib.training.lr_finder import LrFinderJob
    from cnnlib.training.transfer import OwnImagesRecipe
    from cnnlib.uploads.folders import example_archive, open_archive

    with open_archive(example_archive(10)) as folders:
        data = folders.split(32, validation_fraction=0.2)
        recipe = OwnImagesRecipe(recipe="scratch", image_size=32)
        job = LrFinderJob(data, recipe).start()
        p = job.wait(300)
    assert p.state == "finished", p.error
    assert p.process_id not in (0, os.getpid())
    assert bool(p.node) == (backend == "ray")
    test = job.result()
    assert len(test.rates) == len(test.losses) >= 10
    assert np.all(np.diff(test.rates) > 0) and np.isfinite(test.losses[0])
    assert test.suggested == pytest.approx(test.minimum_rate / 10)
