"""Long work in a background thread: one base for the trainer and the experiments.

A task has two halves. The *worker* (``TaskWorker``) is what the thread runs: it holds the
lock, the stop flag and the progress, and never refers to the handle. The *handle*
(``TaskHandle``) is what a page keeps in its session state and polls: ``start()``,
``stop()``, ``snapshot()``, ``wait()``. When the handle is garbage-collected (its session
ended) the worker is asked to stop, so no training runs on for a browser tab that is gone.

Progress is an immutable (frozen) dataclass replaced as a whole under the lock, so a
snapshot is a consistent copy that the page can read while the thread goes on.

States: queued (waiting for a ``TrainingSlots`` slot) → running → stopping → finished,
stopped or failed. The queue has a maximum length: ``TaskHandle.start()`` joins it at once
and raises ``ServerBusyError`` when it is full, so a page can say "try again" instead of
queueing without end. Every task has a wall-clock limit (``max_seconds``, by default
``cnnlib.budgets.budgets().training_seconds``, variable ``$CNNLAB_TRAINING_SECONDS``) after
which it stops with a message.

A worker whose class sets ``process_safe`` runs ``work()`` away from the server's threads:
where is decided in one place, ``cnnlib.training.backends`` (a child process by default, so
that TensorFlow's memory is returned to the system when the task ends; an actor on a Ray
cluster when ``$CNNLAB_RAY_ADDRESS`` is set; a thread for a debugger). Wherever it runs, it
reports through the same ``update`` / ``append`` and hands its result back with
``export_result`` / ``import_result``. Its state must pickle (the lock, events, thread,
timer and slots stay on the server).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import CNNLabError, InvalidArgumentError
from cnnlib.training.backends import run_work
from cnnlib.training.control import TaskControl

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "FINAL_STATES",
    "ServerBusyError",
    "SessionBusyError",
    "TaskHandle",
    "TaskProgress",
    "TaskWorker",
    "TrainingSlots",
    "add_start_listener",
    "default_max_seconds",
    "default_slots",
]

#: Terminal states of a task.
FINAL_STATES = ("finished", "stopped", "failed")
#: Wall-clock limit per task when ``$CNNLAB_TRAINING_SECONDS`` is not set.
DEFAULT_MAX_SECONDS = 900.0


class ServerBusyError(CNNLabError, RuntimeError):
    """The training queue is full: ``running`` trainings run and ``waiting`` wait."""

    def __init__(self, running: int, waiting: int):
        self.running, self.waiting = running, waiting
        super().__init__(
            f"The server is busy: {running} training{'s' * (running != 1)} "
            f"{'are' if running != 1 else 'is'} running and {waiting} waiting. "
            "Try again in a minute."
        )


class SessionBusyError(CNNLabError, RuntimeError):
    """One session may run one training at a time; ``page`` runs it now."""

    def __init__(self, page: str):
        self.page = page
        super().__init__(
            f"A training from {page} is running in this session: stop it or wait until it "
            "ends, then start the next one."
        )


@dataclass(frozen=True)
class TaskProgress:
    """What every task reports (times in seconds). Subclasses add their own fields.

    ``message``: why a task stopped on its own (e.g. the time limit), for the learner.
    """

    state: str = "queued"  #: queued | running | stopping | finished | stopped | failed
    queue_position: int | None = None  #: 1 = next to start (only while queued)
    elapsed_seconds: float = 0.0  #: since the task left the queue
    error: str | None = None  #: set when failed
    message: str | None = None
    process_id: int = 0  #: the process that runs the work (0: not started yet)
    process_peak_bytes: int = 0  #: peak resident memory of the task's own process, if any
    #: Queued because every training slot of the Ray cluster is taken (not this server's).
    queued_on_cluster: bool = False
    node: str = ""  #: the Ray node that runs the work ("": this server's machine)
    #: Paused (``TaskHandle.pause``): the work waits before its next step for Resume or Step.
    paused: bool = False

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


P = TypeVar("P", bound=TaskProgress)


# --------------------------------------------------------------------------------------------
# The process-wide limit
# --------------------------------------------------------------------------------------------


class TrainingSlots:
    """At most ``limit`` trainings at once; the others wait first-come, first-served, at
    most ``max_waiting`` of them (None: no maximum); one more raises ``ServerBusyError``."""

    def __init__(self, limit: int, max_waiting: int | None = None):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"The training limit must be at least 1; got {limit!r}.")
        if max_waiting is not None and (
            isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0
        ):
            raise InvalidArgumentError(
                f"The queue length must be a whole number ≥ 0; got {max_waiting!r}."
            )
        self.limit = limit
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._running: set[object] = set()
        self._queue: deque[object] = deque()

    def join(self, ticket: object) -> None:
        """Take a place in the queue now (no waiting), or raise ``ServerBusyError`` when
        ``ticket`` would be one more than ``max_waiting`` waiting for a slot."""
        with self._cond:
            if ticket in self._queue or ticket in self._running:
                return
            free = self.limit - len(self._running)
            if self.max_waiting is not None and len(self._queue) + 1 - free > self.max_waiting:
                raise ServerBusyError(len(self._running), len(self._queue))
            self._queue.append(ticket)

    def acquire(self, ticket: object, cancelled: threading.Event) -> bool:
        """Wait for a slot (True), or give up when ``cancelled`` is set (False). Joins the
        queue first unless ``join`` did (raises ``ServerBusyError`` when it is full)."""
        self.join(ticket)
        with self._cond:
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
        """Let waiting tasks re-check their stop flags now."""
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


def default_slots() -> TrainingSlots:
    """The process-wide slots, from ``cnnlib.budgets.budgets()`` read once: ``max_trainings``
    at once (``$CNNLAB_MAX_TRAININGS``, default 2), ``training_queue`` waiting
    (``$CNNLAB_TRAINING_QUEUE``, default 8). Raises ``BudgetError`` for a bad variable."""

    global _DEFAULT_SLOTS
    with _DEFAULT_SLOTS_LOCK:
        if _DEFAULT_SLOTS is None:
            limits = budgets()
            _DEFAULT_SLOTS = TrainingSlots(limits.max_trainings, limits.training_queue)
        return _DEFAULT_SLOTS


def default_max_seconds() -> float:
    """Wall-clock limit per task: ``budgets().training_seconds`` (``$CNNLAB_TRAINING_SECONDS``,
    default ``DEFAULT_MAX_SECONDS``), read at each new task. Raises ``BudgetError`` for a
    bad variable."""

    return float(budgets().training_seconds)


def _duration_text(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# --------------------------------------------------------------------------------------------
# The two halves
# --------------------------------------------------------------------------------------------


class TaskWorker(Generic[P]):
    """The thread's side. Subclasses implement ``work()`` and may override
    ``failure_message(exc)``; ``work`` reports with ``update`` / ``append`` and checks
    ``stop_event``. Holds no reference to the handle.

    ``slots``: take a ``TrainingSlots`` slot before working (None: none needed, e.g. an
    experiment whose own trainings take slots). ``max_seconds``: stop after this long
    running (None: ``default_max_seconds()``).
    """

    thread_name = "cnnlab-task"
    #: Whether ``work()`` may run in a child process: its state pickles and its result comes
    #: back through ``export_result`` / ``import_result``.
    process_safe = False

    def __init__(
        self,
        progress: P,
        *,
        slots: TrainingSlots | None = None,
        max_seconds: float | None = None,
        isolate: bool | None = None,
    ):
        if max_seconds is None:
            max_seconds = default_max_seconds()
        if not (isinstance(max_seconds, int | float) and max_seconds > 0):
            raise InvalidArgumentError(f"The time limit must be above 0 s; got {max_seconds!r}.")
        self.max_seconds = float(max_seconds)
        if isolate and not self.process_safe:
            raise InvalidArgumentError(f"{type(self).__name__} cannot run in a child process.")
        #: Run ``work()`` in a child process (``cnnlib.training.task_process``): True (it must
        #: pickle), False (in the thread), None (in a child when process-safe,
        #: ``$CNNLAB_TRAINING_PROCESS`` is not "0" and the worker pickles; else in the thread, with
        #: a logged warning).
        self.isolate = isolate if self.process_safe else False
        self._relay: Any = None  #: in the child: the pipe to the parent
        self.slots = slots
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.done_event = threading.Event()
        self.timed_out = False
        self.thread: threading.Thread | None = None
        self.started_at: float | None = None
        self._timer: threading.Timer | None = None
        self._progress = progress
        #: Pause / Step / learning-rate requests; the backends carry it where the work runs.
        self.control = TaskControl()

    # -- any thread -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the work to end at its next check (or leave the queue)."""
        self.stop_event.set()
        with self.lock:
            if self._progress.state == "running":
                self._progress = dataclasses.replace(self._progress, state="stopping")
        if self.slots is not None:
            self.slots.wake()

    def snapshot(self) -> P:
        """The progress now (immutable; elapsed time and queue place filled in)."""
        with self.lock:
            progress = self._progress
            started = self.started_at
        changes: dict[str, Any] = {}
        if started is not None and not progress.done:
            changes["elapsed_seconds"] = time.perf_counter() - started
        if progress.state == "queued" and self.slots is not None:
            changes["queue_position"] = self.slots.position(self)
        return dataclasses.replace(progress, **changes) if changes else progress

    def update(self, **changes: Any) -> None:
        """Replace some fields of the progress (atomically; in a child, also in the parent)."""
        with self.lock:
            self._progress = dataclasses.replace(self._progress, **changes)
        if self._relay is not None:
            self._relay.send(("update", changes))

    def append(self, **items: Any) -> None:
        """Add one item to each named tuple field (atomically), e.g. ``append(val_loss=0.3)``."""
        with self.lock:
            p = self._progress
            self._progress = dataclasses.replace(
                p, **{name: (*getattr(p, name), value) for name, value in items.items()}
            )
        if self._relay is not None:
            self._relay.send(("append", items))

    @property
    def progress(self) -> P:
        """The current progress object (no elapsed-time refresh; see ``snapshot``)."""
        with self.lock:
            return self._progress

    # -- a child process ----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """What a child process receives: everything but the parent's lock, events, thread,
        slots and pipe (the child gets its own, and its stop event in ``attach_child``)."""
        state = self.__dict__.copy()
        for name in ("lock", "stop_event", "done_event", "thread", "slots", "_relay", "_timer"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.done_event = threading.Event()
        self.thread = None
        self.slots = None
        self._relay = None
        self._timer = None

    def attach_child(self, conn: Any, stop: Any) -> None:
        """In the child process: report through ``conn``, stop when ``stop`` is set."""
        self._relay = conn
        self.stop_event = stop

    def export_result(self) -> Any:
        """In the child, after ``work()``: what the parent needs (picklable)."""
        return None

    def import_result(self, result: Any) -> None:
        """In the parent: take what ``export_result`` returned in the child."""

    # -- the thread --------------------------------------------------------------------------

    def work(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_work(self) -> None:
        run_work(self)  # in this thread, a child process or a cluster's actor

    def restart_clock(self, *, running: bool = True) -> None:
        """Called where the work runs, from ``run()``'s thread: the work starts now (the
        elapsed time and the time limit count from here), or with ``running=False`` it waits
        (e.g. for a free slot on the cluster): neither counts until the next call."""
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._start_timer() if running else None
            self.started_at = time.perf_counter() if running else None

    def _start_timer(self) -> threading.Timer:
        timer = threading.Timer(self.max_seconds, self._time_up)
        timer.daemon = True
        timer.start()
        return timer

    def failure_message(self, exc: Exception) -> str:
        """The learner's message for an exception raised by ``work``."""
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, CNNLabError):
            message = f"{type(exc).__name__}: {message}"
            if len(message) > 600:
                message = message[:600] + " …"
        return message

    def time_limit_message(self) -> str:
        """The learner's message when the time limit stopped the work (``max_seconds``)."""
        return (
            f"Stopped after {_duration_text(self.max_seconds)}, the time limit per run here; "
            "what was done so far is kept. Use fewer images or epochs."
        )

    def on_failure(self) -> None:
        """Called after a failure (e.g. drop a half-built model)."""

    def on_exit(self) -> None:
        """Called last in the thread, whatever happened (e.g. free the data)."""

    def _time_up(self) -> None:
        self.timed_out = True
        self.request_stop()

    def run(self) -> None:
        acquired = False
        try:
            if self.slots is not None:
                acquired = self.slots.acquire(self, self.stop_event)
                if not acquired:
                    self.update(state="stopped", queue_position=None)
                    return
            with self.lock:
                self.started_at = time.perf_counter()
                self._timer = self._start_timer()
            self.update(
                state="stopping" if self.stop_event.is_set() else "running", queue_position=None
            )
            self._run_work()
            changes: dict[str, Any] = {
                "state": "stopped" if self.stop_event.is_set() else "finished"
            }
            if self.timed_out:
                changes["message"] = self.time_limit_message()
            self.update(**changes)
        except Exception as exc:  # reported to the page, never raised into Streamlit
            self.on_failure()
            self.update(state="failed", error=self.failure_message(exc))
        finally:
            with self.lock:
                if self._timer is not None:
                    self._timer.cancel()
            if acquired and self.slots is not None:
                self.slots.release(self)
            if self.started_at is not None:
                self.update(elapsed_seconds=time.perf_counter() - self.started_at)
            self.on_exit()
            self.done_event.set()


