"""Property tests (hypothesis): conv2d against tf.nn.conv2d on random arguments, and
load_image on random and damaged bytes.

Examples are few and small (``max_examples`` modest, no deadline) so the file stays fast on
two cores; hypothesis keeps the failing examples it finds in its database.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlib.conv import ops as conv
from cnnlib.core.errors import InvalidArgumentError, InvalidImageError
from cnnlib.data import images

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


@st.composite
def conv_cases(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = draw(st.sampled_from(["valid", "same", "full", 0, 1, 2, 3]))
    stride = draw(st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(h, w, c)).astype(np.float32)
    kernel = rng.normal(size=(kh, kw, c, f)).astype(np.float32)
    return x, kernel, padding, stride, dilation


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


def _explicit(padding, kh, kw, dilation):
    """Explicit padding: 'valid' none, 'full' k_eff − 1 each side, or p zeros each side."""
    dh, dw = _pair(dilation)
    if padding == "full":
        ph, pw = dh * (kh - 1), dw * (kw - 1)
    else:
        ph = pw = 0 if padding == "valid" else padding
    return [[0, 0], [ph, ph], [pw, pw], [0, 0]]


@pytest.mark.slow
@SETTINGS
@given(case=conv_cases())
def test_conv2d_equals_tensorflow_or_raises_the_documented_error(tf, case):
    x, kernel, padding, stride, dilation = case
    kh, kw = kernel.shape[:2]
    try:
        ours = conv.conv2d(x, kernel, padding=padding, stride=stride, dilation=dilation)
    except InvalidArgumentError:
        # Documented: only when the dilated kernel is longer than the padded input.
        assert padding != "same"  # "same" always fits
        (dh, dw), pads = _pair(dilation), _explicit(padding, kh, kw, dilation)
        fits_h = x.shape[0] + 2 * pads[1][0] >= dh * (kh - 1) + 1
        fits_w = x.shape[1] + 2 * pads[2][0] >= dw * (kw - 1) + 1
        assert not (fits_h and fits_w)
        return
    pad = padding.upper() if padding in ("valid", "same") else _explicit(padding, kh, kw, dilation)
    theirs = tf.nn.conv2d(
        x[None], kernel, strides=_pair(stride), padding=pad, dilations=_pair(dilation)
    ).numpy()[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@SETTINGS
@given(case=conv_cases())
def test_same_padding_never_raises(case):
    x, kernel, _, stride, dilation = case
    out = conv.conv2d(x, kernel, padding="same", stride=stride, dilation=dilation)
    sh, sw = _pair(stride)
    assert out.shape == (-(-x.shape[0] // sh), -(-x.shape[1] // sw), kernel.shape[3])


def _valid_files() -> list[bytes]:
    """Small valid files in every accepted format (and an animated GIF)."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    files = []
    for fmt, kwargs in [
        ("PNG", {}),
        ("JPEG", {"quality": 80}),
        ("WEBP", {}),
        ("BMP", {}),
        ("GIF", {"save_all": True, "append_images": [img.rotate(90)]}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ]:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kwargs)
        files.append(buf.getvalue())
    return files


VALID = _valid_files()


def _load_or_refuse(data: bytes) -> None:
    """The property: an RGB image, or InvalidImageError; nothing else escapes."""
    try:
        img = images.load_image(data)
    except InvalidImageError as err:
        assert str(err)
        return
    assert img.mode == "RGB" and img.width >= 1 and img.height >= 1


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused_plainly(data):
    _load_or_refuse(data)


@settings(max_examples=150, deadline=None)
@given(which=st.integers(0, len(VALID) - 1), cut=st.floats(0, 1))
def test_truncated_files_are_loaded_or_refused_plainly(which, cut):
    data = VALID[which]
    _load_or_refuse(data[: int(len(data) * cut)])


@settings(max_examples=150, deadline=None)
@given(
    which=st.integers(0, len(VALID) - 1),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
)
def test_corrupted_files_are_loaded_or_refused_plainly(which, edits):
    data = bytearray(VALID[which])
    for where, value in edits:
        data[int(where * len(data))] = value
    _load_or_refuse(bytes(data))
