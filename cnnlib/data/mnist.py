"""MNIST and Fashion-MNIST: reading IDX files and finding the data on this machine.

``load_dataset(name)`` returns ``(x_train, y_train), (x_test, y_test)``: uint8 images
(N, 28, 28) with 0 = background and 255 = ink, and uint8 labels (N,) in 0..9. It looks,
in order, in

1. ``$CNNLAB_DATA_DIR`` — laid out like Keras' own cache: MNIST as ``mnist.npz`` or the four
   IDX files (``train-images-idx3-ubyte.gz``, …; gzip or not) directly in the folder or in
   ``mnist/``; Fashion-MNIST as the four IDX files in ``fashion-mnist/`` (or
   ``fashion_mnist/``) or ``fashion-mnist.npz``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), Fashion only;
3. Keras' cache ``~/.keras/datasets`` and, when the machine is online, Keras' download.

No Streamlit here: the page caches the result with ``st.cache_data``.
"""

from __future__ import annotations

import gzip
import os
import socket
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnlib.core.errors import CorruptDataError, DataUnavailableError, InvalidArgumentError
from cnnlib.core.paths import keras_home
from cnnlib.core.text import shape_text

__all__ = [
    "CLASS_NAMES",
    "DATASET_NAMES",
    "DATASET_TITLES",
    "DEBIAN_FASHION_DIR",
    "IDX_FILES",
    "DatasetNotFoundError",
    "KerasDownloader",
    "load_dataset",
    "load_test_split",
    "read_idx",
    "to_model_input",
]

DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion_mnist")
DATASET_TITLES: dict[str, str] = {"mnist": "MNIST digits", "fashion_mnist": "Fashion-MNIST"}
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}

#: The four standard IDX files (without ``.gz``), by role.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_TEST_ROLES = ("test_images", "test_labels")
_TRAIN_ROLES = ("train_images", "train_labels")

#: Where Debian's ``dataset-fashion-mnist`` package installs the four IDX files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Sub-folders of ``$CNNLAB_DATA_DIR`` (and of Keras' cache) searched for each dataset;
#: "" is the folder itself.
_SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("", "mnist"),
    "fashion_mnist": ("fashion-mnist", "fashion_mnist"),
}
_NPZ_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": ("fashion-mnist.npz", "fashion_mnist.npz"),
}
_KERAS_HOST = "storage.googleapis.com"
_HOW_TO_GET = (
    "To get the data: run the app once on a machine with internet access (Keras downloads it "
    "to ~/.keras/datasets), or put the four IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a "
    "folder and set the environment variable CNNLAB_DATA_DIR to it (Fashion-MNIST in its "
    "sub-folder fashion-mnist/). On Debian, `apt install dataset-fashion-mnist` installs "
    "Fashion-MNIST."
)

# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

