"""Train on your own images, tab ④ "Try it & export": the trained model on a new photo (its
prediction and the Grad-CAM that explains it, on the same resized pixels). The exports are
``own_images_export``."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.text import safe_text
from cnnlib.inspect.saliency import saliency_map
from cnnlib.training import transfer
from ui import alt_text
from ui import own_images_explore_view as explore_view
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
        best, probability = predictions[0]
        if probability < session.threshold():
            explore_view.show_not_sure(best, probability, session.threshold())
        view.show_prediction(predictions, transfer.confidence_sentence(predictions))
    x = transfer.model_input(model, image)  # the pixels the prediction saw
    best = names.index(predictions[0][0])
    cam = saliency_map(model, x, best, method="gradcam")
    view.show_grad_cam(x.astype("uint8"), cam, predictions[0][0])
