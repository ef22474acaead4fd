"""Feature maps: look inside any layer of a model trained in this session (the session's model
registry), a quick-trained or uploaded one, ResNet50 or VGG19 on your image; what a filter
wants to see (``ui.filters_view``); saliency side by side (``ui.saliency_view``). The model
choice is a section of its own (``app_pages/sections/feature_maps_model.py``).

Layout only: ``*_ui()`` sections return what their widgets chose; the numbers come from
``cnnlib.inspect.features``; models, inputs, cached activations and the quick training from
``ui.features_session``, the drawing from ``ui.features_view``; the shared ImageNet models
from ``ui.pretrained``. The forward pass runs once per (model, image); every other widget
only changes how the stored activations are drawn. Every choice persists for the session
(``persist_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages.sections import feature_maps_model
from cnnlib.inspect import features as F
from ui import alt_text, filters_view, keras_runtime, model_input, saliency_view
from ui import features_session as fs
from ui import features_view as fv
from ui.errors import friendly_errors
from ui.state import KEEP, kept_tabs

WANTS = "What a filter wants to see"

ss = st.session_state


# ----------------------------------------------------------------------------- layers


def layer_ui(view: fs.ModelView) -> F.LayerInfo:
    names = [info.name for info in view.layers]
    name = st.selectbox(
        f"Layer ({len(names)} in this model: type and output shape)",
        names,
        index=names.index(F.default_layer(view.layers)),
        format_func=lambda n: f"{names.index(n) + 1}. {view.layer(n).label}",
        key=f"fm_layer_{view.key}",
        **KEEP,
    )
    return view.layer(name)


@dataclass(frozen=True)
class MapsOptions:
    """How a layer's maps are drawn: ``order`` "mean" (highest first) or "index", colour
    ``scale`` "per_map" or "shared" (one range for the layer), ``per_page`` maps a page."""

    order: str
    scale: str
    per_page: int


def maps_options_ui() -> MapsOptions:
    c1, c2, c3 = st.columns([2, 2, 1])
    orders = {"Mean activation, highest first": "mean", "Channel number": "index"}
    scales = {"Each map its own range": "per_map", "One range for the whole layer": "shared"}
    by = c1.radio("Order", list(orders), horizontal=True, key="fm_order", **KEEP)
    scale = c2.radio("Colour scale", list(scales), horizontal=True, key="fm_scale", **KEEP)
    per_page = c3.selectbox("Maps per page", [32, 64, 128, 256], index=1, key="fm_per_page", **KEEP)
    return MapsOptions(orders[by], scales[scale], int(per_page))


def activations_tab(view: fs.ModelView, acts: F.ActivationSet, info: F.LayerInfo) -> None:
    stats = acts.stats(info.name)
    top = F.top_channel(stats)
    unit = "channel" if info.spatial else "unit"
    st.markdown(
        f"**Top activating {unit}:** {top} of {info.channels} "
        f"(mean activation {stats.mean[top]:.4g})."
    )
    if not info.spatial:
        scores = F.output_scores(view.model, acts)
        is_output = scores is not None and scores.layer == info.name and view.class_names
        fv.show_vector(acts[info.name], info, list(view.class_names) if is_output else None)
        return
    o = maps_options_ui()
    by, scale, per_page = o.order, o.scale, o.per_page
    order = F.channel_order(stats, by=by)
    channels, pages = F.page_of(order, 0, per_page)
    page = 1
    if pages > 1:
        page_key = f"fm_page_{view.key}_{info.name}_{per_page}"
        page = st.pagination(pages, key=page_key, max_visible_pages=9, **KEEP)
        channels, _ = F.page_of(order, page - 1, per_page)
    grid = F.activation_grid(
        acts[info.name], channels, stats=stats, scale=scale, columns=16, tile_px=64
    )
    first, last = (page - 1) * per_page + 1, (page - 1) * per_page + len(channels)
    h, w = info.output_shape[:2]
    shown = acts[info.name][:, :, channels]
    how = "each map on its own scale" if scale == "per_map" else "one scale for the layer"
    fv.show_png(
        grid,
        f"{info.name}: maps {first}–{last} of {info.channels}, each {h}×{w}, labelled with "
        "their channel number; dark purple = weak, yellow = strong response (viridis colours).",
        alt=f"Grid of feature maps {first}–{last} of the {info.channels} of {info.name}, each "
        f"{h}×{w}, {alt_text.values_text(shown.min(), shown.max())}, {how}: dark purple weak, "
        "yellow strong; labelled with their channel number.",
    )
    options = [int(c) for c in channels]
    chosen = st.selectbox(
        "Enlarge a map",
        options,
        index=options.index(top) if top in options else 0,
        format_func=lambda c: f"channel {c}",
        key=f"fm_enlarge_{view.key}_{info.name}_{page}_{per_page}_{by}",
        **KEEP,
    )
    lo, hi = stats.layer_range if scale == "shared" else (stats.min[chosen], stats.max[chosen])
    values = acts[info.name][:, :, chosen]
    fv.show_enlarged(view, info, chosen, values, stats.of(chosen), lo, hi)


def filters_tab(view: fs.ModelView, acts: F.ActivationSet, current: F.LayerInfo) -> None:
    conv_names, behind = view.conv_layers(current)
    if not conv_names:
        st.info("This model has no Conv2D layer, so it has no filters to show.")
        return
    fv.show_first_filters(view, conv_names[0], F.layer_kernel(view.model, conv_names[0]))
    st.markdown("**One filter of any convolutional layer**")
    c1, c2 = st.columns(2)
    layer = c1.selectbox(
        "Conv layer",
        conv_names,
        index=behind,
        key=f"fm_filter_layer_{view.key}_{current.name}",
        format_func=lambda n: view.layer(n).label,
        **KEEP,
    )
    n_filters = view.layer(layer).channels
    top = F.top_channel(acts.stats(layer)) if layer in acts else 0
    index = c2.number_input(
        f"Filter (0 to {n_filters - 1})",
        0,
        n_filters - 1,
        top,
        key=f"fm_filter_index_{view.key}_{layer}",
        **KEEP,
    )
    fw = F.filter_weights(view.model, layer, int(index))
    fv.show_filter(fw, top)
    fh, fwid, fcin = fw.kernel.shape
    if fh * fwid > 1:
        channel = st.number_input(
            f"Input channel to read (0 to {fcin - 1})",
            0,
            fcin - 1,
            fw.strongest_channel,
            key=f"fm_filter_channel_{view.key}_{layer}_{index}",
            **KEEP,
        )
        fv.show_filter_channel(fw, int(channel))


def hierarchy_tab(view: fs.ModelView, acts: F.ActivationSet, preview) -> None:
    steps = F.spatial_hierarchy(acts, view.layers, view.fields)
    if not steps:
        st.info("This model has no layer with 2-D feature maps.")
        return
    fv.show_hierarchy(steps, preview, view.input_shape)


# ----------------------------------------------------------------------------- page


def main() -> None:
    # Background training and Keras models must survive Streamlit's end-of-run cleanup.
    keras_runtime.freeze_imported_objects()
    st.title("Feature maps")
    st.markdown(
        "A convolutional layer turns its input into a stack of **feature maps**, one per "
        "filter: each map shows where that filter found its pattern. Pick a model and an "
        "image, then walk through the layers — first layers respond to edges and colours, "
        "deeper layers to larger, more abstract patterns on smaller maps."
    )
    view = prepared = acts = None
    with friendly_errors():
        view = feature_maps_model.model_ui()
    if view is None:
        return
    prepared, right = model_input.input_section(view, prefix="fm")
    if prepared is None:
        return
    with right, friendly_errors():
        with st.spinner("Running the image through every layer…"):
            acts = fs.activations(view, prepared)
        scores = F.output_scores(view.model, acts)
        if scores is not None and view.preprocessing != "imagenet":
            fv.show_scores(scores, view.class_names)
    if acts is None:
        return
    st.subheader("Layers")
    info = layer_ui(view)
    # The last two tabs compute (seconds) only while open: stateful tabs know which one is.
    names = ["Activations", "Filters", "Spatial hierarchy", WANTS, "Saliency"]
    tabs = kept_tabs(names, "fm_tab")
    with tabs[0], friendly_errors():
        activations_tab(view, acts, info)
    with tabs[1], friendly_errors():
        filters_tab(view, acts, info)
    with tabs[2], friendly_errors():
        hierarchy_tab(view, acts, prepared.preview)
    with tabs[3], friendly_errors():
        if tabs[3].open:
            filters_view.wants_tab(view, acts, info)
    with tabs[4], friendly_errors():
        if tabs[4].open:
            saliency_view.saliency_tab(view, prepared, acts)


main()
