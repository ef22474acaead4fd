"""cnnlib.uploads.model_files: genuine models rebuilt from CNN Lab's spec, round trips of
every kind of model the app exports, and crafted .keras uploads, one per archive rule.

The rebuilt model is compared with Keras' own loader on the same file (a reference the
test may use: these files are the tests' own). Crafted files are made from a real saved
model by editing its archive or config.json; the decompression bomb is a hand-written zip
whose member declares 2 GB (2 MB of deflated zeros) — no 2 GB buffer is ever built. The
hostile corpus (tests/hostile_keras.py) has the rest: tests/test_hostile_keras.py.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnlib.core.budgets import Budgets
from cnnlib.core.errors import InvalidModelError
from cnnlib.models.layers import caffe_preprocess_layer
from cnnlib.models.presets import MNIST_PRESETS
from cnnlib.training import transfer
from cnnlib.training.trainer import save_model_bytes
from cnnlib.uploads.model_files import inspect_keras_file, keras_settings, load_keras_file

BUDGETS = Budgets()


def small_model() -> keras.Model:
    """The kind of convnet the MNIST page saves: 28×28×1 → 10, with its own rescaling."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def saved(model: keras.Model, tmp_path) -> bytes:
    path = tmp_path / "model.keras"
    model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> tuple[keras.Model, bytes]:
    model = small_model()
    return model, saved(model, tmp_path_factory.mktemp("genuine"))


def rezip(
    data: bytes,
    *,
    config=None,
    extra: dict[str, bytes] | None = None,
    replace: dict[str, bytes] | None = None,
) -> bytes:
    """The archive with its config.json replaced (dict, or raw bytes), members replaced
    and members added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            body = (replace or {}).get(name, src.read(name))
            if name == "config.json" and config is not None:
                body = config if isinstance(config, bytes) else json.dumps(config).encode()
            dst.writestr(name, body)
        for name, body in (extra or {}).items():
            dst.writestr(name, body)
    return out.getvalue()


def config_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("config.json"))


def zip_bomb(members: dict[str, bytes], bomb_name: str, bomb_size: int) -> bytes:
    """A zip with ``members`` stored, plus ``bomb_name``: ``bomb_size`` zeros, deflated.

    The deflate stream repeats one byte-aligned block of 1 MiB of zeros (a full flush
    resets the compressor, so every block compresses to the same bytes); the CRC is not
    computed (the file must be refused before anything reads it).
    """
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    stream = block * (bomb_size >> 20) + z.flush()
    out, central = io.BytesIO(), io.BytesIO()
    entries = [(n, b, 0, zlib.crc32(b), len(b), b) for n, b in members.items()]
    entries.append((bomb_name, stream, 8, 0, bomb_size, None))
    for name, body, method, crc, size, _ in entries:
        offset = out.tell()
        raw_name = name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                method,
                0,
                0,
                crc,
                len(body),
                size,
                len(raw_name),
                0,
            )
            + raw_name
            + body
        )
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0,
                crc,
                len(body),
                size,
                len(raw_name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw_name
        )
    start, cd = out.tell(), central.getvalue()
    out.write(cd)
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), start, 0)
    )
    return out.getvalue()


def keras_loaded(data: bytes) -> keras.Model:
    """The reference: Keras' own loader on a file this test made."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=False)


def same_predictions(ours, reference, shape, atol=1e-5) -> None:
    x = np.random.default_rng(7).uniform(0, 255, (2, *shape)).astype(np.float32)
    expected = np.asarray(reference(x, training=False))
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), expected, atol=atol)


def refused(data: bytes, words: str, budgets: Budgets = BUDGETS) -> str:
    with pytest.raises(InvalidModelError, match=words) as info:
        inspect_keras_file(data, budgets=budgets)
    message = str(info.value)
    assert "Error" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------------------------
# Genuine models
# --------------------------------------------------------------------------------------------


def test_genuine_model_is_described_like_keras(genuine):
    model, data = genuine
    report = inspect_keras_file(data, budgets=BUDGETS)
    assert set(report.members) == {"config.json", "metadata.json", "model.weights.h5"}
    assert report.model_class == "Sequential" and report.input_shape == (28, 28, 1)
    assert report.params == model.count_params() == 4 * 10 + 4 * 4 + 13 * 13 * 4 * 10 + 10
    shapes = [r.output_shape for r in report.layers[1:]]
    assert shapes == [tuple(layer.output.shape[1:]) for layer in model.layers]
    # float32 values: 784 input + 784 rescaled + 2,704 conv + 2,704 BN + 676 pool + 676
    # flatten + 676 dropout + 10 = 9,014.
    assert report.activation_bytes == 9_014 * 4
    assert report.keras_version == keras.__version__


