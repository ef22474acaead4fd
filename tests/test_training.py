"""cnnlib.training on real MNIST digits (the shared test set, split into two parts).

Models and data are tiny so the whole file runs in well under a minute or two; nothing here
asserts a duration.
"""

from __future__ import annotations

import gc
import io
import threading
import time
import zipfile

import numpy as np
import pytest

from cnnlib.errors import InvalidArgumentError, InvalidModelError
from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training import (
    TrainConfig,
    TrainingJob,
    TrainingSlots,
    default_slots,
    load_model_bytes,
    save_model_bytes,
)

keras = pytest.importorskip("keras")

#: A small convnet for fast tests: 8 filters at stride 2, 16 at stride 2, softmax.
SMALL = [
    LayerSpec.conv2d(8, 3, strides=2, padding="same"),
    LayerSpec.conv2d(16, 3, strides=2, padding="same"),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]


def small_model(seed=None):
    return build_from_stack(SMALL, seed=seed)


@pytest.fixture(scope="module")
def digits(mnist_test_set):
    """The 10,000 real MNIST test digits: first 8,000 to train on, last 2,000 held out."""
    x, y = mnist_test_set
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])


class Gate(keras.callbacks.Callback):
    """Holds the training thread after each batch until ``release()`` (or 60 s)."""

    def __init__(self):
        super().__init__()
        self.open = threading.Event()
        self.reached = threading.Event()

    def on_train_batch_end(self, batch, logs=None):
        self.reached.set()
        self.open.wait(60)

    def release(self):
        self.open.set()


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_training_on_4000_real_digits_reaches_92_percent(digits):
    (x, y), test = digits
    config = TrainConfig(
        optimizer="adam", learning_rate=3e-3, batch_size=32, epochs=2, train_size=4000, seed=1
    )
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(2)).start()
    progress = job.wait(120)
    assert progress.state == "finished", progress.error
    assert progress.train_samples == 3600 and progress.val_samples == 400
    assert progress.test_samples == 2000
    # Measured on the 2,000 held-out digits: 93.4% with seed 1 (92.4-94.3% over seeds 0-7;
    # 2,000 training digits gave 88-92%, too close to the bar). Chance is 10%.
    assert progress.test_accuracy >= 0.92
    assert len(progress.val_accuracy) == 2 and progress.val_accuracy[-1] >= 0.88
    predictions = job.model.predict(test[0][:50, :, :, None] / 255.0, verbose=0)
    assert (predictions.argmax(1) == test[1][:50]).mean() >= 0.8
    assert progress.device.startswith(("CPU", "GPU")) and progress.tf_version
    assert progress.images_per_second > 0 and progress.eta_seconds == 0.0


@pytest.mark.slow
def test_progress_arrives_in_order(digits):
    (x, y), test = digits
    seen: list = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(job.snapshot())

    config = TrainConfig(batch_size=50, epochs=3, train_size=500, validation_split=0.2)
    job = TrainingJob(
        small_model, ((x, y), test), config, callbacks=[Spy()], slots=TrainingSlots(1)
    )
    job.start()
    polled = []
    while not job.done:
        polled.append(job.snapshot())
        time.sleep(0.005)
    final = job.wait()
    assert final.state == "finished"
    for snapshots in (seen, [*polled, final]):
        positions = [(s.epoch, s.step) for s in snapshots if s.state != "queued"]
        assert positions == sorted(positions)
        versions = [s.version for s in snapshots]
        assert versions == sorted(versions)
        fractions = [s.fraction for s in snapshots]
        assert fractions == sorted(fractions)
    # Seen from inside the thread, every batch is recorded before the next one starts.
    assert [(s.epoch, s.step) for s in seen] == [(e, b) for e in (1, 2, 3) for b in range(1, 9)]
    assert final.steps_per_epoch == 8 and final.batch_window == 1
    assert np.all(np.diff(final.batch_epoch) > 0) and final.batch_epoch[-1] == 3.0
    assert len(final.batch_loss) == len(final.batch_accuracy) == 24
    assert len(final.val_loss) == len(final.train_loss) == len(final.epoch_seconds) == 3
    # The window means reproduce Keras' epoch mean exactly (8 equal batches of 50).
    assert np.mean(final.batch_loss[:8]) == pytest.approx(final.train_loss[0], rel=1e-4)
    assert final.fraction == 1.0


