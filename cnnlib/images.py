"""The one safe image loader, and conversions between PIL images and arrays.

Every page that takes an image (upload, camera, sample) goes through ``load_image``: it
refuses what is not a decodable image with a plain-language ``InvalidImageError`` and
returns a plain 8-bit RGB image whatever the file's mode (RGBA, LA, P, CMYK, 16-bit, ...).
"""

from __future__ import annotations

import io
import math
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlib.errors import InvalidImageError

#: Largest accepted image, in pixels (width × height): 40 megapixels.
MAX_PIXELS = 40_000_000
#: Largest accepted file, in bytes (matches ``server.maxUploadSize`` in .streamlit/config.toml).
MAX_BYTES = 20 * 1024 * 1024
#: Formats the uploaders offer.
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]


def _read_bytes(data: bytes | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    elif hasattr(data, "read"):
        if hasattr(data, "seek"):
            data.seek(0)
        raw = data.read(max_bytes + 1)
    else:
        raise InvalidImageError(
            f"Expected image bytes or a file, got {type(data).__name__}. Upload an image file."
        )
    if not raw:
        raise InvalidImageError(
            "The file is empty (0 bytes). Choose an image file (JPEG, PNG, ...)."
        )
    if len(raw) > max_bytes:
        raise InvalidImageError(
            f"The file is larger than {max_bytes // (1024 * 1024)} MB. Upload a smaller image."
        )
    return raw


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def load_image(
    data: bytes | BinaryIO,
    *,
    name: str = "The file",
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> Image.Image:
    """Decode an uploaded or camera image into an 8-bit RGB ``PIL.Image``.

    ``data`` is the file's bytes or a binary file-like object (Streamlit's ``UploadedFile``).
    EXIF orientation is applied; animated images give their first frame. ``name`` is used in
    error messages. Raises ``InvalidImageError`` (a ``ValueError``) for an empty file,
    something that is not an image, a truncated file, more than ``max_pixels`` pixels
    (decompression bombs are refused before decoding), a zero-sized image, or a file over
    ``max_bytes``.
    """
    try:
        raw = _read_bytes(data, max_bytes)
    except InvalidImageError as err:
        raise InvalidImageError(f"{name}: {err}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw))
        except UnidentifiedImageError:
            raise InvalidImageError(
                f"{name} is not an image Pillow can read. Upload a JPEG, PNG, WebP, BMP, GIF "
                "or TIFF file."
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImageError(
                f"{name} declares too many pixels (over {max_pixels:,}). Upload a smaller image."
            ) from None
        except Exception as err:  # Pillow raises many types for malformed headers
            raise InvalidImageError(f"{name} could not be opened as an image ({err}).") from None
        width, height = img.size
        if width <= 0 or height <= 0:
            raise InvalidImageError(f"{name} has no pixels ({width}×{height}).")
        if width * height > max_pixels:
            raise InvalidImageError(
                f"{name} is {width}×{height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}. Upload a smaller image."
            )
        try:
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImageError(
                f"{name} declares too many pixels (over {max_pixels:,}). Upload a smaller image."
            ) from None
        except Exception as err:
            raise InvalidImageError(
                f"{name} is damaged or truncated and could not be decoded ({err}). "
                "Try saving it again or choose another file."
            ) from None
    return rgb


def downscale(img: Image.Image, max_side: int) -> Image.Image:
    """Shrink ``img`` so that its longer side is at most ``max_side`` pixels (aspect kept)."""
    if max_side < 1:
        raise InvalidImageError(f"max_side must be at least 1, got {max_side}.")
    if max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def to_array(img: Image.Image, *, grayscale: bool = False) -> np.ndarray:
    """PIL image → float32 array in [0, 1]: (H, W) if ``grayscale`` else (H, W, 3)."""
    mode = "L" if grayscale else "RGB"
    return np.asarray(img.convert(mode), dtype=np.float32) / 255.0


def to_image(arr: np.ndarray) -> Image.Image:
    """(H, W) or (H, W, 3) array in [0, 1] (clipped) → 8-bit PIL image."""
    a = np.clip(np.asarray(arr, dtype=np.float32), 0.0, 1.0)
    return Image.fromarray((a * 255.0 + 0.5).astype(np.uint8))


def letterbox(img: Image.Image, *, max_aspect: float = 3.0, fill: int = 128) -> Image.Image:
    """``img`` padded with grey bars (centred) so that neither side exceeds ``max_aspect``
    times the other: an 8 × 3000 strip becomes 1000 × 3000, a 3000 × 8 one 3000 × 1000.

    Images already within the ratio are returned unchanged. The padding is ``fill`` (0–255)
    in every colour channel (opaque); the mode of ``img`` is kept.
    """
    if max_aspect < 1:
        raise InvalidImageError(f"max_aspect must be at least 1, got {max_aspect}.")
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImageError(f"The image has no pixels ({w}×{h}).")
    width = max(w, math.ceil(h / max_aspect))
    height = max(h, math.ceil(w / max_aspect))
    if (width, height) == (w, h):
        return img
    colour = tuple(255 if band == "A" else fill for band in img.getbands())  # opaque bars
    canvas = Image.new(img.mode, (width, height), colour[0] if len(colour) == 1 else colour)
    canvas.paste(img, ((width - w) // 2, (height - h) // 2))
    return canvas
