"""Train on MNIST: build a convnet layer by layer, train it in the background with live
curves, test it, read digits you draw, and see why convnets beat dense networks."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from cnnlib import data as datasets
from cnnlib.digits import prepare_digit
from cnnlib.errors import CNNLabError, InvalidImageError
from cnnlib.evaluation import evaluate_model, predict_probabilities
from cnnlib.experiments import DIRECTIONS, TranslationExperiment
from cnnlib.models import (
    MNIST_PRESETS,
    PRESET_TRAINING,
    build_dense_baseline,
    build_from_stack,
    summarize_stack,
)
from cnnlib.training import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainConfig,
    TrainingJob,
    default_slots,
    save_model_bytes,
)
from ui import state
from ui import training_view as view
from ui.datasets import PageDataset, forget, load_for_page
from ui.errors import friendly_errors
from ui.image_input import pick_images
from ui.keras_runtime import freeze_imported_objects
from ui.stack_editor import current_stack, stack_editor, stack_label, summary_table

# Page-local session keys (what crosses pages is in ui.state).
RUN = "mnist_page_run"  #: dict describing the run of state.TRAINING_JOB (dataset, test set, …)
EVALUATION = "mnist_page_evaluation"  #: (run id, cnnlib.evaluation.Evaluation)
EXPERIMENT = "mnist_page_experiment"  #: cnnlib.experiments.TranslationExperiment
EXPERIMENT_INFO = "mnist_page_experiment_info"
RUN_COUNTER = "mnist_page_run_counter"
STACK = "mnist"  #: prefix of the stack editor's keys
POLL_SECONDS = 1.0
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
INPUT_SHAPE = (28, 28, 1)

ss = st.session_state


# --------------------------------------------------------------------------------------------
# Session helpers
# --------------------------------------------------------------------------------------------


def _apply_preset_training(preset: str) -> None:
    """Load a preset's recommended training settings into the settings widgets."""
    settings = PRESET_TRAINING.get(preset, {})
    if "optimizer" in settings:
        ss["mnist_optimizer"] = settings["optimizer"]
    if "learning_rate" in settings:
        ss["mnist_lr"] = float(settings["learning_rate"])
    if "batch_size" in settings:
        ss["mnist_batch"] = int(settings["batch_size"])
    if "epochs" in settings:
        ss["mnist_epochs"] = int(settings["epochs"])
    ss["mnist_lr_schedule"] = settings.get("lr_schedule", "constant")


def _init_settings() -> None:
    if "mnist_optimizer" not in ss:
        ss["mnist_optimizer"] = "adam"
        ss["mnist_lr"] = 1e-3
        ss["mnist_batch"] = 128
        ss["mnist_epochs"] = 3
        ss["mnist_val"] = 0.1
        ss["mnist_patience"] = 0
        ss["mnist_seed"] = 0
        _apply_preset_training(ss.get(f"{STACK}_preset") or next(iter(MNIST_PRESETS)))


def _training_active() -> bool:
    job = ss.get(state.TRAINING_JOB)
    return job is not None and not job.done


def _experiment_active() -> bool:
    experiment = ss.get(EXPERIMENT)
    return experiment is not None and not experiment.done


def _stop_training() -> None:
    job = ss.get(state.TRAINING_JOB)
    if job is not None:
        job.stop()


def _stop_experiment() -> None:
    experiment = ss.get(EXPERIMENT)
    if experiment is not None:
        experiment.stop()


