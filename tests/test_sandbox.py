"""cnnlib.core.sandbox: decoders under OS limits, a wire format that is never unpickled, and
a pool of warm processes that replaces what fails.

The misbehaving tasks live in ``tests/sandbox_tasks.py`` (a decoder that allocates, spins,
sleeps, crashes, or answers with crafted bytes as a decoder taken over by a file might).
Tests that change the pool's settings use their own memory limit, hence their own pool.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnlib.core import sandbox
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ArchiveError, InvalidArgumentError, SandboxError
from cnnlib.core.sandbox import SandboxLimits, pool, run_in_sandbox, tasks, wire
from cnnlib.data import images  # noqa: F401  (defines the sandbox task "image")
from tests import sandbox_tasks
from tests.uploads import encode, photo

MiB = 1024 * 1024


def own_pool(n: int) -> SandboxLimits:
    """Limits whose memory (1 GiB + n MiB) gives the calling test a pool of its own."""
    return SandboxLimits(memory_bytes=budgets().sandbox_memory_bytes + n * MiB)


def test_arrays_and_meta_cross_as_they_were():
    dtypes = sorted(wire.DTYPES)
    result = run_in_sandbox("test_echo", b"12345", name="“x”", dtypes=dtypes, shape=[3, 4])
    assert result.meta["bytes"] == 5 and result.meta["name"] == "“x”"
    assert result.meta["pid"] != os.getpid()
    for i, d in enumerate(dtypes):
        arr = result.arrays[f"a{i}"]
        assert arr.dtype == np.dtype(d) and arr.shape == (3, 4)
        np.testing.assert_array_equal(arr, np.arange(12).astype(d).reshape(3, 4))
    assert result.cpu_seconds >= 0 and result.peak_rss_bytes > 10 * MiB


def test_a_path_is_read_by_the_decoder(tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(b"x" * 1000)
    assert run_in_sandbox("test_echo", path, name="f").meta["bytes"] == 1000


def test_accessors_check_bounds_and_name_the_file():
    result = run_in_sandbox("test_echo", b"", name="“cat.png”", dtypes=["|u1"], shape=[2, 3])
    assert result.array("a0", dtype=np.uint8, ndim=2, max_shape=(2, 3)).shape == (2, 3)
    for bad in (
        lambda: result.array("a0", dtype=np.float32, ndim=2),
        lambda: result.array("a0", dtype=np.uint8, ndim=3),
        lambda: result.array("a0", dtype=np.uint8, ndim=2, max_shape=(1, 3)),
        lambda: result.array("missing", dtype=np.uint8, ndim=2),
        lambda: result.integer("bytes", 1, 10),
        lambda: result.text("pid", 10),
    ):
        with pytest.raises(SandboxError, match=re.escape("cat.png")) as err:
            bad()
        assert err.value.reason == "malformed"
    assert result.integer("bytes", 0, 10) == 0


def test_unknown_and_unmarked_tasks_are_refused():
    with pytest.raises(InvalidArgumentError, match="No sandbox task"):
        run_in_sandbox("no_such_task", b"", name="f")
    with pytest.raises(LookupError):
        tasks.resolve("test_echo", "tests.sandbox_tasks", "_frame")  # not a task
    with pytest.raises(LookupError):
        tasks.resolve("test_echo", "os", "system")
    with pytest.raises(LookupError):
        tasks.resolve("test_spin", "tests.sandbox_tasks", "echo")  # marked, other name


def test_a_task_refusal_keeps_its_type_and_message():
    with pytest.raises(ArchiveError, match=re.escape("“a.zip” is refused by the test task")):
        run_in_sandbox("test_refuse", b"", name="“a.zip”")


def test_memory_limit_ends_the_decoder_with_a_message():
    with pytest.raises(SandboxError, match=r"“big.png” needed more than 1\.1 GB") as err:
        run_in_sandbox("test_allocate", b"", name="“big.png”", nbytes=2 * 1024**3)
    assert err.value.reason == "memory"
    # Within the limit the same task answers.
    assert run_in_sandbox("test_allocate", b"", name="f", nbytes=100 * MiB).meta["sum"] > 0


@pytest.mark.slow
def test_cpu_limit_ends_the_decoder_with_a_message():
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=60)
    with pytest.raises(SandboxError, match=r"“slow.jpg” took more than 1 CPU-seconds") as err:
        run_in_sandbox("test_spin", b"", name="“slow.jpg”", limits=limits)
    assert err.value.reason == "cpu"


@pytest.mark.slow
def test_wall_clock_limit_kills_a_decoder_that_waits():
    limits = SandboxLimits(wall_seconds=1)
    with pytest.raises(SandboxError, match=r"“x.tif” took longer than 1 s") as err:
        run_in_sandbox("test_sleep", b"", name="“x.tif”", limits=limits, seconds=30)
    assert err.value.reason == "time"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["test_crash", "test_raise"])
def test_a_crash_or_a_parser_bug_is_a_message_and_the_next_job_works(task):
    with pytest.raises(SandboxError, match=re.escape("“bad.bmp” stopped unexpectedly")) as err:
        run_in_sandbox(task, b"", name="“bad.bmp”")
    assert err.value.reason == "crash"
    assert run_in_sandbox("test_echo", b"ok", name="f").meta["bytes"] == 2


@pytest.mark.parametrize("answer", list(sandbox_tasks.HOSTILE_ANSWERS))
def test_a_taken_over_decoder_cannot_make_the_server_unpickle_or_allocate(answer, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("the server unpickled a decoder's answer")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    with pytest.raises(SandboxError, match=re.escape("“evil.png”")) as err:
        run_in_sandbox("test_hostile", b"", name="“evil.png”", answer=answer)
    assert err.value.reason in ("malformed", "crash")
    assert run_in_sandbox("test_echo", b"ok", name="f").meta["bytes"] == 2


def test_the_wire_refuses_declarations_before_reading_them():
    ok = [{"key": "a", "dtype": "|u1", "shape": [2, 2]}]
    assert wire.plan_arrays(ok, 4)[0][2] == (2, 2)
    for bad in (
        ok * 2,  # duplicate key
        [{"key": "a", "dtype": "|O", "shape": [1]}],
        [{"key": "a", "dtype": "|b1", "shape": [1]}],
        [{"key": "a", "dtype": "|u1", "shape": [True]}],
        [{"key": "a", "dtype": "|u1", "shape": [1.5]}],
        [{"key": "a", "dtype": "|u1", "shape": [1] * 9}],
        [{"key": "", "dtype": "|u1", "shape": [1]}],
        {"key": "a"},
    ):
        with pytest.raises(wire.WireError):
            wire.plan_arrays(bad, 100)
    with pytest.raises(wire.WireError, match="more than 3 bytes"):
        wire.plan_arrays(ok, 3)


def test_the_decoder_runs_limited_in_a_private_folder_without_the_servers_secrets(monkeypatch):
    monkeypatch.setenv("CNNLAB_TEST_SECRET", "s3cret")
    limits = own_pool(1)
    facts = run_in_sandbox("test_facts", b"", name="f", limits=limits).meta
    assert facts["as"] == [limits.memory_bytes] * 2
    assert facts["core"] == [0, 0]
    assert facts["fsize"] == [budgets().sandbox_result_bytes] * 2
    soft, hard = facts["cpu"]
    assert soft < hard and hard > 0
    assert "CNNLAB_TEST_SECRET" not in facts["env"]
    assert set(facts["env"]) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "PYTHONPATH",
        "TMPDIR",
        "HOME",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "MALLOC_ARENA_MAX",
    }
    assert facts["cwd"] == facts["tmpdir"] and Path(facts["cwd"]).name.startswith("cnnlab-sandbox-")
    assert oct(Path(facts["cwd"]).stat().st_mode & 0o777) == "0o700"
    # An image decoded by the same decoder pulls in neither TensorFlow nor Keras.
    run_in_sandbox(
        "image",
        encode(photo()),
        name="f",
        limits=limits,
        max_pixels=10**6,
        max_side=10**4,
        max_decoded_bytes=10**8,
        result_pixels=10**6,
    )
    again = run_in_sandbox("test_facts", b"", name="f", limits=limits).meta
    assert again["pid"] == facts["pid"] and again["heavy"] == []


def test_a_batch_reads_the_budgets_once(monkeypatch):
    """run_many reads the budgets (which parse the environment) once for all its jobs, not
    twice a job: at ~0.1–0.2 ms a read, that was a tenth of a 500-photo upload's server time."""
    reads = []

    def counted():
        reads.append(1)
        return budgets()

    monkeypatch.setattr(sandbox, "budgets", counted)
    jobs = [sandbox.SandboxJob("test_echo", bytes(i), "f", {"shape": [1, i]}) for i in range(20)]
    results = list(sandbox.run_many(jobs))
    assert [r.meta["bytes"] for r in results] == list(range(20))
    assert [r.arrays["a0"].shape for r in results] == [(1, i) for i in range(20)]
    assert len(reads) == 1


