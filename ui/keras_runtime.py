"""Keep Streamlit's end-of-run housekeeping from starving background Keras work.

Streamlit 1.67 ends every script run — every fragment rerun too — with
``keras.backend.clear_session()`` (a full ``gc.collect()``, the default graph reset and the
eager kernel cache cleared) and then another ``gc.collect(2)``. With TensorFlow loaded each
full collection walks ~360,000 objects: 0.6–1.6 s holding the GIL, measured on the 2-core
build machine. A progress fragment polling every second then leaves a training thread almost
no GIL time: a training measured stuck at its first batch for two minutes in the browser,
while the same job alone took 14 s. And ``clear_session`` resets Keras' global state under
other sessions' running models.

``keep_keras_state_between_runs()`` removes the Keras part of that cleanup (matplotlib's is
kept), and ``freeze_imported_objects()`` moves the objects that exist after TensorFlow's
import into the garbage collector's permanent generation (``gc.freeze``), so later full
collections only walk what was created since (measured: 40–110 ms instead of 0.6–1.6 s).
Both are process-wide and idempotent.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading

_LOG = logging.getLogger(__name__)

_LOCK = threading.Lock()
_state: dict = {"patched": False, "frozen": False, "streamlit_hook": None}


def _clean_problem_modules_without_keras() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        with contextlib.suppress(Exception):  # never let cleanup break a run
            plt.close("all")


def keep_keras_state_between_runs() -> bool:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after each run.

    Returns True if the cleanup hook was found and replaced (now or before).
    """
    with _LOCK:
        if _state["patched"]:
            return True
        try:
            from streamlit.runtime.scriptrunner import script_runner
        except ImportError:
            script_runner = None
        if script_runner is None or not hasattr(script_runner, "_clean_problem_modules"):
            _LOG.warning(
                "Streamlit's end-of-run cleanup hook (script_runner._clean_problem_modules) "
                "is gone: check whether this Streamlit still clears the Keras session after "
                "each run (tests/pages/test_keras_runtime.py) before relying on ui.keras_runtime."
            )
            return False
        _state["streamlit_hook"] = script_runner._clean_problem_modules
        script_runner._clean_problem_modules = _clean_problem_modules_without_keras
        _state["patched"] = True
        return True


def streamlit_cleanup_hook():
    """Streamlit's own end-of-run cleanup function (before the replacement), or None."""
    if _state["streamlit_hook"] is not None:
        return _state["streamlit_hook"]
    from streamlit.runtime.scriptrunner import script_runner

    return getattr(script_runner, "_clean_problem_modules", None)


def freeze_imported_objects() -> None:
    """Import TensorFlow/Keras, then ``gc.freeze()`` once per process (see module doc)."""
    import keras  # noqa: F401  (the import is the point: its objects get frozen)

    with _LOCK:
        if not _state["frozen"]:
            gc.collect()
            gc.freeze()
            _state["frozen"] = True
