"""The translation experiment: why convnets beat dense networks on images.

A dense network learns one weight per pixel, so a digit moved by a few pixels lands on
weights that never saw it. A convnet slides the same small filters everywhere and pools
their answers, so it still recognises the moved digit. The experiment trains a dense
baseline and a convnet on the same centred digits, then measures both on test digits
shifted by 0, 1, 2, … pixels.

``shift_images`` and ``shifted_accuracy`` are pure NumPy (plus a model's ``predict`` on raw
pixels); ``TranslationExperiment`` (a ``cnnlib.training.tasks`` background task) trains both models
one after the other through ``cnnlib.training.trainer.TrainingJob`` and never touches Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.training_data import ArrayData
from cnnlib.training.evaluation import accuracy, predict_probabilities
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker
from cnnlib.training.trainer import TrainingJob

__all__ = [
    "DIRECTIONS",
    "ExperimentProgress",
    "TranslationExperiment",
    "TranslationResult",
    "shift_images",
    "shifted_accuracy",
    "shifted_test_set",
]

#: How the test digits are moved: every digit in one direction, or each in a random one of
#: the four (up, down, left, right; seeded, the same for every model).
DIRECTIONS: tuple[str, ...] = ("random", "right", "left", "down", "up")
_STEPS: dict[str, tuple[int, int]] = {
    "right": (0, 1),
    "left": (0, -1),
    "down": (1, 0),
    "up": (-1, 0),
}


def shift_images(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move every image ``dy`` pixels down and ``dx`` right (negative: up / left).

    ``x``: (N, H, W) or (N, H, W, C), any dtype. Pixels moved out of the frame are lost and
    the uncovered border is filled with 0 (background); nothing wraps around.
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise InvalidArgumentError(f"Expected images (N, H, W) or (N, H, W, C), got {x.shape}.")
    dy, dx = int(dy), int(dx)
    out = np.zeros_like(x)
    height, width = x.shape[1], x.shape[2]
    if abs(dy) >= height or abs(dx) >= width:
        return out
    src_rows = slice(max(0, -dy), height - max(0, dy))
    dst_rows = slice(max(0, dy), height - max(0, -dy))
    src_cols = slice(max(0, -dx), width - max(0, dx))
    dst_cols = slice(max(0, dx), width - max(0, -dx))
    out[:, dst_rows, dst_cols] = x[:, src_rows, src_cols]
    return out


def shifted_test_set(
    x: np.ndarray, shift: int, *, direction: str = "random", seed: int = 0
) -> np.ndarray:
    """The test images moved by ``shift`` pixels (same shape and dtype as ``x``).

    ``direction``: one of ``DIRECTIONS``; "random" picks up/down/left/right per image with
    ``seed`` (the same ``seed`` gives the same directions, so both models see the same set).
    """
    if direction not in DIRECTIONS:
        raise InvalidArgumentError(
            f"Unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}."
        )
    if shift < 0:
        raise InvalidArgumentError(f"The shift must be 0 or more pixels, got {shift}.")
    x = np.asarray(x)
    if direction != "random":
        dy, dx = _STEPS[direction]
        return shift_images(x, dy * shift, dx * shift)
    choice = np.random.default_rng(seed).integers(0, 4, size=len(x))
    out = np.empty_like(x)
    for k, name in enumerate(("right", "left", "down", "up")):
        members = choice == k
        if members.any():
            dy, dx = _STEPS[name]
            out[members] = shift_images(x[members], dy * shift, dx * shift)
    return out


def shifted_accuracy(
    model,
    x: np.ndarray,
    y: np.ndarray,
    shifts: list[int] | tuple[int, ...] | range,
    *,
    direction: str = "random",
    seed: int = 0,
) -> list[float]:
    """The model's accuracy on the test images moved by each of ``shifts`` pixels."""

    y = np.asarray(y)
    results = []
    for shift in shifts:
        moved = shifted_test_set(x, int(shift), direction=direction, seed=seed)
        predicted = predict_probabilities(model, moved).argmax(axis=1)
        results.append(accuracy(y, predicted))
    return results


@dataclass(frozen=True)
class TranslationResult:
    """Accuracy against shift for each model: ``accuracies[name][i]`` at ``shifts[i]`` pixels.

    ``parameters[name]``: the model's parameter count; ``test_size``: how many test digits
    each accuracy is measured on.
    """

    shifts: tuple[int, ...]
    accuracies: dict[str, list[float]]
    parameters: dict[str, int]
    direction: str
    test_size: int


@dataclass(frozen=True)
class ExperimentProgress(TaskProgress):
    """An immutable copy of a ``TranslationExperiment``'s state.

    ``state``: "running" | "stopping" | "finished" | "stopped" | "failed"; ``current``: the
    model being trained (index into ``models``) or None; ``training``: that model's
    ``cnnlib.training.trainer.TrainingProgress`` (or the last one); ``result`` once finished.
    """

    models: tuple[str, ...] = ()
    current: int | None = None
    phase: str = ""
    training: Any = None
    test_accuracy: Mapping[str, float] = field(default_factory=dict)
    result: TranslationResult | None = None


