"""Pause, Step and a new learning rate (``cnnlib.training.control``), counted, never timed:
the handle's side and the work's side of one ``TaskControl``, its copy in another process
(``sync``), and a task held by it that Stop and the time limit still end. The same requests
reaching a real training in a child process: ``tests/test_task_process.py``."""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass

import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.control import TaskControl
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker
from tests.conftest import wait_for

WAIT = 60  # seconds: a bound for a broken control, not a speed target


@dataclass(frozen=True)
class StepProgress(TaskProgress):
    steps: int = 0


class Stepper(TaskWorker[StepProgress]):
    """Runs ``target`` steps, each after ``control.wait_turn`` (as a training's batches)."""

    def __init__(self, target: int, **kwargs):
        super().__init__(StepProgress(), isolate=False, **kwargs)
        self.target = target

    def work(self) -> None:
        for i in range(self.target):
            if not self.control.wait_turn(self.stop_event, lambda p: self.update(paused=p)):
                return
            self.update(steps=i + 1)


def _held_at(handle: TaskHandle, steps: int) -> StepProgress:
    seen = []
    assert wait_for(lambda: (p := handle.snapshot()).paused and seen.append(p) is None, WAIT)
    assert seen[0].steps == steps
    return seen[0]


def test_step_runs_exactly_one_step_and_resume_runs_the_rest():
    handle = TaskHandle(Stepper(10))
    handle.pause()
    handle.start()
    _held_at(handle, 0)
    for n in (1, 2, 3):
        assert handle.step()
        assert wait_for(lambda n=n: handle.snapshot().steps == n, WAIT)
        _held_at(handle, n)  # held again after exactly one
    handle.resume()
    p = handle.wait(WAIT)
    assert (p.state, p.steps, p.paused) == ("finished", 10, False)


def test_a_step_pressed_while_running_is_refused_and_never_runs_later():
    control = TaskControl()
    assert not control.step() and control.steps == 0
    control.pause()
    assert control.step() and control.steps == 1
    control.resume()
    stop = threading.Event()
    assert control.wait_turn(stop)  # running: the unspent Step is dropped
    control.pause()
    released = threading.Event()
    waiter = threading.Thread(target=lambda: control.wait_turn(stop) and released.set())
    waiter.start()
    stop.set()  # only Stop ends this wait: no old Step let it through
    waiter.join(WAIT)
    assert not waiter.is_alive() and not released.is_set()


def test_a_paused_task_is_still_stopped_and_timed_out():
    handle = TaskHandle(Stepper(10))
    handle.pause()
    handle.start()
    _held_at(handle, 0)
    handle.stop()
    p = handle.wait(WAIT)
    assert (p.state, p.steps) == ("stopped", 0)
    timed = TaskHandle(Stepper(10, max_seconds=0.5))
    timed.pause()
    p = timed.start().wait(WAIT)
    assert p.state == "stopped" and p.steps == 0 and "time limit" in p.message


def test_the_learning_rate_is_taken_once_per_request_and_checked():
    control = TaskControl()
    assert control.take_learning_rate() is None
    assert control.set_learning_rate(0.01) == 0.01
    assert control.take_learning_rate() == 0.01
    assert control.take_learning_rate() is None
    control.set_learning_rate(0.5)
    control.set_learning_rate(0.2)  # two before the next batch: the latest wins
    assert control.take_learning_rate() == 0.2
    for bad in (0, -1, 11, float("nan"), "0.1", True):
        with pytest.raises(InvalidArgumentError):
            control.set_learning_rate(bad)


def test_a_copy_elsewhere_follows_newer_states_only():
    handle_side = TaskControl()
    work_side = pickle.loads(pickle.dumps(handle_side))
    handle_side.pause()
    handle_side.step()
    handle_side.set_learning_rate(0.05)
    old = handle_side.state()
    handle_side.step()
    work_side.sync(handle_side.state())
    work_side.sync(old)  # late or repeated: ignored
    assert (work_side.paused, work_side.steps) == (True, 2)
    stop = threading.Event()
    assert work_side.wait_turn(stop) and work_side.wait_turn(stop)  # two Steps to spend
    assert work_side.take_learning_rate() == 0.05
    work_side.sync(handle_side.state())  # the same state again: nothing to spend twice
    assert work_side.take_learning_rate() is None
    stop.set()
    assert not work_side.wait_turn(stop)
