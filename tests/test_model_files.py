"""cnnlib.uploads.model_files: crafted .keras uploads, one per rule, and genuine models that load.

Crafted files are made from a real saved model by editing its archive or config.json; the
decompression bomb is a hand-written zip whose member declares 2 GB (2 MB of deflated
zeros) — no 2 GB buffer is ever built.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import keras
import numpy as np
import pytest

from cnnlib.core.budgets import Budgets
from cnnlib.core.errors import InvalidModelError
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


def rezip(data: bytes, *, config=None, extra: dict[str, bytes] | None = None) -> bytes:
    """The archive with its config.json replaced (dict, or raw bytes) and members added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
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


def test_genuine_model_loads_and_predicts_like_the_original(genuine):
    model, data = genuine
    before = keras_settings()
    loaded = load_keras_file(data, budgets=BUDGETS)
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert keras_settings() == before


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
    y = keras.layers.LayerNormalization()(y)
    y = keras.layers.AveragePooling2D(3, strides=1)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    outputs = keras.layers.Dense(5)(keras.layers.Reshape((4, 4))(keras.layers.Dense(16)(y)))
    model = keras.Model(inputs, outputs)
    report = inspect_keras_file(saved(model, tmp_path), budgets=BUDGETS)
    assert report.model_class == "Functional"
    assert report.params == model.count_params()
    ours = {r.name: r.output_shape for r in report.layers}
    flip = augment.layers[0].name  # "random_flip", or with a suffix after other tests' layers
    assert ours[flip] == (32, 32, 3)  # inside the nested augmentation model
    for layer in model.layers[2:]:
        assert ours[layer.name] == tuple(layer.output.shape[1:]), layer.name


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
    refused(data, "holds 3 files", Budgets(model_members=2))


def test_dense_with_two_billion_units(genuine):
    _, data = genuine
    config = config_of(data)
    config["config"]["layers"][-1]["config"]["units"] = 2_000_000_000
    message = refused(rezip(data, config=config), "more than 10,000,000 parameters")
    assert "1,354,000,000,000" in message  # (676 inputs + 1) × 2e9 units


def test_activations_over_budget(genuine):
    _, data = genuine
    config = config_of(data)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 4000, 4000, 1]
    refused(rezip(data, config=config), "activations for one image would take more than")


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
    refused(rezip(data, config=config), "custom object 'evil>Conv2D'")
    # A custom initializer inside an allowed layer is found too.
    config = config_of(data)
    config["config"]["layers"][2]["config"]["kernel_initializer"]["module"] = "os"
    refused(rezip(data, config=config), "custom code")


@pytest.mark.parametrize(
    "class_name, settings, words",
    [
        ("TFSMLayer", {"filepath": "/etc"}, "SavedModel from the server's disk"),
        ("StringLookup", {"vocabulary": "/etc/passwd"}, "vocabulary from a file"),
        ("TextVectorization", {"vocabulary": "/etc/passwd"}, "vocabulary from a file"),
        ("Conv3D", {"filters": 2, "kernel_size": 3}, "not one of the Keras layers"),
    ],
)
def test_layers_that_read_files_or_are_unknown(genuine, class_name, settings, words):
    _, data = genuine
    config = config_of(data)
    layer = config["config"]["layers"][2]
    layer["class_name"] = class_name
    layer["config"].update(settings)
    refused(rezip(data, config=config), words)


def test_failed_load_restores_keras_settings_and_hides_the_exception(genuine, monkeypatch):
    _, data = genuine
    before = keras_settings()

    def sabotage(*args, **kwargs):
        keras.config.set_floatx("float16")
        keras.config.set_image_data_format("channels_first")
        keras.config.set_epsilon(0.5)
        raise KeyError("Unable to synchronously open object (wrong weights)")

    monkeypatch.setattr(keras.saving, "load_model", sabotage)
    with pytest.raises(InvalidModelError, match="could not rebuild the model") as info:
        load_keras_file(data, budgets=BUDGETS)
    assert "KeyError" not in str(info.value) and "synchronously" not in str(info.value)
    assert keras_settings() == before


def test_weights_that_do_not_match_the_layers(genuine):
    _, data = genuine
    config = config_of(data)
    config["config"]["layers"][2]["config"]["filters"] = 5  # the file holds 4 filters
    with pytest.raises(InvalidModelError, match="weights do not match"):
        load_keras_file(rezip(data, config=config), budgets=BUDGETS)


def test_file_over_the_upload_budget(genuine):
    _, data = genuine
    refused(data, "allowed. Upload a smaller model", Budgets(model_file_bytes=1000))


def test_the_mnist_pages_own_download_loads(genuine):
    """What the MNIST page's download button gives (``save_model_bytes``) passes inspection
    and loads: the Feature maps page can switch to ``load_keras_file``."""
    from cnnlib.models.presets import build_fast_convnet
    from cnnlib.training.trainer import save_model_bytes

    model = build_fast_convnet(seed=1)
    data = save_model_bytes(model)
    report = inspect_keras_file(data, budgets=BUDGETS)
    assert report.params == model.count_params()
    loaded = load_keras_file(data, budgets=BUDGETS)
    x = np.random.default_rng(1).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_own_images_export_with_caffe_preprocessing_loads(tmp_path):
    """A ResNet50/VGG19 own-images model carries CNN Lab's registered ``CaffePreprocess``
    layer: accepted by its registered name and module, and predicts like the original; the
    same class name from another module is refused."""
    from cnnlib.training.transfer import caffe_preprocess_layer

    inp = keras.Input((16, 16, 3))
    x = caffe_preprocess_layer()(inp)
    x = keras.layers.Conv2D(2, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    data = saved(model, tmp_path)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    loaded = load_keras_file(data, budgets=BUDGETS)
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0))
    config = config_of(data)
    config["config"]["layers"][1]["module"] = "evil.layers"
    refused(rezip(data, config=config), "custom code that is not part of Keras")