@pytest.mark.slow
def test_genuine_model_loads_and_predicts_like_the_original(genuine):
    model, data = genuine
    before = keras_settings()
    loaded = load_keras_file(data, budgets=BUDGETS)
    assert keras_settings() == before  # after the load
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert keras_settings() == before  # after the first forward pass
    report = inspect_keras_file(data, budgets=BUDGETS)
    assert loaded.count_params() == report.params
    assert tuple(loaded.input_shape[1:]) == report.input_shape
    assert [x.name for x in loaded.layers] == [x.name for x in model.layers]


def test_the_server_only_takes_the_sandboxs_answer(genuine, monkeypatch):
    """zipfile, json's parser for the file, h5py and the parser itself are off limits in this
    process: the upload is still read (by a decoder process) and rebuilt here."""
    import h5py

    from cnnlib.uploads import model_files

    _, data = genuine

    def forbidden(*args, **kwargs):
        raise AssertionError("the server parsed the uploaded bytes itself")

    monkeypatch.setattr(model_files, "read_keras_file", forbidden)
    monkeypatch.setattr(model_files, "read_weights", forbidden)
    monkeypatch.setattr(zipfile, "ZipFile", forbidden)
    monkeypatch.setattr(h5py, "File", forbidden)
    assert inspect_keras_file(data, budgets=BUDGETS).params == genuine[0].count_params()
    assert load_keras_file(data, budgets=BUDGETS).count_params() == genuine[0].count_params()


def test_keras_deserializer_never_sees_the_file(genuine, monkeypatch):
    _, data = genuine

    def forbidden(*args, **kwargs):
        raise AssertionError("Keras' deserializer was called on an uploaded file")

    for name in ("load_model", "deserialize_keras_object"):
        monkeypatch.setattr(keras.saving, name, forbidden)
    monkeypatch.setattr(keras.Model, "from_config", forbidden)
    monkeypatch.setattr(keras.layers.Layer, "from_config", forbidden)
    assert load_keras_file(data, budgets=BUDGETS).count_params() > 0


@pytest.mark.slow
def test_functional_model_with_branches_counts_like_keras(tmp_path):
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal")], name="augment")
    inputs = keras.Input((32, 32, 3), name="image")
    x = augment(inputs)
    x = keras.layers.ZeroPadding2D(((1, 2), (0, 1)))(x)
    a = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    b = keras.layers.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2)(x)
    y = keras.layers.Add()([a, b])
    c = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.Concatenate()([y, c])
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.AveragePooling2D(3, strides=1)(y)
    y = keras.layers.Multiply()([y, keras.layers.Activation("sigmoid")(y)])
    y = keras.layers.GlobalAveragePooling2D()(y)
    outputs = keras.layers.Dense(5)(keras.layers.Dense(16, activation="gelu")(y))
    model = keras.Model(inputs, outputs)
    data = saved(model, tmp_path)
    report = inspect_keras_file(data, budgets=BUDGETS)
    assert report.model_class == "Functional"
    assert report.params == model.count_params()
    ours = {r.name: r.output_shape for r in report.layers}
    flip = augment.layers[0].name  # "random_flip", or with a suffix after other tests' layers
    assert ours[flip] == (32, 32, 3)  # inside the nested augmentation model
    for layer in model.layers[2:]:
        assert ours[layer.name] == tuple(layer.output.shape[1:]), layer.name
    same_predictions(load_keras_file(data, budgets=BUDGETS), keras_loaded(data), (32, 32, 3))


# --------------------------------------------------------------------------------------------
# One crafted file per rule
# --------------------------------------------------------------------------------------------


def test_not_a_zip():
    refused(b"\x89PNG\r\n\x1a\n not a model at all", "not a .keras model file")
    refused(b"", "empty")


def test_extra_member_that_would_unpack_to_2_gb(genuine):
    _, data = genuine
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    bomb = zip_bomb(members, "assets/zeros.bin", 2 << 30)
    assert len(bomb) < 3_000_000
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:  # a valid zip, as zipfile sees it
        assert zf.getinfo("assets/zeros.bin").file_size == 2 << 30
    message = refused(bomb, "files a Keras model file does not have")
    assert "assets/zeros.bin" in message


def test_weights_that_would_unpack_to_2_gb(genuine):
    _, data = genuine
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in ("config.json", "metadata.json")}
    bomb = zip_bomb(members, "model.weights.h5", 2 << 30)
    message = refused(bomb, "would unpack to 2.1 GB")
    assert "model.weights.h5" in message


def test_files_that_unpack_to_more_than_the_budget(genuine):
    _, data = genuine
    refused(
        data,
        "would unpack to 55.* more than the 10.0 kB allowed",
        Budgets(model_unpacked_bytes=10_000),
    )


