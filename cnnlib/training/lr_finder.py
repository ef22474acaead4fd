"""A learning-rate finder (Leslie Smith's range test, as fastai runs it) on cached features.

One short training of a fresh model in which the learning rate grows exponentially from
``start`` to ``end`` over about 100 batches, recording each batch's loss. The curve tells
the story of the rate: flat where the rate is too small to move the weights, falling where
it learns, then rising steeply where each step overshoots (diverging). The test stops early
once the smoothed loss passes ``stop_factor`` times its best.

The suggested rate is the one at the lowest smoothed loss divided by 10: still on the
falling part, a safe distance from where the loss blows up (fastai's original rule; the
steepest descent is also reported).

On cached features (``cnnlib.training.transfer.FeatureSet``) the model is the head: each
batch takes milliseconds. Keras is imported when the test runs.

``LrFinderJob`` runs it for an own-images recipe as a job of the task base (a training slot,
Stop, time limit, a child process): a transfer recipe's range test trains a fresh head on
the backbone's features of the training images (extracted once, no augmented copies); a
scratch recipe's trains a fresh scratch convnet on the training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training import transfer
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker, TrainingSlots

__all__ = ["LrFinderJob", "LrFinderProgress", "RangeTest", "lr_range_test", "smoothed_losses"]

#: Smoothing of the loss curve (fastai's bias-corrected exponential moving average). fastai
#: uses 0.98; over a 100-batch test that averages about half the curve and lags it, so the
#: blow-up shows late. 0.9 averages about 10 batches.
SMOOTHING = 0.9


@dataclass(frozen=True)
class RangeTest:
    """The range test's record, one entry per batch run (S ≤ ``steps``).

    ``rates`` (S,) learning rates; ``losses`` (S,) each batch's loss (before its update);
    ``smoothed`` (S,) their moving average; ``suggested``: the rate to use
    (``minimum_rate`` / 10); ``minimum_rate``: where the smoothed loss was lowest;
    ``steepest_rate``: where it fell fastest per factor of the rate (the first tenth of the
    batches left out); ``diverged``: the
    test stopped because the loss blew up (past ``stop_factor`` × its best, or not finite).
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested: float
    minimum_rate: float
    steepest_rate: float
    diverged: bool


