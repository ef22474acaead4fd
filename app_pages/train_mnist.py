"""Train on MNIST: build, train live, test, draw digits, dense vs convnet. Layout only:
``*_ui()`` sections return widget values; ``ui.training_session`` runs; views draw."""

from __future__ import annotations

import functools

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import BudgetError, CNNLabError, InvalidImageError
from cnnlib.data import mnist as datasets
from cnnlib.data.digits import prepare_digit
from cnnlib.models import MNIST_PRESETS, build_from_stack, summarize_stack
from cnnlib.training.cost import check_training
from cnnlib.training.evaluation import predict_probabilities
from cnnlib.training.experiments import DIRECTIONS
from cnnlib.training.trainer import LR_SCHEDULES, OPTIMIZERS, TrainConfig, default_slots
from ui import alt_text, state
from ui import training_session as runs
from ui import training_view as view
from ui.datasets import PageDataset, forget, load_for_page
from ui.errors import friendly_errors
from ui.image_input import pick_images, show_image
from ui.stack_editor import current_stack, stack_editor, stack_label

STACK = "mnist"  #: prefix of the stack editor's keys
POLL_SECONDS = 1.0
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
INPUT_SHAPE = (28, 28, 1)
KEEP = {"persist_state": "session"}  #: widget values survive a visit to another page
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
#: The drawing canvas: white ink on black, as MNIST, 280 × 280 (10 × the digit).
CANVAS = dict(stroke_color="#FFFFFF", background_color="#000000", width=280, height=280,
              drawing_mode="freedraw", return_image_data=True)  # fmt: skip

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


def model_ui() -> list | None:
    """The stack editor and its summary; returns the summary rows (None if impossible)."""
    st.markdown(
        "Pick a preset, then add, remove, reorder or tune layers. The table is computed from "
        "the layer arithmetic alone (no TensorFlow): output size ⌊(n − k)/s⌋ + 1, parameters "
        "(k·k·C_in + 1)·F for a Conv2D layer and (n_in + 1)·units for a Dense layer."
    )
    specs = stack_editor(STACK, on_preset=runs.apply_preset_training)
    st.markdown("**Summary**")
    try:
        rows = summarize_stack(specs, INPUT_SHAPE, 10)
    except CNNLabError as err:
        st.error(f"This stack cannot be built. {err}", icon="⚠️")
        return None
    view.show_summary(rows, INPUT_SHAPE)
    return rows


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
            "Training images", min(500, n), n, step=100 if n < 20_000 else 500,
            **_setting(size_key, "mnist_train_size"),
        )  # fmt: skip
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
    clicked = left.button("Start training", key="mnist_start",
                          disabled=bool(reason), icon=":material/play_arrow:")  # fmt: skip
    if reason:
        st.warning(reason, icon="⏳" if runs.running_task() else "⚠️")
    if not clicked:
        return
    with friendly_errors("Training could not start: "):
        builder = functools.partial(build_from_stack, current_stack(STACK), INPUT_SHAPE, 10)
        runs.start_training(ds, builder, config, recipe=stack_label(STACK))
        st.rerun()  # redraw with Start off and the progress polling


def live_progress(polling: bool) -> None:
    """The fragment body: progress, Stop, live curves beside the first layer's filters and
    one digit's feature maps (reruns itself every second)."""
    job = ss.get(state.TRAINING_JOB)
    if job is None:
        st.caption("No training yet in this session: set up the model and press Start.")
        return
    p, run = job.snapshot(), ss.get(runs.RUN, {})
    view.show_status(p, default_slots().limit)
    if not p.done:
        st.button("Stop training", key="mnist_stop", on_click=runs.stop, args=(state.TRAINING_JOB,),
                  icon=":material/stop:", help=HELP["mnist_stop"])  # fmt: skip
    curves, watch = st.columns([3, 2], gap="medium")
    with curves:
        view.show_live(p, recipe=run.get("recipe", ""), has_model=job.model is not None)
    with watch:
        view.show_watch(p.watch, run.get("watched"))
    view.show_registered(run.get("registered"))
    if polling and p.done:
        st.rerun()  # one full rerun: the results appear and polling stops


def results_ui() -> None:
    latest = runs.latest_results()
    if latest is None:
        st.info("Train a model (tab ② Train) to see its test results here.", icon="ℹ️")
        return
    evaluation, run, previous = latest
    if previous:
        st.caption("Results of the previous training: the latest one has no model (yet).")
    trained = runs.trained_model(run)
    st.caption(trained.description if trained is not None else "")
    view.show_registered(run.get("registered"))
    view.show_test_metrics(evaluation)
    if trained is not None:
        view.download_model(
            trained.model, f"cnnlab_{run['dataset']}_model.keras", key="mnist_download"
        )
    view.show_per_class(evaluation, run["class_names"])
    confusion_ui(evaluation, run)
    view.show_mistakes(evaluation, run["x_test"], run["class_names"])


@st.fragment
def confusion_ui(evaluation, run) -> None:
    st.subheader("Confusion matrix")
    st.caption(
        "Row = true class, column = the model's answer; the diagonal holds the correct "
        "answers. Click a cell to see its test images."
    )
    event = view.confusion_chart(
        evaluation.confusion, run["class_names"], key=f"mnist_confusion_{run['id']}"
    )
    cell = view.selected_cell(event)
    if cell is not None:
        view.show_cell(evaluation, cell, run["x_test"], run["class_names"])