_START_LISTENERS: list[Callable[[TaskHandle], None]] = []
_START_LISTENERS_LOCK = threading.Lock()


def add_start_listener(listener: Callable[[TaskHandle], None]) -> None:
    """Call ``listener(handle)`` in the starting thread each time a task starts (once per
    listener, however often it is added): e.g. to stop a session's tasks when it ends."""
    with _START_LISTENERS_LOCK:
        if listener not in _START_LISTENERS:
            _START_LISTENERS.append(listener)


class TaskHandle(Generic[P]):
    """The page's side of a task: keep it in session state and poll ``snapshot()``.

    When the handle is garbage-collected, the task stops (the worker never refers back).
    """

    def __init__(self, worker: TaskWorker[P]):
        self._worker = worker
        self._finalizer = weakref.finalize(self, worker.request_stop)

    def start(self):
        """Join the slot queue and start the thread (once); returns the handle. Raises
        ``ServerBusyError`` (nothing started) when the queue is full."""
        worker = self._worker
        if worker.thread is None:
            if worker.slots is not None:
                worker.slots.join(worker)
            worker.thread = threading.Thread(
                target=worker.run, name=worker.thread_name, daemon=True
            )
            worker.thread.start()
            with _START_LISTENERS_LOCK:
                listeners = list(_START_LISTENERS)
            for listener in listeners:
                listener(self)
        return self

    def stop(self) -> None:
        """End the work at its next check (or leave the queue); what was done is kept."""
        self._worker.request_stop()

    def pause(self) -> None:
        """Hold work that waits on ``control`` (a training: before its next batch)."""
        self._worker.control.pause()

    def resume(self) -> None:
        self._worker.control.resume()

    @property
    def pause_requested(self) -> bool:
        """Pause was asked (the work holds at its next check; ``snapshot().paused`` once
        it does)."""
        return self._worker.control.paused

    def step(self) -> bool:
        """While paused, run one more step (a batch) and hold again (True); False when not
        paused."""
        return self._worker.control.step()

    def set_learning_rate(self, value: float) -> float:
        """A training uses ``value`` from its next batch on; returns it. Raises
        ``InvalidArgumentError`` unless 0 < value ≤ 10."""
        return self._worker.control.set_learning_rate(value)

    def snapshot(self) -> P:
        return self._worker.snapshot()

    def wait(self, timeout: float | None = None) -> P:
        """Block until the task is done (or ``timeout`` seconds); returns a snapshot."""
        self._worker.done_event.wait(timeout)
        return self.snapshot()

    @property
    def started(self) -> bool:
        return self._worker.thread is not None

    @property
    def done(self) -> bool:
        return self._worker.done_event.is_set()
