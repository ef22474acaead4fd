"""Train on MNIST, tab ④ "Draw a digit": draw (or photograph) a digit, see it prepared the way
MNIST was made, and what the trained model reads in it."""

from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from cnnlib.core.errors import InvalidImageError
from cnnlib.core.text import safe_text
from cnnlib.data.digits import prepare_digit
from cnnlib.data.images import read_image
from cnnlib.data.training_data import as_images
from cnnlib.inspect.calibration import calibrated_probabilities
from cnnlib.training.evaluation import predict_probabilities
from ui import alt_text, state
from ui import mnist_session as session
from ui import training_view as view
from ui.image_input import pick_images, show_image
from ui.state import KEEP

#: The drawing canvas: white ink on black, as MNIST, 280 × 280 (10 × the digit).
CANVAS = dict(
    stroke_color="#FFFFFF",
    background_color="#000000",
    width=280,
    height=280,
    drawing_mode="freedraw",
    return_image_data=True,
)


def digit_ui():
    """Canvas or photo; returns the image (an RGBA or RGB PIL image), or None. The drawing
    comes from the browser as a PNG: it is decoded in the sandbox like any upload."""
    source = st.radio(
        "Digit", ("Draw", "Upload a photo"), horizontal=True, key="mnist_draw_or_upload", **KEEP
    )
    if source == "Draw":
        # Above the canvas: its toolbar floats over whatever sits right above it.
        width = st.slider("Pen width", 8, 40, 20, key="mnist_pen", **KEEP)
        result = st_canvas(stroke_width=width, key="mnist_canvas", **CANVAS)
        st.caption("Use the canvas toolbar to undo or clear.")
        drawing = result.image_bytes  # the PNG's bytes (base64 decoded, not parsed)
        if drawing is None:
            return None
        try:
            return read_image(drawing, name="The drawing", keep_alpha=True).image
        except InvalidImageError as err:
            st.error(str(err), icon="⚠️")
            return None
    picked = pick_images("mnist_photo", sources=("Upload", "Camera"))
    if not picked:
        return None
    show_image(
        picked[0].image,
        caption=safe_text(picked[0].label),
        width=240,
        alt=alt_text.photo("Your photo of a digit", picked[0].image),
    )
    return picked[0].image


@st.fragment
def draw_ui(run: session.MnistTested | None) -> None:
    """The tab (a fragment: drawing reruns only this); ``run``: the latest tested training."""
    st.markdown(
        "Draw a digit with the mouse (or upload a photo of one written on paper). It is "
        "prepared the way MNIST was made: grayscale, dark-on-light inverted to light-on-dark, "
        "cropped to its bounding box, scaled to fit 20 × 20 and centred by its centre of mass "
        "in 28 × 28."
    )
    left, right = st.columns([1, 2], gap="large")
    with left:
        image = digit_ui()
    with right:
        if image is None:
            st.info("Draw a digit in the black square (or upload a photo).", icon="✏️")
            return
        try:
            prepared = prepare_digit(image)
        except InvalidImageError as err:
            st.info(str(err), icon="✏️")
            return
        st.session_state[state.DRAWN_DIGIT] = prepared.digit
        c1, c2 = st.columns([1, 2])
        with c1:
            view.show_prepared_digit(prepared)
        trained = session.trained_model(run)
        with c2:
            if trained is None:
                st.info("Train a model (tab ② Train) to see what it reads in your digit.", icon="ℹ️")
                return
            probabilities = predict_probabilities(trained.model, prepared.pixels[None])[0]
            report = session.calibration(run)
            t = report.temperature if report is not None else None
            label = f"Calibrated probabilities (logits divided by T = {t:.3g})" if t else ""
            if t and st.toggle(label, key="mnist_draw_calibrated", **KEEP):
                x = as_images(prepared.pixels[None]).astype("float32")
                probabilities = calibrated_probabilities(trained.model, x, t)[0]
                st.caption(
                    "Temperature scaling from tab ③'s calibration: the same answer, with "
                    "a confidence that matches how often the model is right."
                )
            view.show_reading(probabilities, trained.class_names)