class _ExperimentWorker(TaskWorker[ExperimentProgress]):
    """The thread's side: trains each model in turn, then measures. No link to the handle.

    Takes no training slot itself (its trainings do, one at a time)."""

    thread_name = "cnnlab-translation"

    def __init__(
        self, builders, data, config, shifts, direction, test_size, seed, slots, max_seconds
    ):
        super().__init__(
            ExperimentProgress(state="running", models=tuple(builders)), max_seconds=max_seconds
        )
        self.builders = builders
        self.data = data
        self.config = config
        self.shifts = shifts
        self.direction = direction
        self.test_size = test_size
        self.seed = seed
        self.training_slots = slots
        self.job = None

    def request_stop(self) -> None:
        super().request_stop()
        with self.lock:
            job = self.job
        if job is not None:
            job.stop()

    def failure_message(self, exc: Exception) -> str:
        return f"The experiment failed: {super().failure_message(exc)}"

    def on_exit(self) -> None:
        self.data = None

    def work(self) -> None:

        (x_train, y_train), (x_test, y_test) = self.data
        self.data = None
        pick = np.sort(np.random.default_rng(self.seed).permutation(len(x_test))[: self.test_size])
        x_test, y_test = np.asarray(x_test)[pick], np.asarray(y_test)[pick]
        config = self.config
        # One read-only copy of the arrays, shared by every model's training.
        data = ArrayData.from_arrays(
            x_train,
            y_train,
            x_test,
            y_test,
            class_names=[str(c) for c in range(10)],
            validation_split=config.validation_split,
            train_size=config.train_size,
            seed=config.seed,
        )
        models: dict[str, Any] = {}
        for index, (name, builder) in enumerate(self.builders.items()):
            if self.stop_event.is_set():
                break
            job = TrainingJob(builder, data, config, slots=self.training_slots)
            with self.lock:
                self.job = job
            self.update(current=index, phase=f"Training the {name}")
            job.start()
            while not job.done:
                job.wait(0.25)
                self.update(training=job.snapshot())
            final = job.snapshot()
            self.update(training=final)
            if final.state == "failed":
                raise RuntimeError(final.error or f"training the {name} failed")
            if final.state != "finished" or job.model is None:
                break
            models[name] = job.model
            accuracies = {**self.progress.test_accuracy, name: float(final.test_accuracy or 0.0)}
            self.update(test_accuracy=accuracies)
        with self.lock:
            self.job = None
        if self.stop_event.is_set() or len(models) < len(self.builders):
            self.stop_event.set()
            self.update(current=None, phase="Stopped")
            return
        self.update(current=None, phase="Testing both models on shifted digits")
        accuracies = {
            name: shifted_accuracy(
                model, x_test, y_test, self.shifts, direction=self.direction, seed=self.seed
            )
            for name, model in models.items()
        }
        result = TranslationResult(
            shifts=tuple(int(s) for s in self.shifts),
            accuracies=accuracies,
            parameters={name: int(m.count_params()) for name, m in models.items()},
            direction=self.direction,
            test_size=len(x_test),
        )
        self.update(phase="Finished", result=result)


class TranslationExperiment(TaskHandle[ExperimentProgress]):
    """Train each model of ``builders`` on the same data, then test them on shifted digits.

    ``builders``: display name → model builder (as for ``TrainingJob``: the model takes raw
    pixels), trained one after the other with the same ``config`` (same subset, order and
    seed) through ``cnnlib.training.trainer.TrainingJob`` in a background thread; ``data``:
    ((x_train, y_train), (x_test, y_test)) uint8 (N, 28, 28), held once as a read-only
    ``ArrayData`` both trainings share; ``test_size`` test digits are measured at each of
    ``shifts`` pixels. Poll ``snapshot()``; ``stop()`` ends the current training at the next
    batch and skips the rest. When the handle is garbage-collected the experiment stops.
    ``max_seconds``: wall-clock limit of the whole experiment (default as for trainings).
    """

    def __init__(
        self,
        builders: dict[str, Callable[..., Any]],
        data,
        config,
        *,
        shifts: Sequence[int] = tuple(range(9)),
        direction: str = "random",
        test_size: int = 2000,
        seed: int = 0,
        slots=None,
        max_seconds: float | None = None,
    ):
        if len(builders) < 1:
            raise InvalidArgumentError("The experiment needs at least one model to train.")
        if direction not in DIRECTIONS:
            raise InvalidArgumentError(
                f"Unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}."
            )
        shifts = tuple(int(s) for s in shifts)
        if not shifts or min(shifts) < 0:
            raise InvalidArgumentError("The shifts must be one or more whole numbers ≥ 0.")
        if test_size < 1:
            raise InvalidArgumentError(f"The test size must be at least 1, got {test_size}.")
        super().__init__(
            _ExperimentWorker(
                dict(builders),
                data,
                config,
                shifts,
                direction,
                test_size,
                seed,
                slots,
                max_seconds,
            )
        )
