"""ui.session_cleanup: a session's trainings and temporary folders end with the session;
ui.image_input: uploads are decoded once per session and capped in count and bytes.

The janitor and the reaper are exercised directly (with a fake "is the session back?" and a
short grace time); one AppTest run checks that a task started in a real script run is
registered with that session's janitor. The browser test of a closed tab freeing its slot is
in tests/e2e/test_concurrency.py.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
from streamlit.runtime.state import SafeSessionState, SessionState
from streamlit.testing.v1 import AppTest

from cnnlib.training import tasks
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker, TrainingSlots
from ui import session_cleanup
from ui.session_cleanup import SessionJanitor, _Reaper


@dataclass(frozen=True)
class _Progress(TaskProgress):
    pass


class _UntilStopped(TaskWorker[_Progress]):
    """Holds its slot until asked to stop (a training that would run on for a closed tab)."""

    def __init__(self, slots: TrainingSlots | None = None):
        super().__init__(_Progress(), slots=slots, max_seconds=60)

    def work(self) -> None:
        self.stop_event.wait(60)


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_release_stops_the_sessions_training_and_frees_its_slot_for_the_queue():
    slots = TrainingSlots(1, max_waiting=1)
    janitor = SessionJanitor("closed-tab")
    mine = TaskHandle(_UntilStopped(slots)).start()
    janitor.own_task(mine)
    assert _wait_for(lambda: mine.snapshot().state == "running")
    other = TaskHandle(_UntilStopped(slots)).start()  # another visitor's, queued behind it
    assert _wait_for(lambda: other.snapshot().state == "queued")
    assert other.snapshot().queue_position == 1 and janitor.task_count == 1

    janitor.release()

    assert mine.wait(10).state == "stopped"
    assert _wait_for(lambda: other.snapshot().state == "running")
    assert slots.running == 1 and slots.waiting == 0
    assert janitor.task_count == 0
    other.stop()
    assert other.wait(10).state == "stopped" and slots.running == 0


def test_release_stops_the_sessions_filter_grid_and_frees_its_slot():
    """A closed tab's grid of filters (on a model every session shares) stops at its next
    step and its slot goes to the queue, like a training's."""
    import keras

    from cnnlib.training.filter_grid import FilterGridJob

    model = keras.Sequential(
        [keras.Input((64, 64, 3)), keras.layers.Conv2D(32, 3, activation="relu", name="conv")]
    )
    slots = TrainingSlots(1, max_waiting=1)
    janitor = SessionJanitor("closed-tab")
    grid = FilterGridJob(model, "conv", range(32), steps=500, max_seconds=600, slots=slots)
    janitor.own_task(grid.start())
    assert _wait_for(lambda: grid.snapshot().state == "running", 60)
    other = TaskHandle(_UntilStopped(slots)).start()  # another visitor's, queued behind it
    assert _wait_for(lambda: other.snapshot().state == "queued")

    janitor.release()

    p = grid.wait(60)
    assert p.state == "stopped" and p.filters_done < 32 and p.message is None
    assert _wait_for(lambda: other.snapshot().state == "running")
    other.stop()
    assert other.wait(10).state == "stopped" and slots.running == 0


def test_release_deletes_temporary_folders_and_is_idempotent():
    janitor = SessionJanitor("s")
    folder = janitor.temp_dir()
    (folder / "model.keras").write_bytes(b"x" * 1000)
    assert folder.is_dir()
    janitor.release()
    assert not folder.exists()
    janitor.release()  # twice is harmless


def test_release_empties_the_session_state():
    """Big objects go with the session, not at the next full garbage collection."""
    state = {"activations": np.zeros((1000, 1000), np.float32), "model": object()}
    janitor = SessionJanitor("s", state)
    janitor.release()
    assert state == {}


def test_release_empties_streamlits_own_session_state():
    """What a script run's context holds: a SafeSessionState, whose keys are a property."""
    state = SafeSessionState(SessionState(), yield_callback=lambda: None)
    state["activations"] = np.zeros((1000, 1000), np.float32)
    state["model"] = object()
    janitor = SessionJanitor("s", state)
    janitor.release()
    assert state.filtered_state == {}


