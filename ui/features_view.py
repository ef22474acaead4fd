"""Page-side helpers for the Feature-maps page: the model being viewed, its input, and the
activations, each built or computed once.

Caching (so that changing a display option does no TensorFlow work):

- shared ImageNet models: the ``ModelView`` (layer list, receptive fields and the
  multi-output extractor) is kept with the ``PretrainedModel`` itself
  (``PretrainedModel.cached``), which ``ui.pretrained`` shares across sessions;
- this session's models (trained on the MNIST page, quick-trained here, uploaded): the
  ``ModelView`` lives in ``st.session_state``, rebuilt only when the model object changes;
- activations: one slot per session, keyed by (model view, digest of the preprocessed
  input): the forward pass runs once per (model, image), every later rerun reuses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib import features as F
from cnnlib.errors import CNNLabError, InvalidModelError

#: ``cnnlib.training.TrainingJob`` of this page's quick training (per session).
QUICK_JOB = "features_quick_job"
#: (keras.Model, description) once the quick training has finished (per session).
QUICK_MODEL = "features_quick_model"
#: (sha1 of the file, keras.Model, file name) of the uploaded ``.keras`` model (per session).
UPLOADED_MODEL = "features_uploaded_model"
_VIEWS = "features_views"
_ACTIVATIONS = "features_activations"

Preprocessing = Literal["mnist", "imagenet", "generic"]

#: The quick training: preset, number of training images, epochs (real MNIST digits).
QUICK_PRESET = "Tutorial convnet"
QUICK_IMAGES = 5000
QUICK_EPOCHS = 3


@dataclass
class ModelView:
    """Everything the page shows about one model, built once: layers, receptive fields and
    the multi-output extractor. ``preprocessing`` says how images are prepared for it."""

    key: str
    title: str
    model: Any
    extractor: F.FeatureExtractor
    layers: list[F.LayerInfo]
    fields: dict[str, F.ReceptiveField | None]
    preprocessing: Preprocessing
    class_names: tuple[str, ...] | None = None
    #: The network was trained on BGR images (ImageNet "caffe" preprocessing).
    bgr: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.extractor.input_shape

    def layer(self, name: str) -> F.LayerInfo:
        return next(info for info in self.layers if info.name == name)


def _build_view(
    model: Any,
    *,
    key: str,
    title: str,
    preprocessing: Preprocessing,
    class_names: tuple[str, ...] | None,
    bgr: bool = False,
) -> ModelView:
    try:
        extractor = F.FeatureExtractor(model)
        fields = F.model_receptive_fields(model)
    except CNNLabError:
        raise
    except Exception as err:  # an unusual uploaded model: explain, never a traceback
        raise InvalidModelError(
            f"The feature-map viewer cannot open this model ({type(err).__name__}: {err})."
        ) from None
    return ModelView(
        key=key,
        title=title,
        model=model,
        extractor=extractor,
        layers=extractor.layers,
        fields=fields,
        preprocessing=preprocessing,
        class_names=class_names,
        bgr=bgr,
    )


def shared_view(pretrained: Any, *, key: str) -> ModelView:
    """The view of a shared ``PretrainedModel`` (ResNet50, VGG19), built once per process."""
    return pretrained.cached(
        "cnnlab.features.view",
        lambda: _build_view(
            pretrained.model,
            key=key,
            title=pretrained.name,
            preprocessing="imagenet",
            class_names=None,
            bgr=True,
        ),
    )


def session_view(
    model: Any,
    *,
    key: str,
    title: str,
    class_names: tuple[str, ...] | None = None,
) -> ModelView:
    """The view of one of this session's models, kept in session state until it changes.

    Models taking 28×28×1 images get MNIST's preprocessing; others a plain resize.
    """
    views: dict[str, ModelView] = st.session_state.setdefault(_VIEWS, {})
    view = views.get(key)
    if view is None or view.model is not model:
        shape = F.model_input_shape(model)
        view = _build_view(
            model,
            key=key,
            title=title,
            preprocessing="mnist" if shape == (28, 28, 1) else "generic",
            class_names=class_names,
        )
        views.pop(key, None)
        while len(views) >= 3:  # keep memory bounded: a few models per session
            views.pop(next(iter(views)))
        views[key] = view
    return view


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PreparedInput:
    """One image prepared for one model: the (1, H, W, C) batch, the picture the model sees
    (for display), a description of the preprocessing, and a digest identifying the batch."""

    batch: np.ndarray
    preview: Image.Image
    steps: str
    digest: str


def _digest(batch: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(batch).tobytes(), digest_size=16).hexdigest()


def prepare_input(
    view: ModelView,
    *,
    image: Image.Image | None = None,
    digit: np.ndarray | None = None,
    crop: bool = False,
) -> PreparedInput:
    """Prepare a photo (``image``) or a (28, 28) digit in [0, 1] exactly as ``view``'s model
    expects: MNIST's digit preprocessing, ImageNet's ``preprocess_input``, or a plain resize.
    Raises ``InvalidImageError`` (e.g. no digit in the photo).
    """
    shape = view.input_shape
    if view.preprocessing == "imagenet":
        from cnnlib import imagenet

        img = image if image is not None else F.digit_to_image(digit)
        batch = imagenet.prepare(img, crop=crop)
        preview = imagenet.resize_for_model(img, crop=crop)
        steps = (
            f"resized to {shape[0]}×{shape[1]}"
            + (" after a centre crop" if crop else "")
            + ", RGB → BGR, ImageNet channel means subtracted (`preprocess_input`)"
        )
    elif image is not None and view.preprocessing == "mnist":
        from cnnlib import digits

        d = digits.preprocess_digit(image)
        batch, preview = F.digit_input(d, shape), F.digit_to_image(d)
        steps = "MNIST-style: light ink on black, cropped, scaled to 20 px, centred in 28×28"
    elif image is not None:
        batch = F.image_input(image, shape)
        preview = image.resize((shape[1], shape[0]))
        steps = f"resized to {shape[0]}×{shape[1]}, pixels scaled to [0, 1]"
    else:
        batch = F.digit_input(digit, shape)
        preview = F.digit_to_image(digit)
        steps = "pixels in [0, 1], light digit on black (as MNIST)"
        if shape[:2] != (28, 28):
            steps += f", resized to {shape[0]}×{shape[1]}"
    return PreparedInput(batch, preview, steps, _digest(batch))


def activations(view: ModelView, prepared: PreparedInput) -> F.ActivationSet:
    """Every layer's activation for ``prepared``: one forward pass, then reused from the
    session's slot for as long as the model and the input stay the same."""
    key = (view.key, id(view.extractor), prepared.digest)
    slot = st.session_state.get(_ACTIVATIONS)
    if slot is not None and slot[0] == key:
        return slot[1]
    st.session_state.pop(_ACTIVATIONS, None)  # free the previous image's maps first
    acts = view.extractor.run(prepared.batch)
    st.session_state[_ACTIVATIONS] = (key, acts)
    return acts


