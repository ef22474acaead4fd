"""What the backend contract tests send where the work runs: model builders, and a small
task worker that pickles and runs in a child process or a Ray actor without TensorFlow (a
second to start, not five), to exercise the seam: progress in order, Stop, a result, an
error, memory, a killed process.

Importable wherever the work runs (the child process and the Ray actors get the project
root on their path)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training.tasks import TaskProgress, TaskWorker

#: A tiny convnet for 28 × 28 digits (the builders below; a test module's own functions
#: cannot be imported where the work runs).
SMALL = [
    LayerSpec.conv2d(8, 3, strides=2, padding="same"),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]


def small_model(seed=None):
    return build_from_stack(SMALL, seed=seed)


def report_pid_model(seed=None):
    raise RuntimeError(f"built in process {os.getpid()}")


@dataclass(frozen=True)
class CountProgress(TaskProgress):
    count: int = 0
    seen: tuple[int, ...] = ()


class Counter(TaskWorker[CountProgress]):
    """Counts to ``target`` (or, with ``until_stopped``, until Stop), one ``update`` and one
    ``append`` per step, ``pause`` seconds apart. ``hog_bytes``: first fill that much
    memory; ``kill``: die by SIGKILL first; ``fail``: raise first, naming the process.
    After Stop: ``linger`` seconds asleep before it ends (no processor time: like a training
    finishing its batch on a busy machine that gives it none), or ``spin`` seconds of
    computing that ignore Stop (like a training that does not stop).
    Its result: {"count": steps done, "pid": the process that counted, "tensorflow": 1 when
    TensorFlow was imported there (a spare process's warm-up), else 0, "niceness": that
    process's CPU niceness (0 where there is none)}."""

    process_safe = True
    thread_name = "cnnlab-test-counter"

    def __init__(
        self,
        target: int = 0,
        *,
        until_stopped: bool = False,
        pause: float = 0.0,
        hog_bytes: int = 0,
        kill: bool = False,
        fail: bool = False,
        linger: float = 0.0,
        spin: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(CountProgress(), **kwargs)
        self.target, self.until_stopped, self.pause = target, until_stopped, pause
        self.hog_bytes, self.kill, self.fail = hog_bytes, kill, fail
        self.linger, self.spin = linger, spin
        self.done_count = 0
        self.result: dict[str, int] | None = None

    def work(self) -> None:
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail:
            raise RuntimeError(f"failed in process {os.getpid()}")
        hog = np.ones(self.hog_bytes, np.uint8) if self.hog_bytes else None
        i = 0
        while (self.until_stopped or i < self.target) and not self.stop_event.is_set():
            self.update(count=i + 1)
            self.append(seen=i)
            i += 1
            if self.pause:
                self.stop_event.wait(self.pause)
        time.sleep(self.linger)
        end = time.monotonic() + self.spin
        while time.monotonic() < end:
            pass
        self.done_count = i
        del hog

    def export_result(self) -> dict[str, int]:
        warm = int("tensorflow" in sys.modules)
        niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
        return {
            "count": self.done_count,
            "pid": os.getpid(),
            "tensorflow": warm,
            "niceness": niceness,
        }

    def import_result(self, result: dict[str, int]) -> None:
        self.result = result
