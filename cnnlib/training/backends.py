"""Where a task's work runs: the one seam between the task base and the machines.

``run_work(worker)`` runs a ``cnnlib.training.tasks.TaskWorker``'s ``work()`` on one of
three backends and returns when it has ended, its progress relayed into ``worker`` as it
went and its result taken (``worker.import_result``):

- "process" (the default): a child process of the server (``cnnlib.training.task_process``),
  so that TensorFlow's memory goes back to the system when the training ends;
- "ray", when ``$CNNLAB_RAY_ADDRESS`` is set: an actor on a Ray cluster
  (``cnnlib.training.ray_backend``; Ray is imported only then);
- "thread": the task's own thread in the server (no isolation; a debugger sees it), for a
  worker that is not ``process_safe``, one made with ``isolate=False``, or every worker when
  ``$CNNLAB_TRAINING_PROCESS`` is "0" (unless it asks for ``isolate=True``).

Every backend keeps the same protocol: progress through ``worker.update`` / ``append``,
Stop through ``worker.stop_event`` (what was learned is kept), the result through
``export_result`` / ``import_result``, and a failure as an exception whose text is the
learner's message (``TaskProcessError``, ``BudgetError``). A worker that does not pickle
runs in the thread instead (a logged warning), or fails when it asked for ``isolate=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

from cnnlib.training.ray_backend import RayBackend, ray_address
from cnnlib.training.task_process import isolation_enabled, prewarm, run_in_child

__all__ = [
    "BACKENDS",
    "Backend",
    "ProcessBackend",
    "ThreadBackend",
    "backend_for",
    "backend_name",
    "get_ready",
    "run_work",
]

#: The backends, by name.
BACKENDS = ("thread", "process", "ray")


class Backend(Protocol):
    """Runs a worker's ``work()`` somewhere and relays it back (see the module docstring)."""

    name: str

    def run(self, worker: Any, *, required: bool) -> bool:
        """True once the work has ended there and its result is in ``worker``; False,
        having started nothing, when the worker does not pickle and is not ``required``
        to leave the thread. Raises the learner's message as an exception."""
        ...


class ThreadBackend:
    """In the calling thread (the task's own thread of the server)."""

    name = "thread"

    def run(self, worker: Any, *, required: bool = False) -> bool:
        worker.update(process_id=os.getpid())
        worker.work()
        return True


class ProcessBackend:
    """In a child process of the server (``cnnlib.training.task_process.run_in_child``)."""

    name = "process"

    def run(self, worker: Any, *, required: bool) -> bool:
        return run_in_child(worker, required=required)


_THREAD = ThreadBackend()
_PROCESS = ProcessBackend()
_RAY = RayBackend()


def backend_name(environ: Mapping[str, str] | None = None) -> str:
    """The backend of process-safe work: "ray" when ``$CNNLAB_RAY_ADDRESS`` is set, else
    "process". Raises ``InvalidArgumentError`` for a Ray Client address (``ray://``)."""
    return "ray" if ray_address(environ) is not None else "process"


def backend_for(worker: Any) -> Backend:
    """Where ``worker`` runs: the thread when it may not leave it (not ``process_safe``,
    ``isolate=False``, or ``$CNNLAB_TRAINING_PROCESS=0`` without ``isolate=True``), else
    ``backend_name()``'s backend."""
    isolate = getattr(worker, "isolate", None) if getattr(worker, "process_safe", False) else False
    if isolate is False or (isolate is None and not isolation_enabled()):
        return _THREAD
    return _RAY if backend_name() == "ray" else _PROCESS


def run_work(worker: Any) -> None:
    """Run ``worker.work()`` where it belongs and relay it back (see the module docstring).
    A worker that does not pickle, and may stay, runs in the thread."""
    backend = backend_for(worker)
    if not backend.run(worker, required=bool(getattr(worker, "isolate", False))):
        _THREAD.run(worker)


def get_ready() -> bool:
    """Where the next task will run in a child process, have one ready with TensorFlow
    imported (``task_process.prewarm``: 6–7 s less to wait after Start on a 2-core
    machine). True when a spare is ready or warming. Call it from a page whose Start is
    enabled; it returns at once."""
    if backend_name() != "process":
        return False
    return prewarm()
