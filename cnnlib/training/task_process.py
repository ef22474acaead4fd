"""Run a task's ``work()`` in a child process, so that its memory is returned when it ends.

Why: TensorFlow keeps part of every model it trains for the life of the process (measured
with TF 2.21 / Keras 3.15 on this project's fast convnet: about 18 MB per ``model.fit``
with Adam, 4 MB with SGD, none for building, loading or predicting). On a shared server
that is hours of visitors' trainings adding up to an out-of-memory kill that logs every
visitor out. A child process gives all of it back when it exits, and a runaway training
is ended on its own instead of taking the server down.

How: ``run_in_child(worker)`` starts a fresh interpreter, ``python -m cnnlib.training.task_process``
(never ``fork`` a process that runs TensorFlow's threads; and not ``multiprocessing``'s
"spawn", which re-runs the parent's ``__main__`` in the child: under Streamlit that is the
app script). The child listens on a ``multiprocessing.connection.Listener`` (a private
Unix socket or named pipe, with a random ``authkey``) whose address it prints; the parent
connects, sends the pickled worker, and relays what the child reports until it ends:

- the child's ``worker.update`` / ``worker.append`` calls come through the connection and
  are applied to the parent's worker, so ``snapshot()`` shows live progress as before;
- Pause, Step and a new learning rate (the worker's ``control``,
  ``cnnlib.training.control``) go down the same connection as ("control", state);
- Stop (the parent's ``stop_event``: a click, the time limit, the session's end) is sent
  to the child, whose training checks it at every batch; a child whose parent is gone
  stops too (at its next batch, or after ``START_SECONDS`` if it never got its job);
- at the end the child sends ``worker.export_result()`` (e.g. the model as ``.keras`` bytes)
  or its failure message, and the parent calls ``worker.import_result(...)``; the child,
  with nothing left to do, is then killed rather than waited for (as a Ray actor is);
- the child's resident memory is read every ``POLL_SECONDS`` from ``/proc`` (Linux only;
  elsewhere there is no memory cap); above
  ``budgets().training_process_bytes`` the child is killed and the task fails with a
  message; a child that dies (killed, crashed) fails the task, never the server;
- a child that has not ended after a stop request is killed once ``STOP_GRACE_SECONDS``
  have passed and it has spent that much processor time since (it ignores Stop), or once
  ``STOP_WAIT_SECONDS`` have passed (it hangs): ``StopClock``. Processor time, not only
  wall-clock time: on a busy machine a child below the pages' priority gets little of the
  cores, and finishing its batch and saving its model may take minutes while it computes
  for a second;
- a child runs ``CHILD_NICENESS`` below the server's CPU priority: the pages stay responsive
  while it trains.

The child's first seconds go to importing TensorFlow (6–7 s on a 2-core machine, and about
600 MB). ``prewarm()`` pays them before anyone waits: it starts one spare child that
imports TensorFlow, Keras and the training code, then waits for a task; the next
``run_in_child`` takes it instead of starting a fresh one, and starts the next spare once
its task has ended (not during it: the two would share the cores). A spare runs one task,
like any child, so each task's memory still goes back when it ends; it ends itself when its
parent is gone or after ``SPARE_SECONDS`` unused. ``$CNNLAB_SPARE_PROCESS=0`` turns spares off.
``$CNNLAB_TRAINING_PROCESS=0`` runs
tasks in a thread of the server instead (no isolation; e.g. for a debugger), unless a job
asks for ``isolate=True``; so does a job that does not pickle (a logged warning).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import secrets
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from cnnlib.core.budgets import budgets, format_bytes
from cnnlib.core.errors import BudgetError, CNNLabError, InvalidArgumentError

__all__ = [
    "POLL_SECONDS",
    "STOP_GRACE_SECONDS",
    "STOP_WAIT_SECONDS",
    "StopClock",
    "TaskProcessError",
    "apply_message",
    "isolation_enabled",
    "not_stopped_error",
    "over_memory_error",
    "pickled_for_child",
    "prewarm",
    "process_cpu_seconds",
    "process_rss_bytes",
    "run_in_child",
    "run_job",
    "share_gpu_memory",
    "wait_for_spare",
]

_log = logging.getLogger(__name__)

#: How often the parent reads the connection, forwards Stop and checks the child's memory.
POLL_SECONDS = 0.1
#: Work asked to stop is ended once this many seconds have passed and it has spent this much
#: processor time (all its threads) since (``StopClock``); where that cannot be read, once
#: they have passed.
STOP_GRACE_SECONDS = 30.0
#: Wall-clock seconds after a stop request after which work is ended in any case.
STOP_WAIT_SECONDS = 300.0
#: Seconds a child waits for its parent to connect and send the job before it gives up.
START_SECONDS = 120.0
#: Seconds a spare child (``prewarm``) waits for a task before it ends (its memory back).
SPARE_SECONDS = 600.0
#: How much lower a child's CPU priority is than its server's (``os.nice``): on a busy machine
#: the server's reruns, the learners' pages and the upload checks go first, and a training
#: takes what they leave (all of it when they are idle), so no page freezes while it trains.
CHILD_NICENESS = 10
#: Length of the random key that authenticates the parent's connection to its child.
AUTHKEY_BYTES = 32
#: Seconds the parent waits for a child to exit once it has ended its work.
EXIT_WAIT_SECONDS = 10.0


class TaskProcessError(CNNLabError, RuntimeError):
    """The task's process failed (its message is the child's, for the learner) or ended
    without a result (killed, out of memory, crashed)."""


def isolation_enabled() -> bool:
    """False only when ``$CNNLAB_TRAINING_PROCESS`` is "0": tasks then run in a thread."""
    return os.environ.get("CNNLAB_TRAINING_PROCESS", "").strip() != "0"


def spares_enabled() -> bool:
    """False only when ``$CNNLAB_SPARE_PROCESS`` is "0" (no spare child is kept ready)."""
    return os.environ.get("CNNLAB_SPARE_PROCESS", "").strip() != "0"


def share_gpu_memory() -> None:
    """Let the server and its trainings' processes share a GPU: TensorFlow then takes GPU
    memory as it needs it instead of all of it at start (``TF_FORCE_GPU_ALLOW_GROWTH``,
    unless already set). Call before TensorFlow starts; children inherit it."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def pickled_for_child(worker: Any, *, required: bool) -> bytes | None:
    """The worker pickled for a child process; when it does not pickle (e.g. a model builder
    that is a local function or a lambda): None, with a logged warning, or when
    ``required``, ``InvalidArgumentError`` saying what to change."""
    try:
        return pickle.dumps(worker, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # whatever a user's builder or callback raises when pickled
        refuse_or_warn_unpicklable(worker, exc, required=required, where="in its own process")
        return None


def refuse_or_warn_unpicklable(worker: Any, exc: Exception, *, required: bool, where: str) -> None:
    """A worker that does not pickle (``exc``): ``InvalidArgumentError`` saying what to
    change when ``required`` (``where``: "in its own process", "on the training cluster"),
    else a logged warning (it then runs in the server's own process)."""
    if required:
        raise InvalidArgumentError(
            f"This training cannot run {where} because part of it cannot be copied there "
            f"({exc}). Pass module-level functions (or functools.partial of them) as the "
            "model builder and callbacks, or isolate=False."
        ) from exc
    _log.warning(
        "Training in the server's own process: %s does not pickle (%s).",
        type(worker).__name__,
        exc,
    )


def process_cpu_seconds(pid: int) -> float | None:
    """Processor time process ``pid`` has used (user + system, all its threads), seconds;
    None where ``/proc`` has no such process (ended, or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (``VmRSS``), or None where ``/proc`` has
    no such process (ended, or not Linux)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


# --------------------------------------------------------------------------------------------
# The child: python -m cnnlib.training.task_process
# --------------------------------------------------------------------------------------------


def _listen_for_stop(conn: Any, stop: threading.Event, control: Any) -> None:
    """In the child: set ``stop`` when the parent says "stop" or is gone; pass ("control",
    state) messages (pause, step, learning rate) to the worker's ``control``."""
    try:
        while (message := conn.recv()) != "stop":
            if isinstance(message, tuple) and message[0] == "control":
                control.sync(message[1])
    except (EOFError, OSError):
        pass
    stop.set()


def run_job(worker: Any) -> tuple[str, Any]:
    """Where the work runs (a child process, a cluster actor): ``worker.work()``, then
    ("done", ``worker.export_result()``) or ("failed", the learner's message), the traceback
    going to this process's log."""
    try:
        worker.work()
        return ("done", worker.export_result())
    except Exception as exc:  # sent to the parent, which fails the task with this message
        traceback.print_exc()  # for the server's log; the learner gets the message
        worker.on_failure()
        return ("failed", worker.failure_message(exc))


def _warm_up() -> None:
    """In a spare child: import what tasks import first (TensorFlow, Keras and its
    applications, ONNX Runtime and tf2onnx) and let TensorFlow find its devices."""
    import keras.applications  # noqa: F401
    import tensorflow as tf

    with contextlib.suppress(ImportError):  # optional: features on a CPU (onnx_features)
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    tf.config.list_logical_devices()


def _watch_parent(parent: int, seconds: float, started: threading.Event) -> None:
    """In the child: exit when the job has not arrived within ``seconds``, or as soon as the
    process that started it (``parent``) is gone (then nobody can send it a job)."""
    deadline = time.monotonic() + seconds
    while not started.wait(1.0):
        if os.getppid() != parent or time.monotonic() > deadline:
            os._exit(3)


def child_main(spare: bool = False) -> None:
    """The child process: read the authkey from stdin, listen, print the address, (a
    ``spare``: import TensorFlow and the training code,) take the worker, run
    ``worker.work()`` and report through the connection. A parent that has not connected and
    sent the job within ``START_SECONDS`` (a spare: ``SPARE_SECONDS``) is gone: the child
    exits; so does a child whose parent ended. It runs ``CHILD_NICENESS`` below the server."""
    if hasattr(os, "nice"):  # POSIX
        os.nice(CHILD_NICENESS)
    try:
        authkey = bytes.fromhex(sys.stdin.readline().strip())
    except ValueError:
        authkey = b""
    if len(authkey) != AUTHKEY_BYTES:
        sys.exit(2)  # started by hand, or the parent died before writing the key
    started = threading.Event()
    threading.Thread(
        target=_watch_parent,
        args=(os.getppid(), SPARE_SECONDS if spare else START_SECONDS, started),
        daemon=True,
    ).start()
    with Listener(authkey=authkey) as listener:
        print(repr(listener.address), flush=True)
        address_pipe = os.dup(1)  # (a spare says "warm" there once warmed up)
        os.dup2(2, 1)  # anything printed later goes to stderr, not the address pipe
        if spare:
            _warm_up()
            with contextlib.suppress(OSError):  # a parent that took it may have closed it
                os.write(address_pipe, b"warm\n")
        os.close(address_pipe)
        conn = listener.accept()
    worker = pickle.loads(conn.recv_bytes())
    started.set()
    stop = threading.Event()
    threading.Thread(
        target=_listen_for_stop, args=(conn, stop, worker.control), daemon=True
    ).start()
    worker.attach_child(conn, stop)
    message = run_job(worker)
    try:
        conn.send(message)
    except OSError:
        pass  # the parent is gone: nobody is left to tell
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------------------------


@dataclass
class _Child:
    """A started child process, its authkey and (once read) the address it listens on."""

    process: subprocess.Popen
    authkey: bytes
    address: str | None = None

    def read_address(self) -> str:
        """The address line the child printed first ("" when it died first)."""
        if self.address is None:
            self.address = self.process.stdout.readline().strip()
        return self.address


_SPARE_LOCK = threading.Lock()
#: The spare child (``prewarm``), until a task takes it.
_spare: _Child | None = None


def _launch(*, spare: bool) -> _Child:
    """A new child process (a ``spare`` warms up first), its authkey written to it."""
    authkey = secrets.token_bytes(AUTHKEY_BYTES)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    child = subprocess.Popen(
        [sys.executable, "-m", "cnnlib.training.task_process", *(["--spare"] if spare else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        child.stdin.write(authkey.hex() + "\n")
        child.stdin.close()
    except OSError:
        pass  # it died at once: reading its address fails in _start_child
    return _Child(child, authkey)


def prewarm() -> bool:
    """Keep one spare child ready for the next task, TensorFlow imported (see the module).
    Returns at once (the spare warms up on its own); True when a spare is ready or warming,
    False when tasks run in threads or ``$CNNLAB_SPARE_PROCESS`` is "0". Call it where a
    training is likely soon (a page that trains, opened)."""
    global _spare
    if not (isolation_enabled() and spares_enabled()):
        return False
    with _SPARE_LOCK:
        if _spare is None or _spare.process.poll() is not None:
            _spare = _launch(spare=True)
    return True


def wait_for_spare() -> bool:
    """Block until the spare child has warmed up: True; False when there is none or it
    died. (For benchmarks and tests: tasks never wait for a spare.)"""
    with _SPARE_LOCK:
        if _spare is None:
            return False
        _spare.read_address()
        return _spare.process.stdout.readline().strip() == "warm"


def _take_spare() -> _Child | None:
    """The spare child, when one is alive (it is then no longer the spare)."""
    global _spare
    with _SPARE_LOCK:
        taken, _spare = _spare, None
    if taken is not None and taken.process.poll() is None:
        return taken
    return None


@atexit.register
def _end_spare() -> None:
    taken = _take_spare()
    if taken is not None:
        taken.process.kill()


def _start_child() -> tuple[subprocess.Popen, Any]:
    """(the child process, a connection to it), once it listens: the spare when one is
    ready (``prewarm``), else a new one. Raises ``TaskProcessError`` when it cannot be
    started or reached (nothing is left running)."""
    import ast

    started = _take_spare() or _launch(spare=False)
    child = started.process
    try:
        address = started.read_address()
        child.stdout.close()
        return child, Client(ast.literal_eval(address), authkey=started.authkey)
    except Exception as exc:  # a dead child, a refused or unauthenticated connection, …
        child.kill()
        code = child.wait()
        raise TaskProcessError(
            f"The training's own process could not be started (exit code {code}). Try again "
            "in a minute; if it keeps failing, the server is short of memory."
        ) from exc
    except BaseException:
        child.kill()
        child.wait()
        raise


def apply_message(worker: Any, kind: str, payload: Any) -> None:
    """Apply one ("update" | "append", fields) message from where the work runs to the
    server's worker (its progress)."""
    if kind == "update":
        worker.update(**payload)
    elif kind == "append":
        worker.append(**payload)


def over_memory_error(limit: int, rss: int) -> BudgetError:
    """The learner's message for a training ended at ``rss`` bytes, over ``limit``."""
    return BudgetError(
        f"The training needed more than {format_bytes(limit)} of memory "
        f"({format_bytes(rss)} when it was stopped), the most one training may "
        "use here. Use a smaller batch size, image size or network."
    )


class StopClock:
    """Since a stop request: whether the work is overdue (``overdue``).

    It is once ``STOP_WAIT_SECONDS`` have passed, or once both ``STOP_GRACE_SECONDS`` have
    passed and it has spent that much processor time (all its threads) since Stop: never
    sooner than the grace in wall-clock time, also where many cores spend processor time
    faster. ``cpu_readable``: whether the work's processor time can be read where it runs
    (False: the grace is wall-clock time alone). ``cpu_seconds``: its processor time when
    Stop was asked, or None until ``start_cpu`` says it (a Ray actor's answer to Stop)."""

    def __init__(
        self, cpu_seconds: float | None, *, cpu_readable: bool = True, now: float | None = None
    ):
        self.asked = time.monotonic() if now is None else now
        self.cpu_start = cpu_seconds
        self.cpu_readable = cpu_readable

    def start_cpu(self, cpu_seconds: float) -> None:
        """The work's processor time when it got the stop request, seconds."""
        self.cpu_start = cpu_seconds

    def overdue(self, cpu_seconds: float | None, now: float | None = None) -> str | None:
        """Why the work must now be ended (the end of a sentence starting "The training"),
        given its processor time now (None: no new reading); None while it may go on."""
        waited = (time.monotonic() if now is None else now) - self.asked
        if waited > STOP_WAIT_SECONDS:
            return f"had not ended {_duration(STOP_WAIT_SECONDS)} after Stop"
        if waited <= STOP_GRACE_SECONDS:
            return None
        if not self.cpu_readable:
            return f"had not ended {_duration(STOP_GRACE_SECONDS)} after Stop"
        if cpu_seconds is None or self.cpu_start is None:
            return None
        if cpu_seconds - self.cpu_start > STOP_GRACE_SECONDS:
            return (
                f"went on computing after Stop ({_duration(STOP_GRACE_SECONDS)} of processor time)"
            )
        return None


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def not_stopped_error(reason: str) -> TaskProcessError:
    """The learner's message for a training ended because it did not stop
    (``StopClock.overdue``'s ``reason``)."""
    return TaskProcessError(
        f"The training {reason} and was ended; nothing it learned could be kept."
    )


def _ended_unexpectedly(code: int | None) -> TaskProcessError:
    why = "it ran out of memory or was killed" if code is not None and code < 0 else "it crashed"
    return TaskProcessError(
        f"The training's process ended unexpectedly (exit code {code}: {why}); nothing it "
        "learned could be kept. Try again, with a smaller batch size or fewer images."
    )


def run_in_child(worker: Any, *, required: bool = True) -> bool:
    """Run ``worker.work()`` in a child process and relay its progress until it ends.

    Returns True once ``worker.import_result(...)`` has taken the child's result; False,
    having started nothing, when the worker does not pickle and is not ``required`` to run
    in a child (see ``pickled_for_child``). Raises ``TaskProcessError`` with the child's
    message when ``work()`` failed there, or when the child ended without a result;
    ``BudgetError`` when it passed the memory budget.
    """
    limit = budgets().training_process_bytes
    payload = pickled_for_child(worker, required=required)
    if payload is None:
        return False
    had_spare = _spare is not None
    child, conn = _start_child()
    worker.update(process_id=child.pid)
    peak = 0
    stop_clock: StopClock | None = None
    next_check = 0.0
    control_sent = -1  # send the state once at the start; the child ignores what it has
    reported = False  # the child sent its result or its failure: nothing is left for it to do
    try:
        try:
            conn.send_bytes(payload)
        except OSError:
            raise _ended_unexpectedly(child.poll()) from None
        del payload  # the child has its copy
        while True:
            if worker.stop_event.is_set() and stop_clock is None:
                cpu = process_cpu_seconds(child.pid)
                stop_clock = StopClock(cpu, cpu_readable=cpu is not None)
                with contextlib.suppress(OSError):  # the child may have just ended
                    conn.send("stop")
            if worker.control.version != control_sent and stop_clock is None:
                state = worker.control.state()
                control_sent = state["version"]
                with contextlib.suppress(OSError):
                    conn.send(("control", state))
            try:
                message = conn.recv() if conn.poll(POLL_SECONDS) else None
            except (EOFError, OSError):
                break  # the child is gone without a result
            except Exception as exc:  # a message that does not unpickle here
                raise TaskProcessError(
                    "The training's process sent something this server cannot read; it was "
                    "ended. Try again."
                ) from exc
            if message is not None:
                kind, payload = message
                reported = kind in ("done", "failed")
                if kind == "done":
                    worker.update(process_peak_bytes=peak)
                    try:
                        worker.import_result(payload)
                    except Exception as exc:
                        raise TaskProcessError(
                            "The training finished, but its model could not be loaded back "
                            "into the server. Try again."
                        ) from exc
                    return True
                if kind == "failed":
                    worker.update(process_peak_bytes=peak)
                    raise TaskProcessError(payload)
                apply_message(worker, kind, payload)
            now = time.monotonic()
            if now < next_check:
                continue  # memory and time are checked every POLL_SECONDS, messages or not
            next_check = now + POLL_SECONDS
            rss = process_rss_bytes(child.pid) or 0
            peak = max(peak, rss)
            if rss > limit:
                child.kill()
                worker.update(process_peak_bytes=peak)
                raise over_memory_error(limit, rss)
            overdue = stop_clock and stop_clock.overdue(process_cpu_seconds(child.pid), now)
            if overdue:
                child.kill()
                worker.update(process_peak_bytes=peak)
                raise not_stopped_error(overdue)
        try:
            code = child.wait(EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        worker.update(process_peak_bytes=peak)
        raise _ended_unexpectedly(code)
    finally:
        conn.close()
        if reported:
            # Its interpreter's exit (TensorFlow's teardown) takes seconds on a busy machine,
            # and the slot waits for it: ended now, its memory goes back at once.
            child.kill()
        try:
            child.wait(EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if had_spare:
            prewarm()  # the next learner's, now that this task's cores are free


if __name__ == "__main__":
    child_main(spare="--spare" in sys.argv[1:])
