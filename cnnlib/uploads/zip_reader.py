"""Reading an uploaded zip in the decoding sandbox, entry by entry (the tasks "zip_directory"
and "zip_member"). Nothing here runs in the server: ``cnnlib.uploads.folders`` writes the
upload to a private file and asks a decoder for its directory, then for each image.

The zip's directory is as hostile as its contents, so it is bounded before it is parsed:
the entry count and the directory's size are read from the end-of-central-directory record
(``eocd_counts``: the ZIP64 one too) and refused over ``max_members`` before ``zipfile``
parses a single entry; then the parsed directory must hold exactly that many entries.
Members are read by their ``ZipInfo`` (by position in the directory), never by name, and
never past the size they declare. Every failure of ``zipfile``, ``zlib``, ``lzma`` and
``bz2`` and every name that does not decode becomes an ``ArchiveError`` (the whole archive)
or an ``InvalidImageError`` (one member, skipped) with a learner's message.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from pathlib import Path

from cnnlib.core.errors import ArchiveError, InvalidImageError
from cnnlib.core.sandbox import TaskOutput, sandbox_task
from cnnlib.data.images import decode_image

__all__ = [
    "COMPRESSION_NAMES",
    "SUPPORTED_METHODS",
    "eocd_counts",
    "list_zip",
    "member_bytes",
    "read_zip_member",
]

#: Compression methods ``zipfile`` reads: stored, Deflate, bzip2, LZMA.
SUPPORTED_METHODS = frozenset({0, 8, 12, 14})
#: What to call the methods found in the wild (APPNOTE 4.4.5).
COMPRESSION_NAMES = {
    1: "Shrink",
    6: "Implode",
    9: "Deflate64",
    10: "PKWARE DCL Implode",
    19: "IBM LZ77",
    93: "Zstandard",
    95: "XZ",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
    99: "AES encryption",
}
#: Longest member name, characters; all names together at most ``MAX_NAMES_CHARS``.
MAX_NAME_CHARS = 1024
MAX_NAMES_CHARS = 4 * 1024 * 1024
#: Largest central-directory entry counted when bounding the directory's size: the 46-byte
#: record, a name, an extra field and a comment of 1 KiB each.
MAX_ENTRY_BYTES = 46 + 3 * 1024
#: Kinds of entry in a "zip_directory" answer.
FILE, FOLDER, LINK = 0, 1, 2

_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_DAMAGED = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)
_RECREATE = "Create the zip again (e.g. with your system's “Compress” or “Send to → zip”)."


def _not_a_zip(why: str) -> ArchiveError:
    return ArchiveError(
        f"The file is not a zip archive CNN Lab can read ({why}). Upload a .zip with one folder "
        "per class (e.g. `cats/1.jpg`, `dogs/1.jpg`)."
    )


def eocd_counts(fp) -> tuple[int, int]:
    """(entries, central directory bytes) the zip in binary file ``fp`` declares in its
    end-of-central-directory record (or its ZIP64 record), read from the last 64 KiB only.
    Raises ``ArchiveError`` for a file without one or a split (multi-disk) archive."""
    size = fp.seek(0, os.SEEK_END)
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise _not_a_zip("no end-of-archive record")
    _, disk, cd_disk, _, entries, cd_bytes, _, _ = _EOCD.unpack_from(tail, pos)
    if entries == 0xFFFF or cd_bytes == 0xFFFFFFFF:  # ZIP64: the real numbers are elsewhere
        at = size - tail_len + pos - _ZIP64_LOCATOR.size
        if at < 0:
            raise _not_a_zip("a damaged ZIP64 record")
        fp.seek(at)
        sig, _, offset, _ = _ZIP64_LOCATOR.unpack(fp.read(_ZIP64_LOCATOR.size))
        if sig != b"PK\x06\x07" or offset + _ZIP64_EOCD.size > size:
            raise _not_a_zip("a damaged ZIP64 record")
        fp.seek(offset)
        record = _ZIP64_EOCD.unpack(fp.read(_ZIP64_EOCD.size))
        if record[0] != b"PK\x06\x06":
            raise _not_a_zip("a damaged ZIP64 record")
        disk, cd_disk, entries, cd_bytes = record[3], record[4], record[7], record[8]
    if disk or cd_disk:
        raise ArchiveError(
            "The zip is split into several parts (a multi-volume archive). Upload a single .zip."
        )
    return entries, cd_bytes


#: The decoder's open archive: (path, inode, size, mtime) → ZipFile (one at a time).
_open: dict[tuple, zipfile.ZipFile] = {}


def _zipfile(path: Path, max_members: int) -> zipfile.ZipFile:
    """The archive at ``path``, its directory bounded and then parsed (cached for the next
    member of the same upload)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _open:
        return _open[key]
    for zf in _open.values():
        zf.close()
    _open.clear()
    with path.open("rb") as fp:
        entries, cd_bytes = eocd_counts(fp)
    if entries > max_members:
        raise ArchiveError(
            f"The upload lists {entries:,} files, over the limit of {max_members:,}. "
            "Use fewer images."
        )
    if cd_bytes > max(1, entries) * MAX_ENTRY_BYTES:
        raise ArchiveError(
            f"The zip's directory takes {cd_bytes:,} bytes for {entries:,} entries: it is "
            f"damaged or crafted. {_RECREATE}"
        )
    try:
        zf = zipfile.ZipFile(path)
    except UnicodeDecodeError:
        raise ArchiveError(
            "The zip says its file names are UTF-8, but some are not. Rename the files with "
            f"plain names, then {_RECREATE[0].lower()}{_RECREATE[1:]}"
        ) from None
    except (*_DAMAGED, NotImplementedError, RuntimeError) as err:
        raise ArchiveError(
            f"The zip archive is damaged ({type(err).__name__}). {_RECREATE}"
        ) from None
    if len(zf.infolist()) != entries:
        zf.close()
        raise ArchiveError(
            f"The zip's directory lists {len(zf.infolist()):,} entries but its end record says "
            f"{entries:,}: it is damaged or crafted. {_RECREATE}"
        )
    _open[key] = zf
    return zf


