"""Session-state keys that cross pages (one place, documented).

Pages never reach into each other; what one page leaves for another lives in
``st.session_state`` under these keys, per browser session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import streamlit as st

from cnnlib.models.registry import ModelRegistry

T = TypeVar("T")

#: Keyword arguments that make a widget's value survive a visit to another page (its value
#: persists for the session): ``st.slider(..., **KEEP)``.
KEEP = {"persist_state": "session"}

#: Suffix of the key under which ``kept_tabs`` remembers a set of tabs' open tab.
KEPT = "_kept"

#: ``cnnlib.models.registry.ModelRegistry`` of every model trained in this session (MNIST,
#: own images…), newest first, with class names and input shape. Use ``model_registry()``.
MODEL_REGISTRY = "model_registry"
#: (page title, ``cnnlib.training.tasks.TaskHandle``) of the ONE training this session may run at a
#: time, whichever page started it (MNIST, the dense-vs-convnet experiment, Feature maps'
#: quick training, own images). Use ``ui.runs.running_task()`` / ``start()``, never the key
#: directly.
RUNNING_TASK = "running_training_task"
#: The last digit drawn (or uploaded) on the MNIST page, preprocessed: (28, 28) float32 in [0, 1],
#: light digit on dark background, as MNIST (× 255 for a model's raw-pixel input).
DRAWN_DIGIT = "mnist_drawn_digit"


def session_object(key: str, kind: type[T]) -> T:
    """This session's ``kind()`` under ``key``, created on first use (or when the key holds
    something else)."""
    value = st.session_state.get(key)
    if not isinstance(value, kind):
        value = st.session_state[key] = kind()
    return value


def model_registry() -> ModelRegistry:
    """This session's ``ModelRegistry`` (created on first use)."""
    return session_object(MODEL_REGISTRY, ModelRegistry)


def kept_tabs(labels: Sequence[str], key: str) -> Sequence:
    """``st.tabs(labels, key=key)``, stateful (only the open tab's ``.open`` is True; a tab
    change reruns), whose open tab is KEPT for the session like a ``KEEP`` widget: tabs take
    no ``persist_state``, and Streamlit forgets a widget's value while its page is not shown,
    so the choice is also kept under ``key + KEPT`` and restored from there."""
    ss = st.session_state
    if key not in ss and ss.get(key + KEPT) in labels:
        ss[key] = ss[key + KEPT]

    def keep() -> None:
        ss[key + KEPT] = ss[key]

    return st.tabs(labels, key=key, on_change=keep)


def open_tab(key: str, label: str) -> None:
    """Open ``label`` of the ``kept_tabs`` named ``key`` (call it before they are drawn)."""
    st.session_state[key] = st.session_state[key + KEPT] = label
