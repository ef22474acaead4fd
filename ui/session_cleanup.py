"""What a browser session owns is released when the session ends.

Streamlit (1.67) ends a session in two steps. When its websocket closes, the session's
``scope="session"`` caches are cleared at once (their ``on_release`` runs); the session itself
is kept for ``server.disconnectedSessionTTL`` seconds so that a reconnecting tab finds its
state again, then dropped from memory without any hook, whenever Python collects it. A
training's ``TaskHandle`` stops when it is garbage-collected, but "whenever" is too late for a
training slot that another visitor waits for.

So each session gets a ``SessionJanitor`` in a session-scoped ``st.cache_resource``. Every task
started in the session is registered with it (``cnnlib.tasks.add_start_listener``, set up once
in ``app.py`` by ``install()``), and temporary folders can be made through it
(``temp_dir()``). When the websocket closes, ``on_release`` waits out the same TTL; if the
session has not come back by then, its trainings are stopped (their ``TrainingSlots`` slot or
queue place is freed at once) and its temporary folders deleted. A session that reconnects
in time adopts its janitor again on its next run.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from cnnlib import tasks

_LOGGER = logging.getLogger(__name__)

#: Seconds between a session's disconnection and its cleanup when Streamlit's option is unset.
DEFAULT_GRACE_SECONDS = 120.0


class SessionJanitor:
    """The tasks and temporary folders of one session, and ``release()`` to end them all.

    Holds tasks weakly (a handle dropped by the page stops by itself) and is thread-safe:
    ``release`` runs on a timer thread, never in the script thread.
    """

    def __init__(self, session_id: str):
        self.session_id = session_id
        self._lock = threading.Lock()
        self._tasks: weakref.WeakSet = weakref.WeakSet()
        self._folders: list[tempfile.TemporaryDirectory] = []
        self.released = False

    def own_task(self, handle: tasks.TaskHandle) -> None:
        """Stop ``handle`` when the session ends (or at once, if it already has)."""
        with self._lock:
            released = self.released
            if not released:
                self._tasks.add(handle)
        if released:
            handle.stop()

    def temp_dir(self, prefix: str = "cnnlab-") -> Path:
        """A new temporary folder, deleted with its content when the session ends."""
        folder = tempfile.TemporaryDirectory(prefix=prefix)
        with self._lock:
            self._folders.append(folder)
        return Path(folder.name)

    @property
    def task_count(self) -> int:
        """Tasks registered and not yet finished."""
        with self._lock:
            return sum(1 for h in self._tasks if not h.done)

    def release(self) -> None:
        """Stop every unfinished task (leaving its slot or queue place now) and delete the
        temporary folders. Idempotent."""
        with self._lock:
            self.released = True
            handles, self._tasks = list(self._tasks), weakref.WeakSet()
            folders, self._folders = self._folders, []
        for handle in handles:
            if not handle.done:
                handle.stop()
        for folder in folders:
            folder.cleanup()
        if handles or folders:
            _LOGGER.info(
                "Session %s ended: stopped %d task(s), removed %d temporary folder(s).",
                self.session_id,
                sum(1 for h in handles),
                len(folders),
            )


class _Reaper:
    """Releases janitors whose session stays away for ``grace`` seconds after disconnecting.

    ``is_active(session_id)`` says whether a session is connected again; a janitor waiting
    here is ``adopt``-ed back by its session's next run.
    """

    def __init__(self, is_active: Callable[[str], bool], grace: Callable[[], float]):
        self._is_active, self._grace = is_active, grace
        self._lock = threading.Lock()
        self._waiting: dict[str, SessionJanitor] = {}

    def disconnected(self, janitor: SessionJanitor) -> None:
        with self._lock:
            self._waiting[janitor.session_id] = janitor
        self._arm(janitor)

    def _arm(self, janitor: SessionJanitor) -> None:
        timer = threading.Timer(self._grace(), self._expire, (janitor,))
        timer.daemon = True
        timer.name = "cnnlab-session-reaper"
        timer.start()

    def _expire(self, janitor: SessionJanitor) -> None:
        with self._lock:
            if self._waiting.get(janitor.session_id) is not janitor:
                return  # adopted again by its session
            if self._is_active(janitor.session_id):
                back = True  # reconnected, not yet rerun: look again later
            else:
                back = False
                del self._waiting[janitor.session_id]
        if back:
            self._arm(janitor)
        else:
            janitor.release()

    def adopt(self, session_id: str) -> SessionJanitor | None:
        """The janitor of a session that reconnected within the grace time, or None."""
        with self._lock:
            return self._waiting.pop(session_id, None)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def _is_active(session_id: str) -> bool:
    from streamlit import runtime

    return runtime.exists() and runtime.get_instance().is_active_session(session_id)


def grace_seconds() -> float:
    """Streamlit's ``server.disconnectedSessionTTL`` (seconds a closed tab may come back)."""
    try:
        return float(st.get_option("server.disconnectedSessionTTL"))
    except (RuntimeError, TypeError, ValueError):
        return DEFAULT_GRACE_SECONDS


REAPER = _Reaper(_is_active, grace_seconds)


def _on_release(janitor: SessionJanitor) -> None:
    REAPER.disconnected(janitor)


@st.cache_resource(scope="session", on_release=_on_release, show_spinner=False)
def _janitor(session_id: str) -> SessionJanitor:
    return REAPER.adopt(session_id) or SessionJanitor(session_id)


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else ctx.session_id


def janitor() -> SessionJanitor | None:
    """This session's janitor (None outside a Streamlit script run, e.g. in a plain test)."""
    session_id = _session_id()
    return None if session_id is None else _janitor(session_id)


def _own_started_task(handle: tasks.TaskHandle) -> None:
    keeper = janitor()
    if keeper is not None:
        keeper.own_task(handle)


def install() -> None:
    """Register every task a session starts with its janitor (idempotent; ``app.py``)."""
    tasks.add_start_listener(_own_started_task)
