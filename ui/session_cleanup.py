"""What a browser session owns is released when the session ends.

Streamlit (1.67) ends a session in two steps. When its websocket closes, the session's
``scope="session"`` caches are cleared at once (their ``on_release`` runs); the session itself
is kept for ``server.disconnectedSessionTTL`` seconds so that a reconnecting tab finds its
state again, then dropped from memory without any hook, whenever Python collects it. A
training's ``TaskHandle`` stops when it is garbage-collected, but "whenever" is too late for a
training slot that another visitor waits for.

Nor is "whenever" soon enough for memory: a session's state (trained models, feature maps of
ResNet50's 176 layers, datasets) sits in reference cycles that only a full garbage collection
frees, which TensorFlow's millions of objects make rare.

So each session gets a ``SessionJanitor`` in a session-scoped ``st.cache_resource``
(``track()``, called by ``app.py`` on every run). Every task started in the session is
registered with it (``cnnlib.training.tasks.add_start_listener``, set up once by ``install()``), and
temporary folders can be made through it (``temp_dir()``). When the websocket closes,
``on_release`` waits out the same TTL; if the session has not come back by then (Streamlit
no longer lets it resume), its trainings are stopped (their ``TrainingSlots`` slot or queue
place is freed at once), its temporary folders deleted and its session state emptied; then
Streamlit closes the session for good (``AppSession.shutdown``: without it, the images the
session was sent stay in Streamlit's media file manager for the life of the process), and a
full garbage collection follows ``SETTLE_SECONDS`` later, then the C heap's free pages are
given back to the system (``cnnlib.core.heap.free_memory``). Collections are at most one every
``GC_EVERY_SECONDS``; a session released sooner gets the next one at the end of that wait,
so that the last sessions of a busy spell are not left in memory until the next visitor. A
session that reconnects in time adopts its janitor again on its next run.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, MutableMapping
from pathlib import Path

import streamlit as st

from cnnlib.core.heap import free_memory
from cnnlib.training import tasks

_LOGGER = logging.getLogger(__name__)

#: Seconds between a session's disconnection and its cleanup when Streamlit's option is unset.
DEFAULT_GRACE_SECONDS = 120.0
#: Fewest seconds between two full garbage collections after sessions ended.
GC_EVERY_SECONDS = 30.0
#: Seconds from a release to its collection (Streamlit closes the session meanwhile).
SETTLE_SECONDS = 1.0


class SessionJanitor:
    """The tasks and temporary folders of one session, and ``release()`` to end them all.

    Holds tasks weakly (a handle dropped by the page stops by itself) and is thread-safe:
    ``release`` runs on a timer thread, never in the script thread.
    """

    def __init__(self, session_id: str, state: MutableMapping | None = None):
        self.session_id = session_id
        #: The session's state (Streamlit's thread-safe ``SafeSessionState``), emptied by
        #: ``release``; None: nothing to empty.
        self._state = state
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
        """Stop every unfinished task (leaving its slot or queue place now), delete the
        temporary folders and empty the session state. Idempotent."""
        with self._lock:
            self.released = True
            handles, self._tasks = list(self._tasks), weakref.WeakSet()
            folders, self._folders = self._folders, []
            state, self._state = self._state, None
        for handle in handles:
            if not handle.done:
                handle.stop()
        for folder in folders:
            folder.cleanup()
        if state is not None:
            _empty(state)
        if handles or folders:
            _LOGGER.info(
                "Session %s ended: stopped %d task(s), removed %d temporary folder(s).",
                self.session_id,
                sum(1 for h in handles),
                len(folders),
            )


def _empty(state) -> None:
    """Delete every key of a session state (Streamlit's ``SafeSessionState``, whose keys are
    its ``filtered_state`` property, or a dict)."""
    keys = list(state.filtered_state if hasattr(state, "filtered_state") else state)
    for key in keys:
        with contextlib.suppress(KeyError):
            del state[key]


class _Reaper:
    """Releases janitors whose session stays away for ``grace`` seconds after disconnecting.

    ``is_active(session_id)`` says whether a session is connected again; a janitor waiting
    here is ``adopt``-ed back by its session's next run. ``close(session_id)``, called after
    a release, ends the session in Streamlit for good.
    """

    def __init__(
        self,
        is_active: Callable[[str], bool],
        grace: Callable[[], float],
        close: Callable[[str], None] = lambda session_id: None,
        gc_every: float = GC_EVERY_SECONDS,
        settle: float = SETTLE_SECONDS,
        free: Callable[[], None] | None = None,
    ):
        self._is_active, self._grace, self._close = is_active, grace, close
        self._gc_every, self._settle = gc_every, settle
        self._free = free or free_memory
        self._lock = threading.Lock()
        self._waiting: dict[str, SessionJanitor] = {}
        self._last_gc = -gc_every
        self._gc_pending = False
        #: Full garbage collections run after releases (for tests and the log).
        self.collections = 0

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
            return
        try:
            janitor.release()
        finally:  # whatever a step raised (the thread logs it), the next ones still run
            try:
                self._close(janitor.session_id)
            finally:
                self._schedule_collection()

    def _schedule_collection(self) -> None:
        """One collection for every release until it runs: ``settle`` seconds from now (the
        session's close runs on Streamlit's event loop meanwhile), and not sooner than
        ``gc_every`` seconds after the last one."""
        with self._lock:
            if self._gc_pending:
                return
            self._gc_pending = True
            wait = max(self._settle, self._last_gc + self._gc_every - time.monotonic())
        timer = threading.Timer(wait, self._collect)
        timer.daemon = True
        timer.name = "cnnlab-session-gc"
        timer.start()

    def _collect(self) -> None:
        with self._lock:
            self._gc_pending = False
            self._last_gc = time.monotonic()
            self.collections += 1
        self._free()

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


def _close(session_id: str) -> None:
    # Streamlit forgets a stored session after its TTL without shutting it down, so the
    # images it sent (its media files) and its uploads stay referenced and are never freed.
    # clear_user_info_for_session is Streamlit's thread-safe way (logout uses it) to close a
    # stored session completely, on the event loop: AppSession.shutdown() releases them.
    from streamlit import runtime

    if runtime.exists() and not runtime.get_instance().is_active_session(session_id):
        runtime.get_instance().clear_user_info_for_session(session_id)


def grace_seconds() -> float:
    """Streamlit's ``server.disconnectedSessionTTL`` (seconds a closed tab may come back)."""
    try:
        return float(st.get_option("server.disconnectedSessionTTL"))
    except (RuntimeError, TypeError, ValueError):
        return DEFAULT_GRACE_SECONDS


REAPER = _Reaper(_is_active, grace_seconds, _close)


def _on_release(janitor: SessionJanitor) -> None:
    REAPER.disconnected(janitor)


@st.cache_resource(scope="session", on_release=_on_release, show_spinner=False)
def _janitor(session_id: str, _state: MutableMapping | None) -> SessionJanitor:
    return REAPER.adopt(session_id) or SessionJanitor(session_id, _state)


def janitor() -> SessionJanitor | None:
    """This session's janitor (None outside a Streamlit script run, e.g. in a plain test)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else _janitor(ctx.session_id, ctx.session_state)


def track() -> None:
    """Give this session its janitor (every run, in ``app.py``), so that its state is
    emptied when it ends, whether or not it trained."""
    janitor()


def _own_started_task(handle: tasks.TaskHandle) -> None:
    keeper = janitor()
    if keeper is not None:
        keeper.own_task(handle)


def install() -> None:
    """Register every task a session starts with its janitor (idempotent; ``app.py``)."""
    tasks.add_start_listener(_own_started_task)
