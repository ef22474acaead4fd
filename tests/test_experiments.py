"""cnnlib.training.experiments: shifting digits, accuracy against shift, the experiment."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.experiments import (
    TranslationExperiment,
    shift_images,
    shifted_accuracy,
    shifted_test_set,
)


def reference_shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Pixel-by-pixel reference: out[r, c] = image[r - dy, c - dx] when inside, else 0."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    for r in range(height):
        for c in range(width):
            if 0 <= r - dy < height and 0 <= c - dx < width:
                out[r, c] = image[r - dy, c - dx]
    return out


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, 0), (0, -3), (-1, 4), (5, 5), (-6, -2)])
def test_shift_images_matches_the_pixel_reference(dy, dx):
    x = np.random.default_rng(0).integers(1, 256, size=(3, 9, 11), dtype=np.uint8)
    shifted = shift_images(x, dy, dx)
    assert shifted.shape == x.shape and shifted.dtype == x.dtype
    for i in range(3):
        np.testing.assert_array_equal(shifted[i], reference_shift(x[i], dy, dx))


def test_shift_out_of_frame_gives_background_and_channels_are_kept():
    x = np.ones((2, 28, 28, 1), dtype=np.float32)
    assert not shift_images(x, 28, 0).any()
    shifted = shift_images(x, 0, 3)
    assert shifted.shape == (2, 28, 28, 1)
    assert not shifted[:, :, :3].any() and shifted[:, :, 3:].all()


def test_shifted_test_set_directions():
    x = np.zeros((200, 28, 28), dtype=np.uint8)
    x[:, 14, 14] = 255
    np.testing.assert_array_equal(shifted_test_set(x, 3, direction="right")[:, 14, 17], 255)
    np.testing.assert_array_equal(shifted_test_set(x, 3, direction="up")[:, 11, 14], 255)
    moved = shifted_test_set(x, 3, seed=5)
    again = shifted_test_set(x, 3, seed=5)
    np.testing.assert_array_equal(moved, again)  # seeded: both models see the same set
    positions = {tuple(np.argwhere(m)[0]) for m in moved}
    assert positions == {(14, 17), (14, 11), (17, 14), (11, 14)}  # all four directions
    np.testing.assert_array_equal(shifted_test_set(x, 0), x)
    with pytest.raises(InvalidArgumentError):
        shifted_test_set(x, -1)
    with pytest.raises(InvalidArgumentError):
        shifted_test_set(x, 1, direction="sideways")


class ColumnReader:
    """A stand-in model: predicts class = column of the brightest pixel // 3 (columns 0–29)."""

    output_shape = (None, 10)

    def predict(self, x, batch_size=None, verbose=0):
        columns = x.reshape(len(x), -1).argmax(axis=1) % x.shape[2]
        probs = np.zeros((len(x), 10), dtype=np.float32)
        probs[np.arange(len(x)), np.minimum(columns // 3, 9)] = 1.0
        return probs


def test_shifted_accuracy_by_hand():
    x = np.zeros((10, 28, 28), dtype=np.uint8)
    y = np.arange(10)
    for label in range(10):
        x[label, 5, min(3 * label + 1, 27)] = 255
    # Right by 1: columns 3k+1 → 3k+2 keep their class, but digit 9 (column 27) leaves the
    # frame (blank → column 0 → class 0): 9/10. Right by 2: 3k+1 → 3k+3, every class changes.
    accuracies = shifted_accuracy(ColumnReader(), x, y, [0, 1, 2], direction="right")
    assert accuracies == [1.0, 0.9, 0.0]


@pytest.mark.slow
def test_experiment_trains_both_models_and_measures_every_shift(mnist_test_set):
    keras = pytest.importorskip("keras")
    from cnnlib.training.trainer import TrainConfig, TrainingSlots

    x, y = mnist_test_set

    def dense(seed=None):
        init = keras.initializers.GlorotUniform(seed=seed)
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Rescaling(1 / 255),  # models take raw pixels
                keras.layers.Flatten(),
                keras.layers.Dense(10, "softmax", kernel_initializer=init),
            ]
        )

    def conv(seed=None):
        init = keras.initializers.GlorotUniform(seed=seed)
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=init),
                keras.layers.MaxPooling2D(2),
                keras.layers.Flatten(),
                keras.layers.Dense(10, "softmax", kernel_initializer=init),
            ]
        )

    config = TrainConfig(batch_size=64, epochs=1, validation_split=0.0, learning_rate=3e-3)
    experiment = TranslationExperiment(
        {"Dense": dense, "Convnet": conv},
        ((x[:1500], y[:1500]), (x[5000:], y[5000:])),
        config,
        shifts=(0, 2, 6),
        test_size=400,
        slots=TrainingSlots(1),
    ).start()
    progress = experiment.wait(timeout=240)
    assert progress.state == "finished", progress.error
    result = progress.result
    assert result.shifts == (0, 2, 6) and result.test_size == 400
    assert set(result.accuracies) == {"Dense", "Convnet"}
    for name, accuracies in result.accuracies.items():
        assert len(accuracies) == 3
        assert accuracies[0] > 0.6, name  # trained on real digits: far above chance
        assert accuracies[2] < accuracies[0], name  # a 6-pixel shift hurts
        # The unshifted accuracy is the job's own test accuracy on the same 400 digits.
        assert accuracies[0] == pytest.approx(progress.test_accuracy[name], abs=1e-6)
    assert result.parameters["Dense"] == 7850


@pytest.mark.slow
def test_experiment_stop_ends_it_without_a_result(mnist_test_set, monkeypatch):
    pytest.importorskip("keras")
    from cnnlib.training import task_process

    # Stopped before its first batch: on a loaded machine the training's process may need
    # longer than the usual grace to start and see the stop.
    monkeypatch.setattr(task_process, "STOP_GRACE_SECONDS", 600.0)
    from cnnlib.models import build_dense_baseline
    from cnnlib.training.trainer import TrainConfig, TrainingSlots

    x, y = (a[:3000] for a in mnist_test_set)
    experiment = TranslationExperiment(
        {"Dense": build_dense_baseline, "Dense again": build_dense_baseline},
        ((x, y), (x[:200], y[:200])),
        TrainConfig(batch_size=16, epochs=50),
        slots=TrainingSlots(1),
    ).start()
    experiment.stop()
    progress = experiment.wait(timeout=60)
    assert progress.state == "stopped" and progress.result is None
    assert progress.training is None or progress.training.state == "stopped"


def test_experiment_arguments_are_checked():
    with pytest.raises(InvalidArgumentError):
        TranslationExperiment({}, None, None)
    with pytest.raises(InvalidArgumentError):
        TranslationExperiment({"a": object}, None, None, shifts=(-1,))
    with pytest.raises(InvalidArgumentError):
        TranslationExperiment({"a": object}, None, None, direction="diagonal")
