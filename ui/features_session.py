r"""The Feature-maps page's session: the model being viewed, its input, its activations and
this page's quick training, each built or computed once.

Caching (so that changing a display option does no TensorFlow work):

- shared ImageNet models: the ``ModelView`` (layer list, receptive fields and the
  multi-output extractor) is kept with the ``PretrainedModel`` itself
  (``PretrainedModel.cached``), which ``ui.pretrained`` shares across sessions;
- this session's models (the model registry's: trained on the MNIST or own-images page or
  quick-trained here; uploaded): their ``ModelView``\ s in a session-scoped
  ``st.cache_resource`` (the last ``VIEWS_PER_SESSION``), keyed by the model object;
- an uploaded ``.keras`` file: loaded once per session (the last one), keyed by its digest;
- activations: the last (model view, digest of the preprocessed input) of the session, in a
  session-scoped ``st.cache_resource``: the forward pass runs once per (model, image), every
  later rerun reuses it.

Session-scoped caches end with the session (Streamlit clears them when its tab closes).
The quick training goes through the one start → adopt → register flow (``ui.runs``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import DataUnavailableError, InvalidModelError
from cnnlib.core.text import safe_text
from cnnlib.data import digits
from cnnlib.data.mnist import CLASS_NAMES
from cnnlib.data.training_data import ArrayData
from cnnlib.inspect import features as F
from cnnlib.inspect import imagenet
from cnnlib.models import MNIST_PRESETS, takes_raw_pixels
from cnnlib.models.registry import RegisteredModel
from cnnlib.training.trainer import TrainConfig, TrainingJob
from cnnlib.uploads.model_files import load_keras_file
from ui import runs
from ui.datasets import load_for_page

#: ``ui.runs.Run`` of this page's quick training (info: ``QuickRun``), while it runs.
QUICK_RUN = "features_quick_run"
#: Registry name of the quick-trained model the page should switch to (set once it is added).
QUICK_ADDED = "features_quick_added"
#: This session's models whose views are kept (a few: each holds an extractor).
VIEWS_PER_SESSION = 3

Preprocessing = Literal["mnist", "imagenet", "generic"]

#: The page's title, as the session's one-training guard and the model registry name it.
PAGE = "Feature maps"
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
    #: The model scales its own input: it takes raw pixels 0…255 (the app's models do).
    raw_pixels: bool = False
    #: The shared ``PretrainedModel`` (ResNet50, VGG19) behind ``model``, else None.
    shared: Any = None
    #: Images of the learner's data the model was trained for (N, H, W, C) uint8 raw
    #: pixels, from the session's model registry (``RegisteredModel.examples``), else None;
    #: ``examples_source`` says what they are.
    examples: np.ndarray | None = None
    examples_source: str = ""
    #: Unique per view (so per model): keys what was computed for it. ``id()`` of a freed
    #: model can come back for a new one and show the old model's maps.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.extractor.input_shape

    @property
    def runner(self) -> Any:
        """What to compute with: the shared ``PretrainedModel`` (its lock serialises every
        session's use), else this session's Keras model."""
        return self.shared if self.shared is not None else self.model

    def conv_layers(self, current: F.LayerInfo) -> tuple[list[str], int]:
        """(names of the Conv2D layers, index of the one behind ``current``: itself, or the
        last one before it; 0 when none comes before)."""
        names = [info.name for info in self.layers if info.has_filters]
        before = [i for i, n in enumerate(names) if self.layer(n).index <= current.index]
        return names, before[-1] if before else 0

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
    shared: Any = None,
    raw_pixels: bool | None = None,
    examples: np.ndarray | None = None,
    examples_source: str = "",
) -> ModelView:
    if raw_pixels is None:
        raw_pixels = preprocessing != "imagenet" and takes_raw_pixels(model)
    # A shared model's forward passes run under its one lock, with a bounded wait.
    guard = shared.use() if shared is not None else None
    extractor, fields = F.open_model(model, guard=guard)
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
        raw_pixels=bool(raw_pixels),
        shared=shared,
        examples=examples,
        examples_source=examples_source,
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
            shared=pretrained,
        ),
    )


@st.cache_resource(scope="session", max_entries=VIEWS_PER_SESSION, show_spinner=False)
def _session_view(
    key: str,
    model_id: int,
    title: str,
    class_names: tuple[str, ...] | None,
    raw_pixels: bool | None,
    _model: Any,
    examples_source: str = "",
    _examples: np.ndarray | None = None,
) -> ModelView:
    # Keyed by the model object's id: the cached view holds the model (and its examples),
    # so the id cannot be reused by another model while the entry lives.
    shape = F.model_input_shape(_model)
    return _build_view(
        _model,
        key=key,
        title=title,
        preprocessing="mnist" if shape == (28, 28, 1) else "generic",
        class_names=class_names,
        raw_pixels=raw_pixels,
        examples=_examples,
        examples_source=examples_source,
    )


def session_view(
    model: Any,
    *,
    key: str,
    title: str,
    class_names: tuple[str, ...] | None = None,
    raw_pixels: bool | None = None,
    examples: np.ndarray | None = None,
    examples_source: str = "",
) -> ModelView:
    """The view of one of this session's models, built once per model object (the last
    ``VIEWS_PER_SESSION`` are kept).

    Models taking 28×28×1 images get MNIST's preprocessing; others a plain resize.
    ``raw_pixels``: the model takes pixels 0…255 (None: guessed from its first layers).
    ``examples``: images of the learner's data for it (``ModelView.examples``).
    """
    names = tuple(class_names) if class_names is not None else None
    return _session_view(key, id(model), title, names, raw_pixels, model, examples_source, examples)


def registry_view(entry: RegisteredModel) -> ModelView:
    """The view of a model from the session's registry: its class names, input shape,
    raw-pixel input (the registry's contract) and examples of the learner's data, titled
    with its (escaped) name."""
    return session_view(
        entry.model,
        key=f"registry:{id(entry.model)}",
        title=safe_text(entry.name, 80),
        class_names=entry.class_names,
        raw_pixels=True,
        examples=entry.examples,
        examples_source=entry.examples_source,
    )


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
        img = image if image is not None else F.digit_to_image(digit)
        batch = imagenet.prepare(img, crop=crop)
        preview = imagenet.resize_for_model(img, crop=crop)
        steps = (
            f"resized to {shape[0]}×{shape[1]}"
            + (" after a centre crop" if crop else "")
            + ", RGB → BGR, ImageNet channel means subtracted (`preprocess_input`)"
        )
    elif image is not None and view.preprocessing == "mnist":
        d = digits.preprocess_digit(image)
        batch = F.digit_input(d, shape, raw_pixels=view.raw_pixels)
        preview = F.digit_to_image(d)
        steps = "MNIST-style: light ink on black, cropped, scaled to 20 px, centred in 28×28"
        steps += _scaling(view)
    elif image is not None:
        batch = F.image_input(image, shape, raw_pixels=view.raw_pixels)
        preview = image.resize((shape[1], shape[0]))
        steps = f"resized to {shape[0]}×{shape[1]}" + _scaling(view)
    else:
        batch = F.digit_input(digit, shape, raw_pixels=view.raw_pixels)
        preview = F.digit_to_image(digit)
        steps = "light digit on black (as MNIST)" + _scaling(view)
        if shape[:2] != (28, 28):
            steps += f", resized to {shape[0]}×{shape[1]}"
    return PreparedInput(batch, preview, steps, _digest(batch))


def _scaling(view: ModelView) -> str:
    if view.raw_pixels:
        return ", raw pixels 0…255 (the model scales them itself)"
    return ", pixels scaled to [0, 1]"


@st.cache_resource(scope="session", max_entries=1, show_spinner=False)
def _activations(token: str, digest: str, _view: ModelView, _batch: np.ndarray) -> F.ActivationSet:
    return _view.extractor.run(_batch)


def activations(view: ModelView, prepared: PreparedInput) -> F.ActivationSet:
    """Every layer's activation for ``prepared``: one forward pass, then reused for as long
    as the model and the input stay the same (the session's last one is kept)."""
    return _activations(view.token, prepared.digest, view, prepared.batch)


# ----------------------------------------------------------------------------- models


@st.cache_resource(scope="session", max_entries=1, show_spinner=False)
def _uploaded_model(digest: str, _data: bytes, _name: str) -> Any:
    try:
        return load_keras_file(_data, budgets=budgets(), name=f"“{safe_text(_name)}”")
    except InvalidModelError as err:
        raise InvalidModelError(f"“{safe_text(_name)}”: {err}") from None


def load_uploaded_model(data: bytes, name: str) -> tuple[Any, str]:
    """(keras.Model, sha1) of an uploaded ``.keras`` file, loaded once per session (the last
    upload is kept).

    Parsed in the decoding sandbox and rebuilt from CNN Lab's own layer spec by
    ``cnnlib.uploads.model_files.load_keras_file`` within the server's ``budgets()``; a
    refused file raises ``InvalidModelError`` naming the (escaped) file.
    """
    digest = hashlib.sha1(data).hexdigest()
    return _uploaded_model(digest, data, name), digest


# ----------------------------------------------------------------------------- quick training


@dataclass(frozen=True)
class QuickRun:
    """Where the quick training's digits come from (for its description)."""

    source: str


@dataclass(frozen=True)
class QuickStatus:
    """Where this session's quick training stands, for the page's progress bar."""

    finished: bool
    fraction: float
    text: str
    error: str | None = None


def start_quick_training() -> None:
    """Start training the tutorials' convnet on a small real MNIST subset, in the background
    (``cnnlib.training.trainer.TrainingJob``), as this session's one training (``ui.runs``).
    Raises ``DataUnavailableError`` (no MNIST), ``SessionBusyError`` / ``ServerBusyError``."""
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

    def make_job() -> TrainingJob:
        data = ArrayData.from_tuple(
            ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)),
            class_names=CLASS_NAMES["mnist"],
            validation_split=config.validation_split,
            train_size=config.train_size,
            seed=config.seed,
        )
        return TrainingJob(MNIST_PRESETS[QUICK_PRESET], data, config)

    runs.start(QUICK_RUN, PAGE, make_job, QuickRun(ds.source))


