"""Page-side helpers for "real examples" on the Feature-maps page: the images searched for the
patches that excite a filter most, prepared as the model expects, and the search itself
(``cnnlib.inspect.patches.top_patches``), each computed once and kept per session.

Which images (the issue's "the learner's data, the MNIST test set, or the sample photos"):

- a model of MNIST's shape (``preprocessing == "mnist"``): the first ``DIGITS`` test images
  of MNIST, or of Fashion-MNIST for a model with Fashion-MNIST's class names;
- a model trained on the learner's own data (an own-images model): the images of that data
  its registry entry carries (``RegisteredModel.examples``, e.g. its validation images: the
  registry is how they cross pages; this page never reaches into another);
- ResNet50 and VGG19: the built-in sample photos, prepared with ImageNet's
  ``preprocess_input``;
- any other model (uploads): the same sample photos, resized to the model's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.core.errors import DataUnavailableError
from cnnlib.data import samples
from cnnlib.data.mnist import CLASS_NAMES, DATASET_TITLES
from cnnlib.inspect import features as F
from cnnlib.inspect import imagenet
from cnnlib.inspect.patches import TopPatches, top_patches
from ui.datasets import load_for_page
from ui.features_session import ModelView

#: Test images searched for an MNIST-shaped model (one forward pass to the layer, batched).
DIGITS = 2000
#: Searches kept per session (a search holds 9 small patches).
KEPT = 32


@dataclass(frozen=True)
class PatchSet:
    """The images searched: ``inputs`` (N, H, W, C) float32 prepared as the model expects,
    ``shown`` the same N images as uint8 (N, H, W) or (N, H, W, 3) for display, and
    ``source`` saying what they are, for a caption ("the first 2,000 test images of
    MNIST digits")."""

    inputs: np.ndarray
    shown: np.ndarray
    source: str


def _dataset_name(view: ModelView) -> str:
    fashion = view.class_names == tuple(CLASS_NAMES["fashion_mnist"])
    return "fashion_mnist" if fashion else "mnist"


def _digits(view: ModelView) -> PatchSet:
    name = _dataset_name(view)
    ds = load_for_page(name)
    if not ds.available:
        raise DataUnavailableError(ds.error)
    shown = ds.x_test[:DIGITS]
    inputs = np.concatenate(
        [F.digit_input(d / 255.0, view.input_shape, raw_pixels=view.raw_pixels) for d in shown]
    )
    if view.input_shape[:2] != (28, 28):  # shown as the model sees them
        shown = (inputs[..., 0] / (255.0 if view.raw_pixels else 1.0) * 255.0).astype(np.uint8)
    source = f"the first {len(shown):,} test images of {DATASET_TITLES[name]}"
    return PatchSet(inputs, shown, source)


def _photos(view: ModelView) -> PatchSet:
    names = list(samples.PHOTOS)
    photos = [samples.load_sample(n) for n in names]
    if view.preprocessing == "imagenet":
        inputs = np.concatenate([imagenet.prepare(p) for p in photos])
        shown = np.stack([np.asarray(imagenet.resize_for_model(p)) for p in photos])
    else:
        shape = view.input_shape
        inputs = np.concatenate(
            [F.image_input(p, shape, raw_pixels=view.raw_pixels) for p in photos]
        )
        size = (shape[1], shape[0])
        shown = np.stack([np.asarray(p.convert("RGB").resize(size)) for p in photos])
    return PatchSet(inputs.astype(np.float32), shown, f"the {len(photos)} sample photos")


def _learners(view: ModelView) -> PatchSet:
    x = view.examples  # (N, H, W, C) uint8 raw pixels at the model's input size
    inputs = x.astype(np.float32) / (1.0 if view.raw_pixels else 255.0)
    shown = x[..., 0] if x.shape[-1] == 1 else x
    return PatchSet(inputs, shown, view.examples_source)


@st.cache_resource(scope="session", max_entries=2, show_spinner=False)
def _patch_set(token: str, _view: ModelView) -> PatchSet:
    if _view.examples is not None:
        return _learners(_view)
    return _digits(_view) if _view.preprocessing == "mnist" else _photos(_view)


def patch_set(view: ModelView) -> PatchSet:
    """The images searched for ``view``'s model (see the module docstring), prepared once
    per model view. Raises ``DataUnavailableError`` when MNIST is not on this machine."""
    return _patch_set(view.token, view)


@st.cache_data(scope="session", max_entries=KEPT, show_spinner=False)
def _top(token: str, layer: str, channel: int, k: int, _view: ModelView) -> TopPatches:
    images = patch_set(_view)
    return top_patches(_view.runner, layer, channel, images.inputs, images=images.shown, k=k)


def strongest_patches(view: ModelView, layer: str, channel: int, k: int = 9) -> TopPatches:
    """The ``k`` patches of ``patch_set(view)`` that excite ``channel`` of ``layer`` most,
    each cropped to the cell's receptive field (one search per (model, layer, channel) per
    session). Raises ``CNNLabError`` (e.g. a layer whose receptive field is not known)."""
    return _top(view.token, layer, int(channel), int(k), view)
