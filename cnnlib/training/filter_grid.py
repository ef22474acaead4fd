"""A grid of what one layer's filters want to see, filled in the background.

``FilterGridJob`` maximises a few channels of one layer one after another
(``cnnlib.inspect.visualize.maximize_activation``) as a task of the one task base
(``cnnlib.training.tasks``): the same states (queued → running → stopping → finished, stopped
or failed), Stop, time limit, slot queue and session cleanup as a training. It works on the
server's shared model (ResNet50, VGG19: one copy for every session, used under its lock), so
it runs in a thread of the server, never in a child process, and takes one of the server's
``TrainingSlots`` like any long work: a closed browser tab's grid is stopped by the session's
janitor and its slot goes to the next in the queue.

Finished filters go into ``maximize_activation``'s cache, and filters already there are
taken from it. The thread never calls Streamlit; a page polls ``snapshot()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect import visualize
from cnnlib.inspect.visualize import FilterImage
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker, TrainingSlots, default_slots

__all__ = ["MAX_GRID_FILTERS", "MAX_GRID_SECONDS", "FilterGridJob", "GridProgress"]

_log = logging.getLogger(__name__)

#: Budgets, checked before any work.
MAX_GRID_FILTERS = 64
MAX_GRID_SECONDS = 600.0


@dataclass(frozen=True)
class GridProgress(TaskProgress):
    """What a ``FilterGridJob`` has done so far (an immutable copy; times in seconds).

    ``images``: channel → its result, for the filters done so far (read-only);
    ``filter_seconds``: how long each computed filter took (cache hits left out);
    ``max_seconds``: the grid's time limit. ``message`` says when the limit stopped it.
    """

    layer: str = ""
    channels: tuple[int, ...] = ()
    images: Mapping[int, FilterImage] = field(default_factory=lambda: MappingProxyType({}))
    filter_seconds: tuple[float, ...] = ()
    max_seconds: float = 0.0

    @property
    def filters_done(self) -> int:
        return len(self.images)

    @property
    def total(self) -> int:
        return len(self.channels)

    @property
    def fraction(self) -> float:
        """Share of the filters done, in [0, 1]."""
        return self.filters_done / self.total if self.total else 1.0


class _GridWorker(TaskWorker[GridProgress]):
    """The thread's side: one filter after another, each stoppable between two steps."""

    thread_name = "cnnlab-filter-grid"

    def __init__(self, model, layer, channels, steps, seed, options, slots, max_seconds):
        super().__init__(
            GridProgress(layer=layer, channels=channels, max_seconds=max_seconds),
            slots=slots,
            max_seconds=max_seconds,
        )
        self.model = model
        self.layer = layer
        self.channels = channels
        self.steps = steps
        self.seed = seed
        self.options = options

    def work(self) -> None:
        question = {"steps": self.steps, "seed": self.seed, **self.options}
        for channel in self.channels:
            if self.stop_event.is_set():
                return
            result = visualize.cached_filter(self.model, self.layer, channel, **question)
            if result is None:
                try:
                    result = visualize.maximize_activation(
                        self.model,
                        self.layer,
                        channel,
                        should_stop=self.stop_event.is_set,
                        **question,
                    )
                except WorkStopped:
                    return  # the filters done so far stay
                self.append(filter_seconds=result.seconds)
            images = {**self.progress.images, channel: result}
            self.update(images=MappingProxyType(images))

    def failure_message(self, exc: Exception) -> str:
        _log.error("Filter grid for layer %s failed", self.layer, exc_info=exc)
        return f"Could not finish the filter grid: {super().failure_message(exc)}"

    def time_limit_message(self) -> str:
        return (
            f"Time limit reached after {self.max_seconds:g} s: the filters done so far are "
            "kept. Raise the time limit or choose fewer filters or steps."
        )

    def on_exit(self) -> None:
        self.model = None  # the shared model is not held by a finished grid


class FilterGridJob(TaskHandle[GridProgress]):
    """Maximise ``channels`` of ``layer_name`` one after another in the background.

    ``model``: a ``keras.Model`` or a shared ``PretrainedModel`` (used under its lock).
    ``steps``, ``seed`` and ``options`` as for ``maximize_activation``. ``max_seconds``: the
    time limit (above 0, at most ``MAX_GRID_SECONDS``), after which the grid stops with the
    filters done so far. ``slots``: the queue it takes a slot from (default: the server's,
    shared with trainings). ``start()`` raises ``ServerBusyError`` when that queue is full;
    ``stop()`` ends the work after the current step; when the handle is garbage-collected
    (its session ended) the grid stops. Raises ``InvalidArgumentError`` up front for a bad
    layer, channel, option or budget.
    """

    def __init__(
        self,
        model: Any,
        layer_name: str,
        channels: Sequence[int],
        *,
        steps: int = 40,
        seed: int = 0,
        max_seconds: float = 60.0,
        slots: TrainingSlots | None = None,
        **options: Any,
    ) -> None:
        channels = tuple(int(c) for c in channels)
        if not 1 <= len(channels) <= MAX_GRID_FILTERS:
            raise InvalidArgumentError(
                f"A grid holds 1 to {MAX_GRID_FILTERS} filters, got {len(channels)}."
            )
        for c in channels:
            visualize.check_filter(model, layer_name, c, steps)
        visualize.check_options(options)
        if not isinstance(max_seconds, int | float) or not 0 < max_seconds <= MAX_GRID_SECONDS:
            raise InvalidArgumentError(
                f"max_seconds must be more than 0 and at most {MAX_GRID_SECONDS:g}."
            )
        super().__init__(
            _GridWorker(
                model,
                layer_name,
                channels,
                steps,
                seed,
                dict(options),
                slots if slots is not None else default_slots(),
                float(max_seconds),
            )
        )