def _name(info: zipfile.ZipInfo) -> str:
    """The member's name as its creator meant it: UTF-8 when flagged; otherwise UTF-8 when
    the bytes are (macOS and Linux zip tools write UTF-8 without the flag), else code page
    437 as the format says (always decodes)."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _kind(info: zipfile.ZipInfo) -> int:
    mode = info.external_attr >> 16
    if (mode & 0o170000) == 0o120000:
        return LINK
    return FOLDER if info.is_dir() else FILE


@sandbox_task("zip_directory")
def list_zip(source: Path, *, name: str, max_members: int) -> TaskOutput:
    """In the decoder: the directory of the zip at ``source`` as parallel lists (meta):
    names, size (unpacked bytes), packed (stored bytes), method (compression), encrypted
    (0/1), kind (``FILE``, ``FOLDER``, ``LINK``). Raises ``ArchiveError``."""
    zf = _zipfile(Path(source), max_members)
    names, size, packed, method, encrypted, kind = [], [], [], [], [], []
    total = 0
    for info in zf.infolist():
        text = _name(info)
        total += len(text)
        if len(text) > MAX_NAME_CHARS or total > MAX_NAMES_CHARS:
            raise ArchiveError(
                f"The zip holds a file name longer than {MAX_NAME_CHARS:,} characters (or "
                f"names of more than {MAX_NAMES_CHARS:,} characters in all). Use shorter names."
            )
        names.append(text)
        size.append(info.file_size)
        packed.append(info.compress_size)
        method.append(info.compress_type)
        encrypted.append(info.flag_bits & 0x1)
        kind.append(_kind(info))
    meta = {"names": names, "size": size, "packed": packed, "method": method}
    return TaskOutput(meta | {"encrypted": encrypted, "kind": kind})


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    """The member's bytes, never more than it declares (checked against its CRC by
    ``zipfile``). Raises ``InvalidImageError`` for a damaged or lying member."""
    try:
        with zf.open(info) as f:
            raw = f.read(info.file_size + 1)
    except NotImplementedError:
        what = COMPRESSION_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise InvalidImageError(
            f"{name} is compressed with {what}, which CNN Lab cannot read: re-zip the folder "
            "with standard compression (Deflate)."
        ) from None
    except RuntimeError:  # zipfile's "encrypted, password required"
        raise InvalidImageError(f"{name} is encrypted. Upload a zip without a password.") from None
    except _DAMAGED as err:  # zlib.error, lzma.LZMAError, bz2's OSError, a bad CRC, ...
        raise InvalidImageError(
            f"{name} is damaged inside the zip ({type(err).__name__}). {_RECREATE}"
        ) from None
    if len(raw) > info.file_size:
        raise InvalidImageError(f"{name} is larger than its archive entry declares. {_RECREATE}")
    return raw


@sandbox_task("zip_member")
def read_zip_member(
    source: Path, *, name: str, index: int, max_members: int, max_file_bytes: int, **image
) -> TaskOutput:
    """In the decoder: member number ``index`` of the zip at ``source`` (its ``ZipInfo``,
    never a name lookup), read within ``max_file_bytes`` and decoded by ``decode_image``
    with the ``image`` options. Raises ``InvalidImageError`` (this member is skipped) or
    ``ArchiveError`` (the whole archive)."""
    zf = _zipfile(Path(source), max_members)
    infos = zf.infolist()
    if not 0 <= index < len(infos):
        raise ArchiveError(f"The zip has no entry number {index}. {_RECREATE}")
    info = infos[index]
    if info.file_size > max_file_bytes:
        raise InvalidImageError(f"{name} is larger than {max_file_bytes / 2**20:g} MB.")
    return decode_image(_read(zf, info, name), name=name, **image)


def member_bytes(source: Path, index: int, *, name: str, max_members: int, max_bytes: int) -> bytes:
    """In a decoder: the raw bytes of member number ``index`` of the zip at ``source`` (its
    ``ZipInfo``, never a name lookup), refused over ``max_bytes``: for a task that parses a
    member that is not an image (e.g. a saved project's manifest). Raises ``ArchiveError``."""
    zf = _zipfile(Path(source), max_members)
    infos = zf.infolist()
    if not 0 <= index < len(infos):
        raise ArchiveError(f"The zip has no entry number {index}. {_RECREATE}")
    info = infos[index]
    if info.file_size > max_bytes:
        raise ArchiveError(f"{name} is larger than {max_bytes / 2**20:g} MB.")
    try:
        return _read(zf, info, name)
    except InvalidImageError as err:
        raise ArchiveError(str(err)) from None
