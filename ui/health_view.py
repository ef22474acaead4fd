"""Drawing each layer's health during a training (``cnnlib.inspect.health.EpochHealth``
records, one per epoch): gradient norm and dead-ReLU share per layer across the epochs, and
the latest epoch's weight and activation histograms. Draws only; nothing is computed here
but the figures' coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.subplots import make_subplots

from cnnlib.core.text import safe_text
from cnnlib.inspect.imagenet import overlay
from ui import alt_text, figures
from ui.image_input import show_image

WEIGHT_COLOR, ACTIVATION_COLOR = "#1f77b4", "#ff7f0e"


def trend_figure(health: Sequence) -> go.Figure:
    """Gradient norm (log scale) and dead-ReLU share of each layer against the epoch."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Gradient norm (fixed batch)", "Dead ReLU units")
    )
    epochs = [h.epoch for h in health]
    for index, row in enumerate(health[-1].layers):
        grads = [h.layers[index].grad_norm for h in health]
        dead = [h.layers[index].dead_share for h in health]
        if row.grad_norm is not None:
            fig.add_trace(
                go.Scatter(x=epochs, y=grads, mode="lines+markers", name=f"{row.name} ∥∇∥"),
                row=1,
                col=1,
            )
        if row.dead_share is not None:
            fig.add_trace(
                go.Scatter(x=epochs, y=dead, mode="lines+markers", name=f"{row.name} dead"),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, uirevision="health")
    return fig


def histograms_figure(latest) -> go.Figure:
    """One column per layer: its weights' histogram (top, when it has a kernel) and its
    outputs' histogram on the fixed batch (bottom)."""
    layers = latest.layers
    fig = make_subplots(
        rows=2,
        cols=len(layers),
        subplot_titles=[f"{r.name} weights" for r in layers]
        + [f"{r.name} outputs" for r in layers],
        vertical_spacing=0.18,
    )
    for col, row in enumerate(layers, start=1):
        panels = ((1, row.weights, WEIGHT_COLOR), (2, row.activations, ACTIVATION_COLOR))
        for r, hist, color in panels:
            if hist is None:
                continue
            counts, edges = hist
            centres = (edges[:-1] + edges[1:]) / 2
            fig.add_trace(
                go.Bar(
                    x=centres.tolist(),
                    y=counts.tolist(),
                    width=float(edges[1] - edges[0]),
                    marker_color=color,
                    showlegend=False,
                ),
                row=r,
                col=col,
            )
    fig.update_yaxes(type="log", dtick=1)  # ticks at powers of 10 only
    fig.update_annotations(font_size=11)
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, bargap=0)
    return fig


def health_rows(latest) -> dict[str, list]:
    """One row per layer of the latest epoch."""
    layers = latest.layers
    return {
        "layer": [r.name for r in layers],
        "type": [r.kind for r in layers],
        "gradient norm": [f"{r.grad_norm:.3g}" if r.grad_norm is not None else "–" for r in layers],
        "dead ReLU units": [
            f"{r.dead_share:.0%} of {r.units}" if r.dead_share is not None else "–" for r in layers
        ],
    }


def health_alt(latest) -> str:
    parts = []
    for r in latest.layers:
        bits = []
        if r.grad_norm is not None:
            bits.append(f"gradient norm {r.grad_norm:.3g}")
        if r.dead_share is not None:
            bits.append(f"{r.dead_share:.0%} of {r.units} ReLU units dead")
        parts.append(f"{r.name}: {', '.join(bits) or 'outputs only'}")
    return (
        f"Line charts of each layer's gradient norm (log scale) and share of dead ReLU units "
        f"against the epoch, measured on {latest.images} fixed validation images. After epoch "
        f"{latest.epoch}: " + "; ".join(parts) + "."
    )


def show_health(health: Sequence, *, scope: str = "") -> None:
    """The health records of a training so far (nothing before the first epoch ends).
    ``scope``: which layers are measured, on what (markdown), when not every layer on the
    images."""
    if scope:
        st.caption(scope)
    if not health:
        st.caption("Each layer's health appears here after each epoch.")
        return
    latest = health[-1]
    st.markdown(
        f"**Layer health after epoch {latest.epoch}**, on {latest.images} fixed validation "
        "images: a gradient norm near 0 means the layer barely learns (vanishing), a "
        "growing one means it may blow up; a dead ReLU unit outputs 0 for every image."
    )
    st.plotly_chart(
        trend_figure(health),
        key="health_trend",
        config={"displaylogo": False},
        alt=health_alt(latest),
    )
    figures.table_view(health_rows(latest), alt=f"Each layer's health after epoch {latest.epoch}")
    st.plotly_chart(
        histograms_figure(latest),
        key="health_histograms",
        config={"displaylogo": False},
        alt=f"Histograms (log counts) after epoch {latest.epoch}: each layer's kernel weights "
        "(top, blue) and its outputs on the fixed images (bottom, orange).",
    )


def show_cams(cams, class_names: Sequence[str], *, uploaded: bool = False) -> None:
    """A ``cnnlib.inspect.health.CamSnapshot``: each fixed image with its Grad-CAM for its
    true class blended over it, and what the model answered, at the last epoch end.
    ``uploaded``: the class names come from an upload (quoted as code spans)."""
    if cams is None:
        st.caption("Grad-CAM of four validation images appears here after each epoch.")
        return
    st.markdown(
        f"**Where it looks at the end of epoch {cams.epoch}**: Grad-CAM at layer "
        f"`{cams.layer}` for each image's true class (red = the evidence it uses)."
    )
    columns = st.columns(len(cams.images))
    for column, image, label, answer, p, cam in zip(
        columns, cams.images, cams.labels, cams.predicted, cams.confidence, cams.maps, strict=True
    ):
        pixels = np.clip(image[..., 0] if image.shape[-1] == 1 else image, 0, 255)
        photo = Image.fromarray(pixels.astype(np.uint8)).resize(
            (112, 112), Image.Resampling.NEAREST
        )
        true, said = class_names[int(label)], class_names[int(answer)]
        shown = (safe_text(true), safe_text(said)) if uploaded else (true, said)
        true, said = alt_text.plain(true), alt_text.plain(said)
        with column:
            show_image(
                overlay(photo, cam, 0.45),
                caption=f"true {shown[0]} · said {shown[1]} ({p:.0%})",
                alt=f"A validation image of a {true} with its Grad-CAM for {true} after epoch "
                f"{cams.epoch} blended over it: red where the layer's evidence for it is "
                f"strongest (peak at row {int(cam.argmax() // cam.shape[1]) + 1} of "
                f"{cam.shape[0]}, column {int(cam.argmax() % cam.shape[1]) + 1} of "
                f"{cam.shape[1]}). The model said {said} with probability {p:.0%}.",
            )
