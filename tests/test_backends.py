"""cnnlib.training.backends and what crosses to a Ray cluster, without a cluster: which
backend runs a worker, the ``CNNLAB_RAY_*`` settings, Ray never imported when it is not
asked for, a portable payload that names no server path (own images as a bundle of their
bytes, rebuilt into the same split; large arrays by reference), its byte budget, and the
object store's one copy per server process. The backends themselves are tested in
``tests/test_task_process.py``."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import BudgetError, InvalidArgumentError
from cnnlib.training import backends
from cnnlib.training.ray_backend import (
    STORE_MIN_BYTES,
    RaySettings,
    _ArrayStore,
    load_payload,
    portable_payload,
    ray_address,
)
from cnnlib.training.tasks import TaskHandle
from cnnlib.uploads.folders import FolderBundle, example_archive, open_archive
from tests.backend_workers import Counter
from tests.conftest import ROOT

SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------------
# Which backend
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "process"),
        ("  ", "process"),
        ("local", "ray"),
        ("auto", "ray"),
        ("10.0.0.5:6379", "ray"),
    ],
)
def test_the_ray_address_picks_the_backend(value, expected):
    assert backends.backend_name({"CNNLAB_RAY_ADDRESS": value}) == expected
    assert backends.backend_name({}) == "process"


def test_ray_client_addresses_are_refused_with_a_message():
    for value in ("ray://head:10001", "RAY://head:10001"):
        with pytest.raises(InvalidArgumentError, match="Ray Client") as err:
            ray_address({"CNNLAB_RAY_ADDRESS": value})
        assert "CNNLAB_RAY_ADDRESS=auto" in str(err.value) and "--num-cpus=0" in str(err.value)


def test_a_job_under_a_ray_client_address_fails_with_that_message(monkeypatch):
    monkeypatch.setenv("CNNLAB_RAY_ADDRESS", "ray://head:10001")
    p = TaskHandle(Counter(3, max_seconds=60)).start().wait(60)
    assert p.state == "failed" and "Ray Client" in p.error and "deprecated" in p.error


def test_each_worker_goes_to_its_backend(monkeypatch):
    monkeypatch.delenv("CNNLAB_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CNNLAB_TRAINING_PROCESS", raising=False)
    assert backends.backend_for(Counter(1, max_seconds=1)).name == "process"
    assert backends.backend_for(Counter(1, max_seconds=1, isolate=False)).name == "thread"
    monkeypatch.setenv("CNNLAB_TRAINING_PROCESS", "0")  # the debugger's switch
    assert backends.backend_for(Counter(1, max_seconds=1)).name == "thread"
    assert backends.backend_for(Counter(1, max_seconds=1, isolate=True)).name == "process"
    monkeypatch.setenv("CNNLAB_RAY_ADDRESS", "local")
    assert backends.backend_for(Counter(1, max_seconds=1)).name == "thread"
    monkeypatch.delenv("CNNLAB_TRAINING_PROCESS")
    assert backends.backend_for(Counter(1, max_seconds=1)).name == "ray"
    not_safe = Counter(1, max_seconds=1)
    not_safe.process_safe = False
    assert backends.backend_for(not_safe).name == "thread"


def test_ray_settings_come_from_the_variables():
    s = RaySettings.from_env({"CNNLAB_RAY_ADDRESS": "auto"})
    assert (s.address, s.cpus_per_training, s.gpus_per_training, s.threads) == ("auto", 1, 0, 1)
    s = RaySettings.from_env(
        {
            "CNNLAB_RAY_ADDRESS": "local",
            "CNNLAB_RAY_CPUS_PER_TRAINING": "2.5",
            "CNNLAB_RAY_GPUS_PER_TRAINING": "0.125",
        }
    )
    assert (s.cpus_per_training, s.gpus_per_training, s.threads) == (2.5, 0.125, 2)
    assert (
        RaySettings.from_env(
            {"CNNLAB_RAY_ADDRESS": "a:1", "CNNLAB_RAY_CPUS_PER_TRAINING": "0.5"}
        ).threads
        == 1
    )
    for name, bad in (
        ("CNNLAB_RAY_CPUS_PER_TRAINING", "0"),
        ("CNNLAB_RAY_CPUS_PER_TRAINING", "many"),
        ("CNNLAB_RAY_GPUS_PER_TRAINING", "-1"),
        ("CNNLAB_RAY_GPUS_PER_TRAINING", "nan"),
    ):
        with pytest.raises(BudgetError, match=name):
            RaySettings.from_env({"CNNLAB_RAY_ADDRESS": "local", name: bad})
    with pytest.raises(InvalidArgumentError, match="not set"):
        RaySettings.from_env({})


@pytest.mark.slow
def test_ray_is_never_imported_without_the_variable():
    script = textwrap.dedent(
        """
        import os, sys
        os.environ.pop("CNNLAB_RAY_ADDRESS", None)
        from cnnlib.training.tasks import TaskHandle
        from cnnlib.training import backends, ray_backend, trainer, transfer
        from tests.backend_workers import Counter
        for isolate in (None, False):  # a child process, then the thread
            p = TaskHandle(Counter(5, isolate=isolate, max_seconds=60)).start().wait(120)
            assert p.state == "finished" and p.seen == (0, 1, 2, 3, 4), p
        print("RAY" if "ray" in sys.modules else "NO RAY")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CNNLAB_RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("NO RAY"), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("ci", "outcome"), [("true", "error"), ("", "skipped")])
