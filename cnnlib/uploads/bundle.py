"""A saved own-images project: one zip to download, and to upload later to carry on.

Layout (format "cnnlab-project", version 1)::

    cnnlab-project/project.json        the manifest (below)
    cnnlab-project/model.keras         the trained model, when there is one
    cnnlab-project/<class>/<name>      every checked image, resized, in the class folder it
                                       was collected under (excluded ones too)

The images sit in class folders inside one wrapping folder, so the reader opens the bundle
with the same archive reader as any upload (``cnnlib.uploads.folders.open_archive``: its
caps and refusals, every image decoded in the sandbox); the manifest and the model are the
two files beside the class folders, which that reader skips, and which decoders of the
sandbox read (the tasks "project_manifest" and "project_model"): the server never parses
the bundle's bytes.

The manifest (JSON) holds: ``classes`` (the model's output order, = the sorted folder
names), ``relabels`` ({"<class>/<name>": class name}), ``exclusions`` (["<class>/<name>"]),
``settings`` ({name: JSON scalar}), ``history`` ({metric: [numbers, null for NaN]}),
``image_side`` (the longest side the images were resized to), ``images`` (how many) and
``model`` ("model.keras" or null). ``parse_manifest`` turns the JSON into a typed
``Manifest``, checking every key and bound (parse, don't validate); anything unexpected is
an ``ArchiveError`` for the learner.

``write_bundle(project)`` → bytes; ``read_bundle(data)`` → ``OpenedProject`` (the images as
an ``ImageFolders`` with the relabels and exclusions applied, the manifest, the model's
bytes); ``project_model(opened)`` opens the model through the ``.keras`` upload path
(``cnnlib.uploads.model_files.load_keras_file``: parsed in the sandbox, rebuilt from CNN
Lab's spec once the model-upload work lands), never Keras' loader on the bundle's bytes.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnlib.core.budgets import Budgets, budgets, format_bytes
from cnnlib.core.errors import ArchiveError, InvalidArgumentError, SandboxError
from cnnlib.core.sandbox import (
    SandboxLimits,
    SandboxResult,
    TaskOutput,
    run_in_sandbox,
    sandbox_task,
)
from cnnlib.data.images import downscale
from cnnlib.uploads import zip_reader
from cnnlib.uploads.folders import ImageFolders, _listing, open_archive
from cnnlib.uploads.model_files import load_keras_file

__all__ = [
    "BUNDLE_FOLDER",
    "FORMAT",
    "MANIFEST",
    "MODEL",
    "VERSION",
    "Manifest",
    "OpenedProject",
    "Project",
    "ProjectImage",
    "parse_manifest",
    "project_model",
    "read_bundle",
    "write_bundle",
]

FORMAT = "cnnlab-project"
VERSION = 1
#: The wrapping folder, the manifest's and the model's names inside the zip.
BUNDLE_FOLDER = "cnnlab-project"
MANIFEST = "project.json"
MODEL = "model.keras"
#: Default longest side of the saved images, pixels (the page trains at up to 224).
IMAGE_SIDE = 256
#: JPEG quality of the saved photos.
JPEG_QUALITY = 95

#: Bounds of a manifest (the reader refuses anything beyond them).
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
MAX_CLASSES = 100
MAX_NAME = 100
MAX_SETTINGS = 64
MAX_TEXT = 200
MAX_HISTORY_KEYS = 16
MAX_HISTORY_POINTS = 2_000
_MANIFEST_KEYS = {
    "format",
    "version",
    "classes",
    "image_side",
    "images",
    "relabels",
    "exclusions",
    "settings",
    "history",
    "model",
}
_JUNK = {".ds_store", "thumbs.db", "desktop.ini", "__macosx"}

Scalar = str | int | float | bool | None


# --------------------------------------------------------------------------------------------
# What is saved
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectImage:
    """One checked image: ``name`` its file name in its class folder (e.g. "12.jpg"),
    ``label`` the class it was collected under (an index into the classes), ``image`` an RGB
    ``PIL.Image`` or an (H, W, 3) uint8 array."""

    name: str
    label: int
    image: Any


@dataclass(frozen=True)
class Project:
    """An own-images project as the page holds it.

    ``class_names``: the model's output order (sorted, as the archive reader sorts folders);
    ``images``: every checked image, excluded ones too; ``relabels``: {image key: class
    index} for images moved to another class; ``exclusions``: keys of images left out; keys
    are "<class>/<name>" (``key``). ``settings``: the page's settings as JSON scalars;
    ``history``: the training curves; ``model``: the trained model's ``.keras`` bytes.
    """

    class_names: tuple[str, ...]
    images: tuple[ProjectImage, ...]
    relabels: Mapping[str, int] = field(default_factory=dict)
    exclusions: tuple[str, ...] = ()
    settings: Mapping[str, Scalar] = field(default_factory=dict)
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    model: bytes | None = None

    def key(self, image: ProjectImage) -> str:
        """ "<class>/<name>": how relabels and exclusions name ``image``."""
        return f"{self.class_names[image.label]}/{image.name}"


@dataclass(frozen=True)
class Manifest:
    """A bundle's ``project.json``, parsed (see the module docstring)."""

    classes: tuple[str, ...]
    image_side: int
    images: int
    relabels: dict[str, str]
    exclusions: tuple[str, ...]
    settings: dict[str, Scalar]
    history: dict[str, tuple[float, ...]]
    has_model: bool


