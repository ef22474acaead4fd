"""The one safe image loader, and conversions between PIL images and arrays.

Every page that takes an image (upload, camera, sample) goes through ``load_image``: it
refuses what is not a decodable image with a plain-language ``InvalidImageError`` and
returns a plain 8-bit RGB image whatever the file's mode (RGBA, LA, P, CMYK, 16-bit, ...).

What it guards against, before any pixel is decoded: files over the byte limit; formats the
uploader does not offer (Pillow only tries ``PIL_FORMATS``, so an icon, a PostScript or a
Photoshop file renamed ``.png`` is refused and Ghostscript is never started); more pixels
than ``Budgets.image_pixels`` or more decoded bytes (W·H·C) than
``Budgets.image_decoded_bytes``, read from the header. Animated or multi-page files give
their first frame; the other frames are never read or counted.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlib.core.budgets import Budgets, format_bytes
from cnnlib.core.budgets import budgets as current_budgets
from cnnlib.core.errors import InvalidImageError

#: Largest accepted image, in pixels (width × height): ``Budgets().image_pixels``.
MAX_PIXELS = Budgets().image_pixels
#: Largest accepted file, in bytes (matches ``server.maxUploadSize`` in .streamlit/config.toml).
MAX_BYTES = Budgets().image_file_bytes
#: Formats the uploaders offer (file extensions).
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
#: The Pillow formats those extensions hold; Pillow tries no others. (Pillow's JPEG reader
#: also opens MPO, the multi-picture JPEG many phone cameras write.)
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_ACCEPTED = "JPEG, PNG, WebP, BMP, GIF or TIFF"

#: File signatures of formats Pillow could read but the app refuses → what to call them.
_REFUSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x01\x00", "a Windows icon (ICO)"),
    (b"\x00\x00\x02\x00", "a Windows cursor (CUR)"),
    (b"%!PS", "a PostScript (EPS) document"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript (EPS) document"),
    (b"8BPS", "a Photoshop (PSD) document"),
    (b"%PDF", "a PDF document"),
    (b"icns", "a macOS icon (ICNS)"),
)
#: Bytes per pixel of the decoded image, per PIL mode (C in W·H·C); others count 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3}
_MODE_BYTES.update({m: 2 for m in ("I;16", "I;16B", "I;16L", "I;16N")})
#: 16-bit value → 8-bit value, rounded (a lookup keeps the conversion at 1 byte per pixel).
_LUT16 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


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
            f"The file is larger than {max_bytes / (1024 * 1024):g} MB. Upload a smaller image."
        )
    return raw


def _what_it_is(raw: bytes) -> str | None:
    """A learner's name for a refused format recognised by its first bytes, else None."""
    for signature, what in _REFUSED_SIGNATURES:
        if raw.startswith(signature):
            return what
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency is composited on white.

    16-bit modes map 0–65535 onto 0–255; 32-bit integer ("I") images whose values fit in
    0–255 are kept as they are, others are read as 16-bit. Memory: at most one extra 8-bit
    copy besides the result.
    """
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img)
        if img.mode.startswith("I;16"):
            gray = _LUT16[arr]
        elif arr.size and arr.max() > 255:
            gray = _LUT16[np.clip(arr, 0, 65535).astype(np.uint16)]
        else:
            gray = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        if rgba.getextrema()[3][0] == 255:  # fully opaque
            return rgba.convert("RGB")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)  # composite on white, in place
        return white
    if img.mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def _open(raw: bytes, name: str, max_pixels: int) -> Image.Image:
    """Pillow's lazy image (header read, no pixels decoded), restricted to ``PIL_FORMATS``."""
    try:
        return Image.open(io.BytesIO(raw), formats=PIL_FORMATS)
    except UnidentifiedImageError:
        what = _what_it_is(raw)
        if what:
            raise InvalidImageError(
                f"{name} is {what}, not a photo format CNN Lab accepts. Save it as a PNG or "
                "JPEG file and upload that."
            ) from None
        raise InvalidImageError(
            f"{name} is not an image Pillow can read. Upload a {_ACCEPTED} file."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(
            f"{name} declares too many pixels (over {max_pixels:,}). Upload a smaller image."
        ) from None
    except Exception as err:  # Pillow raises many types for malformed headers
        raise InvalidImageError(
            f"{name} could not be opened as an image: its header is damaged ({err})."
        ) from None


def _check_size(img: Image.Image, name: str, max_pixels: int, limits: Budgets) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name} has no pixels ({width}×{height}).")
    if max(width, height) > limits.image_side:
        raise InvalidImageError(
            f"{name} is {width}×{height} pixels: its longer side is over the limit of "
            f"{limits.image_side:,} pixels. Crop or shrink it and upload it again."
        )
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name} is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}. Upload a smaller image."
        )
    decoded = width * height * max(3, _MODE_BYTES.get(img.mode, 4))
    max_decoded = limits.image_decoded_bytes
    if decoded > max_decoded:
        raise InvalidImageError(
            f"{name} is {width}×{height} pixels in mode {img.mode}: decoding it would take "
            f"{format_bytes(decoded)}, over the limit of {format_bytes(max_decoded)}. "
            "Upload a smaller image."
        )


