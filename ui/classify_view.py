"""Drawing the Classify page: the preprocessing steps, the top-5 chart and Grad-CAM.

Every function draws results computed by ``cnnlib.inspect.imagenet`` (``PipelineSteps``,
``Classification``, a Grad-CAM map, an overlay image); nothing here computes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib.inspect import imagenet
from ui import alt_text, figures
from ui.image_input import show_image

BAR_COLOR = "#4c78a8"


def top5_figure(preds: list[imagenet.Prediction], *, height: int = 260) -> go.Figure:
    """Horizontal bars of the top predictions, best first, probabilities on a 0–100 % axis."""
    return figures.bar_chart(
        [f"{p.label} ({p.class_id})" for p in preds],
        [p.probability for p in preds],
        horizontal=True,
        color=BAR_COLOR,
        value_range=(0.0, 1.0),
        value_title="probability",
        text_position="auto",
        height=height,
    )


def cam_figure(cam: np.ndarray, layer: str) -> go.Figure:
    """The (h, w) Grad-CAM map in [0, 1] alone, as a heatmap titled with its source layer
    (the overlay's colours: ``figures.HEAT``)."""
    h, w = cam.shape
    fig = go.Figure(
        go.Heatmap(
            z=cam,
            colorscale=figures.colorscale(figures.HEAT),
            zmin=0,
            zmax=1,
            hovertemplate="row %{y}, column %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        title=dict(text=f"{h}×{w} Grad-CAM from {layer}", font=dict(size=13)),
        yaxis=dict(autorange="reversed", scaleanchor="x"),
    )
    return fig


def top5_rows(preds: list[imagenet.Prediction]) -> dict[str, list]:
    """The top predictions as table columns (rank, class, ImageNet id, probability)."""
    return {
        "rank": list(range(1, len(preds) + 1)),
        "class": [p.label for p in preds],
        "ImageNet id": [p.class_id for p in preds],
        "probability": [f"{p.probability:.1%}" for p in preds],
    }


def top5_alt(preds: list[imagenet.Prediction]) -> str:
    """ "Bar chart of the top 5 classes: tabby 61.2%, tiger cat 20.1%, …"."""
    bars = ", ".join(f"{p.label} {p.probability:.1%}" for p in preds)
    return f"Bar chart of the top {len(preds)} classes by probability: {bars}."


def show_card(index: int, name: str, step: imagenet.PipelineSteps, result) -> None:
    """One photo of several: its model input, best guess and a compact top-5 chart."""
    with st.container(border=True):
        show_image(
            step.resized,
            caption=name,
            width=160,
            alt=alt_text.photo(f"Model input of {alt_text.plain(name)}", step.resized),
        )
        if result is None:
            return
        best = result.predictions[0]
        st.markdown(f"**{best.label}** — {best.probability:.1%}")
        st.plotly_chart(
            top5_figure(result.predictions, height=190),
            key=f"classify_grid_chart_{index}",
            config={"displayModeBar": False},
            alt=top5_alt(result.predictions),
        )
        st.caption(f"Inference {result.inference_seconds * 1000:.0f} ms")


def _resize_note(step: imagenet.PipelineSteps) -> str:
    w, h = step.original_size
    side = step.resized.size[0]
    if step.crop_box is not None:
        left, top, right, bottom = step.crop_box
        return (
            f"centre square {right - left}×{bottom - top} (from x={left}, y={top}) resized "
            f"to {side}×{side}"
        )
    if (w, h) == step.resized.size:
        return f"already {side}×{side}: not resized"
    return f"squashed from {w}×{h} (aspect {w / h:.2f}) to {side}×{side} (aspect 1)"


def show_input_step(
    original: Image.Image, step: imagenet.PipelineSteps, file_size: tuple[int, int] | None = None
) -> None:
    """Step 1: the original photo beside the 224 × 224 image the model sees. ``file_size``:
    (width, height) of the uploaded file when the decoder handed it back shrunk."""
    st.subheader("1 · The image the model sees")
    w, h = step.original_size
    fw, fh = file_size or (w, h)
    size = f"{fw}×{fh} pixels" + (f" (read at {w}×{h})" if (fw, fh) != (w, h) else "")
    c1, c2 = st.columns(2)
    with c1:
        show_image(original, caption=f"Original: {size}", alt=f"Your photo, {size}")
    with c2:
        show_image(
            step.resized,
            caption=f"Model input: {_resize_note(step)}",
            alt=f"The photo as ResNet50 gets it: {_resize_note(step)}",
        )
    st.caption(
        "Keras' `load_img(path, target_size=(224, 224))` resizes with nearest-neighbour "
        "interpolation and ignores the aspect ratio; the crop option is "
        "`keep_aspect_ratio=True`."
    )


def show_array_step(step: imagenet.PipelineSteps) -> None:
    """Step 2: image → array → batch, with the real shapes and value range."""
    st.subheader("2 · From image to array to batch")
    lo, hi = step.range_before
    st.code(
        f"x = keras.utils.img_to_array(img)  # shape {step.array_shape}, float32, "
        f"values {lo:.0f} to {hi:.0f}\n"
        f"x = np.expand_dims(x, axis=0)      # shape {step.batch_shape}: a batch of one image",
        language=None,  # Streamlit's Python colours are too faint on light code (4.5:1)
        wrap_lines=True,
    )
    st.caption(
        "Keras models always take a batch: the first axis counts images, even when there is one."
    )


def show_preprocess_step(step: imagenet.PipelineSteps, preview: Image.Image) -> None:
    """Step 3: ``preprocess_input``'s channel swap and mean subtraction, with ``preview``
    (``imagenet.preprocessed_preview`` of the batch) drawn as if it were RGB."""
    st.subheader("3 · `preprocess_input`: RGB → BGR, ImageNet means subtracted")
    table = pd.DataFrame(
        {
            "channel": ["blue", "green", "red"],
            "position before (RGB)": [2, 1, 0],
            "position after (BGR)": [0, 1, 2],
            "mean before": list(step.means_rgb[::-1]),
            "subtracted (ImageNet mean)": list(step.subtracted_bgr),
            "mean after": list(step.means_bgr_after),
        }
    )
    st.dataframe(table.style.format(precision=2), hide_index=True, width="stretch")
    c1, c2 = st.columns([3, 2])
    r, c = step.probe
    rgb = ", ".join(f"{v:.0f}" for v in step.probe_rgb)
    bgr = ", ".join(f"{v:.2f}" for v in step.probe_bgr_after)
    a_lo, a_hi = step.range_after
    c1.markdown(
        f"The channels swap places (RGB → BGR) and each loses ImageNet's mean for that colour; "
        f"nothing is divided, so values stay in pixel units.\n\n"
        f"Centre pixel (row {r}, column {c}): R, G, B = ({rgb}) becomes B, G, R = ({bgr}). "
        f"Values now range from {a_lo:.1f} to {a_hi:.1f}. ResNet50 was trained on images "
        "prepared this way (the 'caffe' convention), so yours must be too."
    )
    with c2:
        show_image(
            preview,
            caption="The preprocessed array drawn as if it were RGB (rescaled): reds turn blue",
            alt=f"The preprocessed {alt_text.size_text(preview)} array drawn as if it were RGB: "
            "with red and blue swapped, red things look blue and blue things orange.",
        )


def show_top5(result, *, verified: bool) -> None:
    """Step 4's chart and timings of an ``imagenet.Classification``."""
    preds = result.predictions
    title = (
        "Top-5 of ImageNet's 1000 classes"
        if verified
        else "Top-5 of the model's 1000 outputs (ImageNet names, unverified weights)"
    )
    st.markdown(f"**{title}**")
    st.plotly_chart(
        top5_figure(preds),
        key="classify_top5",
        config={"displayModeBar": False},
        alt=top5_alt(preds),
    )
    figures.table_view(top5_rows(preds), alt=title)
    st.caption(
        f"Inference (one forward pass, compiled with tf.function): "
        f"{result.inference_seconds * 1000:.0f} ms · preprocessing "
        f"{result.preprocess_seconds * 1000:.0f} ms · decoding "
        f"{result.decode_seconds * 1000:.1f} ms. The five probabilities add up to "
        f"{sum(p.probability for p in preds):.1%} of the softmax over all 1000 classes."
    )


def show_grad_cam(
    overlay: Image.Image, cam: np.ndarray, *, layer: str, label: str, opacity: float
) -> None:
    """The Grad-CAM overlay on the model input beside the map alone."""
    h, w = cam.shape
    r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
    where = (
        f"strongest in cell row {r}, column {c} of its {h}×{w} grid"
        if cam.max() > 0
        else "zero everywhere: nothing in the photo speaks for this class"
    )
    c1, c2 = st.columns(2)
    with c1:
        show_image(
            overlay,
            caption=f"Grad-CAM overlay for “{label}” (opacity {opacity:.2f})",
            alt=f"Grad-CAM heatmap for “{label}” over the {alt_text.size_text(overlay)} model "
            f"input, bright yellow where the evidence is strong, dark where there is none; "
            f"{where}.",
        )
    with c2:
        st.plotly_chart(
            cam_figure(cam, layer),
            key="classify_cam_alone",
            config={"displayModeBar": False},
            alt=f"The {h}×{w} Grad-CAM map of {layer} alone, values 0 to 1, {where}.",
        )
