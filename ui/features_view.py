"""Page-side helpers for the Feature-maps page: the model being viewed, its input, and the
activations, each built or computed once.

Caching (so that changing a display option does no TensorFlow work):

- shared ImageNet models: the ``ModelView`` (layer list, receptive fields and the
  multi-output extractor) is kept with the ``PretrainedModel`` itself
  (``PretrainedModel.cached``), which ``ui.pretrained`` shares across sessions;
- this session's models (the model registry's: trained on the MNIST or own-images page or
  quick-trained here; uploaded): the ``ModelView`` lives in ``st.session_state``, rebuilt only
  when the model object changes;
- activations: one slot per session, keyed by (model view, digest of the preprocessed
  input): the forward pass runs once per (model, image), every later rerun reuses it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib.core.errors import InvalidModelError
from cnnlib.core.text import safe_text
from cnnlib.data.mnist import CLASS_NAMES
from cnnlib.inspect import features as F
from cnnlib.models.registry import RegisteredModel
from ui import alt_text, figures, state, training_session
from ui.image_input import show_image

#: (``cnnlib.training.trainer.TrainingJob``, data source) of this page's quick training (per
#: session).
QUICK_JOB = "features_quick_job"
#: Registry name of the quick-trained model the page should switch to (set once it is added).
QUICK_ADDED = "features_quick_added"
#: (sha1 of the file, keras.Model, file name) of the uploaded ``.keras`` model (per session).
UPLOADED_MODEL = "features_uploaded_model"
_VIEWS = "features_views"
_ACTIVATIONS = "features_activations"

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
) -> ModelView:
    from cnnlib.models import takes_raw_pixels

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


def session_view(
    model: Any,
    *,
    key: str,
    title: str,
    class_names: tuple[str, ...] | None = None,
    raw_pixels: bool | None = None,
) -> ModelView:
    """The view of one of this session's models, kept in session state until it changes.

    Models taking 28×28×1 images get MNIST's preprocessing; others a plain resize.
    ``raw_pixels``: the model takes pixels 0…255 (None: guessed from its first layers).
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
            raw_pixels=raw_pixels,
        )
        views.pop(key, None)
        while len(views) >= 3:  # keep memory bounded: a few models per session
            views.pop(next(iter(views)))
        views[key] = view
    return view


def registry_view(entry: RegisteredModel) -> ModelView:
    """The view of a model from the session's registry: its class names, input shape and
    raw-pixel input (the registry's contract), titled with its (escaped) name."""
    return session_view(
        entry.model,
        key=f"registry:{id(entry.model)}",
        title=safe_text(entry.name, 80),
        class_names=entry.class_names,
        raw_pixels=True,
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
        from cnnlib.inspect import imagenet

        img = image if image is not None else F.digit_to_image(digit)
        batch = imagenet.prepare(img, crop=crop)
        preview = imagenet.resize_for_model(img, crop=crop)
        steps = (
            f"resized to {shape[0]}×{shape[1]}"
            + (" after a centre crop" if crop else "")
            + ", RGB → BGR, ImageNet channel means subtracted (`preprocess_input`)"
        )
    elif image is not None and view.preprocessing == "mnist":
        from cnnlib.data import digits

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


def activations(view: ModelView, prepared: PreparedInput) -> F.ActivationSet:
    """Every layer's activation for ``prepared``: one forward pass, then reused from the
    session's slot for as long as the model and the input stay the same."""
    key = (view.key, view.token, prepared.digest)
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

    Inspected, then loaded, by ``cnnlib.uploads.model_files.load_keras_file`` within the server's
    ``budgets()``; a refused file raises ``InvalidModelError`` naming the (escaped) file.
    """
    digest = hashlib.sha1(data).hexdigest()
    kept = st.session_state.get(UPLOADED_MODEL)
    if kept is not None and kept[0] == digest:
        return kept[1], digest
    from cnnlib.core.budgets import budgets
    from cnnlib.uploads.model_files import load_keras_file

    st.session_state.pop(UPLOADED_MODEL, None)  # free the previous upload first
    try:
        model = load_keras_file(data, budgets=budgets())
    except InvalidModelError as err:
        raise InvalidModelError(f"“{safe_text(name)}”: {err}") from None
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
    (``cnnlib.training.trainer.TrainingJob``), as this session's one training
    (``ui.training_session.start_task``); the job lives in this session's state. Raises
    ``DataUnavailableError`` (no MNIST), ``SessionBusyError`` / ``ServerBusyError``."""
    from cnnlib.core.errors import DataUnavailableError
    from cnnlib.data.training_data import ArrayData
    from cnnlib.models import MNIST_PRESETS
    from cnnlib.training.trainer import TrainConfig, TrainingJob
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
    data = ArrayData.from_tuple(
        ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)),
        class_names=CLASS_NAMES["mnist"],
        validation_split=config.validation_split,
        train_size=config.train_size,
        seed=config.seed,
    )
    job = training_session.start_task(PAGE, TrainingJob(MNIST_PRESETS[QUICK_PRESET], data, config))
    st.session_state[QUICK_JOB] = (job, ds.source)


