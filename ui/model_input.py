"""What a model page looks at (Feature maps, Network overview): an uploaded ``.keras`` model,
and the image it runs the model on: a photo (sample,
upload or camera), the digit drawn on the MNIST page, or an image of the test set the model
was trained on; prepared exactly as that model expects (``ui.features_session.prepare_input``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from cnnlib.core.text import safe_text, shape_text
from cnnlib.data.mnist import CLASS_NAMES
from ui import alt_text, state
from ui import features_session as fs
from ui.datasets import load_for_page
from ui.errors import friendly_errors
from ui.image_input import pick_images, show_image
from ui.state import KEEP

PHOTO, DRAWN = "Photo (sample, upload or camera)", "Digit drawn on the MNIST page"
TEST = {
    "mnist": "Digit from the MNIST test set",
    "fashion_mnist": "Image from the Fashion-MNIST test set",
}


def input_ui(view: fs.ModelView, *, prefix: str) -> fs.PreparedInput | None:
    """The chosen image as a (1, H, W, C) batch for ``view``'s model, or None while there is
    none. ``prefix`` keeps each page's widgets apart (``<prefix>_input_…``, ``<prefix>_photo``,
    ``<prefix>_crop``, ``<prefix>_test_index_<dataset>``). Raises ``CNNLabError`` (e.g. no
    digit in a photo)."""
    drawn = st.session_state.get(state.DRAWN_DIGIT)
    fashion = view.class_names == tuple(CLASS_NAMES["fashion_mnist"])
    dataset = "fashion_mnist" if fashion else "mnist"  # the test set matching the model
    options = [PHOTO] + ([DRAWN] if drawn is not None else []) + [TEST[dataset]]
    default = PHOTO if view.preprocessing != "mnist" else options[min(1, len(options) - 1)]
    kind = st.radio(
        "Input",
        options,
        index=options.index(default),
        horizontal=True,
        key=f"{prefix}_input_{view.preprocessing}" + ("_fashion" if fashion else ""),
        **KEEP,
    )
    if kind == PHOTO:
        sample = "cat (chelsea)" if view.preprocessing != "mnist" else "coins"
        picked = pick_images(f"{prefix}_photo", default_sample=sample)
        if not picked:
            return None
        crop = view.preprocessing == "imagenet" and st.checkbox(
            "Centre-crop to a square first (keeps the aspect ratio)", key=f"{prefix}_crop", **KEEP
        )
        return fs.prepare_input(view, image=picked[0].image, crop=crop)
    if kind == DRAWN:
        return fs.prepare_input(view, digit=drawn)
    ds = load_for_page(dataset)
    if not ds.available:
        st.error(ds.error, icon="⚠️")
        return None
    n = len(ds.x_test)
    index = st.number_input(
        f"Test image number (0 to {n - 1:,})",
        0,
        n - 1,
        0,
        key=f"{prefix}_test_index_{dataset}",
        **KEEP,
    )
    what = "digit" if dataset == "mnist" else "image"
    st.caption(f"{ds.source}. This {what} is labelled **{ds.class_names[ds.y_test[index]]}**.")
    return fs.prepare_input(view, digit=ds.x_test[index].astype(np.float32) / 255.0)


def uploaded_model_ui(*, prefix: str, purpose: str) -> fs.ModelView | None:
    """A ``.keras`` upload (``<prefix>_model_upload``), read in the decoding sandbox and rebuilt
    from CNN Lab's own spec (``fs.load_uploaded_model``), as a view of this session; None
    until a file is chosen (the hint names ``purpose``). Raises ``InvalidModelError``."""
    file = st.file_uploader(
        "Upload a Keras model (.keras, e.g. saved from the MNIST page)",
        type=["keras"],
        key=f"{prefix}_model_upload",
    )
    if file is None:
        st.info(f"Upload a `.keras` file saved with `model.save(...)` to {purpose}.")
        return None
    model, digest = fs.load_uploaded_model(file.getvalue(), file.name)
    return fs.session_view(model, key=f"upload:{digest}", title=safe_text(file.name))


def input_section(view: fs.ModelView, *, prefix: str) -> tuple[fs.PreparedInput | None, Any]:
    """The page's "Input" section for ``view``'s model: the model's size, the image picker
    (``input_ui``) on the left and, on the right, the image as the model sees it with its
    preparation. Returns (the prepared input or None, the right column, for what the page
    adds beside it)."""
    st.caption(f"{view.title}: {len(view.layers)} layers, input {shape_text(view.input_shape)}.")
    st.subheader("Input")
    left, right = st.columns([1, 2])
    prepared = None
    with left, friendly_errors():
        prepared = input_ui(view, prefix=prefix)
    if prepared is not None:
        with right:
            show_image(
                prepared.preview,
                caption="What the model sees",
                width=160,
                alt=alt_text.photo("The image as the model sees it", prepared.preview),
            )
            st.caption(f"Prepared as the model expects: {prepared.steps}.")
    return prepared, right
