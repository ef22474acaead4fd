"""Training a Keras model in the background, with live progress, Stop and a slot limit.

A ``TrainingJob`` trains one model on a ``cnnlib.data.training_data.TrainingData`` (in-memory
arrays or image folders streamed with tf.data) in a child process of its own
(``cnnlib.training.task_process``: TensorFlow's memory goes back to the system when it ends), driven
by a daemon thread that never calls Streamlit; the page polls ``job.snapshot()`` (an
immutable ``TrainingProgress``) from a fragment. The thread, lock, stop flag, slot queue and
time limit come from ``cnnlib.training.tasks``. The model receives raw pixels (0…255) and owns its
preprocessing.

A training is a sequence of phases (``Phase``): from scratch is one phase; transfer
learning is a phase with a frozen backbone and a new head, then optionally a phase with the
top of the backbone unfrozen at a low learning rate. ``fit_phases`` is the one phase runner:
it trains a model on a ``TrainingData`` for a list of phases, recompiling between them, with
callbacks and Stop; every job composes it (``TrainingJob`` here, the own-images job in
``cnnlib.training.transfer``, the experiment through ``TrainingJob``). Keras' own
``EarlyStopping(restore_best_weights=True)`` and ``TerminateOnNaN`` stop a phase; the
progress callback only reports (into anything with ``update`` / ``append``: a task's worker).

With more than one GPU the model is built and trained under ``tf.distribute.MirroredStrategy``
(the batch scaled by the number of replicas); on a GPU that has fast float16 (compute
capability ≥ 7.0) builders that take ``dtype=`` build in ``mixed_float16`` with a float32
softmax, without touching Keras' process-wide policy.

Seeds are handled without Keras' process-wide ``set_random_seed`` where possible: the
split and the order of each epoch come from the data's seed; initial weights come from the
builder's ``seed`` argument when it has one (the presets do), otherwise the builder runs
under a lock right after ``keras.utils.set_random_seed``.

"Watching it learn": given ``watch=`` one image, the job copies the first Conv2D layer's
kernel and that image's feature maps in that layer at the end of every epoch into
``TrainingProgress.watch`` (a ``WatchSnapshot``), from where the model trains, so a page can
draw them next to the curves without touching the model.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cnnlib.core.checks import check_whole, is_whole
from cnnlib.core.errors import InvalidArgumentError, InvalidModelError
from cnnlib.data.training_data import ArrayData, TrainingData
from cnnlib.inspect.features import FeatureExtractor, first_conv_layer, layer_kernel
from cnnlib.inspect.health import (
    CAM_IMAGES,
    CamProbe,
    CamSnapshot,
    EpochHealth,
    LayerProbe,
    last_conv2d,
)
from cnnlib.models.layers import register_layers
from cnnlib.models.presets import PRESET_TRAINING
from cnnlib.training.control import TaskControl
from cnnlib.training.tasks import (
    FINAL_STATES,
    TaskHandle,
    TaskProgress,
    TaskWorker,
    TrainingSlots,
    default_slots,
)

__all__ = [
    "CAM_IMAGES",
    "FINAL_STATES",
    "HEALTH_IMAGES",
    "LR_SCHEDULES",
    "MAX_CURVE_POINTS",
    "OPTIMIZERS",
    "CamSnapshot",
    "FitResult",
    "Phase",
    "Reporter",
    "TrainConfig",
    "TrainingJob",
    "TrainingProgress",
    "TrainingSlots",
    "TrainingWorker",
    "WatchSnapshot",
    "cam_probe",
    "choose_strategy",
    "default_slots",
    "fit_phases",
    "health_batch",
    "health_callback",
    "load_model_bytes",
    "mixed_precision_helps",
    "new_stage",
    "save_model_bytes",
]

OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: At most this many points in the per-batch curves: each point is the mean over a window of
#: batches, the window chosen before training so that the whole run fits.
MAX_CURVE_POINTS = 300


# --------------------------------------------------------------------------------------------
# Configuration and progress
# --------------------------------------------------------------------------------------------


def _check_learning_rate(value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value <= 10):
        raise InvalidArgumentError(
            f"The learning rate must be above 0 (and at most 10); got {value}."
        )


@dataclass(frozen=True)
class Phase:
    """One stage of a training: ``epochs`` epochs at ``learning_rate`` (None: the config's).

    ``prepare(model)``, called before the model is (re)compiled for this phase, sets which
    layers train, e.g. freezes a backbone (``backbone.trainable = False``) or unfreezes its
    top block. ``name`` is shown with the progress ("Training the new head").
    """

    epochs: int
    learning_rate: float | None = None
    prepare: Callable[[Any], None] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        check_whole("epochs", self.epochs, 1, 1000)
        if self.learning_rate is not None:
            _check_learning_rate(self.learning_rate)
        if self.prepare is not None and not callable(self.prepare):
            raise InvalidArgumentError("A phase's prepare must be a function of the model.")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``optimizer`` "sgd" is SGD with momentum 0.9.

    ``train_size``, ``validation_split``: used only when the job is given arrays (the older
    ``((x_train, y_train), (x_test, y_test))`` form): keep a stratified, seeded subset of
    ``train_size`` images (None = all) and hold ``validation_split`` of them out for the
    per-epoch validation metrics. A ``TrainingData`` owns its split.
    ``patience``: stop a phase after this many epochs without a lower validation loss
    (Keras' ``EarlyStopping``) and keep the best weights (0 = no early stopping).
    ``lr_schedule``: "constant", or "cosine" (decays the learning rate to 0 over each phase).
    ``phases``: the stages of the training (see ``Phase``); empty = one phase of ``epochs``
    epochs at ``learning_rate`` (training from scratch).
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
    phases: tuple[Phase, ...] = ()

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InvalidArgumentError(
                f"The optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidArgumentError(
                f"The learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}."
            )
        _check_learning_rate(self.learning_rate)
        check_whole("batch_size", self.batch_size, 1, 65536)
        check_whole("epochs", self.epochs, 1, 1000)
        if self.train_size is not None and not is_whole(self.train_size, 1):
            raise InvalidArgumentError(
                f"The training-set size must be a positive whole number; got {self.train_size!r}."
            )
        if not 0.0 <= self.validation_split < 1.0:
            raise InvalidArgumentError(
                f"The validation split must be at least 0 and below 1; got {self.validation_split}."
            )
        if not is_whole(self.patience, 0):
            raise InvalidArgumentError(
                f"The patience must be 0 (off) or a number of epochs; got {self.patience!r}."
            )
        if not is_whole(self.seed, 0):
            raise InvalidArgumentError(f"The seed must be a whole number ≥ 0; got {self.seed!r}.")
        phases = tuple(self.phases)
        if not all(isinstance(p, Phase) for p in phases):
            raise InvalidArgumentError("Every phase must be a cnnlib.training.trainer.Phase.")
        object.__setattr__(self, "phases", phases)

    def lr_change_refusal(self) -> str | None:
        """Why the learning rate cannot be changed while this config trains (for the
        learner), or None when it can: a schedule sets it at every batch."""
        if self.lr_schedule != "constant":
            return (
                f"This training's learning rate follows the {self.lr_schedule} schedule, which "
                "sets it at every batch; choose the constant schedule to change it while "
                "training."
            )
        return None

    def plan(self) -> tuple[Phase, ...]:
        """The phases to run: ``phases``, or one phase of ``epochs`` at ``learning_rate``."""
        return self.phases or (Phase(self.epochs),)

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.plan())

    def with_changes(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """The settings a preset is meant to be trained with (``PRESET_TRAINING``), every
        field included (e.g. the fast recipe's cosine schedule), then ``overrides``."""

        if preset not in PRESET_TRAINING:
            raise InvalidArgumentError(
                f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_TRAINING)}."
            )
        return cls(**{**PRESET_TRAINING[preset], **overrides})