# --------------------------------------------------------------------------------------------
# Names and values
# --------------------------------------------------------------------------------------------


def _path_part(text: Any, what: str) -> str:
    """``text`` if it can be one folder or file name in the bundle, else ``ArchiveError``."""
    if (
        not isinstance(text, str)
        or not text.strip()
        or len(text) > MAX_NAME
        or not text.isprintable()
        or any(c in text for c in "/\\:")
        or text.startswith(".")
        or text.lower() in _JUNK
    ):
        raise ArchiveError(
            f"{what} {str(text)[:MAX_NAME]!r} cannot be a name in a project file: use 1 to "
            f"{MAX_NAME} printable characters, without / \\ : and not starting with a dot."
        )
    return text


def _scalar(value: Any, what: str) -> Scalar:
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            raise ArchiveError(f"{what} is too large a number.")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArchiveError(f"{what} is not a finite number.")
        return value
    if isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    raise ArchiveError(f"{what} must be a number, a short text, true/false or null.")


def _settings(settings: Any) -> dict[str, Scalar]:
    if not isinstance(settings, Mapping) or len(settings) > MAX_SETTINGS:
        raise ArchiveError(f"The settings must be at most {MAX_SETTINGS} named values.")
    out = {}
    for name, value in settings.items():
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME:
            raise ArchiveError("A setting's name is not a plain identifier.")
        out[name] = _scalar(value, f"The setting {name!r}")
    return out


def _history(history: Any) -> dict[str, tuple[float, ...]]:
    if not isinstance(history, Mapping) or len(history) > MAX_HISTORY_KEYS:
        raise ArchiveError(f"The history must be at most {MAX_HISTORY_KEYS} named curves.")
    out = {}
    for name, values in history.items():
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME:
            raise ArchiveError("A history curve's name is not a plain identifier.")
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise ArchiveError(f"The history curve {name!r} must be a list of numbers.")
        if len(values) > MAX_HISTORY_POINTS or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            raise ArchiveError(
                f"The history curve {name!r} must be at most {MAX_HISTORY_POINTS:,} numbers."
            )
        # NaN (a metric not computed) is null in the JSON, which has no NaN
        out[name] = tuple(math.nan if v is None else float(v) for v in values)
    return out


def _key(key: Any, classes: Sequence[str]) -> str:
    if not isinstance(key, str) or key.count("/") != 1:
        raise ArchiveError(f"{str(key)[:MAX_NAME]!r} does not name an image as <class>/<file>.")
    folder, name = key.split("/")
    if folder not in classes:
        raise ArchiveError(f"{key!r} names a class that is not in the project.")
    _path_part(name, "The image name")
    return key


