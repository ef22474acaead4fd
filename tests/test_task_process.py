"""The backend contract: a task's work runs away from the server's threads and comes back
the same way on every backend (``cnnlib.training.backends``): "process" (a child process,
the default) and "ray" (an actor on a local Ray cluster, ``CNNLAB_RAY_ADDRESS=local``; the
cases marked ``ray``).

Trainings here are tiny convnets on real MNIST digits (a second or more to import
TensorFlow where they run, then well under a second of training). What is about the seam
alone (a closed session, the memory cap, a killed process, the order of many events) uses
``tests.backend_workers.Counter``, which needs no TensorFlow. Nothing asserts a duration:
waits are bounded only so that a broken backend cannot hang the suite.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.models import build_from_stack
from cnnlib.training import task_process
from cnnlib.training.task_process import process_rss_bytes
from cnnlib.training.tasks import TaskHandle
from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots
from tests.backend_workers import SMALL, Counter, report_pid_model, small_model
from tests.conftest import ROOT, wait_for

keras = pytest.importorskip("keras")

WAIT = 180  # seconds: a bound for a broken backend, not a speed target


@pytest.fixture(scope="module")
def digits(mnist_test_set):
    x, y = mnist_test_set
    return (x[:1000], y[:1000]), (x[9000:9200], y[9000:9200])


def _gone(pid: int) -> bool:
    return wait_for(lambda: process_rss_bytes(pid) is None, 30)


# --------------------------------------------------------------------------------------------
# The contract, on every backend
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_training_runs_elsewhere_and_its_model_comes_back(digits, backend):
    (x, y), test = digits
    config = TrainConfig(batch_size=50, epochs=2, validation_split=0.2)
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1), watch=x[0])
    p = job.start().wait(WAIT)
    assert p.state == "finished", p.error
    assert p.process_id not in (0, os.getpid())
    assert _gone(p.process_id)  # the child or the actor has exited
    assert p.process_peak_bytes > 0
    assert bool(p.node) == (backend == "ray") and not p.queued_on_cluster
    # The progress crossed over, in order: 16 batches × 2 epochs of curves, epochs, watch, test.
    assert len(p.train_loss) == len(p.val_loss) == 2 and p.val_samples == 200
    assert p.steps_per_epoch == 16 and len(p.batch_loss) == 32
    assert list(p.batch_epoch) == sorted(p.batch_epoch) and p.batch_epoch[-1] == 2.0
    assert p.watch is not None and p.watch.epoch == 2 and p.watch.maps.shape == (14, 14, 8)
    assert p.test_samples == 200 and p.test_accuracy is not None
    # The model, loaded back here, gives the accuracy measured there on the test set.
    probabilities = job.model.predict(test[0][:, :, :, None].astype("float32"), verbose=0)
    assert (probabilities.argmax(1) == test[1]).mean() == pytest.approx(p.test_accuracy, abs=1e-6)
    # It saw the same first-layer filters the model now has.
    kernel = job.model.get_layer(p.watch.layer).get_weights()[0]
    np.testing.assert_allclose(p.watch.filters, kernel, rtol=1e-6)


@pytest.mark.slow
def test_stop_reaches_the_work_and_what_it_learned_is_kept(digits, backend):
    (x, y), test = digits
    config = TrainConfig(batch_size=8, epochs=50)
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1)).start()
    assert wait_for(lambda: job.snapshot().step >= 3, WAIT)
    job.stop()
    p = job.wait(WAIT)
    assert p.state == "stopped" and p.epoch < 50
    assert p.test_accuracy is None  # the evaluation is skipped
    assert job.model is not None and job.model.count_params() > 0
    assert _gone(p.process_id)


@pytest.mark.slow
def test_an_error_where_the_work_runs_comes_back_as_its_message(digits, backend):
    (x, y), test = digits
    job = TrainingJob(
        report_pid_model, ((x, y), test), TrainConfig(epochs=1), slots=TrainingSlots(1)
    )
    p = job.start().wait(WAIT)
    assert p.state == "failed"
    where = int(p.error.rsplit(" ", 1)[1])
    assert p.error.startswith("Training failed: RuntimeError: built in process")
    assert where == p.process_id != os.getpid()
    assert "Traceback" not in p.error


@pytest.mark.slow
def test_many_events_arrive_in_order_with_the_result(backend):
    worker = Counter(2000, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "finished", p.error
    assert p.seen == tuple(range(2000)) and p.count == 2000
    assert (worker.result["count"], worker.result["pid"]) == (2000, p.process_id)
    assert p.process_id != os.getpid()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX niceness")
def test_a_child_process_yields_the_cpu_to_its_server(monkeypatch):
    """The work runs ``CHILD_NICENESS`` below the server's priority (capped at 19)."""
    monkeypatch.delenv("CNNLAB_RAY_ADDRESS", raising=False)  # a child process, not Ray
    monkeypatch.delenv("CNNLAB_TRAINING_PROCESS", raising=False)
    worker = Counter(3, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "finished" and p.process_id != os.getpid()
    server = os.getpriority(os.PRIO_PROCESS, 0)
    assert worker.result["niceness"] == min(server + task_process.CHILD_NICENESS, 19)


def test_a_closed_session_stops_its_work(backend):
    worker = Counter(until_stopped=True, pause=0.02, slots=TrainingSlots(1))
    handle = TaskHandle(worker).start()
    assert wait_for(lambda: worker.snapshot().count >= 3, WAIT)
    pid = worker.snapshot().process_id
    del handle
    gc.collect()  # the session's handle is gone: its finalizer asks the worker to stop
    assert worker.done_event.wait(WAIT)
    p = worker.snapshot()
    assert p.state == "stopped" and worker.result["count"] == p.count >= 3  # what it did is kept
    assert _gone(pid)


def _stopped_once_counting(worker: Counter):
    """Start ``worker``, Stop it once it has counted to 3; its final progress."""
    handle = TaskHandle(worker).start()
    assert wait_for(lambda: worker.snapshot().count >= 3, WAIT)
    handle.stop()
    return handle.wait(WAIT)


def test_stopping_work_that_computes_slowly_is_waited_for(backend, monkeypatch):
    """After Stop it sleeps 1 s, using no processor time (a training finishing its batch on
    a machine that gives it none): with a 0.3 s grace of processor time it is not ended, and
    what it did is kept."""
    monkeypatch.setattr(task_process, "STOP_GRACE_SECONDS", 0.3)
    worker = Counter(until_stopped=True, pause=0.02, linger=1.0, slots=TrainingSlots(1))
    p = _stopped_once_counting(worker)
    assert p.state == "stopped", p.error
    assert worker.result["count"] == p.count >= 3


def test_work_that_computes_on_after_stop_is_ended_with_a_message(backend, monkeypatch):
    """After Stop it computes for 10 minutes: once the grace (0.5 s here) has passed and it
    has spent that much processor time, it is ended, long before, and the learner is told
    why."""
    monkeypatch.setattr(task_process, "STOP_GRACE_SECONDS", 0.5)
    worker = Counter(until_stopped=True, pause=0.02, spin=600.0, slots=TrainingSlots(1))
    p = _stopped_once_counting(worker)
    assert p.state == "failed" and worker.result is None
    assert p.error == (
        "The training went on computing after Stop (0.5 s of processor time) and was ended; "
        "nothing it learned could be kept."
    )
    assert _gone(p.process_id)


def test_the_stop_clock_counts_processor_time_then_wall_time():
    """By hand: overdue once the grace has passed in wall-clock time and in processor time
    since Stop (counted from ``start_cpu`` where Stop's reading comes later), in wall-clock
    time alone where processor time cannot be read, and always after the wall-clock bound."""
    grace, wait = task_process.STOP_GRACE_SECONDS, task_process.STOP_WAIT_SECONDS
    clock = task_process.StopClock(10.0, now=0.0)
    assert clock.overdue(10.0 + grace, now=wait - 1) is None  # slow, but not computing on
    assert clock.overdue(None, now=wait - 1) is None  # no new reading
    assert clock.overdue(10.0 + grace + 0.1, now=grace - 1) is None  # many cores: too soon
    assert clock.overdue(10.0 + grace + 0.1, now=grace + 1).startswith("went on computing")
    assert clock.overdue(10.0, now=wait + 0.1) == "had not ended 5 min after Stop"
    actor = task_process.StopClock(None, now=0.0)  # a Ray actor that has not answered Stop
    assert actor.overdue(1000.0, now=grace + 1) is None
    actor.start_cpu(100.0)
    assert actor.overdue(100.0 + grace - 0.1, now=grace + 2) is None
    assert actor.overdue(100.0 + grace + 0.1, now=grace + 3) is not None
    assert actor.overdue(None, now=wait + 0.1) is not None  # starved: the wall-clock bound
    blind = task_process.StopClock(None, cpu_readable=False, now=0.0)  # no /proc
    assert blind.overdue(None, now=grace - 0.1) is None
    assert blind.overdue(None, now=grace + 0.1) == "had not ended 30 s after Stop"


def test_processor_time_is_read_from_proc():
    """``process_cpu_seconds`` of this process against Python's own clock of it."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc here")
    before = task_process.process_cpu_seconds(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = task_process.process_cpu_seconds(os.getpid())
    assert after - before == pytest.approx(0.3, abs=0.05)
    assert task_process.process_cpu_seconds(2**22 + 1) is None  # no such process


@pytest.mark.slow
def test_work_over_the_memory_budget_is_ended_not_the_server(backend, monkeypatch):
    monkeypatch.setenv("CNNLAB_TRAINING_PROCESS_BYTES", "150MB")
    worker = Counter(until_stopped=True, pause=0.02, hog_bytes=300 * 2**20, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "failed" and worker.result is None
    assert "more than 157.3 MB of memory" in p.error and "smaller batch size" in p.error
    assert p.process_peak_bytes > 150 * 2**20
    assert _gone(p.process_id)


@pytest.mark.slow
def test_a_killed_process_fails_the_task_with_a_message(backend):
    worker = Counter(kill=True, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "failed" and worker.result is None
    assert "ended unexpectedly" in p.error and "nothing it learned could be kept" in p.error
    if backend == "process":
        assert "(exit code -9: it ran out of memory or was killed)" in p.error
    assert "Traceback" not in p.error


@pytest.mark.slow
def test_an_error_in_the_work_comes_back_without_tensorflow(backend):
    worker = Counter(fail=True, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "failed" and p.error.startswith("RuntimeError: failed in process ")
    assert int(p.error.rsplit(" ", 1)[1]) == p.process_id != os.getpid()


def test_a_worker_that_does_not_pickle_is_refused_when_it_must_leave(backend):
    worker = Counter(3, slots=TrainingSlots(1), isolate=True)
    worker.unpicklable = lambda: None  # a lambda cannot be sent to another process
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "failed" and "isolate=False" in p.error


# --------------------------------------------------------------------------------------------
# The Ray cluster's own cases
# --------------------------------------------------------------------------------------------


def _occupy_the_cluster(slots: TrainingSlots) -> list[TaskHandle]:
    """Two trainings that hold both of the test cluster's slots until stopped."""
    from tests.ray_cluster import TEST_SLOTS

    blockers = [
        TaskHandle(Counter(until_stopped=True, pause=0.05, slots=slots)).start()
        for _ in range(TEST_SLOTS)
    ]
    for b in blockers:
        assert wait_for(lambda b=b: b.snapshot().count >= 1, WAIT), b.snapshot()
    return blockers


@pytest.mark.slow
@pytest.mark.ray
def test_queued_on_the_cluster_then_stop_while_queued_leaves_no_actor(ray_cluster, monkeypatch):
    from tests.ray_cluster import TEST_SLOTS, training_actors

    monkeypatch.setenv("CNNLAB_RAY_ADDRESS", "local")
    slots = TrainingSlots(TEST_SLOTS + 1)  # this server lets 3 go: the cluster holds one back
    blockers = _occupy_the_cluster(slots)
    waiting = TaskHandle(Counter(until_stopped=True, slots=slots)).start()
    assert wait_for(lambda: waiting.snapshot().queued_on_cluster, WAIT), waiting.snapshot()
    p = waiting.snapshot()
    assert p.state == "queued" and p.queue_position is None and p.process_id == 0
    assert len(training_actors(ray_cluster)) == TEST_SLOTS + 1  # two alive, one pending
    waiting.stop()
    p = waiting.wait(WAIT)
    assert p.state == "stopped" and p.count == 0 and waiting._worker.result is None
    assert wait_for(lambda: len(training_actors(ray_cluster)) == TEST_SLOTS, 30)
    for b in blockers:
        b.stop()
    assert all(b.wait(WAIT).state == "stopped" for b in blockers)
    assert wait_for(lambda: not training_actors(ray_cluster), 30)


@pytest.mark.slow
@pytest.mark.ray
def test_a_local_cluster_is_started_by_the_server_and_ignores_recorded_clusters(ray_cluster):
    """``CNNLAB_RAY_ADDRESS=local`` in a fresh server process: its own private cluster, with
    as many training slots as the server's limit, even where a ``ray start`` left another
    cluster's address recorded in Ray's temporary folder (which a bare ``ray.init()`` joins);
    started from the first task's thread, it outlives that thread (Ray's processes die with
    the thread that started them) and runs the next training too."""
    script = textwrap.dedent(
        """
        import ray
        from cnnlib.training.ray_backend import RESOURCE
        from cnnlib.training.tasks import TaskHandle
        from tests.backend_workers import Counter
        for _ in range(2):  # each task's thread ends before the next starts
            p = TaskHandle(Counter(3, max_seconds=120)).start().wait(300)
            assert p.state == "finished" and p.seen == (0, 1, 2) and p.node, p
        assert ray.cluster_resources()[RESOURCE] == 1, ray.cluster_resources()
        print("OK")
        """
    )
    ray_tmp = Path(tempfile.mkdtemp(prefix="cnnlab-ray-", dir="/tmp"))  # short: socket paths
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")  # nothing there
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
        env.update(CNNLAB_RAY_ADDRESS="local", CNNLAB_MAX_TRAININGS="1")
        for name in ("CNNLAB_TRAINING_PROCESS", "RAY_ADDRESS"):
            env.pop(name, None)
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout + done.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_own_images_train_on_the_cluster_after_the_server_folder_is_gone(
    ray_cluster, monkeypatch, tmp_path, fashion_dir
):
    """Nothing that crosses to the actor names a server path: the upload's folder on the
    server is deleted while the training waits for a slot, and the training still runs on
    the images it received (their bytes)."""
    from cnnlib.training.transfer import OwnImagesJob, OwnImagesRecipe
    from cnnlib.uploads.folders import example_archive, open_archive

    monkeypatch.setenv("CNNLAB_RAY_ADDRESS", "local")
    folders = open_archive(example_archive(8), workdir=tmp_path)
    recipe = OwnImagesRecipe(
        "scratch", image_size=24, validation_fraction=0.25, epochs=1, batch_size=8, seed=3
    )
    data = folders.split(recipe.image_size, validation_fraction=0.25, seed=3)
    slots = TrainingSlots(3)
    blockers = _occupy_the_cluster(slots)
    job = OwnImagesJob(data, recipe, slots=slots, isolate=True)
    job.start()
    assert wait_for(lambda: job.snapshot().queued_on_cluster, WAIT), job.snapshot()
    folders.cleanup()  # the server's copy of the upload is gone before the actor starts
    assert not folders.root.exists() and not any(tmp_path.iterdir())
    for b in blockers:
        b.stop()
    p = job.wait(WAIT)
    assert p.state == "finished", p.error
    assert p.node and p.train_samples == 24 and p.val_samples == 8
    assert p.class_names == data.class_names
    model = job.model
    assert model is not None and model.output_shape == (None, 4)
    assert model.predict(np.zeros((1, 24, 24, 3), np.float32), verbose=0).shape == (1, 4)


# --------------------------------------------------------------------------------------------
# The process backend's own cases
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_builder_that_does_not_pickle_trains_in_the_thread_or_is_refused(digits, caplog):
    (x, y), test = digits

    def local_builder(seed=None):  # a local function cannot be sent to another process
        return build_from_stack(SMALL, seed=seed)

    config = TrainConfig(batch_size=100, epochs=1)
    with caplog.at_level(logging.WARNING, logger="cnnlib.training.task_process"):
        p = TrainingJob(local_builder, ((x, y), test), config, slots=TrainingSlots(1))
        p = p.start().wait(WAIT)
    assert p.state == "finished" and p.process_id == os.getpid()
    assert "does not pickle" in caplog.text
    required = TrainingJob(
        local_builder, ((x, y), test), config, slots=TrainingSlots(1), isolate=True
    )
    p = required.start().wait(WAIT)
    assert p.state == "failed" and "cannot run in its own process" in p.error
    assert "isolate=False" in p.error


@pytest.mark.slow
def test_in_thread_when_the_variable_says_so(digits, monkeypatch):
    monkeypatch.setenv("CNNLAB_TRAINING_PROCESS", "0")
    (x, y), test = digits
    config = TrainConfig(batch_size=200, epochs=1, train_size=400)
    p = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1)).start().wait(WAIT)
    assert p.state == "finished" and p.process_id == os.getpid()