def quick_training_status() -> QuickStatus:
    """Poll the quick training; once it has finished, add its model to the session's model
    registry (and remember its name under ``QUICK_ADDED`` for the page to switch to)."""
    kept = st.session_state.get(QUICK_JOB)
    if kept is None:
        return QuickStatus(True, 1.0, "")
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
        from cnnlib.models.registry import registered_from_job

        registry = state.model_registry()
        score = f" · {100 * p.test_accuracy:.1f} %" if p.test_accuracy is not None else ""
        name = registry.unique_name(f"MNIST · {QUICK_PRESET} (quick){score}")
        entry = registered_from_job(job, name, description=description, source_page=PAGE)
        st.session_state[QUICK_ADDED] = registry.add(entry).name
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


# ----------------------------------------------------------------------------- drawing
# The page's figures and composed images: each draws results computed by cnnlib.inspect.features.

BAR_COLOR = "#4c78a8"


def heatmap_figure(
    values: np.ndarray,
    zmin: float,
    zmax: float,
    *,
    height: int = 380,
    scale: str = figures.MAGNITUDE,
) -> go.Figure:
    """One (H, W) map as a square-celled heatmap in the app's colour ``scale`` (a
    ``ui.figures`` name); the values are written in small maps."""
    h, w = values.shape
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=zmin,
            zmax=zmax,
            colorscale=figures.colorscale(scale),
            texttemplate="%{z:.3g}" if h * w <= 14 * 14 else None,
            hovertemplate="row %{y}, column %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def show_png(image: np.ndarray | Image.Image, caption: str, *, alt: str) -> None:
    """A composed image ((H, W, 3) uint8 or PIL), sent as PNG: wide ones fitted to the
    column's width with the caption below; small ones at their own size, the caption beside
    them as a line of text (an image caption is only as wide as its image). ``alt`` says what
    it shows, with its numbers (``ui.alt_text``)."""
    pixels = image.width if isinstance(image, Image.Image) else int(image.shape[1])
    if pixels > 700:
        st.image(F.to_png(image), caption=caption, width="stretch", output_format="PNG", alt=alt)
    else:
        st.image(F.to_png(image), width=pixels, output_format="PNG", alt=alt)
        st.caption(caption)


def show_stats(stats: F.MapStats, *, zeros: str = "zeros") -> None:
    """ "min · max · mean · zeros" of one map or filter, in one line."""
    st.markdown(
        f"min **{stats.min:.4g}** · max **{stats.max:.4g}** · mean **{stats.mean:.4g}** · "
        f"{zeros} **{stats.zero_fraction:.1%}**"
    )


def _names(class_names: tuple[str, ...] | None, n: int) -> list[str]:
    """The class names if there is one per output, else the output numbers."""
    if class_names and len(class_names) == n:
        return list(class_names)
    return [str(i) for i in range(n)]