def smoothed_losses(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """fastai's smoothing: avg_i = β·avg_{i−1} + (1−β)·loss_i, divided by 1 − β^(i+1)
    (avg_{−1} = 0)."""
    if not 0.0 <= beta < 1.0:
        raise InvalidArgumentError(f"The smoothing must be in [0, 1); got {beta}.")
    out = np.empty(len(losses), dtype=np.float64)
    average = 0.0
    for i, loss in enumerate(np.asarray(losses, dtype=np.float64)):
        average = beta * average + (1.0 - beta) * loss
        out[i] = average / (1.0 - beta ** (i + 1))
    return out


def _rates(start: float, end: float, steps: int) -> np.ndarray:
    return start * (end / start) ** (np.arange(steps) / max(1, steps - 1))


def lr_range_test(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    stop_factor: float = 4.0,
    beta: float = SMOOTHING,
    seed: int = 0,
) -> RangeTest:
    """Run the range test on a FRESH ``model`` (it is trained, and left diverged): inputs
    ``x`` (N, ...) (e.g. cached features (N, D)) and class indices ``y`` (N,).

    The model is compiled with Adam and sparse categorical cross-entropy; the learning rate
    of batch i is ``start · (end/start)^(i/(steps−1))``. Batches are drawn shuffled (seeded),
    reshuffled after each pass over the data.
    """
    import keras

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if len(x) != len(y) or len(y) < 2 or not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgumentError(
            f"The range test needs at least 2 examples with integer labels; got {len(x)} "
            f"inputs and {len(y)} labels."
        )
    if not (0 < start < end) or not 10 <= steps <= 1000 or batch_size < 1:
        raise InvalidArgumentError(
            "The range test needs 0 < start < end, 10…1000 steps and a batch size ≥ 1."
        )
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(start), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    order, cursor = rng.permutation(len(y)), 0
    batch_size = min(batch_size, len(y))
    rates = _rates(start, end, steps)
    losses: list[float] = []
    best, average, diverged = math.inf, 0.0, False
    for i, rate in enumerate(rates):
        if cursor + batch_size > len(y):
            order, cursor = rng.permutation(len(y)), 0
        pick = order[cursor : cursor + batch_size]
        cursor += batch_size
        model.optimizer.learning_rate.assign(float(rate))
        loss = float(model.train_on_batch(x[pick], y[pick], return_dict=True)["loss"])
        losses.append(loss)
        average = beta * average + (1.0 - beta) * loss  # as smoothed_losses
        smooth = average / (1.0 - beta ** (i + 1))
        if not math.isfinite(smooth) or smooth > stop_factor * best:
            diverged = True
            break
        best = min(best, smooth)
    losses_array = np.array(losses)
    smoothed = smoothed_losses(losses_array, beta)
    rates = rates[: len(losses)]
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    lowest = int(np.argmin(finite))
    skip = len(losses) // 10  # the first batches: the average is still settling
    steepest = lowest
    if lowest - skip >= 2:
        window = slice(skip, lowest + 1)
        slope = np.gradient(finite[window], np.log(rates[window]))
        steepest = skip + int(np.argmin(slope))
    return RangeTest(
        rates=rates,
        losses=losses_array,
        smoothed=smoothed,
        suggested=float(rates[lowest] / 10),
        minimum_rate=float(rates[lowest]),
        steepest_rate=float(rates[steepest]),
        diverged=diverged,
    )


# --------------------------------------------------------------------------------------------
# The range test of an own-images recipe, as a job
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LrFinderProgress(TaskProgress):
    """``TaskProgress`` plus the stage: "loading" (the backbone), "features"
    (``images_done`` of ``images_total`` through it) or "range test"."""

    stage: str = "queued"
    images_done: int = 0
    images_total: int = 0


class _LrFinderWorker(TaskWorker[LrFinderProgress]):
    thread_name = "cnnlab-lr-finder"
    process_safe = True

    def __init__(self, data, recipe, *, slots, max_seconds, isolate) -> None:
        super().__init__(LrFinderProgress(), slots=slots, max_seconds=max_seconds, isolate=isolate)
        self.data, self.recipe = data, recipe
        self.result: RangeTest | None = None

    def work(self) -> None:
        data, r = self.data, self.recipe
        self.data = None
        classes = len(data.class_names)
        if r.transfer:
            self.update(stage="loading")
            loaded = transfer.load_backbone(r.backbone, data.input_shape, r.weights)
            self.update(stage="features")
            extractor, _ = transfer.frozen_extractor(loaded, r.backbone)
            features = transfer.extract_features(
                extractor,
                data,
                batch_size=r.batch_size,
                seed=r.seed,
                progress=lambda _, n, total: self.update(images_done=n, images_total=total),
            )
            x, y = features.train_x, features.train_y
            model = transfer.build_head(x.shape[1], classes, seed=r.seed)
        else:
            x, y, _ = data.arrays("train")
            model = transfer.build_scratch_model(
                data.input_shape, classes, augment=r.augment, seed=r.seed
            )
        if self.stop_event.is_set():
            return
        self.update(stage="range test")
        self.result = lr_range_test(model, x, y, batch_size=r.batch_size, seed=r.seed)

    def export_result(self) -> RangeTest | None:
        return self.result

    def import_result(self, result: RangeTest | None) -> None:
        self.result = result

    def on_exit(self) -> None:
        self.data = None


class LrFinderJob(TaskHandle[LrFinderProgress]):
    """The range test of ``recipe`` (a ``cnnlib.training.transfer.OwnImagesRecipe``) on the
    training split of ``data`` (a ``FolderData``) in the background; ``result()`` once
    finished. Raises ``WeightsUnavailableError`` before anything starts when a transfer
    recipe's weights are not here."""

    def __init__(
        self,
        data,
        recipe,
        *,
        slots: TrainingSlots | None = None,
        max_seconds: float | None = None,
        isolate: bool | None = None,
    ) -> None:
        if not isinstance(recipe, transfer.OwnImagesRecipe):
            raise InvalidArgumentError("recipe must be an OwnImagesRecipe.")
        if recipe.transfer:
            transfer.require_weights(recipe.backbone, recipe.weights)
        if data.size("train") < 2:
            raise InvalidArgumentError("The range test needs at least 2 training images.")
        worker = _LrFinderWorker(
            data, recipe, slots=slots, max_seconds=max_seconds, isolate=isolate
        )
        super().__init__(worker)

    def result(self) -> RangeTest | None:
        """The range test once finished (None before, or when stopped or failed)."""
        return self._worker.result
