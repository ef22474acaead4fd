"""cnnlib.training.transfer: recipes, backbones' preprocessing, cached features, the head trained
by the one phase runner (``fit_phases``), assembly, the own-images job (the one own-images
trainer, also behind ``train_from_archive``), export.

No network: MobileNetV2 weights files are written here from ``weights=None`` models and
loaded through the real loading code (path and ``CNNLAB_MOBILENETV2_WEIGHTS`` routes); the
result must say the weights are not verified ImageNet weights.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cnnlib.core.errors import InvalidArgumentError, WeightsUnavailableError
from cnnlib.training import transfer
from cnnlib.training.tasks import TrainingSlots
from cnnlib.training.trainer import Phase, TrainConfig, fit_phases, save_model_bytes
from cnnlib.training.transfer import OwnImagesRecipe
from cnnlib.uploads.folders import open_archive, train_from_archive
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
SIZE = 96


def mobilenet_weights(path: Path, size: int) -> Path:
    """A MobileNetV2 (no top, ``size`` px) weights file with random weights (Keras 3
    .weights.h5) at ``path``.

    Freshly initialised, its pooled features are ~1e-12 (they vanish through 17 blocks), which
    would make every comparison pass trivially; BatchNorm scales ×3 give features ~0.25.
    """
    model = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(size, size, 3)
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(layer.gamma * 3.0)
    model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory) -> Path:
    return mobilenet_weights(tmp_path_factory.mktemp("weights") / "mobilenet_v2.weights.h5", SIZE)


def noisy_zip(n_per_class=8, classes=("dark", "light"), size=SIZE) -> bytes:
    """Class folders of noisy images, one class darker than the other."""
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for c, name in enumerate(classes):
            for i in range(n_per_class):
                base = 60 + 120 * c
                arr = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                png = io.BytesIO()
                Image.fromarray(arr).save(png, format="PNG")
                zf.writestr(f"{name}/{i}.png", png.getvalue())
    return out.getvalue()


@pytest.fixture
def data(tmp_path):
    folders = open_archive(noisy_zip(), workdir=tmp_path)
    yield folders.split(SIZE, validation_fraction=0.25, seed=0)
    folders.cleanup()


def raw_pixels(n=3, size=SIZE, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


def test_caffe_layer_is_keras_resnet_preprocess_input():
    x = raw_pixels(2, 8)
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(transfer.caffe_preprocess_layer()(x), expected, atol=1e-4)
    vgg = keras.applications.vgg19.preprocess_input(x.copy())
    np.testing.assert_allclose(transfer.caffe_preprocess_layer()(x), vgg, atol=1e-4)


def test_mobilenet_preprocessing_is_keras_preprocess_input():
    x = raw_pixels(2, 8)
    layer = transfer._preprocess_layer(transfer.BACKBONES["MobileNetV2"])
    expected = keras.applications.mobilenet_v2.preprocess_input(x.copy())
    np.testing.assert_allclose(layer(x), expected, atol=1e-6)


def test_caffe_layer_round_trips_through_a_safe_mode_keras_file(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, transfer.caffe_preprocess_layer()(inputs))
    path = tmp_path / "m.keras"
    path.write_bytes(save_model_bytes(model))
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = raw_pixels(2, 8)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    snippet = transfer.prediction_snippet(model)
    assert "register_layers()" in snippet
    compile(snippet, "predict.py", "exec")


def test_importing_the_pipeline_does_not_import_tensorflow():
    code = (
        "import sys, cnnlib.uploads.folders, cnnlib.training.transfer; "
        "print('tensorflow' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.strip() == "False", run.stderr


def test_scratch_model_is_the_tutorial_stack():
    model = transfer.build_scratch_model((32, 32, 3), 3, augment=False)
    # 32 →conv 30 →pool 15 →conv 13 →pool 6 →conv 4 →pool 2: flatten 2·2·128 = 512
    expected = (
        (3 * 3 * 3 * 32 + 32)
        + (3 * 3 * 32 * 64 + 64)
        + (3 * 3 * 64 * 128 + 128)
        + (512 * 128 + 128)
        + (128 * 3 + 3)
    )
    assert model.count_params() == expected
    assert model.output_shape == (None, 3)
    x = raw_pixels(2, 32)
    np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5)
    augmented = transfer.build_scratch_model((32, 32, 3), 3, augment=True)
    assert augmented.count_params() == expected  # augmentation adds no weights
    with pytest.raises(InvalidArgumentError, match="too small"):
        transfer.build_scratch_model((16, 16, 3), 3)


def test_no_weights_raises_and_never_gives_a_random_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_MOBILENETV2_WEIGHTS", str(tmp_path / "missing.h5"))
    with pytest.raises(WeightsUnavailableError, match="CNNLAB_MOBILENETV2_WEIGHTS"):
        transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3))
    recipe = OwnImagesRecipe("transfer", image_size=SIZE)
    with pytest.raises(WeightsUnavailableError, match="CNNLAB_MOBILENETV2_WEIGHTS"):
        train_from_archive(noisy_zip(), recipe, workdir=tmp_path / "s")  # before any training
    assert list((tmp_path / "s").iterdir()) == []
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        transfer.require_weights("MobileNetV2", tmp_path / "nothing.h5")
    transfer.require_weights("MobileNetV2", None)  # random weights: for tests and timing


@pytest.mark.slow
def test_weights_file_loads_and_is_marked_unverified(mobilenet_file, monkeypatch):
    loaded = transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3), mobilenet_file)
    assert not loaded.imagenet_verified and not loaded.model.trainable
    reference = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)
    )
    reference.load_weights(mobilenet_file)
    for a, b in zip(loaded.model.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("CNNLAB_MOBILENETV2_WEIGHTS", str(mobilenet_file))
    via_env = transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3))
    assert "CNNLAB_MOBILENETV2_WEIGHTS" in via_env.weights_source
    assert not via_env.imagenet_verified  # Keras publishes no hash for this file
    with pytest.raises(InvalidArgumentError, match="Unknown backbone"):
        transfer.load_backbone("AlexNet")


@pytest.mark.slow
def test_features_are_the_backbone_pooled_once_per_image_and_copy(mobilenet_file, data):
    loaded = transfer.load_backbone("MobileNetV2", data.input_shape, mobilenet_file)
    extractor = transfer.feature_extractor(loaded)
    calls = []
    features = transfer.extract_features(
        extractor, data, augment_copies=2, batch_size=5, progress=lambda *a: calls.append(a)
    )
    n_train, n_val = data.size("train"), data.size("validation")
    assert features.train_x.shape == (3 * n_train, 1280) and features.val_x.shape == (n_val, 1280)
    assert calls[-1] == ("features", 3 * n_train + n_val, 3 * n_train + n_val)
    # Independent reference: Keras' preprocess_input, the backbone, a mean over H and W.
    images = np.concatenate([x.numpy() for x, _ in data.batches("validation", 64)])
    pre = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    expected = loaded.model.predict(pre, verbose=0).mean(axis=(1, 2))
    assert np.abs(expected).mean() > 0.01  # features that can tell a wrong wiring
    np.testing.assert_allclose(features.val_x, expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(features.train_y[:n_train], data.files("train")[1])
    np.testing.assert_array_equal(
        features.train_y[n_train:], np.tile(features.train_y[:n_train], 2)
    )
    plain, copy1 = features.train_x[:n_train], features.train_x[n_train : 2 * n_train]
    # Augmented, not repeated (a repeat differs by exactly 0; how much a random flip or zoom
    # moves pooled features varies with the draw: 2.4-10 % of their size was seen).
    assert np.abs(plain - copy1).mean() > 0.01 * np.abs(plain).mean()
    with pytest.raises(InvalidArgumentError, match="budget"):
        transfer.extract_features(extractor, data, augment_copies=2, max_bytes=1000)


@pytest.mark.slow
def test_assembled_model_equals_head_on_features_and_exports(mobilenet_file, data, tmp_path):
    loaded = transfer.load_backbone("MobileNetV2", data.input_shape, mobilenet_file)
    features = transfer.extract_features(loaded, data)  # a PretrainedModel is wrapped
    head = transfer.build_head(features.train_x.shape[1], 2, seed=0)
    cached = transfer.FeatureData(features, data.class_names)
    fitted = fit_phases(head, cached, [Phase(2)], TrainConfig(batch_size=4, seed=0))
    assert fitted.batches == 2 * 3 and not fitted.stopped_early  # 12 training images
    model = transfer.assemble(loaded, head, augment=True)
    images = np.concatenate([x.numpy() for x, _ in data.batches("validation", 64)])
    expected = head.predict(features.val_x, verbose=0)
    assert expected.std(axis=0).max() > 1e-3  # outputs that depend on the image
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)
    path = tmp_path / "model.keras"
    path.write_bytes(save_model_bytes(model))
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6
    )


@pytest.mark.slow
def test_fine_tuning_unfreezes_only_the_top_block(mobilenet_file):
    loaded = transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3), mobilenet_file)
    model = transfer.assemble(loaded, transfer.build_head(1280, 2))
    assert not [layer for layer in model.layers[:-2] if layer.trainable and layer.weights]
    transfer.unfreeze_top(model, "MobileNetV2")
    trainable = [layer for layer in model.layers if layer.trainable and layer.weights]
    assert trainable and all(
        layer.name.startswith(("block_16", "Conv_1", "predictions")) for layer in trainable
    )
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)


def test_predict_image_and_the_tutorial_sentence():
    model = transfer.build_scratch_model((32, 32, 3), 3, augment=False)
    image = Image.fromarray(raw_pixels(1, 50)[0].astype(np.uint8))
    predictions = transfer.predict_image(model, image, ("a", "b", "c"))
    probs = [p for _, p in predictions]
    assert sorted(name for name, _ in predictions) == ["a", "b", "c"]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    sentence = transfer.confidence_sentence(predictions)
    assert sentence == f"{predictions[0][0]} with {100 * probs[0]:.1f}% confidence"
    with pytest.raises(InvalidArgumentError, match="3 outputs"):
        transfer.predict_image(model, image, ("a", "b"))
    assert transfer.labels_text(("a", "b c")) == "a\nb c\n"


@pytest.mark.slow
def test_transfer_pipeline_end_to_end_and_the_snippet_runs(mobilenet_file, tmp_path):
    progress = []
    recipe = OwnImagesRecipe(
        "transfer",
        weights=mobilenet_file,
        image_size=SIZE,
        augment=("flip",),
        augment_copies=1,
        epochs=2,
        fine_tune_epochs=1,
        seed=0,
    )
    result = train_from_archive(
        noisy_zip(), recipe, workdir=tmp_path / "session", progress=progress.append
    )
    p = result.progress
    assert result.recipe.backbone == "MobileNetV2" and not p.weights_verified
    assert str(mobilenet_file) in p.weights_source
    assert {s.stage for s in progress} >= {"features", "fine-tune"}
    assert len(p.head_val_accuracy) == 2 and len(p.val_accuracy) == 1  # head, fine-tuning
    assert list((tmp_path / "session").iterdir()) == []

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.keras").write_bytes(save_model_bytes(result.model))
    (folder / "labels.txt").write_text(transfer.labels_text(result.class_names))
    (folder / "predict.py").write_text(transfer.prediction_snippet(result.model))
    pixels = raw_pixels(1, SIZE)[0].astype(np.uint8)
    Image.fromarray(pixels).save(folder / "photo.png")
    run = subprocess.run(
        [sys.executable, "predict.py", "photo.png"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert run.returncode == 0, run.stderr
    top = transfer.predict_image(result.model, Image.fromarray(pixels), result.class_names)
    assert run.stdout.strip() == transfer.confidence_sentence(top)


# --------------------------------------------------------------------------------------------
# The page's pieces: augmentation kinds and preview, weights status, the background job
# --------------------------------------------------------------------------------------------


def test_preview_runs_only_the_chosen_augmentations():
    x = raw_pixels(2, 32)
    flipped = transfer.preview_augmentation(x, ["flip"], copies=6, seed=3)
    assert flipped.shape == (2, 6, 32, 32, 3) and flipped.dtype == np.uint8
    original, mirror = np.round(x).astype(np.uint8), np.round(x[:, :, ::-1]).astype(np.uint8)
    for i in range(2):
        kinds = [
            "same" if np.array_equal(c, original[i]) else "mirror"
            for c in flipped[i]
            if np.array_equal(c, original[i]) or np.array_equal(c, mirror[i])
        ]
        assert len(kinds) == 6  # a flip only ever gives the image or its mirror
    layer = transfer.augmentation(0, kinds=["zoom", "flip"])
    assert [type(sub).__name__ for sub in layer.layers] == ["RandomFlip", "RandomZoom"]
    with pytest.raises(InvalidArgumentError, match="blur"):
        transfer.augmentation(0, kinds=["blur"])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        transfer.augmentation(0, kinds=[])


def test_weights_status_finds_local_files_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("CNNLAB_MOBILENETV2_WEIGHTS", raising=False)
    missing = transfer.weights_status("MobileNetV2")
    assert not missing.available and "CNNLAB_MOBILENETV2_WEIGHTS" in missing.message
    monkeypatch.setenv("CNNLAB_MOBILENETV2_WEIGHTS", str(tmp_path / "nothing.h5"))
    assert "not a file" in transfer.weights_status("MobileNetV2").message
    monkeypatch.delenv("CNNLAB_MOBILENETV2_WEIGHTS")
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    (cache / transfer.BACKBONES["ResNet50"].spec.file_name).write_bytes(b"x")
    found = transfer.weights_status("ResNet50")
    assert found.available and "cache" in found.source


@pytest.mark.slow
def test_background_job_extracts_once_then_trains_the_head_and_gives_a_flat_model(
    mobilenet_file, tmp_path
):
    from cnnlib.inspect.saliency import saliency_map

    folders = open_archive(noisy_zip(size=32), workdir=tmp_path)
    data = folders.split(32, validation_fraction=0.25, seed=0)  # 12 train, 4 validation
    recipe = OwnImagesRecipe(
        "transfer",
        weights=mobilenet_file,
        image_size=32,
        validation_fraction=0.25,
        augment=("flip",),
        augment_copies=2,
        epochs=2,
        patience=0,
        fine_tune_epochs=1,
    )
    job = transfer.OwnImagesJob(data, recipe, slots=TrainingSlots(1), health=True)
    assert job.model is None
    p = job.start().wait(300)
    assert p.state == "finished", p.error
    assert p.features_done == p.features_total == 12 * 3 + 4
    assert p.stage == "fine-tune" and len(p.head_val_accuracy) == 2 and len(p.val_accuracy) == 1
    assert not p.weights_verified and str(mobilenet_file) in p.weights_source
    assert p.process_id not in (0, os.getpid())  # trained in its own process, loaded back here
    model = job.model
    # The backbone's layers are the model's own; fine-tuning trained only its top block.
    assert model.get_layer("Conv_1").trainable and not model.get_layer("Conv1").trainable
    assert model.get_layer("augmentation") is not None  # augmentation in the fine-tuned model
    cam = saliency_map(model, raw_pixels(1, 32)[0], 0, method="gradcam")
    assert cam.shape == (32, 32) and np.isfinite(cam).all()
    assert transfer.unfreeze_top(model, "MobileNetV2") > 0
    trainable = [layer.name for layer in model.layers if layer.trainable and layer.weights]
    assert "Conv_1" in trainable and "predictions" in trainable and "Conv1" not in trainable
    # Fine-tuning's health: its own stage (one epoch), the layers that learn now (the top
    # block with its ReLUs, and the head) on the 4 validation images; Grad-CAM at Conv_1.
    (health,) = p.health
    probed = [row.name for row in health.layers]
    assert probed == transfer.top_block_layers(model, "MobileNetV2")
    assert probed[0].startswith("block_16") and probed[-2:] == ["out_relu", "predictions"]
    assert (health.epoch, health.images) == (1, 4)
    assert all(row.name in trainable for row in health.layers if row.kind != "ReLU")
    assert p.cams.epoch == 1 and p.cams.layer == "Conv_1"
    assert sorted(p.cams.labels.tolist()) == [0, 0, 1, 1]  # spread over the classes
    folders.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize("fine_tuned", [False, True])
def test_a_transfer_model_crosses_processes_as_weights_and_is_rebuilt_the_same(
    mobilenet_file, fine_tuned
):
    recipe = OwnImagesRecipe(
        "transfer",
        weights=mobilenet_file,
        image_size=SIZE,
        augment=("flip",),
        fine_tune_epochs=int(fine_tuned),
    )
    loaded = transfer.load_backbone("MobileNetV2", (SIZE, SIZE, 3), mobilenet_file)
    head = transfer.build_head(1280, 3, seed=0)
    head.set_weights(
        [np.full(w.shape, 0.01 * (i + 1), "float32") for i, w in enumerate(head.weights)]
    )
    child = transfer._OwnImagesWorker(None, recipe, TrainingSlots(1), None)
    child.model = transfer.assemble(loaded, head, augment=recipe.model_augment)
    if fine_tuned:
        transfer.unfreeze_top(child.model, "MobileNetV2")
        child.fine_tuned = True
    result = child.export_result()
    assert "weights" in result and "model" not in result  # no .keras file on the way
    parent = transfer._OwnImagesWorker(None, recipe, TrainingSlots(1), None)
    # The server builds the network while the work runs elsewhere (_run_work); the
    # weights fill that one.
    parent._network = ThreadPoolExecutor(1).submit(parent._new_network, (SIZE, SIZE, 3), 3)
    ahead = parent._network.result()
    parent.import_result(pickle.loads(pickle.dumps(result)))  # as the connection carries it
    a, b = child.model, parent.model
    assert b is ahead
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert [layer.trainable for layer in a.layers] == [layer.trainable for layer in b.layers]
    assert (b.get_layer("Conv_1").trainable, b.get_layer("Conv1").trainable) == (fine_tuned, False)
    x = raw_pixels(4)
    np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0), rtol=1e-5)
    assert any(layer.name == "augmentation" for layer in b.layers) == fine_tuned


@pytest.mark.slow
def test_background_job_from_scratch_and_stopped_before_it_starts(tmp_path):
    folders = open_archive(noisy_zip(size=32), workdir=tmp_path)
    data = folders.split(32, validation_fraction=0.25, seed=0)
    recipe = OwnImagesRecipe(image_size=32, epochs=1, augment=("flip", "contrast"))
    job = transfer.OwnImagesJob(data, recipe, slots=TrainingSlots(1)).start()
    p = job.wait(300)
    assert p.state == "finished" and p.stage == "scratch" and p.features_total == 0
    names = [type(layer).__name__ for layer in job.model.get_layer("augmentation").layers]
    assert names == ["RandomFlip", "RandomContrast"]
    slots = TrainingSlots(1)
    blocker = object()
    import threading

    assert slots.acquire(blocker, threading.Event())
    queued = transfer.OwnImagesJob(data, OwnImagesRecipe(epochs=1), slots=slots).start()
    queued.stop()
    assert queued.wait(60).state == "stopped" and queued.model is None
    slots.release(blocker)
    with pytest.raises(InvalidArgumentError, match="OwnImagesRecipe"):
        transfer.OwnImagesJob(data, "scratch")
    folders.cleanup()


# --------------------------------------------------------------------------------------------
# Training you can watch closely: Pause, Step, a new learning rate, Resume, health, Grad-CAM
# --------------------------------------------------------------------------------------------

WAIT = 300  # seconds: a bound for a broken job, not a speed target


def _held_after(job, batches: int):
    """The first snapshot of ``job`` paused after more than ``batches`` batches (or done)."""
    found = []

    def held():
        p = job.snapshot()
        if p.done or (p.paused and p.batches_done > batches):
            found.append(p)
        return bool(found)

    assert wait_for(held, WAIT)
    return found[0]


def _held_in_extraction(job, done: int) -> bool:
    p = job.snapshot()
    return p.paused and p.stage == "features" and p.features_done == done


def _optimizer_rate(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@pytest.fixture
def watched(tmp_path):
    """24 training and 8 validation images of two classes, 32 × 32."""
    folders = open_archive(noisy_zip(n_per_class=16, size=32), workdir=tmp_path)
    yield folders.split(32, validation_fraction=0.25, seed=0)
    folders.cleanup()


@pytest.mark.slow
def test_own_images_pause_step_a_new_rate_and_resume_like_an_uninterrupted_run(watched):
    """From scratch, in the training's own process: Step trains exactly one batch; a new
    learning rate is used from the next batch (read back from the optimizer); Resume ends
    with as many batches as the run nobody paused; health and Grad-CAM at every epoch."""
    recipe = OwnImagesRecipe(image_size=32, epochs=2, batch_size=8, patience=0)
    plain = transfer.OwnImagesJob(watched, recipe, slots=TrainingSlots(1)).start().wait(WAIT)
    assert plain.state == "finished", plain.error
    assert plain.batches_done == 2 * 3 and plain.lr_changes == () and plain.health == ()

    job = transfer.OwnImagesJob(watched, recipe, slots=TrainingSlots(1), health=True)
    job.pause()  # held before its first batch
    job.start()
    assert wait_for(lambda: job.snapshot().paused, WAIT)
    assert job.snapshot().batches_done == 0
    assert job.step()
    p = _held_after(job, 0)
    assert (p.paused, p.batches_done, p.stage) == (True, 1, "scratch")  # one batch, held
    assert job.set_learning_rate(0.0123) == 0.0123
    assert job.step()
    p = _held_after(job, 1)
    assert p.batches_done == 2
    assert p.lr_changes == ((1, pytest.approx(0.0123, rel=1e-6)),)  # from batch 2 on
    assert job.step()
    p = _held_after(job, 2)
    assert p.batches_done == 3
    assert [h.epoch for h in p.health] == [1]  # the third batch ended epoch 1
    job.resume()
    done = job.wait(WAIT)
    assert done.state == "finished", done.error
    assert done.batches_done == plain.batches_done and not done.paused
    assert len(done.batch_loss) == len(plain.batch_loss) and len(done.val_loss) == 2
    assert _optimizer_rate(job.model) == pytest.approx(0.0123, rel=1e-6)
    # Each epoch: every layer with a kernel on the 8 validation images (the tutorial's
    # three Conv2D and two Dense layers; four of them ReLUs) …
    assert [h.epoch for h in done.health] == [1, 2]
    rows = done.health[-1].layers
    kinds = {layer.name: type(layer).__name__ for layer in job.model.layers}
    assert [kinds[row.name] for row in rows] == ["Conv2D"] * 3 + ["Dense"] * 2
    assert [row.dead_share is not None for row in rows] == [True] * 4 + [False]
    assert done.health[-1].images == 8
    # … and the Grad-CAM of four of them, two of each class, at the last Conv2D.
    cams = done.cams
    assert cams.epoch == 2 and sorted(cams.labels.tolist()) == [0, 0, 1, 1]
    assert cams.layer == rows[2].name


@pytest.mark.slow
def test_the_heads_stage_steps_takes_a_new_rate_and_its_gradcam_reads_the_heads_weights(
    mobilenet_file, watched
):
    """Transfer learning: Pause holds the feature extraction after its current batch, and
    Step extracts one more; while the backbone is frozen, the steps and the new rate are the
    head's (on cached features), its health is the head's Dense layer on the validation
    images' features, and the Grad-CAM is the full model's with the head's weights of that
    epoch (in the training's thread: the model is compared with the one trained)."""
    from cnnlib.inspect.saliency import class_activation_map

    recipe = OwnImagesRecipe(
        "transfer", weights=mobilenet_file, image_size=32, epochs=2, batch_size=8, patience=0
    )
    job = transfer.OwnImagesJob(watched, recipe, slots=TrainingSlots(1), isolate=False, health=True)
    job.pause()
    job.start()
    # 24 training and 8 validation images, 8 a batch: held after each extraction batch …
    for done in (8, 16, 24):
        assert wait_for(functools.partial(_held_in_extraction, job, done), WAIT), job.snapshot()
        time.sleep(0.2)  # held: nothing more is extracted until Step
        assert job.snapshot().features_done == done
        assert job.step()
    # … and after the last one, before the head's first batch.
    assert wait_for(lambda: job.snapshot().paused and job.snapshot().stage == "head", WAIT)
    p = job.snapshot()
    assert (p.stage, p.batches_done, p.features_done) == ("head", 0, 32)
    assert job.set_learning_rate(0.02) == 0.02
    assert job.step()
    p = _held_after(job, 0)
    assert p.batches_done == 1 and p.lr_changes == ((0, pytest.approx(0.02, rel=1e-6)),)
    job.resume()
    done = job.wait(WAIT)
    assert done.state == "finished", done.error
    assert done.batches_done == 2 * 3 and done.stage == "head"
    model = job.model
    assert _optimizer_rate(model) == pytest.approx(1e-3)  # the assembled model never trained
    assert [h.epoch for h in done.health] == [1, 2]
    (row,) = done.health[-1].layers
    assert (row.name, row.kind, row.dead_share, done.health[-1].images) == (
        "predictions",
        "Dense",
        None,
        8,
    )
    cams = done.cams
    assert cams.layer == "Conv_1" and sorted(cams.labels.tolist()) == [0, 0, 1, 1]
    for image, label, cam in zip(cams.images, cams.labels, cams.maps, strict=True):
        expected = class_activation_map(model, image, int(label), layer="Conv_1")
        np.testing.assert_allclose(cam, expected, atol=1e-5)
    np.testing.assert_allclose(
        cams.confidence, model.predict(cams.images, verbose=0).max(axis=1), rtol=1e-4
    )


def test_a_schedule_refuses_a_new_rate_and_each_stage_starts_at_its_own():
    cosine = TrainConfig(lr_schedule="cosine")
    assert "cosine schedule" in cosine.lr_change_refusal()
    assert TrainConfig().lr_change_refusal() is None
    recipe = OwnImagesRecipe("transfer", learning_rate=3e-3, fine_tune_epochs=2)
    assert recipe.train_config().lr_change_refusal() is None
    assert recipe.stage_learning_rate("head") == 3e-3
    assert recipe.stage_learning_rate("fine-tune") == transfer.FINE_TUNE_LR
    assert recipe.fine_tune_phase().learning_rate == transfer.FINE_TUNE_LR


def test_the_recipe_checks_its_settings_once_and_keeps_transfer_only_ones_for_transfer():
    """One typed value from the widgets to the child: each setting checked once; copies and
    fine-tuning apply to transfer only (``uses_backbone``: the one place of that rule)."""
    asked = {"augment": ["zoom", "flip"], "augment_copies": 3, "fine_tune_epochs": 2}
    scratch = OwnImagesRecipe("scratch", **asked)
    assert (scratch.augment_copies, scratch.fine_tune_epochs) == (0, 0)
    assert scratch.augment == ("flip", "zoom")  # in the order the layers apply them
    assert scratch.label == "From scratch" and not scratch.transfer
    tuned = OwnImagesRecipe("transfer", backbone="VGG19", **asked)
    assert (tuned.augment_copies, tuned.fine_tune_epochs, tuned.label) == (3, 2, "VGG19")
    plain = OwnImagesRecipe("transfer", augment_copies=3)  # no kinds: nothing to copy
    assert plain.augment_copies == 0 and plain.transfer
    assert tuned.fine_tune_phase().learning_rate == transfer.FINE_TUNE_LR
    config = tuned.train_config()
    assert (config.epochs, config.learning_rate, config.patience, config.batch_size) == (
        5,
        1e-3,
        3,
        32,
    )
    assert [transfer.uses_backbone(r) for r in transfer.RECIPES] == [False, True]
    for bad, match in [
        ({"recipe": "magic"}, "recipe"),
        ({"backbone": "AlexNet"}, "Unknown backbone"),
        ({"augment": ["blur"]}, "blur"),
        ({"image_size": 4}, "image size"),
        ({"validation_fraction": 1.0}, "validation split"),
        ({"augment_copies": 21}, "augment_copies"),
        ({"epochs": 0}, "Epochs"),
        ({"learning_rate": 0}, "learning rate"),
    ]:
        with pytest.raises(InvalidArgumentError, match=match):
            OwnImagesRecipe(**bad)


@pytest.mark.slow
def test_the_time_limit_stops_the_extraction_at_its_next_batch(
    mobilenet_file, tmp_path, monkeypatch
):
    from cnnlib.training import task_process

    # The child must reach its first batch after the stop: give a loaded machine the time to
    # import TensorFlow and load the backbone before it would be killed.
    monkeypatch.setattr(task_process, "STOP_GRACE_SECONDS", 600.0)
    folders = open_archive(noisy_zip(size=32), workdir=tmp_path)
    data = folders.split(32, validation_fraction=0.25, seed=0)
    recipe = OwnImagesRecipe("transfer", weights=mobilenet_file, image_size=32, batch_size=4)
    job = transfer.OwnImagesJob(data, recipe, max_seconds=0.001, slots=TrainingSlots(1))
    p = job.start().wait(300)  # the limit passes while the backbone loads
    assert p.state == "stopped" and "time limit" in p.message, p.error
    assert p.stage == "features" and p.features_done == 4 < p.features_total == 16
    assert job.model is None and not p.train_loss
    folders.cleanup()


@pytest.mark.slow
def test_the_snippet_answers_not_sure_below_the_chosen_threshold(tmp_path, monkeypatch, capsys):
    model = transfer.build_scratch_model((24, 24, 3), 3, seed=0)  # untrained: unsure
    names = ("ant", "bee", "cat")
    (tmp_path / "model.keras").write_bytes(save_model_bytes(model))
    (tmp_path / "labels.txt").write_text(transfer.labels_text(names))
    image = Image.fromarray(raw_pixels(1, 24)[0].astype(np.uint8))
    image.save(tmp_path / "photo.png")
    pixels = np.asarray(image.convert("RGB").resize((24, 24)), dtype="float32")[None]
    p = model.predict(pixels, verbose=0)[0]
    best, top = names[int(p.argmax())], float(p.max())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["predict.py", "photo.png"])
    for threshold, expected in (
        (round(top + 0.01, 4), f"not sure (best guess {best} with {100 * top:.1f}% confidence"),
        (round(top - 0.01, 4), f"{best} with {100 * top:.1f}% confidence"),
        (0.0, f"{best} with {100 * top:.1f}% confidence"),
    ):
        snippet = transfer.prediction_snippet(model, threshold=threshold)
        exec(compile(snippet, "predict.py", "exec"), {"__name__": "__main__"})
        assert capsys.readouterr().out.strip().startswith(expected), threshold


def test_the_recipe_sets_a_test_share_aside_only_beside_images_to_train_on():
    assert OwnImagesRecipe(validation_fraction=0.2, test_fraction=0.2).test_fraction == 0.2
    for test in (-0.1, 0.8, 0.9):
        with pytest.raises(InvalidArgumentError, match="test share"):
            OwnImagesRecipe(validation_fraction=0.2, test_fraction=test)