@dataclass(frozen=True, eq=False)
class WatchSnapshot:
    """The first Conv2D layer at the end of epoch ``epoch`` (1-based, across phases).

    ``filters``: its kernel (kh, kw, C_in, F) float32; ``maps``: the watched image's feature
    maps in that layer (H, W, F) float32 (after its activation); ``layer``: its name.
    """

    epoch: int
    layer: str
    filters: np.ndarray
    maps: np.ndarray


@dataclass(frozen=True)
class TrainingProgress(TaskProgress):
    """An immutable copy of a job's progress (all times in seconds).

    ``epoch`` is 1-based and counts across phases: the epoch in progress, or the last one
    run; ``epochs`` is the total planned; ``step`` counts the batches done in the epoch.
    ``phase`` (1-based) of ``phases``, named ``phase_name``. The per-batch curves hold the
    mean loss and accuracy over windows of ``batch_window`` batches, at positions
    ``batch_epoch`` measured in epochs (1.5 = half way through the second epoch). Per-epoch
    tuples have one value per finished epoch (no validation value for an epoch cut short
    by Stop).
    """

    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    phase: int = 0
    phases: int = 1
    phase_name: str = ""
    images_per_second: float = 0.0
    eta_seconds: float | None = None
    train_seconds: float = 0.0  #: time spent in the training loop (with validation)
    callback_seconds: float = 0.0  #: of which in the live-progress callback
    batch_epoch: tuple[float, ...] = ()
    batch_loss: tuple[float, ...] = ()
    batch_accuracy: tuple[float, ...] = ()
    batch_window: int = 1
    train_loss: tuple[float, ...] = ()
    train_accuracy: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    val_accuracy: tuple[float, ...] = ()
    epoch_seconds: tuple[float, ...] = ()
    best_epoch: int | None = None  #: epoch whose weights were kept (early stopping)
    stopped_early: bool = False
    test_loss: float | None = None
    test_accuracy: float | None = None
    train_samples: int = 0
    val_samples: int = 0
    test_samples: int = 0
    class_names: tuple[str, ...] = ()
    device: str = ""  #: "CPU", "GPU:0 (name)", "2 GPUs (MirroredStrategy)", + mixed precision
    replicas: int = 1
    tf_version: str = ""
    #: The first Conv2D layer's filters and the watched image's maps at the last epoch end
    #: (``TrainingJob(watch=...)``), else None.
    watch: WatchSnapshot | None = None
    batches_done: int = 0  #: batches trained so far, over every epoch and phase
    #: Learning-rate changes asked for while training (``TaskHandle.set_learning_rate``):
    #: (batches done before the first batch at the new rate, the rate read back from the
    #: optimizer after that batch).
    lr_changes: tuple[tuple[int, float], ...] = ()
    #: Each layer's health at each epoch end (``TrainingJob(health=True)``), one per epoch.
    health: tuple[EpochHealth, ...] = ()
    #: Grad-CAM of ``CAM_IMAGES`` fixed validation images at the last epoch end (with
    #: ``health``, for a model with a Conv2D layer), else None.
    cams: CamSnapshot | None = None

    @property
    def fraction(self) -> float:
        """Share of all planned batches done, 0…1."""
        total = self.epochs * self.steps_per_epoch
        if total <= 0:
            return 1.0 if self.state == "finished" else 0.0
        return min(1.0, ((max(self.epoch, 1) - 1) * self.steps_per_epoch + self.step) / total)