def test_too_many_members(genuine):
    _, data = genuine
    refused(data, "lists 3 files", Budgets(model_members=2))


def test_dense_with_two_billion_units(genuine):
    _, data = genuine
    config = config_of(data)
    config["config"]["layers"][-1]["config"]["units"] = 2_000_000_000
    refused(rezip(data, config=config), "units `2000000000`; it must be a whole number")
    config["config"]["layers"][-1]["config"]["units"] = 60_000
    message = refused(rezip(data, config=config), "more than 10,000,000 parameters")
    assert "40,620,000" in message  # (676 inputs + 1) × 60,000 units


def test_activations_over_budget(tmp_path):
    model = keras.Sequential([keras.Input((4000, 4000, 1)), keras.layers.Conv2D(4, 3)])
    refused(saved(model, tmp_path), "activations for one image would take more than 268.4 MB")


def test_open_input_size_is_refused(genuine):
    _, data = genuine
    config = config_of(data)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 1]
    refused(rezip(data, config=config), "open size")


def test_config_over_its_byte_budget(genuine):
    _, data = genuine
    config = config_of(data)
    config["padding"] = " " * 200_000  # stands for 200 MB: the budget is scaled down
    message = refused(
        rezip(data, config=config), "config.json is 204.9 kB", Budgets(model_config_bytes=100_000)
    )
    assert "100.0 kB" in message


def test_bad_json(genuine):
    _, data = genuine
    refused(rezip(data, config=b'{"class_name": "Sequential", "config": {'), "not valid JSON")
    refused(rezip(data, config=b"[" * 100_000), "not valid JSON|nested too deeply")
    refused(rezip(data, config=b'{"class_name": "Dict"}'), "does not describe a Keras")
    twice = config_of(data)
    raw = json.dumps(twice).replace('"units": 10', '"units": 10, "units": 99', 1).encode()
    refused(rezip(data, config=raw), "names a setting twice")


def test_lambda_layer(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    refused(saved(model, tmp_path), "Lambda layer runs Python code")


def test_custom_object(genuine):
    _, data = genuine
    config = config_of(data)
    layer = config["config"]["layers"][2]
    layer.update(module="evil.layers", class_name="Conv2D", registered_name="evil>Conv2D")
    refused(rezip(data, config=config), "custom code that is not part of Keras")
    layer.update(module="keras.layers", registered_name="evil>Conv2D")
    refused(rezip(data, config=config), "registered as `evil>Conv2D`, custom code")
    # A custom initializer inside an allowed layer is found too.
    config = config_of(data)
    config["config"]["layers"][2]["config"]["kernel_initializer"]["module"] = "os"
    refused(rezip(data, config=config), "built-in initializer")


@pytest.mark.parametrize(
    "class_name, settings, words",
    [
        ("TFSMLayer", {"filepath": "/etc"}, "SavedModel from the server's disk"),
        ("StringLookup", {"vocabulary": "/etc/passwd"}, "vocabulary from a file"),
        ("TextVectorization", {"vocabulary": "/etc/passwd"}, "vocabulary from a file"),
        ("Conv3D", {"filters": 2, "kernel_size": 3}, "CNN Lab opens models made of these layers"),
    ],
)
def test_layers_that_read_files_or_are_unknown(genuine, class_name, settings, words):
    _, data = genuine
    config = config_of(data)
    layer = config["config"]["layers"][2]
    layer["class_name"] = class_name
    layer["config"].update(settings)
    refused(rezip(data, config=config), words)


def test_weights_that_do_not_match_the_layers(genuine, tmp_path):
    """The same config with the weights of another model: each array is checked against
    the shape its layer computes before anything is assigned."""
    _, data = genuine
    wider = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(5, 3)])
    with zipfile.ZipFile(io.BytesIO(saved(wider, tmp_path))) as zf:
        weights = zf.read("model.weights.h5")
    mixed = rezip(data, extra={}, replace={"model.weights.h5": weights})
    with pytest.raises(InvalidModelError, match="weights file"):
        load_keras_file(mixed, budgets=BUDGETS)


def test_file_over_the_upload_budget(genuine):
    _, data = genuine
    refused(data, "allowed. Upload a smaller model", Budgets(model_file_bytes=1000))


# --------------------------------------------------------------------------------------------
# Round trips: every kind of model the app exports
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", list(MNIST_PRESETS))
def test_the_mnist_pages_downloads_load(preset):
    """What the MNIST page's download button gives (``save_model_bytes``) for each recipe:
    rebuilt, with the parameters and input the inspection reported, predicting like it."""
    model = MNIST_PRESETS[preset](seed=1)
    model(np.zeros((1, 28, 28, 1), np.float32))
    data = save_model_bytes(model)
    report = inspect_keras_file(data, budgets=BUDGETS)
    loaded = load_keras_file(data, budgets=BUDGETS)
    assert loaded.count_params() == report.params == model.count_params()
    assert tuple(loaded.input_shape[1:]) == report.input_shape == (28, 28, 1)
    same_predictions(loaded, model, (28, 28, 1))


