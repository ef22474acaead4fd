"""Your own images: a zip (or a folder upload) of class folders → a checked, streamed dataset.

The pipeline the "own images" page runs, usable without Streamlit:

1. ``open_archive(data)`` / ``open_files(files)`` refuse unsafe input *before* anything is
   extracted (absolute paths, ``..``, symlinks, nested archives, too many members, zip bombs),
   then validate each image once with ``cnnlib.data.images.load_image`` and store it in a private
   temporary directory (``ImageFolders.cleanup()`` removes it; so does garbage collection).
   The class of an image is its folder: ``cats/1.jpg`` or, with one wrapping folder,
   ``photos/cats/1.jpg``.
2. ``ImageFolders.health()`` reports per-class counts, skipped files with their reasons,
   duplicates across classes, tiny images and a few samples per class; blocking problems
   (fewer than 2 classes, too few images in a class) are listed in ``issues``.
3. ``ImageFolders.split(image_size)`` gives a ``FolderData`` (the training core's
   ``TrainingData`` protocol): a stratified, seeded train/validation split whose ``batches``
   read the files with ``tf.data``, decode, resize, cache (in memory within a byte budget,
   else to a file in the temporary directory) and prefetch — never all decoded images at once
   unless they fit the budget.
4. ``train_from_archive(data, recipe=...)`` runs the whole thing synchronously (the page runs
   the same steps in its background trainer).

Caps are module constants, each overridable by an environment variable (read at call time).
TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ArchiveError, BudgetError, InvalidArgumentError, InvalidImageError
from cnnlib.data.images import downscale, load_image
from cnnlib.data.mnist import CLASS_NAMES, DEBIAN_FASHION_DIR, read_idx
from cnnlib.training import transfer

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

#: File endings refused as nested archives.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar")
#: Operating-system clutter skipped without decoding.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
SPLITS = ("train", "validation", "test")


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why (a sentence for the learner)."""

    path: str
    reason: str


@dataclass
class HealthReport:
    """What the learner should know before training.

    ``issues`` block training (``raise_for_issues``); ``warnings`` do not.
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


def _parts(name: str) -> tuple[str, ...]:
    """Path parts of a member name; raises ``ArchiveError`` for absolute or ``..`` paths."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise ArchiveError(
            f"The upload contains an absolute path ({name!r}). Only relative paths like "
            "`cats/1.jpg` are accepted: zip the class folders themselves."
        )
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(
            f"The upload contains a path that leaves its folder ({name!r}, with `..`). "
            "Such archives are refused; zip the class folders themselves."
        )
    return parts


def _check_members(members: Sequence[_Member], total_bytes: int) -> None:
    """Refuse the whole upload when any cap or safety rule is broken (nothing extracted yet)."""
    max_upload = budgets().max_archive_bytes
    if total_bytes > max_upload:
        raise ArchiveError(
            f"The upload is {_mb(total_bytes)}, over the limit of {_mb(max_upload)}. "
            "Use fewer or smaller images."
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
            f"The archive unpacks to {_mb(total)}, over the limit of {_mb(max_total)}. "
            "Use fewer or smaller images."
        )
    max_ratio = budgets().max_compression_ratio
    for m in members:
        if m.is_dir:
            continue
        if m.parts and m.parts[-1].lower().endswith(ARCHIVE_SUFFIXES):
            raise ArchiveError(
                f"The upload contains another archive ({m.name!r}). Archives inside archives "
                "are refused: unpack it and zip the image folders directly."
            )
        if m.compressed is not None and m.size >= RATIO_MIN_BYTES:
            ratio = m.size / max(m.compressed, 1)
            if ratio > max_ratio:
                raise ArchiveError(
                    f"{m.name!r} unpacks {ratio:,.0f} times larger than it is stored (limit "
                    f"{max_ratio}×): this looks like a zip bomb, so the archive is refused."
                )


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(
                f"The archive contains a symbolic link ({info.filename!r}). Links are refused; "
                "zip the image files themselves."
            )
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{info.filename!r} is encrypted. Upload a zip without a password.")
        members.append(
            _Member(
                name=info.filename,
                parts=_parts(info.filename),
                size=info.file_size,
                compressed=info.compress_size,
                is_dir=info.is_dir(),
            )
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
        few = [f"{name} ({n})" for name, n in counts.items() if n < min_per_class]
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
        if self.skipped:
            warnings.append(f"{len(self.skipped)} file(s) were skipped (listed with reasons).")
        for folder in self._empty_folders:
            warnings.append(f"The folder {folder!r} has no usable images and was ignored.")
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
    def _ingest(self, entries: Iterable[tuple[_Member, str, Callable[[], bytes]]]) -> None:
        """Validate and store each (member, class folder, read) one at a time."""
        by_folder: dict[str, list[tuple[Path, str]]] = {}
        folder_ids: dict[str, int] = {}
        seen: dict[str, tuple[str, str]] = {}  # sha1 → (class folder, path)
        for member, folder, read in entries:
            folder_ids.setdefault(folder, len(folder_ids))
            by_folder.setdefault(folder, [])
            if member.size > budgets().image_file_bytes:
                reason = f"larger than {_mb(budgets().image_file_bytes)}"
                self.skipped.append(SkippedFile(member.name, reason))
                continue
            raw = read()
            try:
                img = load_image(raw, name=member.name)
            except InvalidImageError as err:
                self.skipped.append(SkippedFile(member.name, str(err)))
                continue
            digest = hashlib.sha1(raw).hexdigest()
            if digest in seen and seen[digest][0] != folder:
                self._duplicates.append((seen[digest][1], member.name))
            seen.setdefault(digest, (folder, member.name))
            target = self.root / "images" / str(folder_ids[folder])
            target.mkdir(parents=True, exist_ok=True)
            path = target / f"{len(by_folder[folder])}{_stored_suffix(raw)}"
            if path.suffix == ".png" and not _keep_bytes(raw):
                img.save(path, format="PNG", compress_level=1)
            else:
                path.write_bytes(raw)
            by_folder[folder].append((path, member.name))
            self._sizes[path] = img.size
            self._sources[path] = member.name
            samples = self._samples.setdefault(folder, [])
            if len(samples) < SAMPLES_PER_CLASS:
                samples.append(downscale(img, SAMPLE_SIDE))
        self._empty_folders = sorted(f for f, paths in by_folder.items() if not paths)
        self.class_names = tuple(sorted(f for f, paths in by_folder.items() if paths))
        self._samples = {k: self._samples[k] for k in self.class_names}
        for label, name in enumerate(self.class_names):
            self.files += [(p, label) for p, _ in by_folder[name]]

    def _require_images(self, what: str) -> None:
        if not self.files:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in self.skipped[:3])
            raise ArchiveError(
                f"{what} contains no usable images"
                + (f" ({reasons})" if reasons else "")
                + ". Put JPEG or PNG images in one folder per class, e.g. `cats/1.jpg`, "
                "`dogs/1.jpg`."
            )
        if len(self.class_names) < 2:
            raise ArchiveError(
                f"{what} has images of only one class ({self.class_names[0]!r}). A classifier "
                "needs at least 2 classes: put each class's images in its own folder."
            )


