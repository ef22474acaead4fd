"""cnnlib.data.images.load_image on good and bad uploads, and the array conversions.

The uploads (``tests/uploads.py``) are built in memory; the page tests use them too.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnlib.core import sandbox
from cnnlib.core.budgets import Budgets
from cnnlib.core.errors import InvalidImageError
from cnnlib.core.sandbox import run_in_sandbox
from cnnlib.data import images
from tests.uploads import bad_uploads, encode, odd_but_valid_uploads, photo, png_declaring


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


def test_letterbox_shrinks_before_it_pads(monkeypatch):
    """A 1 × 30,000 strip shown at most 1600 pixels long: padded after shrinking, so no
    canvas is ever bigger than the shown image (not 10,000 × 30,000 first)."""
    made = []
    real_new = Image.new

    def recording_new(mode, size, *args, **kwargs):
        made.append(size)
        return real_new(mode, size, *args, **kwargs)

    strip = Image.new("L", (1, 30_000), 200)
    monkeypatch.setattr(Image, "new", recording_new)
    out = images.letterbox(strip, max_aspect=3.0, max_side=1600)
    assert out.size == (534, 1600) and made == [(534, 1600)]
    assert images.letterbox(photo((300, 200)), max_side=100).size == (100, 67)


def test_letterbox_refuses_a_ratio_below_one():
    with pytest.raises(InvalidImageError, match="max_aspect"):
        images.letterbox(Image.new("RGB", (4, 4)), max_aspect=0.5)


# --------------------------------------------------------------------------------------------
# Hardening: formats, pixel and byte budgets, modes at 40 megapixels, frames, aspect ratios
# --------------------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def solid_png(width: int, height: int, pixel: bytes, *, colour_type: int, depth: int = 8) -> bytes:
    """A PNG of one colour (``pixel``: one pixel's bytes), compressed row by row so a
    40-megapixel file takes a few kB and never exists uncompressed in memory."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    row = b"\x00" + pixel * width  # filter type 0, then the pixels
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(height)] + [z.flush()]
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def psd_bytes(width: int = 4, height: int = 3) -> bytes:
    """A minimal uncompressed 8-bit RGB Photoshop file (Pillow's PSD reader opens it)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, resources, layers: empty
    return header + sections + struct.pack(">H", 0) + bytes(3 * width * height)


def _saved(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def refused_formats() -> dict[str, tuple[bytes, str]]:
    """name → (bytes Pillow could read but the app refuses, words of the message)."""
    return {
        "icon.png": (_saved(Image.new("RGB", (16, 16), "red"), "ICO"), "icon (ICO)"),
        "drawing.png": (_saved(Image.new("RGB", (8, 8)), "EPS"), "PostScript (EPS)"),
        "layers.png": (psd_bytes(), "Photoshop (PSD)"),
    }


def test_psd_fixture_is_a_real_psd():
    """The refused PSD is one Pillow would otherwise read: the refusal is ours."""
    assert Image.open(io.BytesIO(psd_bytes())).format == "PSD"
    assert Image.open(io.BytesIO(refused_formats()["icon.png"][0])).format == "ICO"


@pytest.mark.parametrize("name", list(refused_formats()))
def test_other_formats_under_a_png_name_are_refused(name, monkeypatch):
    data, words = refused_formats()[name]
    # Ghostscript must never be started for EPS content (the decoder's code, run here).
    monkeypatch.setattr("subprocess.check_call", pytest.fail)
    with sandbox.in_process(), pytest.raises(InvalidImageError, match=re.escape(words)) as info:
        images.load_image(data, name=f"“{name}”")
    assert name in str(info.value) and "PNG or JPEG" in str(info.value)


@pytest.mark.slow
def test_40_megapixel_16_bit_gray_maps_to_8_bit():
    data = solid_png(8000, 5000, struct.pack(">H", 40000), colour_type=0, depth=16)
    assert len(data) < 200_000
    decoded = images.read_image(data)
    img = decoded.image
    # Decoded whole in the sandbox, handed back shrunk to the largest size a page uses.
    assert decoded.original_size == (8000, 5000) and decoded.mode == "I;16"
    assert img.size == (2530, 1581) and img.mode == "RGB"
    assert img.width * img.height <= Budgets().lab_pixels
    assert img.getpixel((2529, 1580)) == (round(40000 / 65535 * 255),) * 3  # 156


@pytest.mark.slow
def test_40_megapixel_transparent_rgba_is_composited_on_white():
    # Red at alpha 128 over white: 255·(128/255) + 255·(1 − 128/255) = 255, 0 + 127, 127.
    data = solid_png(8000, 5000, bytes((255, 0, 0, 128)), colour_type=6)
    img = images.load_image(data)
    assert img.size == (2530, 1581)
    r, g, b = img.getpixel((1265, 790))
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_more_pixels_than_the_budget_refused_from_the_header(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("must be refused before decoding")

    wide, square = png_declaring(8000, 5001), png_declaring(6400, 6251)
    with pytest.raises(InvalidImageError, match="40,008,000 pixels, over the limit"):
        images.load_image(wide)
    # The decoder's code, run here with decoding made impossible: refused from the header.
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with sandbox.in_process():
        with pytest.raises(InvalidImageError, match="40,008,000 pixels, over the limit"):
            images.load_image(wide)
        with pytest.raises(InvalidImageError, match="over the limit of 40,000,000"):
            images.load_image(square)


def test_decoded_bytes_budget_covers_the_peak_of_decoding_and_converting():
    """The budget bounds the decoder's peak (``decode_peak_bytes``: Pillow's 4 bytes a pixel
    for RGBA, the conversion's copies), checked from the header, not the result's 3 bytes."""
    rgba = solid_png(100, 100, bytes((1, 2, 3, 128)), colour_type=6)
    gray = solid_png(100, 100, b"\x80", colour_type=0)
    peak_rgba = images.decode_peak_bytes(100, 100, "RGBA", result_pixels=10**6)
    peak_gray = images.decode_peak_bytes(100, 100, "L", result_pixels=10**6)
    assert peak_rgba - peak_gray == 100 * 100 * (4 + 4 - 1 - 4)  # decoded + composited
    small = Budgets(image_decoded_bytes=peak_rgba - 1)
    with pytest.raises(
        InvalidImageError, match=r"mode RGBA: decoding it would take 8\.5 MB, over the limit"
    ):
        images.load_image(rgba, budgets=small)
    assert images.load_image(gray, budgets=small).size == (100, 100)
    assert images.load_image(rgba, budgets=Budgets(image_decoded_bytes=peak_rgba)).size == (
        100,
        100,
    )
    with pytest.raises(InvalidImageError, match="over the limit of 5,000"):
        images.load_image(gray, budgets=Budgets(image_pixels=5000))


def _peak_cases(w: int, h: int) -> dict[str, bytes]:
    """One file per decoding path: modes that convert differently, JPEG's reduced decoding,
    an EXIF rotation, a palette with transparency."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8))
    noise = noise.resize((w, h))
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "L": solid_png(w, h, b"\x80", colour_type=0),
        "RGB": solid_png(w, h, bytes((1, 2, 3)), colour_type=2),
        "RGBA": solid_png(w, h, bytes((255, 0, 0, 128)), colour_type=6),
        "LA": solid_png(w, h, bytes((9, 128)), colour_type=4),
        "I;16": solid_png(w, h, struct.pack(">H", 40000), colour_type=0, depth=16),
        "JPEG": _saved(noise, "JPEG", quality=80),
        "CMYK JPEG": _saved(noise.convert("CMYK"), "JPEG", quality=80),
        "P with transparency": _saved(noise.convert("P"), "PNG", transparency=0),
        "rotated TIFF": _saved(noise, "TIFF", exif=exif.tobytes()),
    }