@pytest.mark.slow
def test_own_images_scratch_model_with_augmentation_loads():
    """The own-images page's scratch convnet, trained (so its file holds the optimizer's
    state, never read) and with its augmentation block as a nested Sequential."""
    model = transfer.build_scratch_model((32, 32, 3), 3, augment=True, seed=2)
    model.fit(np.zeros((4, 32, 32, 3)), np.zeros(4), epochs=1, verbose=0)
    data = save_model_bytes(model)
    loaded = load_keras_file(data, budgets=BUDGETS)
    assert isinstance(loaded.layers[0], keras.Sequential)
    assert loaded.count_params() == model.count_params()
    same_predictions(loaded, model, (32, 32, 3))


def transfer_export(backbone: str, size: int = 32) -> keras.Model:
    """The own-images page's export: preprocessing + backbone + head, assembled as the page
    does (``transfer.assemble``), random weights (no download here)."""
    loaded = transfer.load_backbone(backbone, (size, size, 3), weights=None)
    features = loaded.model.output_shape[-1]
    head = transfer.build_head(features, 3, seed=1)
    return transfer.assemble(loaded, head, augment=True, seed=1)


@pytest.mark.slow
def test_own_images_mobilenet_export_loads():
    model = transfer_export("MobileNetV2")
    data = save_model_bytes(model)
    loaded = load_keras_file(data, budgets=BUDGETS)
    assert loaded.count_params() == model.count_params()
    assert [x.name for x in loaded.layers] == [x.name for x in model.layers]
    same_predictions(loaded, model, (32, 32, 3), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["ResNet50", "VGG19"])
def test_own_images_caffe_exports_load(backbone):
    """ResNet50 and VGG19 exports carry CNN Lab's CaffePreprocess layer; they exceed the
    default budgets (23.6 M and 20 M parameters), which a bigger server raises."""
    model = transfer_export(backbone)
    data = save_model_bytes(model)
    budgets = Budgets(
        model_params=30_000_000, model_file_bytes=256 << 20, model_unpacked_bytes=256 << 20
    )
    loaded = load_keras_file(data, budgets=budgets)
    assert type(loaded.get_layer("caffe_preprocess")).__name__ == "CaffePreprocess"
    assert loaded.count_params() == model.count_params()
    same_predictions(loaded, model, (32, 32, 3), atol=1e-3)
    with pytest.raises(InvalidModelError, match=r"more than the 21\.0 MB allowed"):
        inspect_keras_file(data, budgets=BUDGETS)
    big_file = Budgets(model_file_bytes=256 << 20, model_unpacked_bytes=256 << 20)
    with pytest.raises(InvalidModelError, match="more than 10,000,000 parameters"):
        inspect_keras_file(data, budgets=big_file)


def test_caffe_preprocessing_loads_and_only_from_cnn_lab(tmp_path):
    """A small model with CNN Lab's registered ``CaffePreprocess`` layer: accepted by its
    registered name and module, predicts like the original; the same class name from
    another module is refused."""
    inp = keras.Input((16, 16, 3))
    x = caffe_preprocess_layer()(inp)
    x = keras.layers.Conv2D(2, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    data = saved(model, tmp_path)
    same_predictions(load_keras_file(data, budgets=BUDGETS), model, (16, 16, 3))
    config = config_of(data)
    config["config"]["layers"][1]["module"] = "evil.layers"
    refused(rezip(data, config=config), "custom code that is not part of Keras")


def test_weights_in_too_many_chunks_are_refused_before_reading(monkeypatch):
    """The chunk cap, scaled down: the corpus's 6,760 one-value chunks are over 1,000. Runs
    the decoder's side in this process (``read_keras_file``), where the cap can be set."""
    from cnnlib.uploads import model_weights
    from cnnlib.uploads.model_files import ModelLimits, read_keras_file
    from tests.hostile_keras import corpus

    data = next(h.data for h in corpus() if h.name == "many_chunks.keras")
    limits = ModelLimits.of(BUDGETS)
    assert len(read_keras_file(data, limits).weights) == 8  # conv 2, batch norm 4, dense 2
    monkeypatch.setattr(model_weights, "MAX_CHUNKS", 1000)
    with pytest.raises(InvalidModelError, match="in 6,760 chunks of 4 B"):
        read_keras_file(data, limits)