def _stored_suffix(raw: bytes) -> str:
    """Keep baseline JPEGs as they are; everything else is stored as PNG."""
    return ".jpg" if raw[:3] == b"\xff\xd8\xff" and _keep_bytes(raw) else ".png"


def _keep_bytes(raw: bytes) -> bool:
    """True when TF's decoding of the file (``FolderData.images``) gives what ``load_image`` gives.

    That is an 8-bit RGB or grayscale JPEG/PNG without transparency or an EXIF rotation;
    other files are re-encoded as PNG from ``load_image``'s result (keeping JPEGs keeps a
    photo upload small on disk).
    """
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in ("JPEG", "PNG") or img.mode not in ("RGB", "L"):
                return False
            if "transparency" in img.info:
                return False
            return img.getexif().get(0x0112, 1) == 1
    except Exception:  # the file was already decoded by load_image; be conservative
        return False


def _read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, never more than it declares (a lying header is refused)."""
    with zf.open(info) as f:
        raw = f.read(info.file_size + 1)
    if len(raw) > info.file_size:
        raise ArchiveError(f"{info.filename!r} is larger than its archive entry declares.")
    return raw


def open_archive(data: bytes, *, workdir: str | os.PathLike | None = None) -> ImageFolders:
    """Check, extract and validate a zip of class folders.

    ``data``: the zip file's bytes. Everything is written below a new temporary directory
    (inside ``workdir`` when given). Raises ``ArchiveError`` (a ``ValueError``) with a plain
    message for a non-zip, an empty or unsafe archive (see the module's caps), or an archive
    without images of at least 2 classes.
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # (a bytes upload is not copied: it may be hundreds of MB)
    _check_members([], len(data))
    if not data:
        raise ArchiveError("The file is empty (0 bytes). Upload a .zip of class folders.")
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        raise ArchiveError(
            "The file is not a zip archive. Upload a .zip with one folder per class "
            "(e.g. `cats/1.jpg`, `dogs/1.jpg`)."
        )
    try:
        zf = zipfile.ZipFile(buffer)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ArchiveError(f"The zip archive is damaged ({err}). Create it again.") from None
    with zf:
        members = _zip_members(zf)
        if not [m for m in members if not m.is_dir]:
            raise ArchiveError(
                "The zip archive is empty. Put one folder per class inside, with the images."
            )
        _check_members(members, len(data))
        infos = {info.filename: info for info in zf.infolist()}
        placed, top_level = _class_paths(members)
        folders = ImageFolders(workdir)
        try:
            folders.skipped += [
                SkippedFile(n, "not inside a class folder (the class is the folder's name)")
                for n in top_level
            ]
            entries = ((m, cls, lambda m=m: _read_limited(zf, infos[m.name])) for m, cls in placed)
            try:
                folders._ingest(entries)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise ArchiveError(
                    f"The zip archive is damaged ({err}). Create it again."
                ) from None
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
    raws = {m.name: raw for m, (_, raw) in zip(members, files, strict=True)}
    placed, top_level = _class_paths(members)
    folders = ImageFolders(workdir)
    try:
        folders.skipped += [
            SkippedFile(n, "not inside a class folder (the class is the folder's name)")
            for n in top_level
        ]
        folders._ingest((m, cls, lambda m=m: bytes(raws[m.name])) for m, cls in placed)
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
                f"The {split} images take {_mb(self.decoded_bytes(split))} decoded, over "
                f"{_mb(budget)}; use a smaller image size or fewer images."
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
            raw = tf.io.read_file(path)
            # Stored files are JPEG or PNG. TF's default JPEG IDCT is the fast, inexact one;
            # INTEGER_ACCURATE matches Pillow's (load_image's) decoding.
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
                f"Your images take {_mb(total)}, more than the {_mb(max_bytes)} one training "
                "may send to the training cluster. Use fewer or smaller images."
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


@dataclass
class OwnTrainingResult:
    """A trained own-images model and how it got there."""

    #: The full model: raw pixels (N, H, W, 3) 0..255 → class probabilities (N, classes).
    model: Any
    class_names: tuple[str, ...]
    #: Best validation accuracy (the restored weights' epoch); nan without a validation split.
    val_accuracy: float
    #: Keras history: metric name → per-epoch values (head epochs for "transfer").
    history: dict[str, list[float]]
    recipe: str
    health: HealthReport
    backbone: str | None = None
    #: Learner-facing sentence: where the backbone's weights came from (None for "scratch").
    weights_source: str | None = None
    #: True only when the backbone's weights file is byte for byte Keras' official one.
    weights_verified: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def train_from_archive(
    data: bytes | Sequence[tuple[str, bytes]],
    *,
    recipe: str = "scratch",
    epochs: int = 10,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    backbone: str | None = None,
    weights: str | os.PathLike | None = "imagenet",
    validation_fraction: float = 0.2,
    batch_size: int = 32,
    augment: bool = False,
    augment_copies: int = 0,
    fine_tune_epochs: int = 0,
    patience: int = 3,
    workdir: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> OwnTrainingResult:
    """Open, check, split and train on an upload; returns the trained model and its story.

    ``data``: a zip's bytes, or a folder upload's (relative path, bytes) list. ``recipe``:
    "scratch" (the tutorial's convnet, adapted to the image size and class count) or
    "transfer" (frozen ``backbone`` — "MobileNetV2" by default, "ResNet50", "VGG19" — with
    features extracted once per image and augmented copy, a new head trained on them, then
    an optional fine-tuning phase of ``fine_tune_epochs``). ``augment`` puts the augmentation
    layers in the model (off by default, as in the tutorial; ``augment_copies`` augments the
    images whose features are extracted). Keras' ``EarlyStopping(
    restore_best_weights=True)`` and ``TerminateOnNaN`` guard the epochs. ``progress(stage,
    done, total)`` reports the feature extraction ("features") and the epochs ("epochs").
    Raises ``ArchiveError`` for unusable uploads, ``WeightsUnavailableError`` when the
    backbone's weights cannot be had (never a silent random backbone).
    """

    if recipe not in ("scratch", "transfer"):
        raise InvalidArgumentError(f"recipe must be 'scratch' or 'transfer', got {recipe!r}.")
    if not 1 <= epochs <= 1000:
        raise InvalidArgumentError(f"epochs must be 1..1000, got {epochs}.")
    start = time.perf_counter()
    folders = (
        open_archive(data, workdir=workdir)
        if isinstance(data, bytes | bytearray | memoryview)
        else open_files(data, workdir=workdir)
    )
    try:
        health = folders.health()
        health.raise_for_issues()
        split = folders.split(image_size, validation_fraction=validation_fraction, seed=seed)
        if recipe == "scratch":
            model, history = transfer.train_scratch(
                split, epochs=epochs, batch_size=batch_size, seed=seed, augment=augment,
                patience=patience, progress=progress,
            )  # fmt: skip
            result = OwnTrainingResult(model, split.class_names, math.nan, history, recipe, health)
        else:
            run = transfer.train_transfer(
                split, backbone=backbone or transfer.DEFAULT_BACKBONE, weights=weights,
                epochs=epochs, batch_size=batch_size, seed=seed, augment=augment,
                augment_copies=augment_copies, fine_tune_epochs=fine_tune_epochs,
                patience=patience, progress=progress,
            )  # fmt: skip
            result = OwnTrainingResult(
                run.model, split.class_names, math.nan, run.history, recipe, health,
                backbone=run.backbone, weights_source=run.weights_source,
                weights_verified=run.weights_verified,
                extra={"extract_seconds": run.extract_seconds},
            )  # fmt: skip
        accuracies = result.history.get("val_accuracy") or []
        result.val_accuracy = float(max(accuracies)) if accuracies else math.nan
        result.seconds = time.perf_counter() - start
        return result
    finally:
        folders.cleanup()
