"""Drawing the "Train on your own images" page: health check, augmentation preview, the
extraction and training progress, validation results, prediction and the comparison table.

Every class-folder and file name comes from an upload: hostile text. Markdown gets
``cnnlib.core.text.safe_text`` (a code span: shown verbatim); the health report's issues,
warnings and skip reasons come with their names already so; plotly labels and tables get
``plain_label`` (cut, HTML-escaped).
Figures are ``ui.figures.bar_chart`` and ``ui.training_view``'s confusion matrix; nothing
here computes a metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.text import safe_text
from cnnlib.inspect.imagenet import overlay
from ui import alt_text, figures, training_view
from ui.figures import bar_chart, plain_label
from ui.image_input import show_image

#: Thumbnails drawn per row in the galleries.
COLUMNS = 8


def gallery(
    images: Sequence, captions: Sequence[str], alts: Sequence[str], *, columns: int = COLUMNS
) -> None:
    """A grid of RGB images (PIL or (H, W, 3) uint8) with (already safe) captions and alt
    texts (plain text: ``alt_text.plain`` for upload names)."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        end = start + columns
        for col, image, caption, alt in zip(
            cols, images[start:end], captions[start:end], alts[start:end], strict=False
        ):
            with col:
                show_image(image, caption=caption, alt=alt)


def show_health(report) -> None:
    """A ``cnnlib.uploads.folders.HealthReport``: counts, blocking issues, warnings, skipped files,
    duplicates, tiny images and a sample grid per class."""
    names = [plain_label(c) for c in report.class_names]
    counts = [report.counts[c] for c in report.class_names]
    st.markdown(
        f"**{sum(counts):,} images in {len(counts)} classes** (the class is the folder's name)."
    )
    plain = [alt_text.plain(c, 40) for c in report.class_names]
    st.plotly_chart(
        bar_chart(
            names,
            counts,
            value_format=",.0f",
            value_title="images",
            label_title="class",
            height=260,
        ),
        key="own_counts",
        alt="Bar chart of the number of images in each class: "
        + ", ".join(f"{c} {n:,}" for c, n in zip(plain, counts, strict=True))
        + ".",
    )
    figures.table_view(
        {"class": list(report.class_names), "images": counts}, alt="Images per class"
    )
    for issue in report.issues:  # markdown whose upload names are code spans (folders)
        st.error(issue, icon=":material/block:")
    for warning in report.warnings:
        st.warning(warning, icon="⚠️")
    if report.ok:
        st.success("Ready to train: every class has enough images.", icon=":material/check_circle:")
    if report.skipped:
        with st.expander(f"Skipped files ({len(report.skipped)})"):
            for s in report.skipped[:50]:
                st.markdown(f"- {safe_text(s.path)}: {s.reason}")
    if report.duplicates:
        with st.expander(f"Identical images in two classes ({len(report.duplicates)})"):
            for a, b in report.duplicates[:50]:
                st.markdown(f"- {safe_text(a)} = {safe_text(b)}")
    if report.tiny:
        with st.expander(f"Tiny images ({len(report.tiny)})"):
            for path, (w, h) in report.tiny[:50]:
                st.markdown(f"- {safe_text(path)}: {w} × {h} pixels")
    st.markdown("**A few images of each class**")
    for name in report.class_names:
        samples = report.samples.get(name, [])
        st.caption(f"{safe_text(name)} ({report.counts[name]} images)")
        alts = [
            alt_text.photo(f"Image {i + 1} of class {alt_text.plain(name, 40)}", image)
            for i, image in enumerate(samples)
        ]
        gallery(samples, [""] * len(samples), alts)


def show_augmentation_preview(originals: np.ndarray, preview: np.ndarray) -> None:
    """Each original (N, H, W, 3) uint8 beside its augmented copies (N, copies, H, W, 3)."""
    st.caption(
        "What the augmentation layers do (run with training=True, as during training); each row "
        "is one training image and random augmented copies of it. They never touch the "
        "validation images or predictions."
    )
    copies = preview.shape[1]
    for row, (original, augmented) in enumerate(zip(originals, preview, strict=True)):
        images = [original, *augmented]
        alts = [alt_text.photo(f"Training image {row + 1}, original", original)] + [
            alt_text.photo(f"Training image {row + 1}, augmented copy {i + 1}", a)
            for i, a in enumerate(augmented)
        ]
        gallery(images, ["original"] + [f"copy {i + 1}" for i in range(copies)], alts)