@pytest.mark.slow
def test_curves_are_decimated_for_long_runs(digits):
    (x, y), _ = digits
    config = TrainConfig(batch_size=8, epochs=2, train_size=2400, validation_split=0.0)
    progress = TrainingJob(small_model, ((x, y), (None, None)), config).start().wait(120)
    assert progress.state == "finished", progress.error
    assert progress.steps_per_epoch == 300 and progress.batch_window == 2
    assert len(progress.batch_loss) == 300 and progress.test_accuracy is None


@pytest.mark.slow
def test_stop_mid_run_keeps_a_usable_model(digits):
    (x, y), test = digits
    gate = Gate()
    config = TrainConfig(batch_size=32, epochs=50, train_size=3200)
    job = TrainingJob(small_model, ((x, y), test), config, callbacks=[gate]).start()
    assert gate.reached.wait(60)
    job.stop()
    assert job.snapshot().state == "stopping"
    gate.release()
    progress = job.wait(60)
    assert progress.state == "stopped", progress.error
    # The stop came while the thread was past its check for batch 1 (held by the gate), so
    # batch 2 was the batch in flight; training ended right after it.
    assert progress.epoch == 1 and progress.step == 2
    assert len(progress.val_loss) == 1  # Keras validates the partial epoch
    assert progress.test_accuracy is not None and 0.0 <= progress.test_accuracy <= 1.0
    probabilities = job.model.predict(test[0][:5, :, :, None] / 255.0, verbose=0)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_the_slot_limit_queues_the_third_and_fourth_job(digits):
    (x, y), _ = digits
    slots = TrainingSlots(2)
    gates = [Gate() for _ in range(4)]
    config = TrainConfig(batch_size=50, epochs=1, train_size=100, validation_split=0.0)
    jobs = [
        TrainingJob(small_model, ((x, y), (None, None)), config, slots=slots, callbacks=[g])
        for g in gates
    ]
    for job in jobs:  # one at a time, so that the queue order is the start order
        job.start()
        assert wait_for(lambda j=job: j.snapshot().state != "queued" or j.snapshot().queue_position)
    assert gates[0].reached.wait(60) and gates[1].reached.wait(60)
    assert wait_for(lambda: slots.waiting == 2)
    states = [j.snapshot() for j in jobs]
    assert [s.state for s in states] == ["running", "running", "queued", "queued"]
    assert [s.queue_position for s in states] == [None, None, 1, 2]
    assert slots.running == 2

    jobs[3].stop()  # leaving the queue needs no slot
    assert jobs[3].wait(30).state == "stopped" and jobs[3].model is None
    gates[0].release()
    assert gates[2].reached.wait(60)  # the first free slot goes to the next in line
    assert jobs[0].wait(30).state == "finished"
    for gate in gates:
        gate.release()
    assert [j.wait(60).state for j in jobs[:3]] == ["finished"] * 3
    assert slots.running == 0 and slots.waiting == 0


@pytest.mark.slow
def test_a_garbage_collected_handle_stops_its_training(digits):
    (x, y), _ = digits
    gate = Gate()
    config = TrainConfig(batch_size=32, epochs=50, train_size=640, validation_split=0.0)
    job = TrainingJob(small_model, ((x, y), (None, None)), config, callbacks=[gate]).start()
    worker = job._worker
    assert gate.reached.wait(60)
    del job
    gc.collect()
    gate.release()
    assert worker.done_event.wait(60)
    assert worker.snapshot().state == "stopped"


@pytest.mark.slow
def test_generic_data_any_shape_and_class_count():
    rng = np.random.default_rng(0)
    x = rng.random((300, 12, 12, 3), dtype=np.float32)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype(np.int64) + 2 * (
        x[:, :, :, 1].mean(axis=(1, 2)) > 0.5
    )

    def builder():  # no seed argument: built under the global-seed lock
        return build_from_stack(
            [LayerSpec.flatten(), LayerSpec.dense(4, activation="softmax")],
            input_shape=(12, 12, 3),
            num_classes=4,
        )

    config = TrainConfig(batch_size=30, epochs=1, validation_split=0.0)
    progress = TrainingJob(builder, ((x, y), (x[:40], y[:40])), config).start().wait(60)
    assert progress.state == "finished", progress.error
    assert progress.test_samples == 40

    bad = ((x, y + 2), (None, None))
    progress = TrainingJob(builder, bad, config).start().wait(60)
    assert progress.state == "failed"
    assert "labels go up to 5" in progress.error and "4 outputs" in progress.error


