"""Session-state keys that cross pages (one place, documented).

Pages never reach into each other; what one page leaves for another lives in
``st.session_state`` under these keys, per browser session.
"""

from __future__ import annotations

from typing import TypeVar

import streamlit as st

from cnnlib.models.registry import ModelRegistry

T = TypeVar("T")

#: Keyword arguments that make a widget's value survive a visit to another page (its value
#: persists for the session): ``st.slider(..., **KEEP)``.
KEEP = {"persist_state": "session"}

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