def show_extraction(p) -> None:
    """The one-off feature extraction (an ``OwnProgress`` in stage "features")."""
    total = max(p.features_total, 1)
    doing = "Paused" if p.paused else "Computing the backbone's features once"
    st.progress(
        min(1.0, p.features_done / total),
        text=f"**{doing}** · {p.features_done:,}/"
        f"{p.features_total:,} images (each training image, its augmented copies, and the "
        "validation images); then the new head trains on them",
    )


STAGES = {
    "loading": "Loading the backbone and its weights…",
    "features": "Step 1 of 2: the frozen backbone turns each image into features, once.",
    "head": "Step 2 of 2: the new head trains on the cached features (each epoch takes "
    "a fraction of a second).",
    "fine-tune": "Fine-tuning: the backbone's top block is unfrozen and trained on the "
    "images with a low learning rate.",
    "scratch": "Training the convnet from scratch on the images.",
}


#: What the health and Grad-CAM show in each training stage (markdown), by stage.
HEALTH_SCOPES = {
    "scratch": "Every layer of the convnet learns: the health of each layer with a kernel or "
    "a ReLU, and the Grad-CAM at its last convolution.",
    "head": "**The backbone is frozen**: only the new head learns, on the backbone's cached "
    "features. So the health is the head's (its one Dense layer, measured on the cached "
    "features of the fixed validation images; its outputs are class probabilities, with no "
    "ReLU to die), and the Grad-CAM is taken at the backbone's last convolution, whose maps "
    "never change: what changes from epoch to epoch is only how the head weighs them.",
    "fine-tune": "**Fine-tuning**: the health of the layers that learn now, the backbone's "
    "top block and the head, on the fixed validation images; the layers below stay frozen. "
    "The Grad-CAM is taken at the backbone's last convolution, which now learns too.",
}


def learning_rate_note(stage: str, recipe) -> str:
    """Which stage a new learning rate applies to, for the learner ("" for a single-stage
    training)."""
    if stage == "head" and recipe.fine_tune_epochs:
        return (
            "Applies to the new head's epochs; fine-tuning then starts at its own low rate "
            f"({recipe.stage_learning_rate('fine-tune'):g})."
        )
    if stage == "loading":
        return (
            "The backbone is still loading; its features come next. A new rate applies from "
            "the new head's first batch."
        )
    if stage == "features":
        return (
            "The backbone's features are still being computed: Step extracts one more batch "
            "of images, and a new rate applies from the new head's first batch."
        )
    return ""


def held_caption(p) -> str:
    """Where a paused own-images training holds: in the extraction, the images done."""
    if p.stage != "features":
        return ""
    return f"Paused after {p.features_done:,} of {p.features_total:,} images."


def show_progress(p, slot_limit: int) -> None:
    """Queue, extraction or epochs of an ``OwnProgress``, with the device."""
    if p.state not in ("queued", "failed") and p.stage in STAGES:
        st.caption(STAGES[p.stage])
    if p.stage == "features" and not p.done:
        show_extraction(p)
    elif p.stage != "loading" or p.done:
        training_view.show_status(p, slot_limit)
    if p.weights_source:
        (st.caption if p.weights_verified else st.warning)(
            f"Backbone weights: {p.weights_source}"  # the server's own text
            + (
                ""
                if p.weights_verified
                else ". **Unverified**: not checked against Keras' "
                "official ImageNet file, so the features may mean nothing."
            )
        )
    if p.extract_seconds:
        by = f" by {p.feature_runtime}" if p.feature_runtime else ""
        st.caption(f"Features computed once in {p.extract_seconds:.1f} s{by}.")


def show_per_class(evaluation, class_names: Sequence[str]) -> None:
    st.markdown("**Validation accuracy per class**")
    values = np.nan_to_num(evaluation.per_class, nan=0.0)
    what = "validation accuracy"
    st.plotly_chart(
        bar_chart(
            [plain_label(c) for c in class_names],
            values,
            value_range=(0, 1.1),
            value_title=what,
            label_title="class",
            height=280,
        ),
        key="own_per_class",
        alt=training_view.per_class_alt(evaluation.per_class, class_names, what),
    )
    rows = training_view.per_class_rows(evaluation.per_class, class_names, what)
    figures.table_view(rows, alt="Validation accuracy per class")


