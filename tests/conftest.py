"""Shared fixtures: the project root on sys.path, the local data the tests use, and the
``e2e`` marker on every test under ``tests/e2e/``.

In CI (``CI=true``) a missing data source fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests' backbones have random weights, which are converted anew for every job (2–3 s each,
# never cached): features are computed by TensorFlow unless a test asks for ONNX Runtime
# (tests/test_onnx_features.py does, for the extractor and for a whole job).
os.environ.setdefault("CNNLAB_FEATURE_RUNTIME", "tensorflow")
# No spare training process importing TensorFlow beside every page test (tests that check
# spares turn them on: tests/test_task_process.py).
os.environ.setdefault("CNNLAB_SPARE_PROCESS", "0")

from cnnlib.data.mnist import DEBIAN_FASHION_DIR, read_idx  # noqa: E402  (after the path is set)

#: The real MNIST test set (IDX, gzip) that every checkout has beside it.
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
#: Where Debian's dataset-fashion-mnist installs the full Fashion-MNIST.
DEBIAN_FASHION = DEBIAN_FASHION_DIR

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Browser tests: every test collected below this folder is marked ``e2e``.
E2E_DIR = ROOT / "tests" / "e2e"


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collect with bytecode writing on: pytest keeps its assertion-rewritten test modules
    (under __pycache__, ignored by git) only where the process may write bytecode, and a
    machine that sets PYTHONDONTWRITEBYTECODE (the 2-core one does) made every run rewrite
    about 200 modules again: 8 s of the fast loop's 23 s collection. The setting is restored
    for the tests themselves (TensorFlow's generated modules in /tmp leave no .pyc)."""
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = saved


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test under ``tests/e2e/`` as ``e2e`` (so ``-m "not e2e"`` leaves them out).

    ``pytestmark`` in a conftest has no effect; this hook is the one place, so a new browser
    test module is marked without doing anything.
    """
    for item in items:
        if item.path.resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


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


@pytest.fixture(scope="session")
def mnist_test_set(mnist_dir):
    """The 10,000 real MNIST test digits, read once: (x, y), uint8 (10000, 28, 28) and uint8
    (10000,) labels, read-only (tests slice or copy them)."""
    x = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    y = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    x.flags.writeable = y.flags.writeable = False
    return x, y


@pytest.fixture(scope="session")
def ray_cluster(pytestconfig):
    """A private Ray cluster for the whole test session (``tests/ray_cluster.py``: 2 CPUs,
    ``TEST_SLOTS`` training slots, no dashboard), shut down at the end; its start time and
    memory are printed. Without Ray: skipped (locally) or failed (in CI)."""
    try:
        import ray  # only whether it is installed
    except ImportError:
        message = "ray is not installed (pip install -r requirements-ray.txt)"
        if IN_CI:
            pytest.fail(message + "; CI must have it: see .ci/run")
        pytest.skip(message)
    from tests import ray_cluster

    ray, seconds, rss = ray_cluster.start()
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"ray_cluster: started in {seconds:.1f} s; its processes use {rss / 1e6:.0f} MB"
        )
    yield ray
    ray.shutdown()


@pytest.fixture(params=["process", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def backend(request, monkeypatch) -> str:
    """Each backend of ``cnnlib.training.backends`` in turn: "process" (the default, no
    ``$CNNLAB_RAY_ADDRESS``), then "ray" (``CNNLAB_RAY_ADDRESS=local`` on ``ray_cluster``;
    also ``slow``: the cluster takes about 6 s to start, so the fast loop leaves it out)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
        monkeypatch.setenv("CNNLAB_RAY_ADDRESS", "local")
    else:
        monkeypatch.delenv("CNNLAB_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CNNLAB_TRAINING_PROCESS", raising=False)
    return request.param


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False): a
    bound on a wait for a background task, never a speed target."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False
