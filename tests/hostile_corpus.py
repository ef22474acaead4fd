"""The hostile corpus: one file (or link) per trick an attacker might play on CNN Lab's
uploads, with what CNN Lab must do with it.

Every entry is ``name → Trick(make, expect)``: ``make()`` builds the bytes (or the link's
query parameters) in memory, ``expect`` says the intended outcome: refused with a learner's
message containing one of ``words``; accepted, with ``why`` that is safe; or (zip members)
skipped with a reason. ``tests/test_hostile_uploads.py`` feeds each one to the real entry
points (``load_image``, ``open_archive``, the lab's link reader) and measures what each costs
the server. ``python tests/hostile_corpus.py OUT_DIR`` writes every file to ``OUT_DIR``.

The ``.keras`` tricks go in ``KERAS_TRICKS`` (the hook for the model-upload work): the same
``Trick`` shape, fed to ``cnnlib.uploads.model_files``' loader.
"""

from __future__ import annotations

import io
import struct
import sys
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REFUSED, ACCEPTED, SKIPPED = "refused", "accepted", "skipped"


@dataclass(frozen=True)
class Expect:
    """The intended outcome: ``REFUSED`` (a ``CNNLabError`` whose message holds one of
    ``words``), ``ACCEPTED`` (``why`` it is safe to accept) or, for a zip, ``SKIPPED`` (the
    archive opens; the members named in ``words`` are skipped with a reason)."""

    outcome: str
    words: tuple[str, ...] = ()
    why: str = ""
    #: Burns a decoder's whole CPU allowance, or decodes 40 megapixels (2–3 s): a test marks
    #: it slow.
    costly: bool = False


@dataclass(frozen=True)
class Trick:
    make: Callable[[], bytes | dict[str, str]]
    expect: Expect


def refused(*words: str, costly: bool = False) -> Expect:
    return Expect(REFUSED, words, costly=costly)


def accepted(why: str, costly: bool = False) -> Expect:
    return Expect(ACCEPTED, why=why, costly=costly)


def skipped(*members: str) -> Expect:
    return Expect(SKIPPED, members)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _saved(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(
    width: int,
    height: int,
    pixel: bytes,
    colour_type: int,
    depth: int = 8,
    extra: tuple[bytes, ...] = (),
    after: tuple[bytes, ...] = (),
) -> bytes:
    """A one-colour PNG compressed row by row (a 40-megapixel file takes a few kB);
    ``extra`` chunks go before the pixels, ``after`` chunks after them."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    z = zlib.compressobj(9)
    row = b"\x00" + pixel * width
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + b"".join(extra)
        + _chunk(b"IDAT", idat)
        + b"".join(after)
        + _chunk(b"IEND", b"")
    )


def photo(size=(64, 48), seed: int = 0) -> Image.Image:
    """A noisy RGB picture, smoothed (compresses like a photo, not like a flat colour)."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)


def _png_declaring(width: int, height: int) -> bytes:
    raw = bytearray(_saved(Image.new("L", (1, 1)), "PNG"))
    at = raw.index(b"IHDR")
    raw[at + 4 : at + 12] = struct.pack(">II", width, height)
    raw[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(raw[at : at + 17])))
    return bytes(raw)


class _Bits:
    """Huffman-coded bits of a JPEG scan, 0xFF bytes stuffed."""

    def __init__(self) -> None:
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc, self.n = (self.acc << 1) | ((value >> i) & 1), self.n + 1
            if self.n == 8:
                self.out += b"\xff\x00" if self.acc == 0xFF else bytes([self.acc])
                self.acc, self.n = 0, 0

    def done(self) -> bytes:
        while self.n:
            self.put(1, 1)
        return bytes(self.out)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def progressive_jpeg_many_scans(side: int = 4096, scans: int = 20_000) -> bytes:
    """A grey progressive JPEG with ``scans`` AC scans, each a few bytes (end-of-band runs
    over every block) yet each a pass over all (side/8)² blocks: ~2 ms a scan here."""
    blocks = (side // 8) ** 2
    out = bytearray(b"\xff\xd8")
    out += _segment(0xDB, b"\x00" + bytes([1] * 64))
    out += _segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + bytes([1, 0x11, 0]))
    one_code = bytes([1] + [0] * 15)  # one Huffman code of length 1
    out += _segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\xe0")
    out += _segment(0xDA, bytes([1, 1, 0x00, 0, 0, 0]))  # DC first scan: every diff 0
    bits = _Bits()
    for _ in range(blocks):
        bits.put(0, 1)
    out += bits.done()
    scan = bytearray(_segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0])))  # AC 1..63, first pass
    bits, left = _Bits(), blocks
    while left > 0:  # EOB14 runs of 32,767 blocks
        bits.put(0, 1)
        bits.put(0x3FFF, 14)
        left -= 32767
    scan += bits.done()
    return bytes(out + scan * scans + b"\xff\xd9")