def test_ray_tests_fail_in_ci_without_ray_and_skip_elsewhere(tmp_path, ci, outcome):
    """The ``ray_cluster`` fixture (every ``ray`` test) without Ray installed: in CI the test
    errors, naming .ci/run; elsewhere it is skipped. Ray is hidden by a package of that name
    that cannot be imported, first on the path."""
    hidden = tmp_path / "hide" / "ray"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    module = tmp_path / "test_needs_ray.py"
    module.write_text("def test_on_the_cluster(ray_cluster):\n    pass\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": f"{hidden.parent}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rEs",
            "--rootdir",
            str(tmp_path),
            str(module),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"1 {outcome}" in done.stdout, done.stdout  # a fixture that fails: an error
    assert "ray is not installed" in done.stdout, done.stdout
    if ci:
        assert done.returncode != 0 and "CI must have it" in done.stdout, done.stdout
    else:
        assert done.returncode == 0 and "skipped" in done.stdout, done.stdout


# --------------------------------------------------------------------------------------------
# What crosses the wire
# --------------------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path, fashion_dir):
    with open_archive(example_archive(10), workdir=tmp_path / "server") as f:
        f.relabel(f.files[0][0], 1)  # the learner's edits travel too
        f.exclude(f.files[-1][0])
        yield f


def _split_contents(data) -> dict:
    """Per split: (labels, the files' bytes), in the split's order."""
    out = {}
    for split in SPLITS:
        paths, labels = data.files(split)
        out[split] = (labels.tolist(), [Path(p).read_bytes() for p in paths])
    return out


def test_own_images_travel_as_their_bytes_and_rebuild_the_same_split(folders, tmp_path):
    data = folders.split(32, validation_fraction=0.25, test_fraction=0.1, seed=7)
    worker = Counter(1, max_seconds=1)
    worker.data = data
    payload = portable_payload(worker, required=True, max_bytes=1 << 30)
    # No path of the server's: neither its temporary folder nor any stored file's path.
    for text in (str(folders.root), str(tmp_path), "cnnlab-own-"):
        assert text.encode() not in payload.data
    assert payload.arrays == ()
    bundle_bytes = sum(p.stat().st_size for p, _ in folders.files)
    assert bundle_bytes <= payload.nbytes < bundle_bytes + 20_000
    # Rebuilt on "another machine": its own folder, the same classes, images and split.
    copy = load_payload(payload.data, payload.arrays).data
    assert copy.folders.root != folders.root and copy.folders.root.is_dir()
    assert copy.class_names == data.class_names and copy.input_shape == (32, 32, 3)
    assert _split_contents(copy) == _split_contents(data)
    assert [copy.size(s) for s in SPLITS] == [data.size(s) for s in SPLITS]
    root = copy.folders.root
    copy.folders.cleanup()
    assert not root.exists()


@pytest.mark.slow
def test_a_bundle_over_the_budget_is_refused_before_it_is_read(folders, monkeypatch):
    data = folders.split(32, seed=1)
    total = sum(p.stat().st_size for p, _ in folders.files)
    read = []
    monkeypatch.setattr(type(folders.files[0][0]), "read_bytes", lambda p: read.append(p))
    with pytest.raises(BudgetError, match="Use fewer or smaller images") as err:
        FolderBundle.of(data, total - 1)
    assert "more than the" in str(err.value) and "training cluster" in str(err.value)
    assert read == []  # refused from the files' sizes, before reading them


def test_the_payload_budget_counts_everything_a_training_sends(folders, monkeypatch):
    data = folders.split(32, seed=1)
    worker = Counter(1, max_seconds=1)
    worker.data = data
    total = sum(p.stat().st_size for p, _ in folders.files)
    worker.extra = np.ones(STORE_MIN_BYTES, np.uint8)  # by reference, but counted
    with pytest.raises(BudgetError, match="This training's data take"):
        portable_payload(worker, required=True, max_bytes=total + STORE_MIN_BYTES // 2)
    monkeypatch.setenv("CNNLAB_RAY_PAYLOAD_BYTES", "1KB")
    assert budgets().ray_payload_bytes == 1024


def test_large_arrays_go_by_reference_and_small_ones_inline(mnist_test_set):
    x, y = mnist_test_set
    worker = Counter(1, max_seconds=1)
    worker.data = ((x, y), (x[:100], y[:100]))
    worker.same_again = x  # one reference, however often it appears
    payload = portable_payload(worker, required=True, max_bytes=1 << 30)
    assert len(payload.arrays) == 1 and payload.arrays[0] is x  # 7.8 MB; y is 10 kB
    assert len(payload.data) < 200_000
    copy = load_payload(payload.data, [np.array(x)])
    (cx, cy), (tx, _) = copy.data
    np.testing.assert_array_equal(cx, x)
    assert copy.same_again is cx and np.array_equal(cy, y) and np.array_equal(tx, x[:100])


def test_a_worker_that_does_not_pickle_is_refused_or_left_in_the_thread(caplog):
    worker = Counter(1, max_seconds=1)
    worker.callback = lambda: None
    with pytest.raises(InvalidArgumentError, match="cannot run on the training cluster"):
        portable_payload(worker, required=True, max_bytes=1 << 30)
    assert portable_payload(worker, required=False, max_bytes=1 << 30) is None
    assert "does not pickle" in caplog.text


class _FakeRay:
    """``ray.put`` recorded: what the object store received."""

    def __init__(self):
        self.puts = []

    def put(self, value):
        self.puts.append(value.nbytes)
        return f"ref-{len(self.puts)}"


def test_the_object_store_gets_each_array_once_per_server_process():
    ray = _FakeRay()
    store = _ArrayStore(capacity=2)
    a = np.arange(10**6, dtype=np.int64)
    first = store.refs(ray, [a])
    # Another session's copy (e.g. st.cache_data returns a new array) finds the same object.
    assert store.refs(ray, [a.copy()]) == first == store.refs(ray, [a]) and len(ray.puts) == 1
    b, c = a + 1, a + 2
    store.refs(ray, [b])
    store.refs(ray, [c])  # the capacity is 2: the least recently used (a) goes
    assert len(ray.puts) == 3
    store.refs(ray, [a])
    assert len(ray.puts) == 4
    del b, c
    gc.collect()
    assert len(store._keys) == 1  # the memo of a dead array goes with it


# --------------------------------------------------------------------------------------------
# The task base's side of the seam
# --------------------------------------------------------------------------------------------


def test_restart_clock_holds_then_starts_the_elapsed_time_and_the_time_limit():
    worker = Counter(1, max_seconds=60)
    with worker.lock:
        worker.started_at = 0.0
        worker._timer = first = worker._start_timer()  # as run() does
    worker.restart_clock(running=False)  # e.g. waiting for a slot on the cluster
    first.join(5)
    assert not first.is_alive() and worker._timer is None and worker.started_at is None
    assert worker.snapshot().elapsed_seconds == 0.0
    worker.restart_clock()  # the work starts there
    try:
        assert worker.started_at > 0.0 and worker._timer.is_alive()
    finally:
        worker._timer.cancel()


def _queued_status_app(on_cluster: bool):
    from cnnlib.training.trainer import TrainingProgress
    from ui import training_view

    position = None if on_cluster else 2
    p = TrainingProgress(state="queued", queue_position=position, queued_on_cluster=on_cluster)
    training_view.show_status(p, 2)


@pytest.mark.slow
def test_a_training_waiting_on_the_cluster_says_so():
    from streamlit.testing.v1 import AppTest

    def info(on_cluster: bool) -> str:
        at = AppTest.from_function(_queued_status_app, args=(on_cluster,)).run(timeout=30)
        assert not at.exception
        return at.info[0].value

    assert info(True).startswith("Waiting for a free training slot on the cluster")
    assert "Stop cancels it" in info(True)
    assert "Your place in the queue: 2" in info(False) and "cluster" not in info(False)
