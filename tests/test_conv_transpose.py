"""cnnlib.conv.ops.conv2d_transpose against tf.nn.conv2d_transpose over a grid of sizes, kernels,
strides and paddings; transpose_output_size against TensorFlow's shapes; the TransposeGrid's
overlap counts against a brute-force count.

TensorFlow's ``output_shape`` argument is what we compute with ``transpose_output_size``:
(i − 1)·s + k for "VALID", i·s for "SAME", (i − 1)·s + k − 2p for explicit padding p (TF's
explicit padding list [[0, 0], [p, p], [p, p], [0, 0]]).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnlib.conv import ops as conv
from cnnlib.core.errors import InvalidArgumentError

SHAPES = [(5, 4), (3, 7)]
KERNELS = [(1, 1), (2, 3), (3, 3), (4, 2), (5, 5)]
STRIDES = [1, 2, 3]
PADDINGS = ["valid", "same", 1]


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _tf_transpose(tf, x, k4, stride, padding, out_hw):
    """tf.nn.conv2d_transpose of (H, W, C) with a (kh, kw, F, C) kernel → (H′, W′, F)."""
    if isinstance(padding, int):
        tf_padding = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    else:
        tf_padding = padding.upper()
    y = tf.nn.conv2d_transpose(
        x[None].astype(np.float32),
        k4.astype(np.float32),
        output_shape=[1, *out_hw, k4.shape[2]],
        strides=[1, *stride, 1],
        padding=tf_padding,
    )
    return y.numpy()[0]


@pytest.mark.parametrize(("shape", "ksize"), itertools.product(SHAPES, KERNELS))
def test_equals_tf_conv2d_transpose(tf, shape, ksize):
    rng = np.random.default_rng(hash((shape, ksize)) % 2**32)
    x = rng.normal(size=(*shape, 2)).astype(np.float32)
    k4 = rng.normal(size=(*ksize, 3, 2)).astype(np.float32)
    checked = 0
    for stride, padding in itertools.product(STRIDES, PADDINGS):
        for sh, sw in ((stride, stride), (stride, 1)):
            try:
                out_hw = (
                    conv.transpose_output_size(shape[0], ksize[0], stride=sh, padding=padding),
                    conv.transpose_output_size(shape[1], ksize[1], stride=sw, padding=padding),
                )
            except InvalidArgumentError:
                assert isinstance(padding, int)  # cropping more than the output holds
                continue
            ours = conv.conv2d_transpose(x, k4, stride=(sh, sw), padding=padding)
            theirs = _tf_transpose(tf, x, k4, (sh, sw), padding, out_hw)
            assert ours.shape == theirs.shape == (*out_hw, 3)
            assert ours.dtype == np.float32
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked >= 12


def test_two_d_kernel_on_a_two_d_image(tf):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    k = np.array([[1, -1, 2], [0, 3, 1]], dtype=np.float32)
    ours = conv.conv2d_transpose(x, k, stride=2)
    assert ours.shape == (5 + 1, 7 + 2)
    theirs = _tf_transpose(tf, x[:, :, None], k[:, :, None, None], (2, 2), "valid", ours.shape)
    np.testing.assert_allclose(ours, theirs[:, :, 0], rtol=1e-6)


def test_is_the_gradient_of_conv2d(tf):
    """<conv2d(y, K), x> = <y, conv2d_transpose(x, K)>: the transpose is the adjoint."""
    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, 3)).astype(np.float64)
    x = rng.normal(size=(4, 4))
    y = rng.normal(size=(conv.transpose_output_size(4, 3, stride=2), 9))
    y = y[:, : conv.transpose_output_size(4, 3, stride=2)]
    lhs = float((conv.conv2d(y, k, stride=2) * x).sum())
    rhs = float((y * conv.conv2d_transpose(x, k, stride=2)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)


@pytest.mark.parametrize(
    ("i", "k", "s", "padding", "expected"),
    [
        (4, 3, 2, "valid", 9),  # (4 − 1)·2 + 3
        (4, 3, 2, "same", 8),  # 4·2
        (4, 3, 2, 1, 7),  # (4 − 1)·2 + 3 − 2
        (5, 1, 3, "same", 15),  # k < s: zeros appended
        (1, 1, 1, "valid", 1),
    ],
)
def test_transpose_output_size(i, k, s, padding, expected):
    assert conv.transpose_output_size(i, k, stride=s, padding=padding) == expected


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidArgumentError, match="padding"):
        conv.transpose_output_size(4, 3, stride=1, padding="full")
    with pytest.raises(InvalidArgumentError, match="leaves nothing"):
        conv.transpose_output_size(1, 2, stride=1, padding=1)
    with pytest.raises(InvalidArgumentError, match="one-channel"):
        conv.conv2d_transpose(np.zeros((3, 3, 2)), np.ones((2, 2)))
    with pytest.raises(InvalidArgumentError, match="C comes last"):
        conv.conv2d_transpose(np.zeros((3, 3, 2)), np.ones((2, 2, 2, 3)))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        conv.conv2d_transpose(np.full((3, 3), np.nan), np.ones((2, 2)))
    with pytest.raises(InvalidArgumentError, match="stride"):
        conv.conv2d_transpose(np.zeros((3, 3)), np.ones((2, 2)), stride=0)


@pytest.mark.parametrize(
    ("ksize", "stride", "padding"), [((3, 3), 2, "valid"), ((4, 4), 2, "same"), ((3, 2), 3, 1)]
)
def test_grid_counts_and_feeds_equal_brute_force(ksize, stride, padding):
    shape = (4, 5)
    grid = conv.transpose_grid(shape, ksize, stride=stride, padding=padding)
    counts = np.zeros(grid.output_shape, dtype=np.int64)
    for r, c in itertools.product(range(shape[0]), range(shape[1])):
        rows, cols = grid.feeds(r, c)
        # Brute force: tap (a, b) of cell (r, c) lands at (r·s + a − crop, c·s + b − crop).
        expected_rows = sorted(
            {r * stride + a - grid.crop[0] for a in range(ksize[0])}
            & set(range(grid.output_shape[0]))
        )
        expected_cols = sorted(
            {c * stride + b - grid.crop[1] for b in range(ksize[1])}
            & set(range(grid.output_shape[1]))
        )
        assert list(rows) == expected_rows and list(cols) == expected_cols
        counts[np.ix_(list(rows), list(cols))] += 1
    np.testing.assert_array_equal(grid.counts, counts)


def test_checkerboard_only_when_kernel_is_not_a_multiple_of_stride():
    uneven = conv.transpose_grid((6, 6), 3, stride=2)
    even = conv.transpose_grid((6, 6), 4, stride=2)
    assert uneven.uneven and not even.uneven
    # Interior counts alternate 1, 2 (3×3 kernel, stride 2) but are constant 4 for 4×4.
    assert set(np.unique(uneven.counts[2:-2, 2:-2])) == {1, 2, 4}
    assert set(np.unique(even.counts[2:-2, 2:-2])) == {4}
    with pytest.raises(InvalidArgumentError, match="outside"):
        uneven.feeds(6, 0)
