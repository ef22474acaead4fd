"""Shared fixtures: the project root on sys.path, and the local data the tests use.

In CI (``CI=true``) a missing data source fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The real MNIST test set (IDX, gzip) that every checkout has beside it.
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
#: Where Debian's dataset-fashion-mnist installs the full Fashion-MNIST.
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise skip (locally) or fail (in CI)."""
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if IN_CI:
        pytest.fail(message + " (CI must have it: see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (10,000 digits)."""
    return require(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", "The shared MNIST test set").parent


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Debian's Fashion-MNIST folder (all four IDX files)."""
    return require(DEBIAN_FASHION / "train-images-idx3-ubyte.gz", "Debian's Fashion-MNIST").parent
