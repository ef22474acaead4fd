"""The saliency sanity check (``cnnlib.inspect.sanity.sanity_check``) for several methods,
in the background.

``SanityCheckJob`` runs the cascading randomisation for one method after another as a task of
the one task base (``cnnlib.training.tasks``): the same states (queued → running → stopping →
finished, stopped or failed), Stop, time limit, slot queue and session cleanup as a training.
It reads the server's shared model (ResNet50: one copy for every session, read under its lock
into a clone that the check re-initialises), so it runs in a thread of the server, never in a
child process, and takes one of the server's ``TrainingSlots`` like any long work. The shared
model is never modified: every method works on a clone of its own.

Each finished method's ``SanityCheck`` goes into the progress at once, so a page polling
``snapshot()`` draws the methods done so far; Stop keeps them. The thread never calls
Streamlit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect import sanity
from cnnlib.inspect.sanity import SanityCheck
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker, TrainingSlots, default_slots

__all__ = ["MAX_SANITY_METHODS", "MAX_SANITY_SECONDS", "SanityCheckJob", "SanityProgress"]

_log = logging.getLogger(__name__)

#: Budgets, checked before any work.
MAX_SANITY_METHODS = 9
MAX_SANITY_SECONDS = 900.0


@dataclass(frozen=True)
class SanityProgress(TaskProgress):
    """What a ``SanityCheckJob`` has done so far (an immutable copy; times in seconds).

    ``methods``: the methods asked for, in order; ``checks``: method → its ``SanityCheck``,
    for the methods done so far (read-only); ``current``: the method being computed and
    ``maps_done`` of its ``maps_total`` maps (the trained model's map included);
    ``steps``: the randomisation steps per method; ``max_seconds``: the time limit.
    """

    methods: tuple[str, ...] = ()
    steps: int = 0
    checks: Mapping[str, SanityCheck] = field(default_factory=lambda: MappingProxyType({}))
    current: str = ""
    maps_done: int = 0
    maps_total: int = 0
    max_seconds: float = 0.0

    @property
    def fraction(self) -> float:
        """Share of all the maps done, in [0, 1]."""
        per_method = self.steps + 1
        total = len(self.methods) * per_method
        done = len(self.checks) * per_method + (self.maps_done if self.current else 0)
        return min(1.0, done / total) if total else 1.0


class _SanityWorker(TaskWorker[SanityProgress]):
    """The thread's side: one method after another, each stoppable between two maps."""

    thread_name = "cnnlab-sanity-check"

    def __init__(self, model, x, class_index, methods, steps, options, seed, slots, max_seconds):
        super().__init__(
            SanityProgress(methods=methods, steps=steps, max_seconds=max_seconds),
            slots=slots,
            max_seconds=max_seconds,
        )
        self.model = model
        self.x = x
        self.class_index = class_index
        self.methods = methods
        self.steps = steps
        self.options = options
        self.seed = seed

    def _step(self, done: int, total: int) -> None:
        self.update(maps_done=done, maps_total=total)

    def work(self) -> None:
        for method in self.methods:
            if self.stop_event.is_set():
                return
            self.update(current=method, maps_done=0, maps_total=self.steps + 1)
            try:
                check = sanity.sanity_check(
                    self.model,
                    self.x,
                    self.class_index,
                    method=method,
                    steps=self.steps,
                    options=self.options.get(method),
                    seed=self.seed,
                    should_stop=self.stop_event.is_set,
                    on_step=self._step,
                )
            except WorkStopped:
                return  # the methods done so far stay
            checks = {**self.progress.checks, method: check}
            self.update(checks=MappingProxyType(checks), current="")

    def failure_message(self, exc: Exception) -> str:
        _log.error("Sanity check failed", exc_info=exc)
        return f"Could not finish the sanity check: {super().failure_message(exc)}"

    def time_limit_message(self) -> str:
        return (
            f"Time limit reached after {self.max_seconds:g} s: the methods done so far are "
            "kept. Choose fewer methods or steps."
        )

    def on_exit(self) -> None:
        self.model = None  # a finished check does not hold the (shared) model
        self.update(current="")


class SanityCheckJob(TaskHandle[SanityProgress]):
    """The cascading randomisation of ``model`` for each of ``methods``, in the background.

    ``model``: a ``keras.Model`` or a shared ``PretrainedModel`` (read under its lock into a
    clone per method); ``x``: one (H, W, C) or (1, H, W, C) input prepared as the model
    expects; ``methods``: 1 to ``MAX_SANITY_METHODS`` of ``saliency.METHODS`` and
    ``sanity.CONTROLS``; ``steps``: blocks to re-initialise from the top (None: all);
    ``options``: method → its options, as for ``saliency_map``; ``max_seconds``: the time
    limit (above 0, at most ``MAX_SANITY_SECONDS``). ``slots``: the queue it takes a slot
    from (default: the server's, shared with trainings). ``start()`` raises
    ``ServerBusyError`` when that queue is full; ``stop()`` ends the work after the current
    map; when the handle is garbage-collected (its session ended) the check stops. Raises
    ``InvalidArgumentError`` up front for a bad method, option, input, class or budget.
    """

    def __init__(
        self,
        model: Any,
        x: np.ndarray,
        class_index: int,
        *,
        methods: Sequence[str],
        steps: int | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        max_seconds: float = 300.0,
        slots: TrainingSlots | None = None,
    ) -> None:
        methods = tuple(dict.fromkeys(methods))
        if not 1 <= len(methods) <= MAX_SANITY_METHODS:
            raise InvalidArgumentError(
                f"A sanity check compares 1 to {MAX_SANITY_METHODS} methods, got {len(methods)}."
            )
        options = {m: dict(o) for m, o in (options or {}).items() if m in methods}
        a = cls = n = None
        for method in methods:
            a, cls, _, n = sanity.check_sanity_question(
                model,
                x,
                class_index,
                method=method,
                steps=steps,
                options=options.get(method),
                seed=seed,
            )
        if not isinstance(max_seconds, int | float) or not 0 < max_seconds <= MAX_SANITY_SECONDS:
            raise InvalidArgumentError(
                f"max_seconds must be more than 0 and at most {MAX_SANITY_SECONDS:g}."
            )
        super().__init__(
            _SanityWorker(
                model,
                np.array(a, dtype=np.float32),
                cls,
                methods,
                n,
                options,
                int(seed),
                slots if slots is not None else default_slots(),
                float(max_seconds),
            )
        )
