"""Training a Keras model in a background thread, with live progress, Stop and a slot limit.

A ``TrainingJob`` trains one model on arrays in a daemon thread that never calls Streamlit;
the page polls ``job.snapshot()`` (a thread-safe copy of the progress) from a fragment.
``TrainingSlots`` caps how many trainings run at once in the process; the rest wait in a
queue. The thread holds no reference to the ``TrainingJob`` handle, so when a session (and
with it the handle) is garbage-collected, its training stops.

Seeds are handled without Keras' process-wide ``set_random_seed``: the training order, the
subset and the validation split come from a local NumPy generator; initial weights come from
the builder's ``seed`` argument when it has one (the presets do), otherwise the builder runs
under a lock right after ``keras.utils.set_random_seed``.
"""

from __future__ import annotations

import functools
import inspect
import io
import math
import os
import tempfile
import threading
import time
import weakref
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnlib.errors import InvalidArgumentError, InvalidModelError

__all__ = [
    "FINAL_STATES",
    "LR_SCHEDULES",
    "MAX_CURVE_POINTS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainingJob",
    "TrainingProgress",
    "TrainingSlots",
    "default_slots",
    "load_model_bytes",
    "save_model_bytes",
]

OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: At most this many points in the per-batch curves: each point is the mean over a window of
#: batches, the window chosen before training so that the whole run fits.
MAX_CURVE_POINTS = 300
#: Terminal states of a job.
FINAL_STATES = ("finished", "stopped", "failed")


# --------------------------------------------------------------------------------------------
# Configuration and progress
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``optimizer`` "sgd" is SGD with momentum 0.9.

    ``train_size``: use this many training images (a seeded random subset; None = all).
    ``validation_split``: fraction of those held out for the per-epoch validation metrics.
    ``patience``: stop after this many epochs without a lower validation loss and restore the
    best weights (0 = no early stopping). ``lr_schedule``: "constant", or "cosine" (decays
    the learning rate to 0 over all epochs).
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 3
    train_size: int | None = None
    validation_split: float = 0.1
    patience: int = 0
    seed: int = 0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InvalidArgumentError(
                f"The optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidArgumentError(
                f"The learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}."
            )
        if not (isinstance(self.learning_rate, int | float) and 0 < self.learning_rate <= 10):
            raise InvalidArgumentError(
                f"The learning rate must be above 0 (and at most 10); got {self.learning_rate}."
            )
        for name, low, high in (("batch_size", 1, 65536), ("epochs", 1, 1000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidArgumentError(
                    f"{name.replace('_', ' ').capitalize()} must be a whole number from {low} "
                    f"to {high}; got {value!r}."
                )
        if self.train_size is not None and (
            isinstance(self.train_size, bool)
            or not isinstance(self.train_size, int)
            or self.train_size < 1
        ):
            raise InvalidArgumentError(
                f"The training-set size must be a positive whole number; got {self.train_size!r}."
            )
        if not 0.0 <= self.validation_split < 1.0:
            raise InvalidArgumentError(
                f"The validation split must be at least 0 and below 1; got {self.validation_split}."
            )
        if (
            isinstance(self.patience, bool)
            or not isinstance(self.patience, int)
            or self.patience < 0
        ):
            raise InvalidArgumentError(
                f"The patience must be 0 (off) or a number of epochs; got {self.patience!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidArgumentError(f"The seed must be a whole number ≥ 0; got {self.seed!r}.")

    def with_changes(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """The settings a preset is meant to be trained with (``PRESET_TRAINING``), every
        field included (e.g. the fast recipe's cosine schedule), then ``overrides``."""
        from cnnlib.models.presets import PRESET_TRAINING

        if preset not in PRESET_TRAINING:
            raise InvalidArgumentError(
                f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_TRAINING)}."
            )
        return cls(**{**PRESET_TRAINING[preset], **overrides})


@dataclass
class TrainingProgress:
    """A consistent copy of a job's progress (all times in seconds).

    ``epoch`` is 1-based: the epoch in progress, or the last one run; ``step`` counts the
    batches done in it. The per-batch curves hold the mean loss and accuracy over windows
    of ``batch_window`` batches, at positions ``batch_epoch`` measured in epochs (1.5 = half
    way through the second epoch). Per-epoch lists have one value per finished epoch.
    """

    state: str = "queued"  #: queued | running | stopping | finished | stopped | failed
    queue_position: int | None = None  #: 1 = next to start (only while queued)
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    images_per_second: float = 0.0
    eta_seconds: float | None = None
    elapsed_seconds: float = 0.0  #: since the job left the queue
    train_seconds: float = 0.0  #: time spent in the training loop (with validation)
    callback_seconds: float = 0.0  #: of which in the live-progress callback
    batch_epoch: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)
    batch_window: int = 1
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None  #: epoch whose weights were kept (early stopping)
    stopped_early: bool = False
    test_loss: float | None = None
    test_accuracy: float | None = None
    train_samples: int = 0
    val_samples: int = 0
    test_samples: int = 0
    error: str | None = None
    device: str = ""
    tf_version: str = ""
    version: int = 0  #: increases with every change: redraw only when it moved

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        """Share of all planned batches done, 0…1."""
        total = self.epochs * self.steps_per_epoch
        if total <= 0:
            return 1.0 if self.state == "finished" else 0.0
        return min(1.0, ((max(self.epoch, 1) - 1) * self.steps_per_epoch + self.step) / total)


# --------------------------------------------------------------------------------------------
# The process-wide limit
# --------------------------------------------------------------------------------------------


class TrainingSlots:
    """At most ``limit`` trainings at once; the others wait first-come, first-served."""

    def __init__(self, limit: int):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"The training limit must be at least 1; got {limit!r}.")
        self.limit = limit
        self._cond = threading.Condition()
        self._running: set[object] = set()
        self._queue: deque[object] = deque()

    def acquire(self, ticket: object, cancelled: threading.Event) -> bool:
        """Wait for a slot (True), or give up when ``cancelled`` is set (False)."""
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    if cancelled.is_set():
                        return False
                    if self._queue[0] is ticket and len(self._running) < self.limit:
                        self._running.add(ticket)
                        return True
                    self._cond.wait(timeout=0.5)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, ticket: object) -> None:
        with self._cond:
            self._running.discard(ticket)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiting jobs re-check their stop flags now."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket: object) -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._cond:
            for i, t in enumerate(self._queue):
                if t is ticket:
                    return i + 1
        return None

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


