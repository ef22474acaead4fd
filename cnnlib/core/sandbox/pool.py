"""The server's side of the sandbox: warm decoder processes, one job at a time each.

``Pool.run`` takes an idle decoder (starting one when fewer than ``budgets().sandbox_workers``
exist; waiting up to ``sandbox_wait_seconds`` when all are busy), sends it the request and
the file, and reads its answer, all before a wall-clock deadline: past it the decoder is
killed. A decoder that crashed, was killed, ran out of memory or sent anything malformed is
replaced by a fresh one on the next request; one that ran ``sandbox_jobs_per_worker`` jobs
is replaced at once, its successor starting in the background.

Decoders start the way ``cnnlib.training.task_process`` starts trainings: a fresh
interpreter (``python -m``, never a fork of the server's threads, never ``multiprocessing``'s
"spawn", which re-runs the app script under Streamlit). Its pipes are private to the server
(no socket to connect to), its environment minimal (no server secrets), its working
directory, ``TMPDIR`` and ``HOME`` a private temporary folder removed with it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlib.core.sandbox import tasks, wire

#: Seconds a new decoder may take to start (interpreter, imports) before it is given up.
START_SECONDS = 60.0
#: Bytes of a request's header (the options); the server writes it, the child bounds it.
REQUEST_HEADER_BYTES = 1024 * 1024
#: A decoder whose CPU time grew by more than this while idle is doing something it should
#: not (it is replaced).
IDLE_CPU_SECONDS = 0.5
#: Linux's fcntl to enlarge a pipe (fewer system calls for a big image); 1 MiB.
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_BYTES = 1024 * 1024
#: Where decoders' private folders go: the system's temporary folder as this process found it
#: (a test that redirects ``tempfile.tempdir`` afterwards does not move them).
_TMP_ROOT = tempfile.gettempdir()
#: Environment variables a decoder inherits (nothing else: no keys, tokens or addresses).
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT")


@dataclass(frozen=True)
class Limits:
    """The limits of one job (``memory_bytes``: of the decoder process that runs it)."""

    memory_bytes: int
    cpu_seconds: float
    wall_seconds: float
    result_bytes: int
    header_bytes: int


@dataclass
class Answer:
    """A decoder's answer: its header (checked to be a JSON object) and arrays (checked)."""

    header: dict
    arrays: dict[str, np.ndarray]
    wall_seconds: float