def _reaper(frees: list, **kwargs) -> _Reaper:
    """A reaper whose sessions are gone after 0.01 s and whose collections only record when
    they ran (``frees``), so that no test triggers real collections in another."""
    kwargs = {"is_active": lambda sid: False, "grace": lambda: 0.01, **kwargs}
    return _Reaper(free=lambda: frees.append(time.monotonic()), **kwargs)


def test_a_failing_release_step_still_ends_the_session_and_collects(monkeypatch):
    closed, frees, errors = [], [], []
    reaper = _reaper(frees, close=closed.append, settle=0.01)

    class _Broken(SessionJanitor):
        def release(self) -> None:
            raise RuntimeError("a release step failed")

    monkeypatch.setattr(threading, "excepthook", errors.append)
    reaper.disconnected(_Broken("a"))
    assert _wait_for(lambda: errors and closed == ["a"] and len(frees) == 1)
    assert errors[0].exc_type is RuntimeError  # still reported (the server's log)


def test_a_failing_close_still_collects(monkeypatch):
    frees, errors = [], []

    def close(session_id: str) -> None:
        raise RuntimeError("Streamlit could not close the session")

    reaper = _reaper(frees, close=close, settle=0.01)
    monkeypatch.setattr(threading, "excepthook", errors.append)
    janitor = SessionJanitor("a")
    reaper.disconnected(janitor)
    assert _wait_for(lambda: errors and len(frees) == 1)
    assert janitor.released and errors[0].exc_type is RuntimeError


@pytest.mark.slow
def test_sessions_released_together_share_one_collection():
    frees = []
    reaper = _reaper(frees, settle=0.5, gc_every=2.0)
    first, second = SessionJanitor("a"), SessionJanitor("b")
    reaper.disconnected(first)
    reaper.disconnected(second)
    assert _wait_for(lambda: first.released and second.released)
    assert frees == []  # not before Streamlit has had time to close them
    assert _wait_for(lambda: len(frees) == 1)
    time.sleep(0.5)
    assert len(frees) == 1 and reaper.collections == 1


@pytest.mark.slow
def test_a_release_inside_the_wait_gets_one_collection_when_it_is_over():
    """The last sessions of a busy spell are collected without waiting for another visitor."""
    frees = []
    reaper = _reaper(frees, settle=0.01, gc_every=2.0)
    reaper.disconnected(SessionJanitor("a"))
    assert _wait_for(lambda: len(frees) == 1)
    for name in ("b", "c", "d"):  # released while the wait after that collection runs
        reaper.disconnected(SessionJanitor(name))
    assert _wait_for(lambda: len(frees) == 2, timeout=10)
    assert frees[1] - frees[0] >= 2.0 - 0.05  # not before the wait was over
    time.sleep(0.5)
    assert len(frees) == 2  # one for the three


def test_a_task_owned_after_release_is_stopped_at_once():
    janitor = SessionJanitor("s")
    janitor.release()
    late = TaskHandle(_UntilStopped()).start()
    janitor.own_task(late)
    assert late.wait(10).state == "stopped"


def test_janitor_does_not_keep_a_dropped_handle_alive():
    janitor = SessionJanitor("s")
    handle = TaskHandle(_UntilStopped()).start()
    worker = handle._worker
    janitor.own_task(handle)
    del handle  # the page dropped it: the handle's own finalizer stops the work
    assert worker.done_event.wait(10)
    assert janitor.task_count == 0


def test_reaper_releases_a_session_that_stays_away_then_closes_it():
    closed = []
    reaper = _reaper([], grace=lambda: 0.05, close=closed.append)
    janitor = SessionJanitor("gone")
    reaper.disconnected(janitor)
    assert reaper.waiting == 1
    assert _wait_for(lambda: closed == ["gone"])
    assert janitor.released
    assert reaper.waiting == 0 and reaper.adopt("gone") is None


def test_reaper_keeps_a_session_that_comes_back():
    closed = []
    reaper = _reaper([], grace=lambda: 0.3, close=closed.append)
    janitor = SessionJanitor("blip")
    reaper.disconnected(janitor)
    assert reaper.adopt("blip") is janitor  # its next run, within the grace time
    time.sleep(0.5)
    assert not janitor.released and closed == []


def test_reaper_waits_while_the_session_is_connected_but_not_yet_rerun():
    back = threading.Event()
    back.set()
    reaper = _reaper([], is_active=lambda sid: back.is_set(), grace=lambda: 0.05)
    janitor = SessionJanitor("reconnected")
    reaper.disconnected(janitor)
    time.sleep(0.3)
    assert not janitor.released and reaper.waiting == 1
    back.clear()  # it went away again
    assert _wait_for(lambda: janitor.released)