def _adopt_finished_training() -> None:
    """Once the job is done: test the model, and hand it to the other pages (once per run)."""
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
    if progress.state == "stopped":
        how = f"stopped by you during epoch {progress.epoch} of {progress.epochs}"
    elif progress.stopped_early:
        how = f"stopped early after epoch {len(progress.train_loss)}, best epoch kept"
    else:
        how = f"{progress.epochs} epoch{'s' * (progress.epochs != 1)}"
    ss[state.TRAINED_MODEL] = job.model
    ss[state.TRAINED_MODEL_INFO] = (
        f"{run['recipe']} trained on {run['source']} ({how}): test accuracy "
        f"{evaluation.accuracy:.1%}"
    )
    ss[state.TRAINED_MODEL_CLASSES] = list(run["class_names"])


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def dataset_section() -> PageDataset:
    name = st.radio(
        "Dataset",
        datasets.DATASET_NAMES,
        format_func=datasets.DATASET_TITLES.get,
        horizontal=True,
        key="mnist_dataset",
        help="MNIST: handwritten digits. Fashion-MNIST: photos of clothes, same size, harder.",
    )
    ds = load_for_page(name)
    if ds.fallback:
        st.info(ds.notice, icon="ℹ️")
    elif not ds.available:
        st.warning(
            f"**{ds.title} is not available**, so training is off; the model builder below "
            f"still works.\n\n{ds.error}",
            icon="⚠️",
        )
        st.button("Look for the files again", on_click=forget, key="mnist_data_retry")
    else:
        st.caption(ds.source)
    return ds


def model_section() -> list | None:
    """The stack editor and its summary; returns the summary rows (None if impossible)."""
    st.markdown(
        "Pick a preset, then add, remove, reorder or tune layers. The table is computed from "
        "the layer arithmetic alone (no TensorFlow): output size ⌊(n − k)/s⌋ + 1, parameters "
        "(k·k·C_in + 1)·F for a Conv2D layer and (n_in + 1)·units for a Dense layer."
    )
    specs = stack_editor(STACK, on_preset=_apply_preset_training)
    st.markdown("**Summary**")
    try:
        rows = summarize_stack(specs, INPUT_SHAPE, 10)
    except CNNLabError as err:
        st.error(f"This stack cannot be built. {err}", icon="⚠️")
        return None
    st.dataframe(
        summary_table(rows, INPUT_SHAPE),
        hide_index=True,
        width="stretch",
        column_config={
            "Layer": st.column_config.TextColumn(width="small"),
            "Kind": st.column_config.TextColumn(width="medium"),
            "Parameters": st.column_config.NumberColumn(format="localized", width="small"),
            "Parameter arithmetic": st.column_config.TextColumn(width="large"),
        },
    )
    total = sum(r.params for r in rows)
    st.metric("Total parameters", f"{total:,}")
    return rows


def _config_from_widgets(ds: PageDataset) -> TrainConfig:
    return TrainConfig(
        optimizer=ss["mnist_optimizer"],
        learning_rate=float(ss["mnist_lr"]),
        lr_schedule=ss["mnist_lr_schedule"],
        batch_size=int(ss["mnist_batch"]),
        epochs=int(ss["mnist_epochs"]),
        train_size=int(ss[f"mnist_train_size_{ds.name}"]),
        validation_split=float(ss["mnist_val"]),
        patience=int(ss["mnist_patience"]),
        seed=int(ss["mnist_seed"]),
    )


def settings_section(ds: PageDataset) -> None:
    lrs = sorted(set(LEARNING_RATES) | {float(ss["mnist_lr"])})
    c = st.columns(5)
    c[0].selectbox(
        "Optimizer",
        OPTIMIZERS,
        key="mnist_optimizer",
        help="sgd uses momentum 0.9.",
    )
    c[1].select_slider("Learning rate", lrs, key="mnist_lr", format_func=lambda v: f"{v:g}")
    c[2].selectbox("Batch size", BATCH_SIZES, key="mnist_batch")
    c[3].number_input("Epochs", 1, 50, key="mnist_epochs")
    c[4].selectbox(
        "Learning-rate schedule",
        LR_SCHEDULES,
        key="mnist_lr_schedule",
        help="constant: the same rate every batch; cosine: decays smoothly to 0 by the last "
        "epoch (the fast recipe's choice).",
    )
    c = st.columns(4)
    if ds.available:
        n = len(ds.x_train)
        size_key = f"mnist_train_size_{ds.name}"
        ss.setdefault(size_key, n if n <= 10_000 else 12_000)
        c[0].slider(
            "Training images",
            min(500, n),
            n,
            step=100 if n < 20_000 else 500,
            key=size_key,
            help="A random subset (seeded) of the training images: smaller trains faster.",
        )
    c[1].slider(
        "Validation split",
        0.0,
        0.3,
        step=0.05,
        key="mnist_val",
        help="Held out from the training images to measure each epoch on unseen digits.",
    )
    c[2].number_input(
        "Early-stopping patience",
        0,
        10,
        key="mnist_patience",
        help="Stop after this many epochs without a lower validation loss and keep the best "
        "weights (0 = off).",
    )
    c[3].number_input("Random seed", 0, 2**31 - 1, key="mnist_seed")


