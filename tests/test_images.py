"""cnnlib.images.load_image on good and bad uploads, and the array conversions.

``bad_uploads()`` / ``odd_but_valid_uploads()`` build every case in memory; the page tests
reuse them.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnlib import images
from cnnlib.errors import InvalidImageError


def _png(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def _jpeg(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def photo(size=(64, 48)) -> Image.Image:
    """A smooth colourful RGB test picture (width, height)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    return Image.fromarray(arr.astype(np.uint8))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's header)."""
    raw = bytearray(_png(Image.new("L", (1, 1))))
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr : ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(raw)


def bad_uploads() -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, words the error message must contain)."""
    # A text file renamed .png: Streamlit's uploader refuses other extensions itself.
    return {
        "notes.png": (b"Dear teacher,\nthis is plain text, not a picture.\n", "not an image"),
        "empty.png": (b"", "empty"),
        "truncated.jpg": (_jpeg(photo((200, 150)), quality=95)[:1500], "damaged or truncated"),
        "bomb.png": (png_declaring(30000, 30000), "too many pixels"),
        "garbage.gif": (b"GIF89a" + bytes(range(256)) * 4, "not an image"),
    }


def odd_but_valid_uploads() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """name → (file bytes, expected (width, height) after loading)."""
    cmyk = photo().convert("CMYK")
    deep = Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16))
    palette = Image.new("P", (30, 20), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 15, 20))
    frames = [Image.new("RGB", (32, 24), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return {
        "photo.jpg": (_jpeg(photo(), quality=90), (64, 48)),
        "cmyk.jpg": (_jpeg(cmyk), (64, 48)),
        "deep.png": (_png(deep), (64, 48)),
        "palette.png": (_png(palette, transparency=0), (30, 20)),
        "animated.gif": (gif.getvalue(), (32, 24)),
        "rotated.jpg": (_jpeg(photo((40, 20)), exif=exif.tobytes()), (20, 40)),
        "dot.png": (_png(Image.new("RGB", (1, 1), (10, 200, 30))), (1, 1)),
    }


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
    assert tuple(np.asarray(images.load_image(_png(rgba)))[0, 0]) == (255, 255, 255)
    with pytest.raises(InvalidImageError, match="larger than"):
        images.load_image(b"x" * 2_000_000, max_bytes=1_000_000)
    with pytest.raises(InvalidImageError, match="over the limit"):
        images.load_image(_png(photo((100, 100))), max_pixels=5000)
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


@pytest.mark.parametrize(
    ("size", "mode", "padded"),
    [
        ((8, 3000), "RGB", (1000, 3000)),
        ((3000, 8), "L", (3000, 1000)),
        ((3001, 8), "RGBA", (3001, 1001)),  # rounded up: never beyond 3 : 1
        ((300, 200), "RGB", (300, 200)),  # within the ratio: unchanged
    ],
)
def test_letterbox_bounds_the_aspect_ratio_and_keeps_the_pixels(size, mode, padded):
    rng = np.random.default_rng(0)
    w, h = size
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.integers(0, 256, (h, w, bands), dtype=np.uint8).squeeze(-1 if bands == 1 else ())
    img = Image.fromarray(pixels, mode)
    out = images.letterbox(img, max_aspect=3.0)
    assert out.size == padded and out.mode == mode
    if padded == size:
        assert out is img
        return
    arr = np.asarray(out)
    left, top = (padded[0] - w) // 2, (padded[1] - h) // 2
    np.testing.assert_array_equal(arr[top : top + h, left : left + w], pixels)  # centred, intact
    bar = arr[:top] if top else arr[:, :left]
    colour = [128] * bands if mode != "RGBA" else [128, 128, 128, 255]
    assert (bar.reshape(-1, bands) == colour).all()  # grey, opaque bars


def test_letterbox_refuses_a_ratio_below_one():
    with pytest.raises(InvalidImageError, match="max_aspect"):
        images.letterbox(Image.new("RGB", (4, 4)), max_aspect=0.5)