_DEFAULT_SLOTS: TrainingSlots | None = None
_DEFAULT_SLOTS_LOCK = threading.Lock()


def _limit_from_env() -> int:
    value = os.environ.get("CNNLAB_MAX_TRAININGS", "").strip()
    try:
        limit = int(value)
    except ValueError:
        return 2
    return limit if limit >= 1 else 2


def default_slots() -> TrainingSlots:
    """The process-wide slots; limit from ``$CNNLAB_MAX_TRAININGS`` (default 2), read once."""
    global _DEFAULT_SLOTS
    with _DEFAULT_SLOTS_LOCK:
        if _DEFAULT_SLOTS is None:
            _DEFAULT_SLOTS = TrainingSlots(_limit_from_env())
        return _DEFAULT_SLOTS


# --------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------


def _as_images(x: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) → (N, H, W, 1); uint8 stays uint8 (scaled in the input pipeline)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) == 0:
        raise InvalidArgumentError(
            f"The {what} images must be a non-empty (N, H, W) or (N, H, W, C) array; got shape "
            f"{x.shape}."
        )
    if x.dtype != np.uint8:
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise InvalidArgumentError(f"The {what} images contain NaN or infinite values.")
    return x


def _as_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgumentError(
            f"The {what} labels must be {n:,} whole numbers (one per image); got an array of "
            f"shape {y.shape} and type {y.dtype}."
        )
    if n and y.min() < 0:
        raise InvalidArgumentError(f"The {what} labels must be ≥ 0; found {int(y.min())}.")
    return y.astype(np.int32, copy=False)


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x


