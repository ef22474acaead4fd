"""The one safe image loader, and conversions between PIL images and arrays.

Every page that takes an image (upload, camera, the drawing canvas) goes through
``read_image`` / ``load_image``. The server never parses the file: its bytes go to the
decoding sandbox (``cnnlib.core.sandbox``), where ``decode_image`` (the task "image", below)
runs in a limited child process and hands back an 8-bit RGB (or RGBA) array, already shrunk
to at most ``Budgets.lab_pixels`` pixels (the largest size a page uses), plus the facts the
pages show (original size, format, mode, SHA-1 of the bytes). The server wraps that array in
a ``PIL.Image``; a bad file becomes a plain-language ``InvalidImageError``.

What the decoder guards against, before any pixel is decoded: formats the uploader does not
offer (Pillow only tries ``PIL_FORMATS``, so an icon, a PostScript or a Photoshop file
renamed ``.png`` is refused and Ghostscript is never started); more pixels than
``Budgets.image_pixels``, a side over ``Budgets.image_side``, or a decoding whose peak memory
(``decode_peak_bytes``, estimated from the header) would pass ``Budgets.image_decoded_bytes``.
Animated or multi-page files give their first frame; the other frames are never read.
JPEGs are decoded at a reduced scale when the result is smaller anyway (libjpeg's DCT
scaling). Metadata (text chunks, EXIF beyond the orientation, ICC profiles) stays in the
decoder. Whatever else a file does to its decoder (memory, CPU time, a crash) ends there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlib.core.budgets import Budgets, format_bytes
from cnnlib.core.budgets import budgets as current_budgets
from cnnlib.core.errors import InvalidImageError, SandboxError
from cnnlib.core.sandbox import SandboxResult, TaskOutput, run_in_sandbox, sandbox_task

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


#: Bytes per pixel Pillow stores for a mode ("RGB" is stored as 4 bytes a pixel); others 4.
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
#: Bytes per pixel of the intermediates ``_to_rgb`` makes on the way to RGB (the RGB result
#: included), per source mode; others (CMYK, YCbCr, LAB, ...) 4: one RGB copy.
_CONVERT_BYTES = {"RGB": 0, "RGBA": 4, "LA": 8, "La": 8, "PA": 8, "P": 8, "1": 5, "L": 4}
_CONVERT_BYTES.update({m: 8 for m in ("I;16", "I;16B", "I;16L", "I;16N")})
_CONVERT_BYTES.update({"I": 14, "F": 14})
#: Fixed overhead of one decoding (Pillow's and NumPy's buffers, the file's bytes aside).
_DECODE_OVERHEAD = 8 * 1024 * 1024
#: 16-bit value → 8-bit value, rounded (a lookup keeps the conversion at 1 byte per pixel).
_LUT16 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
#: How the decoder stores a copy (``store_side``): a JPEG source as JPEG (quality
#: ``STORE_JPEG_QUALITY``, no chroma subsampling: about 0.35 ms for 256 × 256 where PNG takes
#: 3 ms, and the photo was lossy already), anything else (PNG, BMP, GIF, TIFF, WebP…) as PNG,
#: lossless. File suffix of each stored format, and the signature its bytes start with.
STORED_FORMATS = {"JPEG": (".jpg", b"\xff\xd8\xff"), "PNG": (".png", b"\x89PNG\r\n\x1a\n")}
STORE_JPEG_QUALITY = 95


@dataclass(frozen=True)
class DecodedImage:
    """An image the decoding sandbox read, and the facts about the file the pages show.

    ``image``: 8-bit RGB (RGBA with ``keep_alpha``) ``PIL.Image``, at most ``lab_pixels``
    pixels (shrunk, aspect kept; None when not asked for: an archive's members);
    ``original_size``: (width, height) of the file's first frame, after its EXIF orientation;
    ``format``/``mode``: Pillow's names for the file's format and pixel mode; ``sha1``: hex
    digest of the file's bytes; ``file_bytes``: its size; ``thumbnail``: the image shrunk to
    ``thumbnail_side`` (if asked); ``stored``: the image shrunk to ``store_side`` (if asked)
    as file bytes the decoder wrote (files CNN Lab keeps are only ever ones it made), in
    ``stored_format`` ("JPEG" for a JPEG file, else "PNG": ``STORED_FORMATS``).
    """

    image: Image.Image | None
    original_size: tuple[int, int]
    format: str
    mode: str
    sha1: str
    file_bytes: int
    thumbnail: Image.Image | None = None
    stored: bytes | None = None
    stored_format: str | None = None

    @property
    def stored_suffix(self) -> str:
        """The file suffix of ``stored`` (".jpg" or ".png")."""
        if self.stored_format is None:
            raise InvalidImageError("This image was decoded without a copy to store.")
        return STORED_FORMATS[self.stored_format][0]


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


def decode_options(
    limits: Budgets,
    *,
    max_pixels: int | None = None,
    keep_alpha: bool = False,
    thumbnail_side: int = 0,
    store_side: int = 0,
    with_image: bool = True,
) -> dict:
    """The options of the "image" task (``decode_image``) for ``limits``: JSON values."""
    return {
        "max_pixels": limits.image_pixels if max_pixels is None else int(max_pixels),
        "max_side": limits.image_side,
        "max_decoded_bytes": limits.image_decoded_bytes,
        "result_pixels": limits.lab_pixels,
        "keep_alpha": bool(keep_alpha),
        "thumbnail_side": int(thumbnail_side),
        "store_side": int(store_side),
        "with_image": bool(with_image),
    }


def decoded_image(result: SandboxResult, options: dict) -> DecodedImage:
    """The server's side of the "image" task: its answer checked against ``options``' bounds
    and wrapped (``Image.fromarray`` of the checked array). Raises ``SandboxError``."""
    max_side = options["max_side"]
    width = result.integer("width", 1, max_side)
    height = result.integer("height", 1, max_side)
    if width * height > options["max_pixels"]:
        raise result.malformed("an image over the pixel limit")
    image = thumbnail = stored = stored_format = None
    if options["with_image"]:
        channels = 4 if options["keep_alpha"] else 3
        cap = side_for_pixels((width, height), options["result_pixels"])
        pixels = result.array(
            "image",
            dtype=np.uint8,
            ndim=3,
            min_shape=(1, 1, channels),
            max_shape=(min(height, cap), min(width, cap), channels),
        )
        if pixels.shape[0] * pixels.shape[1] > options["result_pixels"]:
            raise result.malformed("an image over the result's pixel limit")
        image = Image.fromarray(pixels)
    if side := options["thumbnail_side"]:
        small = result.array(
            "thumbnail", dtype=np.uint8, ndim=3, min_shape=(1, 1, 3), max_shape=(side, side, 3)
        )
        thumbnail = Image.fromarray(small)
    if side := options["store_side"]:
        most = _store_size((width, height), side)
        encoded = result.array(
            "stored",
            dtype=np.uint8,
            ndim=1,
            min_shape=(8,),
            max_shape=(most[0] * most[1] * 3 * 2 + 4096,),
        )
        stored_format = result.text("stored_format", 4, allowed=STORED_FORMATS)
        stored = encoded.tobytes()
        if not stored.startswith(STORED_FORMATS[stored_format][1]):
            raise result.malformed(f"a stored copy that is not a {stored_format} file")
    return DecodedImage(
        image=image,
        original_size=(width, height),
        format=result.text("format", 16, allowed=(*PIL_FORMATS, "MPO")),
        mode=result.text("mode", 16),
        sha1=result.text("sha1", 40),
        file_bytes=result.integer("file_bytes", 1, 2**40),
        thumbnail=thumbnail,
        stored=stored,
        stored_format=stored_format,
    )


def read_image(
    data: bytes | BinaryIO,
    *,
    name: str = "The file",
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    max_decoded_bytes: int | None = None,
    budgets: Budgets | None = None,
    keep_alpha: bool = False,
) -> DecodedImage:
    """Decode an uploaded, camera or drawn image in the sandbox; see ``DecodedImage``.

    ``data``: the file's bytes or a binary file-like object (Streamlit's ``UploadedFile``).
    ``name`` names the file in messages (already safe to show: ``cnnlib.core.text.safe_text``
    of a file name). Limits default to ``budgets`` (else ``cnnlib.core.budgets.budgets()``):
    ``image_file_bytes`` here, then in the decoder ``image_pixels``, ``image_side`` and
    ``image_decoded_bytes`` from the header, and the sandbox's memory, CPU and time limits.
    The image comes back shrunk to at most ``lab_pixels`` pixels. Raises ``InvalidImageError``
    (a ``ValueError``) for an empty file, something that is not an accepted image, a truncated
    file, a file or image over a limit, a zero-sized image, or a decoder that failed on it
    (the ``SandboxError`` is its ``__cause__``).
    """
    limits = budgets or current_budgets()
    max_bytes = limits.image_file_bytes if max_bytes is None else max_bytes
    if max_decoded_bytes is not None:
        limits = dataclasses.replace(limits, image_decoded_bytes=max_decoded_bytes)
    try:
        raw = _read_bytes(data, max_bytes)
    except InvalidImageError as err:
        raise InvalidImageError(f"{name}: {err}") from None
    options = decode_options(limits, max_pixels=max_pixels, keep_alpha=keep_alpha)
    try:
        return decoded_image(run_in_sandbox("image", raw, name=name, **options), options)
    except SandboxError as err:
        raise InvalidImageError(str(err)) from err


def load_image(
    data: bytes | BinaryIO,
    *,
    name: str = "The file",
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    max_decoded_bytes: int | None = None,
    budgets: Budgets | None = None,
) -> Image.Image:
    """``read_image(...).image``: the uploaded image as 8-bit RGB, at most ``lab_pixels``."""
    return read_image(
        data,
        name=name,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        max_decoded_bytes=max_decoded_bytes,
        budgets=budgets,
    ).image


# --------------------------------------------------------------------------------------------
# In the decoder (the sandbox's child process): the "image" task
# --------------------------------------------------------------------------------------------


def decode_peak_bytes(
    width: int, height: int, mode: str, *, result_pixels: int, rotated: bool = False
) -> int:
    """Peak memory of ``decode_image`` for a (width × height) file of Pillow mode ``mode``
    (its EXIF orientation ``rotated`` or not) shrunk to ``result_pixels``, in bytes, from the
    header: the decoded frame (Pillow stores most modes at 4 bytes a pixel), a rotated copy,
    the conversion's intermediates and RGB result (``_CONVERT_BYTES``), the shrink's two
    passes (Lanczos resizes one axis, then the other) and a fixed overhead. An upper bound
    for every format (JPEGs often decode at a reduced scale, under it); the decoder's
    measured peak is checked against it in ``tests/test_images.py``. Metadata is apart:
    Pillow keeps at most 64 MB of a PNG's text (``PngImagePlugin.MAX_TEXT_MEMORY``), read
    and dropped in the decoder, within its address space."""
    px = int(width) * int(height)
    stored = _STORED_BYTES.get(mode, 4)
    peak = px * (stored * (2 if rotated else 1) + _CONVERT_BYTES.get(mode, 4))
    if px > result_pixels:
        peak += 4 * (math.isqrt(px * int(result_pixels)) + int(result_pixels))
    return peak + _DECODE_OVERHEAD


def _what_it_is(raw: bytes) -> str | None:
    """A learner's name for a refused format recognised by its first bytes, else None."""
    for signature, what in _REFUSED_SIGNATURES:
        if raw.startswith(signature):
            return what
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency is composited on white.

    16-bit modes map 0–65535 onto 0–255; 32-bit integer ("I") images whose values fit in
    0–255 are kept as they are, others are read as 16-bit. An RGB image is returned as it
    is (no copy).
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img)
        if img.mode.startswith("I;16"):
            gray = _LUT16[arr]
        elif arr.size and arr.max() > 255:
            gray = _LUT16[np.clip(arr, 0, 65535).astype(np.uint16)]
        else:
            gray = np.clip(arr, 0, 255).astype(np.uint8)
        del arr
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


