"""Pause, Resume, Step one batch and a new learning rate: what a page asks of running work.

A ``TaskControl`` is held by a task's worker (``cnnlib.training.tasks.TaskWorker.control``).
The page's handle changes it (``pause``, ``resume``, ``step``, ``set_learning_rate``); where
the work runs, the training waits on it before each batch (``wait_turn``; an own-images
feature extraction after each of its batches) and takes a new learning rate from it
(``take_learning_rate``). In a thread both sides hold the same object;
in a child process or a Ray actor the backend sends the handle's ``state()`` down the
channel that carries Stop whenever its ``version`` changes, and the copy there ``sync``\\s to
it (older or repeated states are ignored), so nothing is lost or applied twice.

Counts, not times: ``steps`` is how many Step presses were granted while paused, and the
work spends one per batch it runs while paused; a Step pressed while running is refused
(``step`` returns False), so no stale credit runs a batch later. ``wait_turn`` also returns
at once when Stop is set, so a paused training can still be stopped and its time limit
still holds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from cnnlib.core.errors import InvalidArgumentError

__all__ = ["WAIT_SECONDS", "TaskControl", "check_learning_rate"]

#: How often a paused training re-checks Stop (and its parent's messages), seconds.
WAIT_SECONDS = 0.05


def check_learning_rate(value: Any) -> float:
    """``value`` as a float; raises ``InvalidArgumentError`` unless 0 < value ≤ 10."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"The learning rate must be a number; got {value!r}.")
    if not (math.isfinite(value) and 0 < value <= 10):
        raise InvalidArgumentError(
            f"The learning rate must be above 0 (and at most 10); got {value}."
        )
    return float(value)


class TaskControl:
    """Thread-safe pause / step / learning-rate requests (see the module docstring).

    Handle's side: ``paused`` (bool), ``steps`` (Step presses granted, in total),
    ``learning_rate`` ((request number, value) of the latest request, or None) and
    ``version`` (raised by every change). Work's side: how many steps it has spent and
    which learning-rate request it has taken.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.paused = False
        self.steps = 0
        self.learning_rate: tuple[int, float] | None = None
        self.version = 0
        self._spent = 0
        self._taken = 0

    # -- pickling (a child process gets a copy with a condition of its own) -----------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_cond"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cond = threading.Condition()

    # -- the handle's side -------------------------------------------------------------------

    def _change(self, **fields: Any) -> None:
        with self._cond:
            self.__dict__.update(fields)
            self.version += 1
            self._cond.notify_all()

    def pause(self) -> None:
        """Hold the training before its next batch."""
        self._change(paused=True)

    def resume(self) -> None:
        """Let the training run on."""
        self._change(paused=False)

    def step(self) -> bool:
        """Run one more batch while paused (True); False, changing nothing, when not paused."""
        with self._cond:
            if not self.paused:
                return False
        self._change(steps=self.steps + 1)
        return True

    def set_learning_rate(self, value: float) -> float:
        """Use ``value`` from the next batch on; returns it as a float. Raises
        ``InvalidArgumentError`` unless 0 < value ≤ 10."""
        value = check_learning_rate(value)
        number = (self.learning_rate[0] if self.learning_rate else 0) + 1
        self._change(learning_rate=(number, value))
        return value

    def state(self) -> dict[str, Any]:
        """What the work's copy needs (``sync``): plain values that pickle."""
        with self._cond:
            return {
                "version": self.version,
                "paused": self.paused,
                "steps": self.steps,
                "learning_rate": self.learning_rate,
            }

    # -- the work's side ---------------------------------------------------------------------

    def sync(self, state: dict[str, Any]) -> None:
        """Take the handle's ``state()`` (ignored when not newer than what is here)."""
        with self._cond:
            if state["version"] <= self.version:
                return
            self.version = state["version"]
            self.paused = bool(state["paused"])
            self.steps = int(state["steps"])
            self.learning_rate = state["learning_rate"]
            self._cond.notify_all()

    def wait_turn(
        self, stop: threading.Event, on_hold: Callable[[bool], None] | None = None
    ) -> bool:
        """Before a batch: return True when it may run (not paused, or a Step to spend, which
        is spent), False as soon as ``stop`` is set. While it waits, ``on_hold(True)`` was
        called once, and ``on_hold(False)`` is called before it returns."""
        held = False
        try:
            with self._cond:
                while True:
                    if stop.is_set():
                        return False
                    if not self.paused:
                        self._spent = self.steps  # a Step granted earlier is not run later
                        return True
                    if self._spent < self.steps:
                        self._spent += 1
                        return True
                    if not held and on_hold is not None:
                        held = True
                        self._cond.release()  # report without holding the lock
                        try:
                            on_hold(True)
                        finally:
                            self._cond.acquire()
                        continue
                    self._cond.wait(WAIT_SECONDS)
        finally:
            if held and on_hold is not None:
                on_hold(False)

    def take_learning_rate(self) -> float | None:
        """The learning rate asked for since the last call, or None."""
        with self._cond:
            if self.learning_rate is None or self.learning_rate[0] <= self._taken:
                return None
            self._taken = self.learning_rate[0]
            return self.learning_rate[1]
