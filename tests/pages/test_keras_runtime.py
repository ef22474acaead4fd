"""ui.keras_runtime: the workaround is in place, and a canary for when it can go."""

from __future__ import annotations

import sys
import types

import pytest
from streamlit.runtime.scriptrunner import script_runner

from ui import keras_runtime


@pytest.fixture
def fake_keras(monkeypatch):
    """A stand-in ``keras`` module that records ``backend.clear_session()`` calls."""
    calls: list[int] = []
    fake = types.SimpleNamespace(
        backend=types.SimpleNamespace(clear_session=lambda: calls.append(1))
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    return calls


def test_canary_streamlit_still_clears_keras_after_each_run(fake_keras):
    """Canary: Streamlit's own end-of-run hook still calls ``keras.backend.clear_session()``.

    The day this fails, an upgrade of Streamlit stopped clearing Keras after each run, and
    ``ui.keras_runtime.keep_keras_state_between_runs`` (and its call in app.py) can go.
    """
    hook = keras_runtime.streamlit_cleanup_hook()
    assert hook is not None, "Streamlit has no end-of-run hook any more: the workaround can go"
    hook()
    assert fake_keras == [1], (
        "Streamlit no longer clears the Keras session after each run: "
        "ui.keras_runtime's workaround can go"
    )


def test_after_the_workaround_streamlit_leaves_keras_alone(fake_keras):
    assert keras_runtime.keep_keras_state_between_runs()
    script_runner._clean_problem_modules()
    assert fake_keras == []


def test_app_applies_the_workaround_once_per_process():
    source = (keras_runtime.__file__.rsplit("/ui/", 1)[0]) + "/app.py"
    with open(source, encoding="utf-8") as f:
        assert "keep_keras_state_between_runs()" in f.read()
