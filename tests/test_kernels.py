"""cnnlib.conv.kernels: the presets do what their descriptions say, and the kernel utilities."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.conv import kernels
from cnnlib.conv import ops as conv
from cnnlib.core.errors import InvalidArgumentError

REQUIRED = [
    "identity",
    "box blur",
    "gaussian blur",
    "sharpen",
    "vertical edges",
    "horizontal edges",
    "sobel x",
    "sobel y",
    "laplacian",
    "emboss",
    "outline",
]


def test_every_required_preset_exists_as_float32_2d():
    assert set(REQUIRED) <= set(kernels.PRESETS)
    for name, (k, what) in kernels.PRESETS.items():
        assert k.dtype == np.float32 and k.ndim == 2, name
        assert min(k.shape) >= 1 and max(k.shape) <= kernels.MAX_KERNEL_SIZE
        assert what.endswith(".")
        copy = kernels.preset(name)
        copy[0, 0] = 99
        assert kernels.PRESETS[name][0][0, 0] != 99  # preset() returns a copy


def test_presets_behave_as_described():
    rng = np.random.default_rng(0)
    x = rng.random((16, 16), dtype=np.float32)
    np.testing.assert_array_equal(conv.conv2d(x, kernels.preset("identity"), padding="same"), x)
    for blur in ("box blur", "gaussian blur"):
        assert kernels.preset(blur).sum() == pytest.approx(1.0, abs=1e-6)
    for zero_sum in (
        "vertical edges",
        "horizontal edges",
        "sobel x",
        "sobel y",
        "laplacian",
        "outline",
    ):
        assert kernels.preset(zero_sum).sum() == 0
    flat = np.full((8, 8), 0.5, np.float32)
    assert np.allclose(conv.conv2d(flat, kernels.preset("laplacian")), 0)
    # Brightness rising left to right: vertical edges respond (positively), horizontal do not.
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    assert np.all(conv.conv2d(ramp, kernels.preset("vertical edges")) > 0)
    assert np.allclose(conv.conv2d(ramp, kernels.preset("horizontal edges")), 0)
    assert np.all(conv.conv2d(ramp.T, kernels.preset("sobel y")) > 0)


def test_gaussian():
    g = kernels.gaussian(5, 1.0)
    assert g.shape == (5, 5) and g.sum() == pytest.approx(1.0, abs=1e-6)
    assert g[2, 2] == g.max() and np.allclose(g, g.T) and np.allclose(g, g[::-1])
    with pytest.raises(InvalidArgumentError):
        kernels.gaussian(0)


def test_random_normalize_resize():
    r = kernels.random_kernel((2, 5), seed=1)
    assert r.shape == (2, 5) and np.all(np.abs(r) <= 1)
    np.testing.assert_allclose(r * 10, np.round(r * 10), atol=1e-5)
    np.testing.assert_array_equal(r, kernels.random_kernel((2, 5), seed=1))
    with pytest.raises(InvalidArgumentError, match="1–7"):
        kernels.random_kernel(8)
    assert kernels.normalize(np.ones((3, 3))).sum() == pytest.approx(1.0)
    zero_sum = kernels.normalize(kernels.preset("sobel x"))
    assert np.abs(zero_sum).sum() == pytest.approx(1.0)
    with pytest.raises(InvalidArgumentError, match="all-zero"):
        kernels.normalize(np.zeros((3, 3)))
    k = np.arange(9, dtype=np.float32).reshape(3, 3)
    big = kernels.resize_kernel(k, (5, 5))
    assert big.shape == (5, 5) and big[1:4, 1:4].tolist() == k.tolist() and big.sum() == k.sum()
    np.testing.assert_array_equal(kernels.resize_kernel(big, (3, 3)), k)
    assert kernels.resize_kernel(k, (1, 1)).tolist() == [[4.0]]
    with pytest.raises(InvalidArgumentError):
        kernels.resize_kernel(k, (0, 3))
    with pytest.raises(InvalidArgumentError, match="Unknown kernel preset"):
        kernels.preset("blurry")