def _measured_peaks(w: int, h: int) -> dict[str, tuple[int, int]]:
    """(measured peak growth of the decoder, its estimate) per case, decoded in the sandbox
    with the default budgets (the decoder reports its own VmHWM, reset before the job)."""
    limits = Budgets()
    out = {}
    for case, data in _peak_cases(w, h).items():
        options = images.decode_options(dataclasses.replace(limits, image_decoded_bytes=2**40))
        result = run_in_sandbox("image", data, name=case, **options)
        with Image.open(io.BytesIO(data)) as img:
            estimate = images.decode_peak_bytes(
                w, h, img.mode, result_pixels=limits.lab_pixels, rotated="rotated" in case
            )
        out[case] = (result.peak_rss_bytes - result.base_rss_bytes, estimate)
    return out


@pytest.mark.slow
def test_the_peak_estimate_bounds_the_measured_peak():
    """6 megapixels: each decoding path's measured peak is within its header estimate."""
    peaks = _measured_peaks(3000, 2000)
    over = {case: p for case, p in peaks.items() if p[0] > p[1]}
    assert not over, over
    # The estimate is a bound, not a guess: PNG's paths use most of it.
    assert peaks["RGBA"][0] > 0.5 * peaks["RGBA"][1]


@pytest.mark.slow
def test_the_peak_estimate_bounds_the_measured_peak_at_40_megapixels():
    """8000×5000 (the largest image allowed): measured 227–480 MB for the PNG paths, 74–96 MB
    for JPEGs (decoded at a reduced scale); every one within its estimate, the default
    budget and the decoder's address space."""
    limits = Budgets()
    peaks = _measured_peaks(8000, 5000)
    for case, (measured, estimate) in peaks.items():
        assert measured <= estimate <= limits.image_decoded_bytes, (case, measured, estimate)
    assert limits.image_decoded_bytes < limits.sandbox_memory_bytes - 300 * 1024 * 1024