def show_cell(evaluation, cell, images: np.ndarray, class_names: Sequence[str]) -> None:
    """The validation images of one confusion-matrix cell (true, predicted): the first 24."""
    true_class, predicted = cell
    indices = evaluation.cell(true_class, predicted)
    st.markdown(
        f"**True {safe_text(class_names[true_class])}, predicted "
        f"{safe_text(class_names[predicted])}: {len(indices)} image(s)**"
    )
    shown = indices[:24]
    true_name, answer = (
        alt_text.plain(class_names[true_class], 40),
        alt_text.plain(class_names[predicted], 40),
    )
    gallery(
        [images[i] for i in shown],
        [f"{evaluation.probabilities[i, predicted]:.0%}" for i in shown],
        [
            f"Validation image labelled {true_name}, read as {answer} with probability "
            f"{evaluation.probabilities[i, predicted]:.0%}"
            for i in shown
        ],
    )


def show_prediction(predictions: Sequence[tuple[str, float]], sentence: str) -> None:
    """The tutorial's sentence and every class's probability (best highlighted)."""
    st.markdown(f"This image most likely belongs to **{safe_text(sentence, 120)}**.")
    bars = ", ".join(f"{alt_text.plain(n, 40)} {p:.1%}" for n, p in predictions)
    st.plotly_chart(
        bar_chart(
            [plain_label(n) for n, _ in predictions],
            [p for _, p in predictions],
            horizontal=True,
            highlight=0,
            value_range=(0, 1.15),
            value_title="probability",
            height=60 + 28 * len(predictions),
        ),
        key="own_prediction",
        alt=f"Bar chart of the probability of each class, highest first: {bars}.",
    )
    rows = {
        "class": [n for n, _ in predictions],
        "probability": [f"{p:.1%}" for _, p in predictions],
    }
    figures.table_view(rows, alt="Probability of each class")


#: Classes the live webcam prediction lists.
LIVE_TOP = 3


def show_live_prediction(
    predictions: Sequence[tuple[str, float]], threshold: float, frame: int
) -> None:
    """The live webcam's answer to frame number ``frame``: the best class, or "Not sure"
    when its probability is below ``threshold``, and the top ``LIVE_TOP`` classes' bars."""
    best, probability = predictions[0]
    if probability < threshold:
        st.markdown(
            f"**Not sure** (frame {frame}): the best guess, {safe_text(best, 60)}, has "
            f"{probability:.1%} confidence, below your threshold of {threshold:.0%}."
        )
    else:
        st.markdown(f"**{safe_text(best, 60)}** with {probability:.1%} confidence (frame {frame}).")
    for name, p in predictions[:LIVE_TOP]:
        st.progress(min(max(float(p), 0.0), 1.0), text=f"{safe_text(name, 40)}: {p:.1%}")


def show_grad_cam(x: np.ndarray, cam: np.ndarray, label: str) -> None:
    """Grad-CAM of the model's input (H, W, 3) uint8 for class ``label``: map (H, W) in [0, 1]."""
    h, w = cam.shape
    st.markdown(
        f"**Grad-CAM**: where your model found evidence for “{safe_text(label)}” "
        f"({w} × {h} input, pale yellow = strong, dark = none)."
    )
    r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
    where = f"strongest at row {r}, column {c}" if cam.max() > 0 else "zero everywhere"
    show_image(
        overlay(Image.fromarray(x), cam, 0.5),
        width=280,
        alt=f"Grad-CAM heatmap for “{alt_text.plain(label, 40)}” over the {w}×{h} model input: "
        f"bright yellow where your model found evidence, dark where none; {where}.",
    )


def show_comparison(rows: Sequence) -> None:
    """One row per recipe trained on the same data (``ComparisonRow``: scratch vs transfer)."""
    st.markdown("**Scratch vs transfer learning, on the same images and split**")
    table = [
        {
            "Model": plain_label(r.model),
            "Validation accuracy": f"{r.validation_accuracy:.1%}",
            "Epochs run": r.epochs_run,
            "Training time (s)": f"{r.training_seconds:.1f}",
            "Feature extraction (s)": (
                "—" if r.extraction_seconds is None else f"{r.extraction_seconds:.1f}"
            ),
            "Parameters": f"{r.parameters:,}",
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True)


def show_weights_status(status) -> None:
    """A backbone's ``cnnlib.training.transfer.WeightsStatus``: where its weights are, or why
    transfer learning is off and how to provide them."""
    if not status.available:
        st.warning(
            f"**Transfer learning is off: no pretrained weights.** {status.message} "
            "Training from scratch works without them.",
            icon="⚠️",
        )
    else:
        st.caption(f"{status.backbone} weights: {status.source}.")


def show_registered(name: str | None) -> None:
    training_view.show_registered(safe_text(name, 120) if name else None)
