"""Saliency, side by side: the widgets, the cached maps and the row of overlays, shared by the
Classify and Feature-maps pages (one view for every model: ResNet50, MNIST convnets, uploads).

The maps come from ``cnnlib.inspect.saliency``; the overlays reuse
``cnnlib.inspect.imagenet.overlay`` (Inferno colours: black = 0 to pale yellow = 1).
Each map is cached per session and per (model, image, class, method, options), so reruns that
change nothing it depends on do no TensorFlow work, and adding a method computes only that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.budgets import budgets
from cnnlib.inspect import imagenet, saliency
from ui import alt_text, sanity_view
from ui.image_input import show_image
from ui.state import KEEP

#: Shown first: the cheap gradient methods and SmoothGrad (16 gradients).
DEFAULT_METHODS = ("gradcam", "gradcam++", "gradients", "smoothgrad")
#: Side of the overlays, in pixels (small inputs are enlarged pixel by pixel first).
OVERLAY_PX = 224
#: Maps kept per session (a 224 × 224 map is 200 kB).
CACHE_ENTRIES = 48


@dataclass(frozen=True)
class SaliencyChoice:
    """What the learner asked for: one class, the methods in order, each method's options."""

    class_index: int
    methods: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def _occlusion_ui(key: str, side: int) -> dict[str, int]:
    """Patch and stride sliders, in input pixels; stride at most the patch."""
    c1, c2 = st.columns(2)
    patch = c1.slider(
        "Occlusion patch (pixels)",
        max(1, side // 32),
        max(2, side // 2),
        max(1, side // 7),
        key=f"{key}_occlusion_patch",
        help="The side of the grey square slid over the image.",
        **KEEP,
    )
    stride = c2.slider(
        "Occlusion stride (pixels)",
        max(1, side // 28),
        max(2, side // 4),
        max(1, side // 14),
        key=f"{key}_occlusion_stride",
        help="How far the square moves each time; smaller = finer map, more forward passes.",
        **KEEP,
    )
    stride = min(stride, patch)
    starts = range(0, side - patch + 1, stride)
    n = len(starts) + (starts[-1] != side - patch)  # the last square reaches the edge
    st.caption(
        f"Occlusion runs about {n * n:,} forward passes ({patch}×{patch} patch every "
        f"{stride} px), one per position of the square."
    )
    return {"patch": patch, "stride": stride}


def choose(
    key: str, classes: Sequence[tuple[int, str]], *, side: int, default: int = 0
) -> SaliencyChoice:
    """The widgets: the class to explain (``classes``: (class index, label) pairs), the
    methods, and occlusion's patch and stride for an input ``side`` pixels wide."""
    labels = dict(classes)
    ids = list(labels)
    widget = st.radio if len(ids) <= 10 else st.selectbox
    extra = {"horizontal": True} if widget is st.radio else {}
    class_index = widget(
        "Explain the class",
        ids,
        index=ids.index(default) if default in ids else 0,
        format_func=lambda i: labels[i],
        key=f"{key}_saliency_class",
        **extra,
        **KEEP,
    )
    # Pills, not a multiselect: its chips are white text on the primary colour, too faint
    # on the dark theme's (README, Accessibility).
    methods = st.pills(
        "Methods",
        saliency.METHODS,
        selection_mode="multi",
        default=DEFAULT_METHODS,
        format_func=lambda m: saliency.METHOD_LABELS[m],
        key=f"{key}_saliency_methods",
        **KEEP,
    )
    options = {"occlusion": _occlusion_ui(key, side)} if "occlusion" in methods else {}
    cls = class_index if class_index in labels else ids[0]  # a persisted id may be stale
    return SaliencyChoice(int(cls), tuple(methods), options)


@st.cache_data(
    max_size=budgets().cache_bytes, max_entries=CACHE_ENTRIES, show_spinner=False, scope="session"
)
def _one(
    _model: Any,
    model_key: str,
    digest: str,
    _x: np.ndarray,
    class_index: int,
    method: str,
    options: tuple[tuple[str, Any], ...],
) -> saliency.SaliencyResult:
    """One method's map, cached by (model key, input digest, class, method, options)."""
    opts = {method: dict(options)} if options else None
    return saliency.saliency_maps(_model, _x, class_index, methods=[method], options=opts)[0]


def compute(
    model: Any, x: np.ndarray, choice: SaliencyChoice, *, model_key: str, digest: str
) -> list[saliency.SaliencyResult]:
    """The chosen maps in order (each computed once per session). ``model``: a Keras model or
    a ``PretrainedModel`` (used under its lock); ``x``: one (H, W, C) or (1, H, W, C) input
    prepared as the model expects; ``model_key`` and ``digest`` identify the model and ``x``.
    Raises ``CNNLabError`` (e.g. a model without class scores)."""
    results = []
    for method in choice.methods:
        options = tuple(sorted(choice.options.get(method, {}).items()))
        label = saliency.METHOD_LABELS[method]
        with st.spinner(f"Computing {label}…"):
            results.append(_one(model, model_key, digest, x, choice.class_index, method, options))
    return results


def overlay_base(image: Image.Image) -> Image.Image:
    """The model input, enlarged pixel by pixel to about ``OVERLAY_PX`` (MNIST's 28 × 28)."""
    img = image.convert("RGB")
    factor = max(1, OVERLAY_PX // max(img.size))
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def _peak(values: np.ndarray) -> str:
    """Where a (h, w) map in [0, 1] is strongest, in words."""
    v = np.asarray(values)
    if not v.size or v.max() <= 0:
        return "zero everywhere"
    r, c = np.unravel_index(int(np.argmax(v)), v.shape)
    return f"strongest at row {r}, column {c} of {v.shape[0]}×{v.shape[1]}"


def show_row(
    base: Image.Image, results: Sequence[saliency.SaliencyResult], *, label: str, opacity: float
) -> None:
    """One overlay per method on ``base`` (the model input), captioned with the method and
    the seconds it took; four to a row."""
    if not results:
        st.info("Choose at least one method above.")
        return
    img = overlay_base(base)
    for start in range(0, len(results), 4):
        cols = st.columns(4)
        for col, r in zip(cols, results[start : start + 4], strict=False):
            with col:
                show_image(
                    imagenet.overlay(img, r.map, opacity),
                    caption=f"{r.label} · {r.seconds:.2f} s",
                    alt=f"{r.label} map for “{alt_text.plain(label, 60)}” over the "
                    f"{alt_text.size_text(img)} model input: pale yellow where the evidence is "
                    f"strongest, dark where there is none; {_peak(r.map)}.",
                )
    st.caption(
        f"Where each method finds evidence for “{label}”: pale yellow = strongest, black = none "
        "(each map scaled to its own maximum). Times are for this image; a method's first use "
        "on a model also builds its TensorFlow function."
    )


def saliency_section(
    model: Any,
    x: np.ndarray,
    base: Image.Image,
    classes: Sequence[tuple[int, str]],
    *,
    key: str,
    model_key: str,
    digest: str,
    default: int = 0,
    opacity: float = 0.5,
) -> None:
    """The whole side-by-side view: ``choose``, ``compute``, ``show_row``; which method when;
    the sanity check (``ui.sanity_view``)."""
    choice = choose(key, classes, side=int(min(np.shape(x)[-3:-1])), default=default)
    results = compute(model, x, choice, model_key=model_key, digest=digest)
    label = dict(classes)[choice.class_index]
    show_row(base, results, label=label, opacity=opacity)
    if st.toggle("Which method when?", key=f"{key}_saliency_notes", **KEEP):
        show_notes(choice.methods or saliency.METHODS)
    sanity_view.sanity_section(
        model,
        x,
        overlay_base(base),
        chosen=choice.methods,
        options=choice.options,
        class_index=choice.class_index,
        class_label=label,
        key=key,
        model_key=model_key,
        digest=digest,
        opacity=opacity,
    )


def show_notes(methods: Sequence[str]) -> None:
    """When to use each of ``methods``, what it costs, and where it comes from
    (``saliency.METHOD_NOTES``, drawn from the literature)."""
    for m in methods:
        note = saliency.METHOD_NOTES[m]
        st.markdown(
            f"**{saliency.METHOD_LABELS[m]}.** {note.use_when} *Cost:* {note.cost} "
            f"*Source:* {note.source}."
        )


def model_classes(view: Any, acts: Any) -> tuple[list[tuple[int, str]], int] | None:
    """((class index, label) pairs, the predicted class) of a Feature-maps ``ModelView``
    (``acts``: its activations for the current image), or None when the model has no class
    scores (VGG19 without its classifier, a model ending in feature maps)."""
    from cnnlib.inspect import features as F

    scores = F.output_scores(view.model, acts)
    if scores is None:
        return None
    n = len(scores.values)
    if view.preprocessing == "imagenet" and n == 1000:
        names = [f"{i} · {imagenet.class_name(i).replace('_', ' ')}" for i in range(n)]
    elif view.class_names and len(view.class_names) == n:
        names = list(view.class_names)
    else:
        names = [f"output {i}" for i in range(n)]
    return list(enumerate(names)), int(scores.predicted)


def saliency_tab(view: Any, prepared: Any, acts: Any) -> None:
    """Feature maps' Saliency tab for a ``ModelView``, its ``PreparedInput`` and activations:
    the same side-by-side view as Classify, the predicted class chosen first."""
    classes = model_classes(view, acts)
    if classes is None:
        st.info(
            f"{view.title} has no class scores (it ends in feature maps, without a classifier), "
            "so there is no class to explain: saliency maps need a model that outputs one "
            "score per class. Choose ResNet50 or an MNIST model."
        )
        return
    names, predicted = classes
    st.markdown(
        f"Which pixels of this image speak for a class? The model predicts "
        f"**{dict(names)[predicted]}**; pick any class to compare the methods on it."
    )
    saliency_section(
        view.runner,
        prepared.batch,
        prepared.preview,
        names,
        key="fm",
        model_key=f"{view.key}:{view.token}",
        digest=prepared.digest,
        default=predicted,
    )
