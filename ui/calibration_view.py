"""Calibration on a page: is the model's 93 % confidence right 93 % of the time? Draws a
``cnnlib.inspect.calibration.CalibrationReport``: the reliability diagram of the test set
before and after temperature scaling, the expected calibration error (ECE), T and the
negative log-likelihood, and each bin's numbers. Computes nothing.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnlib.inspect.calibration import CalibrationReport, Reliability
from ui.figures import PlainFigure, plain

#: Colour-blind-safe colours (Okabe–Ito): the accuracy bars, the gap to the diagonal.
BAR, GAP = "#0072B2", "#D55E00"


def reliability_figure(rel: Reliability, title: str) -> dict:
    """Per bin of the top probability: the share of correct answers (bars), the gap to the
    bin's mean confidence (shaded) and the diagonal of a perfectly calibrated model."""
    centres = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = float(rel.edges[1] - rel.edges[0])
    filled = rel.count > 0
    acc = np.where(filled, rel.accuracy, 0.0)
    conf = np.where(filled, rel.confidence, 0.0)
    hover = [
        f"confidence {lo:.1f}–{hi:.1f}: {n:,} images<br>mean confidence {c:.1%}, accuracy {a:.1%}"
        if n
        else f"confidence {lo:.1f}–{hi:.1f}: no image"
        for lo, hi, n, c, a in zip(rel.edges[:-1], rel.edges[1:], rel.count, conf, acc, strict=True)
    ]
    bars = {
        "type": "bar",
        "x": centres.tolist(),
        "y": acc.tolist(),
        "width": width * 0.95,
        "name": "accuracy",
        "marker": {"color": BAR},
        "hovertext": hover,
        "hovertemplate": "%{hovertext}<extra></extra>",
    }
    gap = {
        "type": "bar",
        "x": centres[filled].tolist(),
        "y": (conf - acc)[filled].tolist(),
        "base": acc[filled].tolist(),
        "width": width * 0.95,
        "name": "gap to its confidence",
        "marker": {"color": GAP, "opacity": 0.45, "pattern": {"shape": "/"}},
        "hoverinfo": "skip",
    }
    diagonal = {
        "type": "scatter",
        "mode": "lines",
        "x": [0, 1],
        "y": [0, 1],
        "name": "perfectly calibrated",
        "line": {"color": "#555555", "dash": "dash", "width": 1},
        "hoverinfo": "skip",
    }
    return {
        "data": [bars, gap, diagonal],
        "layout": {
            "title": {"text": title, "font": {"size": 14}},
            "height": 340,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "barmode": "overlay",
            "xaxis": {"title": {"text": "confidence (top probability)"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "accuracy"}, "range": [0, 1]},
            "legend": {"orientation": "h", "y": -0.25},
        },
    }


def _alt(rel: Reliability, what: str) -> str:
    filled = [
        f"{lo:.1f}–{hi:.1f}: {n:,} images, confidence {c:.0%}, accuracy {a:.0%}"
        for lo, hi, n, c, a in zip(
            rel.edges[:-1], rel.edges[1:], rel.count, rel.confidence, rel.accuracy, strict=True
        )
        if n
    ]
    return (
        f"Reliability diagram {what}: accuracy per confidence bin against the diagonal of a "
        f"perfectly calibrated model; ECE {rel.ece:.2%}. Bins: " + "; ".join(filled) + "."
    )


def _bins(rel: Reliability) -> dict[str, list]:
    """Each non-empty bin's numbers, for the table under the diagrams."""
    rows = [i for i in range(rel.bins) if rel.count[i]]
    return {
        "confidence bin": [f"{rel.edges[i]:.1f}–{rel.edges[i + 1]:.1f}" for i in rows],
        "images": [int(rel.count[i]) for i in rows],
        "mean confidence": [f"{rel.confidence[i]:.1%}" for i in rows],
        "accuracy": [f"{rel.accuracy[i]:.1%}" for i in rows],
    }


def _chart(rel: Reliability, title: str, what: str, key: str) -> None:
    st.plotly_chart(
        PlainFigure(plain(reliability_figure(rel, title))),
        key=key,
        config={"displaylogo": False},
        alt=_alt(rel, what),
    )


def show_intro(images: str = "test images") -> None:
    """The section's heading and what calibration and the ECE are, for ``images`` (what the
    diagrams sort: "test images")."""
    st.subheader("Calibration: is its confidence right?")
    st.markdown(
        f"When the model says it is 90 % sure, is it right 9 times out of 10? Sort the {images} "
        "by the model's confidence (its top probability) into bins, and compare each "
        "bin's accuracy with its confidence: on the diagonal, the model is **calibrated**. "
        "The **expected calibration error** (ECE) is the average gap, weighted by how many "
        "images each bin holds (Guo et al., ICML 2017)."
    )


def show_calibration(report: CalibrationReport, *, key: str, on_validation: bool = False) -> None:
    """The report: the numbers in a row, the two reliability diagrams, each bin's numbers.
    ``on_validation``: the diagrams are of the validation images (no test set), the very
    images T was fitted on; the caption says so."""
    before, after, t = report.before, report.after, report.temperature
    c = st.columns(4)
    c[0].metric("Expected calibration error", f"{before.ece:.2%}")
    mean = f"{before.confidence_all:.1%} / {before.accuracy_all:.1%}"
    c[1].metric("Mean confidence / accuracy", mean)
    if after is not None and t is not None:
        c[2].metric("Temperature T (fitted on validation)", f"{t:.3g}")
        c[3].metric(
            "ECE after temperature scaling",
            f"{after.ece:.2%}",
            delta=f"{100 * (after.ece - before.ece):+.2f} points",
            delta_color="inverse",
        )
    n = f"{report.test_count:,} {'validation' if on_validation else 'test'} images"
    left, right = st.columns(2)
    with left:
        _chart(before, f"As trained: ECE {before.ece:.2%}", f"of the {n} as trained", f"{key}_b")
    if after is not None and t is not None:
        with right:
            _chart(
                after,
                f"Divided by T = {t:.3g}: ECE {after.ece:.2%}",
                f"of the {n} after temperature scaling (T = {t:.3g})",
                f"{key}_a",
            )
        nll = (
            f"The mean negative log-likelihood of the {n} goes from {report.nll_before:.4f} to "
            f"{report.nll_after:.4f} nats."
        )
        if on_validation:
            nll += (
                " These diagrams use the same validation images T was fitted on (there is no "
                "test set), so the figures after scaling are not an honest test of it: a "
                "held-out test set gives one."
            )
        st.caption(
            f"Temperature scaling divides the model's logits by one number T before the "
            f"softmax, fitted to the {report.validation_count:,} validation images (never the "
            f"test set): T > 1 makes an over-confident model less sure, T < 1 an under-confident "
            f"one surer. The predicted class never changes, so the accuracy stays the same. {nll}"
        )
    else:
        with right:
            st.info(
                "Temperature scaling is fitted on the validation images: train with a "
                "validation split above 0 to see it.",
                icon="ℹ️",
            )
    st.table(
        _bins(before),
        hide_index=True,
        alt=f"Each confidence bin of the {n} as trained: images, mean confidence, accuracy.",
    )