@pytest.mark.slow
def test_warm_decoders_are_reused_recycled_and_replaced(monkeypatch):
    monkeypatch.setenv("CNNLAB_SANDBOX_WORKERS", "1")
    monkeypatch.setenv("CNNLAB_SANDBOX_JOBS_PER_WORKER", "3")
    limits = own_pool(2)
    pids = [run_in_sandbox("test_echo", b"", name="f", limits=limits).meta["pid"] for _ in range(7)]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
    folder = Path(run_in_sandbox("test_facts", b"", name="f", limits=limits).meta["cwd"])
    with pytest.raises(SandboxError):
        run_in_sandbox("test_crash", b"", name="f", limits=limits)
    assert not folder.exists()  # the crashed decoder's folder went with it
    after = run_in_sandbox("test_echo", b"", name="f", limits=limits).meta["pid"]
    assert after not in pids


@pytest.mark.slow
def test_decoders_work_in_parallel_and_a_full_pool_says_busy(monkeypatch):
    monkeypatch.setenv("CNNLAB_SANDBOX_WORKERS", "2")
    monkeypatch.setenv("CNNLAB_SANDBOX_WAIT_SECONDS", "1")
    limits = own_pool(3)
    pool.pool(limits.memory_bytes).close()
    results: list = []

    def slow() -> None:
        results.append(run_in_sandbox("test_sleep", b"", name="f", limits=limits, seconds=4))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    while pool.pool(limits.memory_bytes)._count < 2:
        threading.Event().wait(0.05)
    threading.Event().wait(0.5)
    with pytest.raises(SandboxError, match="busy") as err:
        run_in_sandbox("test_echo", b"", name="“late.png”", limits=limits)
    assert err.value.reason == "busy"
    for t in threads:
        t.join()
    assert len(results) == 2


@pytest.mark.slow
def test_run_many_keeps_the_order_and_returns_errors_in_place():
    jobs = [sandbox.SandboxJob("test_echo", b"x" * i, name=f"f{i}") for i in range(5)]
    jobs.insert(2, sandbox.SandboxJob("test_refuse", b"", name="“no”"))
    out = list(sandbox.run_many(jobs))
    assert [r.meta["bytes"] for r in out if not isinstance(r, Exception)] == [0, 1, 2, 3, 4]
    assert isinstance(out[2], ArchiveError)


def test_in_process_runs_the_same_task_here():
    data = encode(photo((50, 40)))
    options = dict(max_pixels=10**6, max_side=10**4, max_decoded_bytes=10**8, result_pixels=10**6)
    there = run_in_sandbox("image", data, name="f", **options)
    with sandbox.in_process():
        here = run_in_sandbox("image", data, name="f", **options)
    assert here.meta == there.meta
    np.testing.assert_array_equal(here.arrays["image"], there.arrays["image"])
