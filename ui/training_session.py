"""Trainings in ``st.session_state``: the one-training-per-session guard for every page, and
the Train-on-MNIST page's runs (start a training or the dense-vs-convnet experiment, test a
finished model once, add it to the session's model registry).

Session bookkeeping only (no drawing; it seeds the settings widgets' first values). The jobs
are ``cnnlib.training.trainer.TrainingJob`` /
``cnnlib.training.experiments.TranslationExperiment``, which train in background threads that never
call Streamlit.

Any page that trains starts its job with ``start_task(page, handle)`` (or checks
``running_task()`` and calls ``register_task``): a session runs one training at a time,
whichever page started it; ``busy_message()`` is the learner's reason to disable Start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from cnnlib.data.training_data import ArrayData
from cnnlib.models import MNIST_PRESETS, PRESET_TRAINING, build_dense_baseline
from cnnlib.models.registry import RegisteredModel, registered_from_job
from cnnlib.training.evaluation import Evaluation, evaluate_model
from cnnlib.training.experiments import TranslationExperiment
from cnnlib.training.tasks import SessionBusyError, TaskHandle
from cnnlib.training.trainer import TrainConfig, TrainingJob
from ui import state
from ui.datasets import PageDataset
from ui.keras_runtime import freeze_imported_objects
from ui.training_view import how_it_ended

# Page-local session keys (what crosses pages is in ui.state).
RUN = "mnist_page_run"  #: dict describing the run of state.TRAINING_JOB (dataset, test set, …)
EVALUATION = "mnist_page_evaluation"  #: (run id, cnnlib.training.evaluation.Evaluation | None)
PREVIOUS = "mnist_page_previous_results"  #: (Evaluation, run) last shown
EXPERIMENT = "mnist_page_experiment"  #: cnnlib.training.experiments.TranslationExperiment
EXPERIMENT_INFO = "mnist_page_experiment_info"  #: {"size": int, "epochs": int}
RUN_COUNTER = "mnist_page_run_counter"

PAGE = "Train on MNIST"  #: this page's title, as other pages and the registry name it
EXPERIMENT_PAGE = "Train on MNIST (dense vs convnet)"
WATCH_INDEX = 0  #: the test image whose feature maps are watched during training
#: Short dataset names for the registry ("MNIST · Tutorial convnet · 98.1 %").
SHORT_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


# --------------------------------------------------------------------------------------------
# One training per session, across pages
# --------------------------------------------------------------------------------------------


def running_task() -> tuple[str, TaskHandle] | None:
    """(page title, handle) of this session's training while it runs, else None."""
    entry = st.session_state.get(state.RUNNING_TASK)
    if entry is None or entry[1].done:
        return None
    return entry


def busy_message() -> str | None:
    """Why Start is off: "A training from <page> is running in this session: …", or None."""
    running = running_task()
    return None if running is None else str(SessionBusyError(running[0]))


def register_task(page: str, handle: TaskHandle) -> None:
    """Record ``handle`` (started by ``page``) as this session's running training; raises
    ``SessionBusyError`` when another one still runs."""
    running = running_task()
    if running is not None and running[1] is not handle:
        raise SessionBusyError(running[0])
    st.session_state[state.RUNNING_TASK] = (page, handle)


def start_task(page: str, handle: TaskHandle) -> TaskHandle:
    """Start ``handle`` as this session's one training. Raises ``SessionBusyError`` (another
    runs) or ``cnnlib.training.tasks.ServerBusyError`` (the server's queue is full); nothing
    starts."""
    running = running_task()
    if running is not None:
        raise SessionBusyError(running[0])
    handle.start()
    register_task(page, handle)
    return handle


def rerun_when_free(poll_seconds: float, *, own_pages: tuple[str, ...] = ()) -> None:
    """While a training from another page (not in ``own_pages``, which poll their own jobs)
    runs, check every ``poll_seconds`` and rerun the page once it has ended, so Start comes
    back by itself. Draws nothing."""
    running = running_task()
    if running is None or running[0] in own_pages:
        return

    def check() -> None:
        if running_task() is None:
            st.rerun()

    st.fragment(check, run_every=poll_seconds)()


# --------------------------------------------------------------------------------------------
# The MNIST page's runs
# --------------------------------------------------------------------------------------------


def apply_preset_training(preset: str) -> None:
    """Load a preset's recommended training settings into the page's settings widgets."""
    ss = st.session_state
    settings = PRESET_TRAINING.get(preset, {})
    for key, name, cast in (
        ("mnist_optimizer", "optimizer", str),
        ("mnist_lr", "learning_rate", float),
        ("mnist_batch", "batch_size", int),
        ("mnist_epochs", "epochs", int),
    ):
        if name in settings:
            ss[key] = cast(settings[name])
    ss["mnist_lr_schedule"] = settings.get("lr_schedule", "constant")


def init_settings(stack_prefix: str) -> None:
    """The settings widgets' first-visit defaults: the current preset's recipe. Later visits
    keep the learner's values (the widgets persist them for the session)."""
    ss = st.session_state
    if "mnist_optimizer" not in ss:
        ss.update(mnist_optimizer="adam", mnist_lr=1e-3, mnist_batch=128, mnist_epochs=3)
        ss.update(mnist_val=0.1, mnist_patience=0, mnist_seed=0)
        apply_preset_training(ss.get(f"{stack_prefix}_preset") or next(iter(MNIST_PRESETS)))


