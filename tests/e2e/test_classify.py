"""The Classify page in a real browser: upload a photo through the file chooser, take a photo
with Chromium's fake camera, and see the top-5 chart and the Grad-CAM overlay.

The server gets ResNet50 weights from a local file (``CNNLAB_RESNET50_WEIGHTS``, random weights
made by the tests), so the page must also say that these are not ImageNet's weights.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cnnlib.data import samples
from tests.e2e.axe import check
from tests.e2e.conftest import screenshot, wait_idle


@pytest.fixture(scope="module")
def app_url(local_weights_env, app_url):
    """The harness's server, started after (so with) the local weights in its environment."""
    return app_url


def _open_classify(page, app_url: str) -> None:
    page.goto(f"{app_url}/classify")
    wait_idle(page, timeout=180_000)
    page.get_by_text("Classify with ResNet50").first.wait_for()


def _choose_source(page, source: str) -> None:
    page.locator('[data-testid="stRadio"]').first.get_by_text(source, exact=True).click()
    wait_idle(page)


def _full_screenshot(page, tmp_path, name: str) -> None:
    # Streamlit scrolls inside its own container: grow the viewport to capture the whole page.
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 50)})
    page.wait_for_timeout(1000)
    screenshot(page, tmp_path, name)


def _expect_results(page) -> None:
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("4 · ResNet50's top-5 guesses").wait_for(timeout=180_000)
    wait_idle(page, timeout=180_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    # The top-5 bar chart is drawn (plotly's SVG bars), and the Grad-CAM overlay is shown.
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator("g.point").first.wait_for(timeout=60_000)
    assert chart.locator("g.point").count() == 5
    overlay = main.get_by_text("Grad-CAM overlay for", exact=False)
    overlay.first.wait_for(timeout=60_000)
    image = page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM overlay for")
    # The overlay is drawn on the 224×224 model input (retried until the image has loaded).
    expect(image.locator("img").first).to_have_js_property("naturalWidth", 224, timeout=30_000)
    warning = page.locator('[data-testid="stAlertContentWarning"]')
    assert "official ImageNet" in warning.first.inner_text()


@pytest.mark.slow
def test_upload_photos_through_the_file_chooser_one_bad(app_url, page, tmp_path):
    cat, cup, bad = tmp_path / "chelsea.jpg", tmp_path / "coffee.png", tmp_path / "notes.jpg"
    samples.load_sample("cat (chelsea)").save(cat, "JPEG", quality=92)
    samples.load_sample("coffee cup").save(cup, "PNG")
    bad.write_text("a text file with a photo's name")
    _open_classify(page, app_url)
    _choose_source(page, "Upload")
    with page.expect_file_chooser() as chooser:
        page.locator('[data-testid="stFileUploaderDropzone"] button').click()
    chooser.value.set_files([str(cat), str(bad), str(cup)])
    _expect_results(page)
    errors = page.locator('[data-testid="stAlertContentError"]')
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("notes.jpg")
    expect(page.get_by_text("2 photos", exact=True)).to_have_count(1)
    expect(page.get_by_text("Original: 451×300", exact=False).first).to_be_visible()
    _full_screenshot(page, tmp_path, "classify_upload")


@pytest.mark.slow
def test_take_a_photo_with_the_camera(app_url, page, tmp_path):
    _open_classify(page, app_url)
    _choose_source(page, "Camera")
    take = page.get_by_role("button", name="Take Photo")
    take.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let the fake video stream start
    take.click()
    _expect_results(page)
    _full_screenshot(page, tmp_path, "classify_camera")


def test_saliency_side_by_side(app_url, page, tmp_path, axe_source):
    """Section 6 opened on the sample photo: the default methods' overlays, each timed; then
    the whole results page passes axe-core (WCAG 2.1 AA) in both themes."""
    _open_classify(page, app_url)
    _expect_results(page)
    page.get_by_text("6 · Saliency, side by side", exact=False).click()
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Where each method finds evidence for", exact=False).wait_for(timeout=240_000)
    wait_idle(page, timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    for method in ("Grad-CAM", "Grad-CAM++", "Gradients", "SmoothGrad"):
        image = page.locator('[data-testid="stImage"]').filter(
            has_text=re.compile(rf"^{re.escape(method)} · \d+\.\d\d s$")
        )
        expect(image).to_have_count(1)
        expect(image.locator("img").first).to_have_js_property("naturalWidth", 224)
    _full_screenshot(page, tmp_path, "classify_saliency")
    problems: list[str] = []
    check(page, axe_source, "Classify with its results and saliency", problems)
    assert not problems, "\n".join(problems)
