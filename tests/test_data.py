"""cnnlib.data.mnist against the real MNIST test set, Debian's Fashion-MNIST and damaged files.

IDX files for the error cases are written here with ``struct`` (an independent writer), and
the Keras download is replaced by a stub so no test touches the network.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from cnnlib.core.errors import CorruptDataError, DataUnavailableError, InvalidArgumentError
from cnnlib.data import mnist as data

MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: 0, 0, type, ndim, big-endian uint32 dims, then the big-endian data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No $CNNLAB_DATA_DIR, an empty Keras cache, and a download stub that records calls."""
    calls: list[str] = []

    def no_download(name):
        calls.append(name)
        raise DataUnavailableError("offline (test stub)")

    monkeypatch.delenv("CNNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(data, "downloader", no_download)
    return calls


def test_read_idx_on_the_real_mnist_test_set(mnist_dir):
    x = data.read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    y = data.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == MNIST_TEST_CLASS_COUNTS
    assert x.min() == 0 and x.max() == 255
    # MNIST digits are light ink on a dark background: corners are empty.
    assert x[:, :3, :3].max() == 0


def test_read_idx_reads_uncompressed_files_identically(mnist_dir, tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    np.testing.assert_array_equal(
        data.read_idx(raw), data.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    )


def test_read_idx_multi_byte_types_come_back_in_native_order(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    path = tmp_path / "ints.idx"
    path.write_bytes(idx_bytes(values, 0x0C))
    out = data.read_idx(path)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int32 and out.dtype.isnative


def test_load_fashion_mnist_from_debian(fashion_dir, offline):
    (x_train, y_train), (x_test, y_test) = data.load_dataset("fashion_mnist")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    assert offline == []  # found locally: no download attempted
    assert len(data.CLASS_NAMES["fashion_mnist"]) == 10


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b"\x00\x00\x08\x03" + struct.pack(">III", 2, 28, 28) + bytes(2 * 28 * 28 - 5),
            "truncated",
        ),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 4) + bytes(6), "extra bytes"),
        (b"\x12\x34\x08\x03" + struct.pack(">III", 1, 28, 28) + bytes(784), "magic number"),
        (b"\x00\x00\x07\x03" + struct.pack(">III", 1, 28, 28) + bytes(784), "magic number"),
        (b"\x00\x00\x08\x00", "dimensions"),
        (b"\x00\x00\x08\x09" + bytes(36), "dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 5), "ends inside"),
        (b"\x00\x00", "header"),
    ],
    ids=["truncated", "extra", "bad-magic", "bad-type", "zero-dims", "nine-dims", "short", "tiny"],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
def test_read_idx_rejects_damaged_files_naming_them(tmp_path, content, fragment, compressed):
    path = tmp_path / ("broken-idx3-ubyte" + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(content) if compressed else content)
    with pytest.raises(CorruptDataError) as err:
        data.read_idx(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_read_idx_rejects_a_truncated_gzip_stream(mnist_dir, tmp_path):
    whole = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptDataError, match="decompressed") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_on_a_missing_file_says_so(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        data.read_idx(tmp_path / "nothing.gz")


def _write_dataset(folder, n_train=30, n_test=20, *, image_shape=(28, 28), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, *image_shape), np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *image_shape), np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, array in arrays.items():
        content = idx_bytes(array)
        (folder / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    return arrays


def test_data_dir_idx_files_mixed_gzip_and_raw(tmp_path, offline, monkeypatch):
    arrays = _write_dataset(tmp_path / "data")
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "data"))
    (x_train, y_train), (x_test, y_test) = data.load_dataset("mnist")
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert x_test.shape == (20, 28, 28) and y_train.shape == (30,)


def test_data_dir_fashion_subfolder_comes_before_debian(tmp_path, offline, monkeypatch):
    arrays = _write_dataset(tmp_path / "data" / "fashion-mnist", n_train=12)
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "data"))
    (x_train, _), _ = data.load_dataset("fashion_mnist")
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])