def show_scores(scores: F.Scores, class_names: tuple[str, ...] | None) -> None:
    """The model's answer for the image and a bar per class."""
    names = _names(class_names, len(scores.values))
    what = "probability" if scores.probabilities else "score (no softmax)"
    value_format = ".1%" if scores.probabilities else ".3g"
    shown = format(float(scores.values[scores.predicted]), value_format)
    answer = safe_text(names[scores.predicted])
    st.markdown(f"**The model's answer:** {answer} ({what} {shown})")
    fig = figures.bar_chart(
        [figures.plain_label(n) for n in names],
        scores.values,
        color=BAR_COLOR,
        value_format=value_format,
        value_title=what,
        height=220,
    )
    cells = [format(float(v), value_format) for v in scores.values]
    bars = ", ".join(f"{alt_text.plain(n, 40)} {c}" for n, c in zip(names, cells, strict=True))
    st.plotly_chart(fig, key="fm_scores", alt=f"Bar chart of the {what} of each class: {bars}.")
    figures.table_view({"class": names, what: cells}, alt=f"The model's {what} for each class")


def show_vector(values: np.ndarray, info: F.LayerInfo, names: list[str] | None) -> None:
    """A layer whose output is a vector (Dense, pooling to 1-D): one bar per unit."""
    fig = figures.bar_chart(
        names or list(range(info.channels)),
        values,
        color=BAR_COLOR,
        value_format=".4g",
        label_title="unit",
        height=280,
        show_values=False,
        hover="unit %{x}: %{y:.4g}<extra></extra>",
    )
    v = np.asarray(values)
    st.plotly_chart(
        fig,
        key="fm_vector",
        alt=f"Bar chart of the {info.channels} units of {info.name}, "
        f"{alt_text.values_text(v.min(), v.max())}; the largest is unit {int(np.argmax(v))}.",
    )
    labels = names or [str(i) for i in range(info.channels)]
    rows = {"unit": labels, "value": [f"{float(x):.4g}" for x in v]}
    figures.table_view(rows, alt=f"The {info.channels} values of {info.name}")
    st.caption(
        f"{info.name} is a vector of {info.channels} numbers, not maps: every unit sees the "
        "whole image."
    )


def show_enlarged(
    view: ModelView, info: F.LayerInfo, channel: int, values: np.ndarray, stats, lo, hi
) -> None:
    """One map of layer ``info`` large, with its statistics and receptive field."""
    left, right = st.columns([3, 2])
    alt = alt_text.map_text(
        f"Channel {channel} of {info.name}, enlarged",
        values,
        figures.legend(figures.MAGNITUDE, float(lo), float(hi)),
    )
    left.plotly_chart(heatmap_figure(values, float(lo), float(hi)), key="fm_enlarged", alt=alt)
    with right:
        st.markdown(f"**Channel {channel}** of {info.name} ({info.kind})")
        zeros = "exact zeros (switched off by the ReLU)" if info.relu else "exact zeros"
        show_stats(stats, zeros=zeros)
        rf = view.fields.get(info.name)
        if rf is not None:
            h, w = view.input_shape[:2]
            st.caption(
                f"Each cell of this {info.output_shape[0]}×{info.output_shape[1]} map sees "
                f"{rf.describe((h, w))} of the {h}×{w} input."
            )
        if info.has_filters:
            st.caption(f"Its filter's weights are in the **Filters** tab (filter {channel}).")


def show_first_filters(view: ModelView, layer: str, kernel: np.ndarray) -> None:
    """Every filter of the first conv layer, (kh, kw, C_in, F) kernel, in one grid."""
    kh, kw, cin, nf = kernel.shape
    st.markdown(f"**First convolutional layer `{layer}`:** {nf} filters of {kh}×{kw}×{cin}.")
    colour = "in colour (R, G, B weights)" if cin == 3 else "blue = negative, red = positive"
    note = (
        " The network was trained on BGR images, so the channels are swapped back to RGB here."
        if view.bgr and cin == 3
        else ""
    )
    show_png(
        F.filter_grid(kernel, bgr=view.bgr, columns=16, tile_px=48),
        f"Each square is one filter, {colour}; grey or white = 0.{note}",
        alt=f"Grid of the {nf} {kh}×{kw} filters of {layer}, weights "
        f"{alt_text.values_text(kernel.min(), kernel.max())}, drawn {colour}.",
    )