# ----------------------------------------------------------------------------- models


def load_uploaded_model(data: bytes, name: str) -> tuple[Any, str]:
    """(keras.Model, sha1) of an uploaded ``.keras`` file, loaded once per session.

    Loaded by ``cnnlib.training.load_model_bytes`` (``safe_mode=True``); a file that is not
    a valid Keras model raises ``InvalidModelError`` naming the file.
    """
    digest = hashlib.sha1(data).hexdigest()
    kept = st.session_state.get(UPLOADED_MODEL)
    if kept is not None and kept[0] == digest:
        return kept[1], digest
    from cnnlib.training import load_model_bytes

    try:
        model = load_model_bytes(data)
    except InvalidModelError as err:
        raise InvalidModelError(f"“{name}”: {err}") from None
    st.session_state[UPLOADED_MODEL] = (digest, model, name)
    return model, digest


# ----------------------------------------------------------------------------- quick training


@dataclass(frozen=True)
class QuickStatus:
    """Where this session's quick training stands, for the page's progress bar."""

    finished: bool
    fraction: float
    text: str
    error: str | None = None


def start_quick_training() -> None:
    """Start training the tutorials' convnet on a small real MNIST subset, in the background
    (``cnnlib.training.TrainingJob``); the job handle lives in this session's state.
    Raises ``DataUnavailableError`` when MNIST cannot be found."""
    from cnnlib.errors import DataUnavailableError
    from cnnlib.models import MNIST_PRESETS
    from cnnlib.training import TrainConfig, TrainingJob
    from ui.datasets import load_for_page

    ds = load_for_page("mnist")
    if not ds.available:
        raise DataUnavailableError(ds.error)
    config = TrainConfig.for_preset(
        QUICK_PRESET,
        epochs=QUICK_EPOCHS,
        train_size=min(QUICK_IMAGES, len(ds.x_train)),
        validation_split=0.1,
        seed=0,
    )
    data = ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test))
    job = TrainingJob(MNIST_PRESETS[QUICK_PRESET], data, config)
    st.session_state[QUICK_JOB] = (job.start(), ds.source)


def quick_training_status() -> QuickStatus:
    """Poll the quick training; once it has finished, keep its model under ``QUICK_MODEL``."""
    kept = st.session_state.get(QUICK_JOB)
    if kept is None:
        return QuickStatus(st.session_state.get(QUICK_MODEL) is not None, 1.0, "")
    job, source = kept
    p = job.snapshot()
    if p.state == "failed" or (p.done and job.model is None):
        return QuickStatus(False, 0.0, "", f"The quick training failed: {p.error}")
    if p.done:
        accuracy = (
            f"{p.test_accuracy:.1%} on {p.test_samples:,} test digits"
            if p.test_accuracy is not None
            else "not measured"
        )
        description = (
            f"Quick-trained {QUICK_PRESET.lower()}: {p.train_samples:,} training images from "
            f"{source}, {p.epoch} epoch(s) in {p.train_seconds:.0f} s; test accuracy {accuracy}."
        )
        st.session_state[QUICK_MODEL] = (job.model, description)
        st.session_state.pop(QUICK_JOB, None)
        return QuickStatus(True, 1.0, description)
    if p.state == "queued":
        where = f" (position {p.queue_position})" if p.queue_position else ""
        return QuickStatus(False, 0.0, f"Waiting for a free training slot{where}…")
    eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
    text = (
        f"Training {QUICK_PRESET.lower()}: epoch {max(p.epoch, 1)} of {p.epochs}, batch "
        f"{p.step} of {p.steps_per_epoch}{eta}"
    )
    return QuickStatus(False, p.fraction, text)
