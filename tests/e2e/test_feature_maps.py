"""The Feature-maps page in a real browser: upload a small MNIST convnet saved as ``.keras``,
see it run on a real test-set digit, pick a layer in the picker and see its grid of maps;
switch to the other views; upload a file that is not a Keras model and read the message.

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


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory, mnist_test_set):
    """The tutorials' convnet, trained one quick epoch on 2,000 real MNIST test digits."""
    from cnnlib import data
    from cnnlib.models import build_tutorial_convnet

    images, labels = (a[:2000] for a in mnist_test_set)
    model = build_tutorial_convnet(seed=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(data.to_model_input(images), labels.astype(np.int64), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "my_convnet.keras"
    model.save(path)
    return path


def _open(page, app_url):
    page.goto(app_url)
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Feature maps").click()
    wait_idle(page)
    page.get_by_text("Model", exact=True).wait_for()
    page.get_by_text("Upload", exact=True).click()
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
    page.get_by_text("not a .keras model file", exact=False).wait_for()
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "feature_maps_bad_upload")
