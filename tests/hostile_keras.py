"""The hostile ``.keras`` corpus: one file per trick, each with what CNN Lab must answer.

Every file starts from a genuine small convnet saved by Keras (``genuine``) and changes one
thing: a field of ``config.json`` that Keras would read beyond what was inspected, an
activation that names a function that changes Keras' settings, the zip around it, or the
HDF5 weights file (fill-value and gzip bombs, external, virtual and linked datasets, other
filters, wrong shapes and types). ``corpus()`` returns them as ``Hostile`` items: the bytes,
and either the words of the learner's message that must refuse it or ``ACCEPT`` (a file
that is odd but safe, accepted on purpose). ``tests/hostile_corpus.py`` lists them too, as
its ``KERAS_TRICKS``.

Run it to write the files into a folder (one per trick)::

    python tests/hostile_keras.py /tmp/hostile-keras
"""

from __future__ import annotations

import io
import json
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property, partial
from pathlib import Path

import numpy as np

#: ``Hostile.expect`` for a file that must load (safe, accepted on purpose).
ACCEPT = "ACCEPT"


@dataclass(frozen=True)
class Hostile:
    """One trick: ``name`` (the file name), ``make()`` building the file's bytes (``data``,
    made on first use), and ``expect``: words the refusal's message must contain, or
    ``ACCEPT``; ``why``: what it tries."""

    name: str
    make: Callable[[], bytes]
    expect: str
    why: str

    @cached_property
    def data(self) -> bytes:
        return self.make()


# --------------------------------------------------------------------------------------------
# The genuine file and its parts
# --------------------------------------------------------------------------------------------


@cache
def genuine() -> bytes:
    """A small convnet as Keras saves it: 28×28×1 raw pixels → 10 classes."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="pixels"),
            keras.layers.Rescaling(1 / 255, name="scale"),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="genuine",
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "genuine.keras"
        model.save(path)
        return path.read_bytes()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def config_of(data: bytes) -> dict:
    return json.loads(members(data)["config.json"])


def zipped(parts: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return out.getvalue()


def with_config(edit: Callable[[dict], object]) -> bytes:
    """The genuine file with ``edit`` applied to its config.json."""
    parts = members(genuine())
    config = json.loads(parts["config.json"])
    edit(config)
    parts["config.json"] = json.dumps(config).encode()
    return zipped(parts)


def layer(config: dict, name: str) -> dict:
    return next(x for x in config["config"]["layers"] if x["config"]["name"] == name)


def with_weights(edit: Callable[[object], object]) -> bytes:
    """The genuine file with ``edit(h5py.File)`` applied to its model.weights.h5."""
    import h5py

    parts = members(genuine())
    buffer = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(buffer, "a") as f:
        edit(f)
    parts["model.weights.h5"] = buffer.getvalue()
    return zipped(parts)


KERNEL = "layers/dense/vars/0"  # the Dense kernel, (676, 10)
CONV = "layers/conv2d/vars/0"  # the Conv2D kernel, (3, 3, 1, 4)


def replace(f, path: str, **dataset) -> None:
    """Replace the dataset at ``path`` by ``h5py.Group.create_dataset(**dataset)``."""
    group, name = path.rsplit("/", 1)
    del f[group][name]
    f[group].create_dataset(name, **dataset)


# --------------------------------------------------------------------------------------------
# Raw zips: what zipfile cannot write
# --------------------------------------------------------------------------------------------


def raw_zip(entries: list[tuple[str, bytes, int, int, int, int]]) -> bytes:
    """A zip of (name, stored bytes, method, crc, declared size, flags) entries."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, body, method, crc, size, flags in entries:
        offset = out.tell()
        raw = name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                flags,
                method,
                0,
                0,
                crc,
                len(body),
                size,
                len(raw),
                0,
            )
            + raw
            + body
        )
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                flags,
                method,
                0,
                0,
                crc,
                len(body),
                size,
                len(raw),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw
        )
    start, cd = out.tell(), central.getvalue()
    out.write(cd)
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), start, 0)
    )
    return out.getvalue()


def stored(name: str, body: bytes) -> tuple[str, bytes, int, int, int, int]:
    return name, body, 0, zlib.crc32(body), len(body), 0


