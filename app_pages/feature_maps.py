"""Feature maps: look inside any layer of your MNIST convnet, ResNet50 or VGG19 on your image.

Layout and widgets only: the numbers come from ``cnnlib.features``; models, inputs and the
cached activations from ``ui.features_view``; the shared ImageNet models from
``ui.pretrained``. The forward pass runs once per (model, image); every other widget here
only changes how the stored activations are drawn.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib import features as F
from cnnlib.errors import CNNLabError
from ui import features_view as fv
from ui import keras_runtime, state
from ui.errors import friendly_errors
from ui.image_input import pick_images

# Background training and Keras models must survive Streamlit's end-of-run cleanup.
keras_runtime.freeze_imported_objects()

st.title("Feature maps")
st.markdown(
    "A convolutional layer turns its input into a stack of **feature maps**, one per filter: "
    "each map shows where that filter found its pattern. Pick a model and an image, then walk "
    "through the layers — first layers respond to edges and colours, deeper layers to larger, "
    "more abstract patterns on smaller maps."
)

SESSION, QUICK, UPLOAD = "Your model from the MNIST page", "Quick-train a convnet", "Upload"
RESNET, VGG = "ResNet50 (ImageNet)", "VGG19 without its classifier (ImageNet)"
PHOTO, DRAWN = "Photo (sample, upload or camera)", "Digit drawn on the MNIST page"
TEST = {
    "mnist": "Digit from the MNIST test set",
    "fashion_mnist": "Image from the Fashion-MNIST test set",
}


def _mnist_class_names() -> tuple[str, ...]:
    """The class names the MNIST page trained its model with (digits or Fashion-MNIST)."""
    from cnnlib.data import CLASS_NAMES

    names = st.session_state.get(state.TRAINED_MODEL_CLASSES)
    if names:
        return tuple(str(n) for n in names)
    info = str(st.session_state.get(state.TRAINED_MODEL_INFO, "")).lower()
    return tuple(CLASS_NAMES["fashion_mnist" if "fashion" in info else "mnist"])


# ----------------------------------------------------------------------------- model source


def _quick_training() -> fv.ModelView | None:
    kept = st.session_state.get(fv.QUICK_MODEL)
    if kept is not None:
        model, description = kept
        st.caption(description)
        if st.button("Train a new one", key="fm_quick_again"):
            st.session_state.pop(fv.QUICK_MODEL, None)
            fv.start_quick_training()
            st.rerun()
        return fv.session_view(
            model,
            key=f"quick:{id(model)}",
            title="Quick-trained convnet",
            class_names=_mnist_class_names_plain(),
        )
    job = st.session_state.get(fv.QUICK_JOB)
    if job is None:
        st.markdown(
            "No model has been trained in this session yet. Train the tutorials' convnet "
            f"here on {fv.QUICK_IMAGES:,} real MNIST digits for {fv.QUICK_EPOCHS} epochs (it "
            "trains in the background; the time it took is shown afterwards), or train your "
            "own on the **Train on MNIST** page and come back."
        )
        if st.button("Train it now", type="primary", key="fm_quick_start"):
            with friendly_errors():
                fv.start_quick_training()
                st.rerun()
        return None
    _training_progress()
    return None


def _mnist_class_names_plain() -> tuple[str, ...]:
    from cnnlib.data import CLASS_NAMES

    return tuple(CLASS_NAMES["mnist"])


@st.fragment(run_every=0.5)
def _training_progress() -> None:
    status = fv.quick_training_status()
    if status.finished:
        st.rerun(scope="app")
    if status.error:
        st.error(status.error, icon="⚠️")
        if st.button("Try again", key="fm_quick_retry"):
            st.session_state.pop(fv.QUICK_JOB, None)
            st.rerun(scope="app")
        return
    st.progress(status.fraction, text=status.text)


def _uploaded() -> fv.ModelView | None:
    file = st.file_uploader(
        "Upload a Keras model (.keras, e.g. saved from the MNIST page)",
        type=["keras"],
        key="fm_model_upload",
    )
    if file is None:
        st.info("Upload a `.keras` file saved with `model.save(...)` to look inside it.")
        return None
    with friendly_errors():
        model, digest = fv.load_uploaded_model(file.getvalue(), file.name)
        return fv.session_view(model, key=f"upload:{digest}", title=file.name)
    return None


def _pretrained(which: str) -> fv.ModelView | None:
    from ui import pretrained

    loaded = pretrained.resnet50() if which == RESNET else pretrained.vgg19()
    pretrained.show_weights_note(loaded)
    if loaded.model is None:
        st.caption(
            "Without weights there is nothing real to look at: a network with random weights "
            "is not shown as if it were ImageNet-trained."
        )
        return None
    with friendly_errors():
        return fv.shared_view(loaded.model, key="resnet50" if which == RESNET else "vgg19")
    return None


def choose_model() -> fv.ModelView | None:
    trained = st.session_state.get(state.TRAINED_MODEL)
    options = ([SESSION] if trained is not None else []) + [QUICK, UPLOAD, RESNET, VGG]
    source = st.radio("Model", options, horizontal=True, key="fm_model_source")
    if source == SESSION:
        info = st.session_state.get(state.TRAINED_MODEL_INFO)
        if info:
            st.caption(f"Trained on the MNIST page: {info}")
        with friendly_errors():
            return fv.session_view(
                trained,
                key=f"session:{id(trained)}",
                title="Your MNIST model",
                class_names=_mnist_class_names(),
            )
        return None
    if source == QUICK:
        return _quick_training()
    if source == UPLOAD:
        return _uploaded()
    return _pretrained(source)


# ----------------------------------------------------------------------------- input


def _test_dataset(view: fv.ModelView) -> str:
    """The test set matching the model: Fashion-MNIST for a model trained on it, else MNIST."""
    from cnnlib.data import CLASS_NAMES

    fashion = view.class_names == tuple(CLASS_NAMES["fashion_mnist"])
    return "fashion_mnist" if fashion else "mnist"


def choose_input(view: fv.ModelView) -> fv.PreparedInput | None:
    drawn = st.session_state.get(state.DRAWN_DIGIT)
    dataset = _test_dataset(view)
    test = TEST[dataset]
    options = [PHOTO] + ([DRAWN] if drawn is not None else []) + [test]
    default = PHOTO if view.preprocessing == "imagenet" else (DRAWN if drawn is not None else test)
    kind = st.radio(
        "Input",
        options,
        index=options.index(default),
        horizontal=True,
        key=f"fm_input_{view.preprocessing}" + ("_fashion" if dataset == "fashion_mnist" else ""),
    )
    with friendly_errors():
        if kind == PHOTO:
            sample = "cat (chelsea)" if view.preprocessing != "mnist" else "coins"
            picked = pick_images("fm_photo", default_sample=sample)
            if not picked:
                return None
            crop = view.preprocessing == "imagenet" and st.checkbox(
                "Centre-crop to a square first (keeps the aspect ratio)", key="fm_crop"
            )
            return fv.prepare_input(view, image=picked[0].image, crop=crop)
        if kind == DRAWN:
            return fv.prepare_input(view, digit=drawn)
        return _test_image(view, dataset)
    return None


def _test_image(view: fv.ModelView, dataset: str) -> fv.PreparedInput | None:
    from ui.datasets import load_for_page

    ds = load_for_page(dataset)
    if not ds.available:
        st.error(ds.error, icon="⚠️")
        return None
    n = len(ds.x_test)
    index = st.number_input(
        f"Test image number (0 to {n - 1:,})", 0, n - 1, 0, key=f"fm_test_index_{dataset}"
    )
    what = "digit" if dataset == "mnist" else "image"
    st.caption(f"{ds.source}. This {what} is labelled **{ds.class_names[ds.y_test[index]]}**.")
    return fv.prepare_input(view, digit=ds.x_test[index].astype(np.float32) / 255.0)


# ----------------------------------------------------------------------------- views


def _heatmap(values: np.ndarray, zmin: float, zmax: float, *, height: int = 380) -> go.Figure:
    h, w = values.shape
    small = h * w <= 14 * 14
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=zmin,
            zmax=zmax,
            colorscale="Viridis",
            texttemplate="%{z:.3g}" if small else None,
            hovertemplate="row %{y}, column %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def _show_png(image: np.ndarray | Image.Image, caption: str) -> None:
    """A composed image ((H, W, 3) uint8 or PIL), sent as PNG: wide ones fitted to the
    column's width with the caption below; small ones at their own size, the caption beside
    them as a line of text (an image caption is only as wide as its image)."""
    pixels = image.width if isinstance(image, Image.Image) else int(image.shape[1])
    if pixels > 700:
        st.image(F.to_png(image), caption=caption, width="stretch", output_format="PNG")
    else:
        st.image(F.to_png(image), width=pixels, output_format="PNG")
        st.caption(caption)


def _stats_line(stats: F.MapStats, *, zeros: str = "zeros") -> None:
    st.markdown(
        f"min **{stats.min:.4g}** · max **{stats.max:.4g}** · mean **{stats.mean:.4g}** · "
        f"{zeros} **{stats.zero_fraction:.1%}**"
    )


def show_scores(view: fv.ModelView, acts: F.ActivationSet) -> None:
    scores = F.output_scores(view.model, acts)
    if scores is None or view.preprocessing == "imagenet":
        return
    names = view.class_names or tuple(str(i) for i in range(len(scores.values)))
    if len(names) != len(scores.values):
        names = tuple(str(i) for i in range(len(scores.values)))
    what = "probability" if scores.probabilities else "score (no softmax)"
    best = scores.predicted
    value = scores.values[best]
    shown = f"{value:.1%}" if scores.probabilities else f"{value:.3g}"
    st.markdown(f"**The model's answer:** {names[best]} ({what} {shown})")
    fig = go.Figure(
        go.Bar(
            x=list(names),
            y=scores.values,
            marker_color="#4c78a8",
            hovertemplate="%{x}: %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=10, b=10), yaxis_title=what)
    fig.update_xaxes(type="category")
    st.plotly_chart(fig, key="fm_scores")


def activation_view(view: fv.ModelView, acts: F.ActivationSet, info: F.LayerInfo) -> None:
    act = acts[info.name]
    stats = acts.stats(info.name)
    top = F.top_channel(stats)
    unit = "channel" if info.spatial else "unit"
    st.markdown(
        f"**Top activating {unit}:** {top} of {info.channels} "
        f"(mean activation {stats.mean[top]:.4g})."
    )
    if not info.spatial:
        names = None
        scores = F.output_scores(view.model, acts)
        if scores is not None and scores.layer == info.name and view.class_names:
            names = list(view.class_names)
        fig = go.Figure(
            go.Bar(
                x=names or list(range(info.channels)),
                y=act,
                marker_color="#4c78a8",
                hovertemplate=unit + " %{x}: %{y:.4g}<extra></extra>",
            )
        )
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=unit)
        st.plotly_chart(fig, key="fm_vector")
        st.caption(
            f"{info.name} is a vector of {info.channels} numbers, not maps: every unit sees the "
            "whole image."
        )
        return

    c1, c2, c3 = st.columns([2, 2, 1])
    by = c1.radio(
        "Order",
        ["Mean activation, highest first", "Channel number"],
        horizontal=True,
        key="fm_order",
    )
    scale_label = c2.radio(
        "Colour scale",
        ["Each map its own range", "One range for the whole layer"],
        horizontal=True,
        key="fm_scale",
    )
    per_page = c3.selectbox("Maps per page", [32, 64, 128, 256], index=1, key="fm_per_page")
    order = F.channel_order(stats, by="mean" if by.startswith("Mean") else "index")
    n_pages = -(-info.channels // per_page)
    page = 1
    if n_pages > 1:
        page = st.pagination(
            n_pages, key=f"fm_page_{view.key}_{info.name}_{per_page}", max_visible_pages=9
        )
    channels, _ = F.page_of(order, page - 1, per_page)
    scale = "shared" if scale_label.startswith("One") else "per_map"
    grid = F.activation_grid(act, channels, stats=stats, scale=scale, columns=16, tile_px=64)
    first, last = (page - 1) * per_page + 1, (page - 1) * per_page + len(channels)
    _show_png(
        grid,
        (
            f"{info.name}: maps {first}–{last} of {info.channels}, each {info.output_shape[0]}×"
            f"{info.output_shape[1]}, labelled with their channel number; bright = strong "
            "response (viridis colours)."
        ),
    )

    pick_options = [int(c) for c in channels]
    chosen = st.selectbox(
        "Enlarge a map",
        pick_options,
        index=pick_options.index(top) if top in pick_options else 0,
        format_func=lambda c: f"channel {c}",
        key=f"fm_enlarge_{view.key}_{info.name}_{page}_{per_page}_{by}",
    )
    lo, hi = stats.layer_range if scale == "shared" else (stats.min[chosen], stats.max[chosen])
    left, right = st.columns([3, 2])
    left.plotly_chart(_heatmap(act[:, :, chosen], float(lo), float(hi)), key="fm_enlarged")
    with right:
        st.markdown(f"**Channel {chosen}** of {info.name} ({info.kind})")
        zeros = "exact zeros (switched off by the ReLU)" if info.relu else "exact zeros"
        _stats_line(stats.of(chosen), zeros=zeros)
        rf = view.fields.get(info.name)
        if rf is not None:
            st.caption(
                f"Each cell of this {info.output_shape[0]}×{info.output_shape[1]} map sees "
                f"{rf.describe(view.input_shape[:2])} of the "
                f"{view.input_shape[0]}×{view.input_shape[1]} input."
            )
        if info.has_filters:
            st.caption(f"Its filter's weights are in the **Filters** tab (filter {chosen}).")


def filters_view(view: fv.ModelView, acts: F.ActivationSet, current: F.LayerInfo) -> None:
    conv_names = [info.name for info in view.layers if info.has_filters]
    if not conv_names:
        st.info("This model has no Conv2D layer, so it has no filters to show.")
        return
    first = conv_names[0]
    kernel = F.layer_kernel(view.model, first)
    kh, kw, cin, nf = kernel.shape
    st.markdown(f"**First convolutional layer `{first}`:** {nf} filters of {kh}×{kw}×{cin}.")
    colour = "in colour (R, G, B weights)" if cin == 3 else "blue = negative, red = positive"
    note = (
        " The network was trained on BGR images, so the channels are swapped back to RGB here."
        if view.bgr and cin == 3
        else ""
    )
    _show_png(
        F.filter_grid(kernel, bgr=view.bgr, columns=16, tile_px=48),
        f"Each square is one filter, {colour}; grey or white = 0.{note}",
    )

    st.markdown("**One filter of any convolutional layer**")
    c1, c2 = st.columns(2)
    # The conv layer behind the chosen layer: itself, or the last one before it.
    before = [n for n in conv_names if view.layer(n).index <= current.index]
    layer_index = conv_names.index(before[-1]) if before else 0
    layer = c1.selectbox(
        "Conv layer",
        conv_names,
        index=layer_index,
        key=f"fm_filter_layer_{view.key}_{current.name}",
        format_func=lambda n: view.layer(n).label,
    )
    n_filters = view.layer(layer).channels
    default = F.top_channel(acts.stats(layer)) if layer in acts else 0
    index = c2.number_input(
        f"Filter (0 to {n_filters - 1})",
        0,
        n_filters - 1,
        default,
        key=f"fm_filter_index_{view.key}_{layer}",
    )
    fw = F.filter_weights(view.model, layer, int(index))
    fh, fwid, fcin = fw.kernel.shape
    bias = "no bias" if fw.bias is None else f"bias {fw.bias:.4g}"
    st.caption(
        f"Filter {fw.index} of {layer}: {fh}×{fwid} weights for each of its {fcin} input "
        f"channels ({fh * fwid * fcin:,} weights, {bias}). Channel {default} is this layer's "
        "top activating channel for the current image."
    )
    _stats_line(fw.stats)
    tile = 48 if fcin <= 32 else max(16, min(48, 8 * fh))
    _show_png(
        F.weight_grid(fw.kernel, columns=32, tile_px=tile),
        "One square per input channel, labelled with its number: blue = negative, "
        "white = 0, red = positive (one scale for the whole filter).",
    )
    if fh * fwid > 1:
        strongest = int(np.argmax(np.abs(fw.kernel).sum(axis=(0, 1))))
        channel = st.number_input(
            f"Input channel to read (0 to {fcin - 1})",
            0,
            fcin - 1,
            strongest,
            key=f"fm_filter_channel_{view.key}_{layer}_{index}",
        )
        top = float(np.abs(fw.kernel).max())
        fig = _heatmap(fw.kernel[:, :, int(channel)], -top, top, height=260)
        fig.update_traces(colorscale="RdBu", reversescale=True)
        st.plotly_chart(fig, key="fm_filter_values")


def hierarchy_view(view: fv.ModelView, acts: F.ActivationSet, preview) -> None:
    steps = F.spatial_hierarchy(acts, view.layers, view.fields)
    if not steps:
        st.info("This model has no layer with 2-D feature maps.")
        return
    st.markdown(
        "The most active map at the end of each **stage** (a run of layers that keep the same "
        "map size). Going deeper, maps get smaller while each cell sees a larger part of the "
        "image — its **receptive field**."
    )
    cols = st.columns(len(steps) + 1)
    h, w = view.input_shape[:2]
    cols[0].image(preview, width="stretch")
    cols[0].caption(f"**input**  \n{h}×{w}")
    for col, step in zip(cols[1:], steps, strict=True):
        lo, hi = float(step.map.min()), float(step.map.max())
        tile = F.tile_grid([F.colorize(step.map, lo, hi)], columns=1, tile_px=160, gap=0)
        sh, sw = step.size
        rf = step.receptive_field.describe((h, w)) if step.receptive_field else "unknown"
        col.image(F.to_png(tile), width="stretch", output_format="PNG")
        col.caption(
            f"**{step.layer}**  \n{sh}×{sw} map, channel {step.channel} of {step.channels}"
            f"  \neach cell sees {rf}"
        )
    rows = [
        {
            "stage output": s.layer,
            "type": s.kind,
            "map size": f"{s.size[0]}×{s.size[1]}",
            "channels": s.channels,
            "receptive field": s.receptive_field.label if s.receptive_field else "unknown",
            "step between cells (px)": (
                s.receptive_field.jump[0] if s.receptive_field and s.receptive_field.jump else None
            ),
            "most active channel": s.channel,
            "its mean": round(s.mean, 4),
        }
        for s in steps
    ]
    st.dataframe(rows, hide_index=True)


# ----------------------------------------------------------------------------- page


def main() -> None:
    view = choose_model()
    if view is None:
        return
    st.caption(
        f"{view.title}: {len(view.layers)} layers, input {F.format_shape(view.input_shape)}."
    )
    st.subheader("Input")
    left, right = st.columns([1, 2])
    with left:
        prepared = choose_input(view)
    if prepared is None:
        return
    with right:
        st.image(prepared.preview, caption="What the model sees", width=160)
        st.caption(f"Prepared as the model expects: {prepared.steps}.")
    try:
        with st.spinner("Running the image through every layer…"):
            acts = fv.activations(view, prepared)
    except CNNLabError as err:
        st.error(str(err), icon="⚠️")
        return
    except Exception as err:  # e.g. an uploaded model whose layers fail on this input
        st.error(f"The model could not run on this image ({type(err).__name__}: {err}).", icon="⚠️")
        return
    with right:
        show_scores(view, acts)

    st.subheader("Layers")
    names = [info.name for info in view.layers]
    default = names.index(F.default_layer(view.layers))
    name = st.selectbox(
        f"Layer ({len(names)} in this model: type and output shape)",
        names,
        index=default,
        format_func=lambda n: f"{names.index(n) + 1}. {view.layer(n).label}",
        key=f"fm_layer_{view.key}",
    )
    info = view.layer(name)
    tab_maps, tab_filters, tab_hierarchy = st.tabs(["Activations", "Filters", "Spatial hierarchy"])
    with tab_maps, friendly_errors():
        activation_view(view, acts, info)
    with tab_filters, friendly_errors():
        filters_view(view, acts, info)
    with tab_hierarchy, friendly_errors():
        hierarchy_view(view, acts, prepared.preview)


main()
