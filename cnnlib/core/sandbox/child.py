"""A decoder process of the sandbox: ``python -m cnnlib.core.sandbox.child SETTINGS_JSON``.

Started by ``cnnlib.core.sandbox.pool`` with a private temporary folder as its working
directory, ``TMPDIR`` and ``HOME``, and a minimal environment. Before it reads a byte of any
request it limits itself (``RLIMIT_AS`` address space, ``RLIMIT_CORE`` 0, ``RLIMIT_FSIZE``,
a lifetime ``RLIMIT_CPU`` hard limit), imports the task modules, and says it is ready. Then,
for each request on standard input (``wire`` format): it sets its CPU soft limit to this
job's allowance, resets its peak-memory counter, runs the allow-listed task
(``tasks.resolve``), and answers on its protocol pipe: the task's ``TaskOutput`` or its
error, with the job's CPU-seconds and peak resident memory. The process exits at the end of
its input (the server closed the pipe or is gone) and after any failure that may have left
it in a bad state (out of memory, an unexpected exception). After a big job it collects and
trims its heap, so that its memory goes back to the system before the next one.

Standard output is the protocol pipe; anything a library prints goes to standard error.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import sys
import traceback
from pathlib import Path

from cnnlib.core.errors import CNNLabError
from cnnlib.core.heap import trim_heap
from cnnlib.core.sandbox import tasks, wire

#: Longest error message a child sends (the server cuts it again).
MAX_MESSAGE = 2000
#: After a job whose peak grew the process by more than this, collect and return the C
#: heap's free pages to the system (small jobs skip it: it costs a few ms each).
TIDY_BYTES = 32 * 1024 * 1024
#: The protocol pipe's file descriptor once ``main`` runs (the tests' stand-in for a decoder
#: taken over by a crafted file writes its own bytes there).
PROTOCOL_FD: int | None = None


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit(kind: int, value: int) -> None:
    """Set soft and hard ``kind`` to ``value`` (or to the hard limit already there, if lower)."""
    _, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


def _set_limits(settings: dict) -> None:
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, int(settings["file_bytes"]))
    _limit(resource.RLIMIT_AS, int(settings["memory_bytes"]))
    lifetime = int(_cpu_used()) + int(settings["lifetime_cpu_seconds"])
    _limit(resource.RLIMIT_CPU, lifetime)


def _job_cpu_limit(seconds: float) -> None:
    """This job may use ``seconds`` more CPU-seconds; then the kernel sends SIGXCPU (which
    ends the process). The lifetime hard limit stays."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(_cpu_used() + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))


def _reset_peak() -> None:
    """Linux: restart the peak resident memory counter (VmHWM) at the current level."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _memory(field: str = "VmHWM") -> int:
    """Linux: this process's peak (``VmHWM``) or current (``VmRSS``) resident bytes."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split(f"{field}:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _error(kind: str, message: str, error_type: str = "") -> dict:
    return {
        "ok": False,
        "error": {"kind": kind, "type": error_type, "message": message[:MAX_MESSAGE]},
    }


def _run(request: dict, data: bytes | None) -> tuple[dict, list]:
    """(header, arrays) of the answer to one request."""
    fn = tasks.resolve(request["task"], request["module"], request["function"])
    source = data if data is not None else Path(request["path"])
    output = fn(source, **request["options"])
    if not isinstance(output, tasks.TaskOutput):
        raise TypeError(f"task {request['task']} returned {type(output).__name__}")
    return {"ok": True, "meta": output.meta}, list(output.arrays.items())


def main() -> None:
    global PROTOCOL_FD
    settings = json.loads(sys.argv[1])
    out_fd = PROTOCOL_FD = os.dup(1)  # the protocol pipe; fd 1 becomes stderr for prints
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = 0
    _set_limits(settings)
    for module in settings.get("preload", []):
        importlib.import_module(module)
    no_deadline = wire.Deadline(None)
    wire.write_all(out_fd, wire.encode({"ready": True, "pid": os.getpid()}), no_deadline)
    while True:
        try:
            request = wire.read_header(in_fd, settings["request_header_bytes"], no_deadline)
        except wire.PeerClosed:
            return  # the server closed the pipe: nothing more to do
        size = request.get("bytes")
        data = bytes(wire.read_exact(in_fd, size, no_deadline)) if size is not None else None
        _job_cpu_limit(float(request["cpu_seconds"]))
        _reset_peak()
        start, base, retire = _cpu_used(), _memory("VmRSS"), False
        try:
            header, arrays = _run(request, data)
        except CNNLabError as err:  # the task's own message for the learner
            header, arrays = _error("error", str(err), type(err).__name__), []
        except MemoryError:
            header, arrays, retire = _error("memory", "out of memory"), [], True
        except Exception as err:  # any other failure of a parser: reported, then this exits
            traceback.print_exc()
            header, arrays, retire = _error("failed", type(err).__name__), [], True
        del data
        stats = {"cpu_seconds": _cpu_used() - start, "peak_rss_bytes": _memory()}
        header["stats"] = stats | {"base_rss_bytes": base}
        try:
            parts = wire.encode(header, arrays)
        except (wire.WireError, ValueError, TypeError) as err:  # a task's unencodable output
            header = _error("failed", f"unencodable result ({type(err).__name__})")
            header["stats"] = stats | {"base_rss_bytes": base}
            parts, retire = wire.encode(header), True
        try:
            wire.write_all(out_fd, parts, no_deadline)
        except wire.PeerClosed:
            return
        del parts, arrays, header
        if retire:
            return
        if stats["peak_rss_bytes"] - base > TIDY_BYTES:  # a big job: give its memory back
            gc.collect()
            trim_heap()


if __name__ == "__main__":
    main()
