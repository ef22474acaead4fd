"""cnnlib.core.heap.trim_heap: freed C-heap memory goes back to the operating system.

Run in a fresh interpreter, so that only this test's allocations are in its heap: 200 MB
of 100 kB buffers (below glibc's mmap threshold, so on the heap), each followed by a small
one that stays, so that freeing the big ones leaves holes that glibc keeps until trimmed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnnlib.core.heap import _malloc_trim
from tests.conftest import ROOT

SCRIPT = """
import os

import numpy as np
from cnnlib.core.heap import trim_heap
from cnnlib.training.task_process import process_rss_bytes

keep, drop = [], []
for _ in range(2000):
    drop.append(np.ones(100_000, np.uint8))
    keep.append(np.ones(1_000, np.uint8))
del drop
before = process_rss_bytes(os.getpid())
returned = trim_heap()
print(before, process_rss_bytes(os.getpid()), returned)
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim")
def test_trim_heap_returns_freed_pages_that_glibc_would_keep():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    ).stdout.split()
    before, after, returned = int(out[0]), int(out[1]), out[2]
    assert returned == "True"
    assert before - after > 150e6  # of the 200 MB freed
