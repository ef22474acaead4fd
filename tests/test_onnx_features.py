"""cnnlib.training.onnx_features: frozen-backbone features computed by ONNX Runtime.

The reference is TensorFlow: the same Keras feature extractor run by ``predict_on_batch``
on the same real photos (scikit-image's). The conversion's cache is checked by its files.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training import onnx_features, transfer
from cnnlib.training.tasks import TrainingSlots
from cnnlib.training.transfer import OwnImagesRecipe
from cnnlib.uploads.folders import open_archive
from tests.test_transfer import mobilenet_weights, noisy_zip

SIZE = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """MobileNetV2 weights whose features are not vanishingly small (``mobilenet_weights``:
    random weights alone give features of about 1e-11, which any runtime would match)."""
    return mobilenet_weights(tmp_path_factory.mktemp("weights") / "mobilenet_v2.weights.h5", SIZE)


def real_photos(size=SIZE) -> np.ndarray:
    """(5, size, size, 3) float32 0..255: scikit-image's astronaut, coffee, chelsea, rocket,
    camera (greyscale, made RGB)."""
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera")
    images = [Image.fromarray(getattr(photos, n)()).convert("RGB") for n in names]
    return np.stack([np.asarray(i.resize((size, size)), np.float32) for i in images])


def test_the_runtime_follows_the_setting_and_refuses_an_unknown_one(monkeypatch):
    monkeypatch.setenv("CNNLAB_FEATURE_RUNTIME", "onnxruntime")
    assert onnx_features.feature_runtime() == "onnxruntime"
    monkeypatch.setenv("CNNLAB_FEATURE_RUNTIME", "TensorFlow")
    assert onnx_features.feature_runtime() == "tensorflow"
    monkeypatch.setenv("CNNLAB_FEATURE_RUNTIME", "auto")  # no GPU on the test machines
    import tensorflow as tf

    expected = "tensorflow" if tf.config.list_logical_devices("GPU") else "onnxruntime"
    assert onnx_features.feature_runtime() == expected
    monkeypatch.setenv("CNNLAB_FEATURE_RUNTIME", "torch")
    with pytest.raises(InvalidArgumentError, match="torch"):
        onnx_features.feature_runtime()


def test_the_cache_keeps_the_most_recently_used_files(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_features, "CACHE_FILES", 2)
    paths = [tmp_path / f"{k}.onnx" for k in "abc"]
    for k, path in enumerate(paths):
        onnx_features._keep(path, b"model %d" % k)
        os.utime(path, (time.time() + k, time.time() + k))  # a, then b, then c
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.onnx", "c.onnx"]
    assert paths[2].read_bytes() == b"model 2" and not list(tmp_path.glob("*.part"))


@pytest.mark.slow
def test_onnx_features_equal_tensorflows_and_the_conversion_is_kept(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_ONNX_CACHE", str(tmp_path / "cache"))
    loaded = transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3), weights)
    extractor = transfer.feature_extractor(loaded)
    x = real_photos()
    expected = extractor.predict_on_batch(x)  # (5, 1280) by TensorFlow
    assert np.abs(expected).mean() > 0.01

    fast = onnx_features.onnx_extractor(extractor, weights)
    assert fast.convert_seconds > 0 and fast.output_shape == (None, 1280)
    got = fast.predict_on_batch(x)
    assert got.shape == (5, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    (kept,) = (tmp_path / "cache").glob("*.onnx")

    again = onnx_features.onnx_extractor(extractor, weights)  # from the cache: not converted
    assert again.convert_seconds == 0.0
    np.testing.assert_array_equal(again.predict_on_batch(x[:2]), got[:2])
    assert list((tmp_path / "cache").glob("*.onnx")) == [kept]

    # Other weights are another file; random weights (no file) are never kept.
    other = tmp_path / "other.weights.h5"
    loaded.model.layers[-1].set_weights([w * 0.5 for w in loaded.model.layers[-1].get_weights()])
    loaded.model.save_weights(other)
    assert onnx_features.onnx_extractor(extractor, other).convert_seconds > 0
    assert onnx_features.onnx_extractor(extractor, None).convert_seconds > 0
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 2


@pytest.mark.slow
def test_an_own_images_job_extracts_with_onnx_runtime(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_FEATURE_RUNTIME", "onnxruntime")
    monkeypatch.setenv("CNNLAB_ONNX_CACHE", str(tmp_path / "cache"))
    folders = open_archive(noisy_zip(size=SIZE), workdir=tmp_path)
    data = folders.split(SIZE, validation_fraction=0.25, seed=0)  # 12 train, 4 validation
    recipe = OwnImagesRecipe(
        "transfer",
        weights=weights,
        image_size=SIZE,
        validation_fraction=0.25,
        augment=("flip",),
        augment_copies=1,
        epochs=3,
        patience=0,
    )
    job = transfer.OwnImagesJob(data, recipe, slots=TrainingSlots(1)).start()
    p = job.wait(300)
    assert p.state == "finished", p.error
    assert p.feature_runtime.startswith("ONNX Runtime (converted in")
    assert p.features_done == p.features_total == 12 * 2 + 4
    assert len(p.train_loss) == 3 and np.isfinite(p.train_loss).all()
    x, _ = next(iter(data.batches("validation", 4)))
    probabilities = job.model.predict(x, verbose=0)  # the full model, back in this process
    assert probabilities.shape == (4, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    folders.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(transfer.BACKBONES))
def test_every_backbone_converts_and_agrees_with_tensorflow(name):
    side = max(transfer.BACKBONES[name].min_side, 32)
    loaded = transfer.load_backbone(name, (side, side, 3), None)
    extractor = transfer.feature_extractor(loaded, name)
    x = real_photos(side)[:3]
    expected = extractor.predict_on_batch(x)
    got = onnx_features.onnx_extractor(extractor, None).predict_on_batch(x)
    assert got.shape == expected.shape
    # Random weights: MobileNetV2's features are ~1e-11, ResNet50's ~10; relative to each.
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max(), rtol=1e-3)
