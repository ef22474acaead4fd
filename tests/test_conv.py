"""cnnlib.conv.ops against TensorFlow: conv2d equals tf.nn.conv2d over a grid of kernel sizes,
paddings, strides, dilations, channels and filters; output_size equals TensorFlow's shape;
what TensorFlow rejects we reject; pooling equals tf.nn.max_pool2d / avg_pool2d.

TensorFlow is imported once per session (the ``tf`` fixture).

Stride > 1 together with dilation > 1: ``tf.nn.conv2d`` on CPU computes it (checked in the
grid below), and so does ``conv2d``; only Keras' ``Conv2D`` layer refuses that combination.

One TensorFlow quirk: when the dilated kernel is exactly one pixel longer than the padded
input (an output of size 0), TensorFlow's oneDNN CPU kernel returns a tensor of a wrong
shape instead of an error; ``conv2d`` raises a clear error for that case and every case
where the kernel does not fit (``test_kernel_one_too_long``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnlib.conv import ops as conv
from cnnlib.core.errors import InvalidArgumentError

RTOL, ATOL = 1e-4, 1e-5
#: Non-square inputs (H, W): small enough for a fast grid, large enough for 7×7 at dilation 3
#: under "same" padding and for some cases where the kernel does not fit ("valid").
SHAPES = [(13, 10), (9, 16)]
PADDINGS = ["valid", "same", 1, 3, "full"]


@pytest.fixture(scope="session")
def tf():
    import tensorflow as tf

    return tf


def _tf_padding(h, w, kh, kw, padding, stride, dilation):
    if padding in ("valid", "same"):
        return padding.upper()
    (pt, pb), (pl, pr) = (
        conv.pad_amounts(h, kh, padding=padding, stride=stride, dilation=dilation),
        conv.pad_amounts(w, kw, padding=padding, stride=stride, dilation=dilation),
    )
    return [[0, 0], [pt, pb], [pl, pr], [0, 0]]


def _tf_conv(tf, x, k4, padding, stride, dilation):
    h, w = x.shape[:2]
    pad = _tf_padding(h, w, k4.shape[0], k4.shape[1], padding, stride, dilation)
    return tf.nn.conv2d(x[None], k4, strides=stride, padding=pad, dilations=dilation).numpy()[0]


def _fits(n, k, padding, stride, dilation) -> bool:
    try:
        conv.output_size(n, k, padding=padding, stride=stride, dilation=dilation)
    except InvalidArgumentError:
        return False
    return True


@pytest.mark.parametrize("k", range(1, 8))
def test_conv2d_matches_tensorflow_over_the_grid(tf, k):
    """Kernel k×k (odd and even), every padding, stride 1–3, dilation 1–3, 1 or 3 channels,
    1 or 4 filters, two non-square inputs: same values (rtol 1e-4) and same shape."""
    rng = np.random.default_rng(k)
    compared = rejected = 0
    for (h, w), c, f in itertools.product(SHAPES, (1, 3), (1, 4)):
        x = rng.standard_normal((h, w, c)).astype(np.float32)
        k4 = rng.standard_normal((k, k, c, f)).astype(np.float32)
        for padding, s, d in itertools.product(PADDINGS, (1, 2, 3), (1, 2, 3)):
            case = f"x={x.shape} k={k4.shape} padding={padding} stride={s} dilation={d}"
            if not (_fits(h, k, padding, s, d) and _fits(w, k, padding, s, d)):
                with pytest.raises(InvalidArgumentError):
                    conv.conv2d(x, k4, padding=padding, stride=s, dilation=d)
                rejected += 1
                continue
            ours = conv.conv2d(x, k4, padding=padding, stride=s, dilation=d)
            theirs = _tf_conv(tf, x, k4, padding, s, d)
            expected_shape = (
                conv.output_size(h, k, padding=padding, stride=s, dilation=d),
                conv.output_size(w, k, padding=padding, stride=s, dilation=d),
                f,
            )
            assert ours.shape == theirs.shape == expected_shape, case
            assert ours.dtype == np.float32
            np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=case)
            compared += 1
    assert compared > 0
    if k >= 5:
        assert rejected > 0  # the grid reaches kernels that do not fit


@pytest.mark.parametrize(
    ("ksize", "stride", "dilation", "padding"),
    [
        ((1, 4), (1, 2), (2, 1), "valid"),
        ((2, 5), (2, 1), (1, 3), "same"),
        ((6, 3), (3, 2), (1, 2), (2, 1)),
        ((7, 2), (2, 3), (2, 2), "full"),
        ((4, 4), 2, (3, 1), (0, 3)),
    ],
)
def test_rectangular_kernels_and_pairs(tf, ksize, stride, dilation, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((17, 12, 3)).astype(np.float32)
    k4 = rng.standard_normal((*ksize, 3, 2)).astype(np.float32)
    ours = conv.conv2d(x, k4, padding=padding, stride=stride, dilation=dilation)
    sp = stride if isinstance(stride, tuple) else (stride, stride)
    dp = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    if isinstance(padding, tuple):
        pad = [[0, 0], [padding[0]] * 2, [padding[1]] * 2, [0, 0]]
    elif padding == "full":
        pad = [[0, 0]] + [[conv.effective_kernel_size(ksize[a], dp[a]) - 1] * 2 for a in (0, 1)]
        pad += [[0, 0]]
    else:
        pad = padding.upper()
    theirs = tf.nn.conv2d(x[None], k4, strides=sp, padding=pad, dilations=dp).numpy()[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_kernel_ranks_follow_conv2d_semantics():
    """(kh, kw) on RGB: one filter spanning the channels; (kh, kw, C) → 2-D; (…, F) → 3-D."""
    rng = np.random.default_rng(3)
    x = rng.random((8, 9, 3), dtype=np.float32)
    k2 = rng.standard_normal((3, 3)).astype(np.float32)
    k3 = np.repeat(k2[:, :, None], 3, axis=2)
    y2 = conv.conv2d(x, k2, padding="same")
    np.testing.assert_allclose(y2, conv.conv2d(x, k3, padding="same"), rtol=1e-6)
    assert y2.shape == (8, 9)
    np.testing.assert_allclose(
        y2, sum(conv.conv2d(x[:, :, c], k2, padding="same") for c in range(3)), rtol=1e-5
    )
    assert conv.conv2d(x, k3[..., None], padding="same").shape == (8, 9, 1)
    gray = x[:, :, 0]
    assert conv.conv2d(gray, k2).shape == (6, 7)


def test_cross_correlation_not_flipped():
    x = np.zeros((5, 5), np.float32)
    x[2, 2] = 1.0
    k = np.arange(9, dtype=np.float32).reshape(3, 3)
    # A unit impulse returns the kernel rotated 180° under cross-correlation.
    np.testing.assert_array_equal(conv.conv2d(x, k, padding="same")[1:4, 1:4], k[::-1, ::-1])


def test_output_size_and_pad_amounts_examples():
    assert conv.output_size(28, 3) == 26
    assert conv.output_size(5, 3, padding="valid") == 3
    assert conv.output_size(5, 3, padding="same", stride=2) == 3
    assert conv.output_size(5, 3, padding="full") == 7
    assert conv.output_size(7, 3, padding=1, stride=2, dilation=2) == 3
    assert conv.pad_amounts(6, 4, padding="same") == (1, 2)  # odd extra one after
    assert conv.pad_amounts(5, 3, padding="same", stride=2) == (1, 1)
    assert conv.pad_amounts(6, 3, padding="same", stride=2) == (0, 1)
    assert conv.dropped_cells(6, 3, stride=2) == 1
    assert conv.dropped_cells(7, 3, stride=2) == 0


def test_kernel_one_too_long(tf):
    """k_eff = padded + 1 (output size 0): we raise; TensorFlow's oneDNN kernel returns a
    tensor of the wrong shape instead of an error (see the module docstring)."""
    x = np.ones((1, 9, 11, 1), np.float32)
    k = np.ones((10, 3, 1, 2), np.float32)
    with pytest.raises(InvalidArgumentError, match="spans 10"):
        conv.conv2d(x[0], k)
    with pytest.raises(InvalidArgumentError):
        conv.output_size(9, 10)
    theirs = tf.nn.conv2d(x, k, strides=1, padding="VALID").numpy()
    # TensorFlow itself raises nothing: an empty map on some CPUs, a wrong shape on others.
    assert theirs.size == 0 or theirs.shape != (1, 0, 9, 2)


@pytest.mark.parametrize(
    ("name", "ours", "theirs"),
    [
        ("stride 0", {"stride": 0}, {"strides": 0}),
        ("dilation 0", {"dilation": 0}, {"dilations": 0}),
        ("negative padding", {"padding": -1}, {"padding": [[0, 0], [-1, -1], [0, 0], [0, 0]]}),
        ("kernel too long", {"kernel": np.ones((12, 3, 3, 1))}, {"k": np.ones((12, 3, 3, 1))}),
        ("dilated too long", {"dilation": 5}, {"dilations": 5}),
        ("channel mismatch", {"kernel": np.ones((3, 3, 2, 1))}, {"k": np.ones((3, 3, 2, 1))}),
    ],
)
def test_arguments_tensorflow_rejects_are_rejected(tf, name, ours, theirs):
    x = np.ones((9, 11, 3), np.float32)
    ours = {"kernel": np.ones((3, 3, 3, 1)), "padding": "valid", **ours}
    theirs = {"strides": 1, "padding": "VALID", "dilations": 1, **theirs}
    k_tf = np.asarray(theirs.pop("k", np.ones((3, 3, 3, 1))), np.float32)
    with pytest.raises(Exception):  # noqa: B017 — TensorFlow raises several types
        tf.nn.conv2d(x[None], k_tf, **theirs).numpy()
    kernel = ours.pop("kernel")
    with pytest.raises(ValueError, match=r"\S"):
        conv.conv2d(x, kernel, **ours)


@pytest.mark.parametrize(
    ("x", "kernel", "kwargs", "match"),
    [
        (np.ones((4, 4, 3, 1)), np.ones((3, 3)), {}, "2-D"),
        (np.ones((8, 8)), np.ones((3, 3, 1, 1, 1)), {}, "kernel must be"),
        (np.ones((8, 8)), np.full((3, 3), np.nan), {}, "NaN or infinite"),
        (np.ones((8, 8)), np.full((3, 3), np.inf), {}, "NaN or infinite"),
        (np.full((8, 8), np.nan), np.ones((3, 3)), {}, "image contains"),
        (np.ones((8, 8)), np.ones((3, 3)), {"stride": (1, 0)}, "stride"),
        (np.ones((8, 8)), np.ones((3, 3)), {"stride": True}, "bool"),
        (np.ones((8, 8)), np.ones((3, 3)), {"padding": "half"}, "Padding must be"),
        (np.ones((8, 8)), np.ones((0, 3)), {}, "empty"),
    ],
)
def test_bad_arguments_raise_friendly_errors(x, kernel, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        conv.conv2d(x, kernel, **kwargs)


@pytest.mark.parametrize("shape", [(9, 7), (10, 12, 3)])
@pytest.mark.parametrize(("pool", "stride"), [(2, None), (3, None), (2, 1), (3, 2)])
def test_pooling_matches_tensorflow(tf, shape, pool, stride):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    x4 = (x if x.ndim == 3 else x[:, :, None])[None]
    s = stride or pool
    tf_max = tf.nn.max_pool2d(x4, pool, s, "VALID").numpy()[0]
    tf_avg = tf.nn.avg_pool2d(x4, pool, s, "VALID").numpy()[0]
    if x.ndim == 2:
        tf_max, tf_avg = tf_max[:, :, 0], tf_avg[:, :, 0]
    np.testing.assert_array_equal(conv.max_pool2d(x, pool, stride), tf_max)
    np.testing.assert_allclose(conv.avg_pool2d(x, pool, stride), tf_avg, rtol=1e-6, atol=1e-6)


def test_relu_and_pool_errors(tf):
    x = np.array([[-1.5, 0.0], [2.0, -0.1]], np.float32)
    np.testing.assert_array_equal(conv.relu(x), tf.nn.relu(x).numpy())
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        conv.max_pool2d(np.ones((1, 5)), 2)
    with pytest.raises(InvalidArgumentError, match="Pooling needs"):
        conv.avg_pool2d(np.ones(5), 2)
