"""Drawing the Feature-maps page: heatmaps, composed grids, statistics, scores, filters and
the spatial hierarchy, each drawing results computed by ``cnnlib.inspect.features`` (the model
views, inputs and activations come from ``ui.features_session``). Nothing here computes.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib.core.text import safe_text
from cnnlib.inspect import features as F
from ui import alt_text, figures
from ui.features_session import ModelView
from ui.image_input import show_image

# ----------------------------------------------------------------------------- drawing
# The page's figures and composed images: each draws results computed by cnnlib.inspect.features.

BAR_COLOR = "#4c78a8"


def heatmap_figure(
    values: np.ndarray,
    zmin: float,
    zmax: float,
    *,
    height: int = 380,
    scale: str = figures.MAGNITUDE,
) -> go.Figure:
    """One (H, W) map as a square-celled heatmap in the app's colour ``scale`` (a
    ``ui.figures`` name); the values are written in small maps."""
    h, w = values.shape
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=zmin,
            zmax=zmax,
            colorscale=figures.colorscale(scale),
            texttemplate="%{z:.3g}" if h * w <= 14 * 14 else None,
            hovertemplate="row %{y}, column %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def show_png(image: np.ndarray | Image.Image, caption: str, *, alt: str) -> None:
    """A composed image ((H, W, 3) uint8 or PIL), sent as PNG: wide ones fitted to the
    column's width with the caption below; small ones at their own size, the caption beside
    them as a line of text (an image caption is only as wide as its image). ``alt`` says what
    it shows, with its numbers (``ui.alt_text``)."""
    pixels = image.width if isinstance(image, Image.Image) else int(image.shape[1])
    if pixels > 700:
        st.image(F.to_png(image), caption=caption, width="stretch", output_format="PNG", alt=alt)
    else:
        st.image(F.to_png(image), width=pixels, output_format="PNG", alt=alt)
        st.caption(caption)


def show_stats(stats: F.MapStats, *, zeros: str = "zeros") -> None:
    """ "min · max · mean · zeros" of one map or filter, in one line."""
    st.markdown(
        f"min **{stats.min:.4g}** · max **{stats.max:.4g}** · mean **{stats.mean:.4g}** · "
        f"{zeros} **{stats.zero_fraction:.1%}**"
    )


def _names(class_names: tuple[str, ...] | None, n: int) -> list[str]:
    """The class names if there is one per output, else the output numbers."""
    if class_names and len(class_names) == n:
        return list(class_names)
    return [str(i) for i in range(n)]


def show_scores(scores: F.Scores, class_names: tuple[str, ...] | None) -> None:
    """The model's answer for the image and a bar per class."""
    names = _names(class_names, len(scores.values))
    what = "probability" if scores.probabilities else "score (no softmax)"
    value_format = ".1%" if scores.probabilities else ".3g"
    shown = format(float(scores.values[scores.predicted]), value_format)
    answer = safe_text(names[scores.predicted])
    st.markdown(f"**The model's answer:** {answer} ({what} {shown})")
    fig = figures.bar_chart(
        [figures.plain_label(n) for n in names],
        scores.values,
        color=BAR_COLOR,
        value_format=value_format,
        value_title=what,
        height=220,
    )
    cells = [format(float(v), value_format) for v in scores.values]
    bars = ", ".join(f"{alt_text.plain(n, 40)} {c}" for n, c in zip(names, cells, strict=True))
    st.plotly_chart(fig, key="fm_scores", alt=f"Bar chart of the {what} of each class: {bars}.")
    figures.table_view({"class": names, what: cells}, alt=f"The model's {what} for each class")


def show_vector(values: np.ndarray, info: F.LayerInfo, names: list[str] | None) -> None:
    """A layer whose output is a vector (Dense, pooling to 1-D): one bar per unit."""
    fig = figures.bar_chart(
        names or list(range(info.channels)),
        values,
        color=BAR_COLOR,
        value_format=".4g",
        label_title="unit",
        height=280,
        show_values=False,
        hover="unit %{x}: %{y:.4g}<extra></extra>",
    )
    v = np.asarray(values)
    st.plotly_chart(
        fig,
        key="fm_vector",
        alt=f"Bar chart of the {info.channels} units of {info.name}, "
        f"{alt_text.values_text(v.min(), v.max())}; the largest is unit {int(np.argmax(v))}.",
    )
    labels = names or [str(i) for i in range(info.channels)]
    rows = {"unit": labels, "value": [f"{float(x):.4g}" for x in v]}
    figures.table_view(rows, alt=f"The {info.channels} values of {info.name}")
    st.caption(
        f"{info.name} is a vector of {info.channels} numbers, not maps: every unit sees the "
        "whole image."
    )


