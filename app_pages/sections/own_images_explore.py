"""Train on your own images, tab ⑤: an honest "I don't know" (a confidence threshold explored
on the validation or test predictions, then used by the prediction panel and the exported
script) and a map of the data as the model sees it (a 2-D PCA of its classifier's features,
mistakes marked, click a point to see its image)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnlib.training.thresholds import threshold_curve, threshold_effect, threshold_for_accuracy
from ui import figures
from ui import own_images_explore_view as explore_view
from ui import own_images_session as session
from ui.state import KEEP

#: Accuracies the explorer offers a threshold for.
TARGETS = (0.9, 0.95, 0.99)


def threshold_ui(tested: session.OwnTested | None) -> None:
    st.subheader("An honest “I don't know”")
    st.caption(
        "A model always picks a class, even for a photo of none of them. With a confidence "
        "threshold it answers only when its top probability reaches it, and says “not sure” "
        "otherwise: fewer answers, more of them right. The threshold you choose here is used "
        "by the prediction in tab ④ and by the exported predict.py."
    )
    if tested is None:
        st.info("Train a model (tab ②) to explore its confidence.", icon="ℹ️")
        return
    sets = session.prediction_sets(tested)
    if not sets:
        st.info("There are no validation images to explore: raise the validation split.")
        return
    which = st.radio("On", tuple(sets), horizontal=True, key="own_threshold_on")
    evaluation = sets[which]
    curve = threshold_curve(evaluation.probabilities, evaluation.labels)
    chosen = st.slider(
        "Confidence threshold",
        0.0,
        0.99,
        0.0,
        0.01,
        key=session.THRESHOLD,
        help="0 = always answer.",
        **KEEP,
    )
    st.plotly_chart(
        explore_view.threshold_figure(curve, chosen),
        key="own_threshold_curve",
        alt=f"Line chart of coverage and accuracy against the confidence threshold on the "
        f"{len(evaluation.labels)} {which}; the chosen threshold {chosen:.2f} is marked.",
    )
    figures.table_view(
        explore_view.threshold_rows(curve), alt=f"Coverage and accuracy by threshold, {which}"
    )
    suggestions = []
    for target in TARGETS:
        t = threshold_for_accuracy(curve, target)
        if t is not None:
            i = int(np.flatnonzero(curve.thresholds == t)[0])
            suggestions.append(
                f"{target:.0%} accurate answers from a threshold of {t:.2f} "
                f"(answers {curve.coverage[i]:.0%} of the images)"
            )
    if suggestions:
        st.caption("On these images: " + "; ".join(suggestions) + ".")
    effect = threshold_effect(evaluation.probabilities, evaluation.labels, chosen)
    explore_view.show_threshold_summary(effect, which)
    explore_view.show_threshold_effect(effect, tested.result.class_names)


def data_map_ui(tested: session.OwnTested | None) -> None:
    st.subheader("A map of your data, as the model sees it")
    st.caption(
        "Each dot is a validation image, placed by the features the model's last layer reads "
        "(projected to 2-D with PCA: the two directions along which they vary most). Images "
        "the model finds alike land close together; where two classes overlap it confuses "
        "them. Crosses are mistakes. Click a dot to see its image."
    )
    if tested is None or tested.result.evaluation is None:
        st.info("Train a model with validation images (tab ②) to map them.", icon="ℹ️")
        return
    data_map_chart(tested)


@st.fragment
def data_map_chart(tested: session.OwnTested) -> None:
    result = tested.result
    evaluation, names = result.evaluation, result.class_names
    feature_map = session.data_map(tested)
    event = st.plotly_chart(
        explore_view.data_map_figure(
            feature_map.points,
            feature_map.explained,
            evaluation.labels,
            evaluation.predictions,
            names,
        ),
        key=f"own_data_map_{tested.id}",
        on_select="rerun",
        selection_mode="points",
        alt=f"Scatter plot of the {len(evaluation.labels)} validation images on the two main "
        f"directions of the model's features ({feature_map.explained[0]:.0%} and "
        f"{feature_map.explained[1]:.0%} of the variation), coloured by class, mistakes as "
        "crosses.",
    )
    figures.table_view(
        explore_view.data_map_rows(
            feature_map.points, evaluation.labels, evaluation.predictions, names
        ),
        alt="Each validation image's place on the map",
    )
    index = explore_view.selected_image(event)
    if index is not None and 0 <= index < len(evaluation.labels):
        predicted = int(evaluation.predictions[index])
        explore_view.show_map_image(
            result.x[index],
            names[int(evaluation.labels[index])],
            names[predicted],
            float(evaluation.probabilities[index, predicted]),
        )
