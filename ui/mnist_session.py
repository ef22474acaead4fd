"""The Train-on-MNIST page's runs in ``st.session_state``: a training of the learner's stack
or the dense-vs-convnet experiment, started, tested once and added to the session's model
registry through the one flow of ``ui.runs``.

Session bookkeeping only (no drawing; it seeds the settings widgets' first values). The jobs
are ``cnnlib.training.trainer.TrainingJob`` and
``cnnlib.training.experiments.TranslationExperiment``, which train in the background and never
call Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from cnnlib.data.training_data import ArrayData, as_images
from cnnlib.inspect.calibration import CalibrationReport, calibration_report
from cnnlib.models import MNIST_PRESETS, PRESET_TRAINING, build_dense_baseline
from cnnlib.models.registry import RegisteredModel
from cnnlib.training.evaluation import Evaluation, evaluate_model
from cnnlib.training.experiments import TranslationExperiment
from cnnlib.training.trainer import TrainConfig, TrainingJob
from ui import runs, state
from ui.datasets import PageDataset, load_for_page
from ui.training_view import how_it_ended

# Page-local session keys (what crosses pages is in ui.state).
RUN = "mnist_page_run"  #: ``ui.runs.Run`` of the latest training (info: ``MnistRun``)
EXPERIMENT = "mnist_page_experiment"  #: ``ui.runs.Run`` of the experiment (``ExperimentRun``)

PAGE = "Train on MNIST"  #: this page's title, as other pages and the registry name it
EXPERIMENT_PAGE = "Train on MNIST (dense vs convnet)"
WATCH_INDEX = 0  #: the test image whose feature maps are watched during training
#: Short dataset names for the registry ("MNIST · Tutorial convnet · 98.1 %").
SHORT_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


@dataclass(frozen=True, eq=False)
class MnistRun:
    """What the page keeps about a training: the model's name (``recipe``: the stack's label),
    its data (``dataset``, ``source``), the test set it is tested on once done
    ((N, 28, 28) uint8 images, (N,) labels) and the watched test digit (28, 28) uint8."""

    recipe: str
    dataset: str
    source: str
    class_names: tuple[str, ...]
    x_test: np.ndarray
    y_test: np.ndarray
    watched: np.ndarray


@dataclass(frozen=True)
class MnistResult:
    """A finished training, tested: its evaluation on the test set and its registry name."""

    evaluation: Evaluation
    registered: str


@dataclass(frozen=True)
class ExperimentRun:
    """The experiment's sizes, for its result's sentence: images and epochs per model."""

    size: int
    epochs: int


#: A training of the page, once tested (``result`` set) or not yet.
MnistTested = runs.Run[MnistRun, MnistResult]


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


def _data(ds: PageDataset) -> tuple:
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def start_training(
    ds: PageDataset, builder: Callable[[], Any], config: TrainConfig, *, recipe: str
) -> None:
    """Start a ``TrainingJob`` of ``builder``'s model on ``ds`` (watching its first test image)
    as the page's run. Raises ``SessionBusyError`` / ``ServerBusyError`` (nothing starts)."""
    watched = ds.x_test[WATCH_INDEX]

    def make_job() -> TrainingJob:
        data = ArrayData.from_tuple(
            _data(ds),
            class_names=ds.class_names,
            validation_split=config.validation_split,
            train_size=config.train_size,
            seed=config.seed,
        )
        return TrainingJob(builder, data, config, watch=watched)

    info = MnistRun(
        recipe, ds.name, ds.source, tuple(ds.class_names), ds.x_test, ds.y_test, watched
    )
    runs.start(RUN, PAGE, make_job, info)


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
    config = TrainConfig(
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=64,
        epochs=epochs,
        train_size=size,
        validation_split=0.0,
        seed=0,
    )

    def make_job() -> TranslationExperiment:
        return TranslationExperiment(
            {"Dense baseline": build_dense_baseline, name: builder},
            _data(ds),
            config,
            shifts=range(0, max_shift + 1),
            direction=direction,
            test_size=min(2000, len(ds.x_test)),
        )

    runs.start(EXPERIMENT, EXPERIMENT_PAGE, make_job, ExperimentRun(size, epochs))


def _test(run: MnistTested) -> MnistResult:
    """Test a finished training's model on the test set and add it to the registry."""
    info, job = run.info, run.job
    with st.spinner("Testing the trained model on the test images…"):
        evaluation = evaluate_model(job.model, info.x_test, info.y_test)
    description = (
        f"{info.recipe} trained on {info.source} ({how_it_ended(job.snapshot())}): test "
        f"accuracy {evaluation.accuracy:.1%}"
    )
    title = SHORT_TITLES.get(info.dataset, info.dataset)
    name = f"{title} · {info.recipe} · {100 * evaluation.accuracy:.1f} %"
    return MnistResult(evaluation, runs.register(run, name, description))


def adopt_finished_training() -> MnistTested | None:
    """Once the training is done: test its model and add it to the session's registry (once
    per run). Returns the latest tested run (this one, else the previous one) or None."""
    return runs.adopt(RUN, _test)


def trained_model(run: MnistTested | None) -> RegisteredModel | None:
    """The registry's entry for ``run``'s tested model; None before there is one, or once
    the registry has dropped it."""
    if run is None or run.result is None:
        return None
    return state.model_registry().get(run.result.registered)


@st.cache_data(scope="session", max_entries=2, show_spinner="Measuring its calibration…")
def _calibration(run_id: int, _model: Any, _test: tuple, _validation: tuple | None):
    x_val, y_val = _validation if _validation is not None else (None, None)
    x_test, y_test = _test
    return calibration_report(
        _model,
        as_images(x_test).astype(np.float32),
        y_test,
        x_val=None if x_val is None else as_images(x_val).astype(np.float32),
        y_val=y_val,
    )


def calibration(run: MnistTested) -> CalibrationReport | None:
    """The tested model's calibration on the run's test set, with temperature scaling fitted
    on its validation split (rebuilt from the page's dataset with the run's own split
    settings and seed, so the very images it was validated on), once per run. None when the
    registry no longer holds the model."""
    entry = trained_model(run)
    if entry is None:
        return None
    info, config = run.info, run.job.config
    validation = None
    ds = load_for_page(info.dataset)
    if config.validation_split > 0 and ds.available:
        data = ArrayData.from_tuple(
            _data(ds),
            class_names=ds.class_names,
            validation_split=config.validation_split,
            train_size=config.train_size,
            seed=config.seed,
        )
        validation = data.arrays.get("validation")
    return _calibration(run.id, entry.model, (info.x_test, info.y_test), validation)
