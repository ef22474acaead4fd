"""Drawing the own-images page's threshold explorer ("I don't know") and its map of the data.

- ``threshold_figure``: coverage and accuracy of the answers as the confidence threshold
  moves (``cnnlib.training.thresholds.ThresholdCurve``), the chosen threshold marked;
- ``show_threshold_effect``: what the chosen threshold does to each class
  (``ThresholdEffect``): answered right, answered wrong, "not sure";
- ``data_map_figure``: the 2-D PCA of the classifier's features
  (``cnnlib.inspect.data_map.FeatureMap``), one colour per class, mistakes marked, each point
  clickable (its index in ``customdata``).

Class names come from uploads: plotly labels and table cells get ``plain_label``, markdown
``safe_text``. Every number comes from cnnlib; nothing here computes one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnlib.core.text import safe_text
from ui import alt_text, figures
from ui.figures import plain_label
from ui.image_input import show_image

#: One colour per class (plotly's qualitative "D3"; repeats after 10 classes).
CLASS_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def lr_figure(test) -> go.Figure:
    """A range test (``cnnlib.training.lr_finder.RangeTest``): each batch's loss (faint)
    and its moving average against the learning rate (log scale), the suggested rate and
    the rate at the lowest loss marked."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=test.rates,
            y=test.losses,
            name="loss of each batch",
            mode="lines",
            line={"color": "#9aa5b1", "width": 1},
            hovertemplate="rate %{x:.2g}: loss %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=test.rates,
            y=test.smoothed,
            name="smoothed loss",
            mode="lines",
            line={"color": "#1f77b4", "width": 3},
            hovertemplate="rate %{x:.2g}: smoothed loss %{y:.3f}<extra></extra>",
        )
    )
    fig.add_vline(x=test.suggested, line_dash="dash", line_color="#2ca02c")
    fig.add_vline(x=test.minimum_rate, line_dash="dot", line_color="#d62728")
    finite = test.smoothed[np.isfinite(test.smoothed)]
    top = float(min(finite.max(), 3 * finite.min() + 1e-9)) if finite.size else 1.0
    fig.update_xaxes(type="log", title_text="learning rate (log scale)")
    fig.update_yaxes(title_text="training loss", range=[0, 1.1 * top])
    fig.update_layout(
        height=300,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def _percent(x: float) -> str:
    return "—" if np.isnan(x) else f"{x:.1%}"


def lr_rows(test) -> dict[str, list]:
    """The range test's numbers, one row per batch: rate, loss, smoothed loss."""
    return {
        "batch": list(range(1, len(test.rates) + 1)),
        "learning rate": [f"{r:.3g}" for r in test.rates],
        "loss": [f"{v:.4g}" for v in test.losses],
        "smoothed loss": [f"{v:.4g}" for v in test.smoothed],
    }


#: Rows of the threshold curve's table: every threshold that is a multiple of this.
THRESHOLD_STEP = 0.05


def threshold_rows(curve) -> dict[str, list]:
    """The threshold curve's numbers every ``THRESHOLD_STEP``: threshold, images answered,
    coverage and accuracy (of the answered)."""
    t = np.asarray(curve.thresholds)
    keep = np.isclose(t / THRESHOLD_STEP, np.round(t / THRESHOLD_STEP)) | (t == t.max())
    coverage, accuracy = curve.coverage, curve.accuracy
    return {
        "threshold": [f"{x:.2f}" for x in t[keep]],
        "answered": [f"{int(n)} of {curve.total}" for n in curve.answered[keep]],
        "coverage": [_percent(x) for x in coverage[keep]],
        "accuracy": [_percent(x) for x in accuracy[keep]],
    }


def data_map_rows(
    points: np.ndarray, labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]
) -> dict[str, list]:
    """One row per image of the map: its number, true class, the model's answer, its two
    coordinates and whether it is a mistake."""
    return {
        "image": list(range(len(labels))),
        "true class": [str(class_names[int(k)]) for k in labels],
        "answer": [str(class_names[int(k)]) for k in predictions],
        "direction 1": [f"{v:.3g}" for v in points[:, 0]],
        "direction 2": [f"{v:.3g}" for v in points[:, 1]],
        "mistake": ["yes" if a != b else "" for a, b in zip(labels, predictions, strict=True)],
    }


def threshold_figure(curve, threshold: float) -> go.Figure:
    """Coverage (share of images answered) and accuracy of those answers against the
    threshold; a dashed line at ``threshold``."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=curve.thresholds,
            y=curve.coverage,
            name="coverage (share answered)",
            mode="lines",
            line={"color": "#1f77b4", "width": 3},
            hovertemplate="threshold %{x:.2f}: answers %{y:.1%} of the images<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=curve.thresholds,
            y=curve.accuracy,
            name="accuracy of the answers",
            mode="lines",
            line={"color": "#d62728", "width": 3, "dash": "dot"},
            hovertemplate="threshold %{x:.2f}: %{y:.1%} of its answers right<extra></extra>",
        )
    )
    fig.add_vline(x=threshold, line_dash="dash", line_color="#555")
    fig.update_xaxes(title_text="confidence threshold", range=[0, 1])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def show_threshold_summary(effect, images: str) -> None:
    """The chosen threshold's coverage, accuracy and "not sure" count, overall."""
    c = st.columns(3)
    c[0].metric("Answered", f"{effect.overall_coverage:.1%}")
    accuracy = effect.overall_accuracy
    c[1].metric("Accuracy of the answers", "—" if np.isnan(accuracy) else f"{accuracy:.1%}")
    c[2].metric(f"“Not sure” ({images})", f"{int(effect.not_sure.sum()):,}")


