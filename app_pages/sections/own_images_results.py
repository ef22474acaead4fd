"""Train on your own images, tab ③ "Results": validation accuracy, per class, the confusion
matrix with each cell's images, the most confident mistakes (each can be moved to another
class or left out, then retrained), and scratch vs transfer on the same data."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.text import safe_text
from ui import alt_text, training_view
from ui import own_images_session as session
from ui import own_images_view as view
from ui.image_input import show_image


def results_ui(tested: session.OwnTested | None, entry: session.OwnData | None) -> None:
    if tested is None:
        st.info("Train a model (tab ②) to see its validation results here.", icon="ℹ️")
        return
    result = tested.result
    view.show_registered(result.registered)
    evaluation = result.evaluation
    if evaluation is None:
        st.info("There were no validation images: raise the validation split.", icon="ℹ️")
        return
    c = st.columns(3)
    c[0].metric("Validation accuracy", f"{evaluation.accuracy:.1%}")
    c[1].metric("Validation images", f"{len(evaluation.labels):,}")
    c[2].metric("Mistakes", f"{int((evaluation.predictions != evaluation.labels).sum()):,}")
    view.show_per_class(evaluation, result.class_names)
    confusion_ui(tested)
    mistakes_ui(tested, entry)
    rows = session.comparison(tested)
    if len(rows) > 1:
        view.show_comparison(rows)


@st.fragment
def confusion_ui(tested: session.OwnTested) -> None:
    st.markdown(
        "**Confusion matrix** (row = true class, column = the model's answer). Click a cell "
        "to see its images."
    )
    result = tested.result
    evaluation, names = result.evaluation, result.class_names
    event = training_view.confusion_chart(
        evaluation.confusion, names, key=f"own_confusion_{tested.id}"
    )
    cell = training_view.selected_cell(event)
    if cell is not None:
        view.show_cell(evaluation, cell, result.x, names)


def mistakes_ui(tested: session.OwnTested, entry: session.OwnData | None) -> None:
    """The most confident mistakes; each can be moved to another class or left out."""
    st.markdown("**Most confident mistakes**: a wrong label in your data? Fix it, then retrain.")
    result = tested.result
    evaluation, names = result.evaluation, result.class_names
    worst = evaluation.confident_mistakes(6)
    if not len(worst):
        st.success("No mistakes on the validation images.")
        return
    editable = entry is not None and entry.folders.class_names == tuple(names)
    cols = st.columns(6)
    for col, i in zip(cols, worst, strict=False):
        true, pred = int(evaluation.labels[i]), int(evaluation.predictions[i])
        path = result.paths[i]
        with col:
            show_image(
                result.x[i],
                caption=f"{safe_text(names[true], 20)} → "
                f"{safe_text(names[pred], 20)} ({evaluation.probabilities[i, pred]:.0%})",
                alt=f"Validation image labelled {alt_text.plain(names[true], 40)}, read as "
                f"{alt_text.plain(names[pred], 40)} with probability "
                f"{evaluation.probabilities[i, pred]:.0%}",
            )
            if not editable or path not in {str(p) for p, _ in entry.folders.files}:
                continue
            st.caption(safe_text(entry.folders.source(path), 40))
            new = st.selectbox(
                "Class",
                range(len(names)),
                true,
                format_func=names.__getitem__,
                key=f"own_relabel_{tested.id}_{i}",
                label_visibility="collapsed",
            )
            if st.button("Move", key=f"own_move_{tested.id}_{i}", disabled=new == true):
                entry.folders.relabel(path, new)
                session.edited(entry)
                st.rerun()
            if st.button("Exclude", key=f"own_exclude_{tested.id}_{i}"):
                entry.folders.exclude(path)
                session.edited(entry)
                st.rerun()
    if entry is not None and entry.version:
        st.caption(
            f"{entry.version} change(s) to your data since it was uploaded: press Start "
            "(tab ②) to retrain on it."
        )