def test_start_listeners_see_every_started_task_once():
    seen = []

    def listener(handle):
        seen.append(handle)

    tasks.add_start_listener(listener)
    tasks.add_start_listener(listener)  # once per listener
    try:
        handle = TaskHandle(_UntilStopped())
        handle.start()
        handle.start()  # already started: not again
        assert seen == [handle]
        handle.stop()
        handle.wait(10)
    finally:
        tasks._START_LISTENERS.remove(listener)


def _start_a_task_app():
    import streamlit as st

    from cnnlib.training.tasks import TaskHandle
    from tests.test_session_cleanup import _UntilStopped
    from ui import session_cleanup

    session_cleanup.install()
    if "job" not in st.session_state:
        st.session_state.job = TaskHandle(_UntilStopped()).start()
    keeper = session_cleanup.janitor()
    st.write(f"tasks={keeper.task_count} session={keeper.session_id != ''}")


def test_a_task_started_in_a_script_run_belongs_to_that_sessions_janitor():
    at = AppTest.from_function(_start_a_task_app).run(timeout=30)
    assert not at.exception
    assert at.markdown[0].value == "tasks=1 session=True"
    job = at.session_state.job
    assert not job.done
    at.run(timeout=30)  # a rerun: the same janitor, still one task
    assert at.markdown[0].value == "tasks=1 session=True"
    job.stop()
    assert job.wait(10).state == "stopped"


def test_janitor_is_none_outside_a_script_run():
    assert session_cleanup.janitor() is None


# ---------------------------------------------------------------- upload caps (ui.image_input)


class _Upload(io.BytesIO):
    """What ``st.file_uploader`` returns: bytes with a name, a size and a file id."""

    def __init__(self, data: bytes, name: str, file_id: str):
        super().__init__(data)
        self.name, self.file_id, self.size = name, file_id, len(data)


def _uploads_app():
    import io

    import numpy as np
    import streamlit as st
    from PIL import Image

    from tests.test_session_cleanup import _Upload
    from ui.image_input import _USAGE, _load_all

    def png(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(buf, "PNG")
        return buf.getvalue()

    count, test = st.session_state.get("count", 2), st.session_state["test"]
    files = [_Upload(png(i), f"photo{i}.png", f"{test}-{i}") for i in range(count)]
    picked = _load_all(files)
    usage = st.session_state[_USAGE]
    st.write(f"picked={len(picked)} uploads={usage.uploads}")


def test_uploads_are_decoded_once_per_session_and_capped(monkeypatch):
    monkeypatch.setenv("CNNLAB_SESSION_UPLOADS", "3")
    at = AppTest.from_function(_uploads_app)
    at.session_state["test"] = "count"  # file ids unique to this test, as Streamlit's are
    at.run(timeout=30)
    assert not at.exception and not at.error
    assert at.markdown[0].value == "picked=2 uploads=2"
    at.run(timeout=30)  # the same two uploads again: not decoded nor counted again
    assert at.markdown[0].value == "picked=2 uploads=2"

    at.session_state["count"] = 5
    at.run(timeout=30)
    assert not at.exception
    assert at.markdown[0].value == "picked=3 uploads=3"  # the 4th is refused, the 5th not tried
    [message] = [e.value for e in at.error]
    assert "already decoded 3 uploads" in message and "Reload the page" in message

    at.session_state["count"] = 2
    at.run(timeout=30)  # the session goes on working with what it has
    assert not at.exception and not at.error
    assert at.markdown[0].value == "picked=2 uploads=3"


def test_decoded_images_kept_by_a_session_are_capped_in_bytes(monkeypatch):
    monkeypatch.setenv("CNNLAB_SESSION_IMAGE_BYTES", str(32 * 48 * 3 * 2))  # two images
    at = AppTest.from_function(_uploads_app)
    at.session_state["test"], at.session_state["count"] = "bytes", 3
    at.run(timeout=30)
    assert not at.exception
    assert at.markdown[0].value == "picked=2 uploads=3"
    [message] = [e.value for e in at.error]
    assert "one session may keep" in message and "Remove some images" in message