def start_training(ds: PageDataset, rows) -> None:
    """Start button: one training per session; explains why when it cannot start."""
    busy = _training_active() or _experiment_active()
    reason = ""
    if not ds.available:
        reason = f"{ds.title} is not available on this machine (see above)."
    elif rows is None:
        reason = "Fix the model first (tab ① Model): the stack cannot be built."
    clicked = st.button(
        "Start training",
        type="primary",
        key="mnist_start",
        disabled=bool(reason),
        icon=":material/play_arrow:",
    )
    if reason:
        st.caption(reason)
    if not clicked:
        return
    if busy:
        st.warning(
            "A training is already running in this session: stop it or wait until it ends, "
            "then start the next one.",
            icon="⏳",
        )
        return
    with friendly_errors("Training could not start: "):
        config = _config_from_widgets(ds)
        with st.spinner("Loading TensorFlow…"):
            freeze_imported_objects()
        specs = list(current_stack(STACK))
        builder = functools.partial(build_from_stack, specs, INPUT_SHAPE, 10)
        job = TrainingJob(builder, ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)), config)
        ss[RUN_COUNTER] = ss.get(RUN_COUNTER, 0) + 1
        ss[RUN] = {
            "id": ss[RUN_COUNTER],
            "recipe": stack_label(STACK),
            "source": ds.source,
            "dataset": ds.name,
            "class_names": list(ds.class_names),
            "x_test": ds.x_test,
            "y_test": ds.y_test,
            "config": config,
        }
        ss[state.TRAINING_JOB] = job.start()


def live_progress(polling: bool) -> None:
    """The fragment body: progress, live curves, Stop (reruns itself every second)."""
    job = ss.get(state.TRAINING_JOB)
    if job is None:
        st.caption("No training yet in this session: set up the model and press Start.")
        return
    p = job.snapshot()
    run = ss.get(RUN, {})
    if p.state == "queued":
        slots = default_slots()
        st.info(
            f"Waiting for a free training slot: this server trains at most {slots.limit} "
            f"model{'s' * (slots.limit != 1)} at once. Your place in the queue: "
            f"{p.queue_position or 1}. It starts by itself.",
            icon="⏳",
        )
    elif p.state == "failed":
        st.error(p.error or "The training failed.", icon="⚠️")
    else:
        label = {
            "running": "Training",
            "stopping": "Stopping after this batch…",
            "finished": "Finished",
            "stopped": "Stopped",
        }.get(p.state, p.state)
        st.progress(p.fraction, text=f"**{label}** · {view.progress_line(p)}")
    if not p.done:
        st.button(
            "Stop training",
            key="mnist_stop",
            on_click=_stop_training,
            icon=":material/stop:",
            help="Ends at the next batch and keeps the model as trained so far.",
        )
    if p.batch_loss or p.val_loss:
        st.plotly_chart(
            view.curves_figure(p), key="mnist_live_curves", config={"displaylogo": False}
        )
    facts = []
    if p.train_samples:
        facts.append(
            f"{p.train_samples:,} training images, {p.val_samples:,} for validation"
            + (f", {p.test_samples:,} test images" if p.test_samples else "")
        )
    if p.device:
        facts.append(f"device: {p.device}")
    if p.tf_version:
        facts.append(f"TensorFlow {p.tf_version}")
    if run.get("recipe"):
        facts.insert(0, run["recipe"])
    if facts:
        st.caption(" · ".join(facts))
    if p.done and p.state == "stopped" and job.model is None:
        st.warning("Stopped before the first batch: nothing was learned, so there is no model.")
    if p.stopped_early and p.best_epoch:
        st.caption(
            f"Early stopping: the validation loss stopped improving; the weights of epoch "
            f"{p.best_epoch} were kept."
        )
    if polling and p.done:
        st.rerun()  # one full rerun: the results appear and polling stops


