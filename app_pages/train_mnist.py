"""Train on MNIST: build, train live, test, draw digits, dense vs convnet.

Layout only: ``*_ui()`` sections return typed values (the stack's summary, a ``TrainConfig``);
``ui.mnist_session`` starts, tests and registers the runs (through ``ui.runs``); views draw.
Tabs ④ and ⑤ are sections of their own (``app_pages/sections/mnist_draw.py``,
``mnist_experiment.py``).
"""

from __future__ import annotations

import functools

import streamlit as st

from app_pages.sections import mnist_calibration, mnist_draw, mnist_experiment, training_controls
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import BudgetError, CNNLabError
from cnnlib.data import mnist as datasets
from cnnlib.models import build_from_stack, summarize_stack
from cnnlib.models.stack import SummaryRow
from cnnlib.training import backends
from cnnlib.training.cost import check_training
from cnnlib.training.trainer import LR_SCHEDULES, OPTIMIZERS, TrainConfig, default_slots
from ui import health_view, runs
from ui import mnist_session as session
from ui import training_view as view
from ui.datasets import PageDataset, forget, load_for_page
from ui.errors import friendly_errors
from ui.stack_editor import current_stack, stack_editor, stack_label
from ui.state import KEEP

STACK = "mnist"  #: prefix of the stack editor's keys
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
INPUT_SHAPE = (28, 28, 1)
#: Help texts of the settings widgets, by widget key.
HELP = {
    "mnist_optimizer": "sgd uses momentum 0.9.",
    "mnist_lr_schedule": "constant: the same rate every batch; cosine: decays smoothly to 0 by "
    "the last epoch (the fast recipe's choice).",
    "mnist_train_size": "A random subset (seeded) of the training images: smaller trains faster.",
    "mnist_val": "Held out from the training images to measure each epoch on unseen digits.",
    "mnist_stop": "Ends at the next batch and keeps the model as trained so far.",
    "mnist_patience": "Stop after this many epochs without a lower validation loss and keep the "
    "best weights (0 = off).",
}

ss = st.session_state


def dataset_ui() -> PageDataset:
    name = st.radio(
        "Dataset",
        datasets.DATASET_NAMES,
        format_func=datasets.DATASET_TITLES.get,
        horizontal=True,
        key="mnist_dataset",
        help="MNIST: handwritten digits. Fashion-MNIST: photos of clothes, same size, harder.",
        **KEEP,
    )
    ds = load_for_page(name)
    view.show_dataset(ds)
    if not ds.available:
        st.button("Look for the files again", on_click=forget, key="mnist_data_retry")
    return ds


def model_ui() -> tuple[SummaryRow, ...] | None:
    """The stack editor and its summary; returns the summary rows (None if impossible)."""
    st.markdown(
        "Pick a preset, then add, remove, reorder or tune layers. The table is computed from "
        "the layer arithmetic alone (no TensorFlow): output size ⌊(n − k)/s⌋ + 1, parameters "
        "(k·k·C_in + 1)·F for a Conv2D layer and (n_in + 1)·units for a Dense layer."
    )
    specs = stack_editor(STACK, on_preset=session.apply_preset_training)
    st.markdown("**Summary**")
    try:
        rows = summarize_stack(specs, INPUT_SHAPE, 10)
    except CNNLabError as err:
        st.error(f"This stack cannot be built. {err}", icon="⚠️")
        return None
    view.show_summary(rows, INPUT_SHAPE)
    return tuple(rows)


def _setting(key: str, help_key: str | None = None) -> dict:
    """A settings widget's key, help text and session persistence (keyword arguments)."""
    return {"key": key, "help": HELP.get(help_key or key), **KEEP}


def hyperparameters_ui(ds: PageDataset) -> TrainConfig:
    """The training settings, as a ``TrainConfig`` (raises ``InvalidArgumentError``)."""
    c = st.columns(5)
    lrs = sorted(set(LEARNING_RATES) | {float(ss["mnist_lr"])})
    chosen = {
        "optimizer": c[0].selectbox("Optimizer", OPTIMIZERS, **_setting("mnist_optimizer")),
        "learning_rate": c[1].select_slider(
            "Learning rate", lrs, format_func=lambda v: f"{v:g}", **_setting("mnist_lr")
        ),
        "batch_size": c[2].selectbox("Batch size", BATCH_SIZES, **_setting("mnist_batch")),
        "epochs": c[3].number_input("Epochs", 1, 50, **_setting("mnist_epochs")),
        "lr_schedule": c[4].selectbox(
            "Learning-rate schedule", LR_SCHEDULES, **_setting("mnist_lr_schedule")
        ),
    }
    c = st.columns(4)
    if ds.available:
        n, size_key = len(ds.x_train), f"mnist_train_size_{ds.name}"
        ss.setdefault(size_key, n if n <= 10_000 else 12_000)
        chosen["train_size"] = c[0].slider(
            "Training images",
            min(500, n),
            n,
            step=100 if n < 20_000 else 500,
            **_setting(size_key, "mnist_train_size"),
        )
    chosen["validation_split"] = c[1].slider(
        "Validation split", 0.0, 0.3, step=0.05, **_setting("mnist_val")
    )
    chosen["patience"] = c[2].number_input(
        "Early-stopping patience", 0, 10, **_setting("mnist_patience")
    )
    chosen["seed"] = c[3].number_input("Random seed", 0, 2**31 - 1, **_setting("mnist_seed"))
    return TrainConfig(**chosen)