def digit_ui():
    """Canvas or photo; returns the image (RGBA array or PIL image), or None."""
    source = st.radio(
        "Digit", ("Draw", "Upload a photo"), horizontal=True, key="mnist_draw_or_upload", **KEEP
    )
    if source == "Draw":
        # Above the canvas: its toolbar floats over whatever sits right above it.
        width = st.slider("Pen width", 8, 40, 20, key="mnist_pen", **KEEP)
        result = st_canvas(stroke_width=width, key="mnist_canvas", **CANVAS)
        st.caption("Use the canvas toolbar to undo or clear.")
        return result.image_data
    picked = pick_images("mnist_photo", sources=("Upload", "Camera"))
    if not picked:
        return None
    show_image(
        picked[0].image,
        caption=picked[0].label,
        width=240,
        alt=alt_text.photo("Your photo of a digit", picked[0].image),
    )
    return picked[0].image


@st.fragment
def draw_ui() -> None:
    st.markdown(
        "Draw a digit with the mouse (or upload a photo of one written on paper). It is "
        "prepared the way MNIST was made: grayscale, dark-on-light inverted to light-on-dark, "
        "cropped to its bounding box, scaled to fit 20 × 20 and centred by its centre of mass "
        "in 28 × 28."
    )
    left, right = st.columns([1, 2], gap="large")
    with left:
        image = digit_ui()
    with right:
        if image is None:
            st.info("Draw a digit in the black square (or upload a photo).", icon="✏️")
            return
        try:
            prepared = prepare_digit(image)
        except InvalidImageError as err:
            st.info(str(err), icon="✏️")
            return
        ss[state.DRAWN_DIGIT] = prepared.digit
        c1, c2 = st.columns([1, 2])
        with c1:
            view.show_prepared_digit(prepared)
        trained = runs.trained_model()
        with c2:
            if trained is None:
                st.info("Train a model (tab ② Train) to see what it reads in your digit.", icon="ℹ️")
                return
            probabilities = predict_probabilities(trained.model, prepared.pixels[None])[0]
            view.show_reading(probabilities, trained.class_names)


def experiment_ui(ds: PageDataset, rows) -> None:
    st.markdown(
        "A dense network gives every pixel its own weights, so a digit moved by a few pixels "
        "lands on weights that never saw it. A convnet slides the same small filters over the "
        "whole image and pools their answers. Train a dense baseline and a convnet on the "
        "**same** centred digits, then test both on digits shifted by 0, 1, 2, … pixels."
    )
    convnets = [name for name in MNIST_PRESETS if "Dense" not in name]
    choices = [*convnets, "Your stack (tab ① Model)"] if rows is not None else convnets
    c = st.columns(5)
    index = choices.index("Tutorial convnet") if "Tutorial convnet" in choices else 0
    convnet = c[0].selectbox("Convnet", choices, index, key="mnist_exp_convnet", **KEEP)
    n_max = len(ds.x_train) if ds.available else 1000
    size = c[1].slider(
        "Training images (each model)", min(500, n_max), min(n_max, 20_000), min(4000, n_max),
        step=500, key="mnist_exp_size", **KEEP,
    )  # fmt: skip
    epochs = c[2].number_input("Epochs (each model)", 1, 10, 3, key="mnist_exp_epochs", **KEEP)
    max_shift = c[3].slider("Largest shift (pixels)", 2, 12, 8, key="mnist_exp_shift", **KEEP)
    direction = c[4].selectbox("Direction", DIRECTIONS, key="mnist_exp_direction", **KEEP)
    busy = runs.busy_message()
    start = st.button("Run the experiment", key="mnist_exp_start", icon=":material/science:",
                      disabled=not ds.available or bool(busy))  # fmt: skip
    if busy:
        st.warning(busy, icon="⏳")
    if start:
        with friendly_errors("The experiment could not start: "):
            name = convnet if convnet in MNIST_PRESETS else "Your stack"
            builder = MNIST_PRESETS.get(convnet) or functools.partial(
                build_from_stack, current_stack(STACK), INPUT_SHAPE, 10
            )
            runs.start_experiment(
                ds, name, builder, size=int(size), epochs=int(epochs),
                max_shift=int(max_shift), direction=direction,
            )  # fmt: skip
            st.rerun()
    active = runs.active(runs.EXPERIMENT)
    st.fragment(experiment_progress, run_every=POLL_SECONDS if active else None)(active)


def experiment_progress(polling: bool) -> None:
    experiment = ss.get(runs.EXPERIMENT)
    if experiment is None:
        return
    p = experiment.snapshot()
    info = ss.get(runs.EXPERIMENT_INFO, {"size": 0, "epochs": 0})
    view.show_experiment(p, info, on_stop=functools.partial(runs.stop, runs.EXPERIMENT))
    if polling and p.done:
        st.rerun()


def main() -> None:
    st.title("Train a convnet on MNIST")
    st.markdown(
        "Build a convolutional network, train it on handwritten digits while you watch the "
        "curves, then test it: on the test set, on digits you draw, and on shifted digits "
        "against a dense network."
    )
    runs.init_settings(STACK)
    runs.rerun_when_free(POLL_SECONDS, own_pages=(runs.PAGE, runs.EXPERIMENT_PAGE))
    dataset = dataset_ui()
    with friendly_errors("The trained model could not be tested: "):
        runs.adopt_finished_training()
    tabs = st.tabs(["① Model", "② Train", "③ Results", "④ Draw a digit", "⑤ Dense vs convnet"])
    with tabs[0]:
        rows = model_ui()
    with tabs[1]:
        with friendly_errors():
            start_ui(dataset, rows, hyperparameters_ui(dataset))
        polling = runs.active(state.TRAINING_JOB)
        st.fragment(live_progress, run_every=POLL_SECONDS if polling else None)(polling)
    with tabs[2], friendly_errors():
        results_ui()
    with tabs[3], friendly_errors():
        draw_ui()
    with tabs[4]:
        experiment_ui(dataset, rows)


main()