@dataclass
class _Prepared:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def _prepare(data, config: TrainConfig, rng: np.random.Generator) -> _Prepared:
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            "The data must be ((x_train, y_train), (x_test, y_test)); (x_test, y_test) may be "
            "(None, None)."
        ) from None
    x_train = _as_images(x_train, "training")
    y_train = _as_labels(y_train, len(x_train), "training")
    order = rng.permutation(len(x_train))
    if config.train_size is not None:
        order = order[: config.train_size]
    n_val = round(len(order) * config.validation_split)
    if config.validation_split > 0 and n_val == 0:
        n_val = 1
    if len(order) - n_val < 1:
        raise InvalidArgumentError(
            f"{len(order):,} training images are too few for a validation split of "
            f"{config.validation_split:g}: none would be left to train on."
        )
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    prepared = _Prepared(x_train[train_idx], y_train[train_idx], None, None, None, None)
    if n_val:
        prepared.x_val, prepared.y_val = _to_float(x_train[val_idx]), y_train[val_idx]
    if x_test is not None:
        x_test = _as_images(x_test, "test")
        prepared.x_test = _to_float(x_test)
        prepared.y_test = _as_labels(y_test, len(x_test), "test")
    return prepared


def _train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, rng):
    """A tf.data pipeline of ``epochs`` passes over (x, y), each in a fresh seeded order.

    Each epoch's order is a stateless shuffle keyed by a number from the job's own NumPy
    generator and the epoch (no global seed, nothing shared between threads); uint8 pixels
    are scaled to [0, 1] per batch, so the images are stored once, small.
    """
    import tensorflow as tf

    n = len(x)
    key = int(rng.integers(0, 2**31 - 1))
    with tf.device("/CPU:0"):  # the input pipeline runs on the CPU, even with a GPU
        x_t, y_t = tf.constant(x), tf.constant(y)
    scale = x.dtype == np.uint8

    # Plain TensorFlow ops: no AutoGraph conversion needed.
    @tf.autograph.experimental.do_not_convert
    def batches(epoch):
        seed = tf.stack([tf.constant(key, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=seed)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    @tf.autograph.experimental.do_not_convert
    def gather(idx):
        images = tf.gather(x_t, idx)
        if scale:
            images = tf.cast(images, tf.float32) / 255.0
        return images, tf.gather(y_t, idx)

    return (
        tf.data.Dataset.range(epochs)
        .flat_map(batches)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )


# --------------------------------------------------------------------------------------------
# Devices, models, optimizers
# --------------------------------------------------------------------------------------------


def _device_description() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    except Exception:  # details are optional
        name = ""
    return f"GPU:0 ({name})" if name else "GPU:0"


_BUILD_LOCK = threading.Lock()


def _build_model(builder: Callable[..., Any], seed: int):
    """Call the builder with ``seed=`` when it takes one; else under the global-seed lock."""
    import keras

    try:
        takes_seed = "seed" in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed:
        model = builder(seed=seed)
    else:
        with _BUILD_LOCK:
            keras.utils.set_random_seed(seed)
            model = builder()
    if not isinstance(model, keras.Model):
        raise InvalidModelError(
            f"The model builder returned {type(model).__name__}, not a Keras model."
        )
    return model


def _optimizer(config: TrainConfig, total_steps: int):
    import keras

    lr: Any = float(config.learning_rate)
    if config.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps))
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------


