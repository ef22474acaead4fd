"""Train on your own images, tab ④ "Try it & export": the trained model on a new photo (its
prediction and the Grad-CAM that explains it, on the same resized pixels), and live on the
webcam (a frame about every second, in a fragment: only this part reruns). The exports are
``own_images_export``."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace

import streamlit as st

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import InvalidImageError
from cnnlib.core.text import safe_text
from cnnlib.inspect.calibration import calibrated_probabilities
from cnnlib.inspect.saliency import saliency_map
from cnnlib.training import transfer
from cnnlib.uploads.burst import decode_frames, parse_live_frame
from ui import alt_text
from ui import own_images_explore_view as explore_view
from ui import own_images_session as session
from ui import own_images_view as view
from ui.errors import friendly_errors
from ui.image_input import pick_images, show_image
from ui.state import KEEP
from ui.webcam_widgets import live_widget, sent_frame

#: Session key of the live prediction: ``LiveAnswer`` of the latest frame answered.
LIVE = "own_live"
#: Fewest seconds between two live predictions (frames sent faster are answered unread).
LIVE_MIN_SECONDS = 0.5
#: Largest live frame, bytes (the widget sends one JPEG at the model's input size).
LIVE_FRAME_BYTES = 512 * 1024


@dataclass(frozen=True)
class LiveAnswer:
    """The latest live frame answered: its number ``n`` (the widget's), the run it was
    predicted by (``run_id``; None when unread), its ``predictions`` ((class, probability),
    most likely first), the ``temperature`` they were calibrated with (None: the model's
    own), a ``problem`` message for a frame refused, and when (``at``)."""

    n: int
    run_id: int | None
    predictions: tuple[tuple[str, float], ...] = ()
    problem: str = ""
    at: float = 0.0
    temperature: float | None = None


def try_ui(tested: session.OwnTested | None) -> None:
    """A new photo: the prediction with its probabilities, and Grad-CAM on it; then the
    live prediction from the webcam."""
    if tested is None:
        st.info("Train a model (tab ②) to try it on a new photo.", icon="ℹ️")
        return
    temperature = calibration_ui(tested)
    photo_ui(tested, temperature)
    st.subheader("Live from the webcam")
    st.caption(
        "Start it, then show the camera your classes: about once a second the model reads "
        "a frame and its top classes appear below. Frames are checked like any upload, "
        "never kept."
    )
    st.fragment(live_ui)(tested, temperature)


def calibration_ui(tested: session.OwnTested) -> float | None:
    """T of tab ③'s calibration while the learner asks for calibrated probabilities (for the
    photo and the live webcam alike); None for the model's own probabilities."""
    t = None
    with friendly_errors("The calibration could not be measured: "):
        t = session.temperature(tested)
    if not t:
        return None
    label = f"Calibrated probabilities (logits divided by T = {t:.3g})"
    help_text = "For the photo and the live webcam. Tab ⑤'s threshold then applies to them."
    on = st.toggle(label, key="own_photo_calibrated", help=help_text, **KEEP)
    return t if on else None


def predict(tested: session.OwnTested, image, temperature: float | None) -> list[tuple[str, float]]:
    """(class, probability) of every class for ``image``, most likely first: the model's own
    probabilities, or temperature-scaled ones when ``temperature`` is set."""
    model, names = tested.result.model, tested.result.class_names
    if not temperature:
        return transfer.predict_image(model, image, names)
    x = transfer.model_input(model, image)[None]
    return transfer.ranked(calibrated_probabilities(model, x, temperature)[0], names)


def predict_live(
    tested: session.OwnTested,
    payload: object,
    last: LiveAnswer | None,
    temperature: float | None = None,
):
    """The ``LiveAnswer`` to the widget's ``payload`` (untrusted), with calibrated
    probabilities when ``temperature`` is set."""
    now = time.monotonic()
    try:
        n, raw = parse_live_frame(payload, max_bytes=LIVE_FRAME_BYTES)
    except InvalidImageError as err:
        return LiveAnswer(0, None, problem=str(err), at=now)
    if last is not None and now - last.at < LIVE_MIN_SECONDS:  # too soon: answered, unread
        return replace(last, n=n)
    side = max(tested.result.model.input_shape[1:3])
    decoded = decode_frames([raw], side=side, budgets=budgets())
    if not decoded.images:
        return LiveAnswer(n, tested.id, problem=decoded.problems[0], at=now)
    predictions = predict(tested, decoded.images[0], temperature)
    return LiveAnswer(n, tested.id, tuple(predictions), at=now, temperature=temperature)


#: Key of the live widget.
LIVE_CAMERA = "own_live_camera"


def answer_frame(tested: session.OwnTested, temperature: float | None) -> None:
    """The live widget's callback, before its fragment reruns: the model's answer to the
    frame it sent, kept for the rerun (which tells the widget, so it sends the next)."""
    payload = sent_frame(LIVE_CAMERA)
    if payload is not None:
        last = st.session_state.get(LIVE)
        st.session_state[LIVE] = predict_live(tested, payload, last, temperature)


def live_ui(tested: session.OwnTested, temperature: float | None) -> None:
    """The live widget and the model's answer to its latest frame (a fragment: a frame
    reruns only this); calibrated probabilities when ``temperature`` is set."""
    last: LiveAnswer | None = st.session_state.get(LIVE)
    live_widget(
        key=LIVE_CAMERA,
        side=max(tested.result.model.input_shape[1:3]),
        answered=last.n if last else 0,
        on_frame=functools.partial(answer_frame, tested, temperature),
    )
    if last is None:
        return
    if last.problem:
        st.warning(last.problem, icon="⚠️")
    elif last.run_id == tested.id and last.temperature == temperature and last.predictions:
        view.show_live_prediction(last.predictions, session.threshold(), last.n)


def photo_ui(tested: session.OwnTested, temperature: float | None) -> None:
    """A photo (sample, upload or camera shot): its prediction (calibrated when
    ``temperature`` is set) and Grad-CAM."""
    picked = pick_images("own_photo")
    if not picked:
        return
    model, names = tested.result.model, tested.result.class_names
    image = picked[0].image
    predictions = predict(tested, image, temperature)
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
        if temperature:
            st.caption(
                "Temperature scaling from tab ③'s calibration (T fitted on the validation "
                "images): the same answer, with a confidence that matches how often the model "
                "is right."
            )
    x = transfer.model_input(model, image)  # the pixels the prediction saw
    best = names.index(predictions[0][0])
    cam = saliency_map(model, x, best, method="gradcam")
    view.show_grad_cam(x.astype("uint8"), cam, predictions[0][0])
