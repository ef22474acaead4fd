"""Train on your own images, tab ④ "Try it & export": the trained model on a new photo (its
prediction and the Grad-CAM that explains it, on the same resized pixels), and the model,
its labels and a prediction script to download."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.text import safe_text
from cnnlib.inspect.saliency import saliency_map
from cnnlib.training import transfer
from ui import alt_text, training_view
from ui import own_images_session as session
from ui import own_images_view as view
from ui.image_input import pick_images, show_image


def try_ui(tested: session.OwnTested | None) -> None:
    """A new photo: the prediction with its probabilities, and Grad-CAM on it."""
    if tested is None:
        st.info("Train a model (tab ②) to try it on a new photo.", icon="ℹ️")
        return
    picked = pick_images("own_photo")
    if not picked:
        return
    model, names = tested.result.model, tested.result.class_names
    image = picked[0].image
    predictions = transfer.predict_image(model, image, names)
    left, right = st.columns(2)
    with left:
        show_image(
            image,
            caption=safe_text(picked[0].label),
            width=280,
            alt=alt_text.photo(f"Your photo {alt_text.plain(picked[0].label)}", image),
        )
    with right:
        view.show_prediction(predictions, transfer.confidence_sentence(predictions))
    x = transfer.model_input(model, image)  # the pixels the prediction saw
    best = names.index(predictions[0][0])
    cam = saliency_map(model, x, best, method="gradcam")
    view.show_grad_cam(x.astype("uint8"), cam, predictions[0][0])


def export_ui(tested: session.OwnTested | None) -> None:
    if tested is None:
        return
    st.subheader("Export")
    st.caption(
        "The .keras model takes raw pixels (its preprocessing is inside); the labels file "
        "lists the classes in output order; the script predicts one photo."
    )
    model, names = tested.result.model, tested.result.class_names
    c = st.columns(3)
    with c[0]:
        training_view.download_model(
            model, "own_images_model.keras", key="own_download_model", label="Model (.keras)"
        )
    c[1].download_button(
        "Labels (labels.txt)",
        transfer.labels_text(names),
        file_name="labels.txt",
        on_click="ignore",
        key="own_download_labels",
    )
    c[2].download_button(
        "Python snippet (predict.py)",
        transfer.prediction_snippet(model),
        file_name="predict.py",
        on_click="ignore",
        key="own_download_snippet",
    )
