"""cnnlib.export: every format made by Keras' own exporter in a child process, then run by
its own runtime (ai-edge-litert, onnxruntime, TensorFlow's SavedModel loader) and compared
with the Keras model on real held-out Fashion-MNIST photos; the augmentation layers are left out; a
failed conversion is an error with a message, never an empty file."""

from __future__ import annotations

import io
import json
import zipfile

import keras
import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.mnist import read_idx
from cnnlib.export import EXPORT_FORMATS, Exported, ExportError, export_models, run_exported
from cnnlib.models.inference import augmentation_layer_names, inference_model
from cnnlib.training import export as export_impl
from cnnlib.training.trainer import save_model_bytes

TRAIN, VALIDATION = 3000, 500


def small_convnet(augment: bool = True) -> keras.Model:
    """A small convnet for raw images (N, 28, 28, 1) 0..255 with an augmentation block, as
    CNN Lab's own-images models have one."""
    inputs = keras.Input((28, 28, 1), name="pixels")
    x = inputs
    if augment:
        x = keras.Sequential(
            [keras.layers.RandomTranslation(0.05, 0.05, seed=1), keras.layers.RandomZoom(0.05)],
            name="augmentation",
        )(x)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="digits")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------------------------
# The inference model
# --------------------------------------------------------------------------------------------


def test_inference_model_leaves_out_the_augmentation_and_keeps_the_weights():
    model = small_convnet()
    assert augmentation_layer_names(model) == ["augmentation"]
    stripped = inference_model(model)
    names = [type(layer).__name__ for layer in stripped.layers]
    assert "Sequential" not in names and not any(n.startswith("Random") for n in names)
    dense = next(layer for layer in model.layers if type(layer).__name__ == "Dense")
    assert stripped.get_layer(dense.name) is dense  # shared, not copied (names depend on order)
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(stripped(x), model(x, training=False), rtol=1e-6, atol=1e-7)
    assert inference_model(small_convnet(augment=False)).name == "digits"


def test_inference_model_of_a_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    stripped = inference_model(model)
    assert [type(layer).__name__ for layer in stripped.layers] == ["Flatten", "Dense"]
    x = np.ones((2, 8, 8, 3), np.float32)
    np.testing.assert_allclose(stripped(x), model(x, training=False), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Arguments and failures (no child process)
# --------------------------------------------------------------------------------------------


def test_bad_arguments_are_refused_before_any_work():
    model = small_convnet(augment=False)
    with pytest.raises(InvalidArgumentError, match="Unknown export format"):
        export_models(model, ["tflite"])
    with pytest.raises(InvalidArgumentError, match="calibrate"):
        export_models(model, ["litert_int8"])
    with pytest.raises(InvalidArgumentError, match=r"\(N, 28, 28, 1\)"):
        export_models(model, ["litert_int8"], calibration=np.zeros((4, 32, 32, 3)))


def test_calibration_sample_is_bounded_and_spread_over_the_set():
    images = np.arange(1000, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1))
    sample = export_impl.calibration_sample(images, (2, 2, 1))
    assert sample.shape == (export_impl.CALIBRATION_IMAGES, 2, 2, 1)
    assert sample.dtype == np.float32
    assert sample[0, 0, 0, 0] == 0 and sample[-1, 0, 0, 0] == 990  # every 10th, to the end
    pixels = export_impl.calibration_sample(np.zeros((50, 2, 2), np.uint8), (2, 2, 1))
    assert pixels.shape == (50, 2, 2, 1) and pixels.dtype == np.uint8  # uint8 stays small


def test_compare_with_keras_by_hand():
    exported = Exported("onnx", "model.onnx", b"x" * 10, (2, 2, 1), 2)
    reference = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    mine = np.array([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]])  # disagrees on one
    check = export_impl.compare_with_keras(exported, reference, mine, np.array([0, 0, 1, 1]))
    assert check.agreement == 0.75 and check.size_bytes == 10 and check.error is None
    assert check.accuracy == 0.75 and check.keras_accuracy == 0.5  # [0, 1, 1, 0] vs [0,0,1,1]
    assert check.max_difference == pytest.approx(0.2)
    failed = export_impl.compare_with_keras(exported, reference, "onnxruntime could not run")
    assert failed.error and failed.agreement is None


def test_a_failing_converter_is_an_error_with_the_format_named(monkeypatch):
    model = small_convnet(augment=False)
    model(np.zeros((1, 28, 28, 1), np.float32))

    def broken(self, filepath, format="tf_saved_model", **kwargs):
        raise RuntimeError("op FancyOp is neither a custom op nor a flex op\nmore detail")

    monkeypatch.setattr(keras.Model, "export", broken)
    with pytest.raises(ExportError, match=r"LiteRT float32 \(\.tflite\) export failed: op FancyOp"):
        export_models(model, ["keras", "litert"], isolate=False)


@pytest.mark.slow
def test_an_empty_file_is_an_error_not_a_download(monkeypatch):
    model = small_convnet(augment=False)
    monkeypatch.setattr(keras.Model, "export", lambda self, filepath, **kwargs: None)
    with pytest.raises(ExportError, match=r"ONNX .* empty file"):
        export_models(model, ["onnx"], isolate=False)


