"""cnnlib.training.trainer on real MNIST digits (the shared test set, split into two parts).

Models and data are tiny so the whole file runs in well under a minute or two; nothing here
asserts a duration.
"""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.training_data import ArrayData
from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training.trainer import (
    Phase,
    TrainConfig,
    TrainingJob,
    TrainingSlots,
    save_model_bytes,
)
from tests.conftest import ROOT, wait_for

keras = pytest.importorskip("keras")

#: A small convnet for fast tests: 8 filters at stride 2, 16 at stride 2, softmax.
SMALL = [
    LayerSpec.conv2d(8, 3, strides=2, padding="same"),
    LayerSpec.conv2d(16, 3, strides=2, padding="same"),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]


def small_model(seed=None):
    """Takes raw pixels: ``build_from_stack`` puts Rescaling(1/255) first."""
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
    # The model owns its rescaling: it reads raw uint8 pixels.
    assert job.model.layers[0].name == "rescaling_1"
    predictions = job.model.predict(test[0][:50, :, :, None], verbose=0)
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
        small_model,
        ((x, y), test),
        config,
        callbacks=[Spy()],
        slots=TrainingSlots(1),
        isolate=False,
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
def test_stop_mid_run_keeps_a_usable_model_and_skips_evaluation(digits):
    (x, y), test = digits
    gate = Gate()
    config = TrainConfig(batch_size=32, epochs=50, train_size=3200)
    job = TrainingJob(small_model, ((x, y), test), config, callbacks=[gate], isolate=False).start()
    assert gate.reached.wait(60)
    job.stop()
    assert job.snapshot().state == "stopping"
    gate.release()
    progress = job.wait(60)
    assert progress.state == "stopped", progress.error
    # The stop came while the thread was past its check for batch 1 (held by the gate), so
    # batch 2 was the batch in flight; training ended right after it.
    assert progress.epoch == 1 and progress.step == 2
    # The rest of the run is skipped: no validation of the cut epoch, no test evaluation.
    assert progress.train_loss and not progress.val_loss and progress.test_accuracy is None
    assert progress.message is None  # stopped by the learner, not by the time limit
    probabilities = job.model.predict(test[0][:5, :, :, None], verbose=0)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_the_slot_limit_queues_the_third_and_fourth_job(digits):
    (x, y), _ = digits
    slots = TrainingSlots(2)
    gates = [Gate() for _ in range(4)]
    config = TrainConfig(batch_size=50, epochs=1, train_size=100, validation_split=0.0)
    jobs = [
        TrainingJob(
            small_model, ((x, y), (None, None)), config, slots=slots, callbacks=[g], isolate=False
        )
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
    job = TrainingJob(
        small_model, ((x, y), (None, None)), config, callbacks=[gate], isolate=False
    ).start()
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
    x = rng.random((300, 12, 12, 3), dtype=np.float32) * 255  # raw float pixels 0…255
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 127.5).astype(np.int64) + 2 * (
        x[:, :, :, 1].mean(axis=(1, 2)) > 127.5
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


@pytest.mark.slow
def test_bad_inputs_fail_with_a_message():
    config = TrainConfig(epochs=1)
    progress = TrainingJob(small_model, ((np.zeros((3, 5)), [0, 1, 2]), (None, None)), config)
    assert progress.start().wait(120).state == "failed"
    assert "(N, H, W)" in progress.snapshot().error
    nan_images = np.full((4, 28, 28), np.nan, np.float32)
    job = TrainingJob(small_model, ((nan_images, [0, 1, 2, 3]), (None, None)), config).start()
    assert job.wait(120).state == "failed" and "NaN" in job.snapshot().error
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


@pytest.mark.slow
def test_early_stopping_restores_the_best_epoch(digits):
    """Random labels: the model memorises the training images, so the validation loss rises
    after the first epochs; Keras' EarlyStopping stops and restores the best epoch."""
    (x, _), _ = digits
    noise = np.random.default_rng(0).integers(0, 10, len(x))
    data = ArrayData.from_arrays(
        x[:600], noise[:600], class_names=list("0123456789"), validation_split=0.5, seed=0
    )
    config = TrainConfig(batch_size=20, epochs=30, patience=2, learning_rate=3e-3)
    job = TrainingJob(small_model, data, config, slots=TrainingSlots(1)).start()
    progress = job.wait(120)
    assert progress.state == "finished", progress.error
    assert progress.stopped_early and len(progress.val_loss) < 30
    best = progress.best_epoch
    assert progress.val_loss[best - 1] == min(progress.val_loss)
    assert len(progress.val_loss) == best + 2  # two epochs without improvement
    # The kept weights are the best epoch's: Keras' own evaluation gives its loss again.
    job.model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, _ = job.model.evaluate(data.batches("validation", 256), verbose=0)
    assert loss == pytest.approx(progress.val_loss[best - 1], rel=1e-4)


@pytest.mark.slow
def test_a_diverging_loss_fails_with_lower_the_learning_rate(digits):
    (x, y), _ = digits
    # Pixels near float32's limit overflow in the first batch: the loss is NaN at once.
    config = TrainConfig(optimizer="sgd", learning_rate=10.0, batch_size=50, epochs=5)
    job = TrainingJob(
        small_model, ((x[:1000] * 1e36, y[:1000]), (None, None)), config, slots=TrainingSlots(1)
    ).start()
    progress = job.wait(120)
    assert progress.state == "failed"
    assert "infinite or NaN" in progress.error and "Lower the learning rate" in progress.error
    # Keras' TerminateOnNaN stopped it in the first epoch: no further epochs ran.
    assert progress.epoch == 1 and len(progress.train_loss) <= 1 and job.model is None


@pytest.mark.slow
def test_phases_recompile_with_their_learning_rate_and_trainable_layers(digits):
    (x, y), test = digits
    seen = {}

    def freeze_first_conv(model):
        model.get_layer("conv2d_1").trainable = False
        seen["frozen"] = [w.copy() for w in model.get_layer("conv2d_1").get_weights()]

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.setdefault("rates", []).append(float(self.model.optimizer.learning_rate))
            seen.setdefault("phases", []).append(job.snapshot().phase_name)

    config = TrainConfig(
        batch_size=50,
        train_size=500,
        learning_rate=2e-3,
        phases=(
            Phase(2, name="from scratch"),
            Phase(1, learning_rate=1e-4, prepare=freeze_first_conv, name="fine-tune"),
        ),
    )
    assert config.total_epochs == 3
    job = TrainingJob(small_model, ((x, y), test), config, callbacks=[Spy()], isolate=False)
    progress = job.start().wait(120)
    assert progress.state == "finished", progress.error
    assert progress.phases == 2 and progress.phase == 2 and progress.phase_name == "fine-tune"
    assert progress.epochs == progress.epoch == 3 and len(progress.train_loss) == 3
    assert seen["phases"] == ["from scratch", "fine-tune"]
    assert seen["rates"] == pytest.approx([2e-3, 1e-4])
    # The layer frozen for phase 2 kept the weights phase 1 gave it.
    frozen = job.model.get_layer("conv2d_1").get_weights()
    for after, before in zip(frozen, seen["frozen"], strict=True):
        np.testing.assert_array_equal(after, before)
    assert progress.test_accuracy is not None and progress.test_accuracy > 0.5
    with pytest.raises(InvalidArgumentError):
        Phase(0)
    with pytest.raises(InvalidArgumentError):
        TrainConfig(phases=(3,))


@pytest.mark.slow
def test_the_time_limit_stops_a_job_with_a_message(digits):
    (x, y), test = digits
    config = TrainConfig(batch_size=32, epochs=200, train_size=3200)
    job = TrainingJob(small_model, ((x, y), test), config, max_seconds=0.5).start()
    progress = job.wait(120)
    # 200 epochs of 3,200 images take minutes here: the limit ended it long before.
    assert progress.state == "stopped" and "time limit" in progress.message
    assert progress.epoch < 200 and progress.test_accuracy is None
    with pytest.raises(InvalidArgumentError):
        TrainingJob(small_model, ((x, y), (None, None)), config, max_seconds=0)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus():
    """Two logical CPU devices (set before TensorFlow starts: in a fresh process); the watch
    snapshot reads the mirrored first layer."""
    code = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8)
y = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.int64)
def builder(seed=None):
    specs = [LayerSpec.conv2d(2, 3), LayerSpec.flatten(), LayerSpec.dense(2, activation="softmax")]
    return build_from_stack(specs, (8, 8, 1), 2, seed=seed)
job = TrainingJob(builder, ((x, y), (x[:40], y[:40])), TrainConfig(batch_size=10, epochs=1),
                  slots=TrainingSlots(1), devices=["/cpu:0", "/cpu:1"], watch=x[0],
                  isolate=False).start()
p = job.wait(120)
assert p.state == "finished", p.error
assert p.device == "2 devices (MirroredStrategy)" and p.replicas == 2, p.device
assert p.steps_per_epoch == 9, p.steps_per_epoch  # 180 images, batch 10 per replica
assert p.test_samples == 40 and p.test_accuracy is not None
assert p.watch.epoch == 1 and p.watch.filters.shape == (3, 3, 1, 2), p.watch  # mirrored weights
assert p.watch.maps.shape == (6, 6, 2)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_mixed_precision_builds_keep_a_float32_softmax():
    model = build_from_stack(SMALL, dtype="mixed_float16")
    assert model.get_layer("conv2d_1").dtype_policy.name == "mixed_float16"
    assert model.layers[-1].dtype_policy.name == "float32"
    out = model.predict(np.zeros((2, 28, 28, 1), np.uint8), verbose=0)
    assert out.dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"  # the process-wide policy is untouched


