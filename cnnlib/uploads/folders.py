"""Your own images: a zip (or a folder upload) of class folders → a checked, streamed dataset.

The pipeline the "own images" page runs, usable without Streamlit:

1. ``open_archive(data)`` / ``open_files(files)`` never parse the upload in the server: a
   zip is written to a private temporary directory and its directory is read by a decoder of
   the sandbox (``cnnlib.core.sandbox``; ``cnnlib.uploads.zip_reader``), bounded by the entry
   count its end record declares. The listing is refused *before* anything is extracted for
   absolute paths, ``..``, control characters, symlinks, encryption, compression CNN Lab
   cannot read (Deflate64: "re-zip with standard compression"), nested archives, too many
   members, zip bombs, and names that collide once case and Unicode normalisation are
   ignored. Then each image is read by its ``ZipInfo`` and decoded in the sandbox, several
   decoders at once, and stored as a file the decoder wrote (a JPEG for a JPEG photo, else a
   PNG; shrunk until its shorter side is ``STORE_SIDE``, the largest training size) in a
   private temporary directory
   (``ImageFolders.cleanup()`` removes it; so does garbage collection): TensorFlow later reads
   only files CNN Lab made. The class of an image is its folder: ``cats/1.jpg`` or, with one
   wrapping folder, ``photos/cats/1.jpg``.
2. ``ImageFolders.health()`` reports per-class counts, skipped files with their reasons,
   duplicates across classes, tiny images, class folders whose names differ only by case or
   accents' encoding, and a few samples per class (thumbnails the decoder made of the
   first ``SAMPLES_PER_CLASS`` images of each class, and only of those); blocking
   problems
   (fewer than 2 classes, too few images in a class) are listed in ``issues``.
3. ``ImageFolders.split(image_size)`` gives a ``FolderData`` (the training core's
   ``TrainingData`` protocol): a stratified, seeded train/validation split whose ``batches``
   read the files with ``tf.data``, decode, resize, cache (in memory within a byte budget,
   else to a file in the temporary directory) and prefetch — never all decoded images at once
   unless they fit the budget.
4. ``train_from_archive(data, recipe)`` runs the whole thing synchronously: the page's own
   job (``cnnlib.training.transfer.OwnImagesJob``), started and waited for.

Caps are module constants, each overridable by an environment variable (read at call time).
TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnlib.core.budgets import budgets, format_bytes
from cnnlib.core.errors import (
    ArchiveError,
    BudgetError,
    CNNLabError,
    InvalidArgumentError,
    SandboxError,
    TrainingFailedError,
)
from cnnlib.core.sandbox import SandboxJob, SandboxLimits, SandboxResult, run_in_sandbox, run_many
from cnnlib.core.text import safe_text
from cnnlib.data.images import DecodedImage, decode_options, decoded_image
from cnnlib.data.mnist import CLASS_NAMES, DEBIAN_FASHION_DIR, read_idx
from cnnlib.training import transfer
from cnnlib.training.tasks import TrainingSlots
from cnnlib.uploads import zip_reader

__all__ = [
    "FolderData",
    "HealthReport",
    "ImageFolders",
    "OwnTrainingResult",
    "SkippedFile",
    "example_archive",
    "open_archive",
    "open_files",
    "train_from_archive",
]

#: The upload caps are ``cnnlib.core.budgets.Budgets.max_archive_*``
#: (``$CNNLAB_MAX_ARCHIVE_BYTES``…). Members smaller than this are not ratio-checked (a tiny text
#: file may compress 200×).
RATIO_MIN_BYTES = 1024 * 1024
#: An image whose shorter side is below this many pixels is reported as tiny.
TINY_SIDE = 16
#: A class with this many times fewer images than the largest gets an imbalance warning.
IMBALANCE_RATIO = 3.0
#: Samples kept per class for the health grid (thumbnails of at most SAMPLE_SIDE pixels).
SAMPLES_PER_CLASS = 6
SAMPLE_SIDE = 96
#: Stored copies are shrunk until their shorter side is this many pixels: the largest side
#: a training image may have (``FolderData``), so training only ever shrinks them further.
STORE_SIDE = 1024
#: The zip directory's answer may hold up to this many bytes of JSON (names are bounded by
#: ``zip_reader.MAX_NAMES_CHARS`` characters in all).
DIRECTORY_HEADER_BYTES = 32 * 1024 * 1024

#: File endings refused as nested archives.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar")
#: Operating-system clutter skipped without decoding.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why: ``path`` as the upload named it (hostile text:
    show it with ``safe_text``), ``reason`` a sentence for the learner in markdown, the
    file's name in it already shown verbatim."""

    path: str
    reason: str


@dataclass
class HealthReport:
    """What the learner should know before training.

    ``issues`` block training (``raise_for_issues``); ``warnings`` do not. Both are markdown
    in which every name from the upload is a code span (``safe_text``): show them as they are.
    """

    class_names: tuple[str, ...]
    #: Images per class name.
    counts: dict[str, int]
    skipped: list[SkippedFile]
    #: (path in one class, path in another class) pairs with byte-identical content.
    duplicates: list[tuple[str, str]]
    #: (path, (width, height)) of images with a side under ``TINY_SIDE`` pixels.
    tiny: list[tuple[str, tuple[int, int]]]
    #: Up to ``SAMPLES_PER_CLASS`` RGB thumbnails per class, for a grid.
    samples: dict[str, list[Image.Image]]
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def raise_for_issues(self) -> None:
        """Raise ``ArchiveError`` listing every blocking issue (no-op when there are none)."""
        if self.issues:
            raise ArchiveError(" ".join(self.issues))