def test_budgets_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNNLAB_IMAGE_PIXELS", "5000")
    with pytest.raises(InvalidImageError, match="over the limit of 5,000"):
        images.load_image(solid_png(100, 100, b"\x80", colour_type=0))


@pytest.mark.parametrize("size", [(8, 3000), (3000, 8)])
def test_extreme_aspect_ratios_load_and_downscale(size):
    img = images.load_image(encode(photo(size)))
    assert img.size == size
    small = images.downscale(img, 256)
    assert max(small.size) == 256 and min(small.size) == 1


def test_a_one_pixel_wide_40_megapixel_image_is_refused_from_its_header(monkeypatch):
    # Pillow would "decode" this 1×1 file's header as a black 1×40,000,000 image.
    tall, wide = png_declaring(1, 40_000_000), png_declaring(40_000_000, 1)
    with pytest.raises(InvalidImageError, match="longer side is over the limit of 30,000"):
        images.load_image(tall)
    monkeypatch.setattr(ImageFile.ImageFile, "load", pytest.fail)  # the decoder's code, here
    with sandbox.in_process():
        with pytest.raises(InvalidImageError, match="longer side is over the limit of 30,000"):
            images.load_image(tall)
        with pytest.raises(InvalidImageError, match="40000000×1 pixels"):
            images.load_image(wide)


def _frames(n: int, size=(16, 12)) -> list[Image.Image]:
    return [Image.new("RGB", size, (255 - i % 256, i % 256, 0)) for i in range(n)]


def test_many_frames_give_the_first_and_later_frames_are_never_read():
    frames = _frames(300)
    gif = _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    tiff = _saved(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    webp = _saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    for data in (gif, tiff, webp):
        img = images.load_image(data)
        assert img.size == (16, 12) and img.getpixel((0, 0)) == (255, 0, 0)
    # Cut off in the middle of the later frames: still fine, they are never decoded.
    assert images.load_image(gif[: len(gif) // 2]).getpixel((0, 0)) == (255, 0, 0)
    assert images.load_image(tiff[: len(tiff) // 2]).getpixel((0, 0)) == (255, 0, 0)


def test_la_and_i_modes():
    la = Image.new("LA", (5, 5), (0, 0))
    assert images.load_image(encode(la)).getpixel((2, 2)) == (255, 255, 255)
    opaque_la = Image.new("LA", (5, 5), (90, 255))
    assert images.load_image(encode(opaque_la)).getpixel((2, 2)) == (90, 90, 90)
    as_i = Image.fromarray(np.full((4, 4), 200, np.int32), mode="I")
    assert images.load_image(_saved(as_i, "TIFF")).getpixel((0, 0)) == (200, 200, 200)
    big_i = Image.fromarray(np.full((4, 4), 65535, np.int32), mode="I")
    assert images.load_image(_saved(big_i, "TIFF")).getpixel((0, 0)) == (255, 255, 255)


def test_decompression_bomb_warning_becomes_a_plain_error(monkeypatch):
    """Pillow's own bomb check (its global limit), when it is lower than ours, is an error
    (the decoder's code, run here so that the lowered limit applies to it)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with sandbox.in_process(), pytest.raises(InvalidImageError, match="too many pixels"):
        images.load_image(encode(photo((40, 30))))  # 1,200 > 1,000: Pillow warns


@pytest.mark.parametrize(
    "size, limit", [((8000, 5000), 4_000_000), ((3001, 7), 1000), ((641, 479), 99_999)]
)
@pytest.mark.slow
def test_side_for_pixels_is_the_largest_that_fits(size, limit):
    side = images.side_for_pixels(size, limit)
    img = Image.new("L", size)
    assert _area(images.downscale(img, side)) <= limit
    assert _area(images.downscale(img, side + 1)) > limit


def _area(img: Image.Image) -> int:
    return img.width * img.height


def test_side_for_pixels_keeps_small_images():
    assert images.side_for_pixels((640, 480), 4_000_000) == 640
    with pytest.raises(InvalidImageError):
        images.side_for_pixels((0, 5), 100)
