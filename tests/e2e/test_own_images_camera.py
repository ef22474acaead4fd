"""Webcam capture per class in a real browser: Chromium's fake camera plays a small
generated video (``--use-file-for-fake-video-capture``); photos of two classes are taken by
click, one removed, used (checked like an upload), a model trains on them, and a photo from
the camera gets a prediction. Then, in a fresh session, two classes are recorded by bursts
("Hold to record": one held with the mouse, one with the Space key), a model trains on them
and the live prediction refreshes by itself."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import no_exception, screenshot, wait_idle
from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.e2e.test_own_images import _open, _tab, _train_one_epoch

PHOTOS_PER_CLASS = 6


def write_y4m(path, frames: int = 30, width: int = 160, height: int = 120) -> None:
    """A YUV4MPEG2 (4:2:0) video of ``frames`` frames: a bright bar sweeping across a
    gradient, so successive photos differ."""
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    with open(path, "wb") as out:
        out.write(header)
        for i in range(frames):
            y = x.copy()
            left = (i * width // frames) % width
            y[:, left : left + 16] = 250
            out.write(b"FRAME\n")
            out.write(y.astype(np.uint8).tobytes())
            chroma = np.full((height // 2, width // 2), 128 + 3 * i % 100, np.uint8)
            out.write(chroma.tobytes())
            out.write((255 - chroma).tobytes())


@pytest.fixture(scope="module")
def camera_page(browser, tmp_path_factory):
    """A page of a Chromium whose fake camera plays the generated video."""
    video = tmp_path_factory.mktemp("camera") / "fake.y4m"
    write_y4m(video)
    chromium = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"],
    )
    context = chromium.new_context(viewport=VIEWPORT)
    context.grant_permissions(["camera"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
    chromium.close()


def _add_class(page, name: str) -> None:
    page.get_by_label("New class").fill(name)
    page.get_by_label("New class").press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Add class").click()
    wait_idle(page)


def _take_photo(page) -> None:
    page.get_by_role("button", name="Take Photo").click()
    wait_idle(page, timeout=60_000)
    page.get_by_role("button", name="Clear photo").click()
    wait_idle(page)


@pytest.mark.slow
def test_capture_two_classes_by_click_train_and_predict_from_the_camera(
    app_url, camera_page, tmp_path
):
    page = camera_page
    _open(page, app_url)
    page.get_by_role("radiogroup", name="Images").get_by_text("Webcam").click()
    wait_idle(page)
    for name in ("left", "right"):
        _add_class(page, name)
        page.get_by_text(f"Take a photo of {name}").wait_for()
        page.get_by_role("button", name="Take Photo").wait_for(timeout=60_000)
        for _ in range(PHOTOS_PER_CLASS):
            _take_photo(page)
        expect(page.get_by_text(f"{name}: {PHOTOS_PER_CLASS} photo(s)")).to_have_count(1)
    no_exception(page)
    page.get_by_role("button", name="Remove").first.click()
    wait_idle(page)
    expect(page.get_by_text(f"left: {PHOTOS_PER_CLASS - 1} photo(s)")).to_have_count(1)
    page.get_by_role("button", name="Use these photos").click()
    total = 2 * PHOTOS_PER_CLASS - 1
    page.get_by_text(f"{total} images in 2 classes").wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("Ready to train", exact=False)).to_have_count(1)
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "own_images_webcam_capture")
    page.set_viewport_size(VIEWPORT)

    _tab(page, "② Train")
    _train_one_epoch(page)
    no_exception(page)
    _tab(page, "④ Try it & export")
    page.get_by_role("radiogroup", name="Image source").get_by_text("Camera").click()
    wait_idle(page)
    page.get_by_role("button", name="Take Photo").last.click()
    page.get_by_text("most likely belongs to", exact=False).wait_for(timeout=120_000)
    wait_idle(page, timeout=60_000)
    no_exception(page)
    expect(page.get_by_text("% confidence", exact=False)).to_have_count(1)
    screenshot(page, tmp_path, "own_images_webcam_prediction")


def _hold_to_record(page, name: str, *, keyboard: bool, seconds: float = 2.0) -> int:
    """Hold the burst button of class ``name`` (the mouse, or Space on the focused button);
    returns how many photos the page says it added."""
    button = page.get_by_role("button", name=f"Hold to record {name}")
    button.wait_for()
    if keyboard:
        button.focus()
        page.keyboard.down(" ")
        expect(button).to_have_attribute("aria-pressed", "true")
        page.wait_for_timeout(seconds * 1000)
        page.keyboard.up(" ")
    else:
        button.hover()
        page.mouse.down()
        expect(button).to_have_attribute("aria-pressed", "true")
        page.wait_for_timeout(seconds * 1000)
        page.mouse.up()
    expect(page.get_by_role("status").filter(has_text="recorded and sent")).to_have_count(1)
    added = page.get_by_text(re.compile(rf"Added \d+ photo\(s\) from your burst to {name}"))
    added.wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    return int(re.search(r"Added (\d+)", added.inner_text()).group(1))


def _live_frame(page) -> int:
    """The frame number of the live prediction shown now."""
    text = page.get_by_text(re.compile(r"\(frame \d+\)")).first.inner_text()
    return int(re.search(r"\(frame (\d+)\)", text).group(1))


@pytest.mark.slow
def test_capture_two_classes_by_burst_train_and_see_a_live_prediction(
    app_url, camera_page, tmp_path
):
    page = camera_page
    _open(page, app_url)  # a new session
    page.get_by_role("radiogroup", name="Images").get_by_text("Webcam").click()
    wait_idle(page)
    expect(page.get_by_role("button", name="Hold to record")).to_be_disabled()  # no class yet
    counts = {}
    for name, keyboard in (("left", False), ("right", True)):
        _add_class(page, name)
        counts[name] = _hold_to_record(page, name, keyboard=keyboard)
        assert 5 <= counts[name] <= 20, counts  # about 5 a second for 2 s
        expect(page.get_by_text(f"{name}: {counts[name]} photo(s)")).to_have_count(1)
    no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "own_images_webcam_burst")
    page.set_viewport_size(VIEWPORT)
    page.get_by_role("button", name="Use these photos").click()
    page.get_by_text(f"{sum(counts.values())} images in 2 classes").wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("Ready to train", exact=False)).to_have_count(1)

    _tab(page, "② Train")
    _train_one_epoch(page)
    no_exception(page)
    _tab(page, "④ Try it & export")
    start = page.get_by_role("button", name="Start live prediction")
    start.scroll_into_view_if_needed()
    start.click()
    expect(page.get_by_role("button", name="Stop live prediction")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_text(re.compile(r"\(frame \d+\)")).first.wait_for(timeout=120_000)
    first = _live_frame(page)
    page.wait_for_function(  # refreshed by itself, without a click
        """(first) => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
            .some((m) => { const f = /\\(frame (\\d+)\\)/.exec(m.innerText);
                           return f && Number(f[1]) >= first + 2; })""",
        arg=first,
        timeout=60_000,
    )
    assert _live_frame(page) >= first + 2
    text = page.get_by_text(re.compile(r"\(frame \d+\)")).first.inner_text()
    assert re.search(r"(left|right) with \d+\.\d% confidence|Not sure", text), text
    expect(page.get_by_text(re.compile(r"^(left|right): \d+\.\d%$"))).to_have_count(2)
    no_exception(page)
    page.get_by_text(re.compile(r"\(frame \d+\)")).first.scroll_into_view_if_needed()
    screenshot(page, tmp_path, "own_images_webcam_live")
    page.get_by_role("button", name="Stop live prediction").click()
    expect(page.get_by_role("status").filter(has_text="Camera off")).to_have_count(1)
