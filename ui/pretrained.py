"""The shared ImageNet models for the Classify and Feature-maps pages.

``resnet50()`` and ``vgg19()`` build each network once per server process
(``st.cache_resource``), shared by every session and both pages; ``cnnlib``'s
``PretrainedModel`` serialises inference with a lock. They never raise: when the weights
cannot be had, ``Loaded.error`` holds the learner-facing message (which file, and both ways to
provide it), so a page can show it and keep working without predictions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.core.errors import CNNLabError
from cnnlib.inspect import imagenet
from cnnlib.models.pretrained import (
    RESNET50,
    VGG19_NOTOP,
    PretrainedModel,
    WeightsSpec,
    keras_cache_dir,
    load_resnet50,
    load_vgg19,
)
from ui.keras_runtime import freeze_imported_objects


@dataclass(frozen=True)
class Loaded:
    """A shared model, or why there is none (exactly one of the two is set)."""

    model: PretrainedModel | None
    error: str | None


def _warm_up(pm: PretrainedModel) -> PretrainedModel:
    # The first call traces the tf.function (about a second): do it here, inside the loading
    # spinner, so the inference times the pages show are those of a learner's real request.
    pm.predict(np.zeros((1, *pm.input_shape[1:]), dtype=np.float32))
    return pm


# The arguments are only cache keys: a different weights file or Keras cache loads anew.
@st.cache_resource(show_spinner=False, max_entries=1)
def _resnet50(env_file: str, keras_home: str) -> PretrainedModel:
    imagenet.class_index()  # read the 1000 class names once, here rather than in a request
    return _warm_up(load_resnet50())


@st.cache_resource(show_spinner=False, max_entries=1)
def _vgg19(env_file: str, keras_home: str) -> PretrainedModel:
    return _warm_up(load_vgg19(include_top=False))


def _spinner_text(spec: WeightsSpec) -> str:
    env = os.environ.get(spec.env_var, "").strip()
    if env:
        return f"Loading {spec.model_name} with the weights file `{env}`…"
    if (keras_cache_dir() / spec.file_name).is_file():
        return f"Loading {spec.model_name} with ImageNet weights from Keras' cache…"
    return (
        f"Loading {spec.model_name}: Keras is downloading its ImageNet weights, a one-time "
        f"~{spec.size_mb} MB download into `{keras_cache_dir()}`…"
    )


def _get(spec: WeightsSpec, loader) -> Loaded:
    freeze_imported_objects()
    keys = (os.environ.get(spec.env_var, "").strip(), os.environ.get("KERAS_HOME", ""))
    try:
        with st.spinner(_spinner_text(spec)):
            return Loaded(loader(*keys), None)
    except CNNLabError as err:
        return Loaded(None, str(err))
    except Exception as err:  # out of memory, a broken install, ...: a message, not a traceback
        return Loaded(None, f"{spec.model_name} could not be loaded ({type(err).__name__}: {err}).")


def resnet50() -> Loaded:
    """ResNet50 with ImageNet weights (1000 classes), shared by all sessions."""
    return _get(RESNET50, _resnet50)


def vgg19() -> Loaded:
    """VGG19 without its classifier (input 224×224, output block5_pool), shared by all sessions."""
    return _get(VGG19_NOTOP, _vgg19)


def show_weights_note(loaded: Loaded) -> None:
    """Say honestly where the weights came from: a caption for Keras' verified ImageNet file,
    a warning for any other weights, the error when there are none."""
    if loaded.model is None:
        st.error(loaded.error or "The model could not be loaded.", icon="⚠️")
        return
    pm = loaded.model
    if pm.imagenet_verified:
        st.caption(
            f"{pm.name}: Keras' official ImageNet weights (MD5 checked), from "
            f"{pm.weights_source}; built and loaded in {pm.load_seconds:.1f} s."
        )
    else:
        st.warning(
            f"{pm.name} weights: {pm.weights_source}. This is **not** Keras' official ImageNet "
            "weights file (its MD5 checksum differs), so the outputs below are only what these "
            "weights compute. They are labelled with ImageNet's class names, but unless the file "
            "holds ImageNet-trained weights those labels mean nothing.",
            icon="⚠️",
        )
