"""Classify with ResNet50: each preprocessing step shown, top-5 chart, Grad-CAM, and several
saliency methods side by side (``ui.saliency_view``).

Layout only: ``*_ui()`` sections return what their widgets chose, every number comes from
``cnnlib.inspect.imagenet`` (the shared model from ``ui.pretrained``), ``ui.classify_view`` draws.
Every option persists for the session (``persist_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.budgets import budgets
from cnnlib.core.text import safe_text
from cnnlib.inspect import imagenet
from ui import classify_view as view
from ui import pretrained
from ui import saliency_view as sv
from ui.errors import friendly_errors
from ui.image_input import PickedImage, pick_images
from ui.state import KEEP


@st.cache_data(max_entries=64, max_size=budgets().cache_bytes, show_spinner=False)
def _steps(_img: Image.Image, token: str, crop: bool) -> imagenet.PipelineSteps:
    return imagenet.pipeline_steps(_img, crop=crop)


@st.cache_data(max_entries=64, max_size=budgets().cache_bytes, show_spinner=False)
def _classification(
    _model, _steps: imagenet.PipelineSteps, token: str, crop: bool, weights: str
) -> imagenet.Classification:
    return imagenet.run_classification(_model, _steps)  # the page's steps: preprocessed once


@st.cache_data(max_entries=128, max_size=budgets().cache_bytes, show_spinner=False)
def _cam(_model, _batch: np.ndarray, token: str, crop: bool, class_id: int, weights: str):
    return imagenet.grad_cam(_model, _batch, class_id)


@dataclass(frozen=True)
class Photos:
    """The photos to classify (at most ``budgets().classify_photos``) and whether each is
    centre-cropped to a square before resizing."""

    picked: list[PickedImage]
    crop: bool


def images_ui() -> Photos:
    """The photos (sample, uploads or camera) and whether to centre-crop them."""
    picked = pick_images("classify", multiple=True)
    cap = budgets().classify_photos
    if len(picked) > cap:
        st.warning(
            f"{len(picked)} photos were given: only the first {cap} are classified (the limit "
            "per run on this server). Remove some to classify the others.",
            icon="✂️",
        )
        picked = picked[:cap]
    crop = st.toggle(
        "Centre-crop to a square before resizing (keeps the aspect ratio, cuts the edges)",
        key="classify_crop",
        **KEEP,
    )
    return Photos(picked, bool(crop))


def model_ui():
    """The shared ResNet50 (``cnnlib.models.pretrained.PretrainedModel``) or None."""
    loaded = pretrained.resnet50()
    pretrained.show_weights_note(loaded)
    if loaded.model is None:
        st.info(
            "Without weights there are no predictions, but every preprocessing step below "
            "still runs on your photo."
        )
    return loaded.model


def overview_ui(picked: list[PickedImage], steps: list, results: list) -> int:
    """Several photos: one card each, then which one to explain in detail (its index). File
    names are shown escaped (``safe_text``): they come from the learner's computer."""
    if len(picked) == 1:
        return 0
    names = [f"{i + 1}. {p.label[:60]}" for i, p in enumerate(picked)]  # options: plain text
    st.subheader(f"{len(picked)} photos")
    cols = st.columns(min(3, len(picked)))
    for i, (step, result) in enumerate(zip(steps, results, strict=True)):
        name = f"{i + 1}. {safe_text(picked[i].label)}"  # a caption: markdown
        with cols[i % len(cols)]:
            view.show_card(i, name, step, result)
    chosen = st.selectbox(
        "Show every step and Grad-CAM for",
        range(len(picked)),
        format_func=lambda i: names[i],
        key="classify_detail",
        **KEEP,
    )
    return min(int(chosen), len(picked) - 1)  # a persisted choice may outnumber new photos


@dataclass(frozen=True)
class CamChoice:
    """Which of the top classes Grad-CAM explains, and the heatmap's opacity in [0, 1]."""

    target: imagenet.Prediction
    opacity: float