def _register(run: runs.Run[QuickRun, str]) -> str:
    """Add the quick-trained model to the session's registry; returns its name there."""
    p = run.job.snapshot()
    accuracy = (
        f"{p.test_accuracy:.1%} on {p.test_samples:,} test digits"
        if p.test_accuracy is not None
        else "not measured"
    )
    description = (
        f"Quick-trained {QUICK_PRESET.lower()}: {p.train_samples:,} training images from "
        f"{run.info.source}, {p.epoch} epoch(s) in {p.train_seconds:.0f} s; test accuracy "
        f"{accuracy}."
    )
    score = f" · {100 * p.test_accuracy:.1f} %" if p.test_accuracy is not None else ""
    return runs.register(run, f"MNIST · {QUICK_PRESET} (quick){score}", description)


def quick_training_status() -> QuickStatus:
    """Poll the quick training; once it has finished, add its model to the session's model
    registry (and remember its name under ``QUICK_ADDED`` for the page to switch to)."""
    run = runs.current(QUICK_RUN)
    if run is None:
        return QuickStatus(True, 1.0, "")
    p = run.job.snapshot()
    if p.state == "failed" or (p.done and run.job.model is None):
        return QuickStatus(False, 0.0, "", f"The quick training failed: {p.error}")
    if p.done:
        runs.adopt(QUICK_RUN, _register)
        st.session_state[QUICK_ADDED] = run.result
        runs.forget(QUICK_RUN)
        return QuickStatus(True, 1.0, "")
    if p.state == "queued":
        where = f" (position {p.queue_position})" if p.queue_position else ""
        where = " on the cluster" if p.queued_on_cluster else where
        return QuickStatus(False, 0.0, f"Waiting for a free training slot{where}…")
    eta = f", about {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
    text = (
        f"Training {QUICK_PRESET.lower()}: epoch {max(p.epoch, 1)} of {p.epochs}, batch "
        f"{p.step} of {p.steps_per_epoch}{eta}"
    )
    return QuickStatus(False, p.fraction, text)
