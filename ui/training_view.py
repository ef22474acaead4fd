"""Drawing a training and its results: progress text, live curves, confusion matrix, galleries.

Figures are built from the result objects of ``cnnlib.training`` / ``cnnlib.evaluation`` /
``cnnlib.experiments``; nothing here computes a metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from cnnlib.evaluation import smooth_curve

LOSS_COLOR, ACC_COLOR, VAL_COLOR = "#1f77b4", "#2ca02c", "#d62728"


def _duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "…"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_line(p) -> str:
    """ "Epoch 2/3 · step 45/94 · 5,310 images/s · 12 s elapsed · about 8 s left"."""
    parts = [f"Epoch {max(p.epoch, 1)}/{p.epochs}"]
    if p.steps_per_epoch:
        parts.append(f"step {p.step}/{p.steps_per_epoch}")
    if p.images_per_second:
        parts.append(f"{p.images_per_second:,.0f} images/s")
    parts.append(f"{_duration(p.elapsed_seconds)} elapsed")
    if not p.done and p.eta_seconds is not None:
        parts.append(f"about {_duration(p.eta_seconds)} left")
    return " · ".join(parts)


def curves_figure(p, *, smoothing: float = 0.6) -> go.Figure:
    """Loss and accuracy against epochs: per-batch windows (faint), smoothed, and validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    x = list(p.batch_epoch)
    for col, values, color, name in (
        (1, p.batch_loss, LOSS_COLOR, "loss"),
        (2, p.batch_accuracy, ACC_COLOR, "accuracy"),
    ):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=list(values),
                mode="lines",
                line={"color": color, "width": 1},
                opacity=0.3,
                name=f"training {name} (per {p.batch_window} batch{'es' * (p.batch_window > 1)})",
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=smooth_curve(values, smoothing).tolist() if len(values) else [],
                mode="lines",
                line={"color": color, "width": 2},
                name=f"training {name} (smoothed)",
            ),
            row=1,
            col=col,
        )
    epochs = list(range(1, len(p.val_loss) + 1))
    for col, values, name in ((1, p.val_loss, "loss"), (2, p.val_accuracy, "accuracy")):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=list(values),
                mode="lines+markers",
                line={"color": VAL_COLOR, "width": 2, "dash": "dot"},
                marker={"size": 9},
                name=f"validation {name}",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        height=330,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        uirevision="curves",
    )
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Heatmap of counts (row = true, column = predicted) with a clickable point per cell.

    Each cell centre carries an (almost invisible) scatter marker whose ``customdata`` is
    [true, predicted], so a click or box selection reports the cell reliably.
    """
    k = len(class_names)
    labels = [str(c) for c in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(confusion).tolist(),
            x=labels,
            y=labels,
            colorscale="Blues",
            text=np.asarray(confusion).tolist(),
            texttemplate="%{text}",
            hoverinfo="skip",
            showscale=False,
        )
    )
    rows, cols = np.indices((k, k))
    fig.add_trace(
        go.Scatter(
            x=[labels[c] for c in cols.ravel()],
            y=[labels[r] for r in rows.ravel()],
            mode="markers",
            marker={"size": 28, "color": "rgba(0,0,0,0.01)", "symbol": "square"},
            customdata=np.stack([rows.ravel(), cols.ravel(), np.ravel(confusion)], axis=1).tolist(),
            hovertemplate="true %{y}, predicted %{x}: %{customdata[2]} images<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(title_text="predicted class", type="category", side="bottom")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
    # Plotly's default click and drag modes: Streamlit reports a clicked point as selected.
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def selected_cell(event) -> tuple[int, int] | None:
    """(true, predicted) of the cell selected in ``confusion_figure``'s chart, or None."""
    if not event:
        return None
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):  # a 2-D customdata row can arrive as {"0": …, "1": …}
            data = [data.get("0"), data.get("1")]
        if data is not None and len(data) >= 2 and None not in data[:2]:
            return int(data[0]), int(data[1])
    return None


def _share_bars(
    values: np.ndarray, labels: Sequence[str], colors, *, y_max: float, y_title: str, x_title: str
) -> go.Figure:
    """Bars of shares in [0, 1] with their percentages on top."""
    fig = go.Figure(
        go.Bar(
            x=[str(c) for c in labels],
            y=values,
            text=[f"{v:.1%}" for v in values],
            textposition="outside",
            marker_color=colors,
        )
    )
    fig.update_yaxes(range=[0, y_max], tickformat=".0%", title_text=y_title)
    fig.update_xaxes(type="category", title_text=x_title)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def per_class_figure(per_class: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Test accuracy of each class (NaN for a class with no test images shows as 0)."""
    values = np.nan_to_num(per_class, nan=0.0)
    return _share_bars(
        values, class_names, ACC_COLOR, y_max=1.1, y_title="test accuracy", x_title="true class"
    )


def probabilities_figure(probabilities: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """The 10 class probabilities, the most likely one highlighted."""
    best = int(np.argmax(probabilities))
    colors = [ACC_COLOR if i == best else "#9aa5b1" for i in range(len(probabilities))]
    return _share_bars(
        probabilities, class_names, colors, y_max=1.15, y_title="probability", x_title="class"
    )


def translation_figure(result) -> go.Figure:
    """Accuracy against shift, one line per model."""
    fig = go.Figure()
    palette = [VAL_COLOR, LOSS_COLOR, ACC_COLOR, "#9467bd"]
    for i, (name, accuracies) in enumerate(result.accuracies.items()):
        fig.add_trace(
            go.Scatter(
                x=list(result.shifts),
                y=accuracies,
                mode="lines+markers",
                name=f"{name} ({result.parameters[name]:,} parameters)",
                line={"color": palette[i % len(palette)], "width": 3},
                marker={"size": 8},
            )
        )
    fig.add_hline(y=0.1, line_dash="dot", line_color="#888", annotation_text="chance (10 %)")
    fig.update_xaxes(title_text="shift of the test digits (pixels)", dtick=1)
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], tickformat=".0%")
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """A small (H, W) image in [0, 1] enlarged by pixel repetition (sharp pixels on screen)."""
    return np.kron(np.clip(image, 0.0, 1.0), np.ones((factor, factor), dtype=np.float32))


def image_gallery(
    images: np.ndarray, captions: Sequence[str], *, columns: int = 8, factor: int = 3
) -> None:
    """A grid of (H, W) images (uint8 or [0, 1]) with captions."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(
            cols, images[start : start + columns], captions[start : start + columns], strict=False
        ):
            col.image(upscale(image, factor), caption=caption, clamp=True)
