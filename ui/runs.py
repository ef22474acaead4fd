"""Trainings a page starts, in ``st.session_state``: the one start → adopt → register flow of
every page that trains (Train on MNIST and its experiment, Train on your own images, Feature
maps' quick training), and the one-training-per-session guard across pages.

- ``start(key, page, make_job, info)``: Keras' objects are frozen first (``ui.keras_runtime``),
  then the job is made and started as this session's one training (``SessionBusyError``
  while another runs, whichever page started it; ``ServerBusyError`` when the server's queue
  is full: nothing starts) and kept as a ``Run`` under ``key``, with a new id and the page's
  ``info`` (what the page needs later to test and describe the model).
- ``adopt(key, test)``: once the run's job is done, ``test(run)`` runs once (the page's
  evaluation, ``register`` to add the model to the session's registry) and what it returns
  is the run's ``result``. A run that failed, or learned nothing, gets no result.
- ``busy_message()``: the learner's reason why Start is off; ``rerun_when_free`` brings Start
  back by itself when another page's training ends; ``poll_progress`` redraws a running
  job's progress every ``POLL_SECONDS``.

Session bookkeeping only: no drawing (the progress and results are drawn by the pages' views).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st

from cnnlib.models.registry import RegisteredModel, registered_from_job
from cnnlib.training.tasks import SessionBusyError, TaskHandle
from ui import state
from ui.keras_runtime import freeze_imported_objects

I = TypeVar("I")  # noqa: E741 - the page's info about a run
R = TypeVar("R")  #: what a page's test of a finished run returns

#: Session key of the number of runs started so far (each run's id).
_COUNTER = "runs_counter"
#: Seconds between two redraws of a running job's progress (every page's polling).
POLL_SECONDS = 1.0


@dataclass(eq=False)
class Run(Generic[I, R]):
    """One training a page started: its job, the page's ``info`` about it, and once the job
    is done and tested, ``result`` (None before, or when nothing was learned). A run
    resumed from a saved project (``resume``) has no job."""

    id: int
    page: str
    job: TaskHandle | None
    info: I
    result: R | None = None
    adopted: bool = False

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done


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


def start_task(page: str, handle: TaskHandle) -> TaskHandle:
    """Start ``handle`` as this session's one training. Raises ``SessionBusyError`` (another
    runs) or ``cnnlib.training.tasks.ServerBusyError`` (the server's queue is full); nothing
    starts."""
    running = running_task()
    if running is not None:
        raise SessionBusyError(running[0])
    handle.start()
    st.session_state[state.RUNNING_TASK] = (page, handle)
    return handle


def poll_progress(active: bool, body: Callable[..., None], *args: Any) -> None:
    """Draw ``body(*args)`` as a fragment that redraws itself every ``POLL_SECONDS`` while
    ``active`` (a job of this page runs), once otherwise."""
    st.fragment(body, run_every=POLL_SECONDS if active else None)(*args)


def rerun_when_free(*, own_pages: tuple[str, ...] = ()) -> None:
    """While a training from another page (not in ``own_pages``, which poll their own jobs)
    runs, check every ``POLL_SECONDS`` and rerun the page once it has ended, so Start comes
    back by itself. Draws nothing."""
    running = running_task()
    if running is None or running[0] in own_pages:
        return

    def check() -> None:
        if running_task() is None:
            st.rerun()

    st.fragment(check, run_every=POLL_SECONDS)()


# --------------------------------------------------------------------------------------------
# Start, adopt, register
# --------------------------------------------------------------------------------------------


def start(key: str, page: str, make_job: Callable[[], TaskHandle], info: I) -> Run[I, Any]:
    """Make ``make_job()`` and start it as this session's one training, kept under ``key``
    as a new ``Run`` with ``info``. Raises what ``make_job`` and ``start_task`` raise."""
    with st.spinner("Loading TensorFlow…"):
        freeze_imported_objects()
    job = start_task(page, make_job())
    ss = st.session_state
    ss[_COUNTER] = ss.get(_COUNTER, 0) + 1
    run: Run[I, Any] = Run(ss[_COUNTER], page, job, info)
    ss[key] = run
    return run


def current(key: str) -> Run | None:
    """The run under ``key`` (running or done), or None."""
    return st.session_state.get(key)


def running(key: str) -> bool:
    """Whether the run under ``key`` is still going."""
    run = current(key)
    return run is not None and run.running


def stop(key: str) -> None:
    """Ask the run under ``key`` to stop at its next check (a button callback)."""
    run = current(key)
    if run is not None:
        run.job.stop()


def pause_training(key: str) -> None:
    """Hold the run under ``key`` before its next batch (a button callback)."""
    run = current(key)
    if run is not None:
        run.job.pause()


def resume_training(key: str) -> None:
    """Let the run under ``key`` train on (a button callback)."""
    run = current(key)
    if run is not None:
        run.job.resume()


def step_training(key: str) -> None:
    """While paused: train the run under ``key`` for one batch, then hold (a button callback)."""
    run = current(key)
    if run is not None:
        run.job.step()


def set_learning_rate(key: str, value: float) -> None:
    """The run under ``key`` trains at ``value`` from its next batch (raises
    ``InvalidArgumentError`` for a bad value or a scheduled learning rate)."""
    run = current(key)
    if run is not None:
        run.job.set_learning_rate(value)


def adopt(key: str, test: Callable[[Run[I, R]], R]) -> Run[I, R] | None:
    """Once the run under ``key`` is done: ``test(run)`` once, its return value kept as the
    run's ``result`` (not when the job failed or left no model; a test that raises is tried
    again on the next run of the page). Returns the latest run with a result: this one once
    adopted, else the previous one (or None)."""
    run = current(key)
    last_key = f"{key}_adopted"
    if run is not None and not run.running and not run.adopted:
        progress = run.job.snapshot()
        if getattr(run.job, "model", None) is not None and progress.state != "failed":
            run.result = test(run)
            if run.result is not None:
                st.session_state[last_key] = run
        run.adopted = True
    return st.session_state.get(last_key)


def resume(key: str, page: str, info: I, result: R) -> Run[I, R]:
    """A model trained in an earlier session (a saved project's), kept as the latest tested
    run of ``key`` with a new id, without a job; the run under ``key`` is dropped. Add its
    model to the registry with ``register_model``."""
    ss = st.session_state
    ss[_COUNTER] = ss.get(_COUNTER, 0) + 1
    run: Run[I, R] = Run(ss[_COUNTER], page, None, info, result, adopted=True)
    ss.pop(key, None)
    ss[f"{key}_adopted"] = run
    return run


def forget(key: str) -> None:
    """Drop the run under ``key`` (e.g. "Try again" after a failure); the last result stays."""
    st.session_state.pop(key, None)


def register(
    run: Run, name: str, description: str, *, examples=None, examples_source: str = ""
) -> str:
    """Add ``run``'s model to the session's registry (its data's class names, its input
    shape, ``run.page`` as its source, and ``examples`` of the learner's data: see
    ``RegisteredModel``) under ``name`` made unique; returns that name."""
    registry = state.model_registry()
    entry = registered_from_job(
        run.job,
        registry.unique_name(name),
        description=description,
        source_page=run.page,
        examples=examples,
        examples_source=examples_source,
    )
    return registry.add(entry).name


def register_model(
    model,
    class_names: tuple[str, ...],
    name: str,
    description: str,
    page: str,
    *,
    examples=None,
    examples_source: str = "",
) -> str:
    """Add a model that no job of this session trained (a saved project's) to the session's
    registry, like ``register``: under ``name`` made unique, ``page`` as its source; returns
    that name."""
    registry = state.model_registry()
    entry = RegisteredModel(
        name=registry.unique_name(name),
        model=model,
        class_names=tuple(class_names),
        input_shape=tuple(model.input_shape[1:]),
        description=description,
        source_page=page,
        examples=examples,
        examples_source=examples_source,
    )
    return registry.add(entry).name
