"""The Feature-maps page in a real browser: a convnet quick-trained on the page appears in the
model list under its session-registry name and is shown from there; upload a small MNIST
convnet saved as ``.keras``,
see it run on a real test-set digit, pick a layer in the picker and see its grid of maps;
switch to the other views; upload a file that is not a Keras model and read the message; the
saliency row, its sanity check, and what a filter wants to see beside the real patches that
excite it most, on the uploaded convnet; ResNet50 (random weights
from a local file, ``CNNLAB_RESNET50_WEIGHTS``) filling a grid of filters in the background,
stopped part way; a second tab's grid waiting for the one slot until the first tab is
closed and its grid stopped.

(ResNet50 and VGG19 from local weights files are tested under AppTest in
``tests/pages/test_feature_maps.py``.)
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.e2e.conftest import no_exception as _no_exception
from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import VIEWPORT

#: Seconds a closed tab's session is kept before its cleanup (the server's TTL here).
TTL_SECONDS = 5


@pytest.fixture(scope="module")
def one_slot_env():
    """One long job at a time on this module's server, and a closed tab's session released
    ``TTL_SECONDS`` after it closed (in os.environ while the server starts)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_MAX_TRAININGS", "1")
        mp.setenv("STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL", str(TTL_SECONDS))
        yield


@pytest.fixture(scope="module")
def app_url(local_weights_env, one_slot_env, app_url):
    """The harness's server, started after (so with) the local weights and one slot in its
    environment."""
    return app_url


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory, mnist_test_set):
    """The tutorials' convnet, trained one quick epoch on 2,000 real MNIST test digits."""
    from cnnlib.data import mnist as data
    from cnnlib.models import build_tutorial_convnet

    images, labels = (a[:2000] for a in mnist_test_set)
    model = build_tutorial_convnet(seed=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(data.to_model_input(images), labels.astype(np.int64), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "my_convnet.keras"
    model.save(path)
    return path


def _feature_maps(page, app_url):
    """The app's home, then Feature maps from the sidebar."""
    page.goto(app_url)
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Feature maps").click()
    wait_idle(page)


def _open(page, app_url):
    _feature_maps(page, app_url)
    page.get_by_text("Model", exact=True).wait_for()
    page.get_by_text("Upload a .keras file", exact=True).click()
    wait_idle(page)


def _upload(page, path):
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))


def _open_dropdown(page, picker) -> None:
    """Click a selectbox until its list shows (the first click after an upload only moves
    the focus away from the file uploader)."""
    for _ in range(3):
        picker.click()
        try:
            page.get_by_role("listbox").wait_for(timeout=3_000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError("the selectbox's list did not open")


@pytest.mark.slow
def test_pick_a_layer_of_an_uploaded_convnet_and_see_its_maps(
    app_url, page, tmp_path, small_model_file
):
    _open(page, app_url)
    _upload(page, small_model_file)
    page.get_by_text("Layer (8 in this model", exact=False).wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("This digit is labelled", exact=False)).to_have_count(1)
    expect(page.get_by_text("The model's answer:", exact=False)).to_have_count(1)
    # The picker lists each layer with its type and output shape; pick the second conv layer.
    picker = page.get_by_role("combobox", name=re.compile(r"^Layer \(8 in this model"))
    option = page.get_by_role("option").filter(has_text="Conv2D · 11×11×64")
    _open_dropdown(page, picker)
    expect(option).to_have_count(1)  # the dropdown lists every layer with type and shape
    option.click()
    wait_idle(page)
    grid = page.locator('[data-testid="stImage"]').filter(has_text="maps 1–64 of 64, each 11×11")
    grid.wait_for()
    box = grid.locator("img").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 200
    _no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 2400})
    screenshot(page, tmp_path, "feature_maps_grid")
    page.get_by_role("tab", name="Filters").click()
    page.get_by_text("First convolutional layer", exact=False).wait_for()
    page.get_by_role("tab", name="Spatial hierarchy").click()
    page.get_by_text("each cell sees 18 px", exact=False).wait_for()
    _no_exception(page)
    screenshot(page, tmp_path, "feature_maps_hierarchy")


def test_an_upload_that_is_not_a_keras_model_gets_a_message(app_url, page, tmp_path):
    _open(page, app_url)
    bad = tmp_path / "notes.keras"
    bad.write_bytes(b"these are my notes, not a model")
    _upload(page, bad)
    page.get_by_text("is not a .keras model file", exact=False).wait_for()
    expect(page.get_by_text("“notes.keras”", exact=False)).to_have_count(1)
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "feature_maps_bad_upload")


@pytest.mark.slow
def test_a_quick_trained_convnet_appears_under_its_registry_name(app_url, page, tmp_path):
    """Quick-train on the page (real MNIST digits, in the background): the model joins the
    session's registry, the list names it, and the page looks inside it."""
    _feature_maps(page, app_url)
    page.get_by_role("button", name="Train it now").click()
    page.get_by_text("Layer (8 in this model", exact=False).wait_for(timeout=400_000)
    wait_idle(page, timeout=120_000)
    radio = page.get_by_role("radiogroup").first
    name = radio.get_by_text(re.compile(r"^MNIST · Tutorial convnet \(quick\) · \d+\.\d %$"))
    expect(name).to_have_count(1)
    expect(radio.get_by_role("radio").first).to_be_checked()  # the new model, listed first
    expect(page.get_by_text("Quick-trained tutorial convnet:", exact=False)).to_have_count(1)
    expect(page.get_by_text("The model's answer:", exact=False)).to_have_count(1)
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_quick_trained")