class _Worker:
    """Everything the training thread touches. Holds no reference to the ``TrainingJob``."""

    def __init__(self, builder, data, config: TrainConfig, slots: TrainingSlots, callbacks):
        self.builder = builder
        self.data = data
        self.config = config
        self.slots = slots
        self.extra_callbacks = list(callbacks)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.progress = TrainingProgress(epochs=config.epochs)
        self.model = None
        self.thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.done_event = threading.Event()

    # -- called from other threads ---------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()
        with self.lock:
            if self.progress.state == "running":
                self.progress.state = "stopping"
                self.progress.version += 1
        self.slots.wake()

    def snapshot(self) -> TrainingProgress:
        with self.lock:
            copy = replace(self.progress)
            for name in (
                "batch_epoch",
                "batch_loss",
                "batch_accuracy",
                "train_loss",
                "train_accuracy",
                "val_loss",
                "val_accuracy",
                "epoch_seconds",
            ):
                setattr(copy, name, list(getattr(copy, name)))
            if self.started_at is not None and not copy.done:
                copy.elapsed_seconds = time.perf_counter() - self.started_at
        if copy.state == "queued":
            copy.queue_position = self.slots.position(self)
        return copy

    # -- the thread ------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self.progress, key, value)
            self.progress.version += 1

    def run(self) -> None:
        acquired = False
        try:
            acquired = self.slots.acquire(self, self.stop_event)
            if not acquired:
                self.update(state="stopped", queue_position=None)
                return
            self.started_at = time.perf_counter()
            state = "stopping" if self.stop_event.is_set() else "running"
            self.update(state=state, queue_position=None)
            self._train()
        except Exception as exc:  # reported to the page, never raised into Streamlit
            message = str(exc) or type(exc).__name__
            if not isinstance(exc, InvalidArgumentError | InvalidModelError):
                message = f"Training failed: {type(exc).__name__}: {message}"
                if len(message) > 600:
                    message = message[:600] + " …"
            self.model = None  # a failed training leaves no model to use
            self.update(state="failed", error=message)
        finally:
            if acquired:
                self.slots.release(self)
            if self.started_at is not None:
                self.update(elapsed_seconds=time.perf_counter() - self.started_at)
            self.data = None  # free the arrays; the model stays
            self.done_event.set()

    def _train(self) -> None:
        import tensorflow as tf

        config = self.config
        rng = np.random.default_rng(config.seed)
        prepared = _prepare(self.data, config, rng)
        self.data = None
        self.update(device=_device_description(), tf_version=tf.__version__)
        model = _build_model(self.builder, config.seed)
        n_classes = int(model.output_shape[-1])
        for labels, what in ((prepared.y_train, "training"), (prepared.y_test, "test")):
            if labels is not None and len(labels) and int(labels.max()) >= n_classes:
                raise InvalidArgumentError(
                    f"The {what} labels go up to {int(labels.max())} but the model has only "
                    f"{n_classes} outputs (classes 0 to {n_classes - 1})."
                )
        steps = math.ceil(len(prepared.x_train) / config.batch_size)
        model.compile(
            optimizer=_optimizer(config, steps * config.epochs),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        self.model = model
        self.update(
            steps_per_epoch=steps,
            train_samples=len(prepared.x_train),
            val_samples=0 if prepared.x_val is None else len(prepared.x_val),
            test_samples=0 if prepared.x_test is None else len(prepared.x_test),
            batch_window=max(1, math.ceil(steps * config.epochs / MAX_CURVE_POINTS)),
            epoch=1,
        )
        if not self.stop_event.is_set():
            dataset = _train_dataset(
                prepared.x_train, prepared.y_train, config.batch_size, config.epochs, rng
            )
            validation = None
            if prepared.x_val is not None:
                validation = (prepared.x_val, prepared.y_val)
            recorder = _progress_callback(self, len(prepared.x_train), config)
            t0 = time.perf_counter()
            model.fit(
                dataset,
                epochs=config.epochs,
                steps_per_epoch=steps,
                validation_data=validation,
                validation_batch_size=max(config.batch_size, 256),
                callbacks=[recorder, *self.extra_callbacks],
                shuffle=False,  # the dataset is already in a seeded random order
                verbose=0,
            )
            if recorder.diverged is not None:
                epoch, step = recorder.diverged
                raise InvalidArgumentError(
                    f"The loss became infinite or NaN at epoch {epoch}, batch {step}: the "
                    f"learning rate {config.learning_rate:g} is too high for {config.optimizer}. "
                    "Lower it (e.g. ten times) and train again."
                )
            recorder.restore_best()
            self.update(train_seconds=time.perf_counter() - t0, eta_seconds=0.0)
            trained = recorder.batches_done > 0
        else:
            trained = False
        if not trained:
            # Stopped before the first batch: there is no trained model to keep or test.
            self.model = None
        elif prepared.x_test is not None:
            test_loss, test_accuracy = model.evaluate(
                prepared.x_test,
                prepared.y_test,
                batch_size=max(config.batch_size, 256),
                verbose=0,
            )
            self.update(test_loss=float(test_loss), test_accuracy=float(test_accuracy))
        self.update(state="stopped" if self.stop_event.is_set() else "finished")


@functools.cache
def _progress_callback_class():
    """``_ProgressMixin`` as a ``keras.callbacks.Callback`` (made on first use)."""
    import keras

    return type("ProgressCallback", (_ProgressMixin, keras.callbacks.Callback), {})


def _progress_callback(worker: _Worker, n_train: int, config: TrainConfig):
    callback = _progress_callback_class()()
    callback.setup(worker, n_train, config)
    return callback


class _ProgressMixin:
    """Records progress into the worker: per-batch means over windows, per-epoch metrics,
    images/s and ETA; checks the stop flag after every batch; early stopping."""

    def setup(self, worker: _Worker, n_train: int, config: TrainConfig) -> None:
        self.worker = worker
        self.n_train = n_train
        self.config = config
        self.steps = worker.progress.steps_per_epoch
        self.window = worker.progress.batch_window
        self.best_loss = math.inf
        self.best_weights = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.val_seconds = 0.0
        self.batches_done = 0
        self.own_seconds = 0.0  #: time spent in this callback (its cost to training)
        self.diverged: tuple[int, int] | None = None  #: (epoch, batch) where the loss blew up

    # Keras calls these in the training thread.
    def on_train_begin(self, logs=None):
        self.train_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = time.perf_counter()
        self.mark_samples = 0
        self.mark_loss = 0.0
        self.mark_acc = 0.0
        self.worker.update(epoch=epoch + 1, step=0)

    def on_train_batch_end(self, batch, logs=None):
        t0 = time.perf_counter()
        self._batch_end(batch, logs)
        self.own_seconds += time.perf_counter() - t0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        self._epoch_end(epoch, logs)
        self.own_seconds += time.perf_counter() - t0
        self.worker.update(callback_seconds=self.own_seconds)

    def _batch_end(self, batch, logs) -> None:
        self.batches_done += 1
        step = batch + 1
        if self.worker.stop_event.is_set():
            self.model.stop_training = True
        if logs and not math.isfinite(float(logs.get("loss", 0.0))) and self.diverged is None:
            self.diverged = (self.epoch + 1, step)
            self.model.stop_training = True
        samples = min(step * self.config.batch_size, self.n_train)
        now = time.perf_counter()
        ips = samples / max(now - self.epoch_start, 1e-9)
        left_images = (self.config.epochs - self.epoch) * self.n_train - samples
        validations_left = self.config.epochs - self.epoch
        val_each = self.val_seconds / self.epoch if self.epoch else 0.0
        eta = left_images / ips + val_each * validations_left
        point = None
        if step % self.window == 0 or step == self.steps:
            # Keras' batch logs are running means since the epoch began; the mean over the
            # last window is recovered exactly from two running means weighted by images.
            logs = logs or {}
            loss, acc = float(logs.get("loss", math.nan)), float(logs.get("accuracy", math.nan))
            new = samples - self.mark_samples
            point = (
                self.epoch + step / self.steps,
                (samples * loss - self.mark_samples * self.mark_loss) / new,
                (samples * acc - self.mark_samples * self.mark_acc) / new,
            )
            self.mark_samples, self.mark_loss, self.mark_acc = samples, loss, acc
        w = self.worker
        with w.lock:
            p = w.progress
            p.step = step
            p.images_per_second = ips
            p.eta_seconds = eta
            if point is not None:
                p.batch_epoch.append(point[0])
                p.batch_loss.append(point[1])
                p.batch_accuracy.append(point[2])
            p.version += 1

    def on_test_begin(self, logs=None):
        self.test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.val_seconds += time.perf_counter() - self.test_start

    def _epoch_end(self, epoch, logs) -> None:
        logs = logs or {}
        now = time.perf_counter()
        w = self.worker
        with w.lock:
            p = w.progress
            p.train_loss.append(float(logs.get("loss", math.nan)))
            p.train_accuracy.append(float(logs.get("accuracy", math.nan)))
            if "val_loss" in logs:
                p.val_loss.append(float(logs["val_loss"]))
                p.val_accuracy.append(float(logs.get("val_accuracy", math.nan)))
            p.epoch_seconds.append(now - self.epoch_start)
            p.train_seconds = now - self.train_start
            p.version += 1
        if self.config.patience > 0 and not getattr(self.model, "stop_training", False):
            monitored = float(logs.get("val_loss", logs.get("loss", math.inf)))
            if monitored < self.best_loss:
                self.best_loss, self.best_epoch, self.bad_epochs = monitored, epoch + 1, 0
                self.best_weights = self.model.get_weights()
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= self.config.patience:
                    self.model.stop_training = True
                    w.update(stopped_early=True)

    def restore_best(self) -> None:
        """After early stopping, go back to the weights of the best epoch."""
        if self.worker.progress.stopped_early and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            self.worker.update(best_epoch=self.best_epoch)


# --------------------------------------------------------------------------------------------
# The handle
# --------------------------------------------------------------------------------------------


class TrainingJob:
    """One background training. Keep the handle (e.g. in session state) and poll it.

    ``model_builder()`` (or ``model_builder(seed=...)``) returns an uncompiled Keras model
    ending in a softmax over the classes; ``data`` is ``((x_train, y_train), (x_test,
    y_test))`` with images (N, H, W) or (N, H, W, C), uint8 in 0…255 or float in [0, 1],
    and integer labels; (x_test, y_test) may be (None, None). The model is compiled with
    sparse categorical cross-entropy and accuracy. ``callbacks`` are extra Keras callbacks.

    When the handle is garbage-collected (its session ended), the training stops.
    """

    def __init__(
        self,
        model_builder: Callable[..., Any],
        data,
        config: TrainConfig,
        *,
        slots: TrainingSlots | None = None,
        callbacks: Sequence[Any] = (),
    ):
        if not isinstance(config, TrainConfig):
            raise InvalidArgumentError("config must be a TrainConfig.")
        if not callable(model_builder):
            raise InvalidArgumentError("model_builder must be a function returning a model.")
        self.config = config
        self._worker = _Worker(
            model_builder, data, config, slots if slots is not None else default_slots(), callbacks
        )
        # Stops the training when this handle goes away; the worker never refers back to it.
        self._finalizer = weakref.finalize(self, self._worker.request_stop)

    def start(self) -> TrainingJob:
        """Start the thread (once); returns the job."""
        worker = self._worker
        if worker.thread is None:
            worker.thread = threading.Thread(target=worker.run, name="cnnlab-training", daemon=True)
            worker.thread.start()
        return self

    def stop(self) -> None:
        """End training at the next batch (or leave the queue); the model is kept."""
        self._worker.request_stop()

    def snapshot(self) -> TrainingProgress:
        return self._worker.snapshot()

    def wait(self, timeout: float | None = None) -> TrainingProgress:
        """Block until the job is done (or ``timeout`` seconds); returns a snapshot."""
        self._worker.done_event.wait(timeout)
        return self.snapshot()

    @property
    def started(self) -> bool:
        return self._worker.thread is not None

    @property
    def done(self) -> bool:
        return self._worker.done_event.is_set()

    @property
    def model(self):
        """The Keras model once built (trained as far as the job went), else None."""
        return self._worker.model


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


def save_model_bytes(model) -> bytes:
    """The model as the bytes of a ``.keras`` file (for a download button)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def load_model_bytes(data: bytes):
    """A Keras model from the bytes of a ``.keras`` file (``safe_mode=True``: no code runs).

    Raises ``InvalidModelError`` for anything that is not a loadable ``.keras`` file.
    """
    if not isinstance(data, bytes | bytearray) or not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidModelError(
            "This is not a .keras model file (a .keras file is a zip archive saved by Keras)."
        )
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(bytes(data))
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise InvalidModelError(
                f"The .keras file could not be loaded ({type(exc).__name__}: {exc}). Save the "
                "model again with Keras 3 and upload that file."
            ) from exc