def load_image(
    data: bytes | BinaryIO,
    *,
    name: str = "The file",
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    max_decoded_bytes: int | None = None,
    budgets: Budgets | None = None,
) -> Image.Image:
    """Decode an uploaded or camera image into an 8-bit RGB ``PIL.Image``.

    ``data`` is the file's bytes or a binary file-like object (Streamlit's ``UploadedFile``).
    Only ``PIL_FORMATS`` are tried. EXIF orientation is applied; animated or multi-page
    images give their first frame. ``name`` is used in error messages. Limits default to
    ``budgets`` (else ``cnnlib.budgets.budgets()``): ``image_file_bytes``, then, from the
    header before decoding, ``image_pixels``, ``image_side`` and ``image_decoded_bytes``
    (W·H·C).
    Raises ``InvalidImageError`` (a ``ValueError``) for an empty file, something that is not
    an accepted image, a truncated file, a file or image over a limit, or a zero-sized image.
    """
    limits = budgets or current_budgets()
    max_pixels = limits.image_pixels if max_pixels is None else max_pixels
    max_bytes = limits.image_file_bytes if max_bytes is None else max_bytes
    if max_decoded_bytes is not None:
        limits = dataclasses.replace(limits, image_decoded_bytes=max_decoded_bytes)
    try:
        raw = _read_bytes(data, max_bytes)
    except InvalidImageError as err:
        raise InvalidImageError(f"{name}: {err}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open(raw, name, max_pixels)
        _check_size(img, name, max_pixels, limits)
        try:
            img.load()  # the first frame only: nothing seeks further
            ImageOps.exif_transpose(img, in_place=True)
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


def side_for_pixels(size: tuple[int, int], max_pixels: int) -> int:
    """The largest ``max_side`` for which ``downscale`` gives at most ``max_pixels`` pixels.

    ``size`` is (width, height). An image already within ``max_pixels`` gets its own longer
    side (``downscale`` then keeps it as is): the Convolution lab offers "original size" only
    when ``side_for_pixels(size, limits.lab_pixels) == max(size)``.
    """
    w, h = (int(v) for v in size)
    if w < 1 or h < 1 or max_pixels < 1:
        raise InvalidImageError(f"Expected a positive size and pixel limit, got {size}.")
    if w * h <= max_pixels:
        return max(w, h)
    long, short = max(w, h), min(w, h)

    def area(side: int) -> int:  # as downscale rounds the shorter side
        return side * max(1, round(short * side / long))

    side = max(1, math.isqrt(max_pixels * long // short))  # within a few pixels
    while side < long and area(side + 1) <= max_pixels:
        side += 1
    while side > 1 and area(side) > max_pixels:
        side -= 1
    return side


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
