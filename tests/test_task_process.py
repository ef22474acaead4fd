"""cnnlib.training.task_process: a training in its own process, relayed to the parent.

Each test trains a tiny convnet on real MNIST digits in a child process (a second or two to
import TensorFlow there, then well under a second of training). Nothing asserts a duration:
waits are bounded only so that a broken child cannot hang the suite.
"""

from __future__ import annotations

import gc
import logging
import os
import signal

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training.task_process import process_rss_bytes
from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots
from tests.conftest import wait_for

keras = pytest.importorskip("keras")

SMALL = [
    LayerSpec.conv2d(8, 3, strides=2, padding="same"),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]
WAIT = 180  # seconds: a bound for a broken child, not a speed target


def small_model(seed=None):
    return build_from_stack(SMALL, seed=seed)


def killed_model(seed=None):
    """Dies the way the kernel's out-of-memory killer ends a process."""
    os.kill(os.getpid(), signal.SIGKILL)


def report_pid_model(seed=None):
    raise RuntimeError(f"built in process {os.getpid()}")


@pytest.fixture(scope="module")
def digits(mnist_test_set):
    x, y = mnist_test_set
    return (x[:1000], y[:1000]), (x[9000:9200], y[9000:9200])


@pytest.mark.slow
def test_a_training_runs_in_its_own_process_and_its_model_comes_back(digits):
    (x, y), test = digits
    config = TrainConfig(batch_size=50, epochs=2, validation_split=0.2)
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1), watch=x[0])
    p = job.start().wait(WAIT)
    assert p.state == "finished", p.error
    assert p.process_id not in (0, os.getpid())
    assert process_rss_bytes(p.process_id) is None  # the child has exited
    assert p.process_peak_bytes > 0
    # The progress crossed over: 16 batches × 2 epochs of curves, epochs, watch, test.
    assert len(p.train_loss) == len(p.val_loss) == 2 and p.val_samples == 200
    assert p.steps_per_epoch == 16 and len(p.batch_loss) == 32
    assert p.watch is not None and p.watch.epoch == 2 and p.watch.maps.shape == (14, 14, 8)
    assert p.test_samples == 200 and p.test_accuracy is not None
    # The model, loaded back here, gives the accuracy the child measured on the test set.
    probabilities = job.model.predict(test[0][:, :, :, None].astype("float32"), verbose=0)
    assert (probabilities.argmax(1) == test[1]).mean() == pytest.approx(p.test_accuracy, abs=1e-6)
    # The child saw the same first-layer filters the model now has.
    kernel = job.model.get_layer(p.watch.layer).get_weights()[0]
    np.testing.assert_allclose(p.watch.filters, kernel, rtol=1e-6)


@pytest.mark.slow
def test_stop_reaches_the_child_and_what_it_learned_is_kept(digits):
    (x, y), test = digits
    config = TrainConfig(batch_size=8, epochs=50)
    job = TrainingJob(small_model, ((x, y), test), config, slots=TrainingSlots(1)).start()
    assert wait_for(lambda: job.snapshot().step >= 3, WAIT)
    job.stop()
    p = job.wait(WAIT)
    assert p.state == "stopped" and p.epoch < 50
    assert p.test_accuracy is None  # the evaluation is skipped
    assert job.model is not None and job.model.count_params() > 0


@pytest.mark.slow
def test_a_closed_session_stops_its_child(digits):
    (x, y), test = digits
    job = TrainingJob(
        small_model, ((x, y), test), TrainConfig(batch_size=8, epochs=50), slots=TrainingSlots(1)
    ).start()
    worker = job._worker
    assert wait_for(lambda: worker.snapshot().step >= 2, WAIT)
    pid = worker.snapshot().process_id
    del job
    gc.collect()  # the session's handle is gone: its finalizer asks the worker to stop
    assert worker.done_event.wait(WAIT)
    assert worker.snapshot().state == "stopped"
    assert wait_for(lambda: process_rss_bytes(pid) is None, 30)


@pytest.mark.slow
def test_a_child_over_the_memory_budget_is_ended_not_the_server(digits, monkeypatch):
    monkeypatch.setenv("CNNLAB_TRAINING_PROCESS_BYTES", "50MB")  # TensorFlow alone needs more
    (x, y), test = digits
    job = TrainingJob(small_model, ((x, y), test), TrainConfig(epochs=1), slots=TrainingSlots(1))
    p = job.start().wait(WAIT)
    assert p.state == "failed" and job.model is None
    assert "more than 52.4 MB of memory" in p.error and "smaller batch size" in p.error
    assert p.process_peak_bytes > 50 * 2**20
    assert process_rss_bytes(p.process_id) is None


@pytest.mark.slow
def test_a_killed_child_fails_the_task_with_a_message(digits):
    (x, y), test = digits
    job = TrainingJob(killed_model, ((x, y), test), TrainConfig(epochs=1), slots=TrainingSlots(1))
    p = job.start().wait(WAIT)
    assert p.state == "failed" and job.model is None
    assert "ended unexpectedly (exit code -9: it ran out of memory or was killed)" in p.error
    assert "Traceback" not in p.error


@pytest.mark.slow
def test_an_error_in_the_child_comes_back_as_its_message(digits):
    (x, y), test = digits
    job = TrainingJob(
        report_pid_model, ((x, y), test), TrainConfig(epochs=1), slots=TrainingSlots(1)
    )
    p = job.start().wait(WAIT)
    assert p.state == "failed"
    child = int(p.error.rsplit(" ", 1)[1])
    assert p.error.startswith("Training failed: RuntimeError: built in process")
    assert child == p.process_id != os.getpid()


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
