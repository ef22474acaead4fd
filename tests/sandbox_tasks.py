"""Child-side tasks for tests/test_sandbox.py: each misbehaves the way a decoder taken over by
a crafted file might (allocate, spin, sleep, crash, answer garbage) or reports what the
decoder process sees (its limits, environment, folder, imported modules)."""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from cnnlib.core.errors import ArchiveError
from cnnlib.core.sandbox import TaskOutput, sandbox_task, wire
from cnnlib.core.sandbox import child as sandbox_child


@sandbox_task("test_echo")
def echo(source, *, name: str, dtypes=("|u1",), shape=(2, 3)) -> TaskOutput:
    """Arrays of each dtype (values 0, 1, 2, ...), the file's length, the decoder's pid."""
    arrays = {
        f"a{i}": np.arange(int(np.prod(shape))).astype(np.dtype(d)).reshape(shape)
        for i, d in enumerate(dtypes)
    }
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    return TaskOutput({"bytes": size, "pid": os.getpid(), "name": name}, arrays)


@sandbox_task("test_refuse")
def refuse(source, *, name: str) -> TaskOutput:
    raise ArchiveError(f"{name} is refused by the test task.")


@sandbox_task("test_allocate")
def allocate(source, *, name: str, nbytes: int) -> TaskOutput:
    block = np.ones(nbytes, np.uint8)  # touched: resident, not only reserved
    return TaskOutput({"sum": int(block[::4096].sum())})


@sandbox_task("test_spin")
def spin(source, *, name: str) -> TaskOutput:
    x = 0
    while True:
        x += 1


@sandbox_task("test_sleep")
def sleep(source, *, name: str, seconds: float) -> TaskOutput:
    time.sleep(seconds)
    return TaskOutput({"slept": seconds})


@sandbox_task("test_crash")
def crash(source, *, name: str) -> TaskOutput:
    ctypes.string_at(0)  # a segmentation fault, as a decoder's C code might have
    return TaskOutput()


@sandbox_task("test_raise")
def fail(source, *, name: str) -> TaskOutput:
    raise KeyError("a parser's bug")


@sandbox_task("test_facts")
def facts(source, *, name: str) -> TaskOutput:
    """What the decoder process is: limits, environment names, folder, TensorFlow or Keras
    imported (h5py may be: the model-upload task reads weights with it)."""
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    return TaskOutput(
        {
            "as": list(resource.getrlimit(resource.RLIMIT_AS)),
            "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
            "cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
            "fsize": list(resource.getrlimit(resource.RLIMIT_FSIZE)),
            "env": sorted(os.environ),
            "cwd": os.getcwd(),
            "tmpdir": os.environ.get("TMPDIR", ""),
            "heavy": heavy,
            "pid": os.getpid(),
        }
    )


#: Answers a taken-over decoder might send instead of a real one: raw protocol bytes.
HOSTILE_ANSWERS = {
    "pickle": b"\x80\x04\x95" + b"\x00" * 64,
    "wrong magic": b"XXXX\x00\x00\x00\x02{}",
    "huge header": wire.MAGIC + (2**31).to_bytes(4, "big"),
    "not json": wire.MAGIC + (5).to_bytes(4, "big") + b"\xff\xfe{[}",
    "deep json": wire.MAGIC + (200_001).to_bytes(4, "big") + b"[" * 100_000 + b"1" + b"]" * 100_000,
    "json list": wire.MAGIC + (2).to_bytes(4, "big") + b"[]",
    "object dtype": None,  # built below: headers declaring arrays the server must refuse
    "2 GB array": None,
    "negative shape": None,
    "extra field": None,
    "short payload": None,
}


def _frame(header: dict, payload: bytes = b"") -> bytes:
    import json

    body = json.dumps(header).encode()
    return wire.MAGIC + len(body).to_bytes(4, "big") + body + payload


_OK = {"ok": True, "meta": {}}
HOSTILE_ANSWERS["object dtype"] = _frame(
    {**_OK, "arrays": [{"key": "x", "dtype": "|O", "shape": [1]}]}, b"\x00" * 8
)
HOSTILE_ANSWERS["2 GB array"] = _frame(
    {**_OK, "arrays": [{"key": "x", "dtype": "<f8", "shape": [2**28]}]}
)
HOSTILE_ANSWERS["negative shape"] = _frame(
    {**_OK, "arrays": [{"key": "x", "dtype": "|u1", "shape": [-1, 5]}]}
)
HOSTILE_ANSWERS["extra field"] = _frame(
    {**_OK, "arrays": [{"key": "x", "dtype": "|u1", "shape": [1], "py/object": "os.system"}]}
)
HOSTILE_ANSWERS["short payload"] = _frame(
    {**_OK, "arrays": [{"key": "x", "dtype": "|u1", "shape": [100]}]}, b"\x00" * 10
)


@sandbox_task("test_hostile")
def hostile(source, *, name: str, answer: str) -> TaskOutput:
    """Write a crafted answer straight onto the protocol pipe, then exit (so the server sees
    only those bytes)."""
    os.write(sandbox_child.PROTOCOL_FD, HOSTILE_ANSWERS[answer])
    os._exit(0)