def show_filter(fw: F.FilterWeights, top_channel: int) -> None:
    """One filter: its size, bias and statistics, and one square per input channel."""
    fh, fwid, fcin = fw.kernel.shape
    bias = "no bias" if fw.bias is None else f"bias {fw.bias:.4g}"
    st.caption(
        f"Filter {fw.index} of {fw.layer}: {fh}×{fwid} weights for each of its {fcin} input "
        f"channels ({fh * fwid * fcin:,} weights, {bias}). Channel {top_channel} is this "
        "layer's top activating channel for the current image."
    )
    show_stats(fw.stats)
    tile = 48 if fcin <= 32 else max(16, min(48, 8 * fh))
    show_png(
        F.weight_grid(fw.kernel, columns=32, tile_px=tile),
        "One square per input channel, labelled with its number: blue = negative, "
        "white = 0, red = positive (one scale for the whole filter).",
        alt=f"Grid of the {fcin} {fh}×{fwid} weight squares of filter {fw.index} of {fw.layer}, "
        f"one per input channel, weights {alt_text.values_text(fw.stats.min, fw.stats.max)}: "
        "blue negative, white 0, red positive.",
    )


def show_filter_channel(fw: F.FilterWeights, channel: int) -> None:
    """The weights of one input channel of a filter, values written in the cells."""
    top = float(np.abs(fw.kernel).max())
    weights = fw.kernel[:, :, channel]
    fig = heatmap_figure(weights, -top, top, height=260, scale=figures.SIGN)
    alt = alt_text.map_text(
        f"Weights of input channel {channel} of filter {fw.index}",
        weights,
        figures.legend(figures.SIGN, -top, top),
    )
    st.plotly_chart(fig, key="fm_filter_values", alt=alt)


def show_hierarchy(
    steps: list[F.HierarchyStep], preview: Image.Image, input_shape: tuple[int, ...]
) -> None:
    """The input, then the most active map of each stage with its receptive field; a table."""
    st.markdown(
        "The most active map at the end of each **stage** (a run of layers that keep the same "
        "map size). Going deeper, maps get smaller while each cell sees a larger part of the "
        "image — its **receptive field**."
    )
    cols = st.columns(len(steps) + 1)
    h, w = input_shape[:2]
    with cols[0]:
        show_image(preview, alt=alt_text.photo("The input image", preview))
    cols[0].caption(f"**input**  \n{h}×{w}")
    for col, step in zip(cols[1:], steps, strict=True):
        lo, hi = float(step.map.min()), float(step.map.max())
        tile = F.tile_grid([F.colorize(step.map, lo, hi)], columns=1, tile_px=160, gap=0)
        sh, sw = step.size
        rf = step.receptive_field.describe((h, w)) if step.receptive_field else "unknown"
        alt = alt_text.map_text(
            f"Most active map after stage {step.layer}: channel {step.channel} of "
            f"{step.channels}, each cell seeing {rf} of the input",
            step.map,
            figures.legend(figures.MAGNITUDE, lo, hi),
        )
        col.image(F.to_png(tile), width="stretch", output_format="PNG", alt=alt)
        col.caption(
            f"**{step.layer}**  \n{sh}×{sw} map, channel {step.channel} of {step.channels}"
            f"  \neach cell sees {rf}"
        )
    rows = [
        {
            "stage output": s.layer,
            "type": s.kind,
            "map size": f"{s.size[0]}×{s.size[1]}",
            "channels": s.channels,
            "receptive field": s.receptive_field.label if s.receptive_field else "unknown",
            "step between cells (px)": (
                s.receptive_field.jump[0] if s.receptive_field and s.receptive_field.jump else None
            ),
            "most active channel": s.channel,
            "its mean": round(s.mean, 4),
        }
        for s in steps
    ]
    st.dataframe(rows, hide_index=True)
