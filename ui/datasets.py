"""MNIST / Fashion-MNIST for the pages: cached loading with the test-set fallback.

``load_for_page(name)`` never raises: it returns a ``PageDataset`` holding either the data
(the full dataset, or — when only the test files exist — the clearly labelled split of the
10,000 test images) or the learner-friendly message saying what was tried and how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import CNNLabError, DataUnavailableError
from cnnlib.data import mnist as data

#: Fraction of the 10,000 test images used for training in the fallback split.
FALLBACK_TRAIN_FRACTION = 0.8


@dataclass(frozen=True)
class PageDataset:
    """What the page trains and tests on, or why there is nothing.

    ``x_train``/``x_test``: uint8 (N, 28, 28), ``y_train``/``y_test``: uint8 (N,), or None
    with ``error`` set. ``fallback``: True when the data is the split of the test files;
    ``notice`` explains that split (or is empty).
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    fallback: bool = False
    notice: str = ""
    error: str = ""

    @property
    def available(self) -> bool:
        return self.x_train is not None

    @property
    def source(self) -> str:
        """One line for captions: what the model is trained and tested on."""
        if not self.available:
            return f"{self.title}: not available"
        kind = "test-set split" if self.fallback else "full dataset"
        return (
            f"{self.title} ({kind}): {len(self.x_train):,} training images, "
            f"{len(self.x_test):,} test images"
        )


@st.cache_data(max_size=budgets().cache_bytes, show_spinner="Loading the dataset…", max_entries=4)
def _load(name: str) -> PageDataset:
    title = data.DATASET_TITLES[name]
    classes = tuple(data.CLASS_NAMES[name])
    try:
        (x_train, y_train), (x_test, y_test) = data.load_dataset(name)
        return PageDataset(name, title, classes, x_train, y_train, x_test, y_test)
    except DataUnavailableError as err:
        full_error = str(err)
        if not getattr(err, "test_files_available", False):
            return PageDataset(name, title, classes, error=full_error)
        missing = ", ".join(getattr(err, "missing", []) or ["the training files"])
    except CNNLabError as err:  # a damaged file: name it, offer nothing half-read
        return PageDataset(name, title, classes, error=str(err))
    try:
        (x_train, y_train), (x_test, y_test) = data.load_test_split(
            name, train_fraction=FALLBACK_TRAIN_FRACTION
        )
    except CNNLabError as split_err:
        return PageDataset(name, title, classes, error=f"{full_error}\n\n{split_err}")
    total = len(x_train) + len(x_test)
    notice = (
        f"**Fallback data:** the {title} training files are not on this machine (missing: "
        f"{missing}), so the page uses the {total:,} real images of its **test set only**, "
        f"split {len(x_train):,} for training / {len(x_test):,} for testing (each class split "
        "the same way). Accuracies are real but measured on fewer images than the full "
        "dataset's 10,000 test images."
    )
    return PageDataset(
        name, title, classes, x_train, y_train, x_test, y_test, fallback=True, notice=notice
    )


def load_for_page(name: str) -> PageDataset:
    """The dataset ``name`` ("mnist" | "fashion_mnist") for the page; never raises."""
    return _load(name)


def forget() -> None:
    """Drop the cached result (after the learner added the files), so the next load looks again."""
    _load.clear()