#: The fields of ``TrainingProgress`` that describe one stage of a training (its epochs,
#: batches and curves), as opposed to the task's and the data's.
STAGE_FIELDS = (
    "epoch",
    "epochs",
    "step",
    "batch_epoch",
    "batch_loss",
    "batch_accuracy",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",
    "best_epoch",
    "stopped_early",
    "batches_done",
    "lr_changes",
    "health",
    "cams",
)


def new_stage(**changes: Any) -> dict[str, Any]:
    """The changes that start a new stage of a training: every ``STAGE_FIELDS`` field back to
    its default, then ``changes`` (for ``TaskWorker.update``, e.g. a fine-tuning after the
    head's epochs: ``worker.update(**new_stage(stage="fine-tune"))``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingProgress)}
    return {**{name: defaults[name] for name in STAGE_FIELDS}, **changes}


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


def choose_strategy(devices: Sequence[str] | None = None):
    """(tf.distribute strategy, description) for training.

    ``devices`` None: ``MirroredStrategy`` over every GPU when there is more than one, else
    the default strategy (one GPU or the CPU). A list of device names (e.g. ["/cpu:0",
    "/cpu:1"] for logical CPUs in a test) mirrors over exactly those when there are two or
    more.
    """
    import tensorflow as tf

    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPUs (MirroredStrategy)"
        return tf.distribute.get_strategy(), _device_description()
    devices = [str(d) for d in devices]
    if len(devices) < 2:
        raise InvalidArgumentError("Mirroring needs at least two devices.")
    kind = "GPUs" if all("gpu" in d.lower() for d in devices) else "devices"
    return tf.distribute.MirroredStrategy(devices), f"{len(devices)} {kind} (MirroredStrategy)"


def mixed_precision_helps() -> bool:
    """True on a GPU with fast float16 (compute capability ≥ 7.0: Volta and later), unless
    ``$CNNLAB_MIXED_PRECISION`` is "0"."""
    import tensorflow as tf

    if os.environ.get("CNNLAB_MIXED_PRECISION", "").strip() == "0":
        return False
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    try:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0)
        )
    except Exception:  # details are optional
        return False
    return tuple(capability or (0, 0)) >= (7, 0)


_BUILD_LOCK = threading.Lock()


def _takes(builder: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


def _build_model(builder: Callable[..., Any], seed: int, dtype: str | None = None):
    """Call the builder with ``seed=`` (and ``dtype=`` when given) if it takes them; without
    a seed argument, under the global-seed lock."""
    import keras

    kwargs: dict[str, Any] = {}
    if dtype is not None and _takes(builder, "dtype"):
        kwargs["dtype"] = dtype
    if _takes(builder, "seed"):
        model = builder(seed=seed, **kwargs)
    else:
        with _BUILD_LOCK:
            keras.utils.set_random_seed(seed)
            model = builder(**kwargs)
    if not isinstance(model, keras.Model):
        raise InvalidModelError(
            f"The model builder returned {type(model).__name__}, not a Keras model."
        )
    return model


def _optimizer(config: TrainConfig, learning_rate: float, total_steps: int, mixed: bool):
    import keras

    lr: Any = float(learning_rate)
    if config.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps))
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=lr)
    elif config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate=lr)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed else optimizer


def _check_model(model, data: TrainingData) -> None:
    """The model must take the data's images and have an output per class."""
    n_outputs = int(model.output_shape[-1])
    n_classes = len(data.class_names)
    if n_classes > n_outputs:
        raise InvalidArgumentError(
            f"The labels go up to {n_classes - 1} ({n_classes} classes) but the model has "
            f"only {n_outputs} outputs (classes 0 to {n_outputs - 1})."
        )
    expected = tuple(model.input_shape[1:])
    given = tuple(data.input_shape)
    if len(expected) != len(given) or any(
        e is not None and e != g for e, g in zip(expected, given, strict=False)
    ):
        raise InvalidModelError(
            f"The model takes images of shape {expected} but the data has {given}: build the "
            "model for the data's image size and channels."
        )