def results_section() -> None:
    done = ss.get(EVALUATION)
    run = ss.get(RUN)
    model = ss.get(state.TRAINED_MODEL)
    if model is None or done is None or done[1] is None or run is None or done[0] != run["id"]:
        previous = ss.get("mnist_page_previous_results")
        if previous is None:
            st.info("Train a model (tab ② Train) to see its test results here.", icon="ℹ️")
            return
        evaluation, run = previous
        st.caption("Results of the previous training: the latest one has no model (yet).")
    else:
        evaluation = done[1]
        ss["mnist_page_previous_results"] = (evaluation, run)
    classes = run["class_names"]
    st.caption(ss.get(state.TRAINED_MODEL_INFO, ""))
    c = st.columns(4)
    c[0].metric("Test accuracy", f"{evaluation.accuracy:.2%}")
    c[1].metric("Test loss", f"{evaluation.loss:.4f}")
    c[2].metric("Test images", f"{len(evaluation.labels):,}")
    c[3].metric("Mistakes", f"{int((evaluation.predictions != evaluation.labels).sum()):,}")
    if model is not None:
        st.download_button(
            "Download the model (.keras)",
            data=functools.partial(save_model_bytes, model),
            file_name=f"cnnlab_{run['dataset']}_model.keras",
            mime="application/octet-stream",
            on_click="ignore",
            icon=":material/download:",
            key="mnist_download",
        )
    st.subheader("Accuracy per class")
    st.plotly_chart(view.per_class_figure(evaluation.per_class, classes), key="mnist_per_class")
    confusion_section(evaluation, run)
    st.subheader("Most confident mistakes")
    st.caption("Test images the model got wrong while being most sure of its answer.")
    worst = evaluation.confident_mistakes(16)
    if not len(worst):
        st.success("No mistakes on the test images.")
    else:
        captions = [
            f"{classes[evaluation.labels[i]]} → {classes[evaluation.predictions[i]]} "
            f"({evaluation.probabilities[i, evaluation.predictions[i]]:.0%})"
            for i in worst
        ]
        view.image_gallery(run["x_test"][worst], captions)


@st.fragment
def confusion_section(evaluation, run) -> None:
    st.subheader("Confusion matrix")
    st.caption(
        "Row = true class, column = the model's answer; the diagonal holds the correct "
        "answers. Click a cell to see its test images."
    )
    classes = run["class_names"]
    event = st.plotly_chart(
        view.confusion_figure(evaluation.confusion, classes),
        key=f"mnist_confusion_{run['id']}",
        on_select="rerun",
        selection_mode=("points", "box"),
        config={"displaylogo": False},
    )
    cell = view.selected_cell(event)
    if cell is None:
        return
    true_class, predicted = cell
    indices = evaluation.cell(true_class, predicted)
    shown = indices[:32]
    st.markdown(
        f"**True {classes[true_class]}, predicted {classes[predicted]}: {len(indices):,} test "
        f"image{'s' * (len(indices) != 1)}**"
        + (f" (the first {len(shown)} shown)" if len(indices) > len(shown) else "")
    )
    if len(shown):
        captions = [f"#{i} · {evaluation.probabilities[i, predicted]:.0%}" for i in shown]
        view.image_gallery(run["x_test"][shown], captions)


