"""Drawing the own-images page's held-out test: the test accuracy beside the validation
score with the gap explained, per-class precision and recall, and the most-confused pairs
with their images. (The confusion matrix is the results tab's, drawn by ``ui.training_view``.)

Class names come from uploads: markdown gets ``safe_text``, plotly labels and table cells
``plain_label``. Every number comes from ``cnnlib.training.evaluation.HeldOutTest``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnlib.core.text import safe_text
from cnnlib.training.evaluation import most_confused_pairs
from ui import alt_text, figures
from ui.figures import plain_label
from ui.own_images_view import gallery

#: Images shown for each most-confused pair.
PAIR_IMAGES = 8


def _percent(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.1%}"


def show_test_summary(result) -> None:
    """Test accuracy, validation accuracy, test images and mistakes of an
    ``OwnTestResult``, and the sentence that explains the gap between them."""
    t = result.test
    evaluation = t.evaluation
    c = st.columns(4)
    gap = round(-100 * t.gap, 1)
    c[0].metric(
        "Test accuracy",
        f"{t.accuracy:.1%}",
        delta=f"{gap:+.1f} points vs validation" if gap else None,
        delta_color="normal",
    )
    c[1].metric("Validation accuracy", f"{t.validation_accuracy:.1%}")
    c[2].metric("Test images", f"{len(evaluation.labels):,}")
    c[3].metric("Mistakes", f"{int((evaluation.predictions != evaluation.labels).sum()):,}")
    st.caption(f"Tested on {result.source}.")
    st.info(t.explanation, icon=":material/balance:")


def precision_recall_figure(precision, recall, class_names: Sequence[str]) -> go.Figure:
    """Grouped bars: each class's precision and recall (NaN drawn as 0)."""
    labels = [plain_label(c) for c in class_names]
    fig = go.Figure()
    for name, values, color in (
        ("precision", precision, "#1f77b4"),
        ("recall", recall, "#ff7f0e"),
    ):
        v = np.nan_to_num(np.asarray(values, np.float64), nan=0.0)
        fig.add_trace(
            go.Bar(
                x=labels,
                y=v,
                name=name,
                marker_color=color,
                text=[format(float(x), ".0%") for x in v],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"%{{x}}: {name} %{{y:.1%}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        height=300,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.12},
    )
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="on the test images")
    fig.update_xaxes(type="category", title_text="class")
    return fig


def show_precision_recall(result, class_names: Sequence[str]) -> None:
    """Per class: its test images, precision and recall, as bars and as a table."""
    t = result.test
    st.markdown(
        "**Per class on the test images.** *Precision*: of the images the model called "
        "this class, the share that are. *Recall*: of this class's images, the share it "
        "found."
    )
    counts = t.evaluation.confusion.sum(axis=1)
    plain = ", ".join(
        f"{plain_label(c)}: precision {_percent(p)}, recall {_percent(r)}"
        for c, p, r in zip(class_names, t.precision, t.recall, strict=True)
    )
    st.plotly_chart(
        precision_recall_figure(t.precision, t.recall, class_names),
        key="own_test_precision_recall",
        alt=f"Bar chart of precision and recall per class on the test images: {plain}.",
    )
    table = [
        {
            "Class": plain_label(c),
            "Test images": int(n),
            "Precision": _percent(p),
            "Recall": _percent(r),
        }
        for c, n, p, r in zip(class_names, counts, t.precision, t.recall, strict=True)
    ]
    figures.table_view(table, alt="Test images, precision and recall per class")


def show_confused_pairs(result, class_names: Sequence[str], *, top: int = 3) -> None:
    """The most-confused pairs of classes on the test images, each with its images."""
    evaluation = result.test.evaluation
    pairs = most_confused_pairs(evaluation.confusion, top=top)
    st.markdown("**Most-confused pairs on the test images**")
    if not pairs:
        st.success("No class was mistaken for another on the test images.")
        return
    for pair in pairs:
        st.caption(
            f"{safe_text(class_names[pair.true])} read as "
            f"{safe_text(class_names[pair.predicted])}: {pair.count} image(s)"
        )
        shown = evaluation.cell(pair.true, pair.predicted)[:PAIR_IMAGES]
        gallery(
            [result.x[i] for i in shown],
            [f"{evaluation.probabilities[i, pair.predicted]:.0%}" for i in shown],
            [
                f"Test image of class {alt_text.plain(class_names[pair.true], 40)}, read as "
                f"{alt_text.plain(class_names[pair.predicted], 40)} with probability "
                f"{evaluation.probabilities[i, pair.predicted]:.0%}"
                for i in shown
            ],
        )