def test_a_task_that_cannot_run_in_a_process_refuses_isolate():
    from cnnlib.training.tasks import TaskProgress, TaskWorker

    with pytest.raises(InvalidArgumentError, match="cannot run in a child process"):
        TaskWorker(TaskProgress(), isolate=True, max_seconds=1)


def test_a_child_started_without_its_parents_key_exits_at_once():
    import subprocess
    import sys

    from tests.conftest import ROOT

    for given in ("", "not hex\n", "abcd\n"):
        result = subprocess.run(
            [sys.executable, "-m", "cnnlib.training.task_process"],
            input=given,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2 and result.stdout == "" and not result.stderr


# --------------------------------------------------------------------------------------------
# The spare process: TensorFlow imported before anyone waits
# --------------------------------------------------------------------------------------------


@pytest.fixture
def spares(monkeypatch):
    """Tasks in child processes, spares on (the suite turns them off: tests/conftest.py)."""
    monkeypatch.delenv("CNNLAB_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CNNLAB_TRAINING_PROCESS", raising=False)
    monkeypatch.setenv("CNNLAB_SPARE_PROCESS", "1")
    yield
    task_process._end_spare()


def _imports_tensorflow(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps")
    return maps.is_file() and "site-packages/tensorflow/" in maps.read_text()


@pytest.mark.slow  # two spares import TensorFlow: about 14 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_spare_process_warms_up_takes_one_task_and_is_replaced_after_it(spares, monkeypatch):
    assert task_process.prewarm() and task_process.prewarm()  # one spare, not two
    spare = task_process._spare.process
    assert task_process.wait_for_spare() and _imports_tensorflow(spare.pid)  # before any task
    worker = Counter(3, slots=TrainingSlots(1))
    p = TaskHandle(worker).start().wait(WAIT)
    assert p.state == "finished", p.error
    assert p.process_id == spare.pid == worker.result["pid"] and worker.result["tensorflow"]
    assert _gone(spare.pid)  # used once: its memory is back
    # The next learner's spare was started once the task had ended.
    replacement = task_process._spare.process
    assert replacement.pid != spare.pid and task_process.wait_for_spare()
    second = Counter(3, slots=TrainingSlots(1))
    assert TaskHandle(second).start().wait(WAIT).process_id == replacement.pid
    assert second.result["tensorflow"]
    task_process._end_spare()
    monkeypatch.setenv("CNNLAB_SPARE_PROCESS", "0")
    fresh = Counter(3, slots=TrainingSlots(1))
    q = TaskHandle(fresh).start().wait(WAIT)
    assert q.state == "finished" and q.process_id not in (spare.pid, replacement.pid)
    assert fresh.result["tensorflow"] == 0 and task_process._spare is None  # nothing warmed


def test_no_spare_when_turned_off_or_tasks_run_in_threads(spares, monkeypatch):
    monkeypatch.setenv("CNNLAB_SPARE_PROCESS", "0")
    assert not task_process.prewarm() and task_process._spare is None
    monkeypatch.setenv("CNNLAB_SPARE_PROCESS", "1")
    monkeypatch.setenv("CNNLAB_TRAINING_PROCESS", "0")
    assert not task_process.prewarm() and task_process._spare is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_spare_whose_server_is_gone_ends_itself(spares):
    code = textwrap.dedent(
        """
        import os
        from cnnlib.training import task_process
        assert task_process.prewarm()
        print(task_process._spare.process.pid, flush=True)
        os._exit(0)  # gone without cleaning up, as a killed server would be
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    pid = int(out.stdout.strip())
    assert _gone(pid)


# --------------------------------------------------------------------------------------------
# Pause, Step, a new learning rate, Resume: over the same channel as Stop
# --------------------------------------------------------------------------------------------


def _held_after(job: TrainingJob, batches: int):
    """The first snapshot that is paused with more than ``batches`` batches done (or done)."""
    found = []

    def held():
        p = job.snapshot()
        if p.done or (p.paused and p.batches_done > batches):
            found.append(p)
            return True
        return False

    assert wait_for(held, WAIT)
    return found[0]


@pytest.mark.slow
def test_pause_step_and_a_new_learning_rate_reach_the_work(digits, backend):
    (x, y), test = digits
    config = TrainConfig(batch_size=50, epochs=2, validation_split=0.2, learning_rate=0.001)
    plain = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1)).start()
    uninterrupted = plain.wait(WAIT)
    assert uninterrupted.state == "finished", uninterrupted.error
    assert uninterrupted.batches_done == 32 and uninterrupted.lr_changes == ()

    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1))
    job.pause()  # held before its first batch
    job.start()
    assert wait_for(lambda: job.snapshot().paused, WAIT)
    assert job.snapshot().batches_done == 0
    assert job.step()
    p = _held_after(job, 0)
    assert (p.paused, p.batches_done) == (True, 1)  # exactly one batch, then held again
    assert job.set_learning_rate(0.0123) == 0.0123
    assert job.step()
    p = _held_after(job, 1)
    assert p.batches_done == 2
    # Read back from the optimizer after batch 2, the first batch at the new rate.
    assert len(p.lr_changes) == 1 and p.lr_changes[0][0] == 1
    assert p.lr_changes[0][1] == pytest.approx(0.0123, rel=1e-6)
    assert job.step()
    assert _held_after(job, 2).batches_done == 3
    job.resume()
    done = job.wait(WAIT)
    assert done.state == "finished", done.error
    # As many batches (and curve points, epochs) as the run nobody paused.
    assert done.batches_done == uninterrupted.batches_done == 32
    assert len(done.batch_loss) == len(uninterrupted.batch_loss)
    assert len(done.val_loss) == len(uninterrupted.val_loss) == 2
    assert not done.paused
    lr = float(keras.ops.convert_to_numpy(job.model.optimizer.learning_rate))
    assert lr == pytest.approx(0.0123, rel=1e-6)


@pytest.mark.slow
def test_a_paused_training_can_still_be_stopped(digits, backend):
    (x, y), test = digits
    config = TrainConfig(batch_size=50, epochs=2, validation_split=0.2)
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1))
    job.pause()
    job.start()
    assert job.step()
    p = _held_after(job, 0)
    job.stop()
    done = job.wait(WAIT)
    assert done.state == "stopped"
    # Keras runs the batch whose start the pause held, then ends: at most one more.
    assert p.batches_done <= done.batches_done <= p.batches_done + 1
    assert done.test_accuracy is None