# --------------------------------------------------------------------------------------------
# Checks before extraction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str  # as listed
    parts: tuple[str, ...]  # normalised path parts
    size: int  # uncompressed bytes
    compressed: int | None  # None for folder uploads
    is_dir: bool
    index: int | None = None  # position in the zip's directory (None for folder uploads)


def _parts(name: str) -> tuple[str, ...]:
    """Path parts of a member name; raises ``ArchiveError`` for absolute or ``..`` paths and
    control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ArchiveError(
            f"The upload contains a file name with control characters ({safe_text(name)}). "
            "Rename it with ordinary characters."
        )
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise ArchiveError(
            f"The upload contains an absolute path ({safe_text(name)}). Only relative paths like "
            "`cats/1.jpg` are accepted: zip the class folders themselves."
        )
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(
            f"The upload contains a path that leaves its folder ({safe_text(name)}, with `..`). "
            "Such archives are refused; zip the class folders themselves."
        )
    return parts


def same_name_key(text: str) -> str:
    """``text`` as file systems that ignore case and Unicode normalisation (Windows, macOS)
    compare it: NFC-normalised, case-folded, NFC again."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _check_unique(members: Sequence[_Member]) -> None:
    """Refuse two files whose paths are the same once case and normalisation are ignored
    (one would overwrite the other when unpacked; a name lookup would read only one)."""
    seen: dict[str, str] = {}
    for m in members:
        if m.is_dir:
            continue
        key = same_name_key("/".join(m.parts))
        if key in seen:
            raise ArchiveError(
                f"The upload lists {safe_text(seen[key])} and {safe_text(m.name)}: the same "
                "name once capital letters and accents' encoding are ignored, so one would "
                "overwrite the other. "
                "Rename one of them and upload again."
            )
        seen[key] = m.name


def _check_members(members: Sequence[_Member], total_bytes: int) -> None:
    """Refuse the whole upload when any cap or safety rule is broken (nothing extracted yet)."""
    max_upload = budgets().max_archive_bytes
    if total_bytes > max_upload:
        raise ArchiveError(
            f"The upload is {format_bytes(total_bytes)}, over the limit of "
            f"{format_bytes(max_upload)}. Use fewer or smaller images."
        )
    max_members = budgets().max_archive_members
    if len(members) > max_members:
        raise ArchiveError(
            f"The upload lists {len(members):,} files, over the limit of {max_members:,}. "
            "Use fewer images."
        )
    total = sum(m.size for m in members)
    max_total = budgets().max_uncompressed_bytes
    if total > max_total:
        raise ArchiveError(
            f"The archive unpacks to {format_bytes(total)}, over the limit of "
            f"{format_bytes(max_total)}. Use fewer or smaller images."
        )
    max_ratio = budgets().max_compression_ratio
    for m in members:
        if m.is_dir:
            continue
        if m.parts and m.parts[-1].lower().endswith(ARCHIVE_SUFFIXES):
            raise ArchiveError(
                f"The upload contains another archive ({safe_text(m.name)}). Archives inside "
                "archives are refused: unpack it and zip the image folders directly."
            )
        if m.compressed is not None and m.size >= RATIO_MIN_BYTES:
            ratio = m.size / max(m.compressed, 1)
            if ratio > max_ratio:
                raise ArchiveError(
                    f"{safe_text(m.name)} unpacks {ratio:,.0f} times larger than it is stored "
                    f"(limit {max_ratio}×): this looks like a zip bomb, so the archive is refused."
                )


def _zip_members(listing: SandboxResult, max_members: int) -> list[_Member]:
    """The members of a zip from a decoder's "zip_directory" answer, checked (types, counts)
    and refused for symlinks, encryption and compression CNN Lab cannot read."""
    columns = ("names", "size", "packed", "method", "encrypted", "kind")
    names, size, packed, method, encrypted, kind = (listing.items(c, max_members) for c in columns)
    if len({len(c) for c in (names, size, packed, method, encrypted, kind)}) != 1:
        raise listing.malformed("the directory's columns differ in length")
    members, unreadable = [], []
    for i, name in enumerate(names):
        numbers = (size[i], packed[i], method[i], encrypted[i], kind[i])
        if not isinstance(name, str) or len(name) > zip_reader.MAX_NAME_CHARS:
            raise listing.malformed("a name is not text")
        if not all(type(v) is int and 0 <= v < 2**64 for v in numbers):
            raise listing.malformed("a size is not a whole number")
        if kind[i] == zip_reader.LINK:
            raise ArchiveError(
                f"The archive contains a symbolic link ({safe_text(name)}). Links are refused; "
                "zip the image files themselves."
            )
        if encrypted[i]:
            raise ArchiveError(f"{safe_text(name)} is encrypted. Upload a zip without a password.")
        is_dir = kind[i] == zip_reader.FOLDER
        if not is_dir and method[i] not in zip_reader.SUPPORTED_METHODS:
            unreadable.append((name, method[i]))
        members.append(_Member(name, _parts(name), size[i], packed[i], is_dir, i))
    if unreadable:
        name, code = unreadable[0]
        what = zip_reader.COMPRESSION_NAMES.get(code, f"compression method {code}")
        more = f" and {len(unreadable) - 1:,} more files" if len(unreadable) > 1 else ""
        raise ArchiveError(
            f"{safe_text(name)}{more} are compressed with {what}, which CNN Lab cannot read "
            "(Windows uses it for big folders). Re-zip the folder with standard compression "
            "(Deflate), e.g. with 7-Zip or `zip -r`, and upload it again."
        )
    return members