def _to_rgba(img: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGBA (opaque where the file has no transparency)."""
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        return img.convert("RGBA")
    return _to_rgb(img).convert("RGBA")


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
    except MemoryError:
        raise
    except Exception as err:  # Pillow raises many types for malformed headers
        raise InvalidImageError(
            f"{name} could not be opened as an image: its header is damaged ({type(err).__name__})."
        ) from None


def _check_size(
    img: Image.Image,
    name: str,
    max_pixels: int,
    max_side: int,
    max_decoded: int,
    result_pixels: int,
    rotated: bool,
) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name} has no pixels ({width}×{height}).")
    if max(width, height) > max_side:
        raise InvalidImageError(
            f"{name} is {width}×{height} pixels: its longer side is over the limit of "
            f"{max_side:,} pixels. Crop or shrink it and upload it again."
        )
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name} is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}. Upload a smaller image."
        )
    peak = decode_peak_bytes(width, height, img.mode, result_pixels=result_pixels, rotated=rotated)
    if peak > max_decoded:
        raise InvalidImageError(
            f"{name} is {width}×{height} pixels in mode {img.mode}: decoding it would take "
            f"{format_bytes(peak)}, over the limit of {format_bytes(max_decoded)}. "
            "Upload a smaller image."
        )


def _store_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) of a stored copy: shrunk until its shorter side is ``side`` (so
    that any training size up to ``side`` × ``side`` is a reduction), never enlarged."""
    w, h = size
    scale = min(1.0, side / max(1, min(w, h)))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: no rotation, as Pillow's own transpose does
        return 1


def _shrink(img: Image.Image, max_pixels: int) -> Image.Image:
    """``img`` shrunk to at most ``max_pixels`` pixels as ``downscale`` does (Lanczos),
    reducing by whole factors first when it is much larger (``reducing_gap``)."""
    side = side_for_pixels(img.size, max_pixels)
    if side >= max(img.size):
        return img
    scale = side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


@sandbox_task("image")
def decode_image(
    source: bytes,
    *,
    name: str,
    max_pixels: int,
    max_side: int,
    max_decoded_bytes: int,
    result_pixels: int,
    keep_alpha: bool = False,
    thumbnail_side: int = 0,
    store_side: int = 0,
    with_image: bool = True,
) -> TaskOutput:
    """In the decoder: ``source`` (a file's bytes) → arrays "image" ((H, W, 3) uint8 RGB, or
    (H, W, 4) RGBA with ``keep_alpha``, at most ``result_pixels``; left out unless
    ``with_image``), "thumbnail" ((h, w, 3)
    within ``thumbnail_side``, if > 0), "stored" (file bytes of the image shrunk to
    ``_store_size(..., store_side)``, if > 0: JPEG for a JPEG file, else PNG; meta
    "stored_format" says which); meta: width, height (after orientation), format, mode,
    sha1, file_bytes. Raises ``InvalidImageError`` naming the file ``name``."""
    raw = bytes(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open(raw, name, max_pixels)
        fmt, mode = img.format or "", img.mode
        limits = (name, max_pixels, max_side, max_decoded_bytes, result_pixels)
        # EXIF read from the header only (a PNG's may follow its pixels: known after load).
        turned = "exif" in img.info and _orientation(img) != 1
        _check_size(img, *limits, rotated=turned)
        w, h = img.size
        try:
            if fmt in ("JPEG", "MPO") and w * h > result_pixels:
                scale = math.sqrt(result_pixels / (w * h))  # libjpeg decodes at 1/2, 1/4, 1/8
                img.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))
            img.load()  # the first frame only: nothing seeks further
            orientation = _orientation(img)
            if orientation != 1:  # (exif_transpose copies even an upright image)
                if not turned:
                    _check_size(img, *limits, rotated=True)
                ImageOps.exif_transpose(img, in_place=True)
            rgb = _to_rgba(img) if keep_alpha else _to_rgb(img)
            del img
            result = _shrink(rgb, result_pixels)
            del rgb
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImageError(
                f"{name} declares too many pixels (over {max_pixels:,}). Upload a smaller image."
            ) from None
        except MemoryError:
            raise
        except Exception as err:
            raise InvalidImageError(
                f"{name} is damaged or truncated and could not be decoded "
                f"({type(err).__name__}). Try saving it again or choose another file."
            ) from None
    width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    arrays = {"image": np.asarray(result)} if with_image else {}
    rgb = result if result.mode == "RGB" else result.convert("RGB")
    if thumbnail_side:
        arrays["thumbnail"] = np.asarray(downscale(rgb, thumbnail_side))
    meta = {}
    if store_side:
        size = _store_size(rgb.size, store_side)
        stored = rgb if size == rgb.size else rgb.resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if fmt in ("JPEG", "MPO"):  # lossy already: a lossless copy costs 8× the time
            stored.save(buffer, format="JPEG", quality=STORE_JPEG_QUALITY, subsampling=0)
            meta["stored_format"] = "JPEG"
        else:
            stored.save(buffer, format="PNG", compress_level=1)
            meta["stored_format"] = "PNG"
        arrays["stored"] = np.frombuffer(buffer.getbuffer(), np.uint8)
    meta |= {
        "width": width,
        "height": height,
        "format": fmt,
        "mode": mode,
        "sha1": hashlib.sha1(raw).hexdigest(),
        "file_bytes": len(raw),
    }
    return TaskOutput(meta, arrays)


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