def _tall_screenshot(page, tmp_path, name: str) -> None:
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 50)})
    page.wait_for_timeout(1000)
    screenshot(page, tmp_path, name)


def test_saliency_and_what_a_filter_wants_to_see_on_an_uploaded_convnet(
    app_url, page, tmp_path, small_model_file
):
    _open(page, app_url)
    _upload(page, small_model_file)
    page.get_by_text("Layer (8 in this model", exact=False).wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    page.get_by_role("tab", name="Saliency").click()
    row = page.get_by_text("Where each method finds evidence for", exact=False)
    row.wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    for method in ("Grad-CAM", "Grad-CAM++", "Gradients", "SmoothGrad"):
        image = page.locator('[data-testid="stImage"]').filter(
            has_text=re.compile(rf"^{re.escape(method)} · \d+\.\d\d s$")
        )
        expect(image).to_have_count(1)
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_saliency")
    # The sanity check: a job on a copy of the model, polled, then each map step by step.
    page.set_viewport_size(VIEWPORT)
    page.get_by_text("Sanity check: do these maps depend", exact=False).click()
    wait_idle(page)
    page.get_by_role("button", name=re.compile(r"^Run the sanity check \(24 maps\)")).click()
    page.get_by_text(re.compile(r"^Finished: 4 of 4 methods tested")).wait_for(timeout=240_000)
    wait_idle(page)
    charts = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="rank correlation")
    expect(charts).to_have_count(1)
    rows = page.get_by_role("img", name=re.compile(r"randomising each of 5 blocks"))
    expect(rows).to_have_count(4)  # Grad-CAM, Grad-CAM++, Gradients and the edge control
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_sanity_check")
    page.set_viewport_size(VIEWPORT)
    page.get_by_role("tab", name="What a filter wants to see").click()
    page.get_by_role("button", name="Show what this filter wants to see").click()
    page.get_by_text("after 40 steps", exact=False).wait_for(timeout=120_000)
    wait_idle(page)
    curve = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="mean activation")
    expect(curve).to_have_count(1)
    # Beside it, the 9 real test-set patches that excite the same filter most.
    patches = page.get_by_role("img", name=re.compile(r"^The 9 image patches of the first"))
    expect(patches).to_have_count(1)
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_filter_wants")


def _start_grid(page, app_url, *, most_steps: bool = False) -> None:
    """ResNet50's deep layer conv4_block1_1_conv (seconds per filter), a grid of 16 filters
    (of 100 steps each with ``most_steps``, else 20)."""
    _feature_maps(page, app_url)
    page.get_by_text("ResNet50 (ImageNet)", exact=True).click()
    page.get_by_text("Layer (176 in this model", exact=False).wait_for(timeout=240_000)
    wait_idle(page, timeout=240_000)
    picker = page.get_by_role("combobox", name=re.compile(r"^Layer \(176 in this model"))
    _open_dropdown(page, picker)
    page.keyboard.type("conv4_block1_1_conv")
    page.get_by_role("option").filter(has_text="conv4_block1_1_conv").first.click()
    wait_idle(page, timeout=120_000)
    page.get_by_role("tab", name="What a filter wants to see").click()
    count = page.get_by_label("Filters", exact=True)
    count.fill("16")
    count.press("Enter")
    wait_idle(page)
    if most_steps:
        page.locator('input[type="range"][aria-label="Steps per filter"]').focus()
        page.keyboard.press("End")
        wait_idle(page)
        expect(page.get_by_text("16 most active filters", exact=False)).to_contain_text("100 steps")
    page.get_by_role("button", name="Fill a grid of 16 filters").click()


def test_resnet50_grids_share_one_slot_a_closed_tab_frees_it_and_stop(
    app_url, browser, page, tmp_path
):
    """The server runs one long job at a time here (``CNNLAB_MAX_TRAININGS=1``): a first
    tab's grid runs, a second tab's waits for the slot; the first tab is closed, its session
    is released after the TTL, its grid stops and the second one runs; it is stopped part way."""
    first = browser.new_context(viewport=VIEWPORT).new_page()
    first.set_default_timeout(30_000)
    _start_grid(first, app_url, most_steps=True)  # long: it must still run when closed
    first.get_by_text("of 16 filters of conv4_block1_1_conv", exact=False).wait_for(timeout=60_000)
    _start_grid(page, app_url)
    page.get_by_text("Waiting for a free slot on the server (position 1)").wait_for(timeout=60_000)
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_grid_queued")
    expect(first.get_by_role("button", name="Stop")).to_be_visible()  # still running
    first.context.close()  # the tab is gone: its grid must not hold the slot
    page.get_by_text("of 16 filters of conv4_block1_1_conv", exact=False).wait_for(
        timeout=(TTL_SECONDS + 120) * 1000
    )
    page.get_by_text("What each filter of conv4_block1_1_conv", exact=False).wait_for(
        timeout=180_000
    )
    _tall_screenshot(page, tmp_path, "feature_maps_grid_running")
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"^Stopped: \d+ of 16 filters")).wait_for(timeout=120_000)
    _no_exception(page)
    _tall_screenshot(page, tmp_path, "feature_maps_grid_stopped")