def grad_cam_ui(preds: list[imagenet.Prediction]) -> CamChoice:
    """Which of the top classes to explain, and the heatmap's opacity."""
    st.subheader("5 · Where did it look? Grad-CAM")
    st.markdown(
        "Grad-CAM takes the last convolutional block's feature maps, weights each map by how "
        "much it raises the chosen class's score (the average gradient), and adds them up: "
        "bright cells are the regions that speak for that class."
    )
    pick = st.radio(
        "Explain the class",
        range(len(preds)),
        format_func=lambda i: f"{preds[i].label} ({preds[i].probability:.1%})",
        horizontal=True,
        key="classify_cam_class",
        **KEEP,
    )
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="classify_opacity", **KEEP)
    return CamChoice(preds[min(pick, len(preds) - 1)], float(opacity))


def saliency_ui(
    model, step, digest: str, preds: list[imagenet.Prediction], target: int, opacity: float
):
    """Section 6, in an expander that computes only while open (SmoothGrad and occlusion take
    seconds on a CPU)."""
    box = st.expander(
        "6 · Saliency, side by side: several methods on the same photo",
        key="classify_saliency_open",
        on_change="rerun",
    )
    if not box.open:
        return
    with box, friendly_errors():
        st.markdown(
            "Each method answers “which pixels made the model choose this class?” its own way: "
            "Grad-CAM and Grad-CAM++ from the last block's maps (coarse, 7×7), gradients from "
            "the pixels themselves (sharp but noisy), SmoothGrad averages the gradients of 16 "
            "noisy copies, integrated gradients follows a path from a black image, occlusion "
            "hides one square at a time and watches the score drop."
        )
        sv.saliency_section(
            model,
            step.batch,
            step.resized,
            [(p.class_id, f"{p.label} ({p.probability:.1%})") for p in preds],
            key="classify",
            model_key=model.weights_source,
            digest=digest,
            default=target,
            opacity=opacity,
        )


def main() -> None:
    st.title("Classify with ResNet50")
    st.markdown(
        "ResNet50 is a 50-layer convolutional network trained on ImageNet's 1000 classes. "
        "Give it a photo: below you see exactly what Keras does to the photo before the "
        "network sees it, the network's five best guesses, and — with **Grad-CAM** — which "
        "part of the photo made it choose a class."
    )
    photos = images_ui()
    picked, crop = photos.picked, photos.crop
    model = model_ui()
    if not picked:
        return
    weights = model.weights_source if model is not None else ""
    steps = [_steps(p.image, p.token, crop) for p in picked]
    results: list[imagenet.Classification | None] = [None] * len(picked)
    if model is not None:
        with st.spinner("Classifying…"), friendly_errors():
            for i, (p, step) in enumerate(zip(picked, steps, strict=True)):
                results[i] = _classification(model, step, p.token, crop, weights)

    chosen = overview_ui(picked, steps, results)
    step, result = steps[chosen], results[chosen]
    token = picked[chosen].token
    view.show_input_step(picked[chosen].image, step, picked[chosen].size)
    view.show_array_step(step)
    view.show_preprocess_step(step, imagenet.preprocessed_preview(step.batch))

    st.subheader("4 · ResNet50's top-5 guesses")
    if model is None or result is None:
        st.info("No predictions for this photo (see the message above).")
        return
    view.show_top5(result, verified=model.imagenet_verified)
    cam_choice = grad_cam_ui(result.predictions)
    target, opacity = cam_choice.target, cam_choice.opacity
    with st.spinner("Computing Grad-CAM…"), friendly_errors():
        cam = _cam(model, step.batch, token, crop, target.class_id, weights)
        view.show_grad_cam(
            imagenet.overlay(step.resized, cam, opacity),
            cam,
            layer=imagenet.last_conv_layer(model).name,
            label=target.label,
            opacity=opacity,
        )
    saliency_ui(model, step, f"{token}-{crop}", result.predictions, target.class_id, opacity)


main()
