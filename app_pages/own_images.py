"""Train on your own images: class folders → health check → augmentation preview → background
training (scratch, or transfer on cached features) → results, relabelling, Grad-CAM, export.
Layout only: ``*_ui()`` sections return widget values, ``ui.own_images_session`` keeps the
data and runs, ``cnnlib`` computes, ``ui.own_images_view`` draws."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ArchiveError
from cnnlib.core.text import safe_text
from cnnlib.inspect.saliency import saliency_map
from cnnlib.training import transfer
from cnnlib.training.trainer import default_slots
from cnnlib.uploads import folders
from ui import alt_text, training_view
from ui import own_images_session as session
from ui import own_images_view as view
from ui import training_session as runs
from ui.errors import friendly_errors
from ui.image_input import pick_images, show_image

KEEP = {"persist_state": "session"}  #: widget values survive a visit to another page
POLL_SECONDS = 1.0
EXAMPLE, ZIP, FOLDER = "Built-in example", "Upload a .zip", "Upload a folder"
EXAMPLE_PER_CLASS = 40
IMAGE_SIZES = [32, 48, 64, 96, 128, 160, 224]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
DEFAULT_AUGMENT = ["flip", "rotation", "zoom"]
RECIPES = {"scratch": "From scratch", "transfer": "Transfer learning (frozen backbone)"}
CACHE_BYTES = budgets().cache_bytes  #: bound of this page's st.cache_data entries
ss = st.session_state


@st.cache_data(max_size=CACHE_BYTES, max_entries=1, show_spinner="Making the example set…")
def example_zip() -> bytes:
    return folders.example_archive(EXAMPLE_PER_CLASS)


def _uploaded(source: str):
    """(key, read) of the learner's upload, or None while there is none."""
    if source == ZIP:
        file = st.file_uploader("A .zip with one folder per class", type=["zip"], key="own_zip")
        return None if file is None else (f"zip:{file.file_id}", file.getvalue)
    files = st.file_uploader("A folder with one sub-folder per class", key="own_folder",
                             accept_multiple_files="directory")  # fmt: skip
    if not files:
        return None
    key = hashlib.sha1("|".join(f.file_id for f in files).encode()).hexdigest()
    return f"folder:{key}", lambda: [(f.name, f.getvalue()) for f in files]


def data_ui() -> dict | None:
    """Where the images come from; returns the session's data entry (or None)."""
    source = st.radio("Images", (EXAMPLE, ZIP, FOLDER), horizontal=True, key="own_source", **KEEP)
    if source == EXAMPLE:
        st.caption(
            f"The example: {EXAMPLE_PER_CLASS} real Fashion-MNIST test images of each of four "
            "classes (trouser, sandal, sneaker, bag), 28 × 28, as a zip of class folders."
        )
        return session.use_data("example", example_zip)
    st.caption(
        "One folder per class, named after it (`cats/1.jpg`, `dogs/1.jpg`; one wrapping folder "
        "is fine). JPEG, PNG, WebP, BMP, GIF or TIFF; at least 2 classes of "
        f"{budgets().min_images_per_class} images."
    )
    upload = _uploaded(source)
    current = session.data()
    if upload is None:
        if current is not None and current["key"] != "example":
            st.caption("Using your earlier upload.")
            return current
        st.info("Upload your images to continue.", icon="📁")
        return None
    return session.use_data(*upload)


def options_ui(entry: dict) -> dict:
    """Image size, split, augmentation (with its preview), model and training settings."""
    c = st.columns([1, 1, 2])
    o = {
        "image_size": c[0].select_slider("Image size (pixels)", IMAGE_SIZES, value=64,
                                         key="own_size", **KEEP),
        "val": c[1].slider("Validation split", 0.1, 0.5, 0.2, 0.05, key="own_val",
                           help="Stratified: every class keeps this share aside.", **KEEP),
    }  # fmt: skip
    chosen = c[2].pills("Augmentation", transfer.AUGMENTATIONS, selection_mode="multi",
                        default=DEFAULT_AUGMENT, key="own_augment", **KEEP)  # fmt: skip
    o["augment"] = tuple(chosen or ())
    augmentation_preview(entry, o["image_size"], o["augment"])
    c = st.columns(3)
    pretrained = transfer.weights_status().available  # transfer learning first when it can
    recipe = c[0].radio("Model", tuple(RECIPES), int(pretrained), format_func=RECIPES.get,
                        key="own_recipe", **KEEP)  # fmt: skip
    backbone = c[1].selectbox("Backbone", tuple(transfer.BACKBONES), key="own_backbone",
                              disabled=recipe == "scratch", **KEEP)  # fmt: skip
    o.update(recipe=recipe, backbone=backbone, weights=transfer.weights_status(backbone))
    o["copies"] = c[2].slider("Augmented copies per image (features)", 0, 5, 1, key="own_copies",
                              disabled=recipe == "scratch" or not o["augment"], **KEEP)  # fmt: skip
    c = st.columns(4)
    o["epochs"] = c[0].number_input("Epochs", 1, 100, 5, key="own_epochs", **KEEP)
    o["lr"] = c[1].select_slider("Learning rate", LEARNING_RATES, 1e-3, format_func="{:g}".format,
                                 key="own_lr", **KEEP)  # fmt: skip
    o["patience"] = c[2].number_input(
        "Early-stopping patience",
        0,
        20,
        3,
        key="own_patience",
        help="0 = off; else keep the best epoch's weights.",
        **KEEP,
    )
    o["fine_tune"] = c[3].number_input(
        "Fine-tune epochs",
        0,
        20,
        0,
        key="own_fine_tune",
        disabled=recipe == "scratch",
        help="Then unfreeze the backbone's top block at a learning rate of 1e-5.",
        **KEEP,
    )
    if recipe == "transfer":
        weights_note(o["weights"])
    return o