def parse_manifest(data: Any) -> Manifest:
    """The typed ``Manifest`` from a manifest's JSON value; ``ArchiveError`` for a
    manifest of another format or version, an unknown or missing key, or a value out of
    its bounds."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchiveError(
            "This zip is not a CNN Lab project (its project.json is not one). Upload it as a "
            "zip of class folders instead, or save the project again."
        )
    if data.get("version") != VERSION:
        raise ArchiveError(
            f"This project file has version {str(data.get('version'))[:20]!r}; this CNN Lab "
            f"reads version {VERSION}. Save the project again with this version."
        )
    if set(data) != _MANIFEST_KEYS:
        extra = sorted(set(data) - _MANIFEST_KEYS)[:5] or sorted(_MANIFEST_KEYS - set(data))
        raise ArchiveError(f"The project.json has unexpected or missing entries: {extra}.")
    classes = data["classes"]
    if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES:
        raise ArchiveError(f"A project has 2 to {MAX_CLASSES} classes.")
    classes = tuple(_path_part(c, "The class name") for c in classes)
    if list(classes) != sorted(set(classes)):
        raise ArchiveError("The project's classes must be distinct and in sorted order.")
    side, count = data["image_side"], data["images"]
    for value, what in ((side, "image_side"), (count, "images")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**6:
            raise ArchiveError(f"The project's {what} must be a whole number from 1.")
    relabels, exclusions = data["relabels"], data["exclusions"]
    if not isinstance(relabels, dict) or len(relabels) > count:
        raise ArchiveError("The project's relabels must name at most its images.")
    if not isinstance(exclusions, list) or len(exclusions) > count:
        raise ArchiveError("The project's exclusions must name at most its images.")
    parsed_relabels = {}
    for key, target in relabels.items():
        if target not in classes:
            raise ArchiveError(f"A relabel names a class that is not in the project: {key!r}.")
        parsed_relabels[_key(key, classes)] = target
    if data["model"] not in (None, MODEL):
        raise ArchiveError(f"The project's model must be {MODEL!r} or none.")
    return Manifest(
        classes=classes,
        image_side=side,
        images=count,
        relabels=parsed_relabels,
        exclusions=tuple(dict.fromkeys(_key(k, classes) for k in exclusions)),
        settings=_settings(data["settings"]),
        history=_history(data["history"]),
        has_model=data["model"] == MODEL,
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _encoded(image: Any, side: int, image_format: str) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if img.mode != "RGB":
        raise InvalidArgumentError(f"Project images are RGB; got mode {img.mode}.")
    out = io.BytesIO()
    small = downscale(img, side)
    if image_format == "JPEG":
        small.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        small.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def _suffix(name: str, image_format: str) -> str:
    """``name`` with the suffix of the format it is stored in."""
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return stem + (".jpg" if image_format == "JPEG" else ".png")


def write_bundle(
    project: Project, *, image_side: int = IMAGE_SIDE, image_format: str = "JPEG"
) -> bytes:
    """The project as one zip (see the module docstring): images resized so that their
    longer side is at most ``image_side`` and stored as ``image_format`` ("JPEG", quality
    95, or "PNG": lossless). Raises ``InvalidArgumentError`` (nothing written) for a class
    or image name that cannot be a file name, two images with one name, a relabel or
    exclusion naming no image, or settings and history that are not plain JSON values."""
    if image_format not in ("JPEG", "PNG") or not 8 <= image_side <= 4096:
        raise InvalidArgumentError("Save images as JPEG or PNG, 8 to 4,096 pixels on a side.")
    classes = tuple(project.class_names)
    try:
        for name in classes:
            _path_part(name, "The class name")
        if list(classes) != sorted(set(classes)) or not 2 <= len(classes) <= MAX_CLASSES:
            raise ArchiveError(
                f"A project has 2 to {MAX_CLASSES} distinct classes, in sorted order."
            )
        settings, history = _settings(project.settings), _history(project.history)
        stored: dict[str, str] = {}  # key as the page names it → key in the bundle
        for image in project.images:
            if not 0 <= image.label < len(classes):
                raise ArchiveError(f"The image {image.name!r} has no class {image.label}.")
            _path_part(image.name, "The image name")
            target = f"{classes[image.label]}/{_suffix(image.name, image_format)}"
            if target in stored.values():
                raise ArchiveError(f"Two images would be saved as {target!r}.")
            stored[project.key(image)] = target
        relabels = {}
        for key, label in project.relabels.items():
            if key not in stored or not 0 <= int(label) < len(classes):
                raise ArchiveError(f"The relabel of {key!r} names no image or no class.")
            relabels[stored[key]] = classes[int(label)]
        missing = [key for key in project.exclusions if key not in stored]
        if missing:
            raise ArchiveError(f"The exclusion of {missing[0]!r} names no image.")
    except ArchiveError as err:
        raise InvalidArgumentError(str(err)) from None
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "classes": list(classes),
        "image_side": image_side,
        "images": len(project.images),
        "relabels": relabels,
        "exclusions": [stored[key] for key in project.exclusions],
        "settings": settings,
        "history": {k: [v if math.isfinite(v) else None for v in vs] for k, vs in history.items()},
        "model": MODEL if project.model else None,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        text = json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False)
        zf.writestr(f"{BUNDLE_FOLDER}/{MANIFEST}", text)
        if project.model:
            zf.writestr(f"{BUNDLE_FOLDER}/{MODEL}", project.model, zipfile.ZIP_STORED)
        for image in project.images:
            path = f"{BUNDLE_FOLDER}/{stored[project.key(image)]}"
            data = _encoded(image.image, image_side, image_format)
            zf.writestr(path, data, zipfile.ZIP_STORED)  # JPEG/PNG do not compress further
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class OpenedProject:
    """A project read back: ``folders`` the images (as an upload's ``ImageFolders``, the
    relabels and exclusions applied), ``manifest``, ``model_bytes`` (None when saved without
    a model; open it with ``project_model``), ``excluded``: {key: stored file} of the images
    left out (their files stay in ``folders``' directory, to be shown)."""

    folders: ImageFolders
    manifest: Manifest
    model_bytes: bytes | None
    excluded: dict[str, Path]


@sandbox_task("project_manifest")
def read_manifest_member(
    source: Path, *, name: str, index: int, max_members: int, max_bytes: int
) -> TaskOutput:
    """In a decoder: the JSON value of member ``index`` (the manifest) of the bundle at
    ``source``, as meta "manifest" (the server parses it again with ``parse_manifest``)."""
    raw = zip_reader.member_bytes(
        source, index, name=name, max_members=max_members, max_bytes=max_bytes
    )
    try:
        return TaskOutput({"manifest": json.loads(raw.decode("utf-8"))})
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ArchiveError("The project's project.json is not valid JSON.") from None


@sandbox_task("project_model")
def read_model_member(
    source: Path, *, name: str, index: int, max_members: int, max_bytes: int
) -> TaskOutput:
    """In a decoder: member ``index`` (the model) of the bundle at ``source``, its bytes as
    the uint8 array "data" (parsed later as any ``.keras`` upload)."""
    raw = zip_reader.member_bytes(
        source, index, name=name, max_members=max_members, max_bytes=max_bytes
    )
    return TaskOutput(arrays={"data": np.frombuffer(raw, dtype=np.uint8)})


def _sandboxed(task: str, upload: Path, index: int, limit: int, header: int) -> SandboxResult:
    try:
        return run_in_sandbox(
            task,
            upload,
            name="The project file",
            limits=SandboxLimits(header_bytes=header),
            index=index,
            max_members=budgets().max_archive_members,
            max_bytes=limit,
        )
    except SandboxError as err:
        raise ArchiveError(str(err)) from err


def _manifest_and_model(data: bytes) -> tuple[Manifest, bytes | None]:
    """The manifest and the model's bytes, each read (and the manifest's JSON parsed) in
    the decoding sandbox, from the member the sandbox's listing names."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-project-") as folder:
        upload = Path(folder) / "project.zip"
        upload.write_bytes(data)
        index = {m.name: m.index for m in _listing(upload) if not m.is_dir}
        where = index.get(f"{BUNDLE_FOLDER}/{MANIFEST}")
        if where is None:
            raise ArchiveError(
                "This zip is not a CNN Lab project (no cnnlab-project/project.json). "
                "Upload it as a zip of class folders instead."
            )
        header = 4 * MAX_MANIFEST_BYTES  # the JSON as the decoder writes it again
        answer = _sandboxed("project_manifest", upload, where, MAX_MANIFEST_BYTES, header)
        manifest = parse_manifest(answer.meta.get("manifest"))
        where = index.get(f"{BUNDLE_FOLDER}/{MODEL}")
        if manifest.has_model != (where is not None):
            raise ArchiveError("The project's model is missing, or there is one it does not list.")
        if where is None:
            return manifest, None
        limit = budgets().model_file_bytes
        answer = _sandboxed("project_model", upload, where, limit, 64 * 1024)
        model = answer.array("data", dtype=np.uint8, ndim=1, max_shape=(limit,)).tobytes()
    return manifest, model


def read_bundle(data: bytes) -> OpenedProject:
    """Open a project zip without parsing it in the server: its listing, manifest and model
    are read by decoders of the sandbox (``_manifest_and_model``), its images by the upload
    archive reader (``open_archive``: the sandbox, its checks and caps); then the manifest
    is parsed strictly (``parse_manifest``), the class folders matched with the classes, and
    the relabels and exclusions applied. Raises ``ArchiveError`` with a message for the
    learner; nothing is left on disk when it does."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise ArchiveError("The file is empty. Choose a project file saved by CNN Lab.")
    if len(data) > budgets().max_archive_bytes:
        raise ArchiveError(
            f"The project file is {format_bytes(len(data))}, over the limit of "
            f"{format_bytes(budgets().max_archive_bytes)} for an upload."
        )
    data = bytes(data)
    manifest, model = _manifest_and_model(data)
    folders = open_archive(data)
    try:
        extras = {MANIFEST, MODEL}
        folders.skipped = [s for s in folders.skipped if s.path.split("/")[-1] not in extras]
        if folders.class_names != manifest.classes:
            raise ArchiveError(
                "The project's image folders do not match its classes; it was changed after "
                "it was saved. Save the project again."
            )
        if len(folders) != manifest.images or folders.skipped:
            raise ArchiveError(
                f"The project lists {manifest.images} images but {len(folders)} could be "
                "read; it was damaged or changed after it was saved. Save it again."
            )
        prefix = BUNDLE_FOLDER + "/"
        stored = {folders.source(path).removeprefix(prefix): path for path, _ in folders.files}
        for key, target in manifest.relabels.items():
            if key not in stored:
                raise ArchiveError(f"The project relabels {key!r}, which it does not hold.")
            folders.relabel(stored[key], manifest.classes.index(target))
        for key in manifest.exclusions:
            if key not in stored:
                raise ArchiveError(f"The project excludes {key!r}, which it does not hold.")
            folders.exclude(stored[key])
    except BaseException:
        folders.cleanup()
        raise
    excluded = {key: stored[key] for key in manifest.exclusions}
    return OpenedProject(folders, manifest, model, excluded)


def project_model(opened: OpenedProject, *, limits: Budgets | None = None):
    """The project's Keras model, opened through the ``.keras`` upload path (the bundle
    is untrusted like any upload), or None when it was saved without one."""
    if opened.model_bytes is None:
        return None
    return load_keras_file(opened.model_bytes, budgets=limits or budgets())
