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
import sys
import threading

_LOCK = threading.Lock()
_state = {"patched": False, "frozen": False}


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
            return False
        if not hasattr(script_runner, "_clean_problem_modules"):
            return False
        script_runner._clean_problem_modules = _clean_problem_modules_without_keras
        _state["patched"] = True
        return True


def freeze_imported_objects() -> None:
    """Import TensorFlow/Keras, then ``gc.freeze()`` once per process (see module doc)."""
    import keras  # noqa: F401  (the import is the point: its objects get frozen)

    with _LOCK:
        if not _state["frozen"]:
            gc.collect()
            gc.freeze()
            _state["frozen"] = True