def active(key: str = state.TRAINING_JOB) -> bool:
    """Whether the job under ``key`` (training or ``EXPERIMENT``) is still running."""
    job = st.session_state.get(key)
    return job is not None and not job.done


def stop(key: str) -> None:
    """Ask the job under ``key`` to stop at the next batch (a button callback)."""
    job = st.session_state.get(key)
    if job is not None:
        job.stop()


def _data(ds: PageDataset) -> tuple:
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def start_training(
    ds: PageDataset, builder: Callable[[], Any], config: TrainConfig, *, recipe: str
) -> None:
    """Start a ``TrainingJob`` of ``builder``'s model on ``ds`` (watching its first test image)
    and remember its run. Raises ``SessionBusyError`` / ``ServerBusyError`` (nothing starts)."""
    with st.spinner("Loading TensorFlow…"):
        freeze_imported_objects()
    data = ArrayData.from_tuple(
        _data(ds),
        class_names=ds.class_names,
        validation_split=config.validation_split,
        train_size=config.train_size,
        seed=config.seed,
    )
    watched = ds.x_test[WATCH_INDEX]
    job = start_task(PAGE, TrainingJob(builder, data, config, watch=watched))
    ss = st.session_state
    ss[RUN_COUNTER] = ss.get(RUN_COUNTER, 0) + 1
    ss[RUN] = {
        "id": ss[RUN_COUNTER],
        "recipe": recipe,
        "source": ds.source,
        "dataset": ds.name,
        "class_names": list(ds.class_names),
        "x_test": ds.x_test,
        "y_test": ds.y_test,
        "watched": watched,  # (28, 28) uint8
        "registered": None,  # the model registry's name for it, once tested
    }
    ss[state.TRAINING_JOB] = job


def start_experiment(
    ds: PageDataset,
    name: str,
    builder: Callable[[], Any],
    *,
    size: int,
    epochs: int,
    max_shift: int,
    direction: str,
) -> None:
    """Train the dense baseline and ``builder``'s convnet alike, then test both on shifts."""
    with st.spinner("Loading TensorFlow…"):
        freeze_imported_objects()
    config = TrainConfig(
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=64,
        epochs=epochs,
        train_size=size,
        validation_split=0.0,
        seed=0,
    )
    experiment = TranslationExperiment(
        {"Dense baseline": build_dense_baseline, name: builder},
        _data(ds),
        config,
        shifts=range(0, max_shift + 1),
        direction=direction,
        test_size=min(2000, len(ds.x_test)),
    )
    st.session_state[EXPERIMENT] = start_task(EXPERIMENT_PAGE, experiment)
    st.session_state[EXPERIMENT_INFO] = {"size": size, "epochs": epochs}


def adopt_finished_training() -> None:
    """Once the job is done: test the model, and hand it to the other pages (once per run):
    added to the session's model registry (``run["registered"]`` is its name there)."""
    ss = st.session_state
    job, run = ss.get(state.TRAINING_JOB), ss.get(RUN)
    if job is None or run is None or not job.done:
        return
    done = ss.get(EVALUATION)
    if done is not None and done[0] == run["id"]:
        return
    progress = job.snapshot()
    if job.model is None or progress.state == "failed":
        ss[EVALUATION] = (run["id"], None)
        return
    with st.spinner("Testing the trained model on the test images…"):
        evaluation = evaluate_model(job.model, run["x_test"], run["y_test"])
    ss[EVALUATION] = (run["id"], evaluation)
    description = (
        f"{run['recipe']} trained on {run['source']} ({how_it_ended(progress)}): test "
        f"accuracy {evaluation.accuracy:.1%}"
    )
    registry = state.model_registry()
    title = SHORT_TITLES.get(run["dataset"], run["dataset"])
    name = f"{title} · {run['recipe']} · {100 * evaluation.accuracy:.1f} %"
    entry = registered_from_job(
        job, registry.unique_name(name), description=description, source_page=PAGE
    )
    run["registered"] = registry.add(entry).name


def trained_model(run: dict | None = None) -> RegisteredModel | None:
    """The registry's entry for ``run``'s tested model (default: the latest run's); None
    before there is one, or once the registry has dropped it."""
    run = st.session_state.get(RUN) if run is None else run
    name = run.get("registered") if run is not None else None
    return state.model_registry().get(name) if name is not None else None


def latest_results() -> tuple[Evaluation, dict, bool] | None:
    """(evaluation, run, is_previous) to show: the latest run's, else the last one shown."""
    ss = st.session_state
    done, run = ss.get(EVALUATION), ss.get(RUN)
    current = done is not None and done[1] is not None and run is not None and done[0] == run["id"]
    if current:
        ss[PREVIOUS] = (done[1], run)
        return done[1], run, False
    if ss.get(PREVIOUS) is None:
        return None
    evaluation, run = ss[PREVIOUS]
    return evaluation, run, True