def test_save_model_bytes_round_trip(tmp_path):
    """What the download button gives loads through the upload path and predicts alike."""
    from cnnlib.core.budgets import budgets
    from cnnlib.uploads.model_files import load_keras_file

    model = small_model(seed=3)
    data = save_model_bytes(model)
    assert zipfile.is_zipfile(io.BytesIO(data))
    loaded = load_keras_file(data, budgets=budgets())
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_config_for_a_preset_keeps_every_recipe_field():
    from cnnlib.models import DEFAULT_PRESET, PRESET_TRAINING

    config = TrainConfig.for_preset(DEFAULT_PRESET, epochs=1, seed=7)
    recipe = PRESET_TRAINING[DEFAULT_PRESET]
    assert config.lr_schedule == recipe["lr_schedule"] == "cosine"
    assert config.batch_size == recipe["batch_size"] and config.epochs == 1 and config.seed == 7
    with pytest.raises(InvalidArgumentError, match="Unknown preset"):
        TrainConfig.for_preset("VGG")


def test_slots_refuse_a_bad_limit():
    with pytest.raises(InvalidArgumentError):
        TrainingSlots(0)


class EpochEnds(keras.callbacks.Callback):
    """At each epoch end (after the job's own callbacks): the job's watch snapshot and the
    first Conv2D layer's kernel and bias as they are at that moment."""

    def __init__(self):
        super().__init__()
        self.job = None
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        conv = next(layer for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D))
        kernel, bias = (np.array(w) for w in conv.get_weights())
        self.seen.append((epoch + 1, self.job.snapshot().watch, kernel, bias))


@pytest.mark.slow
def test_watch_snapshots_each_epoch_hold_that_epochs_filters_and_maps(digits):
    """The snapshot of epoch e equals the first Conv2D's weights at the end of epoch e, and
    its maps equal tf.nn.conv2d of the watched digit with those weights (+ bias, ReLU)."""
    import tensorflow as tf

    (x, y), test = digits
    digit = x[8]  # (28, 28) uint8 raw pixels
    ends = EpochEnds()
    config = TrainConfig(batch_size=64, epochs=3, train_size=640, validation_split=0.0)
    job = TrainingJob(
        small_model, ((x, y), test), config, callbacks=[ends], watch=digit, isolate=False
    )
    ends.job = job
    assert job.snapshot().watch is None
    assert job.start().wait(180).state == "finished", job.snapshot().error
    assert [epoch for epoch, *_ in ends.seen] == [1, 2, 3]
    kernels = []
    for epoch, watch, kernel, bias in ends.seen:
        assert watch is not None and watch.epoch == epoch
        assert watch.filters.shape == (3, 3, 1, 8) and watch.maps.shape == (14, 14, 8)
        np.testing.assert_array_equal(watch.filters, kernel)
        image = tf.constant(digit[None, :, :, None] / 255.0, tf.float32)
        expected = tf.nn.relu(tf.nn.conv2d(image, kernel, strides=2, padding="SAME") + bias)
        np.testing.assert_allclose(watch.maps, expected.numpy()[0], atol=1e-5)
        kernels.append(kernel)
    assert not np.allclose(kernels[0], kernels[-1])  # it learned between snapshots
    assert job.snapshot().watch is ends.seen[-1][1]
    assert not job.snapshot().watch.filters.flags.writeable


