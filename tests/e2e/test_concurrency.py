"""Seven browser sessions on one server at once: trainings queue for the server's two slots,
a full queue says so, a closed tab frees its slot, shared ResNet50 serves several pages, and
nobody sees an exception or another session's models.

One server for the module with ``CNNLAB_MAX_TRAININGS=2`` (two trainings at once),
``CNNLAB_TRAINING_QUEUE=1`` (one waiting; one more is refused) and a 5 s
``server.disconnectedSessionTTL`` (a closed tab's session is cleaned after 5 s). All contexts
are driven from this one thread by interleaving: each is started, then each is polled.

The sessions:

- ``closer``: trains the intro convnet on MNIST (7,200 images, 50 epochs in batches of 16:
  it would run for many minutes), and is paused once it trains (a paused training keeps
  its slot and leaves the cores to the other sessions); then its browser context is closed;
  its slot must go to the queued training within the TTL.
- ``mnist_a``: trains on MNIST as long, is paused as well, and is stopped by its Stop button
  once the slot test is done (a stopped training keeps its model: it has finished).
- ``mnist_b``: trains on MNIST (500 images, 1 epoch): queued behind the two above first.
- ``own``: trains on its own images (the own-images page's built-in example, a convnet from
  scratch, 1 epoch); it first meets the full queue ("busy").
- ``classify_a``, ``classify_b``: classify the sample photo with the shared ResNet50.
- ``maps``: looks at ResNet50's feature maps of the sample photo.

ResNet50 has random weights from a local file (``tests/imagenet_weights.py``).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from cnnlib.models.pretrained import RESNET50
from tests.e2e.conftest import screenshot
from tests.e2e.harness import (
    VIEWPORT,
    ServerError,
    assert_no_traceback,
    streamlit_server,
    wait_idle,
)
from tests.imagenet_weights import resnet50_weights_file
from ui.session_cleanup import SETTLE_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Seconds a closed tab's session is kept before its cleanup (the server's TTL here).
TTL_SECONDS = 5
SERVER_ENV = {
    "CNNLAB_MAX_TRAININGS": "2",
    "CNNLAB_TRAINING_QUEUE": "1",
    "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(TTL_SECONDS),
}
SLOW_PRESET = "Intro convnet"
LONG = 240_000  #: ms: the slowest wait (a training on a busy 2-core machine)
EXCEPTION = '[data-testid="stException"]'


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server") / "streamlit.log"


@pytest.fixture(scope="module")
def server_url(server_log):
    env = {**SERVER_ENV, RESNET50.env_var: str(resnet50_weights_file())}
    try:
        with streamlit_server("app.py", log=server_log, env=env) as url:
            yield url
    except ServerError as err:
        pytest.fail(str(err))


def _open(browser, url: str, page_title: str):
    """A new browser context (its own session) on the page named ``page_title``."""
    context = browser.new_context(viewport={**VIEWPORT, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)  # home first: the app's navigation, then the page's sidebar link
    wait_idle(page, timeout=120_000)
    page.locator('[data-testid="stSidebar"]').get_by_text(page_title).click()
    return page


def _mnist_start(
    page, *, epochs: int, images: int | None, batch: int | None = None, preset: str = ""
) -> None:
    page.get_by_text("Train a convnet on MNIST").first.wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    if preset:
        page.get_by_role("combobox", name="Start from a preset").click()
        page.get_by_role("option", name=preset, exact=True).click()
        wait_idle(page)
    page.get_by_role("tab", name="② Train").click()
    box = page.get_by_label("Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Enter")
    wait_idle(page)
    if batch is not None:
        page.get_by_role("combobox", name="Batch size").click()
        page.get_by_role("option", name=str(batch), exact=True).click()
        wait_idle(page)
    if images is not None:  # the slider's minimum: 500 images
        page.locator('input[type="range"][aria-label="Training images"]').focus()
        page.keyboard.press("Home")
        wait_idle(page)
        expect(page.get_by_text(f"{images:,}", exact=True).first).to_be_visible()
    page.get_by_role("button", name="Start training").click()


def _status(page) -> str:
    """The MNIST page's training line ("Training · …", "Finished · …") or its queue note."""
    queued = page.get_by_text("Waiting for a free training slot", exact=False)
    if queued.count():
        return "queued"
    bars = page.locator('[data-testid="stProgress"]')
    return bars.first.inner_text().strip() if bars.count() else ""


def _wait_status(page, pattern: str, timeout_s: float = LONG / 1000) -> str:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        text = _status(page)
        if re.match(pattern, text):
            return text
        page.wait_for_timeout(500)
    raise AssertionError(f"status {_status(page)!r} never matched {pattern!r}")


def _pause(page) -> None:
    """Pause the running training (it keeps its slot). The Pause button is redrawn every
    second with the progress, so on a loaded machine a click may miss it: click until the
    page says it is paused."""
    for _ in range(10):
        with contextlib.suppress(PlaywrightTimeoutError):
            page.get_by_role("button", name="Pause").click(timeout=10_000)
        with contextlib.suppress(AssertionError):
            _wait_status(page, r"^Paused", timeout_s=10)
            return
    _wait_status(page, r"^Paused")


def _no_exception(pages: dict) -> None:
    for name, page in pages.items():
        assert page.locator(EXCEPTION).count() == 0, f"{name} shows an exception"


