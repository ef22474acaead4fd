"""Train on your own images: class folders → health check → augmentation preview → background
training (scratch, or transfer on cached features) → results, relabelling, Grad-CAM, export.

Layout only: ``*_ui()`` sections return typed values (``options_ui``: the one
``OwnImagesRecipe`` that travels to the training's process); ``ui.own_images_session`` keeps
the data and runs (through ``ui.runs``), ``cnnlib`` computes, ``ui.own_images_view`` draws.
Tabs ③ and ④ are sections of their own (``app_pages/sections/own_images_results.py``,
``own_images_try.py``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from app_pages.sections import (
    own_images_camera,
    own_images_explore,
    own_images_export,
    own_images_lr,
    own_images_project,
    own_images_results,
    own_images_shortcut,
    own_images_test,
    own_images_try,
    training_controls,
)
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ArchiveError
from cnnlib.training import backends, transfer
from cnnlib.training.trainer import default_slots
from cnnlib.training.transfer import OwnImagesRecipe
from cnnlib.uploads import folders
from ui import health_view, runs, training_view
from ui import own_images_session as session
from ui import own_images_view as view
from ui.errors import friendly_errors
from ui.state import KEEP

EXAMPLE, ZIP, FOLDER = "Built-in example", "Upload a .zip", "Upload a folder"
PROJECT, CAMERA = "Open a saved project", "Webcam"
EXAMPLE_PER_CLASS = 40
IMAGE_SIZES = [32, 48, 64, 96, 128, 160, 224]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
DEFAULT_AUGMENT = ["flip", "rotation", "zoom"]
RECIPES = {"scratch": "From scratch", "transfer": "Transfer learning (frozen backbone)"}
CACHE_BYTES = budgets().cache_bytes  #: bound of this page's st.cache_data entries


@st.cache_data(max_size=CACHE_BYTES, max_entries=1, show_spinner="Making the example set…")
def example_zip() -> bytes:
    return folders.example_archive(EXAMPLE_PER_CLASS)


def _uploaded(source: str):
    """(key, read) of the learner's upload, or None while there is none."""
    if source == ZIP:
        file = st.file_uploader("A .zip with one folder per class", type=["zip"], key="own_zip")
        return None if file is None else (f"zip:{file.file_id}", file.getvalue)
    files = st.file_uploader(
        "A folder with one sub-folder per class",
        key="own_folder",
        accept_multiple_files="directory",
    )
    if not files:
        return None
    key = hashlib.sha1("|".join(f.file_id for f in files).encode()).hexdigest()
    return f"folder:{key}", lambda: [(f.name, f.getvalue()) for f in files]


def data_ui() -> session.OwnData | None:
    """Where the images come from; returns the session's data (or None)."""
    source = st.radio(
        "Images",
        (EXAMPLE, ZIP, FOLDER, CAMERA, PROJECT),
        horizontal=True,
        key="own_source",
        **KEEP,
    )
    if source == CAMERA:
        return own_images_camera.camera_ui(side=max(IMAGE_SIZES))
    if source == PROJECT:
        entry, resumed = own_images_project.open_project_ui()
        if resumed is not None:
            restore_options(resumed.recipe)
            st.rerun()  # the resumed model becomes the page's latest run
        return entry
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
        if current is not None and current.key != "example":
            st.caption("Using your earlier upload.")
            return current
        st.info("Upload your images to continue.", icon="📁")
        return None
    return session.use_data(*upload)


