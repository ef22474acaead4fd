"""The decoding sandbox: every untrusted file is parsed in a limited child process.

CNN Lab serves every visitor from one server process. A file built to exhaust a decoder
(a PNG that claims 30,000 rows, a JPEG with thousands of progressive scans, a zip whose
directory lies) must never cost that process more than reading a bounded answer. So the
server never parses uploaded bytes itself: it hands them to a decoder process and takes back
only arrays and facts it checks.

Use::

    result = run_in_sandbox("image", data, name="“cat.png”", max_pixels=4_000_000)
    rgb = result.array("image", dtype=np.uint8, ndim=3, max_shape=(4000, 4000, 3))
    width = result.integer("width", 1, 30_000)

**The decoders.** ``budgets().sandbox_workers`` warm processes (``python -m
cnnlib.core.sandbox.child``), started on first use, each running one job at a time and
replaced after ``sandbox_jobs_per_worker`` jobs (so their memory returns) or after any
failure. Each is limited by the operating system: ``RLIMIT_AS`` = ``sandbox_memory_bytes``
(1 GiB: interpreter, file and decoding together), ``RLIMIT_CPU`` = ``sandbox_cpu_seconds``
per job (10; the kernel ends it with SIGXCPU), ``RLIMIT_FSIZE`` = ``sandbox_result_bytes``,
no core files; and by the server: ``sandbox_wall_seconds`` per job (30) after which it is
killed. Its working directory, ``TMPDIR`` and ``HOME`` are a private temporary folder,
its environment holds nothing of the server's but ``PATH`` and the locale.

**The contract of a child-side parser** (``@sandbox_task("name")``, see ``tasks``): it
takes the file (``bytes``, or a ``pathlib.Path`` the server wrote) and JSON options, and
returns ``TaskOutput(meta, arrays)``: ``meta`` a JSON object, ``arrays`` NumPy arrays of
little-endian numbers (``wire.DTYPES``: no objects, no strings, no booleans). It keeps
metadata it does not need (text chunks, EXIF, ICC profiles) inside the child. It raises a
``CNNLabError`` subclass with a learner's message for a file it refuses.

**What crosses back** (``wire``): a JSON header and raw array bytes. Never a pickle: a
decoder taken over by a crafted file controls its own process, and unpickling its answer
would hand it the server. The server checks the header's size (``header_bytes``), every
array's dtype and shape and their total (``result_bytes``) before reading a byte of them;
``SandboxResult``'s accessors then check each value against the bounds the caller states.

**Failures** become ``SandboxError`` (``cnnlib.core.errors``; ``reason`` "memory", "cpu",
"time", "crash", "malformed", "busy" or "start") with a message naming the file and the
limit; a task's own refusal keeps its type (``InvalidImageError``, ``ArchiveError``,
``InvalidModelError``, …, whichever ``cnnlib.core.errors`` defines). Other sessions never
notice: the failed decoder is replaced on the next request.

**What the limits do not cover.** The decoder runs as the server's user: a parser taken
over by a crafted file could read files that user can read, or reach the network, until its
CPU or wall-clock limit ends it; and a server running as root lets it raise its own limits.
Run the server as an ordinary user (Streamlit Community Cloud does).

``in_process()`` runs tasks in the calling process instead, without any of this: for the
benchmark's reference and for a debugger, never for a visitor's file.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlib.core import errors
from cnnlib.core.budgets import Budgets, budgets, format_bytes
from cnnlib.core.errors import CNNLabError, InvalidArgumentError, SandboxError
from cnnlib.core.sandbox import pool as _pool
from cnnlib.core.sandbox.tasks import TaskOutput, registered, sandbox_task

__all__ = [
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "TaskOutput",
    "in_process",
    "run_in_sandbox",
    "run_many",
    "sandbox_task",
]

#: Bytes of an answer's JSON header unless the caller allows more.
HEADER_BYTES = 1024 * 1024
#: Longest error message taken from a decoder.
MAX_MESSAGE = 2000
#: Error types a decoder may name (the task's refusals, made from their message alone);
#: anything else is a SandboxError.
_REFUSALS = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type)
    and issubclass(cls, CNNLabError)
    and not any("__init__" in vars(c) for c in cls.__mro__ if c.__module__ == errors.__name__)
}


@dataclass(frozen=True)
class SandboxLimits:
    """One job's limits; ``None`` fields come from ``budgets()`` (``sandbox_*``)."""

    memory_bytes: int | None = None
    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    result_bytes: int | None = None
    header_bytes: int | None = None

    def resolved(self, b: Budgets | None = None) -> _pool.Limits:
        """The limits, ``None`` fields taken from ``b`` (``budgets()`` when not given)."""
        b = b if b is not None else budgets()
        return _pool.Limits(
            memory_bytes=int(self.memory_bytes or b.sandbox_memory_bytes),
            cpu_seconds=float(self.cpu_seconds or b.sandbox_cpu_seconds),
            wall_seconds=float(self.wall_seconds or b.sandbox_wall_seconds),
            result_bytes=int(self.result_bytes or b.sandbox_result_bytes),
            header_bytes=int(self.header_bytes or HEADER_BYTES),
        )