#: IDX type byte → big-endian NumPy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataUnavailableError(f"The data file {path} does not exist.") from exc
    except OSError as exc:
        raise DataUnavailableError(f"The data file {path} cannot be read: {exc}.") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(
            f"The file {path} looks gzip-compressed but cannot be decompressed ({exc}); it is "
            "probably truncated or damaged. Download it again."
        ) from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip or not) into an array of the declared shape and type.

    The header is checked: two zero bytes, a known type byte (0x08 = uint8 for MNIST), a
    dimension count of 1–4 (magic 2049 = uint8 1-D labels, 2051 = uint8 3-D images), and the
    declared shape must account for exactly the bytes that follow. Anything else raises
    ``CorruptDataError`` naming the file, never a silently wrong array. Multi-byte types are
    returned in native byte order; uint8 data as uint8.
    """
    path = Path(path)
    data = _read_bytes(path)

    def corrupt(what: str) -> CorruptDataError:
        return CorruptDataError(
            f"The file {path} is not a valid IDX file: {what}. It may be truncated, damaged or "
            "a different kind of file; download it again."
        )

    if len(data) < 4:
        raise corrupt(f"it has only {len(data)} bytes, fewer than the 4-byte header")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_DTYPES:
        raise corrupt(
            f"the magic number is {magic} (0x{magic:08X}); expected 2049 for labels or 2051 for "
            "images (0x0000TTDD: two zero bytes, a type byte, a dimension count)"
        )
    if not 1 <= ndim <= 4:
        raise corrupt(f"the header declares {ndim} dimensions (magic {magic}); expected 1 to 4")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise corrupt(f"the header declares {ndim} dimensions but the file ends inside it")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big", signed=False) for i in range(ndim)
    )
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        raise corrupt(
            f"the header declares shape {shape_text(shape)} of {dtype.name} ({expected:,} bytes "
            f"of data) but the file holds {actual:,} bytes of data"
            + (" (truncated)" if actual < expected else " (extra bytes at the end)")
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(folder: Path, role: str) -> Path | None:
    base = IDX_FILES[role]
    for name in (base + ".gz", base):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _check_images(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (28, 28):
        raise CorruptDataError(
            f"The file {path} should hold 28×28 uint8 images (magic 2051, shape N × 28 × 28) but "
            f"holds {array.dtype.name} data of shape {array.shape}. Download it again."
        )
    return array


def _check_labels(array: np.ndarray, path: Path, count: int) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 1:
        raise CorruptDataError(
            f"The file {path} should hold uint8 labels (magic 2049, shape N) but holds "
            f"{array.dtype.name} data of shape {array.shape}. Download it again."
        )
    if len(array) != count:
        raise CorruptDataError(
            f"The file {path} holds {len(array):,} labels but its images file holds {count:,} "
            "images; they must match."
        )
    if len(array) and int(array.max()) > 9:
        raise CorruptDataError(
            f"The file {path} holds label {int(array.max())}; labels must be 0 to 9."
        )
    return array


def _read_pair(folder: Path, images_role: str, labels_role: str):
    images_path, labels_path = _find_idx(folder, images_role), _find_idx(folder, labels_role)
    assert images_path is not None and labels_path is not None
    x = _check_images(read_idx(images_path), images_path)
    y = _check_labels(read_idx(labels_path), labels_path, len(x))
    return x, y


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except (KeyError, ValueError, OSError, zlib.error, EOFError) as exc:
        raise CorruptDataError(
            f"The file {path} is not a usable dataset archive (it needs arrays x_train, y_train, "
            f"x_test, y_test): {exc}. Download it again."
        ) from exc
    x_train, y_train, x_test, y_test = arrays
    _check_images(x_train, path), _check_images(x_test, path)
    _check_labels(y_train, path, len(x_train)), _check_labels(y_test, path, len(x_test))
    return (x_train, y_train), (x_test, y_test)


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


class DatasetNotFoundError(DataUnavailableError):
    """No source had the dataset. ``tried`` lists what was looked at (one line each),
    ``missing`` the file names absent from folders that held some of the files, and
    ``test_files_available`` says whether ``load_test_split`` can still work."""

    def __init__(
        self, message: str, *, tried: list[str], missing: list[str], test_files_available: bool
    ):
        super().__init__(message)
        self.tried = tried
        self.missing = missing
        self.test_files_available = test_files_available


def _check_name(name: str) -> str:
    if name not in DATASET_NAMES:
        raise DataUnavailableError(
            f"Unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}."
        )
    return name


def _env_dir() -> Path | None:
    value = os.environ.get("CNNLAB_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def _keras_cache_dir() -> Path:
    return keras_home() / "datasets"


def _local_folders(name: str) -> list[tuple[str, Path, bool]]:
    """(label, folder, is_subfolder) to search for IDX or npz files, in priority order.

    A sub-folder that does not exist is skipped silently; a main folder that does not exist
    is reported.
    """
    folders: list[tuple[str, Path, bool]] = []
    env = _env_dir()
    if env is not None:
        folders += [
            ("CNNLAB_DATA_DIR", env / sub if sub else env, bool(sub)) for sub in _SUBDIRS[name]
        ]
    if name == "fashion_mnist":
        folders.append(("Debian's dataset-fashion-mnist", DEBIAN_FASHION_DIR, False))
    cache = _keras_cache_dir()
    folders.append(("Keras' cache", cache, False))
    folders += [("Keras' cache", cache / sub, True) for sub in _SUBDIRS[name] if sub]
    return folders


def _search_local(name: str, roles: tuple[str, ...], tried: list[str], missing: list[str]):
    """The first folder holding every file of ``roles`` (or an npz); records what it tried."""
    for label, folder, is_subfolder in _local_folders(name):
        if not folder.is_dir():
            if not is_subfolder:
                tried.append(f"{label}: {folder} (no such folder)")
            continue
        for npz_name in _NPZ_NAMES[name]:
            npz = folder / npz_name
            if npz.is_file():
                return ("npz", npz)
        # IDX files directly in Keras' cache folder are not a dataset of Keras' layout.
        if label == "Keras' cache" and not is_subfolder:
            tried.append(f"{label}: {folder} (no {', '.join(_NPZ_NAMES[name])})")
            continue
        found = {r: _find_idx(folder, r) for r in roles}
        if all(found.values()):
            return ("idx", folder)
        absent = [IDX_FILES[r] + "[.gz]" for r, p in found.items() if p is None]
        if len(absent) < len(roles):
            missing.extend(a for a in absent if a not in missing)
            tried.append(f"{label}: {folder} (missing {', '.join(absent)})")
        else:
            names = ", ".join(_NPZ_NAMES[name])
            tried.append(f"{label}: {folder} (none of the IDX files, no {names})")
    return None


class KerasDownloader:
    """Downloads a dataset with ``keras.datasets`` into ``~/.keras/datasets``.

    A quick reachability probe (``probe_timeout`` seconds) runs first, so an offline machine
    gets an answer at once instead of waiting on a stalled connection. Tests replace the
    module's ``downloader`` with a stub.
    """

    def __init__(self, probe_timeout: float = 5.0):
        self.probe_timeout = probe_timeout

    def __call__(self, name: str):
        try:
            socket.create_connection((_KERAS_HOST, 443), timeout=self.probe_timeout).close()
        except OSError as exc:
            raise DataUnavailableError(f"{_KERAS_HOST} is not reachable ({exc})") from exc
        import keras

        module = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
        try:
            return module.load_data()
        except Exception as exc:  # network errors, hash mismatch, partial file
            raise DataUnavailableError(f"the download failed ({exc})") from exc


#: The last source; replace (e.g. with monkeypatch) to test or to disable downloads.
downloader: Callable[[str], tuple] = KerasDownloader()


def _test_files_available(name: str) -> bool:
    return _search_local(name, _TEST_ROLES, [], []) is not None


def load_dataset(name: str, *, allow_download: bool = True):
    """``(x_train, y_train), (x_test, y_test)``: uint8 (N, 28, 28) images, uint8 (N,) labels.

    Sources in order: ``$CNNLAB_DATA_DIR``, Debian's Fashion-MNIST folder (Fashion only),
    Keras' cache, Keras' download (skipped when ``allow_download`` is false). When all fail,
    raises ``DatasetNotFoundError`` (a ``DataUnavailableError``) listing what was tried,
    which files are missing, and how to get the data. A damaged file raises
    ``CorruptDataError`` naming it.
    """
    name = _check_name(name)
    tried: list[str] = []
    missing: list[str] = []
    found = _search_local(name, _TRAIN_ROLES + _TEST_ROLES, tried, missing)
    if found is not None:
        kind, where = found
        if kind == "npz":
            return _read_npz(where)
        return _read_pair(where, *_TRAIN_ROLES), _read_pair(where, *_TEST_ROLES)
    if allow_download:
        try:
            (x_train, y_train), (x_test, y_test) = downloader(name)
        except DataUnavailableError as exc:
            tried.append(f"Keras download: {exc}")
        else:
            return (np.asarray(x_train), np.asarray(y_train)), (
                np.asarray(x_test),
                np.asarray(y_test),
            )
    else:
        tried.append("Keras download: not attempted (downloads are switched off)")
    title = DATASET_TITLES[name]
    test_only = _test_files_available(name)
    message = f"{title} could not be loaded. Tried:\n" + "\n".join(f"- {t}" for t in tried)
    if missing:
        message += f"\nMissing files: {', '.join(missing)}."
    if test_only:
        message += (
            f"\nOnly the {title} test files (t10k-*) were found: their 10,000 images can "
            "still be split into a training and a test part."
        )
    message += "\n" + _HOW_TO_GET
    raise DatasetNotFoundError(
        message, tried=tried, missing=missing, test_files_available=test_only
    )


def load_test_split(name: str, *, train_fraction: float = 0.8, seed: int = 0):
    """Split the dataset's 10,000 real test images into ``(x_train, y_train), (x_test, y_test)``.

    For machines that only have the test files (``t10k-*``). The split is stratified: each
    class is shuffled with ``seed`` and ``train_fraction`` of it goes to the training part.
    Raises ``DatasetNotFoundError`` when the test files are not found either.
    """
    name = _check_name(name)
    if not 0.0 < train_fraction < 1.0:
        raise DataUnavailableError(
            f"train_fraction must be between 0 and 1 (exclusive), got {train_fraction}."
        )
    tried: list[str] = []
    missing: list[str] = []
    found = _search_local(name, _TEST_ROLES, tried, missing)
    if found is None:
        title = DATASET_TITLES[name]
        message = (
            f"The {title} test files could not be found. Tried:\n"
            + "\n".join(f"- {t}" for t in tried)
            + (f"\nMissing files: {', '.join(missing)}." if missing else "")
            + "\n"
            + _HOW_TO_GET
        )
        raise DatasetNotFoundError(
            message, tried=tried, missing=missing, test_files_available=False
        )
    kind, where = found
    x, y = _read_npz(where)[1] if kind == "npz" else _read_pair(where, *_TEST_ROLES)
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = round(len(members) * train_fraction)
        train_idx.append(members[:cut])
        test_idx.append(members[cut:])
    tr = rng.permutation(np.concatenate(train_idx))
    te = np.sort(np.concatenate(test_idx))
    return (x[tr], y[tr]), (x[te], y[te])


def to_model_input(x: np.ndarray) -> np.ndarray:
    """Images as a model's input: (N, H, W) or (N, H, W, 1) → (N, H, W, 1) float32 in [0, 1].

    uint8 pixels are divided by 255; float pixels are taken as already in [0, 1].
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise InvalidArgumentError(
            f"Images must be (N, H, W) or (N, H, W, C); got an array of shape {x.shape}."
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)