def show_threshold_effect(effect, class_names: Sequence[str]) -> None:
    """Per true class: answered right, answered wrong and "not sure", as stacked bars and
    as a table."""
    labels = [plain_label(c) for c in class_names]
    fig = go.Figure()
    for name, counts, color in (
        ("right", effect.correct, "#2ca02c"),
        ("wrong", effect.wrong, "#d62728"),
        ("not sure", effect.not_sure, "#9aa5b1"),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=np.asarray(counts),
                name=name,
                marker_color=color,
                hovertemplate=f"%{{x}}: %{{y}} {name}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        height=300,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.12},
    )
    fig.update_xaxes(type="category", title_text="true class")
    fig.update_yaxes(title_text="images")
    parts = ", ".join(
        f"{plain_label(c)}: {int(r)} right, {int(w)} wrong, {int(n)} not sure"
        for c, r, w, n in zip(
            class_names, effect.correct, effect.wrong, effect.not_sure, strict=True
        )
    )
    st.plotly_chart(
        fig,
        key="own_threshold_effect",
        alt=f"Stacked bars per class at threshold {effect.threshold:.2f}: {parts}.",
    )
    figures.table_view(
        [
            {
                "Class": label,
                "Images": int(t),
                "Right": int(r),
                "Wrong": int(w),
                "Not sure": int(n),
                "Answered": "—" if np.isnan(cov) else f"{cov:.0%}",
            }
            for label, t, r, w, n, cov in zip(
                labels,
                effect.total,
                effect.correct,
                effect.wrong,
                effect.not_sure,
                effect.coverage,
                strict=True,
            )
        ],
        alt=f"Answers per class at threshold {effect.threshold:.2f}",
    )


def show_not_sure(best: str, probability: float, threshold: float) -> None:
    """The prediction panel's "I don't know": the best guess is below the threshold."""
    st.warning(
        f"**Not sure.** The best guess, {safe_text(best, 60)}, has {probability:.1%} "
        f"confidence, below your threshold of {threshold:.0%} (tab ⑤).",
        icon=":material/help:",
    )


def data_map_figure(
    points: np.ndarray,
    explained: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    class_names: Sequence[str],
) -> go.Figure:
    """One marker per image at its 2-D PCA coordinates (``points`` (N, 2)), coloured by its
    true class; mistakes drawn as crosses; ``customdata`` holds each image's index."""
    fig = go.Figure()
    names = [plain_label(c) for c in class_names]
    for k, name in enumerate(names):
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        for wrong in (False, True):
            idx = np.flatnonzero((labels == k) & ((predictions != labels) == wrong))
            if not len(idx):
                continue
            fig.add_trace(
                go.Scatter(
                    x=points[idx, 0],
                    y=points[idx, 1],
                    mode="markers",
                    name=f"{name} (mistake)" if wrong else name,
                    legendgroup=name,
                    marker={
                        "color": color,
                        "size": 13 if wrong else 9,
                        "symbol": "x" if wrong else "circle",
                        "line": {"color": "#222", "width": 1.5 if wrong else 0.5},
                    },
                    customdata=np.stack([idx, predictions[idx]], axis=1),
                    text=[names[int(p)] for p in predictions[idx]],
                    hovertemplate=f"{name}, read as %{{text}}<extra>#%{{customdata[0]}}</extra>",
                )
            )
    fig.update_xaxes(title_text=f"direction 1 ({explained[0]:.0%} of the variation)")
    fig.update_yaxes(title_text=f"direction 2 ({explained[1]:.0%} of the variation)")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def selected_image(event) -> int | None:
    """The index of the image clicked on ``data_map_figure``'s chart, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = [data.get("0")]
        if data is not None and len(data) and data[0] is not None:
            return int(data[0])
    return None


def show_map_image(image: np.ndarray, true: str, predicted: str, probability: float) -> None:
    """The image of a clicked point, with its true class and the model's answer."""
    st.markdown(
        f"**{safe_text(true, 60)}**, read as **{safe_text(predicted, 60)}** ({probability:.0%})"
    )
    show_image(
        image,
        width=160,
        alt=alt_text.photo(
            f"Validation image of class {alt_text.plain(true, 40)}, read as "
            f"{alt_text.plain(predicted, 40)} with probability {probability:.0%}",
            image,
        ),
    )
