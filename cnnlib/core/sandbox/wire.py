"""The sandbox's wire format: a JSON header, then raw array bytes. Nothing is ever unpickled.

One message is ``MAGIC`` (4 bytes), the header's length (4 bytes, big-endian), the header
(UTF-8 JSON, an object), then the bytes of each array the header declares, in order, with
nothing in between. A header declares arrays as ``{"key": str, "dtype": str, "shape": [int]}``
with ``dtype`` one of ``DTYPES`` (NumPy's ``dtype.str``: byte order included).

The reading side never trusts a declaration: ``plan_arrays`` checks every key, dtype and shape
and the total against the caller's bound *before* a byte of payload is read, and each array is
then read straight into a fresh ``np.empty`` of that dtype and shape (no object, no pickle, no
intermediate copy). ``read_header`` bounds the header's size and turns every JSON failure
(bad UTF-8, nesting too deep, a number too long) into ``WireError``.

Both ends use raw pipe file descriptors. The parent's are non-blocking and every read and write
has a deadline (``Deadline``); the child's are blocking (it has nothing else to do).
"""

from __future__ import annotations

import errno
import json
import math
import os
import select
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DTYPES",
    "MAGIC",
    "Deadline",
    "WireError",
    "encode",
    "plan_arrays",
    "read_exact",
    "read_header",
    "write_all",
]

MAGIC = b"CNNL"
_HEAD = struct.Struct(">4sI")
#: Array dtypes that may cross (little-endian numbers; no objects, strings or booleans).
DTYPES = frozenset({"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"})
#: Most dimensions of one array.
MAX_NDIM = 8
#: Longest array key.
MAX_KEY = 64


class WireError(Exception):
    """A message that breaks the format or its bounds (the sender is not to be trusted)."""


class DeadlineExceeded(Exception):
    """The other end did not read or write in time."""


class PeerClosed(Exception):
    """The other end closed its pipe (it exited or crashed)."""


@dataclass
class Deadline:
    """A point in ``time.monotonic()`` time; None: no deadline (the child's side)."""

    at: float | None = None

    def remaining_ms(self) -> int:
        if self.at is None:
            return -1
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        return max(1, math.ceil(left * 1000))


def encode(header: dict, arrays: Iterable[tuple[str, np.ndarray]] = ()) -> list[memoryview]:
    """The message's parts: (magic, length, header) then each array's bytes, C-contiguous.
    The header gets an ``"arrays"`` list declaring them. Raises ``WireError`` for a dtype
    outside ``DTYPES``."""
    declared, buffers = [], []
    for key, arr in arrays:
        arr = np.ascontiguousarray(arr)
        if arr.dtype.str not in DTYPES or arr.ndim > MAX_NDIM:
            raise WireError(f"array {key!r}: dtype {arr.dtype.str} / {arr.ndim} dims not allowed")
        declared.append({"key": str(key), "dtype": arr.dtype.str, "shape": list(arr.shape)})
        buffers.append(memoryview(arr).cast("B") if arr.size else memoryview(b""))
    body = json.dumps({**header, "arrays": declared}, allow_nan=False, separators=(",", ":"))
    raw = body.encode("utf-8")
    return [memoryview(_HEAD.pack(MAGIC, len(raw)) + raw), *buffers]


def plan_arrays(declared: object, max_bytes: int) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    """(key, dtype, shape) of each declared array, checked: keys unique strings of at most
    ``MAX_KEY`` characters, dtypes in ``DTYPES``, shapes of at most ``MAX_NDIM`` whole
    numbers ≥ 0, and all arrays together at most ``max_bytes``. Raises ``WireError``."""
    if not isinstance(declared, list):
        raise WireError("arrays must be a list")
    plan, seen, total = [], set(), 0
    for item in declared:
        if not isinstance(item, dict) or set(item) != {"key", "dtype", "shape"}:
            raise WireError("an array declaration has other fields than key, dtype, shape")
        key, dtype, shape = item["key"], item["dtype"], item["shape"]
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or key in seen:
            raise WireError("an array key is not a short unique string")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise WireError(f"array {key!r} has a dtype outside the allowed ones")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise WireError(f"array {key!r} has a malformed shape")
        if not all(type(s) is int and 0 <= s <= max_bytes for s in shape):
            raise WireError(f"array {key!r} has a malformed shape")
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        total += nbytes
        if total > max_bytes:
            raise WireError(f"the arrays take more than {max_bytes:,} bytes")
        seen.add(key)
        plan.append((key, dt, tuple(shape)))
    return plan


def _wait(fd: int, events: int, deadline: Deadline) -> None:
    if deadline.at is None:
        return
    poller = select.poll()
    poller.register(fd, events)
    while not poller.poll(deadline.remaining_ms()):
        pass  # woken without an event: poll again until the deadline


def write_all(fd: int, parts: Iterable[memoryview | bytes], deadline: Deadline) -> None:
    """Write every part to ``fd`` before the deadline. Raises ``PeerClosed`` or
    ``DeadlineExceeded``."""
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view):
            _wait(fd, select.POLLOUT, deadline)
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise PeerClosed from None
            view = view[n:]


def read_into(fd: int, view: memoryview, deadline: Deadline) -> None:
    """Fill ``view`` from ``fd``. Raises ``PeerClosed`` (end of file first) or
    ``DeadlineExceeded``."""
    view = view.cast("B")
    while len(view):
        _wait(fd, select.POLLIN, deadline)
        try:
            n = os.readv(fd, [view])
        except BlockingIOError:
            continue
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EINTR):
                continue
            raise PeerClosed from None
        if n == 0:
            raise PeerClosed
        view = view[n:]


def read_exact(fd: int, n: int, deadline: Deadline) -> bytearray:
    buf = bytearray(n)
    read_into(fd, memoryview(buf), deadline)
    return buf


def read_header(fd: int, max_bytes: int, deadline: Deadline) -> dict:
    """The next message's header, parsed. Raises ``WireError`` for a wrong magic, a header
    over ``max_bytes`` or anything but a JSON object; ``PeerClosed``; ``DeadlineExceeded``."""
    magic, length = _HEAD.unpack(read_exact(fd, _HEAD.size, deadline))
    if magic != MAGIC:
        raise WireError("the message does not start with the sandbox's magic bytes")
    if length > max_bytes:
        raise WireError(f"the header is {length:,} bytes, over {max_bytes:,}")
    raw = read_exact(fd, length, deadline)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise WireError(f"the header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise WireError("the header is not a JSON object")
    return header


def read_arrays(
    fd: int, plan: list[tuple[str, np.dtype, tuple[int, ...]]], deadline: Deadline
) -> dict[str, np.ndarray]:
    """Read the arrays ``plan_arrays`` checked, each straight into its own new array."""
    out = {}
    for key, dtype, shape in plan:
        arr = np.empty(shape, dtype)
        if arr.size:
            read_into(fd, memoryview(arr).cast("B"), deadline)
        out[key] = arr
    return out