def _is_junk(parts: tuple[str, ...]) -> bool:
    return (
        parts[0] == "__MACOSX"
        or parts[-1].startswith(".")
        or parts[-1].lower() in _JUNK_NAMES
        or any(p.startswith(".") for p in parts[:-1])
    )


def _class_paths(members: Sequence[_Member]) -> tuple[list[tuple[_Member, str]], list[str]]:
    """(member, class folder) for each candidate image, and the names skipped as top-level.

    One wrapping folder is allowed: when every file lies under the same first folder and some
    lie deeper, that folder is dropped (``photos/cats/1.jpg`` → class ``cats``; a
    ``photos/README.txt`` beside the class folders is then skipped as top-level).
    """
    files = [m for m in members if not m.is_dir and m.parts and not _is_junk(m.parts)]
    strip = 0
    if files and len({m.parts[0] for m in files}) == 1 and any(len(m.parts) >= 3 for m in files):
        strip = 1
    placed, top_level = [], []
    for m in files:
        parts = m.parts[strip:]
        if len(parts) < 2:
            top_level.append(m.name)
        else:
            placed.append((m, parts[0]))
    return placed, top_level


# --------------------------------------------------------------------------------------------
# ImageFolders
# --------------------------------------------------------------------------------------------


class ImageFolders:
    """Validated images of an upload, stored in a private temporary directory.

    Files are stored as ``<tmp>/images/<n>/<k>.png|.jpg`` (never under the upload's own names).
    ``class_names`` are the folder names, sorted (as ``image_dataset_from_directory`` does).
    Call ``cleanup()`` (or use ``with``) when done; garbage collection removes it too.
    """

    def __init__(self, workdir: str | os.PathLike | None = None) -> None:
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="cnnlab-own-", dir=workdir)
        #: The private temporary directory (everything written goes below it).
        self.root = Path(self._tmp.name)
        self.class_names: tuple[str, ...] = ()
        #: (stored path, label index) for every usable image.
        self.files: list[tuple[Path, int]] = []
        self.skipped: list[SkippedFile] = []
        self._sizes: dict[Path, tuple[int, int]] = {}
        self._sources: dict[Path, str] = {}
        self._duplicates: list[tuple[str, str]] = []
        self._samples: dict[str, list[Image.Image]] = {}
        self._empty_folders: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Remove the temporary directory and everything in it (only its owner does)."""
        if self._tmp is not None:
            self._tmp.cleanup()

    def __getstate__(self) -> dict:
        """A copy for a training's child process: the files, not the ownership of the
        directory (the child never removes it) nor the sample thumbnails."""
        state = self.__dict__.copy()
        state["_tmp"] = None
        state["_samples"] = {}
        return state

    def __enter__(self) -> ImageFolders:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- contents ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Images per class name."""
        labels = np.bincount([lab for _, lab in self.files], minlength=len(self.class_names))
        return {name: int(labels[i]) for i, name in enumerate(self.class_names)}

    def __len__(self) -> int:
        return len(self.files)

    def source(self, path: str | os.PathLike) -> str:
        """The name a stored file had in the upload (hostile text: escape it to show it)."""
        return self._sources.get(Path(path), "?")

    def _index(self, path: str | os.PathLike) -> int:
        path = Path(path)
        for i, (p, _) in enumerate(self.files):
            if p == path:
                return i
        raise InvalidArgumentError("That image is not (or no longer) in the data set.")

    def relabel(self, path: str | os.PathLike, label: int) -> None:
        """Move one stored image to class ``label`` (an index into ``class_names``)."""
        if isinstance(label, bool) or not 0 <= int(label) < len(self.class_names):
            raise InvalidArgumentError(f"Class index {label} is not one of the classes.")
        i = self._index(path)
        self.files[i] = (self.files[i][0], int(label))

    def exclude(self, path: str | os.PathLike) -> None:
        """Leave one stored image out of every later split (its file stays until cleanup)."""
        del self.files[self._index(path)]

    def health(self) -> HealthReport:
        """Counts, skipped files, duplicates, tiny images, samples, issues and warnings."""
        counts = self.counts()
        issues, warnings = [], []
        min_per_class = budgets().min_images_per_class
        if len(self.class_names) < 2:
            issues.append(
                f"Found {len(self.class_names)} class folder(s) with images; training needs at "
                "least 2 (one folder per class)."
            )
        few = [f"{safe_text(name)} ({n})" for name, n in counts.items() if n < min_per_class]
        if few:
            issues.append(
                f"Too few images in: {', '.join(few)}. Each class needs at least "
                f"{min_per_class} images; add more or remove that folder."
            )
        if counts and min(counts.values()) > 0:
            largest, smallest = max(counts.values()), min(counts.values())
            if largest / smallest >= IMBALANCE_RATIO:
                warnings.append(
                    f"The classes are imbalanced: {smallest} to {largest} images. The model "
                    "may favour the larger classes; add images to the smaller ones."
                )
        if self._duplicates:
            warnings.append(
                f"{len(self._duplicates)} image(s) appear in two classes with identical bytes; "
                "the model cannot tell them apart. Remove them from the wrong class."
            )
        tiny = [
            (self._sources[p], self._sizes[p])
            for p, _ in self.files
            if min(self._sizes[p]) < TINY_SIDE
        ]
        if tiny:
            warnings.append(
                f"{len(tiny)} image(s) are smaller than {TINY_SIDE} pixels on a side; they "
                "carry little detail once resized."
            )
        for group in _look_alike(self.class_names):
            warnings.append(
                "The class folders "
                + " and ".join(safe_text(n) for n in group)
                + " differ only in "
                "capital letters or in how their accents are encoded: they are trained as "
                f"{len(group)} different classes. Merge or rename them."
            )
        if self.skipped:
            warnings.append(f"{len(self.skipped)} file(s) were skipped (listed with reasons).")
        for folder in self._empty_folders:
            warnings.append(f"The folder {safe_text(folder)} has no usable images and was ignored.")
        return HealthReport(
            class_names=self.class_names,
            counts=counts,
            skipped=list(self.skipped),
            duplicates=list(self._duplicates),
            tiny=tiny,
            samples={k: list(v) for k, v in self._samples.items()},
            issues=issues,
            warnings=warnings,
        )

    def split(
        self,
        image_size: int | tuple[int, int],
        *,
        validation_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
    ) -> FolderData:
        """A stratified, seeded split of the images as a ``FolderData`` of ``image_size``."""
        return FolderData(
            self,
            image_size,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )

    # -- ingestion ---------------------------------------------------------------------------
    def _ingest(
        self, placed: Sequence[tuple[_Member, str]], job: Callable[[_Member, dict], SandboxJob]
    ) -> None:
        """Decode each (member, class folder) in the sandbox (``job(member, options)``: its
        request with the "image" task's ``options``; several decoders at once) and store what
        comes back, one image at a time: the file the decoder made (``<n>.jpg`` or
        ``<n>.png``), its facts, and a thumbnail for the first ``SAMPLES_PER_CLASS`` of a
        class (only those are asked for one; when some of them are refused, the next stored
        images of that class are asked for theirs afterwards)."""
        by_folder: dict[str, list[tuple[Path, _Member]]] = {}
        folder_ids: dict[str, int] = {}
        seen: dict[str, tuple[str, str]] = {}  # sha1 → (class folder, path)
        max_file = budgets().image_file_bytes
        plain, with_thumbnail = _image_options(thumbnail=False), _image_options(thumbnail=True)
        asked: dict[str, int] = {}  # thumbnails asked for, per class folder
        requests: list[dict | None] = []  # each placed member's options (None: too large)
        for member, folder in placed:
            if member.size > max_file:
                requests.append(None)
                continue
            asked[folder] = asked.get(folder, 0) + 1
            requests.append(with_thumbnail if asked[folder] <= SAMPLES_PER_CLASS else plain)
        answers = run_many(
            job(m, o) for (m, _), o in zip(placed, requests, strict=True) if o is not None
        )
        for (member, folder), options in zip(placed, requests, strict=True):
            folder_ids.setdefault(folder, len(folder_ids))
            by_folder.setdefault(folder, [])
            if options is None:
                reason = f"larger than {format_bytes(max_file)}"
                self.skipped.append(SkippedFile(member.name, reason))
                continue
            decoded = _decoded(next(answers), options)
            if isinstance(decoded, CNNLabError):
                self.skipped.append(SkippedFile(member.name, str(decoded)))
                continue
            if decoded.sha1 in seen and seen[decoded.sha1][0] != folder:
                self._duplicates.append((seen[decoded.sha1][1], member.name))
            seen.setdefault(decoded.sha1, (folder, member.name))
            target = self.root / "images" / str(folder_ids[folder])
            if not by_folder[folder]:
                target.mkdir(parents=True, exist_ok=True)
            path = target / f"{len(by_folder[folder])}{decoded.stored_suffix}"
            path.write_bytes(decoded.stored)
            by_folder[folder].append((path, member))
            self._sizes[path] = decoded.original_size
            self._sources[path] = member.name
            samples = self._samples.setdefault(folder, [])
            if decoded.thumbnail is not None and len(samples) < SAMPLES_PER_CLASS:
                samples.append(decoded.thumbnail)
        self._fill_samples(by_folder, job)
        self._empty_folders = sorted(f for f, paths in by_folder.items() if not paths)
        self.class_names = tuple(sorted(f for f, paths in by_folder.items() if paths))
        self._samples = {k: self._samples[k] for k in self.class_names}
        for label, name in enumerate(self.class_names):
            self.files += [(p, label) for p, _ in by_folder[name]]

    def _fill_samples(
        self,
        by_folder: dict[str, list[tuple[Path, _Member]]],
        job: Callable[[_Member, dict], SandboxJob],
    ) -> None:
        """Thumbnails for classes that got fewer than ``SAMPLES_PER_CLASS`` because some of
        their first images were refused: the next stored images of the class, decoded
        again in the sandbox for their thumbnail alone (nothing when no image was refused)."""
        options = _image_options(thumbnail=True) | {"store_side": 0}
        wanted: list[tuple[str, _Member]] = []
        for folder, stored in by_folder.items():
            have = len(self._samples.get(folder, []))
            missing = min(SAMPLES_PER_CLASS, len(stored)) - have
            # the first `have` stored images of the class came with theirs
            wanted += [(folder, m) for _, m in stored[have : have + max(0, missing)]]
        answers = run_many(job(m, options) for _, m in wanted)
        for (folder, _), answer in zip(wanted, answers, strict=True):
            decoded = _decoded(answer, options)
            if not isinstance(decoded, CNNLabError):
                self._samples.setdefault(folder, []).append(decoded.thumbnail)

    def _require_images(self, what: str) -> None:
        if not self.files:
            reasons = "; ".join(f"{safe_text(s.path)}: {s.reason}" for s in self.skipped[:3])
            raise ArchiveError(
                f"{what} contains no usable images"
                + (f" ({reasons})" if reasons else "")
                + ". Put JPEG or PNG images in one folder per class, e.g. `cats/1.jpg`, "
                "`dogs/1.jpg`."
            )
        if len(self.class_names) < 2:
            raise ArchiveError(
                f"{what} has images of only one class ({safe_text(self.class_names[0])}). A "
                "classifier needs at least 2 classes: put each class's images in its own folder."
            )