def test_data_dir_keras_npz(tmp_path, offline, monkeypatch):
    rng = np.random.default_rng(1)
    parts = {
        "x_train": rng.integers(0, 256, (8, 28, 28), np.uint8),
        "y_train": np.arange(8, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (4, 28, 28), np.uint8),
        "y_test": np.arange(4, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **parts)
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = data.load_dataset("mnist")
    np.testing.assert_array_equal(x_train, parts["x_train"])
    np.testing.assert_array_equal(y_test, parts["y_test"])
    np.testing.assert_array_equal(x_test, parts["x_test"])
    np.testing.assert_array_equal(y_train, parts["y_train"])


def test_wrong_image_dimensions_in_a_dataset_folder_are_refused(tmp_path, offline, monkeypatch):
    _write_dataset(tmp_path / "data", image_shape=(32, 32))
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(CorruptDataError, match="28×28") as err:
        data.load_dataset("mnist")
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_labels_not_matching_images_are_refused(tmp_path, offline, monkeypatch):
    folder = tmp_path / "data"
    _write_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(folder))
    with pytest.raises(CorruptDataError, match="must match"):
        data.load_dataset("mnist")


def test_only_test_files_says_exactly_which_files_are_missing(
    mnist_dir, tmp_path, offline, monkeypatch
):
    folder = tmp_path / "only-t10k"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, folder / name)
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(folder))
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_dataset("mnist")
    message = str(err.value)
    assert isinstance(err.value, DataUnavailableError)
    assert str(folder) in message
    assert "missing train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]" in message
    assert "t10k-images" not in message.split("Missing files:")[1].split("\n")[0]
    assert "Keras download: offline (test stub)" in message
    assert "CNNLAB_DATA_DIR" in message and "~/.keras/datasets" in message  # how to get it
    assert err.value.missing == ["train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]"]
    assert err.value.test_files_available
    assert offline == ["mnist"]  # the download was the last thing tried

    offline.clear()
    with pytest.raises(data.DatasetNotFoundError, match="not attempted"):
        data.load_dataset("mnist", allow_download=False)
    assert offline == []


def test_nothing_anywhere_lists_every_source(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_dataset("mnist")
    message = str(err.value)
    assert f"CNNLAB_DATA_DIR: {tmp_path / 'nowhere'} (no such folder)" in message
    assert "Keras' cache" in message and "Keras download" in message
    assert not err.value.test_files_available
    with pytest.raises(data.DatasetNotFoundError, match="test files could not be found"):
        data.load_test_split("mnist")


def test_load_test_split_is_a_stratified_reproducible_split(mnist_dir, offline, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    (x_tr, y_tr), (x_te, y_te) = data.load_test_split("mnist", train_fraction=0.8, seed=3)
    assert x_tr.shape == (8000, 28, 28) and x_te.shape == (2000, 28, 28)
    counts_tr, counts_te = np.bincount(y_tr, minlength=10), np.bincount(y_te, minlength=10)
    assert (counts_tr + counts_te).tolist() == MNIST_TEST_CLASS_COUNTS
    for total, part in zip(MNIST_TEST_CLASS_COUNTS, counts_te, strict=True):
        assert abs(part - total * 0.2) <= 1
    # Every one of the 10,000 images is used exactly once.
    full = data.read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").reshape(10000, -1)
    together = np.concatenate([x_tr, x_te]).reshape(10000, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, full))
    (x_again, _), _ = data.load_test_split("mnist", train_fraction=0.8, seed=3)
    np.testing.assert_array_equal(x_again, x_tr)
    (x_other, _), _ = data.load_test_split("mnist", train_fraction=0.8, seed=4)
    assert not np.array_equal(x_other, x_tr)


def test_unknown_dataset_and_bad_fraction(offline):
    with pytest.raises(DataUnavailableError, match="Unknown dataset"):
        data.load_dataset("cifar10")
    with pytest.raises(DataUnavailableError, match="between 0 and 1"):
        data.load_test_split("mnist", train_fraction=1.0)


def test_to_model_input_scales_and_adds_a_channel():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = data.to_model_input(x)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :, 0], [[0, 1], [0.2, 0.4]], atol=1e-7)
    assert data.to_model_input(out).shape == (1, 2, 2, 1)
    with pytest.raises(InvalidArgumentError):
        data.to_model_input(np.zeros((28, 28)))