def weights_note(status: transfer.WeightsStatus) -> None:
    if not status.available:
        st.warning(f"**Transfer learning is off: no pretrained weights.** {status.message} "
                   "Training from scratch works without them.", icon="⚠️")  # fmt: skip
    else:
        st.caption(f"{status.backbone} weights: {status.source}.")


@st.cache_data(max_size=CACHE_BYTES, max_entries=8, show_spinner="Augmenting a few samples…")
def _preview(samples: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    return transfer.preview_augmentation(samples, kinds, copies=4, seed=1)


def augmentation_preview(entry: dict, size: int, kinds: tuple[str, ...]) -> None:
    if not kinds:
        st.caption("No augmentation: the model sees each training image as it is.")
        return
    samples = [s[0] for s in entry["health"].samples.values() if s][:3]
    x = np.stack([np.asarray(s.convert("RGB").resize((size, size))) for s in samples])
    with st.expander("Augmentation preview", expanded=True):
        view.show_augmentation_preview(x, _preview(x, kinds))


def start_ui(entry: dict | None, o: dict | None) -> None:
    """Start (or why not), Stop, and the live progress polled every second."""
    reason = runs.busy_message()
    if entry is None or o is None:
        reason = reason or "Choose your images first (tab ①)."
    elif not entry["health"].ok:
        reason = reason or "Fix the problems the health check lists (tab ①) first."
    elif o["recipe"] == "transfer" and not o["weights"].available:
        reason = reason or "No pretrained weights for transfer learning: choose From scratch."
    if st.button("Start training", key="own_start", disabled=bool(reason),
                 icon=":material/play_arrow:"):  # fmt: skip
        with friendly_errors("Training could not start: "):
            session.start(entry, o)
            st.rerun()
    if reason:
        st.warning(reason, icon="⏳" if runs.running_task() else "⚠️")
    active = session.running()
    st.fragment(live_progress, run_every=POLL_SECONDS if active else None)(active)


def live_progress(polling: bool) -> None:
    job = ss.get(session.JOB)
    if job is None:
        st.caption("No training yet in this session: choose the options and press Start.")
        return
    p = job.snapshot()
    view.show_progress(p, default_slots().limit)
    if not p.done:
        st.button("Stop training", key="own_stop", on_click=job.stop, icon=":material/stop:")
    if p.stage != "features":
        training_view.show_live(p, recipe=ss[session.RUN]["label"], has_model=job.model is not None)
    if polling and p.done:
        st.rerun()  # one full rerun: the results appear and polling stops


def results_ui(result: dict | None, entry: dict | None) -> None:
    if result is None:
        st.info("Train a model (tab ②) to see its validation results here.", icon="ℹ️")
        return
    view.show_registered(result["registered"])
    evaluation, names = result["evaluation"], result["class_names"]
    if evaluation is None:
        st.info("There were no validation images: raise the validation split.", icon="ℹ️")
        return
    c = st.columns(3)
    c[0].metric("Validation accuracy", f"{evaluation.accuracy:.1%}")
    c[1].metric("Validation images", f"{len(evaluation.labels):,}")
    c[2].metric("Mistakes", f"{int((evaluation.predictions != evaluation.labels).sum()):,}")
    view.show_per_class(evaluation, names)
    confusion_ui(result)
    mistakes_ui(result, entry)
    rows = session.comparison(result)
    if len(rows) > 1:
        view.show_comparison(rows)


@st.fragment
def confusion_ui(result: dict) -> None:
    st.markdown("**Confusion matrix** (row = true class, column = the model's answer). "
                "Click a cell to see its images.")  # fmt: skip
    evaluation, names = result["evaluation"], result["class_names"]
    event = training_view.confusion_chart(
        evaluation.confusion, names, key=f"own_confusion_{result['id']}"
    )
    cell = training_view.selected_cell(event)
    if cell is not None:
        view.show_cell(evaluation, cell, result["x"], names)


def mistakes_ui(result: dict, entry: dict | None) -> None:
    """The most confident mistakes; each can be moved to another class or left out."""
    st.markdown("**Most confident mistakes**: a wrong label in your data? Fix it, then retrain.")
    evaluation, names = result["evaluation"], result["class_names"]
    worst = evaluation.confident_mistakes(6)
    if not len(worst):
        st.success("No mistakes on the validation images.")
        return
    editable = entry is not None and entry["folders"].class_names == tuple(names)
    cols = st.columns(6)
    for col, i in zip(cols, worst, strict=False):
        true, pred = int(evaluation.labels[i]), int(evaluation.predictions[i])
        path = result["paths"][i]
        with col:
            show_image(
                result["x"][i],
                caption=f"{safe_text(names[true], 20)} → "
                f"{safe_text(names[pred], 20)} ({evaluation.probabilities[i, pred]:.0%})",
                alt=f"Validation image labelled {alt_text.plain(names[true], 40)}, read as "
                f"{alt_text.plain(names[pred], 40)} with probability "
                f"{evaluation.probabilities[i, pred]:.0%}",
            )
            if not editable or path not in {str(p) for p, _ in entry["folders"].files}:
                continue
            st.caption(safe_text(entry["folders"].source(path), 40))
            new = st.selectbox(
                "Class",
                range(len(names)),
                true,
                format_func=names.__getitem__,
                key=f"own_relabel_{result['id']}_{i}",
                label_visibility="collapsed",
            )
            if st.button("Move", key=f"own_move_{result['id']}_{i}", disabled=new == true):
                entry["folders"].relabel(path, new)
                session.edited(entry)
                st.rerun()
            if st.button("Exclude", key=f"own_exclude_{result['id']}_{i}"):
                entry["folders"].exclude(path)
                session.edited(entry)
                st.rerun()
    if entry is not None and entry["version"]:
        st.caption(f"{entry['version']} change(s) to your data since it was uploaded: press "
                   "Start (tab ②) to retrain on it.")  # fmt: skip


def try_ui(result: dict | None) -> None:
    """A new photo: the prediction with its probabilities, and Grad-CAM on it."""
    if result is None:
        st.info("Train a model (tab ②) to try it on a new photo.", icon="ℹ️")
        return
    picked = pick_images("own_photo")
    if not picked:
        return
    model, names = result["model"], result["class_names"]
    image = picked[0].image
    predictions = transfer.predict_image(model, image, names)
    left, right = st.columns(2)
    with left:
        show_image(
            image,
            caption=safe_text(picked[0].label),
            width=280,
            alt=alt_text.photo(f"Your photo {alt_text.plain(picked[0].label)}", image),
        )
    with right:
        view.show_prediction(predictions, transfer.confidence_sentence(predictions))
    h, w = model.input_shape[1:3]
    x = np.asarray(image.convert("RGB").resize((w, h)), np.float32)
    best = names.index(predictions[0][0])
    view.show_grad_cam(x.astype(np.uint8), saliency_map(model, x, best, method="gradcam"),
                       predictions[0][0])  # fmt: skip


def export_ui(result: dict | None) -> None:
    if result is None:
        return
    st.subheader("Export")
    st.caption(
        "The .keras model takes raw pixels (its preprocessing is inside); the labels file "
        "lists the classes in output order; the script predicts one photo."
    )
    model, names = result["model"], result["class_names"]
    c = st.columns(3)
    with c[0]:
        training_view.download_model(model, "own_images_model.keras", key="own_download_model",
                                     label="Model (.keras)")  # fmt: skip
    c[1].download_button(
        "Labels (labels.txt)",
        transfer.labels_text(names),
        file_name="labels.txt",
        on_click="ignore",
        key="own_download_labels",
    )
    c[2].download_button(
        "Python snippet (predict.py)",
        transfer.prediction_snippet(model),
        file_name="predict.py",
        on_click="ignore",
        key="own_download_snippet",
    )


def main() -> None:
    st.title("Train on your own images")
    st.markdown(
        "Bring a few folders of photos, one per class. Check them, choose how to augment "
        "them, then train a small convnet from scratch or reuse a pretrained network (transfer "
        "learning), and see where your model is right, wrong and why."
    )
    runs.rerun_when_free(POLL_SECONDS, own_pages=(session.PAGE,))
    result = entry = options = None
    with friendly_errors("The trained model could not be tested: "):
        result = session.adopt()  # before the data may be replaced
    tabs = st.tabs(["① Your images", "② Train", "③ Results", "④ Try it & export"])
    with tabs[0], friendly_errors("These images cannot be used: "):
        try:
            entry = data_ui()
        except ArchiveError as err:  # its message quotes the upload's names: hostile text
            st.error(f"These images cannot be used: {safe_text(err, 1000)}", icon="⚠️")
        if entry is not None:
            view.show_health(entry["health"])
    with tabs[1]:
        if entry is not None and entry["health"].ok:
            with friendly_errors():
                options = options_ui(entry)
        start_ui(entry, options)
    with tabs[2]:
        results_ui(result, entry)
    with tabs[3], friendly_errors():
        try_ui(result)
        export_ui(result)


main()