def _look_alike(names: Sequence[str]) -> list[list[str]]:
    """Groups of class names that are the same once case and normalisation are ignored."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(same_name_key(name), []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def _image_options(*, thumbnail: bool) -> dict:
    """What the decoder makes of each image of an upload: the facts, the file to store and,
    with ``thumbnail``, a thumbnail for the health grid; not the full image (the server does
    not keep it)."""
    side = SAMPLE_SIDE if thumbnail else 0
    return decode_options(budgets(), thumbnail_side=side, store_side=STORE_SIDE, with_image=False)


def _decoded(answer: SandboxResult | CNNLabError, options: dict) -> DecodedImage | CNNLabError:
    """A decoder's answer for one image, checked; its error (any CNNLabError) as it is."""
    if isinstance(answer, CNNLabError):
        return answer
    try:
        return decoded_image(answer, options)
    except SandboxError as err:
        return err


def _listing(upload: Path) -> list[_Member]:
    """The zip's members, from a decoder's reading of its directory."""
    max_members = budgets().max_archive_members
    limits = SandboxLimits(header_bytes=DIRECTORY_HEADER_BYTES)
    try:
        listing = run_in_sandbox(
            "zip_directory", upload, name="The archive", limits=limits, max_members=max_members
        )
        return _zip_members(listing, max_members)
    except SandboxError as err:
        raise ArchiveError(str(err)) from err