@dataclass
class SandboxResult:
    """A decoder's checked answer: ``meta`` (a JSON object) and ``arrays`` (dtype and shape
    checked against the wire's bounds). Read values through the accessors, which check them
    against the caller's bounds and raise ``SandboxError`` ("malformed") naming the file."""

    name: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    #: CPU-seconds, peak resident bytes and resident bytes at the start that the decoder
    #: reported for this job (its own numbers: for reports and tests, never for decisions),
    #: and the wall time the server waited.
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    base_rss_bytes: int = 0
    wall_seconds: float = 0.0

    def malformed(self, what: str) -> SandboxError:
        """The error for an answer that breaks the caller's bounds (``what``: which)."""
        return SandboxError(
            f"The reader of {self.name} sent back something this server does not accept "
            f"({what}), so the file was refused. Save it again in a common format and retry.",
            reason="malformed",
        )

    def array(
        self,
        key: str,
        *,
        dtype: Any,
        ndim: int,
        max_shape: tuple[int | None, ...] | None = None,
        min_shape: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """Array ``key`` if it has exactly ``dtype`` and ``ndim`` dimensions, each between
        ``min_shape`` and ``max_shape`` (None: no bound on that axis)."""
        arr = self.arrays.get(key)
        if arr is None or arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
            raise self.malformed(f"array {key!r} missing or of the wrong type")
        lows = min_shape or (0,) * ndim
        highs = max_shape or (None,) * ndim
        for size, lo, hi in zip(arr.shape, lows, highs, strict=True):
            if size < lo or (hi is not None and size > hi):
                raise self.malformed(f"array {key!r} of shape {arr.shape}")
        return arr

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self.meta.get(key)
        if type(value) is not int or not lo <= value <= hi:
            raise self.malformed(f"{key} must be a whole number {lo}–{hi}")
        return value

    def number(self, key: str, lo: float, hi: float) -> float:
        value = self.meta.get(key)
        if type(value) not in (int, float) or not lo <= value <= hi:
            raise self.malformed(f"{key} must be a number {lo}–{hi}")
        return float(value)

    def text(self, key: str, max_len: int, *, allowed: Iterable[str] | None = None) -> str:
        value = self.meta.get(key)
        if not isinstance(value, str) or len(value) > max_len:
            raise self.malformed(f"{key} must be text of at most {max_len} characters")
        if allowed is not None and value not in set(allowed):
            raise self.malformed(f"{key} is not one of the expected values")
        return value

    def flag(self, key: str) -> bool:
        value = self.meta.get(key)
        if not isinstance(value, bool):
            raise self.malformed(f"{key} must be true or false")
        return value

    def items(self, key: str, max_items: int) -> list:
        value = self.meta.get(key)
        if not isinstance(value, list) or len(value) > max_items:
            raise self.malformed(f"{key} must be a list of at most {max_items:,} items")
        return value


@dataclass(frozen=True)
class SandboxJob:
    """One job for ``run_many``: the same arguments as ``run_in_sandbox``."""

    task: str
    data: bytes | memoryview | Path
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    limits: SandboxLimits | None = None


_local = threading.local()


@contextlib.contextmanager
def in_process() -> Iterator[None]:
    """Within this block (this thread only), tasks run in the calling process with no limits:
    the benchmark's reference and a debugger's route. Never for a visitor's file."""
    before = getattr(_local, "in_process", False)
    _local.in_process = True
    try:
        yield
    finally:
        _local.in_process = before


def _message(name: str, reason: str, limits: _pool.Limits, detail: str) -> str:
    if reason == "memory":
        return (
            f"Reading {name} needed more than {format_bytes(limits.memory_bytes)} of memory, the "
            "most one file may use here, so it was stopped. Upload a smaller or simpler file."
        )
    if reason == "cpu":
        return (
            f"Reading {name} took more than {limits.cpu_seconds:g} CPU-seconds, the most one "
            "file may take here (it may be built to be slow to decode), so it was stopped. "
            "Save it again as an ordinary PNG or JPEG, or upload a smaller file."
        )
    if reason == "time":
        return (
            f"Reading {name} took longer than {limits.wall_seconds:g} s, the most one file may "
            "take here, so it was stopped. Try again, or upload a smaller file."
        )
    if reason == "busy":
        return (
            f"Every file reader is busy with other visitors' files ({detail}); {name} was not "
            "read. Try again in a moment."
        )
    if reason == "start":
        return f"The file reader for {name} could not be started; try again in a minute."
    if reason == "malformed":
        return (
            f"The reader of {name} sent back something this server does not accept, so the "
            "file was refused. Save it again in a common format and retry."
        )
    return (
        f"The reader of {name} stopped unexpectedly ({detail}): the file is damaged or unusual, "
        f"or needs more than {format_bytes(limits.memory_bytes)} of memory. Save it again as "
        "an ordinary PNG or JPEG and retry."
    )


def _clean(text: object) -> str:
    """A decoder's message: text only, one line per line, at most ``MAX_MESSAGE`` characters."""
    text = text if isinstance(text, str) else ""
    text = "".join(c if c == "\n" or (ord(c) >= 32 and ord(c) != 127) else " " for c in text)
    return text[:MAX_MESSAGE]


def _answer_to_result(name: str, answer: _pool.Answer, limits: _pool.Limits) -> SandboxResult:
    header = answer.header
    stats = header.get("stats") if isinstance(header.get("stats"), dict) else {}
    cpu = stats.get("cpu_seconds", 0.0)
    cpu = float(cpu) if type(cpu) in (int, float) and math.isfinite(cpu) else 0.0
    peak, base = (stats.get(k) for k in ("peak_rss_bytes", "base_rss_bytes"))
    peak = peak if type(peak) is int else 0
    base = base if type(base) is int else 0
    if header.get("ok") is not True:
        error = header.get("error")
        error = error if isinstance(error, dict) else {}
        kind = error.get("kind")
        if kind == "error":
            cls = _REFUSALS.get(error.get("type"), SandboxError)
            message = _clean(error.get("message")) or _message(name, "crash", limits, "")
            raise cls(message) if cls is not SandboxError else SandboxError(message)
        if kind == "memory":
            raise SandboxError(_message(name, "memory", limits, ""), reason="memory")
        detail = _clean(error.get("message"))[:80] or "no answer"
        raise SandboxError(_message(name, "crash", limits, detail), reason="crash")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise SandboxError(_message(name, "malformed", limits, ""), reason="malformed")
    return SandboxResult(name, meta, answer.arrays, cpu, peak, base, answer.wall_seconds)


def _run_here(
    task: str, data: bytes | memoryview | Path, name: str, options: dict
) -> SandboxResult:
    """The in-process route: the task function itself, its output taken as it is."""
    from importlib import import_module

    module, function = registered(task)
    fn = getattr(import_module(module), function)
    start = time.perf_counter()
    source = bytes(data) if not isinstance(data, Path) else data
    out: TaskOutput = fn(source, name=name, **options)
    return SandboxResult(name, out.meta, out.arrays, wall_seconds=time.perf_counter() - start)


def run_in_sandbox(
    task: str,
    data: bytes | memoryview | Path,
    *,
    name: str,
    limits: SandboxLimits | None = None,
    **options: Any,
) -> SandboxResult:
    """Run the child-side parser ``task`` on ``data`` in a decoder; its checked answer.

    ``data``: the file's bytes, or a ``Path`` to a file the server wrote (the decoder opens
    it for reading: for archives, which are read entry by entry). ``name``: how messages
    name the file (already made safe to show: ``cnnlib.core.text.safe_text``); the task gets
    it as its ``name`` option. ``options``: JSON values for the task. Raises ``SandboxError``
    (limits, crash, malformed answer, every decoder busy) or the task's own ``CNNLabError``
    subclass.
    """
    return _run(SandboxJob(task, data, name, options, limits), None)


def _run(job: SandboxJob, b: Budgets | None) -> SandboxResult:
    """``run_in_sandbox`` of ``job`` with the budgets ``b`` (None: ``budgets()`` now; a
    batch reads them once: they parse the environment, about 0.1 ms a time)."""
    task, data, name, options = job.task, job.data, job.name, job.options
    where = registered(task)
    if where is None:
        raise InvalidArgumentError(f"No sandbox task is called {task!r} (is its module imported?)")
    if getattr(_local, "in_process", False):
        return _run_here(task, data, name, options)
    b = b if b is not None else budgets()
    lim = (job.limits or SandboxLimits()).resolved(b)
    module, function = where
    request: dict[str, Any] = {"task": task, "module": module, "function": function}
    request["options"] = {**options, "name": name}
    payload: bytes | memoryview | None = None
    if isinstance(data, Path):
        request["path"] = str(data)
    else:
        payload = data
    try:
        answer = _pool.pool(lim.memory_bytes).run(
            request,
            payload,
            lim,
            workers=b.sandbox_workers,
            jobs_per_worker=b.sandbox_jobs_per_worker,
            wait_seconds=b.sandbox_wait_seconds,
        )
    except _pool.JobFailed as failed:
        raise SandboxError(
            _message(name, failed.reason, lim, failed.detail), reason=failed.reason
        ) from None
    return _answer_to_result(name, answer, lim)


def run_many(jobs: Iterable[SandboxJob]) -> Iterator[SandboxResult | CNNLabError]:
    """Run ``jobs`` on every decoder at once; yields each one's result, or the
    ``CNNLabError`` it raised, in the jobs' order. At most twice as many jobs as decoders
    are in flight (their results wait in the server), so memory stays bounded."""
    b = budgets()
    workers = max(1, b.sandbox_workers)

    def one(job: SandboxJob) -> SandboxResult | CNNLabError:
        try:
            return _run(job, b)
        except CNNLabError as err:
            return err

    if getattr(_local, "in_process", False):
        for job in jobs:
            yield one(job)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as executor:
        pending = []
        for job in jobs:
            pending.append(executor.submit(one, job))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