def letterbox(
    img: Image.Image, *, max_aspect: float = 3.0, fill: int = 128, max_side: int | None = None
) -> Image.Image:
    """``img`` padded with grey bars (centred) so that neither side exceeds ``max_aspect``
    times the other: an 8 × 3000 strip becomes 1000 × 3000, a 3000 × 8 one 3000 × 1000.

    With ``max_side``, the image is first shrunk (``downscale``) so that its longer side is
    at most that: padding comes after shrinking, so a 1 × 30,000 strip costs at most
    ``max_side``² / ``max_aspect`` pixels, never 10,000 × 30,000. Images already within the
    ratio are returned unchanged (or only shrunk). The padding is ``fill`` (0–255) in every
    colour channel (opaque); the mode of ``img`` is kept.
    """
    if max_aspect < 1:
        raise InvalidImageError(f"max_aspect must be at least 1, got {max_aspect}.")
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImageError(f"The image has no pixels ({w}×{h}).")
    if max_side is not None:
        img = downscale(img, max_side)
        w, h = img.size
    width = max(w, math.ceil(h / max_aspect))
    height = max(h, math.ceil(w / max_aspect))
    if (width, height) == (w, h):
        return img
    colour = tuple(255 if band == "A" else fill for band in img.getbands())  # opaque bars
    canvas = Image.new(img.mode, (width, height), colour[0] if len(colour) == 1 else colour)
    canvas.paste(img, ((width - w) // 2, (height - h) // 2))
    return canvas
