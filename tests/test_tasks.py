"""cnnlib.tasks: the background-task base (states, stop, time limit, slots, handle GC)."""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from dataclasses import dataclass

import pytest

from cnnlib.errors import InvalidArgumentError, InvalidImageError
from cnnlib.tasks import (
    DEFAULT_MAX_SECONDS,
    TaskHandle,
    TaskProgress,
    TaskWorker,
    TrainingSlots,
    default_max_seconds,
)


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


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


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
    assert wait_for(lambda: a.snapshot().state == "running")
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


def test_the_default_time_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_TRAINING_SECONDS", "42")
    assert default_max_seconds() == 42 and Counter(1).max_seconds == 42
    monkeypatch.setenv("CNNLAB_MAX_TRAINING_SECONDS", "soon")
    assert default_max_seconds() == DEFAULT_MAX_SECONDS == 900
    monkeypatch.delenv("CNNLAB_MAX_TRAINING_SECONDS")
    assert default_max_seconds() == 900
    with pytest.raises(InvalidArgumentError):
        Counter(1, max_seconds=-1)