def _phase_seed(seed: int, index: int) -> int:
    """The data seed of phase ``index``: a different epoch order in each phase."""
    return seed + 7919 * index


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


@functools.cache
def _callback_classes():
    """``_StopMixin`` and ``_ProgressMixin`` as ``keras.callbacks.Callback`` (on first use)."""
    import keras

    return (
        type("StopOnRequest", (_StopMixin, keras.callbacks.Callback), {}),
        type("ProgressCallback", (_ProgressMixin, keras.callbacks.Callback), {}),
        type("WatchCallback", (_WatchMixin, keras.callbacks.Callback), {}),
        type("ControlCallback", (_ControlMixin, keras.callbacks.Callback), {}),
        type("HealthCallback", (_HealthMixin, keras.callbacks.Callback), {}),
    )


#: Images of the fixed batch on which each layer's health is measured every epoch.
HEALTH_IMAGES = 64


class _HealthMixin:
    """At each epoch end, each layer's health on one fixed batch (``LayerProbe``), appended
    to the progress's ``health``, then (with a ``CamProbe``) the Grad-CAM of its fixed images
    as the progress's ``cams``; ``before()`` runs first (e.g. copies a head's weights into
    the model the Grad-CAM reads)."""

    def setup(
        self,
        report: Reporter,
        probe: LayerProbe,
        cams: CamProbe | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.report, self.probe, self.cams, self.before = report, probe, cams, before

    def on_epoch_end(self, epoch, logs=None):
        if self.before is not None:
            self.before()
        self.report.append(health=self.probe.measure(epoch + 1))
        if self.cams is not None:
            self.report.update(cams=self.cams.measure(epoch + 1))


def health_callback(
    report: Reporter,
    probe: LayerProbe,
    cams: CamProbe | None = None,
    *,
    before: Callable[[], None] | None = None,
):
    """A Keras callback that, at each epoch end, runs ``before()`` (when given), appends
    ``probe.measure(epoch)`` to ``report``'s ``health`` and sets its ``cams`` to
    ``cams.measure(epoch)`` (when given); epochs 1-based."""
    callback = _callback_classes()[4]()
    callback.setup(report, probe, cams, before)
    return callback


def cam_probe(model, x: np.ndarray, y: np.ndarray) -> CamProbe | None:
    """A ``CamProbe`` of ``CAM_IMAGES`` images of the fixed batch (x, y), spread over the
    classes, or None for a model without a Conv2D layer."""
    if last_conv2d(model) is None:
        return None
    return CamProbe(model, x, y, CAM_IMAGES)


def health_batch(data: TrainingData, size: int = HEALTH_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch of a training's health: the first ``size`` validation images (training
    images when there is no validation split): ((n, H, W, C) float32, (n,) int64)."""
    split = "validation" if data.size("validation") else "train"
    x, y = next(iter(data.batches(split, size)))
    return np.asarray(x, np.float32), np.asarray(y, np.int64)


class _ControlMixin:
    """Pause, Step and a new learning rate (a ``cnnlib.training.control.TaskControl``).

    Before each batch: waits while paused (reporting ``paused``; Stop, and so the time limit,
    still end the wait, after which Keras runs that one batch and stops), spends one Step
    while paused, and sets the optimizer's learning rate when a new one was asked for. After
    the first batch at a new rate, appends (batches done before it, the rate read back from
    the optimizer) to ``lr_changes``.
    """

    def setup(self, control: TaskControl, stop: threading.Event, report: Reporter) -> None:
        self.control, self.stop_event, self.report = control, stop, report
        self.batches = 0  #: batches done, over every phase
        self.changed_at: int | None = None

    def _hold(self, paused: bool) -> None:
        self.report.update(paused=paused)

    def on_train_batch_begin(self, batch, logs=None):
        if not self.control.wait_turn(self.stop_event, self._hold):
            self.model.stop_training = True
            return
        learning_rate = self.control.take_learning_rate()
        if learning_rate is not None:
            self.model.optimizer.learning_rate = learning_rate
            self.changed_at = self.batches

    def on_train_batch_end(self, batch, logs=None):
        if self.changed_at is not None:
            import keras

            value = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.report.append(lr_changes=(self.changed_at, value))
            self.changed_at = None
        self.batches += 1


class _WatchMixin:
    """At each epoch end, copies the first Conv2D layer's kernel and the watched image's
    maps in it (one forward pass of one image through a sub-model built once) into the
    progress. Runs in the training thread; the page only reads the frozen copy."""

    def setup(self, report: Reporter, model: Any, image: np.ndarray, layer: str) -> None:
        self.report = report
        self.image = image  # (H, W, C) float32 raw pixels
        self.layer = layer
        self.extractor = FeatureExtractor(model, [layer])
        if tuple(image.shape) != tuple(self.extractor.input_shape):
            raise InvalidArgumentError(
                f"The image to watch is {image.shape} but the model takes "
                f"{tuple(self.extractor.input_shape)}: watch one of the training images."
            )

    def on_epoch_end(self, epoch, logs=None):
        model = self.extractor.model
        filters = layer_kernel(model, self.layer)
        maps = np.array(self.extractor.run(self.image)[self.layer], dtype=np.float32)
        filters.flags.writeable = maps.flags.writeable = False  # shared with every reader
        self.report.update(watch=WatchSnapshot(epoch + 1, self.layer, filters, maps))


class _StopMixin:
    """Ends training (and any evaluation in progress) at the next batch once Stop is asked;
    an epoch cut short keeps no validation metrics. Goes first in the callback list."""

    def setup(self, stop_event: threading.Event) -> None:
        self.stop_event = stop_event

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_event.is_set():
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        if self.stop_event.is_set():
            self.model.stop_evaluating = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_event.is_set() and logs:
            for key in [k for k in logs if k.startswith("val_")]:
                del logs[key]  # a validation cut short: its numbers mean nothing


class _ProgressMixin:
    """Reports (``Reporter``): per-batch means over windows, per-epoch metrics, images/s,
    ETA, and the first batch whose loss was NaN or infinite. Stops nothing."""

    def setup(
        self,
        report: Reporter,
        n_train: int,
        batch_size: int,
        total_epochs: int,
        steps: int,
        window: int,
    ) -> None:
        self.report = report
        self.n_train = n_train
        self.batch_size = batch_size
        self.total_epochs = total_epochs
        self.steps = steps
        self.window = window
        self.val_seconds = 0.0
        self.val_epochs = 0
        self.batches_done = 0
        self.own_seconds = 0.0  #: time spent in this callback (its cost to training)
        self.diverged: tuple[int, int] | None = None  #: (epoch, batch) where the loss blew up
        self.train_start: float | None = None

    # Keras calls these in the training thread.
    def on_train_begin(self, logs=None):
        if self.train_start is None:  # the first phase
            self.train_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = time.perf_counter()
        self.mark_samples = 0
        self.mark_loss = 0.0
        self.mark_acc = 0.0
        self.report.update(epoch=epoch + 1, step=0)

    def on_train_batch_end(self, batch, logs=None):
        t0 = time.perf_counter()
        self._batch_end(batch, logs or {})
        self.own_seconds += time.perf_counter() - t0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        self._epoch_end(logs or {})
        self.own_seconds += time.perf_counter() - t0
        self.report.update(callback_seconds=self.own_seconds)

    def on_test_begin(self, logs=None):
        self.test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.val_seconds += time.perf_counter() - self.test_start
        self.val_epochs += 1

    def _batch_end(self, batch, logs) -> None:
        self.batches_done += 1
        step = batch + 1
        loss = float(logs.get("loss", math.nan))
        if "loss" in logs and not math.isfinite(loss) and self.diverged is None:
            self.diverged = (self.epoch + 1, step)
        samples = min(step * self.batch_size, self.n_train)
        now = time.perf_counter()
        ips = samples / max(now - self.epoch_start, 1e-9)
        left_images = (self.total_epochs - self.epoch) * self.n_train - samples
        validations_left = self.total_epochs - self.epoch
        val_each = self.val_seconds / self.val_epochs if self.val_epochs else 0.0
        changes: dict[str, Any] = {
            "step": step,
            "batches_done": self.batches_done,
            "images_per_second": ips,
            "eta_seconds": left_images / ips + val_each * validations_left,
        }
        if step % self.window == 0 or step == self.steps:
            # Keras' batch logs are running means since the epoch began; the mean over the
            # last window is recovered exactly from two running means weighted by images.
            acc = float(logs.get("accuracy", math.nan))
            new = samples - self.mark_samples
            point = {
                "batch_epoch": self.epoch + step / self.steps,
                "batch_loss": (samples * loss - self.mark_samples * self.mark_loss) / new,
                "batch_accuracy": (samples * acc - self.mark_samples * self.mark_acc) / new,
            }
            self.mark_samples, self.mark_loss, self.mark_acc = samples, loss, acc
            self.report.append(**point)
        self.report.update(**changes)

    def _epoch_end(self, logs) -> None:
        now = time.perf_counter()
        items = {
            "train_loss": float(logs.get("loss", math.nan)),
            "train_accuracy": float(logs.get("accuracy", math.nan)),
            "epoch_seconds": now - self.epoch_start,
        }
        if "val_loss" in logs:
            items["val_loss"] = float(logs["val_loss"])
            items["val_accuracy"] = float(logs.get("val_accuracy", math.nan))
        self.report.append(**items)
        self.report.update(train_seconds=now - (self.train_start or now))


# --------------------------------------------------------------------------------------------
# The phase runner
# --------------------------------------------------------------------------------------------


class Reporter(Protocol):
    """Where a training reports its progress: a ``cnnlib.training.tasks.TaskWorker`` (its
    ``update`` replaces fields of its ``TrainingProgress``, ``append`` adds to tuple fields)."""

    def update(self, **changes: Any) -> None: ...

    def append(self, **items: Any) -> None: ...


class _Discard:
    """A ``Reporter`` that keeps nothing (``fit_phases`` without ``report``)."""

    def update(self, **changes: Any) -> None:
        pass

    def append(self, **items: Any) -> None:
        pass


@dataclass(frozen=True)
class FitResult:
    """What ``fit_phases`` did: ``batches`` trained over all phases (0: stopped before the
    first, so nothing was learned); ``stopped_early``: Keras' ``EarlyStopping`` ended a phase,
    keeping the weights of epoch ``best_epoch`` (1-based, across the phases)."""

    batches: int
    stopped_early: bool = False
    best_epoch: int | None = None


def stop_callback(stop: threading.Event):
    """A Keras callback that ends ``fit`` and ``evaluate`` at the next batch once ``stop`` is
    set (an epoch cut short keeps no validation metrics). Put it first in the list."""
    stopper = _callback_classes()[0]()
    stopper.setup(stop)
    return stopper


def fit_phases(
    model: Any,
    data: TrainingData,
    phases: Sequence[Phase],
    config: TrainConfig,
    *,
    callbacks: Sequence[Any] = (),
    stop: threading.Event | None = None,
    report: Reporter | None = None,
    strategy: Any = None,
    mixed: bool = False,
    control: TaskControl | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` for each of ``phases`` in turn: the one phase runner.

    Before each phase, ``phase.prepare(model)`` (e.g. unfreeze a block), then the model is
    compiled (under ``strategy``'s scope: None = the default strategy) with ``config``'s
    optimizer at the phase's learning rate (or the config's), sparse categorical
    cross-entropy and accuracy, and fitted for ``phase.epochs`` epochs on ``data``'s "train"
    batches (``config.batch_size`` per replica, a different seeded order in each phase),
    validated on its "validation" split when it has one. ``callbacks``: extra Keras callbacks.
    Guards: ``stop`` (ends the phase at its next batch and skips the rest), Keras'
    ``TerminateOnNaN`` and, with ``config.patience``, ``EarlyStopping(restore_best_weights=
    True)``. ``report`` receives the live progress (``TrainingProgress`` fields: the planned
    epochs and batches, per-batch windows, per-epoch metrics, images/s, ETA). ``mixed``: wrap
    the optimizer for mixed precision. ``control``: Pause, Step and a new learning rate
    (a task's ``TaskControl``; each phase starts at its own learning rate). Epochs are
    counted from 1 across ``phases``.

    Raises ``InvalidArgumentError`` when there are no training images or the loss became
    infinite or NaN (with the learning rate to lower).
    """
    import keras
    import tensorflow as tf

    stop = stop if stop is not None else threading.Event()
    report = report if report is not None else _Discard()
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    phases = tuple(phases)
    n_train, n_val = data.size("train"), data.size("validation")
    if n_train < 1:
        raise InvalidArgumentError("There are no training images: add some and try again.")
    batch = config.batch_size * int(strategy.num_replicas_in_sync)  # batch_size per replica
    steps = math.ceil(n_train / batch)
    total_epochs = sum(p.epochs for p in phases)
    window = max(1, math.ceil(steps * total_epochs / MAX_CURVE_POINTS))
    report.update(
        epochs=total_epochs,
        phases=len(phases),
        steps_per_epoch=steps,
        train_samples=n_train,
        val_samples=n_val,
        batch_window=window,
        epoch=1,
    )
    progress_class, control_class = _callback_classes()[1], _callback_classes()[3]
    stopper = stop_callback(stop)
    controls = []
    if control is not None:
        controls.append(control_class())
        controls[0].setup(control, stop, report)
    recorder = progress_class()
    recorder.setup(report, n_train, batch, total_epochs, steps, window)
    validation = data.batches("validation", max(batch, 256)) if n_val else None
    first, stopped_early, best_epoch = 0, False, None
    for index, phase in enumerate(phases):
        if stop.is_set():
            break
        report.update(phase=index + 1, phase_name=phase.name)
        if phase.prepare is not None:
            phase.prepare(model)
        learning_rate = phase.learning_rate or config.learning_rate
        with strategy.scope():
            model.compile(
                optimizer=_optimizer(config, learning_rate, steps * phase.epochs, mixed),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
        guards = [stopper, *controls, recorder, keras.callbacks.TerminateOnNaN()]
        early = None
        if config.patience > 0:
            early = keras.callbacks.EarlyStopping(
                monitor="val_loss" if n_val else "loss",
                patience=config.patience,
                restore_best_weights=True,
            )
            guards.append(early)
        model.fit(
            data.batches("train", batch, epochs=phase.epochs, seed=_phase_seed(config.seed, index)),
            epochs=first + phase.epochs,
            initial_epoch=first,
            steps_per_epoch=steps,
            validation_data=validation,
            callbacks=[*guards, *callbacks],
            shuffle=False,  # each epoch is already in its own seeded order
            verbose=0,
        )
        if recorder.diverged is not None:
            epoch, step = recorder.diverged
            raise InvalidArgumentError(
                f"The loss became infinite or NaN at epoch {epoch}, batch {step}: the "
                f"learning rate {learning_rate:g} is too high for {config.optimizer}. "
                "Lower the learning rate (e.g. ten times) and train again."
            )
        if early is not None and early.stopped_epoch > 0:
            stopped_early, best_epoch = True, early.best_epoch + 1
            report.update(stopped_early=True, best_epoch=best_epoch)
        first += phase.epochs
    report.update(eta_seconds=0.0)
    return FitResult(recorder.batches_done, stopped_early, best_epoch)


def evaluate_test(
    model: Any,
    data: TrainingData,
    *,
    stop: threading.Event | None = None,
    report: Reporter | None = None,
    batch_size: int = 256,
) -> tuple[float, float] | None:
    """(loss, accuracy) of a compiled ``model`` on ``data``'s "test" split, also reported as
    ``test_loss`` / ``test_accuracy``; None when there is no test split or ``stop`` cut the
    evaluation short (its numbers would mean nothing)."""
    stop = stop if stop is not None else threading.Event()
    if not data.size("test") or stop.is_set():
        return None
    batches = data.batches("test", batch_size)
    loss, accuracy = model.evaluate(batches, callbacks=[stop_callback(stop)], verbose=0)
    if stop.is_set():
        return None
    if report is not None:
        report.update(test_loss=float(loss), test_accuracy=float(accuracy))
    return float(loss), float(accuracy)


# --------------------------------------------------------------------------------------------
# The workers
# --------------------------------------------------------------------------------------------


class TrainingWorker(TaskWorker[TrainingProgress]):
    """A task whose work trains a Keras model (``self.model``): it may run in a child process,
    from where the model comes back as ``.keras`` bytes; a failed training keeps no model.
    Subclasses implement ``work()`` by composing ``fit_phases``."""

    thread_name = "cnnlab-training"
    process_safe = True

    def __init__(self, progress: TrainingProgress, **task: Any):
        super().__init__(progress, **task)
        self.model = None

    def failure_message(self, exc: Exception) -> str:
        message = super().failure_message(exc)
        if message.startswith(type(exc).__name__ + ":"):
            message = "Training failed: " + message
        return message

    def on_failure(self) -> None:
        self.model = None  # a failed training leaves no model to use

    def export_result(self) -> dict[str, Any]:
        """In the child: the trained model as ``.keras`` bytes (None when there is none)."""
        return {"model": None if self.model is None else save_model_bytes(self.model)}

    def import_result(self, result: dict[str, Any]) -> None:
        """In the parent: the child's model, loaded from its ``.keras`` bytes."""
        data = result["model"]
        self.model = None if data is None else load_model_bytes(data)

    def describe_device(self, strategy: Any, device: str, mixed: bool) -> None:
        """Report the device the training runs on (``choose_strategy``'s description), the
        replicas and TensorFlow's version."""
        import tensorflow as tf

        self.update(
            device=device + (", mixed precision" if mixed else ""),
            replicas=int(strategy.num_replicas_in_sync),
            tf_version=tf.__version__,
        )


class _JobWorker(TrainingWorker):
    """``TrainingJob``'s side: build the model, ``fit_phases``, test. No link to the handle."""

    def __init__(
        self,
        builder,
        data,
        config: TrainConfig,
        slots: TrainingSlots,
        callbacks,
        *,
        max_seconds: float | None = None,
        devices: Sequence[str] | None = None,
        watch: np.ndarray | None = None,
        isolate: bool | None = None,
        health: bool = False,
    ):
        super().__init__(
            TrainingProgress(epochs=config.total_epochs, phases=len(config.plan())),
            slots=slots,
            max_seconds=max_seconds,
            isolate=isolate,
        )
        self.builder = builder
        self.data = data
        self.config = config
        self.extra_callbacks = list(callbacks)
        self.devices = devices
        self.watch = watch
        self.health = health

    def on_exit(self) -> None:
        self.data = None  # free the data; the model stays

    def _watcher(self, model) -> list:
        """[the watch callback] when an image is watched and the model has a Conv2D, else []."""
        if self.watch is None:
            return []
        layer = first_conv_layer(model)
        if layer is None:
            return []
        watcher = _callback_classes()[2]()
        watcher.setup(self, model, self.watch, layer)
        return [watcher]

    def _health(self, model, data: TrainingData) -> list:
        """[the health callback] when asked for, else []."""
        if not self.health:
            return []
        x, y = health_batch(data)
        return [health_callback(self, LayerProbe(model, x, y), cam_probe(model, x, y))]

    def _data(self) -> TrainingData:
        data = self.data
        if isinstance(data, TrainingData):
            return data
        config = self.config
        return ArrayData.from_tuple(
            data,
            validation_split=config.validation_split,
            train_size=config.train_size,
            seed=config.seed,
        )

    def work(self) -> None:
        config = self.config
        data = self._data()
        self.data = None
        strategy, device = choose_strategy(self.devices)
        mixed = mixed_precision_helps()
        self.describe_device(strategy, device, mixed)
        self.update(class_names=tuple(data.class_names), test_samples=data.size("test"))
        with strategy.scope():
            model = _build_model(self.builder, config.seed, "mixed_float16" if mixed else None)
        _check_model(model, data)
        self.model = model
        fitted = fit_phases(
            model,
            data,
            config.plan(),
            config,
            callbacks=[*self._watcher(model), *self._health(model, data), *self.extra_callbacks],
            stop=self.stop_event,
            report=self,
            strategy=strategy,
            mixed=mixed,
            control=self.control,
        )
        if fitted.batches == 0:
            # Stopped before the first batch: there is no trained model to keep or test.
            self.model = None
            return
        replicas = int(strategy.num_replicas_in_sync)
        batch = max(config.batch_size * replicas, 256)
        evaluate_test(model, data, stop=self.stop_event, report=self, batch_size=batch)


# --------------------------------------------------------------------------------------------
# The handle
# --------------------------------------------------------------------------------------------


def _watch_image(image) -> np.ndarray | None:
    """A watched image as (H, W, C) float32 raw pixels (a copy), or None."""
    if image is None:
        return None
    x = np.array(image, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or min(x.shape) < 1 or x.size > 4096 * 4096 or not np.isfinite(x).all():
        raise InvalidArgumentError(
            f"The image to watch must be one finite (H, W) or (H, W, C) image; got shape {x.shape}."
        )
    return x


class TrainingJob(TaskHandle[TrainingProgress]):
    """One background training. Keep the handle (e.g. in session state) and poll it.

    ``model_builder()`` (or ``model_builder(seed=...)``, and ``dtype=`` for mixed precision
    when it takes one) returns an uncompiled Keras model that takes RAW pixels (it owns its
    rescaling) and ends in a softmax over the classes. ``data``: a ``TrainingData`` (e.g.
    ``ArrayData``), or the older ``((x_train, y_train), (x_test, y_test))`` arrays, split by
    the config's ``train_size``/``validation_split``; (x_test, y_test) may be (None, None).
    The model is compiled with sparse categorical cross-entropy and accuracy for each phase.
    ``callbacks`` are extra Keras callbacks. ``max_seconds``: wall-clock limit (None:
    ``budgets().training_seconds``, 900 s by default). ``devices``: mirror over these device
    names (None: every GPU when there are several). ``watch``: one raw image (H, W) or
    (H, W, C) whose first-Conv2D feature maps, with that layer's filters, are copied into
    ``snapshot().watch`` at every epoch end (a ``WatchSnapshot``; nothing for a model
    without a Conv2D layer). ``health``: measure each layer's health on a fixed batch of
    ``HEALTH_IMAGES`` validation images at every epoch end (``snapshot().health``), and the
    Grad-CAM of ``CAM_IMAGES`` of them, spread over the classes (``snapshot().cams``).

    ``isolate``: train in a child process (``cnnlib.training.task_process``), so that TensorFlow's
    memory is returned when it ends; None: yes unless ``$CNNLAB_TRAINING_PROCESS`` is "0".
    The model, ``callbacks`` and ``model_builder`` must then pickle (module-level functions
    or ``functools.partial`` of them), the callbacks run in the child, and ``model`` is the
    trained model loaded back in this process once the job is done (None while it runs).

    ``start()`` raises ``cnnlib.training.tasks.ServerBusyError`` when the slot queue is full.

    When the handle is garbage-collected (its session ended), the training stops.
    """

    def __init__(
        self,
        model_builder: Callable[..., Any],
        data: TrainingData | tuple,
        config: TrainConfig,
        *,
        slots: TrainingSlots | None = None,
        callbacks: Sequence[Any] = (),
        max_seconds: float | None = None,
        devices: Sequence[str] | None = None,
        watch: np.ndarray | None = None,
        isolate: bool | None = None,
        health: bool = False,
    ):
        if not isinstance(config, TrainConfig):
            raise InvalidArgumentError("config must be a TrainConfig.")
        if not callable(model_builder):
            raise InvalidArgumentError("model_builder must be a function returning a model.")
        self.config = config
        super().__init__(
            _JobWorker(
                model_builder,
                data,
                config,
                slots if slots is not None else default_slots(),
                callbacks,
                max_seconds=max_seconds,
                devices=devices,
                watch=_watch_image(watch),
                isolate=isolate,
                health=health,
            )
        )

    def set_learning_rate(self, value: float) -> float:
        """Train at ``value`` from the next batch on (``TaskHandle.set_learning_rate``).
        Raises ``InvalidArgumentError`` for a bad value, or when the config's learning rate
        follows a schedule (``TrainConfig.lr_change_refusal``)."""
        refusal = self.config.lr_change_refusal()
        if refusal:
            raise InvalidArgumentError(refusal)
        return super().set_learning_rate(value)

    @property
    def model(self):
        """The Keras model trained as far as the job went, else None. In a child process
        (``isolate``) it arrives when the job is done; in the thread, once it is built."""
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
    """The Keras model in ``.keras`` bytes this project saved (``save_model_bytes``), e.g. in
    a training's child process. Not for uploads: those go through ``cnnlib.uploads.model_files``."""
    import keras

    register_layers()  # a model may hold CNN Lab's own layers (CaffePreprocess)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path)