def show_enlarged(
    view: ModelView, info: F.LayerInfo, channel: int, values: np.ndarray, stats, lo, hi
) -> None:
    """One map of layer ``info`` large, with its statistics and receptive field."""
    left, right = st.columns([3, 2])
    alt = alt_text.map_text(
        f"Channel {channel} of {info.name}, enlarged",
        values,
        figures.legend(figures.MAGNITUDE, float(lo), float(hi)),
    )
    left.plotly_chart(heatmap_figure(values, float(lo), float(hi)), key="fm_enlarged", alt=alt)
    with right:
        st.markdown(f"**Channel {channel}** of {info.name} ({info.kind})")
        zeros = "exact zeros (switched off by the ReLU)" if info.relu else "exact zeros"
        show_stats(stats, zeros=zeros)
        rf = view.fields.get(info.name)
        if rf is not None:
            h, w = view.input_shape[:2]
            st.caption(
                f"Each cell of this {info.output_shape[0]}×{info.output_shape[1]} map sees "
                f"{rf.describe((h, w))} of the {h}×{w} input."
            )
        if info.has_filters:
            st.caption(f"Its filter's weights are in the **Filters** tab (filter {channel}).")


def show_first_filters(view: ModelView, layer: str, kernel: np.ndarray) -> None:
    """Every filter of the first conv layer, (kh, kw, C_in, F) kernel, in one grid."""
    kh, kw, cin, nf = kernel.shape
    st.markdown(f"**First convolutional layer `{layer}`:** {nf} filters of {kh}×{kw}×{cin}.")
    colour = "in colour (R, G, B weights)" if cin == 3 else "blue = negative, red = positive"
    note = (
        " The network was trained on BGR images, so the channels are swapped back to RGB here."
        if view.bgr and cin == 3
        else ""
    )
    show_png(
        F.filter_grid(kernel, bgr=view.bgr, columns=16, tile_px=48),
        f"Each square is one filter, {colour}; grey or white = 0.{note}",
        alt=f"Grid of the {nf} {kh}×{kw} filters of {layer}, weights "
        f"{alt_text.values_text(kernel.min(), kernel.max())}, drawn {colour}.",
    )


def show_filter(fw: F.FilterWeights, top_channel: int) -> None:
    """One filter: its size, bias and statistics, and one square per input channel."""
    fh, fwid, fcin = fw.kernel.shape
    bias = "no bias" if fw.bias is None else f"bias {fw.bias:.4g}"
    st.caption(
        f"Filter {fw.index} of {fw.layer}: {fh}×{fwid} weights for each of its {fcin} input "
        f"channels ({fh * fwid * fcin:,} weights, {bias}). Channel {top_channel} is this "
        "layer's top activating channel for the current image."
    )
    show_stats(fw.stats)
    tile = 48 if fcin <= 32 else max(16, min(48, 8 * fh))
    show_png(
        F.weight_grid(fw.kernel, columns=32, tile_px=tile),
        "One square per input channel, labelled with its number: blue = negative, "
        "white = 0, red = positive (one scale for the whole filter).",
        alt=f"Grid of the {fcin} {fh}×{fwid} weight squares of filter {fw.index} of {fw.layer}, "
        f"one per input channel, weights {alt_text.values_text(fw.stats.min, fw.stats.max)}: "
        "blue negative, white 0, red positive.",
    )


def show_filter_channel(fw: F.FilterWeights, channel: int) -> None:
    """The weights of one input channel of a filter, values written in the cells."""
    top = float(np.abs(fw.kernel).max())
    weights = fw.kernel[:, :, channel]
    fig = heatmap_figure(weights, -top, top, height=260, scale=figures.SIGN)
    alt = alt_text.map_text(
        f"Weights of input channel {channel} of filter {fw.index}",
        weights,
        figures.legend(figures.SIGN, -top, top),
    )
    st.plotly_chart(fig, key="fm_filter_values", alt=alt)


def show_hierarchy(
    steps: list[F.HierarchyStep], preview: Image.Image, input_shape: tuple[int, ...]
) -> None:
    """The input, then the most active map of each stage with its receptive field; a table."""
    st.markdown(
        "The most active map at the end of each **stage** (a run of layers that keep the same "
        "map size). Going deeper, maps get smaller while each cell sees a larger part of the "
        "image — its **receptive field**."
    )
    cols = st.columns(len(steps) + 1)
    h, w = input_shape[:2]
    with cols[0]:
        show_image(preview, alt=alt_text.photo("The input image", preview))
    cols[0].caption(f"**input**  \n{h}×{w}")
    for col, step in zip(cols[1:], steps, strict=True):
        lo, hi = float(step.map.min()), float(step.map.max())
        tile = F.tile_grid([F.colorize(step.map, lo, hi)], columns=1, tile_px=160, gap=0)
        sh, sw = step.size
        rf = step.receptive_field.describe((h, w)) if step.receptive_field else "unknown"
        alt = alt_text.map_text(
            f"Most active map after stage {step.layer}: channel {step.channel} of "
            f"{step.channels}, each cell seeing {rf} of the input",
            step.map,
            figures.legend(figures.MAGNITUDE, lo, hi),
        )
        col.image(F.to_png(tile), width="stretch", output_format="PNG", alt=alt)
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