def test_bad_inputs_fail_with_a_message():
    config = TrainConfig(epochs=1)
    progress = TrainingJob(small_model, ((np.zeros((3, 5)), [0, 1, 2]), (None, None)), config)
    assert progress.start().wait(30).state == "failed"
    assert "(N, H, W)" in progress.snapshot().error
    nan_images = np.full((4, 28, 28), np.nan, np.float32)
    job = TrainingJob(small_model, ((nan_images, [0, 1, 2, 3]), (None, None)), config).start()
    assert job.wait(30).state == "failed" and "NaN" in job.snapshot().error
    assert job.model is None
    for field, value in [
        ("optimizer", "adagrad"),
        ("learning_rate", 0),
        ("batch_size", 0),
        ("epochs", 2.5),
        ("validation_split", 1.0),
        ("patience", -1),
        ("train_size", 0),
        ("lr_schedule", "step"),
    ]:
        with pytest.raises(InvalidArgumentError):
            TrainConfig(**{field: value})


def test_early_stopping_restores_the_best_epoch():
    from cnnlib.training import _progress_callback, _Worker

    config = TrainConfig(epochs=10, patience=2)
    worker = _Worker(small_model, None, config, TrainingSlots(1), ())
    worker.progress.steps_per_epoch = 1
    callback = _progress_callback(worker, 10, config)
    model = small_model(seed=0)
    callback.set_model(model)
    model.stop_training = False  # as Model.fit sets it
    callback.on_train_begin()
    weights_at = {}
    for epoch, val_loss in enumerate([1.0, 0.8, 0.9, 0.95, 0.5]):
        model.set_weights([w + epoch for w in small_model(seed=0).get_weights()])
        weights_at[epoch + 1] = model.get_weights()
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss, "val_accuracy": 0.5})
        if model.stop_training:
            break
    assert epoch == 3 and worker.progress.stopped_early  # two epochs without improvement
    callback.restore_best()
    assert worker.progress.best_epoch == 2
    for restored, kept in zip(model.get_weights(), weights_at[2], strict=True):
        np.testing.assert_array_equal(restored, kept)


def test_a_diverging_loss_stops_the_training():
    from cnnlib.training import _progress_callback, _Worker

    config = TrainConfig(epochs=3, batch_size=10)
    worker = _Worker(small_model, None, config, TrainingSlots(1), ())
    worker.progress.steps_per_epoch = 5
    callback = _progress_callback(worker, 50, config)
    callback.set_model(small_model())
    callback.model.stop_training = False
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(0, {"loss": 2.3, "accuracy": 0.1})
    assert not callback.model.stop_training and callback.diverged is None
    callback.on_train_batch_end(1, {"loss": float("nan"), "accuracy": 0.1})
    assert callback.model.stop_training and callback.diverged == (1, 2)


def test_save_and_load_model_bytes_round_trip(tmp_path):
    model = small_model(seed=3)
    data = save_model_bytes(model)
    assert zipfile.is_zipfile(io.BytesIO(data))
    loaded = load_model_bytes(data)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    with pytest.raises(InvalidModelError, match=r"not a \.keras"):
        load_model_bytes(b"definitely not a model")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no model")
    with pytest.raises(InvalidModelError, match="could not be loaded"):
        load_model_bytes(buffer.getvalue())


def test_config_for_a_preset_keeps_every_recipe_field():
    from cnnlib.models import DEFAULT_PRESET, PRESET_TRAINING

    config = TrainConfig.for_preset(DEFAULT_PRESET, epochs=1, seed=7)
    recipe = PRESET_TRAINING[DEFAULT_PRESET]
    assert config.lr_schedule == recipe["lr_schedule"] == "cosine"
    assert config.batch_size == recipe["batch_size"] and config.epochs == 1 and config.seed == 7
    with pytest.raises(InvalidArgumentError, match="Unknown preset"):
        TrainConfig.for_preset("VGG")


def test_default_slots_limit_comes_from_the_environment(monkeypatch):
    import cnnlib.training as training

    monkeypatch.setattr(training, "_DEFAULT_SLOTS", None)
    monkeypatch.setenv("CNNLAB_MAX_TRAININGS", "3")
    assert default_slots().limit == 3
    assert default_slots() is default_slots()
    monkeypatch.setattr(training, "_DEFAULT_SLOTS", None)
    monkeypatch.setenv("CNNLAB_MAX_TRAININGS", "zero")
    assert default_slots().limit == 2
    monkeypatch.setattr(training, "_DEFAULT_SLOTS", None)
    monkeypatch.delenv("CNNLAB_MAX_TRAININGS")
    assert default_slots().limit == 2
    with pytest.raises(InvalidArgumentError):
        TrainingSlots(0)
