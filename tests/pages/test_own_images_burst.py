"""The own-images page's "hold to record" burst under AppTest: the widget's batch (faked
here: AppTest has no browser; ``tests/e2e/test_own_images_camera.py`` records real bursts
from Chromium's fake camera) is parsed and decoded in the sandbox, its frames go to the
chosen class, the burst counts as one upload, and a hostile burst adds nothing."""

from __future__ import annotations

import pytest
import streamlit as st

from app_pages.sections import own_images_camera as section
from cnnlib.core.budgets import budgets
from tests.hostile_bursts import BURST_TRICKS, data_url, frame
from tests.pages.apptest import open_page, run_checked, values
from ui import own_images_camera as camera

#: Each test opens the whole page (about 20 s here): not for the fast loop.
pytestmark = pytest.mark.slow

#: Session key of the session's upload count (``ui.image_input``).
USAGE = "image_input_usage"


@pytest.fixture
def burst_page(monkeypatch):
    """The page on its Webcam source with the classes "cat" and "dog" (dog chosen); the
    burst widget replaced by one that sends each payload put in ``sent`` once."""
    sent, seen = [], []

    def fake_widget(**kwargs):
        seen.append(kwargs)
        return sent.pop(0) if sent else None

    monkeypatch.setattr(section, "burst_widget", fake_widget)
    st.cache_data.clear()
    at = open_page("own_images")
    at.radio(key="own_source").set_value("Webcam")
    run_checked(at)
    assert seen[-1]["disabled"]  # no class yet: the button is off
    for name in ("cat", "dog"):
        at.text_input(key="own_cam_new").set_value(name)
        at.button(key="own_cam_add").click()
        run_checked(at)
    assert not seen[-1]["disabled"] and seen[-1]["target"] == "dog"
    assert seen[-1]["side"] == 224 and seen[-1]["max_frames"] == 60
    yield at, sent
    st.cache_data.clear()


def test_a_burst_adds_its_frames_to_the_chosen_class_as_one_upload(burst_page):
    at, sent = burst_page
    good = [frame((320, 240)) for _ in range(6)]
    sent.append([*good[:3], data_url(b"not a photo at all"), *good[3:]])
    at = run_checked(at)
    shots = at.session_state[camera.CAPTURES]
    assert [c.class_name for c in shots] == ["dog"] * 6
    assert all(max(c.image.size) <= camera.CAPTURE_SIDE for c in shots)
    assert at.session_state[USAGE].uploads == 1  # one burst, one upload
    assert "Added 6 photo(s) from your burst to `dog`" in " ".join(values(at.success))
    assert "Photo 4 of the burst" in " ".join(values(at.warning))
    assert "`dog`: 6 photo(s)" in " ".join(values(at.caption))
    # the next run (no new burst) adds nothing; the photos are used like any capture
    at = run_checked(at)
    assert len(at.session_state[camera.CAPTURES]) == 6
    at.selectbox(key="own_cam_class").set_value("cat")
    sent.append(good[:5])
    at = run_checked(at)
    at.button(key="own_cam_use").click()
    at = run_checked(at)
    assert at.session_state["own_data"].folders.counts() == {"cat": 5, "dog": 6}


@pytest.mark.parametrize(
    "name", ["a dict instead of a list", "one frame more than the cap", "an SVG data URL"]
)
def test_a_hostile_burst_adds_nothing_and_says_why(burst_page, name):
    at, sent = burst_page
    trick = BURST_TRICKS[name]
    sent.append(trick.make(budgets()))
    at = run_checked(at)
    assert at.session_state[camera.CAPTURES] == []
    assert any(w in e for e in values(at.error) for w in trick.expect.words)
    assert "nothing was added" in " ".join(values(at.error))