class JobFailed(Exception):
    """The decoder did not answer: ``reason`` "memory", "cpu", "time", "crash",
    "malformed", "busy" or "start"; ``detail`` says more (for the log)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU-seconds of process ``pid`` from ``/proc`` (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Worker:
    """One decoder process (``cnnlib.core.sandbox.child``) and its private folder."""

    def __init__(self, memory_bytes: int, *, lifetime_cpu_seconds: int, file_bytes: int):
        self.memory_bytes = memory_bytes
        self.folder = tempfile.mkdtemp(prefix="cnnlab-sandbox-", dir=_TMP_ROOT)
        env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
        env |= {
            "PYTHONPATH": os.pathsep.join(
                dict.fromkeys(os.path.abspath(p or os.curdir) for p in sys.path)
            ),
            "TMPDIR": self.folder,
            "HOME": self.folder,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
        }
        settings = {
            "memory_bytes": memory_bytes,
            "lifetime_cpu_seconds": lifetime_cpu_seconds,
            "file_bytes": file_bytes,
            "request_header_bytes": REQUEST_HEADER_BYTES,
            "preload": tasks.task_modules(),
        }
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-s",
                    "-B",
                    "-m",
                    "cnnlib.core.sandbox.child",
                    json.dumps(settings),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=self.folder,
                env=env,
                bufsize=0,
                close_fds=True,
            )
        except OSError as err:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise JobFailed("start", str(err)) from None
        self.to_child, self.from_child = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        for fd in (self.to_child, self.from_child):
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        self.jobs = 0
        self.healthy = True
        self.idle_cpu: float | None = None
        try:
            deadline = wire.Deadline(time.monotonic() + START_SECONDS)
            ready = wire.read_header(self.from_child, 4096, deadline)
            if ready.get("ready") is not True or ready.get("arrays"):
                raise wire.WireError("no ready message")
        except (wire.WireError, wire.PeerClosed, wire.DeadlineExceeded) as err:
            self.close()
            raise JobFailed("start", f"the decoder did not start ({type(err).__name__})") from None

    def run(self, request: dict, data: bytes | memoryview | None, limits: Limits) -> Answer:
        """Send one job and read its answer before ``limits.wall_seconds`` pass. Raises
        ``JobFailed`` (the worker is then unhealthy)."""
        start = time.monotonic()
        deadline = wire.Deadline(start + limits.wall_seconds)
        request = {**request, "cpu_seconds": limits.cpu_seconds}
        if data is not None:
            request["bytes"] = len(data)
        parts = wire.encode(request)
        if data is not None:
            parts.append(memoryview(data))
        self.jobs += 1
        try:
            wire.write_all(self.to_child, parts, deadline)
            header = wire.read_header(self.from_child, limits.header_bytes, deadline)
            plan = wire.plan_arrays(header.get("arrays", []), limits.result_bytes)
            arrays = wire.read_arrays(self.from_child, plan, deadline)
        except wire.DeadlineExceeded:
            self._fail()
            raise JobFailed("time", f"no answer within {limits.wall_seconds:g} s") from None
        except wire.PeerClosed:
            code = self._fail()
            raise self._ended(code) from None
        except wire.WireError as err:
            self._fail()
            raise JobFailed("malformed", str(err)) from None
        error = header.get("error")
        if header.get("ok") is not True or error is not None:
            kind = error.get("kind") if isinstance(error, dict) else None
            if kind != "error":
                self.healthy = False  # a child that failed otherwise exits after answering
        self.idle_cpu = _cpu_seconds(self.proc.pid)
        return Answer(header, arrays, time.monotonic() - start)

    @staticmethod
    def _ended(code: int | None) -> JobFailed:
        """Why a decoder that closed its pipe ended: SIGXCPU is its CPU limit; SIGKILL not
        sent by the server is the system's out-of-memory killer; anything else a crash
        (a C library that aborts when its memory runs out included)."""
        if code == -signal.SIGXCPU:
            return JobFailed("cpu", f"exit code {code}")
        if code == -signal.SIGKILL:
            return JobFailed("memory", "killed by the system (SIGKILL)")
        return JobFailed("crash", f"exit code {code}")

    def _fail(self) -> int | None:
        """Mark the decoder unusable and make sure it has ended; its exit code."""
        self.healthy = False
        try:
            return self.proc.wait(0.5)  # it may have ended on its own (SIGXCPU, a crash)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stayed_idle(self) -> bool:
        """False when the decoder used CPU time since its last answer (or has ended)."""
        if self.proc.poll() is not None:
            return False
        now = _cpu_seconds(self.proc.pid)
        return self.idle_cpu is None or now is None or now - self.idle_cpu <= IDLE_CPU_SECONDS

    def close(self) -> None:
        """End the decoder (closing its input ends it; killed if it does not) and remove
        its folder."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Pool:
    """Warm decoders of one memory limit, shared by every session of the server."""

    def __init__(self, memory_bytes: int):
        self.memory_bytes = memory_bytes
        self._idle: list[Worker] = []
        self._count = 0
        self._ready = threading.Condition()
        self.started = 0  # decoders started so far (for tests and the benchmark)

    def _take(self, workers: int, wait_seconds: float) -> Worker | None:
        """An idle worker, or None when the caller may start one; waits while all are busy."""
        end = time.monotonic() + wait_seconds
        with self._ready:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.stayed_idle():
                        return worker
                    self._count -= 1
                    threading.Thread(target=worker.close, daemon=True).start()
                if self._count < workers:
                    self._count += 1
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    raise JobFailed("busy", f"waited {wait_seconds:g} s for a decoder")
                self._ready.wait(left)

    def _give_back(self, worker: Worker | None, jobs_per_worker: int, limits: Limits) -> None:
        retire = worker is not None and (not worker.healthy or worker.jobs >= jobs_per_worker)
        renew = retire and worker.healthy  # worn out, not failed: its successor starts now
        with self._ready:
            if worker is None or (retire and not renew):
                self._count -= 1
            elif not retire:
                self._idle.append(worker)
            self._ready.notify()
        if retire:
            worker.close()
        if renew:
            threading.Thread(
                target=self._replace, args=(jobs_per_worker, limits), daemon=True
            ).start()

    def _new_worker(self, jobs_per_worker: int, limits: Limits) -> Worker:
        worker = Worker(
            self.memory_bytes,
            lifetime_cpu_seconds=int(jobs_per_worker * limits.cpu_seconds) + 60,
            file_bytes=limits.result_bytes,
        )
        self.started += 1
        return worker

    def _replace(self, jobs_per_worker: int, limits: Limits) -> None:
        """Start a worn-out decoder's successor in the background (its slot stays counted),
        so the next job finds a warm one."""
        try:
            worker = self._new_worker(jobs_per_worker, limits)
        except JobFailed:
            worker = None
        with self._ready:
            if worker is None:
                self._count -= 1
            else:
                self._idle.append(worker)
            self._ready.notify()

    def run(
        self,
        request: dict,
        data: bytes | memoryview | None,
        limits: Limits,
        *,
        workers: int,
        jobs_per_worker: int,
        wait_seconds: float,
    ) -> Answer:
        worker = self._take(workers, wait_seconds)
        try:
            if worker is None:
                worker = self._new_worker(jobs_per_worker, limits)
            return worker.run(request, data, limits)
        finally:
            self._give_back(worker, jobs_per_worker, limits)

    def close(self) -> None:
        with self._ready:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()


_pools: dict[int, Pool] = {}
_pools_lock = threading.Lock()


def pool(memory_bytes: int) -> Pool:
    """The server's pool of decoders limited to ``memory_bytes`` (one per limit in use)."""
    with _pools_lock:
        if memory_bytes not in _pools:
            _pools[memory_bytes] = Pool(memory_bytes)
        return _pools[memory_bytes]


@atexit.register
def close_all() -> None:
    """End every idle decoder (busy ones end when their pipe closes with the server)."""
    with _pools_lock:
        pools = list(_pools.values())
    for p in pools:
        p.close()