def options_ui(entry: session.OwnData) -> OwnImagesRecipe:
    """Image size, split, augmentation (with its preview), model and training settings: the
    ``OwnImagesRecipe`` (raises ``InvalidArgumentError``)."""
    c = st.columns([1, 1, 1, 2])
    image_size = c[0].select_slider(
        "Image size (pixels)", IMAGE_SIZES, value=64, key="own_size", **KEEP
    )
    validation = c[1].slider(
        "Validation split",
        0.1,
        0.5,
        0.2,
        0.05,
        key="own_val",
        help="Stratified: every class keeps this share aside.",
        **KEEP,
    )
    test = c[2].slider(
        "Test share",
        0.0,
        0.3,
        0.0,
        0.05,
        key="own_test",
        help="Set aside before training, never seen nor used to pick the model: the "
        "held-out test in tab ③. 0 = none (you can upload a test zip instead).",
        **KEEP,
    )
    chosen = c[3].pills(
        "Augmentation",
        transfer.AUGMENTATIONS,
        selection_mode="multi",
        default=DEFAULT_AUGMENT,
        key="own_augment",
        **KEEP,
    )
    augment = tuple(chosen or ())
    augmentation_preview(entry, image_size, augment)
    c = st.columns(3)
    pretrained = transfer.weights_status().available  # transfer learning first when it can
    recipe = c[0].radio(
        "Model", tuple(RECIPES), int(pretrained), format_func=RECIPES.get, key="own_recipe", **KEEP
    )
    needs_backbone = transfer.uses_backbone(recipe)
    backbone = c[1].selectbox(
        "Backbone",
        tuple(transfer.BACKBONES),
        key="own_backbone",
        disabled=not needs_backbone,
        **KEEP,
    )
    copies = c[2].slider(
        "Augmented copies per image (features)",
        0,
        5,
        1,
        key="own_copies",
        disabled=not needs_backbone or not augment,
        **KEEP,
    )
    c = st.columns(4)
    epochs = c[0].number_input("Epochs", 1, 100, 5, key="own_epochs", **KEEP)
    learning_rate = c[1].select_slider(
        "Learning rate", LEARNING_RATES, 1e-3, format_func="{:g}".format, key="own_lr", **KEEP
    )
    patience = c[2].number_input(
        "Early-stopping patience",
        0,
        20,
        3,
        key="own_patience",
        help="0 = off; else keep the best epoch's weights.",
        **KEEP,
    )
    fine_tune = c[3].number_input(
        "Fine-tune epochs",
        0,
        20,
        0,
        key="own_fine_tune",
        disabled=not needs_backbone,
        help="Then unfreeze the backbone's top block at a learning rate of 1e-5.",
        **KEEP,
    )
    return OwnImagesRecipe(
        recipe=recipe,
        backbone=backbone,
        image_size=int(image_size),
        validation_fraction=float(validation),
        test_fraction=float(test),
        augment=augment,
        augment_copies=int(copies),
        epochs=int(epochs),
        learning_rate=float(learning_rate),
        patience=int(patience),
        fine_tune_epochs=int(fine_tune),
    )


def restore_options(recipe: OwnImagesRecipe) -> None:
    """Set the options' widgets (drawn later in this run) to a resumed project's recipe;
    a value a widget cannot show is left as it is."""
    values = {
        "own_size": (recipe.image_size, recipe.image_size in IMAGE_SIZES),
        "own_val": (recipe.validation_fraction, 0.1 <= recipe.validation_fraction <= 0.5),
        "own_test": (recipe.test_fraction, recipe.test_fraction <= 0.3),
        "own_augment": (list(recipe.augment), True),
        "own_recipe": (recipe.recipe, recipe.recipe in RECIPES),
        "own_backbone": (recipe.backbone, recipe.backbone in transfer.BACKBONES),
        "own_copies": (recipe.augment_copies, recipe.augment_copies <= 5),
        "own_epochs": (recipe.epochs, 1 <= recipe.epochs <= 100),
        "own_lr": (recipe.learning_rate, recipe.learning_rate in LEARNING_RATES),
        "own_patience": (recipe.patience, recipe.patience <= 20),
        "own_fine_tune": (recipe.fine_tune_epochs, recipe.fine_tune_epochs <= 20),
    }
    for key, (value, fits) in values.items():
        if fits:
            st.session_state[key] = value