def open_archive(data: bytes, *, workdir: str | os.PathLike | None = None) -> ImageFolders:
    """Check, extract and validate a zip of class folders, in the decoding sandbox.

    ``data``: the zip file's bytes. It is written to a new private temporary directory
    (inside ``workdir`` when given) for the decoders to read; the images are stored there.
    Raises ``ArchiveError`` (a ``ValueError``) with a plain message for a non-zip, an empty,
    damaged or unsafe archive (see the module), or an archive without images of at least 2
    classes. Images that cannot be used are skipped with their reason (``health()``).
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # (a bytes upload is not copied: it may be hundreds of MB)
    _check_members([], len(data))
    if not data:
        raise ArchiveError("The file is empty (0 bytes). Upload a .zip of class folders.")
    folders = ImageFolders(workdir)
    try:
        upload = folders.root / "upload.zip"
        upload.write_bytes(data)
        try:
            members = _listing(upload)
            if not [m for m in members if not m.is_dir]:
                raise ArchiveError(
                    "The zip archive is empty. Put one folder per class inside, with the images."
                )
            _check_members(members, len(data))
            _check_unique(members)
            placed, top_level = _class_paths(members)
            folders.skipped += [
                SkippedFile(n, "not inside a class folder (the class is the folder's name)")
                for n in top_level
            ]
            archive = {
                "max_members": budgets().max_archive_members,
                "max_file_bytes": budgets().image_file_bytes,
            }
            folders._ingest(
                placed,
                lambda m, options: SandboxJob(
                    "zip_member",
                    upload,
                    safe_text(m.name),
                    options | archive | {"index": m.index},
                ),
            )
        finally:
            upload.unlink(missing_ok=True)
        folders._require_images("The archive")
    except BaseException:
        folders.cleanup()
        raise
    return folders


def open_files(
    files: Sequence[tuple[str, bytes]], *, workdir: str | os.PathLike | None = None
) -> ImageFolders:
    """Like ``open_archive`` for a folder upload: (relative path, bytes) for each file."""
    members = [
        _Member(name=name, parts=_parts(name), size=len(raw), compressed=None, is_dir=False)
        for name, raw in files
    ]
    if not members:
        raise ArchiveError("No files were uploaded. Choose a folder with one folder per class.")
    _check_members(members, sum(m.size for m in members))
    _check_unique(members)
    raws = {m.name: raw for m, (_, raw) in zip(members, files, strict=True)}
    placed, top_level = _class_paths(members)
    folders = ImageFolders(workdir)
    try:
        folders.skipped += [
            SkippedFile(n, "not inside a class folder (the class is the folder's name)")
            for n in top_level
        ]
        folders._ingest(
            placed,
            lambda m, options: SandboxJob("image", raws[m.name], safe_text(m.name), options),
        )
        folders._require_images("The upload")
    except BaseException:
        folders.cleanup()
        raise
    return folders


# --------------------------------------------------------------------------------------------
# FolderData: the TrainingData protocol over stored files
# --------------------------------------------------------------------------------------------


def _size_pair(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and 8 <= s <= 1024 for s in size):
        raise InvalidArgumentError(
            f"image_size must be a side or (height, width) between 8 and 1024, got {image_size}."
        )
    return int(size[0]), int(size[1])


class FolderData:
    """A stratified split of an ``ImageFolders`` as the training core's ``TrainingData``.

    ``batches`` yields (images (B, H, W, 3) float32 raw pixels 0..255, labels (B,) int32).
    The split is per class: each class's files are shuffled with ``seed`` and
    ``validation_fraction`` (at least one image when the fraction is positive) goes to
    "validation", ``test_fraction`` to "test", the rest to "train".
    """

    def __init__(
        self,
        folders: ImageFolders,
        image_size: int | tuple[int, int],
        *,
        validation_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1) or (
            validation_fraction + test_fraction >= 1
        ):
            raise InvalidArgumentError(
                "validation_fraction and test_fraction must be in [0, 1) with a sum below 1, "
                f"got {validation_fraction} and {test_fraction}."
            )
        self.folders = folders
        self.class_names: tuple[str, ...] = folders.class_names
        h, w = _size_pair(image_size)
        self.input_shape: tuple[int, int, int] = (h, w, 3)
        self.seed = seed
        self.validation_fraction, self.test_fraction = validation_fraction, test_fraction
        rng = np.random.default_rng(seed)
        paths = np.array([str(p) for p, _ in folders.files])
        labels = np.array([lab for _, lab in folders.files], dtype=np.int32)
        chosen: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        for label in range(len(self.class_names)):
            idx = rng.permutation(np.flatnonzero(labels == label))
            n_val = _share(len(idx), validation_fraction)
            n_test = _share(len(idx), test_fraction)
            chosen["validation"].append(idx[:n_val])
            chosen["test"].append(idx[n_val : n_val + n_test])
            chosen["train"].append(idx[n_val + n_test :])
        self._split: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, parts in chosen.items():
            idx = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            self._split[name] = (paths[idx], labels[idx])

    def _check(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in SPLITS:
            raise InvalidArgumentError(f"split must be one of {SPLITS}, got {split!r}.")
        return self._split[split]

    def files(self, split: str) -> tuple[list[str], np.ndarray]:
        """(stored file paths, labels (N,) int32) of a split, in its fixed order."""
        paths, labels = self._check(split)
        return list(paths), labels.copy()

    def counts(self, split: str) -> dict[str, int]:
        labels = self._check(split)[1]
        per = np.bincount(labels, minlength=len(self.class_names))
        return {name: int(per[i]) for i, name in enumerate(self.class_names)}

    def size(self, split: str) -> int:
        return len(self._check(split)[1])

    def decoded_bytes(self, split: str) -> int:
        """Bytes the split's images take once decoded and resized (uint8)."""
        h, w, c = self.input_shape
        return self.size(split) * h * w * c

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(images (N, H, W, 3) uint8, labels (N,) int32, stored paths) of a split, decoded
        as for training. Refused (``InvalidArgumentError``) above the folder cache budget
        (``budgets().folder_cache_bytes``)."""
        budget = budgets().folder_cache_bytes
        if self.decoded_bytes(split) > budget:
            raise InvalidArgumentError(
                f"The {split} images take {format_bytes(self.decoded_bytes(split))} decoded, over "
                f"{format_bytes(budget)}; use a smaller image size or fewer images."
            )
        paths, labels = self.files(split)
        paths = [str(p) for p in paths]
        x = np.zeros((len(paths), *self.input_shape), np.uint8)
        start = 0
        for images, _ in self.images(split).batch(256):
            x[start : start + len(images)] = np.asarray(images)
            start += len(images)
        return x, labels, paths

    def images(self, split: str):
        """``tf.data.Dataset`` of (image (H, W, 3) uint8, label int32), fixed order, cached.

        Cached in memory when the split's decoded size fits ``budgets().folder_cache_bytes``
        ($CNNLAB_FOLDER_CACHE_BYTES), else to a file in the temporary directory.
        """
        import tensorflow as tf

        paths, labels = self._check(split)
        h, w, _ = self.input_shape

        @tf.autograph.experimental.do_not_convert  # plain TF ops: nothing to convert
        def decode(path, label):
            # Stored files are 8-bit RGB JPEGs or PNGs the decoding sandbox wrote
            # (``open_archive``). JPEGs with libjpeg's accurate integer DCT, as Pillow
            # decodes them (and the pages' images): TF's default, the fast one, is off by
            # ~3 grey levels on average.
            raw = tf.io.read_file(path)
            image = tf.cond(
                tf.io.is_jpeg(raw),
                lambda: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
                lambda: tf.io.decode_png(raw, channels=3),
            )
            image = tf.image.resize(image, (h, w))
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

        ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels))
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if self.decoded_bytes(split) <= budgets().folder_cache_bytes:
            return ds.cache()
        cache_dir = self.folders.root / "cache"
        cache_dir.mkdir(exist_ok=True)
        return ds.cache(str(cache_dir / f"{split}-{h}x{w}-{self.seed}-{time.monotonic_ns()}"))

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        epochs: int = 1,
        seed: int = 0,
        shuffle: bool | None = None,
    ):
        """(images (B, H, W, 3) float32 0..255, labels (B,) int32) batches of a split.

        "train" (or ``shuffle=True``): ``epochs`` passes, each in a fresh order that depends
        only on (``seed``, epoch) — tf.data's seeded shuffle, reshuffled each pass; other
        splits: one pass in fixed order. The shuffle buffer holds the whole split when it is
        cached in memory, else as many images as fit ``budgets().folder_cache_bytes``.
        """
        import tensorflow as tf

        if batch_size < 1 or epochs < 1:
            raise InvalidArgumentError("batch_size and epochs must be at least 1.")
        shuffle = (split == "train") if shuffle is None else shuffle
        ds = self.images(split)
        if shuffle:
            h, w, c = self.input_shape
            budget = budgets().folder_cache_bytes // (h * w * c)
            buffer = max(1, min(self.size(split), budget))
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size).repeat(epochs)
        else:
            ds = ds.batch(batch_size)
        to_float = tf.autograph.experimental.do_not_convert(
            lambda x, y: (tf.cast(x, tf.float32), y)
        )
        return ds.map(to_float).prefetch(tf.data.AUTOTUNE)

    def to_portable(self, max_bytes: int) -> FolderBundle:
        """This split for another machine, naming no path of this one (see ``FolderBundle``).
        Raises ``BudgetError`` when the stored files take more than ``max_bytes``."""
        return FolderBundle.of(self, max_bytes)


@dataclass(frozen=True, eq=False)
class FolderBundle:
    """A ``FolderData`` as bytes, for a training on another machine (a Ray cluster's node).

    ``files``: the checked, stored image files' bytes (JPEG or PNG as stored), in the
    order of ``ImageFolders.files``, with ``suffixes`` and ``labels`` (indices into
    ``class_names``); the split's ``image_size``, fractions and ``seed``; ``sizes``: images
    per split, checked again when rebuilt. ``rebuild()`` writes the files into a private
    temporary folder there and splits them the same way.
    """

    class_names: tuple[str, ...]
    files: tuple[bytes, ...]
    suffixes: tuple[str, ...]
    labels: tuple[int, ...]
    image_size: tuple[int, int]
    validation_fraction: float
    test_fraction: float
    seed: int
    sizes: tuple[int, int, int]

    @classmethod
    def of(cls, data: FolderData, max_bytes: int) -> FolderBundle:
        """The bundle of ``data``; ``BudgetError`` (nothing read) above ``max_bytes``."""
        stored = data.folders.files
        total = sum(path.stat().st_size for path, _ in stored)
        if total > max_bytes:
            raise BudgetError(
                f"Your images take {format_bytes(total)}, more than the "
                f"{format_bytes(max_bytes)} one training may send to the training cluster. "
                "Use fewer or smaller images."
            )
        return cls(
            class_names=tuple(data.class_names),
            files=tuple(path.read_bytes() for path, _ in stored),
            suffixes=tuple(path.suffix for path, _ in stored),
            labels=tuple(int(label) for _, label in stored),
            image_size=data.input_shape[:2],
            validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction,
            seed=data.seed,
            sizes=tuple(data.size(s) for s in SPLITS),
        )

    @property
    def nbytes(self) -> int:
        return sum(len(f) for f in self.files)

    def rebuild(self) -> FolderData:
        """The ``FolderData`` again, its files in a new private temporary folder here."""
        folders = ImageFolders()
        folders.class_names = self.class_names
        for index, (raw, suffix, label) in enumerate(
            zip(self.files, self.suffixes, self.labels, strict=True)
        ):
            target = folders.root / "images" / str(label)
            target.mkdir(parents=True, exist_ok=True)
            path = target / f"{index}{suffix}"
            path.write_bytes(raw)
            folders.files.append((path, label))
        data = folders.split(
            self.image_size,
            validation_fraction=self.validation_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
        )
        if tuple(data.size(s) for s in SPLITS) != self.sizes:
            raise ArchiveError("The images did not arrive whole on the training cluster.")
        return data


def _share(n: int, fraction: float) -> int:
    """Images of a class of ``n`` that a split of ``fraction`` gets (≥ 1 when positive)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


# --------------------------------------------------------------------------------------------
# A built-in example set
# --------------------------------------------------------------------------------------------

#: Fashion-MNIST classes of the example set (indices into ``cnnlib.data.mnist.CLASS_NAMES``).
EXAMPLE_CLASSES = (1, 5, 7, 8)  # Trouser, Sandal, Sneaker, Bag


def example_archive(
    n_per_class: int = 60,
    classes: Sequence[int] = EXAMPLE_CLASSES,
    *,
    size: int = 28,
    offset: int = 0,
) -> bytes:
    """A zip of class folders made from real Fashion-MNIST images, for trying the page.

    The images are the first ``n_per_class`` (after ``offset``) of each class in Debian's
    Fashion-MNIST test set (``/usr/share/datasets/fashion-mnist``, read with
    ``cnnlib.data.mnist.read_idx``), inverted to dark clothes on a white background, as ``size``
    × ``size`` grayscale PNGs in folders named after the classes (``Trouser/0.png``, ...).
    Raises ``DataUnavailableError`` when the data is not installed.
    """

    if not 1 <= n_per_class <= 1000 or not 2 <= len(classes) <= 10:
        raise InvalidArgumentError("n_per_class must be 1..1000 and classes 2..10 indices.")
    images = read_idx(DEBIAN_FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DEBIAN_FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for c in classes:
            name = CLASS_NAMES["fashion_mnist"][c].replace("/", "-")
            for k, i in enumerate(np.flatnonzero(labels == c)[offset : offset + n_per_class]):
                img = Image.fromarray(255 - images[i])
                if size != 28:
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                png = io.BytesIO()
                img.save(png, format="PNG")
                zf.writestr(f"{name}/{k}.png", png.getvalue())
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The whole pipeline, synchronously
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnTrainingResult:
    """What ``train_from_archive``'s job left: the model and how it got there."""

    #: The full model: raw pixels (N, H, W, 3) 0..255 → class probabilities (N, classes);
    #: None when nothing was learned (stopped before the first batch).
    model: Any
    class_names: tuple[str, ...]
    recipe: transfer.OwnImagesRecipe
    #: The job's last progress: stages, curves (the head's validation accuracy in
    #: ``head_val_accuracy`` after a fine-tuning), times, where the backbone's weights came
    #: from (``weights_source``) and whether they are Keras' own (``weights_verified``).
    progress: transfer.OwnProgress
    health: HealthReport
    seconds: float

    @property
    def val_accuracy(self) -> float:
        """Best validation accuracy over every epoch run (head and fine-tuning); nan
        without a validation split."""
        p = self.progress
        accuracies = [*p.head_val_accuracy, *p.val_accuracy]
        return float(max(accuracies)) if accuracies else math.nan


def train_from_archive(
    data: bytes | Sequence[tuple[str, bytes]],
    recipe: transfer.OwnImagesRecipe | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    progress: Callable[[transfer.OwnProgress], None] | None = None,
    poll_seconds: float = 0.5,
    slots: TrainingSlots | None = None,
    max_seconds: float | None = None,
    isolate: bool | None = None,
) -> OwnTrainingResult:
    """Open, check, split and train on an upload, synchronously: the page's own job
    (``cnnlib.training.transfer.OwnImagesJob``, in its own process unless ``isolate`` is
    False or ``$CNNLAB_TRAINING_PROCESS`` is "0"), started and waited for.

    ``data``: a zip's bytes, or a folder upload's (relative path, bytes) list. ``recipe``: an
    ``OwnImagesRecipe`` (None: its defaults, the page's: from scratch, 64×64, 5 epochs).
    ``progress(p)`` receives the job's ``OwnProgress`` every ``poll_seconds`` while it runs.
    ``slots`` and ``max_seconds`` as for the job (the server's slots and time limit by
    default). The upload's temporary folder (in ``workdir``) is removed at the end. Raises
    ``ArchiveError`` for unusable uploads, ``WeightsUnavailableError`` when the backbone's
    weights cannot be had (never a silent random backbone), ``ServerBusyError`` when the
    slot queue is full, ``TrainingFailedError`` when the training failed.
    """
    recipe = recipe if recipe is not None else transfer.OwnImagesRecipe()
    if not isinstance(recipe, transfer.OwnImagesRecipe):
        raise InvalidArgumentError("recipe must be an OwnImagesRecipe.")
    start = time.perf_counter()
    folders = (
        open_archive(data, workdir=workdir)
        if isinstance(data, bytes | bytearray | memoryview)
        else open_files(data, workdir=workdir)
    )
    try:
        health = folders.health()
        health.raise_for_issues()
        split = folders.split(
            recipe.image_size, validation_fraction=recipe.validation_fraction, seed=recipe.seed
        )
        job = transfer.OwnImagesJob(
            split, recipe, slots=slots, max_seconds=max_seconds, isolate=isolate
        ).start()
        try:
            while not job.done:
                p = job.wait(poll_seconds)
                if progress is not None:
                    progress(p)
        finally:
            if not job.done:  # interrupted (e.g. Ctrl-C): end the training too
                job.stop()
                job.wait()
        p = job.snapshot()
        if p.state == "failed":
            raise TrainingFailedError(p.error or "The training failed.")
        return OwnTrainingResult(
            job.model, split.class_names, recipe, p, health, time.perf_counter() - start
        )
    finally:
        folders.cleanup()
