"""Giving memory the process has freed back to the operating system.

Python and TensorFlow free their buffers with C's ``free``; glibc's allocator keeps the freed
pages for reuse rather than returning them, spread over one arena per thread, so a long-lived
server's resident memory stays near its highest point after the work that needed it has
ended. ``trim_heap`` asks glibc to return every free page now.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
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