@pytest.mark.slow
def test_keras_export_in_the_thread_has_no_augmentation():
    model = small_convnet()
    exported = export_models(model, ["keras"], isolate=False)["keras"]
    assert isinstance(exported, Exported)
    assert (exported.filename, exported.format) == ("model.keras", "keras")
    with zipfile.ZipFile(io.BytesIO(exported.data)) as zf:
        config = zf.read("config.json").decode()
    assert "Random" not in config and "augmentation" not in json.loads(config)["config"]["name"]
    x = np.random.default_rng(1).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        run_exported(exported, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(InvalidArgumentError, match="shaped"):
        run_exported(exported, np.zeros((2, 32, 32, 3)))


# --------------------------------------------------------------------------------------------
# Every format, in the child process, on real photos
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion(fashion_dir):
    """The first 3,500 Fashion-MNIST training images (N, 28, 28, 1) uint8 and labels."""
    x = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")[: TRAIN + VALIDATION]
    y = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")[: TRAIN + VALIDATION]
    return x[..., None], y.astype(np.int64)


@pytest.fixture(scope="module")
def trained(fashion):
    """(model, validation images (500, 28, 28, 1) float32, labels) after a short training on
    3,000 real Fashion-MNIST photos."""
    x, y = fashion
    x = x.astype(np.float32)
    keras.utils.set_random_seed(0)
    model = small_convnet()
    model.fit(x[:TRAIN], y[:TRAIN], epochs=3, batch_size=64, verbose=0)
    return model, x[TRAIN:], y[TRAIN:]


@pytest.fixture(scope="module")
def export_job(trained, fashion):
    """Every format, made in one child process (int8 calibrated on the training images),
    each run there on the validation images."""
    model, x, y = trained
    job = export_impl.ExportJob(
        model, EXPORT_FORMATS, calibration=fashion[0][:TRAIN], check_images=x, check_labels=y
    )
    job.start().wait()
    return job


@pytest.fixture(scope="module")
def exported(export_job):
    return export_job.files()


@pytest.mark.slow
def test_every_format_runs_in_its_own_runtime_and_agrees_with_keras(trained, exported):
    model, x, y = trained
    reference = model.predict(x, verbose=0)
    keras_accuracy = float(np.mean(reference.argmax(1) == y))
    assert keras_accuracy > 0.6  # it learned (chance: 0.1), so agreement is not trivial
    assert set(exported) == set(EXPORT_FORMATS)
    for fmt in ("keras", "litert", "onnx", "saved_model"):
        files = exported[fmt]
        assert files.filename == EXPORT_FORMATS[fmt].filename and files.size_bytes > 1000
        probabilities = run_exported(files, x)
        assert probabilities.shape == (VALIDATION, 10)
        agreement = float(np.mean(probabilities.argmax(1) == reference.argmax(1)))
        assert agreement >= 0.99, (fmt, agreement)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_int8_is_smaller_and_loses_at_most_three_points(trained, exported):
    model, x, y = trained
    keras_accuracy = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    int8 = exported["litert_int8"]
    int8_accuracy = float(np.mean(run_exported(int8, x).argmax(1) == y))
    assert keras_accuracy - int8_accuracy <= 0.03, (keras_accuracy, int8_accuracy)
    assert int8.size_bytes < 0.5 * exported["litert"].size_bytes


@pytest.mark.slow
def test_the_exported_files_hold_no_augmentation(exported):
    from ai_edge_litert.interpreter import Interpreter

    for fmt in ("litert", "litert_int8"):
        interpreter = Interpreter(model_content=exported[fmt].data)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any("Random" in op or "Stateless" in op for op in ops), ops
    import onnx

    graph = onnx.load_from_string(exported["onnx"].data).graph
    assert not any("Random" in node.op_type for node in graph.node)
    with zipfile.ZipFile(io.BytesIO(exported["saved_model"].data)) as zf:
        assert "saved_model.pb" in zf.namelist()


@pytest.mark.slow
def test_a_failure_in_the_child_comes_back_as_the_learners_message(trained):
    model, _, _ = trained
    job = export_impl.ExportJob(model, ["onnx"])
    job._worker.model_bytes = save_model_bytes(model)[:100]  # a damaged copy reaches the child
    job.start().wait()
    with pytest.raises(ExportError) as error:
        job.files()
    assert "Traceback" not in str(error.value) and str(error.value)


@pytest.mark.slow
def test_the_child_runs_every_file_beside_keras(export_job, exported):
    checks = {check.format: check for check in export_job.checks()}
    assert list(checks) == list(EXPORT_FORMATS)
    for fmt, check in checks.items():
        assert check.error is None, check.error
        assert check.size_bytes == exported[fmt].size_bytes
        assert check.agreement >= (0.97 if fmt == "litert_int8" else 0.99), check
        assert check.keras_accuracy - check.accuracy <= 0.03, check