def cost_ui(rows, batch_size: int) -> str:
    """One training step's estimate, from the layer arithmetic; returns why it is refused."""
    if rows is None:
        return ""
    try:
        st.caption(view.cost_line(check_training(rows, INPUT_SHAPE, batch_size, budgets=budgets())))
    except BudgetError as err:
        st.caption("Too big to train on this server: see below.")
        return str(err)
    return ""


def start_ui(ds: PageDataset, rows, config: TrainConfig) -> None:
    """Start button and the step's cost; one training per session; says why it cannot start."""
    left, right = st.columns([1, 3], vertical_alignment="center")
    with right:
        too_big = cost_ui(rows, config.batch_size)
    reason = runs.busy_message() or too_big
    if not ds.available:
        reason = f"{ds.title} is not available on this machine (see above)."
    elif rows is None:
        reason = "Fix the model first (tab ① Model): the stack cannot be built."
    clicked = left.button(
        "Start training",
        key="mnist_start",
        disabled=bool(reason),
        icon=":material/play_arrow:",
    )
    if reason:
        st.warning(reason, icon="⏳" if runs.running_task() else "⚠️")
    else:
        backends.get_ready()  # a training process warms up while the learner chooses
    if not clicked:
        return
    with friendly_errors("Training could not start: "):
        builder = functools.partial(build_from_stack, current_stack(STACK), INPUT_SHAPE, 10)
        session.start_training(ds, builder, config, recipe=stack_label(STACK))
        st.rerun()  # redraw with Start off and the progress polling


def live_progress(polling: bool) -> None:
    """The fragment body: progress, Stop, live curves beside the first layer's filters and
    one digit's feature maps (reruns itself every second)."""
    run = runs.current(session.RUN)
    if run is None:
        st.caption("No training yet in this session: set up the model and press Start.")
        return
    p = run.job.snapshot()
    view.show_status(p, default_slots().limit)
    if not p.done:
        st.button(
            "Stop training",
            key="mnist_stop",
            on_click=runs.stop,
            args=(session.RUN,),
            icon=":material/stop:",
            help=HELP["mnist_stop"],
        )
        config = run.job.config
        training_controls.controls_ui(
            session.RUN,
            p,
            prefix="mnist",
            learning_rate=config.learning_rate,
            refusal=config.lr_change_refusal(),
        )
    curves, watch = st.columns([3, 2], gap="medium")
    with curves:
        view.show_live(p, recipe=run.info.recipe, has_model=run.job.model is not None)
    with watch:
        view.show_watch(p.watch, run.info.watched)
    with st.expander("Layer health, each epoch", expanded=bool(p.health)):
        health_view.show_health(p.health)
        health_view.show_cams(p.cams, p.class_names or run.info.class_names)
    view.show_registered(run.result.registered if run.result is not None else None)
    if polling and p.done:
        st.rerun()  # one full rerun: the results appear and polling stops


def results_ui(tested: session.MnistTested | None) -> None:
    """The latest tested run's results (the previous run's while the latest has none)."""
    if tested is None:
        st.info("Train a model (tab ② Train) to see its test results here.", icon="ℹ️")
        return
    if tested is not runs.current(session.RUN):
        st.caption("Results of the previous training: the latest one has no model (yet).")
    info, evaluation = tested.info, tested.result.evaluation
    trained = session.trained_model(tested)
    st.caption(trained.description if trained is not None else "")
    view.show_registered(tested.result.registered)
    view.show_test_metrics(evaluation)
    if trained is not None:
        view.download_model(
            trained.model, f"cnnlab_{info.dataset}_model.keras", key="mnist_download"
        )
    view.show_per_class(evaluation, info.class_names)
    confusion_ui(tested)
    mnist_calibration.calibration_ui(tested)
    view.show_mistakes(evaluation, info.x_test, info.class_names)


@st.fragment
def confusion_ui(tested: session.MnistTested) -> None:
    st.subheader("Confusion matrix")
    st.caption(
        "Row = true class, column = the model's answer; the diagonal holds the correct "
        "answers. Click a cell to see its test images."
    )
    info, evaluation = tested.info, tested.result.evaluation
    event = view.confusion_chart(
        evaluation.confusion, info.class_names, key=f"mnist_confusion_{tested.id}"
    )
    cell = view.selected_cell(event)
    if cell is not None:
        view.show_cell(evaluation, cell, info.x_test, info.class_names)


def main() -> None:
    st.title("Train a convnet on MNIST")
    st.markdown(
        "Build a convolutional network, train it on handwritten digits while you watch the "
        "curves, then test it: on the test set, on digits you draw, and on shifted digits "
        "against a dense network."
    )
    session.init_settings(STACK)
    runs.rerun_when_free(own_pages=(session.PAGE, session.EXPERIMENT_PAGE))
    dataset = dataset_ui()
    tested = None
    with friendly_errors("The trained model could not be tested: "):
        tested = session.adopt_finished_training()
    tabs = st.tabs(["① Model", "② Train", "③ Results", "④ Draw a digit", "⑤ Dense vs convnet"])
    with tabs[0]:
        rows = model_ui()
    with tabs[1]:
        with friendly_errors():
            start_ui(dataset, rows, hyperparameters_ui(dataset))
        polling = runs.running(session.RUN)
        runs.poll_progress(polling, live_progress, polling)
    with tabs[2], friendly_errors():
        results_ui(tested)
    with tabs[3], friendly_errors():
        mnist_draw.draw_ui(tested)
    with tabs[4]:
        mnist_experiment.experiment_ui(dataset, rows is not None, STACK, INPUT_SHAPE)


main()
