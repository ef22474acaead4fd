"""cnnlib.data.training_data: the stratified seeded split and the tf.data batches of ArrayData."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.training_data import ArrayData, TrainingData, stratified_sample

NAMES = [f"class {i}" for i in range(4)]


def unbalanced(n_per_class=(500, 300, 150, 50)):
    """Images whose every pixel holds the image's index (so batches can be traced back)."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    y = y[np.random.default_rng(1).permutation(len(y))]
    x = (np.arange(len(y))[:, None, None] % 256 * np.ones((1, 4, 3))).astype(np.uint8)
    ids = np.arange(len(y), dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 3, 1))
    return x, y, ids.astype(np.float32)


def test_the_validation_split_is_stratified_and_seeded():
    x, y, _ = unbalanced()
    data = ArrayData.from_arrays(x, y, class_names=NAMES, validation_split=0.2, seed=3)
    assert isinstance(data, TrainingData)
    assert data.size("train") == 800 and data.size("validation") == 200
    assert data.size("test") == 0 and data.counts("test") == dict.fromkeys(NAMES, 0)
    # Every class keeps its share: 20 % of 500, 300, 150, 50.
    assert data.counts("validation") == dict(zip(NAMES, [100, 60, 30, 10], strict=True))
    assert data.counts("train") == dict(zip(NAMES, [400, 240, 120, 40], strict=True))
    again = ArrayData.from_arrays(x, y, class_names=NAMES, validation_split=0.2, seed=3)
    other = ArrayData.from_arrays(x, y, class_names=NAMES, validation_split=0.2, seed=4)
    np.testing.assert_array_equal(again.arrays["validation"][0], data.arrays["validation"][0])
    assert not np.array_equal(other.arrays["validation"][0], data.arrays["validation"][0])
    assert data.input_shape == (4, 3, 1) and data.class_names == tuple(NAMES)


def test_a_training_subset_is_stratified_too():
    x, y, _ = unbalanced()
    data = ArrayData.from_arrays(
        x, y, class_names=NAMES, train_size=100, validation_split=0.1, seed=0
    )
    assert data.size("train") + data.size("validation") == 100
    assert data.counts("train") == dict(zip(NAMES, [45, 27, 13, 5], strict=True))
    assert sum(data.counts("validation").values()) == 10


def test_largest_remainder_rounding_keeps_the_exact_count():
    y = np.array([0] * 7 + [1] * 7 + [2] * 7)
    picked = stratified_sample(y, 10, np.random.default_rng(0))
    assert len(picked) == 10 and len(set(picked)) == 10
    assert sorted(np.bincount(y[picked])) == [3, 3, 4]


def test_arrays_are_kept_once_and_read_only():
    x, y, _ = unbalanced()
    data = ArrayData.from_arrays(x, y, x[:20], y[:20], class_names=NAMES)
    for images, labels in data.arrays.values():
        assert not images.flags.writeable and not labels.flags.writeable
        assert images.dtype == np.uint8 and labels.dtype == np.int32
    with pytest.raises(ValueError):
        data.arrays["train"][0][0, 0, 0, 0] = 1
    np.testing.assert_array_equal(data.arrays["test"][0][..., 0], x[:20])  # test kept in order


def test_each_epoch_is_a_fresh_order_that_depends_only_on_seed_and_epoch():
    _, y, ids = unbalanced()
    data = ArrayData.from_arrays(ids, y, class_names=NAMES, validation_split=0.0)
    train_ids = data.arrays["train"][0][:, 0, 0, 0]

    def order(epochs, seed):
        batches = list(data.batches("train", 64, epochs=epochs, seed=seed).as_numpy_iterator())
        assert all(b[1].dtype == np.int32 and b[0].shape[1:] == (4, 3, 1) for b in batches)
        return np.concatenate([b[0][:, 0, 0, 0] for b in batches])

    two = order(2, seed=5)
    first, second = two[:1000], two[1000:]
    for epoch in (first, second):  # each epoch shows every training image once
        np.testing.assert_array_equal(np.sort(epoch), np.sort(train_ids))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(order(1, seed=5), first)  # same (seed, epoch), same order
    assert not np.array_equal(order(1, seed=6), first)
    # Labels travel with their images.
    labels = np.concatenate([b[1] for b in data.batches("train", 64, seed=5)])
    np.testing.assert_array_equal(labels, y[first.astype(int)])


def test_other_splits_are_one_pass_in_stored_order():
    x, y, _ = unbalanced()
    data = ArrayData.from_arrays(x, y, x[:70], y[:70], class_names=NAMES)
    batches = list(data.batches("test", 32, epochs=3).as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [32, 32, 6]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches])[..., 0], x[:70])
    assert batches[0][0].dtype == np.uint8  # raw pixels: the model rescales


def test_the_older_tuple_form_and_bad_inputs():
    x, y, _ = unbalanced()
    data = ArrayData.from_tuple(((x, y), (None, None)), validation_split=0.0)
    assert data.class_names == ("0", "1", "2", "3") and data.size("validation") == 0
    with pytest.raises(InvalidArgumentError, match="only 2 classes"):
        ArrayData.from_arrays(x, y, class_names=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="none would be left"):
        ArrayData.from_arrays(x[:1], y[:1], class_names=NAMES, validation_split=0.5)
    with pytest.raises(InvalidArgumentError, match="same size"):
        ArrayData.from_arrays(x, y, x[:5, :2], y[:5], class_names=NAMES)
    with pytest.raises(InvalidArgumentError, match="Unknown split"):
        data.size("holdout")
    with pytest.raises(InvalidArgumentError, match="no validation images"):
        data.batches("validation", 8)
    with pytest.raises(InvalidArgumentError, match="TrainingData"):
        ArrayData.from_tuple("not data")