@st.fragment
def draw_section() -> None:
    st.markdown(
        "Draw a digit with the mouse (or upload a photo of one written on paper). It is "
        "prepared the way MNIST was made: grayscale, dark-on-light inverted to light-on-dark, "
        "cropped to its bounding box, scaled to fit 20 × 20 and centred by its centre of mass "
        "in 28 × 28."
    )
    source = st.radio(
        "Digit", ("Draw", "Upload a photo"), horizontal=True, key="mnist_draw_or_upload"
    )
    left, right = st.columns([1, 2], gap="large")
    image = None
    with left:
        if source == "Draw":
            # Above the canvas: its toolbar floats over whatever sits right above it.
            width = st.slider("Pen width", 8, 40, 20, key="mnist_pen")
            result = st_canvas(
                stroke_width=width,
                stroke_color="#FFFFFF",
                background_color="#000000",
                width=280,
                height=280,
                drawing_mode="freedraw",
                return_image_data=True,
                key="mnist_canvas",
            )
            image = result.image_data
            st.caption("Use the canvas toolbar to undo or clear.")
        else:
            picked = pick_images("mnist_photo", sources=("Upload", "Camera"))
            if picked:
                image = picked[0].image
                st.image(image, caption=picked[0].label, width=240)
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
        c1.image(
            view.upscale(prepared.digit, 6),
            caption="What the model sees: 28 × 28",
            clamp=True,
        )
        with c1.expander("The steps"):
            st.image(
                view.upscale(prepared.scaled, 4),
                caption=f"Cropped and scaled to fit 20 × 20: {prepared.scaled.shape[1]} × "
                f"{prepared.scaled.shape[0]}"
                + (" (inverted: it was dark on light)" if prepared.inverted else ""),
                clamp=True,
            )
        model = ss.get(state.TRAINED_MODEL)
        with c2:
            if model is None:
                st.info("Train a model (tab ② Train) to see what it reads in your digit.", icon="ℹ️")
                return
            classes = ss.get(state.TRAINED_MODEL_CLASSES) or datasets.CLASS_NAMES["mnist"]
            probabilities = predict_probabilities(model, prepared.digit[None])[0]
            best = int(np.argmax(probabilities))
            st.markdown(
                f"The model reads **{classes[best]}** with probability "
                f"**{probabilities[best]:.1%}**."
            )
            st.plotly_chart(
                view.probabilities_figure(probabilities, classes), key="mnist_probabilities"
            )


def experiment_section(ds: PageDataset, rows) -> None:
    st.markdown(
        "A dense network gives every pixel its own weights, so a digit moved by a few pixels "
        "lands on weights that never saw it. A convnet slides the same small filters over the "
        "whole image and pools their answers. Train a dense baseline and a convnet on the "
        "**same** centred digits, then test both on digits shifted by 0, 1, 2, … pixels."
    )
    convnets = [name for name in MNIST_PRESETS if "Dense" not in name]
    choices = [*convnets, "Your stack (tab ① Model)"] if rows is not None else convnets
    c = st.columns(5)
    convnet = c[0].selectbox(
        "Convnet",
        choices,
        index=choices.index("Tutorial convnet") if "Tutorial convnet" in choices else 0,
        key="mnist_exp_convnet",
    )
    n_max = len(ds.x_train) if ds.available else 1000
    size = c[1].slider(
        "Training images (each model)", min(500, n_max), min(n_max, 20_000), min(4000, n_max),
        step=500,
        key="mnist_exp_size",
    )  # fmt: skip
    epochs = c[2].number_input("Epochs (each model)", 1, 10, 3, key="mnist_exp_epochs")
    max_shift = c[3].slider("Largest shift (pixels)", 2, 12, 8, key="mnist_exp_shift")
    direction = c[4].selectbox("Direction", DIRECTIONS, key="mnist_exp_direction")
    start = st.button(
        "Run the experiment",
        key="mnist_exp_start",
        disabled=not ds.available,
        icon=":material/science:",
    )
    if start:
        if _training_active() or _experiment_active():
            st.warning(
                "A training is already running in this session: stop it or wait until it "
                "ends, then run the experiment.",
                icon="⏳",
            )
        else:
            with friendly_errors("The experiment could not start: "):
                with st.spinner("Loading TensorFlow…"):
                    freeze_imported_objects()
                if convnet in MNIST_PRESETS:
                    conv_builder = MNIST_PRESETS[convnet]
                else:
                    conv_builder = functools.partial(
                        build_from_stack, list(current_stack(STACK)), INPUT_SHAPE, 10
                    )
                config = TrainConfig(
                    optimizer="adam",
                    learning_rate=1e-3,
                    batch_size=64,
                    epochs=int(epochs),
                    train_size=int(size),
                    validation_split=0.0,
                    seed=0,
                )
                name = convnet if convnet in MNIST_PRESETS else "Your stack"
                experiment = TranslationExperiment(
                    {"Dense baseline": build_dense_baseline, name: conv_builder},
                    ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)),
                    config,
                    shifts=range(0, int(max_shift) + 1),
                    direction=direction,
                    test_size=min(2000, len(ds.x_test)),
                )
                ss[EXPERIMENT] = experiment.start()
                ss[EXPERIMENT_INFO] = {
                    "size": int(size),
                    "epochs": int(epochs),
                    "source": ds.source,
                }
    active = _experiment_active()
    st.fragment(experiment_progress, run_every=POLL_SECONDS if active else None)(active)


