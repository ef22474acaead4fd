"""Test images built in memory: encoders, a smooth test photo, a decompression bomb's header,
and the bad and the odd-but-valid uploads that the image, page and browser tests share."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    """``img`` as the bytes of a ``fmt`` file ("PNG", "JPEG", …; PIL's save options)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def photo(size=(64, 48)) -> Image.Image:
    """A smooth colourful RGB test picture (width, height)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    return Image.fromarray(arr.astype(np.uint8))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's header)."""
    raw = bytearray(encode(Image.new("L", (1, 1))))
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
        "truncated.jpg": (
            encode(photo((200, 150)), "JPEG", quality=95)[:1500],
            "damaged or truncated",
        ),
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
        "photo.jpg": (encode(photo(), "JPEG", quality=90), (64, 48)),
        "cmyk.jpg": (encode(cmyk, "JPEG"), (64, 48)),
        "deep.png": (encode(deep), (64, 48)),
        "palette.png": (encode(palette, transparency=0), (30, 20)),
        "animated.gif": (gif.getvalue(), (32, 24)),
        "rotated.jpg": (encode(photo((40, 20)), "JPEG", exif=exif.tobytes()), (20, 40)),
        "dot.png": (encode(Image.new("RGB", (1, 1), (10, 200, 30))), (1, 1)),
    }
