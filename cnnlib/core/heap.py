"""Giving memory the process has freed back to the operating system.

NumPy arrays, TensorFlow's CPU tensors and Python's larger objects are freed with C's
``free``. glibc's allocator keeps freed pages for reuse rather than returning them, spread over
the arenas its threads share (up to 8 per core), so a long-lived server's resident memory
stays near its highest point after the work that needed it has ended. ``trim_heap`` asks
glibc to return every free page now; ``free_memory`` first collects Python's reference
cycles, so that what they held is freed too.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs (no search)
    except (OSError, TypeError):
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return the C heap's free pages to the operating system (``malloc_trim(0)``, all
    arenas; thread-safe). True if some memory was returned; False if none was, or where the
    C library cannot (then nothing happens)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def free_memory() -> None:
    """A full garbage collection (objects kept alive only by reference cycles, e.g. an ended
    session's state), then ``trim_heap``."""
    gc.collect()
    trim_heap()