@pytest.mark.slow
def test_watching_needs_a_conv_layer_and_an_image_of_the_model_size(digits):
    (x, y), test = digits
    config = TrainConfig(batch_size=64, epochs=1, train_size=200, validation_split=0.0)
    dense = [LayerSpec.flatten(), LayerSpec.dense(10, activation="softmax")]
    job = TrainingJob(lambda: build_from_stack(dense), ((x, y), test), config, watch=x[0])
    assert job.start().wait(120).state == "finished" and job.snapshot().watch is None
    job = TrainingJob(small_model, ((x, y), test), config, watch=np.zeros((32, 32)))
    progress = job.start().wait(120)
    assert progress.state == "failed" and "image to watch is (32, 32, 1)" in progress.error
    with pytest.raises(InvalidArgumentError, match="one finite"):
        TrainingJob(small_model, ((x, y), test), config, watch=np.zeros((2, 2, 2, 2)))


class _Report:
    """A ``Reporter`` that keeps every update and appended item, in order."""

    def __init__(self):
        self.updates, self.appended = {}, {}

    def update(self, **changes):
        self.updates.update(changes)

    def append(self, **items):
        for name, value in items.items():
            self.appended.setdefault(name, []).append(value)


@pytest.mark.slow
def test_fit_phases_is_the_one_phase_runner_with_report_callbacks_and_stop(digits):
    """Two phases on real digits, in this thread: the report gets the plan and one value per
    epoch, extra callbacks run, each phase recompiles at its learning rate; a stop set
    before the first batch trains nothing."""
    from cnnlib.training.trainer import FitResult, fit_phases, new_stage

    (x, y), _ = digits
    data = ArrayData.from_arrays(
        x[:320], y[:320], class_names=list("0123456789"), validation_split=0.25, seed=0
    )
    model = small_model(seed=0)
    rates, epochs_seen = [], []
    phases = [Phase(1, name="First"), Phase(2, learning_rate=1e-4, name="Second")]
    seen = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: rates.append(float(model.optimizer.learning_rate)),
        on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch + 1),
    )
    report = _Report()
    config = TrainConfig(batch_size=40, learning_rate=3e-3, seed=0)
    result = fit_phases(model, data, phases, config, callbacks=[seen], report=report)
    assert isinstance(result, FitResult) and result.batches == 3 * 6  # 240 images / 40
    assert rates == pytest.approx([3e-3, 1e-4]) and epochs_seen == [1, 2, 3]
    u = report.updates
    assert (u["epochs"], u["phases"], u["steps_per_epoch"], u["phase"]) == (3, 2, 6, 2)
    assert (u["phase_name"], u["train_samples"], u["val_samples"]) == ("Second", 240, 80)
    assert len(report.appended["val_loss"]) == len(report.appended["train_loss"]) == 3
    stop = threading.Event()
    stop.set()
    assert fit_phases(small_model(seed=1), data, phases, config, stop=stop).batches == 0
    # A new stage starts its curves afresh; the task's fields stay.
    fresh = new_stage(stage="fine-tune")
    assert fresh["val_loss"] == () and fresh["epoch"] == 0 and fresh["stage"] == "fine-tune"
    assert "state" not in fresh and "elapsed_seconds" not in fresh
