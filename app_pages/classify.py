"""Classify with ResNet50: each preprocessing step shown, top-5 chart, Grad-CAM.

Layout only: every number comes from ``cnnlib.imagenet``; the shared model from
``ui.pretrained``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib import imagenet
from ui import pretrained
from ui.errors import friendly_errors
from ui.image_input import PickedImage, pick_images

st.title("Classify with ResNet50")
st.markdown(
    "ResNet50 is a 50-layer convolutional network trained on ImageNet's 1000 classes. "
    "Give it a photo: below you see exactly what Keras does to the photo before the network "
    "sees it, the network's five best guesses, and — with **Grad-CAM** — which part of the "
    "photo made it choose a class."
)


def _digest(img: Image.Image) -> str:
    return hashlib.sha1(img.tobytes()).hexdigest() + f"-{img.mode}-{img.size}"


@st.cache_data(max_entries=64, show_spinner=False)
def _steps(_img: Image.Image, digest: str, crop: bool) -> imagenet.PipelineSteps:
    return imagenet.pipeline_steps(_img, crop=crop)


@st.cache_data(max_entries=64, show_spinner=False)
def _classification(
    _model, _img: Image.Image, digest: str, crop: bool, weights: str
) -> imagenet.Classification:
    return imagenet.run_classification(_model, _img, crop=crop)


@st.cache_data(max_entries=128, show_spinner=False)
def _cam(_model, _batch: np.ndarray, digest: str, crop: bool, class_id: int, weights: str):
    return imagenet.grad_cam(_model, _batch, class_id)


def _top5_figure(preds: list[imagenet.Prediction], *, height: int = 260) -> go.Figure:
    best_first = list(preds)
    labels = [f"{p.label} ({p.class_id})" for p in best_first]
    fig = go.Figure(
        go.Bar(
            x=[p.probability for p in best_first],
            y=labels,
            orientation="h",
            text=[f"{p.probability:.1%}" for p in best_first],
            textposition="auto",
            marker_color="#4c78a8",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def _cam_figure(cam: np.ndarray, layer: str) -> go.Figure:
    h, w = cam.shape
    fig = go.Figure(
        go.Heatmap(
            z=cam,
            colorscale="Jet",
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


picked: list[PickedImage] = pick_images("classify", multiple=True)
crop = st.toggle(
    "Centre-crop to a square before resizing (keeps the aspect ratio, cuts the edges)",
    key="classify_crop",
)
loaded = pretrained.resnet50()
pretrained.show_weights_note(loaded)
model = loaded.model
if model is None:
    st.info(
        "Without weights there are no predictions, but every preprocessing step below still "
        "runs on your photo."
    )
weights_key = model.weights_source if model is not None else ""
verified = model is not None and model.imagenet_verified

if not picked:
    st.stop()

digests = [_digest(p.image) for p in picked]
steps = [_steps(p.image, d, crop) for p, d in zip(picked, digests, strict=True)]
results: list[imagenet.Classification | None] = [None] * len(picked)
if model is not None:
    with st.spinner("Classifying…"), friendly_errors():
        for i, (p, d) in enumerate(zip(picked, digests, strict=True)):
            results[i] = _classification(model, p.image, d, crop, weights_key)

names = [f"{i + 1}. {p.label}" for i, p in enumerate(picked)]
chosen = 0
if len(picked) > 1:
    st.subheader(f"{len(picked)} photos")
    ncols = min(3, len(picked))
    cols = st.columns(ncols)
    for i, (name, step, result) in enumerate(zip(names, steps, results, strict=True)):
        with cols[i % ncols], st.container(border=True):
            st.image(step.resized, caption=name, width=160)
            if result is not None:
                best = result.predictions[0]
                st.markdown(f"**{best.label}** — {best.probability:.1%}")
                st.plotly_chart(
                    _top5_figure(result.predictions, height=190),
                    key=f"classify_grid_chart_{i}",
                    config={"displayModeBar": False},
                )
                st.caption(f"Inference {result.inference_seconds * 1000:.0f} ms")
    chosen = st.selectbox(
        "Show every step and Grad-CAM for",
        range(len(picked)),
        format_func=lambda i: names[i],
        key="classify_detail",
    )

item, step, result = picked[chosen], steps[chosen], results[chosen]

# ---------------------------------------------------------------- step 1: the 224×224 image
st.subheader("1 · The image the model sees")
w, h = step.original_size
c1, c2 = st.columns(2)
with c1:
    st.image(item.image, caption=f"Original: {w}×{h} pixels", width="stretch")
with c2:
    side = step.resized.size[0]
    if step.crop_box is not None:
        left, top, right, bottom = step.crop_box
        how = (
            f"centre square {right - left}×{bottom - top} (from x={left}, y={top}) resized "
            f"to {side}×{side}"
        )
    elif (w, h) == step.resized.size:
        how = f"already {side}×{side}: not resized"
    else:
        how = f"squashed from {w}×{h} (aspect {w / h:.2f}) to {side}×{side} (aspect 1)"
    st.image(step.resized, caption=f"Model input: {how}", width="stretch")
st.caption(
    "Keras' `load_img(path, target_size=(224, 224))` resizes with nearest-neighbour "
    "interpolation and ignores the aspect ratio; the crop option is "
    "`keep_aspect_ratio=True`."
)

# ---------------------------------------------------------------- step 2: array and batch
st.subheader("2 · From image to array to batch")
lo, hi = step.range_before
st.code(
    f"x = keras.utils.img_to_array(img)  # shape {step.array_shape}, float32, "
    f"values {lo:.0f} to {hi:.0f}\n"
    f"x = np.expand_dims(x, axis=0)      # shape {step.batch_shape}: a batch of one image",
    language="python",
    wrap_lines=True,
)
st.caption(
    "Keras models always take a batch: the first axis counts images, even when there is one."
)

# ---------------------------------------------------------------- step 3: preprocess_input
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
with c1:
    r, c = step.probe
    rgb = ", ".join(f"{v:.0f}" for v in step.probe_rgb)
    bgr = ", ".join(f"{v:.2f}" for v in step.probe_bgr_after)
    a_lo, a_hi = step.range_after
    st.markdown(
        f"The channels swap places (RGB → BGR) and each loses ImageNet's mean for that colour; "
        f"nothing is divided, so values stay in pixel units.\n\n"
        f"Centre pixel (row {r}, column {c}): R, G, B = ({rgb}) becomes B, G, R = ({bgr}). "
        f"Values now range from {a_lo:.1f} to {a_hi:.1f}. ResNet50 was trained on images "
        "prepared this way (the 'caffe' convention), so yours must be too."
    )
with c2:
    st.image(
        imagenet.preprocessed_preview(step.batch),
        caption="The preprocessed array drawn as if it were RGB (rescaled): reds turn blue",
        width="stretch",
    )

# ---------------------------------------------------------------- step 4: prediction
st.subheader("4 · ResNet50's top-5 guesses")
if model is None or result is None:
    st.info("No predictions: the model's weights are not available (see the message above).")
    st.stop()

preds = result.predictions
title = (
    "Top-5 of ImageNet's 1000 classes"
    if verified
    else "Top-5 of the model's 1000 outputs (ImageNet names, unverified weights)"
)
st.markdown(f"**{title}**")
st.plotly_chart(_top5_figure(preds), key="classify_top5", config={"displayModeBar": False})
st.caption(
    f"Inference (one forward pass, compiled with tf.function): "
    f"{result.inference_seconds * 1000:.0f} ms · preprocessing "
    f"{result.preprocess_seconds * 1000:.0f} ms · decoding {result.decode_seconds * 1000:.1f} "
    f"ms. The five probabilities add up to {sum(p.probability for p in preds):.1%} of the "
    "softmax over all 1000 classes."
)

# ---------------------------------------------------------------- step 5: Grad-CAM
st.subheader("5 · Where did it look? Grad-CAM")
st.markdown(
    "Grad-CAM takes the last convolutional block's feature maps, weights each map by how much "
    "it raises the chosen class's score (the average gradient), and adds them up: bright cells "
    "are the regions that speak for that class."
)
pick = st.radio(
    "Explain the class",
    range(len(preds)),
    format_func=lambda i: f"{preds[i].label} ({preds[i].probability:.1%})",
    horizontal=True,
    key="classify_cam_class",
)
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="classify_opacity")
target = preds[min(pick, len(preds) - 1)]
with st.spinner("Computing Grad-CAM…"), friendly_errors():
    cam = _cam(model, step.batch, digests[chosen], crop, target.class_id, weights_key)
    layer = imagenet.last_conv_layer(model).name
    c1, c2 = st.columns(2)
    with c1:
        st.image(
            imagenet.overlay(step.resized, cam, opacity),
            caption=f"Grad-CAM overlay for “{target.label}” (opacity {opacity:.2f})",
            width="stretch",
        )
    with c2:
        st.plotly_chart(
            _cam_figure(cam, layer), key="classify_cam_alone", config={"displayModeBar": False}
        )