def experiment_progress(polling: bool) -> None:
    experiment = ss.get(EXPERIMENT)
    if experiment is None:
        return
    p = experiment.snapshot()
    info = ss.get(EXPERIMENT_INFO, {})
    if not p.done:
        t = p.training
        step = f" · {view.progress_line(t)}" if t is not None and t.state == "running" else ""
        if p.current is None:  # both trained: measuring
            fraction, text = 1.0, f"**{p.phase}…**"
        else:
            fraction = (p.current + (t.fraction if t is not None else 0.0)) / len(p.models)
            text = f"**{p.phase}** (model {p.current + 1} of {len(p.models)}){step}"
        st.progress(min(1.0, fraction), text=text)
        if t is not None and t.state == "queued":
            st.info("Waiting for a free training slot on this server…", icon="⏳")
        st.button("Stop the experiment", key="mnist_exp_stop", on_click=_stop_experiment)
    elif p.state == "failed":
        st.error(p.error or "The experiment failed.", icon="⚠️")
    elif p.state == "stopped":
        st.warning("The experiment was stopped before it finished; run it again for a result.")
    elif p.result is not None:
        result = p.result
        st.plotly_chart(view.translation_figure(result), key="mnist_translation")
        names = list(result.accuracies)
        table = {"shift (pixels)": list(result.shifts)}
        table.update({name: [f"{a:.1%}" for a in result.accuracies[name]] for name in names})
        st.dataframe(table, hide_index=True)
        mid = min(4, result.shifts[-1])
        i = list(result.shifts).index(mid) if mid in result.shifts else len(result.shifts) - 1
        parts = [f"{name} {result.accuracies[name][i]:.0%}" for name in names]
        st.markdown(
            f"Both were trained on {info.get('size', 0):,} centred images for "
            f"{info.get('epochs', 0)} epoch{'s' * (info.get('epochs', 0) != 1)} and tested on "
            f"the same {result.test_size:,} test digits. Shifted by {result.shifts[i]} pixels "
            f"({result.direction} direction): {', '.join(parts)}."
        )
    if polling and p.done:
        st.rerun()


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

st.title("Train a convnet on MNIST")
st.markdown(
    "Build a convolutional network, train it on handwritten digits while you watch the "
    "curves, then test it: on the test set, on digits you draw, and on shifted digits "
    "against a dense network."
)
_init_settings()
dataset = dataset_section()
with friendly_errors("The trained model could not be tested: "):
    _adopt_finished_training()

tab_model, tab_train, tab_results, tab_draw, tab_experiment = st.tabs(
    ["① Model", "② Train", "③ Results", "④ Draw a digit", "⑤ Dense vs convnet"]
)
with tab_model:
    summary_rows = model_section()
with tab_train:
    settings_section(dataset)
    start_training(dataset, summary_rows)
    polling = _training_active()
    st.fragment(live_progress, run_every=POLL_SECONDS if polling else None)(polling)
with tab_results, friendly_errors():
    results_section()
with tab_draw, friendly_errors():
    draw_section()
with tab_experiment:
    experiment_section(dataset, summary_rows)