def rle8_bmp(width: int = 6000, height: int = 6000) -> bytes:
    """A run-length (RLE8) BMP: 36 megapixels in ~300 kB, decoded by Pillow in Python."""
    row = b"".join(bytes([255, i % 256]) for i in range(width // 255))
    row += bytes([width % 255, 7]) + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return header + info + palette + pixels


def tiff_strips(width: int, height: int, strips: int) -> bytes:
    """A grey PackBits TIFF with ``strips`` strip offsets and byte counts (all pointing at
    one compressed row of zeros): many strips cost memory when the file is opened."""
    row = b""
    left = width
    while left:
        n = min(128, left)
        row += bytes([257 - n, 0]) if n > 1 else b"\x00\x00"  # PackBits: n zeros
        left -= n
    entries = 9
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * entries + 4
    offsets_at = data_at + len(row)
    counts_at = offsets_at + 4 * strips

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    short, long_ = 3, 4
    ifd = struct.pack("<H", entries) + b"".join(
        [
            entry(256, long_, 1, width),
            entry(257, long_, 1, height),
            entry(258, short, 1, 8),
            entry(259, short, 1, 32773),
            entry(262, short, 1, 1),
            entry(273, long_, strips, offsets_at),
            entry(277, short, 1, 1),
            entry(278, long_, 1, max(1, height // strips)),
            entry(279, short, strips, counts_at),
        ]
    )
    return (
        b"II*\x00"
        + struct.pack("<I", ifd_at)
        + ifd
        + b"\x00\x00\x00\x00"
        + row
        + struct.pack(f"<{strips}I", *([data_at] * strips))
        + struct.pack(f"<{strips}H", *([len(row)] * strips))
    )


def _text_chunks_png(megabytes: int = 60) -> bytes:
    """A small PNG carrying ``megabytes`` MB of compressed text metadata (zTXt chunks of 1
    MB each)."""
    text = zlib.compress(b"A" * (1024 * 1024 - 1024), 9)
    chunks = tuple(_chunk(b"zTXt", f"k{i}".encode() + b"\x00\x00" + text) for i in range(megabytes))
    return _png(64, 64, b"\x80\x80\x80", 2, extra=chunks)


def _iccp_bomb_png() -> bytes:
    """An ICC profile chunk that inflates to 200 MB."""
    z = zlib.compressobj(9)
    body = b"".join(z.compress(b"\x00" * (1 << 20)) for _ in range(200)) + z.flush()
    return _png(16, 16, b"\x10\x20\x30", 2, extra=(_chunk(b"iCCP", b"icc\x00\x00" + body),))


def _exif_chunk(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    return _chunk(b"eXIf", raw.removeprefix(b"Exif\x00\x00"))


def _frames_gif(n: int) -> bytes:
    frames = [Image.new("P", (32, 24), i % 256) for i in range(n)]
    return _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


def _exif_garbage_jpeg() -> bytes:
    raw = _saved(photo((64, 48)), "JPEG")
    app1 = _segment(0xE1, b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + b"\xff" * 60_000)
    return raw[:2] + app1 + raw[2:]


# --------------------------------------------------------------------------------------------
# Images: load_image
# --------------------------------------------------------------------------------------------

IMAGE_TRICKS: dict[str, Trick] = {
    "thin strip 1x30000.png": Trick(
        lambda: _png(1, 30_000, b"\x80", 0),
        accepted("a 1×30,000 image is 30,000 pixels: decoded in the sandbox, shown shrunk"),
    ),
    "thin strip 30000x1.png": Trick(
        lambda: _png(30_000, 1, b"\x80\x10\x10", 2), accepted("30,000 pixels, as above")
    ),
    "strip 1x30001.png": Trick(lambda: _png(1, 30_001, b"\x80", 0), refused("longer side")),
    "strip declared 1x40000000.png": Trick(
        lambda: _png_declaring(1, 40_000_000), refused("longer side")
    ),
    "bomb header 30000x30000.png": Trick(
        lambda: _png_declaring(30_000, 30_000), refused("too many pixels", "over the limit")
    ),
    "60 MB of text chunks.png": Trick(
        _text_chunks_png,
        accepted("the text is read and dropped inside the decoder; only pixels come back"),
    ),
    "ICC profile bomb.png": Trick(_iccp_bomb_png, refused("could not be opened", "damaged")),
    "40 Mpx LA rotated after its pixels.png": Trick(
        lambda: _png(8000, 5000, b"\x10\x80", 4, after=(_exif_chunk(6),)),
        refused("decoding it would take"),
    ),
    "40 Mpx 16-bit.png": Trick(
        lambda: _png(8000, 5000, struct.pack(">H", 40000), 0, depth=16),
        accepted("within the decoding budget; handed back at 4 megapixels", costly=True),
    ),
    "40 Mpx translucent RGBA.png": Trick(
        lambda: _png(8000, 5000, bytes((255, 0, 0, 128)), 6),
        accepted("within the decoding budget; handed back at 4 megapixels", costly=True),
    ),
    "progressive JPEG with 20000 scans.jpg": Trick(
        progressive_jpeg_many_scans, refused("CPU-seconds", "took longer", costly=True)
    ),
    "RLE8 BMP 36 Mpx.bmp": Trick(
        rle8_bmp, accepted("decoded in the decoder's own process, within its limits", costly=True)
    ),
    "TIFF with 30000 strips.tif": Trick(
        lambda: tiff_strips(1000, 30_000, 30_000), accepted("30 Mpx of strips, in the decoder")
    ),
    "TIFF with 500000 strips.tif": Trick(
        lambda: tiff_strips(1, 500_000, 500_000), refused("longer side")
    ),
    "GIF with 5000 frames.gif": Trick(
        lambda: _frames_gif(5000), accepted("only the first frame is read")
    ),
    "animated WebP 300 frames.webp": Trick(
        lambda: _saved(
            Image.new("RGB", (16, 16), "red"),
            "WEBP",
            save_all=True,
            append_images=[Image.new("RGB", (16, 16), (i, 0, 0)) for i in range(299)],
        ),
        accepted("only the first frame is read"),
    ),
    "CMYK.jpg": Trick(
        lambda: _saved(photo().convert("CMYK"), "JPEG"), accepted("converted to RGB")
    ),
    "16-bit gray.png": Trick(
        lambda: _saved(
            Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)), "PNG"
        ),
        accepted("mapped 0–65535 → 0–255"),
    ),
    "32-bit float.tif": Trick(
        lambda: _saved(Image.fromarray(np.full((8, 8), 1e30, np.float32)), "TIFF"),
        accepted("clipped to 16 bits, then mapped to 8"),
    ),
    "1-bit 30000x1333.png": Trick(
        lambda: _saved(Image.new("1", (30_000, 1333), 1), "PNG"),
        accepted("40 Mpx of 1 bit", costly=True),
    ),
    "EXIF block of garbage.jpg": Trick(_exif_garbage_jpeg, accepted("no usable orientation")),
    "truncated.jpg": Trick(
        lambda: _saved(photo((400, 300)), "JPEG", quality=95)[:2000], refused("damaged")
    ),
    "empty.png": Trick(lambda: b"", refused("empty")),
    "text named .png": Trick(lambda: b"<svg onload=alert(1)>" * 10, refused("not an image")),
    "zip named .png": Trick(
        lambda: make_zip({"a/1.png": _saved(photo(), "PNG")}), refused("not an image")
    ),
    "icon named .png": Trick(
        lambda: _saved(Image.new("RGB", (16, 16)), "ICO"), refused("icon (ICO)")
    ),
    "EPS named .png": Trick(
        lambda: _saved(Image.new("RGB", (8, 8)), "EPS"), refused("PostScript (EPS)")
    ),
    "JPEG declaring 65500x65500.jpg": Trick(
        lambda: _jpeg_declaring(65_500, 65_500), refused("longer side", "too many pixels")
    ),
    "file over 20 MB.bmp": Trick(lambda: b"BM" + bytes(21 * 1024 * 1024), refused("larger than")),
}


def _jpeg_declaring(width: int, height: int) -> bytes:
    raw = bytearray(_saved(photo((16, 16)), "JPEG"))
    at = raw.index(b"\xff\xc0")
    raw[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


# --------------------------------------------------------------------------------------------
# Zip archives: open_archive
# --------------------------------------------------------------------------------------------


def make_zip(
    entries: dict[str, bytes] | list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED
) -> bytes:
    """A zip of ``entries`` (a list may repeat a name)."""
    buf = io.BytesIO()
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in items:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, data)
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def _classes(n: int = 6, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for c, cls in enumerate(("cats", "dogs")):
        for i in range(n):
            out[f"{prefix}{cls}/{i}.png"] = _saved(photo((24, 24), seed=10 * c + i), "PNG")
    return out


def _with_method(data: bytes, method: int) -> bytes:
    """``data`` (a stored zip) with every entry's compression method set to ``method``."""
    raw = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        pos = raw.find(sig)
        while pos >= 0:
            raw[pos + at : pos + at + 2] = struct.pack("<H", method)
            pos = raw.find(sig, pos + 4)
    return bytes(raw)


def _corrupt_member(data: bytes, name: str) -> bytes:
    """``data`` with the compressed bytes of member ``name`` scrambled (its CRC kept)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    raw = bytearray(data)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start, start + min(info.compress_size, 64)):
        raw[i] ^= 0x5A
    return bytes(raw)


def _patched_names(entries: dict[str, bytes], raw_names: dict[str, bytes], utf8: bool) -> bytes:
    """A zip of ``entries`` whose ASCII placeholder names are replaced by ``raw_names``
    (the same length, any bytes), with the UTF-8 flag (general purpose bit 11) as ``utf8``."""
    raw = bytearray(make_zip(entries))
    for placeholder, real in raw_names.items():
        assert len(placeholder) == len(real)
        raw = bytearray(bytes(raw).replace(placeholder.encode(), real))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = raw.find(sig)
        while pos >= 0:
            flags = struct.unpack_from("<H", raw, pos + at)[0]
            flags = flags | 0x800 if utf8 else flags & ~0x800
            raw[pos + at : pos + at + 2] = struct.pack("<H", flags)
            pos = raw.find(sig, pos + 4)
    return bytes(raw)


def _flag_utf8_with_latin1_names() -> bytes:
    """Names in Latin-1 bytes, yet the entries claim UTF-8."""
    return _patched_names({**_classes(), "cats/XtX.png": b"x"}, {"XtX": b"\xe9t\xe9"}, True)


def _cp437_names() -> bytes:
    """An old-style zip: names in code page 437, no UTF-8 flag (as Windows XP wrote them)."""
    entries = {k.replace("cats", "cafXs"): v for k, v in _classes().items()}
    return _patched_names(entries, {"cafXs": b"caf\x82s"}, False)


def _many_entries(n: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i in range(n):
            zf.writestr(f"c{i % 2}/{i}.png", b"")
    return out.getvalue()


def _lying_count(declared: int, actual: int) -> bytes:
    """``actual`` entries, the end record saying ``declared``."""
    raw = bytearray(_many_entries(actual))
    end = raw.rfind(b"PK\x05\x06")
    raw[end + 8 : end + 12] = struct.pack("<HH", declared, declared)
    return bytes(raw)


def _symlink_zip() -> bytes:
    info = zipfile.ZipInfo("cats/link.png")
    info.external_attr = (0o120777) << 16
    return make_zip([*_classes().items(), (info, b"/etc/passwd")])


def _encrypted_zip() -> bytes:
    raw = bytearray(make_zip(_classes()))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = raw.find(sig)
        raw[pos + at] |= 0x1  # the first entry says it is encrypted
    return bytes(raw)


def _lying_size() -> bytes:
    """The first member ("cats/0.png", a real image) declares 10 bytes, in its local header
    and in the directory."""
    data = make_zip(_classes())
    raw = bytearray(data)
    cd = raw.find(b"PK\x01\x02")  # the first directory entry: cats/0.png
    raw[cd + 24 : cd + 28] = struct.pack("<I", 10)
    raw[22:26] = struct.pack("<I", 10)  # its local header starts the file
    return bytes(raw)


def _look_alike_folders() -> dict[str, bytes]:
    entries = _classes()
    entries |= {k.replace("cats/", "Cats/x"): v for k, v in _classes().items() if "cats/" in k}
    return entries


def _markdown_class() -> dict[str, bytes]:
    return {k.replace("dogs", "[win](https:evil.example)"): v for k, v in _classes().items()}


def _duplicate_with_big_last() -> bytes:
    """The same name 50 times, the last a 30 MB file: read by name, each lookup read it."""
    small = _saved(photo((16, 16)), "PNG")
    entries = [("cats/1.png", small)] * 49 + [("cats/1.png", bytes(30 * 1024 * 1024))]
    return make_zip([*_classes().items(), *entries], zipfile.ZIP_DEFLATED)


ZIP_TRICKS: dict[str, Trick] = {
    "duplicate names.zip": Trick(
        lambda: make_zip([*_classes().items(), ("cats/0.png", b"again")]), refused("same name")
    ),
    "duplicates with a 30 MB last one.zip": Trick(
        _duplicate_with_big_last, refused("same name", "zip bomb")
    ),
    "names differing in case.zip": Trick(
        lambda: make_zip({**_classes(), "CATS/0.PNG": _saved(photo(), "PNG")}),
        refused("same name"),
    ),
    "names differing in normalisation.zip": Trick(
        lambda: make_zip(
            {
                **_classes(),
                unicodedata.normalize("NFC", "cats/é.png"): b"1",
                unicodedata.normalize("NFD", "cats/é.png"): b"2",
            }
        ),
        refused("same name"),
    ),
    "look-alike class folders.zip": Trick(
        lambda: make_zip(_look_alike_folders()),
        accepted("trained as two classes, with a warning naming both folders"),
    ),
    "Deflate64.zip": Trick(
        lambda: _with_method(make_zip(_classes()), 9), refused("re-zip", "Deflate64")
    ),
    "LZMA.zip": Trick(
        lambda: make_zip(_classes(), zipfile.ZIP_LZMA), accepted("LZMA is read in the decoder")
    ),
    "bzip2.zip": Trick(
        lambda: make_zip(_classes(), zipfile.ZIP_BZIP2), accepted("bzip2 is read in the decoder")
    ),
    "corrupt deflate stream.zip": Trick(
        lambda: _corrupt_member(make_zip(_classes(), zipfile.ZIP_DEFLATED), "cats/0.png"),
        skipped("cats/0.png"),
    ),
    "corrupt LZMA stream.zip": Trick(
        lambda: _corrupt_member(make_zip(_classes(), zipfile.ZIP_LZMA), "dogs/1.png"),
        skipped("dogs/1.png"),
    ),
    "corrupt bzip2 stream.zip": Trick(
        lambda: _corrupt_member(make_zip(_classes(), zipfile.ZIP_BZIP2), "dogs/2.png"),
        skipped("dogs/2.png"),
    ),
    "names not UTF-8 though flagged.zip": Trick(_flag_utf8_with_latin1_names, refused("UTF-8")),
    "code page 437 names.zip": Trick(_cp437_names, accepted("decoded as the format says")),
    "50000 entries.zip": Trick(lambda: _many_entries(50_000), refused("50,000 files")),
    "end record understates the entries.zip": Trick(
        lambda: _lying_count(3, 30_000), refused("damaged or crafted")
    ),
    "zip bomb.zip": Trick(
        lambda: make_zip({**_classes(), "cats/big.png": bytes(64 * 1024 * 1024)}, 8),
        refused("zip bomb"),
    ),
    "member larger than declared.zip": Trick(_lying_size, skipped("cats/0.png")),
    "nested zip.zip": Trick(
        lambda: make_zip({**_classes(), "cats/more.zip": make_zip({"x": b"x"})}),
        refused("another archive"),
    ),
    "symlink.zip": Trick(_symlink_zip, refused("symbolic link")),
    "encrypted.zip": Trick(_encrypted_zip, refused("encrypted")),
    "absolute path.zip": Trick(
        lambda: make_zip({**_classes(), "/etc/cron.d/x.png": b"x"}), refused("absolute path")
    ),
    "dot-dot path.zip": Trick(
        lambda: make_zip({**_classes(), "cats/../../x.png": b"x"}), refused("leaves its folder")
    ),
    "control characters in a name.zip": Trick(
        lambda: make_zip({**_classes(), "cats/a\nb.png": b"x"}), refused("control characters")
    ),
    "a 2000-character name.zip": Trick(
        lambda: make_zip({**_classes(), "cats/" + "n" * 2000 + ".png": b"x"}),
        refused("longer than 1,024"),
    ),
    "markdown class name.zip": Trick(
        lambda: make_zip(_markdown_class()),
        accepted("a class name is shown verbatim (a code span), never as a link"),
    ),
    "PNGs with 60 MB of text each.zip": Trick(
        lambda: make_zip(
            {**_classes(), **{f"cats/t{i}.png": _text_chunks_png(60) for i in range(3)}}
        ),
        accepted("the metadata stays in the decoder; the server keeps 96-pixel thumbnails"),
    ),
    "not a zip.zip": Trick(lambda: b"PK\x03\x04 but nothing else", refused("not a zip")),
    "zip cut in half.zip": Trick(
        lambda: make_zip(_classes())[: len(make_zip(_classes())) // 2], refused("not a zip")
    ),
    "empty zip.zip": Trick(lambda: make_zip({}), refused("empty")),
    "bad images only.zip": Trick(
        lambda: make_zip({"cats/1.png": b"nope", "dogs/1.png": b"nope"}),
        refused("no usable images"),
    ),
}


# --------------------------------------------------------------------------------------------
# Links: the Convolution lab's query parameters
# --------------------------------------------------------------------------------------------

LINK_TRICKS: dict[str, Trick] = {
    "markdown link as the image": Trick(
        lambda: {"lab_sample": "[win a prize](https://evil.example/login)"},
        refused("lab_sample"),
    ),
    "bare URL as the image": Trick(
        lambda: {"lab_sample": "https://evil.example/login"}, refused("lab_sample")
    ),
    "www address as the preset": Trick(
        lambda: {"lab_preset": "www.evil.example"}, refused("lab_preset")
    ),
    "e-mail address as the stride": Trick(
        lambda: {"lab_stride": "admin@evil.example"}, refused("lab_stride")
    ),
    "HTML and LaTeX as the padding": Trick(
        lambda: {"lab_padding": "<img src=x onerror=alert(1)> $\\href{https://evil}{x}$"},
        refused("lab_padding"),
    ),
    "a 1,000,000-character kernel": Trick(
        lambda: {"lab_preset": "custom", "lab_k": "0," * 500_000}, refused("characters long")
    ),
    "a kernel of URLs": Trick(
        lambda: {"lab_preset": "custom", "lab_k": "https://evil.example,1;1,1"},
        refused("lab_k"),
    ),
    "a kernel with an overflowing number": Trick(
        lambda: {"lab_preset": "custom", "lab_k": "1e999,1;1,1"}, refused("lab_k")
    ),
    "right-to-left override and NUL": Trick(
        lambda: {"lab_sample": "cat\u202egnp.exe\x00"}, refused("lab_sample")
    ),
    "100,000 characters of backticks": Trick(
        lambda: {"lab_sample": "`" * 100_000}, refused("lab_sample")
    ),
}


def _keras_tricks() -> dict[str, Trick]:
    """``tests/hostile_keras.py``'s files (built on first ``make()``; Keras is imported then)."""
    try:
        from tests import hostile_keras
    except ImportError:  # run as a script: tests/ itself is on the path
        import hostile_keras
    return {
        h.name: Trick(
            lambda h=h: h.data,
            accepted(h.why) if h.expect == hostile_keras.ACCEPT else refused(h.expect),
        )
        for h in hostile_keras.corpus()
    }


#: ``.keras`` uploads (``cnnlib.uploads.model_files``), from ``tests/hostile_keras.py``: the
#: same ``Trick`` shape (bytes → refused with words, or accepted and why).
KERAS_TRICKS: dict[str, Trick] = _keras_tricks()

#: Every file trick by kind (the link tricks are query parameters, not files).
FILE_TRICKS = {"images": IMAGE_TRICKS, "zips": ZIP_TRICKS, "keras": KERAS_TRICKS}


def write_corpus(folder: Path) -> list[Path]:
    """Write every file trick to ``folder/<kind>/<name>``; the paths written."""
    written = []
    for kind, tricks in FILE_TRICKS.items():
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name, trick in tricks.items():
            path = folder / kind / name
            path.write_bytes(trick.make())
            written.append(path)
    return written


if __name__ == "__main__":
    for p in write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")):
        print(f"{p.stat().st_size:>12,}  {p}")