def deflate_bomb(size: int) -> bytes:
    """A raw deflate stream of ``size`` zeros (1 MiB blocks repeated)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + z.flush()


def zip_with(name: str, body: bytes, method: int, declared: int, crc: int = 0, flags=0) -> bytes:
    """The genuine members stored, plus or instead of ``name``: ``body`` as ``method``."""
    parts = members(genuine())
    entries = [stored(n, b) for n, b in parts.items() if n != name]
    return raw_zip([*entries, (name, body, method, crc, declared, flags)])


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


def _config_tricks() -> list[Hostile]:
    numpy_activation = {
        "class_name": "__numpy__",
        "config": {"value": [1.0], "dtype": "float16"},
    }
    keras_function = {
        "module": "keras.config",
        "class_name": "function",
        "config": "set_floatx",
        "registered_name": "function",
    }
    out = [
        (
            "build_config.keras",
            lambda c: layer(c, "out").update(build_config={"input_shape": [None, 100_000_000]}),
            "declares the input shape",
            "build_config makes Keras build a 10^9-weight kernel the inspection never saw",
        ),
        (
            "model_build_config.keras",
            lambda c: c.update(build_config={"input_shape": [None, 4000, 4000, 1]}),
            "build_config",
            "the model's build_config declares another input than its InputLayer",
        ),
        (
            "batch_input_shape.keras",
            lambda c: c["config"]["layers"][0]["config"].update(
                batch_input_shape=[None, 4000, 4000, 1]
            ),
            "both batch_shape and batch_input_shape",
            "batch_input_shape beside batch_shape: the inspection reads one, Keras the other",
        ),
        (
            "lora_rank.keras",
            lambda c: layer(c, "out")["config"].update(lora_rank=1_000_000),
            "lora_rank",
            "lora_rank makes Keras add two huge LoRA matrices",
        ),
        (
            "quantization_config.keras",
            lambda c: layer(c, "out")["config"].update(quantization_config={"mode": "int8"}),
            "quantization_config",
            "a quantization config Keras would apply",
        ),
        (
            "shared_object_id.keras",
            lambda c: layer(c, "out").update(shared_object_id=1),
            "shared_object_id",
            "shared_object_id makes Keras reuse one object in several places",
        ),
        (
            "activation_set_floatx.keras",
            lambda c: layer(c, "out")["config"].update(activation="set_floatx"),
            "built-in activation",
            "an activation naming a public Keras function that changes floatx",
        ),
        (
            "activation_keras_function.keras",
            lambda c: layer(c, "out")["config"].update(activation=keras_function),
            "built-in activation",
            "an activation serialized as a function of keras.config",
        ),
        (
            "activation_numpy.keras",
            lambda c: layer(c, "conv")["config"].update(activation=numpy_activation),
            "built-in activation",
            "an activation that is a __numpy__ object",
        ),
        (
            "activation_image_data_format.keras",
            lambda c: layer(c, "conv")["config"].update(activation="set_image_data_format"),
            "built-in activation",
            "an activation that switches the image data format on the first forward pass",
        ),
        (
            "initializer_custom.keras",
            lambda c: layer(c, "conv")["config"].update(
                kernel_initializer={"module": "os", "class_name": "system", "config": {}}
            ),
            "built-in initializer",
            "an initializer from another module",
        ),
        (
            "regularizer_custom.keras",
            lambda c: layer(c, "conv")["config"].update(
                kernel_regularizer={
                    "module": "keras.regularizers",
                    "class_name": "L2",
                    "config": {"l2": 0.1},
                    "registered_name": "evil>L2",
                }
            ),
            "built-in regularizer",
            "a regularizer registered as custom code",
        ),
        (
            "constraint_unknown.keras",
            lambda c: layer(c, "conv")["config"].update(
                kernel_constraint={
                    "module": "keras.constraints",
                    "class_name": "Clip",
                    "config": {},
                }
            ),
            "constraint",
            "a constraint outside the allow-list",
        ),
        (
            "custom_class.keras",
            lambda c: layer(c, "conv").update(module="evil.layers", registered_name="evil>Conv2D"),
            "custom code",
            "a layer class from another module",
        ),
        (
            "custom_registered_name.keras",
            lambda c: layer(c, "conv").update(registered_name="evil>Conv2D"),
            "custom code",
            "a Keras class name registered as custom code",
        ),
        (
            "unknown_layer.keras",
            lambda c: layer(c, "conv").update(class_name="Conv3D"),
            "CNN Lab opens models made of these layers",
            "a Keras layer outside the allow-list",
        ),
        (
            "tfsm_layer.keras",
            lambda c: layer(c, "conv").update(class_name="TFSMLayer"),
            "SavedModel from the server's disk",
            "a layer that loads files from the server",
        ),
        (
            "huge_input.keras",
            lambda c: c["config"]["layers"][0]["config"].update(
                batch_shape=[None, 10**9, 10**9, 1]
            ),
            "sizes are 1 to 65,536",
            "a declared input of 10^18 pixels",
        ),
        (
            "wide_input.keras",
            lambda c: _drop_build_configs(c, [None, 60_000, 60_000, 1]),
            "activations for one image would take more than",
            "a declared input of 3.6·10^9 pixels with consistent build configs",
        ),
        (
            "huge_units.keras",
            lambda c: layer(c, "out")["config"].update(units=2_000_000_000),
            "units",
            "a Dense layer of 2·10^9 units",
        ),
        (
            "many_params.keras",
            lambda c: layer(c, "out")["config"].update(units=60_000),
            "more than 10,000,000 parameters",
            "a Dense layer within its bounds but over the parameter budget",
        ),
        (
            "open_input.keras",
            lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, None, None, 1]),
            "open size",
            "an input of any size (memory cannot be bounded)",
        ),
        (
            "channels_first.keras",
            lambda c: layer(c, "conv")["config"].update(data_format="channels_first"),
            "channels_last",
            "a data format that changes every shape",
        ),
        (
            "float64_policy.keras",
            lambda c: layer(c, "conv")["config"].update(dtype="float64"),
            "dtype",
            "a layer dtype policy outside the allow-list",
        ),
        (
            "unknown_setting.keras",
            lambda c: layer(c, "conv")["config"].update(evil=True),
            "does not accept",
            "a setting no Keras layer has",
        ),
        (
            "deep_nesting.keras",
            _nest_deeply,
            "nested more than",
            "models nested 12 deep",
        ),
    ]
    return [Hostile(n, partial(with_config, e), w, why) for n, e, w, why in out]


def _drop_build_configs(config: dict, batch_shape: list) -> None:
    config["config"]["layers"][0]["config"]["batch_shape"] = batch_shape
    config.pop("build_config", None)
    config["config"].pop("build_input_shape", None)
    for entry in config["config"]["layers"]:
        entry.pop("build_config", None)


def _nest_deeply(config: dict) -> None:
    inner = json.loads(json.dumps(config))
    for i in range(12):
        outer = json.loads(json.dumps(config))
        inner["config"]["name"] = f"level{i}"
        inner.pop("build_config", None)
        outer["config"]["layers"] = [config["config"]["layers"][0], inner]
        inner = outer
    config.clear()
    config.update(inner)


def _lambda_file() -> bytes:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lambda.keras"
        model.save(path)
        return path.read_bytes()


def _json_tricks() -> list[Hostile]:
    def config_bytes(body: bytes) -> bytes:
        return zipped({**_parts(), "config.json": body})

    def text() -> str:
        return _parts()["config.json"].decode()

    def units(value: str) -> bytes:
        changed = text().replace('"units": 10,', f'"units": {value},', 1)
        assert changed != text()
        return config_bytes(changed.encode())

    return [
        Hostile("lambda.keras", _lambda_file, "Lambda layer runs Python code", "Python code"),
        Hostile(
            "deep_json.keras",
            lambda: config_bytes(b"[" * 200_000 + b"]" * 200_000),
            "not valid JSON",
            "JSON nested 200,000 deep (the parser's recursion)",
        ),
        Hostile(
            "duplicate_json_key.keras",
            lambda: units('10, "units": 5000000'),
            "names a setting twice",
            "a key given twice: the inspection and Keras could read different ones",
        ),
        Hostile(
            "huge_number.keras",
            lambda: units("9" * 5000),
            "not valid JSON",
            "a 5,000-digit number (Python's int parsing limit)",
        ),
        Hostile(
            "not_json.keras",
            lambda: config_bytes(b"\xff\xfe{"),
            "not valid JSON",
            "not UTF-8 JSON",
        ),
    ]


def _lying_count(parts: dict[str, bytes]) -> bytes:
    """The genuine members and an extra one, under an end record that counts 3 entries."""
    data = bytearray(raw_zip([*(stored(n, b) for n, b in parts.items()), stored("x", b"")]))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<HH", 3, 3)
    return bytes(data)


def _parts() -> dict[str, bytes]:
    return members(genuine())


def _weights() -> bytes:
    return _parts()["model.weights.h5"]


@cache
def _corrupt() -> bytes:
    """The genuine weights deflated (raw), with 64 bytes of the stream zeroed."""
    stream = zlib.compress(_weights())[2:-4]
    return stream[:100] + bytes(64) + stream[164:]


def _zip_tricks() -> list[Hostile]:
    return [
        Hostile(
            "not_a_zip.keras",
            lambda: b"\x89PNG\r\n\x1a\n not a model",
            "not a .keras model file",
            "a PNG",
        ),
        Hostile("empty.keras", lambda: b"", "empty", "no bytes"),
        Hostile(
            "extra_member.keras",
            lambda: zipped({**_parts(), "evil.py": b"import os"}),
            "files a Keras model file does not have",
            "a zip with extra members",
        ),
        Hostile(
            "assets_member.keras",
            lambda: zipped({**_parts(), "assets/vocabulary.txt": b"/etc/passwd"}),
            "files a Keras model file does not have",
            "assets a layer would read",
        ),
        Hostile(
            "duplicate_member.keras",
            lambda: raw_zip(
                [*(stored(n, b) for n, b in _parts().items()), stored("config.json", b"{}")]
            ),
            "same file twice",
            "config.json twice",
        ),
        Hostile(
            "many_entries.keras",
            lambda: raw_zip([stored(f"e{i}", b"") for i in range(50_000)]),
            "lists 50,000 files",
            "50,000 entries: refused from the end record, before the directory is parsed",
        ),
        Hostile(
            "lying_entry_count.keras",
            lambda: _lying_count(_parts()),
            "does not hold the files its end record lists",
            "an end record that lists 3 entries over a directory of 4",
        ),
        Hostile(
            "no_config.keras",
            lambda: zipped({k: v for k, v in _parts().items() if k != "config.json"}),
            "no config.json",
            "no architecture",
        ),
        Hostile(
            "no_weights.keras",
            lambda: zipped({k: v for k, v in _parts().items() if k != "model.weights.h5"}),
            "no model.weights.h5",
            "no weights",
        ),
        Hostile(
            "bzip2.keras",
            lambda: zipped(_parts(), zipfile.ZIP_BZIP2),
            "compressed with bzip2",
            "bzip2 members (zipfile would decompress them)",
        ),
        Hostile(
            "lzma.keras",
            lambda: zipped(_parts(), zipfile.ZIP_LZMA),
            "compressed with LZMA",
            "LZMA members",
        ),
        Hostile(
            "deflate64.keras",
            lambda: zip_with("model.weights.h5", _corrupt(), 9, len(_weights())),
            "Deflate64, which CNN Lab does not unpack. Re-zip it with standard compression",
            "Deflate64, which zipfile cannot read",
        ),
        Hostile(
            "corrupt_deflate.keras",
            lambda: zip_with(
                "model.weights.h5", _corrupt(), 8, len(_weights()), zlib.crc32(_weights())
            ),
            "damaged",
            "a corrupt deflate stream (zlib.error)",
        ),
        Hostile(
            "bad_crc.keras",
            lambda: zip_with("model.weights.h5", _weights(), 0, len(_weights()), 1234),
            "damaged",
            "a wrong CRC",
        ),
        Hostile(
            "encrypted.keras",
            lambda: zip_with(
                "model.weights.h5", _weights(), 0, len(_weights()), zlib.crc32(_weights()), 1
            ),
            "encrypted",
            "an encrypted member",
        ),
        Hostile(
            "zip_bomb.keras",
            lambda: zip_with("model.weights.h5", deflate_bomb(2 << 30), 8, 2 << 30),
            "would unpack to",
            "weights declared as 2 GiB of deflated zeros",
        ),
        Hostile(
            "lying_size.keras",
            lambda: zip_with("model.weights.h5", deflate_bomb(64 << 20), 8, len(_weights())),
            "damaged",
            "a member that inflates far past its declared size",
        ),
        Hostile(
            "deflated_members.keras",
            lambda: zipped(_parts(), zipfile.ZIP_DEFLATED),
            ACCEPT,
            "standard deflate compression: accepted",
        ),
    ]


def _gzip_bomb(f) -> None:
    """The Dense kernel chunked and gzip-compressed, its first chunk replaced by 1 GiB of
    compressed zeros (about 1 MB)."""
    kernel = f[KERNEL][()]
    replace(f, KERNEL, data=kernel, chunks=(64, 10), compression="gzip")
    z = zlib.compressobj(9)  # zlib format, as HDF5's deflate filter writes
    first = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)  # the same after a reset
    f[KERNEL].id.write_direct_chunk((0, 0), first + block * 1023 + z.flush(), filter_mask=0)


def _gzip_overflow(f) -> None:
    """The first chunk (64 × 10 values, 2,560 bytes) replaced by 1 MiB of zeros, deflated
    to about 1 kB: as small as a genuine chunk, but it inflates 400 times past it."""
    replace(f, KERNEL, data=f[KERNEL][()], chunks=(64, 10), compression="gzip")
    f[KERNEL].id.write_direct_chunk((0, 0), zlib.compress(bytes(1 << 20), 9), filter_mask=0)


def _virtual(f) -> None:
    import h5py

    layout = h5py.VirtualLayout(shape=(676, 10), dtype="float32")
    layout[:] = h5py.VirtualSource("/etc/passwd.h5", "data", shape=(676, 10))
    group = f["layers/dense/vars"]
    del group["0"]
    group.create_virtual_dataset("0", layout, fillvalue=0)


def _h5_tricks() -> list[Hostile]:
    import h5py

    out = [
        (
            "fill_value_bomb.keras",
            lambda f: replace(f, KERNEL, shape=(1_000_000, 10_000), dtype="float32", fillvalue=1.0),
            "holds weights of shape",
            "a 40 GB dataset that is never written: reading it makes 40 GB of fill values",
        ),
        (
            "chunked_fill_value_bomb.keras",
            lambda f: replace(
                f, KERNEL, shape=(10**9, 10), dtype="float32", chunks=(1024, 10), fillvalue=1.0
            ),
            "holds weights of shape",
            "the same, chunked",
        ),
        (
            "fill_value_weights.keras",
            lambda f: replace(f, KERNEL, shape=(676, 10), dtype="float32", fillvalue=0.5),
            ACCEPT,
            "a kernel of the right shape never written: its fill value, within its own size",
        ),
        (
            "gzip_bomb.keras",
            _gzip_bomb,
            "compressed chunk",
            "a gzip chunk that inflates to 1 GiB",
        ),
        (
            "gzip_overflow.keras",
            _gzip_overflow,
            "unpacks to more than",
            "a 1 kB gzip chunk that inflates to 1 MiB, 400 times its declared size",
        ),
        (
            "gzip_weights.keras",
            lambda f: replace(f, KERNEL, data=f[KERNEL][()], chunks=(100, 10), compression="gzip"),
            ACCEPT,
            "weights compressed with gzip by h5py: accepted",
        ),
        (
            "big_endian.keras",
            lambda f: replace(f, KERNEL, data=f[KERNEL][()].astype(">f4")),
            ACCEPT,
            "big-endian float32: accepted",
        ),
        (
            "lzf_filter.keras",
            lambda f: replace(f, KERNEL, data=f[KERNEL][()], chunks=(100, 10), compression="lzf"),
            "filter CNN Lab does not read",
            "another filter",
        ),
        (
            "shuffle_filter.keras",
            lambda f: replace(
                f, KERNEL, data=f[KERNEL][()], chunks=(100, 10), compression="gzip", shuffle=True
            ),
            "filter CNN Lab does not read",
            "two filters",
        ),
        (
            "huge_chunk.keras",
            _huge_chunk,
            "chunks",
            "one 68 MB chunk for a 27 kB kernel (a chunk is read whole)",
        ),
        (
            "many_chunks.keras",
            lambda f: replace(f, KERNEL, data=f[KERNEL][()], chunks=(1, 1)),
            ACCEPT,
            "6,760 one-value chunks: within the cap (65,536), accepted",
        ),
        (
            "external_storage.keras",
            lambda f: replace(
                f, KERNEL, shape=(676, 10), dtype="float32", external=[("/etc/passwd", 0, 27040)]
            ),
            "in another file",
            "a dataset stored in /etc/passwd",
        ),
        (
            "virtual_dataset.keras",
            _virtual,
            "virtual dataset",
            "a virtual dataset reading another file",
        ),
        (
            "soft_link.keras",
            lambda f: _relink(f, h5py.SoftLink("/" + CONV)),
            "links",
            "a soft link to another dataset",
        ),
        (
            "external_link.keras",
            lambda f: _relink(f, h5py.ExternalLink("/etc/passwd", "/data")),
            "links",
            "an external link to a file on the server",
        ),
        (
            "float64_weights.keras",
            lambda f: replace(f, KERNEL, data=f[KERNEL][()].astype("float64")),
            "Keras writes float32",
            "float64 weights",
        ),
        (
            "int_weights.keras",
            lambda f: replace(f, KERNEL, data=np.zeros((676, 10), "int32")),
            "Keras writes float32",
            "integer weights",
        ),
        (
            "wrong_shape.keras",
            lambda f: replace(f, CONV, data=np.zeros((5, 5, 1, 4), "float32")),
            "holds weights of shape",
            "a kernel of another shape",
        ),
        (
            "extra_dataset.keras",
            lambda f: f["layers/dense/vars"].create_dataset("2", data=np.zeros(3, "float32")),
            "holds 3 weight arrays",
            "an extra weight in a layer's group",
        ),
        (
            "missing_dataset.keras",
            lambda f: f["layers/dense/vars"].__delitem__("1"),
            "holds 1 weight array ",
            "a missing bias",
        ),
        (
            "nan_weights.keras",
            lambda f: replace(f, KERNEL, data=np.full((676, 10), np.nan, "float32")),
            "not numbers",
            "NaN weights",
        ),
        (
            "optimizer_state.keras",
            lambda f: f.create_group("optimizer/vars").create_dataset(
                "0", shape=(10**6, 10**4), dtype="float32"
            ),
            ACCEPT,
            "a 40 GB optimizer dataset: never opened, accepted",
        ),
    ]
    garbage = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8
    return [
        *(Hostile(n, partial(with_weights, e), w, why) for n, e, w, why in out),
        Hostile(
            "not_hdf5.keras",
            lambda: zipped({**_parts(), "model.weights.h5": garbage}),
            "damaged or is not an HDF5 file",
            "garbage after the HDF5 signature",
        ),
    ]


def _huge_chunk(f) -> None:
    """The kernel in one chunk of 68 MB (1,690,000 × 10 values), refused before reading."""
    replace(
        f, KERNEL, shape=(676, 10), dtype="float32", chunks=(1_690_000, 10), maxshape=(None, 10)
    )


def _relink(f, link) -> None:
    group = f["layers/dense/vars"]
    del group["0"]
    group["0"] = link


def corpus() -> list[Hostile]:
    """Every trick, one file each (built on first use; about 20 MB in all)."""
    items = [*_config_tricks(), *_json_tricks(), *_zip_tricks(), *_h5_tricks()]
    names = [h.name for h in items]
    assert len(set(names)) == len(names)
    return items


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for item in corpus():
        (out / item.name).write_bytes(item.data)
        print(f"{item.name}: {item.why} → {item.expect}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hostile-keras")
