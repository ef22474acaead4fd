"""cnnlib.training.tasks: the background-task base (states, stop, time limit, slots, handle GC)."""

from __future__ import annotations

import dataclasses
import gc
import threading
from dataclasses import dataclass

import pytest

from cnnlib.core.errors import BudgetError, InvalidArgumentError, InvalidImageError
from cnnlib.training.tasks import (
    DEFAULT_MAX_SECONDS,
    ServerBusyError,
    TaskHandle,
    TaskProgress,
    TaskWorker,
    TrainingSlots,
    default_max_seconds,
    default_slots,
)
from tests.conftest import wait_for


@dataclass(frozen=True)
class CountProgress(TaskProgress):
    count: int = 0
    seen: tuple[int, ...] = ()


class Counter(TaskWorker[CountProgress]):
    """Counts until ``target`` or until stopped; each step waits for ``tick``."""

    def __init__(self, target, *, fail=None, **kwargs):
        super().__init__(CountProgress(), **kwargs)
        self.target = target
        self.fail = fail
        self.tick = threading.Event()

    def work(self):
        for i in range(self.target):
            if self.stop_event.is_set():
                return
            if self.fail is not None:
                raise self.fail
            self.tick.wait(30)
            self.update(count=i + 1)
            self.append(seen=i)


def test_a_task_runs_to_the_end_and_snapshots_are_immutable():
    worker = Counter(3, slots=TrainingSlots(1))
    worker.tick.set()
    handle = TaskHandle(worker).start()
    progress = handle.wait(30)
    assert progress.state == "finished" and progress.count == 3 and progress.seen == (0, 1, 2)
    assert progress.done and progress.elapsed_seconds > 0 and progress.message is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        progress.count = 5


def test_stop_a_running_task_and_leave_the_queue():
    slots = TrainingSlots(1)
    first, second = Counter(100, slots=slots), Counter(100, slots=slots)
    a, b = TaskHandle(first).start(), TaskHandle(second)
    assert wait_for(lambda: a.snapshot().state == "running", 30)
    b.start()
    assert wait_for(lambda: b.snapshot().queue_position == 1)
    assert b.snapshot().state == "queued"
    b.stop()
    assert b.wait(30).state == "stopped" and b.snapshot().count == 0
    a.stop()
    assert a.snapshot().state in ("stopping", "stopped")
    first.tick.set()
    assert a.wait(30).state == "stopped" and slots.running == 0


def test_the_time_limit_stops_the_task_with_a_message():
    worker = Counter(10**6, max_seconds=0.3, slots=None)
    worker.tick.set()
    progress = TaskHandle(worker).start().wait(30)
    assert progress.state == "stopped" and "time limit" in progress.message
    assert 0 < progress.count < 10**6


def test_failures_are_reported_not_raised():
    handle = TaskHandle(Counter(3, fail=InvalidImageError("Not an image."))).start()
    assert handle.wait(30).state == "failed" and handle.snapshot().error == "Not an image."
    handle = TaskHandle(Counter(3, fail=KeyError("x"))).start()
    assert handle.wait(30).error.startswith("KeyError")


def test_a_garbage_collected_handle_stops_its_task():
    worker = Counter(100)
    handle = TaskHandle(worker).start()
    del handle
    gc.collect()
    worker.tick.set()
    assert worker.done_event.wait(30) and worker.snapshot().state == "stopped"


def test_the_default_time_limit_is_the_training_seconds_budget(monkeypatch):
    monkeypatch.setenv("CNNLAB_TRAINING_SECONDS", "42")
    assert default_max_seconds() == 42 and Counter(1).max_seconds == 42
    monkeypatch.setenv("CNNLAB_TRAINING_SECONDS", "soon")
    with pytest.raises(BudgetError, match="CNNLAB_TRAINING_SECONDS"):
        default_max_seconds()
    monkeypatch.delenv("CNNLAB_TRAINING_SECONDS")
    assert default_max_seconds() == DEFAULT_MAX_SECONDS == 900
    with pytest.raises(InvalidArgumentError):
        Counter(1, max_seconds=-1)


def test_a_full_queue_refuses_the_next_task_and_starts_nothing():
    """1 slot, at most 2 waiting: the 1st runs, the 2nd and 3rd wait, the 4th is refused."""
    slots = TrainingSlots(1, max_waiting=2)
    workers = [Counter(100, slots=slots) for _ in range(4)]
    handles = [TaskHandle(w) for w in workers]
    handles[0].start()
    assert wait_for(lambda: handles[0].snapshot().state == "running")
    handles[1].start(), handles[2].start()
    assert slots.running == 1 and slots.waiting == 2
    with pytest.raises(ServerBusyError) as refused:
        handles[3].start()
    assert refused.value.running == 1 and refused.value.waiting == 2
    assert "1 training is running and 2 waiting. Try again in a minute." in str(refused.value)
    assert not handles[3].started and slots.waiting == 2  # nothing queued, no thread
    # A waiting task that leaves frees its place: now the 4th is admitted.
    handles[2].stop()
    assert handles[2].wait(30).state == "stopped"
    handles[3].start()
    assert handles[3].snapshot().state == "queued" and slots.waiting == 2
    for handle, worker in zip(handles, workers, strict=True):
        handle.stop()
        worker.tick.set()
    assert all(h.wait(30).done for h in handles) and slots.running == slots.waiting == 0


def test_a_free_slot_admits_a_task_even_with_no_room_to_wait():
    slots = TrainingSlots(2, max_waiting=0)
    first, second = Counter(1, slots=slots), Counter(1, slots=slots)
    first.tick.set(), second.tick.set()
    a = TaskHandle(first).start()
    b = TaskHandle(second).start()  # the second slot is free: it does not wait
    assert a.wait(30).state == b.wait(30).state == "finished"
    held = Counter(100, slots=slots), Counter(100, slots=slots)
    running = [TaskHandle(w).start() for w in held]
    assert wait_for(lambda: slots.running == 2)
    with pytest.raises(ServerBusyError, match="2 trainings are running and 0 waiting"):
        slots.acquire(object(), threading.Event())
    for handle, worker in zip(running, held, strict=True):
        handle.stop()
        worker.tick.set()
    with pytest.raises(InvalidArgumentError):
        TrainingSlots(1, max_waiting=-1)


def test_default_slots_take_their_sizes_from_the_budgets(monkeypatch):
    from cnnlib.training import tasks

    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", None)
    monkeypatch.setenv("CNNLAB_MAX_TRAININGS", "3")
    monkeypatch.setenv("CNNLAB_TRAINING_QUEUE", "5")
    slots = default_slots()
    assert (slots.limit, slots.max_waiting) == (3, 5) and default_slots() is slots
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", None)
    monkeypatch.delenv("CNNLAB_MAX_TRAININGS")
    monkeypatch.delenv("CNNLAB_TRAINING_QUEUE")
    assert (default_slots().limit, default_slots().max_waiting) == (2, 8)
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", None)
    monkeypatch.setenv("CNNLAB_MAX_TRAININGS", "zero")
    with pytest.raises(BudgetError, match="CNNLAB_MAX_TRAININGS"):
        default_slots()
