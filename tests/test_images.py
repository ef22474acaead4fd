"""cnnlib.images.load_image on good and bad uploads, and the array conversions.

The uploads (``tests/uploads.py``) are built in memory; the page tests use them too.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnlib import images
from cnnlib.errors import InvalidImageError
from tests.uploads import bad_uploads, encode, odd_but_valid_uploads, photo


@pytest.mark.parametrize("name", list(bad_uploads()))
def test_bad_uploads_raise_a_friendly_error(name):
    data, words = bad_uploads()[name]
    with pytest.raises(InvalidImageError, match=words) as err:
        images.load_image(data, name=f"“{name}”")
    assert name in str(err.value)
    assert isinstance(err.value, ValueError)


def test_zero_byte_file_object():
    with pytest.raises(InvalidImageError, match="empty"):
        images.load_image(io.BytesIO(b""))


@pytest.mark.parametrize("name", list(odd_but_valid_uploads()))
def test_odd_uploads_load_as_rgb(name):
    data, size = odd_but_valid_uploads()[name]
    img = images.load_image(io.BytesIO(data))
    assert img.mode == "RGB" and img.size == size


def test_what_the_odd_uploads_look_like():
    odd = {k: images.load_image(v[0]) for k, v in odd_but_valid_uploads().items()}
    # 16-bit: the full 0–65535 range maps onto 0–255.
    deep = np.asarray(odd["deep.png"])[:, :, 0]
    assert deep.max() == round(64511 / 65535 * 255) and deep.min() == 0
    # Palette transparency is composited on white; the opaque half stays blue.
    pal = np.asarray(odd["palette.png"])
    assert tuple(pal[5, 25]) == (255, 255, 255) and tuple(pal[5, 5]) == (0, 0, 255)
    # Animated GIF: its first frame.
    assert tuple(np.asarray(odd["animated.gif"])[0, 0]) == (255, 0, 0)
    # CMYK comes back close to the original colours.
    diff = np.abs(np.asarray(odd["cmyk.jpg"], np.int16) - np.asarray(photo(), np.int16))
    assert diff.mean() < 12
    # EXIF orientation 6: the 40×20 landscape is shown as a 20×40 portrait; its top-left
    # corner is the original bottom-left.
    rot = np.asarray(odd["rotated.jpg"], np.int16)
    assert abs(int(rot[0, 0, 1]) - 255) < 20
    assert tuple(np.asarray(odd["dot.png"])[0, 0]) == (10, 200, 30)


def test_rgba_and_limits():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert tuple(np.asarray(images.load_image(encode(rgba)))[0, 0]) == (255, 255, 255)
    with pytest.raises(InvalidImageError, match="larger than"):
        images.load_image(b"x" * 2_000_000, max_bytes=1_000_000)
    with pytest.raises(InvalidImageError, match="over the limit"):
        images.load_image(encode(photo((100, 100))), max_pixels=5000)
    with pytest.raises(InvalidImageError, match="Expected image bytes"):
        images.load_image(12345)  # type: ignore[arg-type]


def test_downscale_and_conversions():
    img = photo((600, 400))
    small = images.downscale(img, 256)
    assert small.size == (256, 171)
    assert images.downscale(img, 1000) is img
    gray = images.to_array(small, grayscale=True)
    rgb = images.to_array(small)
    assert gray.shape == (171, 256) and rgb.shape == (171, 256, 3)
    assert gray.dtype == rgb.dtype == np.float32
    assert gray.min() >= 0.0 and rgb.max() <= 1.0
    back = images.to_image(rgb)
    assert np.array_equal(np.asarray(back), np.asarray(small))
    with pytest.raises(InvalidImageError):
        images.downscale(img, 0)
