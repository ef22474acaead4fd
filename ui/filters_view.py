"""What a filter wants to see, on the Feature-maps page: the image that excites one channel of
a conv layer most (``cnnlib.inspect.visualize``).

- this session's models (MNIST page, quick-trained, uploaded) are small: one filter is
  maximised on request, in seconds, and shown with its activation-per-step curve;
- ResNet50 and VGG19 are large: a ``cnnlib.training.filter_grid.FilterGridJob`` (a task of the
  one task base: it waits for one of the server's slots, has Stop and a time limit, and ends
  with the session) fills a grid of one layer's filters in the background (kept in this
  session's state), and a fragment polls it every second for the progress and the filters
  done so far, with Stop.

``cnnlib.inspect.visualize`` caches every result per (model, layer, channel, steps, options), so a
filter asked for again, or already done by a grid, is shown at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnlib.inspect import features as F
from cnnlib.inspect import visualize
from cnnlib.training.filter_grid import FilterGridJob, GridProgress
from ui import patches_view
from ui.features_session import ModelView
from ui.features_view import BAR_COLOR, show_png
from ui.image_input import show_image
from ui.state import KEEP

#: (model key, ``FilterGridJob``) of this session's grid, or absent.
GRID_JOB = "features_filter_grid"
#: Keys (model key, layer, channel, steps) of the filters asked for in this session.
ASKED = "features_filter_asked"
SEED = 0


def maximize_options(view: ModelView) -> dict[str, Any]:
    """``maximize_activation``'s input options for ``view``'s model: ImageNet models take 0–255
    pixels through their own ``preprocess_input`` (the same function object each time: it is
    part of the cache key); a model that scales its own input (``view.raw_pixels``) takes raw
    0–255 pixels; other models [0, 1]."""
    if view.preprocessing == "imagenet":
        from keras.applications import resnet50, vgg19

        fn = resnet50.preprocess_input if view.key == "resnet50" else vgg19.preprocess_input
        return {"input_range": (0.0, 255.0), "preprocess": fn}
    return {"input_range": (0.0, 255.0)} if view.raw_pixels else {}


def to_rgb(result: visualize.FilterImage) -> np.ndarray:
    """The contrast-stretched image as (H, W, 3) uint8 (grey images repeated to RGB)."""
    img = (result.stretched() * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]


def activation_figure(result: visualize.FilterImage) -> go.Figure:
    """The channel's mean activation after each step of gradient ascent."""
    fig = go.Figure(
        go.Scatter(
            x=list(range(len(result.activations))),
            y=list(result.activations),
            mode="lines",
            line=dict(color=BAR_COLOR),
            hovertemplate="step %{x}: %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=240,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title="step",
        yaxis_title="mean activation",
    )
    return fig


def _layer_ui(view: ModelView, current: F.LayerInfo) -> str | None:
    names, behind = view.conv_layers(current)
    if not names:
        st.info("This model has no Conv2D layer, so it has no filters to maximise.")
        return None
    return st.selectbox(
        "Conv layer",
        names,
        index=behind,
        format_func=lambda n: view.layer(n).label,
        key=f"fm_wants_layer_{view.key}_{current.name}",
        **KEEP,
    )


def wants_tab(view: ModelView, acts: F.ActivationSet, current: F.LayerInfo) -> None:
    """The tab: one filter live for this session's models, a background grid for shared ones;
    beside it, the real image patches that excite the filter most."""
    st.markdown(
        "Start from a grey image and change it, step by step, in the direction that raises the "
        "filter's mean response (gradient ascent, with a little jitter and blur so the pattern "
        "stays smooth). What comes out is the pattern the filter is looking for."
    )
    layer = _layer_ui(view, current)
    if layer is None:
        return
    if view.shared is None:
        channel = one_filter_ui(view, acts, layer)
    else:
        grid_ui(view, acts, layer)
        channel = None
    top = F.top_channel(acts.stats(layer)) if layer in acts else 0
    patches_view.patches_section(view, layer, channel, default=top)


def one_filter_ui(view: ModelView, acts: F.ActivationSet, layer: str) -> int:
    """One channel, maximised when asked (seconds on a small model), then shown; returns
    the channel."""
    n = view.layer(layer).channels
    top = F.top_channel(acts.stats(layer)) if layer in acts else 0
    c1, c2 = st.columns(2)
    channel = c1.number_input(
        f"Filter (0 to {n - 1})", 0, n - 1, top, key=f"fm_wants_channel_{view.key}_{layer}", **KEEP
    )
    steps = c2.slider("Steps", 10, 200, 40, 10, key="fm_wants_steps", **KEEP)
    asked: set = st.session_state.setdefault(ASKED, set())
    key = (view.key, layer, int(channel), int(steps))
    if st.button("Show what this filter wants to see", key="fm_wants_run"):
        asked.add(key)
    if key not in asked:
        st.caption(f"Channel {top} is this layer's top activating channel for the current image.")
        return int(channel)
    with st.spinner(f"Maximising filter {channel} of {layer}…"):
        result = visualize.maximize_activation(
            view.runner, layer, int(channel), steps=int(steps), seed=SEED, **maximize_options(view)
        )
    left, right = st.columns([1, 2])
    with left:
        show_image(
            to_rgb(result),
            width=200,
            alt=f"The image filter {result.channel} of {layer} responds to most, found in "
            f"{result.steps} steps from a grey image (contrast stretched).",
        )
        st.caption(
            f"Filter {result.channel} of {layer} after {result.steps} steps "
            f"({result.seconds:.1f} s), contrast stretched."
        )
    with right:
        a = result.activations
        st.plotly_chart(
            activation_figure(result),
            key="fm_wants_curve",
            alt=f"Line chart of the filter's mean activation at each of the {len(a) - 1} steps, "
            f"from {a[0]:.4g} to {a[-1]:.4g}.",
        )
        st.caption(f"Its mean activation went from {a[0]:.4g} (grey image) to {a[-1]:.4g}.")
    return int(channel)


def grid_ui(view: ModelView, acts: F.ActivationSet, layer: str) -> None:
    """A grid of a large model's filters, filled in the background."""
    info = view.layer(layer)
    c1, c2, c3 = st.columns(3)
    count = c1.number_input("Filters", 2, 16, 8, key="fm_grid_count", **KEEP)
    steps = c2.slider("Steps per filter", 5, 100, 20, 5, key="fm_grid_steps", **KEEP)
    budget = c3.slider("Time limit (s)", 10, 300, 120, 10, key="fm_grid_seconds", **KEEP)
    order = F.channel_order(acts.stats(layer)) if layer in acts else np.arange(info.channels)
    channels = [int(c) for c in order[: int(count)]]
    st.caption(
        f"The {len(channels)} most active filters of {layer} for the current image, "
        f"{steps} steps each; the grid keeps what is done when the time limit comes."
    )
    if st.button(f"Fill a grid of {len(channels)} filters", key="fm_grid_start"):
        stop_grid()
        job = FilterGridJob(
            view.runner,
            layer,
            channels,
            steps=int(steps),
            seed=SEED,
            max_seconds=float(budget),
            **maximize_options(view),
        )
        st.session_state[GRID_JOB] = (view.key, job.start())
    kept = st.session_state.get(GRID_JOB)
    if kept is not None and kept[0] != view.key:
        stop_grid()  # another model's grid: its work would never be seen
    if kept is None or kept[0] != view.key:
        return
    if kept[1].done:
        show_grid(kept[1].snapshot())
    else:
        _grid_progress()


def stop_grid() -> None:
    """Stop this session's grid job, if any (a new one replaces it)."""
    kept = st.session_state.pop(GRID_JOB, None)
    if kept is not None:
        kept[1].stop()


@st.fragment(run_every=1.0)
def _grid_progress() -> None:
    kept = st.session_state.get(GRID_JOB)
    if kept is None:
        return
    snap = kept[1].snapshot()
    if snap.done:
        st.rerun(scope="app")
    if snap.state == "queued":
        where = f" (position {snap.queue_position})" if snap.queue_position else ""
        text = f"Waiting for a free slot on the server{where}…"
    else:
        text = (
            f"{snap.filters_done} of {snap.total} filters of {snap.layer} · "
            f"{snap.elapsed_seconds:.0f} s of at most {snap.max_seconds:.0f} s"
        )
    st.progress(snap.fraction, text=text)
    if st.button("Stop", key="fm_grid_stop"):
        kept[1].stop()
    show_grid(snap)


def show_grid(snap: GridProgress) -> None:
    """The filters done so far, labelled with their channel, and how the job ended."""
    if snap.error:
        st.error(snap.error, icon="⚠️")
    if snap.done:
        ended = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed"}[snap.state]
        st.caption(
            f"{'Time limit reached' if snap.message else ended}: {snap.filters_done} of "
            f"{snap.total} filters in {snap.elapsed_seconds:.0f} s."
        )
    if not snap.images:
        return
    done = [c for c in snap.channels if c in snap.images]
    tiles = [to_rgb(snap.images[c]) for c in done]
    grid = F.tile_grid(tiles, [f"filter {c}" for c in done], columns=8, tile_px=112)
    show_png(
        grid,
        f"What each filter of {snap.layer} wants to see (contrast stretched).",
        alt=f"Grid of {len(done)} images, each labelled with its filter of {snap.layer}: the "
        "image that filter responds to most (contrast stretched).",
    )
