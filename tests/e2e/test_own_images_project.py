"""The own-images page end to end in a real browser, on the built-in example (real
Fashion-MNIST images): set a test share aside, train, see the held-out test; export every
format as a job, see each file's check and download it; explore the threshold and the map
of the data (click a point: its image opens); save the project, then open it in a fresh
browser context and find the same classes and model."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

from cnnlib.training.export import EXPORT_FORMATS
from tests.e2e.conftest import no_exception, screenshot, wait_idle
from tests.e2e.harness import VIEWPORT
from tests.e2e.test_own_images import _open, _tab, _train_one_epoch

TALL = {"width": 1400, "height": 3000}


def _slider(page, label: str):
    return page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")


def _press(page, label: str, key: str, times: int) -> None:
    thumb = _slider(page, label)
    thumb.focus()
    for _ in range(times):
        thumb.press(key)
    wait_idle(page)


def _tall_screenshot(page, tmp_path, name: str) -> None:
    page.set_viewport_size(TALL)
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, name)
    page.set_viewport_size(VIEWPORT)


def _download(page, button_name, target):
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name=button_name).click()
    download.value.save_as(target)
    return target.read_bytes()


@pytest.mark.slow
def test_test_share_export_threshold_map_save_and_resume(app_url, page, browser, tmp_path):
    _open(page, app_url)
    expect(page.get_by_text("160 images in 4 classes")).to_have_count(1)
    _tab(page, "② Train")
    _press(page, "Image size (pixels)", "ArrowLeft", 2)  # 64 → 32
    _press(page, "Test share", "ArrowRight", 4)  # 0.00 → 0.20
    expect(_slider(page, "Test share")).to_have_value("0.2")
    _train_one_epoch(page)
    no_exception(page)

    _tab(page, "③ Results")
    page.get_by_text("Held-out test", exact=True).scroll_into_view_if_needed()
    page.get_by_text("32 images of your data, set aside before training.").wait_for()
    expect(page.get_by_text("Test accuracy", exact=True)).to_have_count(1)
    expect(page.get_by_text(re.compile(r"never saw; validation accuracy was"))).to_have_count(1)
    validation = page.locator('[data-testid="stMetric"]').filter(has_text="Validation accuracy")
    shown_accuracy = validation.first.locator('[data-testid="stMetricValue"]').inner_text()
    _tall_screenshot(page, tmp_path, "own_images_held_out")

    _tab(page, "④ Try it & export")
    for fmt in ("keras", "litert_int8", "saved_model"):  # LiteRT float32 and ONNX are on
        page.get_by_role("button", name=EXPORT_FORMATS[fmt].title, exact=True).click()
        wait_idle(page)
    page.get_by_role("button", name="Export and check").click()
    page.get_by_role("button", name=re.compile(r"^ONNX \(\.onnx\) · ")).wait_for(timeout=400_000)
    wait_idle(page, timeout=60_000)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "own_images_export")
    for fmt, spec in EXPORT_FORMATS.items():
        data = _download(page, re.compile(f"^{re.escape(spec.title)} · "), tmp_path / fmt)
        assert len(data) > 1000, fmt
        if fmt.startswith("litert"):
            assert data[4:8] == b"TFL3"  # the FlatBuffer identifier of a .tflite file
        elif fmt in ("keras", "saved_model"):
            assert zipfile.is_zipfile(io.BytesIO(data))

    page.get_by_role("button", name="Prepare the project file").click()
    wait_idle(page, timeout=120_000)
    project = tmp_path / "cnnlab-project.zip"
    _download(page, re.compile("^Download the project"), project)
    with zipfile.ZipFile(project) as zf:
        assert "cnnlab-project/model.keras" in zf.namelist()

    _tab(page, "⑤ Threshold & data map")
    _press(page, "Confidence threshold", "ArrowRight", 60)
    expect(_slider(page, "Confidence threshold")).to_have_value("0.6")
    chart = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="direction 1")
    chart.scroll_into_view_if_needed()
    chart.locator(".scatterlayer .point").first.click(force=True)
    page.get_by_text(re.compile(r", read as ")).first.wait_for(timeout=30_000)
    wait_idle(page)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "own_images_threshold_map")

    # A fresh browser context: a new session with nothing in it opens the project file.
    context = browser.new_context(viewport=VIEWPORT)
    fresh = context.new_page()
    fresh.set_default_timeout(30_000)
    try:
        _open(fresh, app_url)
        fresh.get_by_role("radiogroup", name="Images").get_by_text("Open a saved project").click()
        wait_idle(fresh)
        fresh.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            str(project)
        )
        fresh.get_by_text("Opened your project", exact=False).wait_for(timeout=180_000)
        wait_idle(fresh, timeout=120_000)
        no_exception(fresh)
        expect(fresh.get_by_text("160 images in 4 classes")).to_have_count(1)
        screenshot(fresh, tmp_path, "own_images_resumed_data")
        _tab(fresh, "③ Results")
        metric = fresh.locator('[data-testid="stMetric"]').filter(has_text="Validation accuracy")
        assert metric.first.locator('[data-testid="stMetricValue"]').inner_text() == (
            shown_accuracy
        )
        _tab(fresh, "② Train")
        expect(_slider(fresh, "Test share")).to_have_value("0.2")
        _tall_screenshot(fresh, tmp_path, "own_images_resumed")
    finally:
        context.close()


@pytest.mark.slow
def test_the_shortcut_lab(app_url, page, tmp_path):
    _open(page, app_url)
    _tab(page, "② Train")
    _press(page, "Image size (pixels)", "ArrowLeft", 2)  # 64 → 32
    box = page.get_by_label("Epochs", exact=True)
    box.fill("10")
    box.press("Enter")
    wait_idle(page)
    _tab(page, "⑥ Shortcut lab")
    page.get_by_text("with the cue", exact=True).wait_for()
    page.get_by_role("button", name="Plant the cue and train").click()
    page.get_by_text("Clean validation accuracy").wait_for(timeout=300_000)
    wait_idle(page, timeout=120_000)
    no_exception(page)
    expect(page.get_by_text("Where the model looks for", exact=False)).to_have_count(1)
    _tall_screenshot(page, tmp_path, "own_images_shortcut_lab")