@st.cache_data(max_size=CACHE_BYTES, max_entries=8, show_spinner="Augmenting a few samples…")
def _preview(samples: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    return transfer.preview_augmentation(samples, kinds, copies=4, seed=1)


def augmentation_preview(entry: session.OwnData, size: int, kinds: tuple[str, ...]) -> None:
    if not kinds:
        st.caption("No augmentation: the model sees each training image as it is.")
        return
    samples = [s[0] for s in entry.health.samples.values() if s][:3]
    x = np.stack([np.asarray(s.convert("RGB").resize((size, size))) for s in samples])
    with st.expander("Augmentation preview", expanded=True):
        view.show_augmentation_preview(x, _preview(x, kinds))


def start_ui(entry: session.OwnData | None, recipe: OwnImagesRecipe | None) -> None:
    """The backbone's weights, Start (or why not), Stop, and the live progress polled every
    second."""
    status = transfer.weights_status(recipe.backbone) if recipe and recipe.transfer else None
    if status is not None:
        view.show_weights_status(status)
    reason = runs.busy_message()
    if entry is None or recipe is None:
        reason = reason or "Choose your images first (tab ①)."
    elif not entry.health.ok:
        reason = reason or "Fix the problems the health check lists (tab ①) first."
    elif status is not None and not status.available:
        reason = reason or "No pretrained weights for transfer learning: choose From scratch."
    if st.button(
        "Start training",
        key="own_start",
        disabled=bool(reason),
        icon=":material/play_arrow:",
    ):
        with friendly_errors("Training could not start: "):
            session.start(entry, recipe)
            st.rerun()
    if reason:
        st.warning(reason, icon="⏳" if runs.running_task() else "⚠️")
    else:
        backends.get_ready()  # a training process warms up while the learner chooses
    active = session.running()
    runs.poll_progress(active, live_progress, active)


def live_progress(polling: bool) -> None:
    """The fragment body: progress, Stop, Pause / Step / a new learning rate, the live
    curves, and each layer's health with the Grad-CAM of four validation images per epoch
    (reruns itself every second)."""
    run = runs.current(session.RUN)
    if run is None:
        st.caption("No training yet in this session: choose the options and press Start.")
        return
    p, recipe = run.job.snapshot(), run.info.recipe
    view.show_progress(p, default_slots().limit)
    if not p.done:
        st.button("Stop training", key="own_stop", on_click=run.job.stop, icon=":material/stop:")
        training_controls.controls_ui(
            session.RUN,
            p,
            prefix="own",
            learning_rate=recipe.stage_learning_rate(p.stage),
            refusal=recipe.train_config().lr_change_refusal(),
            note=view.learning_rate_note(p.stage, recipe),
            held=view.held_caption(p),
        )
    if p.stage != "features":
        has_model = run.job.model is not None
        training_view.show_live(p, recipe=recipe.label, has_model=has_model)
    if p.stage in view.HEALTH_SCOPES:
        with st.expander("Layer health and Grad-CAM, each epoch", expanded=bool(p.health)):
            health_view.show_health(p.health, scope=view.HEALTH_SCOPES[p.stage])
            names = p.class_names or tuple(run.info.split.class_names)
            health_view.show_cams(p.cams, names, uploaded=True)
    if polling and p.done:
        st.rerun()  # one full rerun: the results appear and polling stops


def main() -> None:
    st.title("Train on your own images")
    st.markdown(
        "Bring a few folders of photos, one per class. Check them, choose how to augment "
        "them, then train a small convnet from scratch or reuse a pretrained network (transfer "
        "learning), and see where your model is right, wrong and why."
    )
    runs.rerun_when_free(
        own_pages=(session.PAGE, session.EXPORT_PAGE, session.LR_PAGE, session.SHORTCUT_PAGE),
    )
    tested = entry = recipe = None
    with friendly_errors("The trained model could not be tested: "):
        tested = session.adopt()  # before the data may be replaced
    tabs = st.tabs(
        [
            "① Your images",
            "② Train",
            "③ Results",
            "④ Try it & export",
            "⑤ Threshold & data map",
            "⑥ Shortcut lab",
        ]
    )
    with tabs[0], friendly_errors("These images cannot be used: "):
        try:
            entry = data_ui()
        except ArchiveError as err:  # its message shows the upload's names as code spans
            st.error(f"These images cannot be used: {err}", icon="⚠️")
        if entry is not None:
            view.show_health(entry.health)
    with tabs[1]:
        if entry is not None and entry.health.ok:
            with friendly_errors():
                recipe = options_ui(entry)
            if recipe is not None:
                with st.expander("Find a learning rate"), friendly_errors():
                    own_images_lr.lr_finder_ui(entry, recipe, LEARNING_RATES, "own_lr")
        start_ui(entry, recipe)
    with tabs[2]:
        own_images_results.results_ui(tested, entry)
        own_images_test.held_out_ui(tested)
    with tabs[3], friendly_errors():
        own_images_try.try_ui(tested)
        own_images_export.export_ui(tested)
        own_images_project.save_ui(entry, recipe, tested)
    with tabs[4], friendly_errors():
        own_images_explore.threshold_ui(tested)
        own_images_explore.data_map_ui(tested)
    with tabs[5]:
        own_images_shortcut.shortcut_ui(entry, recipe)


main()