def test_seven_sessions_share_the_server(server_url, server_log, browser, tmp_path):
    pages: dict = {}
    try:
        _seven_sessions(server_url, browser, tmp_path, pages)
    except Exception:
        for name, page in pages.items():  # what each session showed when it went wrong
            screenshot(page, tmp_path, f"concurrency_failed_{name}")
        raise
    finally:
        for page in pages.values():
            page.context.close()
    # Nor on the server's side, once every closed tab's session has been cleaned up.
    time.sleep(TTL_SECONDS + SETTLE_SECONDS + 5)
    assert_no_traceback(server_log)


def _seven_sessions(server_url, browser, tmp_path, pages: dict) -> None:

    # Two long trainings take both slots: the intro convnet (no pooling: about 11 M
    # multiply-adds per image), 50 epochs of 7,200 digits would take many minutes.
    pages["closer"] = _open(browser, server_url, "Train on MNIST")
    _mnist_start(pages["closer"], epochs=50, images=None, batch=16, preset=SLOW_PRESET)
    _wait_status(pages["closer"], r"^Training")
    _pause(pages["closer"])
    pages["mnist_a"] = _open(browser, server_url, "Train on MNIST")
    _mnist_start(pages["mnist_a"], epochs=50, images=None, batch=16, preset=SLOW_PRESET)
    _wait_status(pages["mnist_a"], r"^Training")
    _pause(pages["mnist_a"])

    # A third waits in the queue (its place shown); a fourth finds the queue full.
    pages["mnist_b"] = _open(browser, server_url, "Train on MNIST")
    _mnist_start(pages["mnist_b"], epochs=1, images=500)
    _wait_status(pages["mnist_b"], r"^queued$")
    expect(pages["mnist_b"].get_by_text("Your place in the queue: 1", exact=False)).to_be_visible()
    own = pages["own"] = _open(browser, server_url, "Train on your own images")
    own.get_by_text("160 images in 4 classes").wait_for(timeout=120_000)
    wait_idle(own, timeout=120_000)
    own.get_by_role("tab", name="② Train").click()
    box = own.get_by_label("Epochs", exact=True)
    box.fill("1")
    box.press("Enter")
    wait_idle(own, timeout=120_000)
    own.get_by_role("button", name="Start training").click()
    busy = own.get_by_text("The server is busy: 2 trainings are running and 1 waiting")
    busy.wait_for(timeout=120_000)
    screenshot(own, tmp_path, "concurrency_queue_full")

    # Meanwhile, three sessions use the shared ResNet50.
    for name in ("classify_a", "classify_b"):
        pages[name] = _open(browser, server_url, "Classify with ResNet50")
    maps = pages["maps"] = _open(browser, server_url, "Feature maps")
    maps.get_by_text("ResNet50 (ImageNet)", exact=True).click()

    # The closed tab's (paused) training stops after the TTL, and the queued one takes its
    # slot while mnist_a still holds its own (so the slot came from the closed tab).
    screenshot(pages["mnist_b"], tmp_path, "concurrency_queued")
    pages.pop("closer").context.close()
    closed_at = time.monotonic()
    _wait_status(pages["mnist_b"], r"^Training|^Finished", timeout_s=TTL_SECONDS + 60)
    freed_after = time.monotonic() - closed_at
    assert _status(pages["mnist_a"]).startswith("Paused"), _status(pages["mnist_a"])
    assert freed_after >= TTL_SECONDS - 1  # not before the session's TTL

    # The own-images training now gets the free place in the queue, and waits for a slot.
    own.get_by_role("button", name="Start training").click()
    _wait_status(own, r"^queued$|^Training|^Starting|^Finished")
    screenshot(own, tmp_path, "concurrency_own_training")

    # The classifications and the feature maps finish.
    for name in ("classify_a", "classify_b"):
        pages[name].get_by_text("4 · ResNet50's top-5 guesses").wait_for(timeout=LONG)
    maps.get_by_text("Layers", exact=True).wait_for(timeout=LONG)
    maps.get_by_role("tab", name="Activations").wait_for(timeout=LONG)
    for name in ("classify_a", "maps"):
        wait_idle(pages[name], timeout=LONG)
        screenshot(pages[name], tmp_path, f"concurrency_{name}")

    # mnist_a is stopped by its learner; mnist_b and the own-images training finish.
    pages["mnist_a"].get_by_role("button", name="Stop training").click()
    _wait_status(pages["mnist_a"], r"^Stopped")
    _wait_status(pages["mnist_b"], r"^Finished")
    _wait_status(own, r"^Finished")
    own.get_by_role("tab", name="③ Results").click()  # where the own-images page says it
    for name in ("mnist_a", "mnist_b", "own"):
        page = pages[name]
        page.get_by_text(re.compile(r"^Kept in this session's models as")).first.wait_for(
            timeout=LONG
        )
        screenshot(page, tmp_path, f"concurrency_{name}")
    _no_exception(pages)

    # Each session sees only its own models on Feature maps: the MNIST trainer its MNIST
    # model, the own-images trainer its own, the feature-maps viewer none.
    mine = {"mnist_a": r"^MNIST · ", "own": r"^Own images · "}
    for name in ("mnist_a", "own", "maps"):
        page = pages[name]
        page.locator('[data-testid="stSidebar"]').get_by_text("Feature maps").click()
        page.get_by_text("Layers", exact=True).wait_for(timeout=LONG)
        wait_idle(page, timeout=LONG)
        for owner, pattern in mine.items():
            options = page.get_by_text(re.compile(pattern))
            if owner == name:
                expect(options.first).to_be_visible()
            else:
                expect(options).to_have_count(0)
    screenshot(own, tmp_path, "concurrency_own_models")
    _no_exception(pages)
