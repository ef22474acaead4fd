"""The "Train on your own images" page in a real browser: upload a zip of class folders (real
Fashion-MNIST images, one file that is not an image), see the health check and the
augmentation preview, train one epoch from scratch, see the curves, predict a photo,
download the model. The trained model then opens on Feature maps. A training watched
closely: paused, stepped one batch at a time, a new learning rate marked on the curves,
resumed, with each layer's health and the Grad-CAM of four validation images per epoch."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

from cnnlib.uploads.folders import example_archive
from tests.e2e.conftest import no_exception, screenshot, wait_idle
from tests.e2e.training_controls import pause_step_and_raise_the_rate
from tests.uploads import encode, photo

PAGE_TITLE = "Train on your own images"


@pytest.fixture(scope="module")
def photos_zip(tmp_path_factory, fashion_dir):
    """A wrapping folder of 4 class folders × 15 real images, plus a text file."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(example_archive(15))) as src,
        zipfile.ZipFile(buffer, "w") as zf,
    ):
        for name in src.namelist():
            zf.writestr(f"my photos/{name}", src.read(name))
        zf.writestr("my photos/Bag/notes.png", b"not a picture")
    path = tmp_path_factory.mktemp("upload") / "my_photos.zip"
    path.write_bytes(buffer.getvalue())
    return path


def _open(page, app_url) -> None:
    page.goto(app_url)
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text(PAGE_TITLE).click()
    page.get_by_text("Bring a few folders").wait_for(timeout=60_000)
    wait_idle(page, timeout=120_000)
    no_exception(page)


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(400)


def _upload(page, path) -> None:
    """Upload the photos zip and wait for its 60 images to be read."""
    page.get_by_text("Upload a .zip", exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))
    page.get_by_text("60 images in 4 classes").wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)


def _train_one_epoch(page) -> None:
    """On the Train tab: set 1 epoch, start, wait until training has finished."""
    box = page.get_by_label("Epochs", exact=True)
    box.fill("1")
    box.press("Enter")
    wait_idle(page, timeout=120_000)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished", exact=False).first.wait_for(timeout=180_000)
    wait_idle(page, timeout=120_000)


def _upload_and_train(page, path) -> None:
    _upload(page, path)
    _tab(page, "② Train")
    _train_one_epoch(page)


@pytest.mark.slow
def test_upload_check_preview_train_predict_download(app_url, page, tmp_path, photos_zip):
    _open(page, app_url)
    _upload_and_train_checks(page, tmp_path, photos_zip)


def _upload_and_train_checks(page, tmp_path, photos_zip) -> None:
    _upload(page, photos_zip)
    expect(page.get_by_text("Ready to train", exact=False)).to_have_count(1)
    expect(page.get_by_text("Skipped files (1)")).to_have_count(1)
    screenshot(page, tmp_path, "own_images_health")

    _tab(page, "② Train")
    expect(page.get_by_text("Augmentation preview")).to_have_count(1)
    # 3 rows: the original and 4 augmented copies each.
    expect(page.get_by_text("copy 4", exact=True)).to_have_count(3)
    screenshot(page, tmp_path, "own_images_options")
    _train_one_epoch(page)
    no_exception(page)
    curves = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="validation loss")
    expect(curves).to_be_visible()
    curves.scroll_into_view_if_needed()
    expect(page.get_by_text("Kept in this session's models as", exact=False)).to_have_count(1)
    screenshot(page, tmp_path, "own_images_trained")

    _tab(page, "③ Results")
    expect(page.get_by_text("Validation accuracy", exact=True).first).to_be_visible()
    # Click the cell "true Bag, predicted Bag" (top left of the 4 × 4 matrix): its images open.
    heatmap = page.locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator(".hm, .heatmaplayer")
    )
    heatmap.scroll_into_view_if_needed()
    area = heatmap.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + area["width"] / 8, area["y"] + area["height"] / 8)
    page.get_by_text(re.compile(r"^True Bag, predicted Bag: \d+ image")).wait_for(timeout=30_000)
    wait_idle(page)
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "own_images_results")
    # No test share: the calibration section uses the validation images and says so.
    no_test = page.get_by_text("No test set yet", exact=False)
    expect(no_test).to_have_count(1)
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.wait_for_timeout(800)
    page.get_by_text("Calibration: is its confidence right?").scroll_into_view_if_needed()
    page.mouse.wheel(0, 300)  # the diagrams under the heading
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "own_images_calibration")
    page.set_viewport_size({"width": 1400, "height": 1000})

    _tab(page, "④ Try it & export")
    page.get_by_role("radiogroup", name="Image source").get_by_text("Upload", exact=True).click()
    wait_idle(page)
    picture = tmp_path / "my_photo.png"
    picture.write_bytes(encode(photo((120, 90))))
    page.locator('[data-testid="stFileUploader"] input[type="file"]').last.set_input_files(
        str(picture)
    )
    page.get_by_text("most likely belongs to", exact=False).wait_for(timeout=120_000)
    wait_idle(page, timeout=120_000)
    no_exception(page)
    sentence = page.get_by_text("% confidence", exact=False)
    expect(sentence).to_have_count(1)
    sentence.scroll_into_view_if_needed()
    screenshot(page, tmp_path, "own_images_prediction")
    page.get_by_text("Calibrated probabilities", exact=False).click()
    page.get_by_text("Temperature scaling from tab", exact=False).wait_for(timeout=60_000)
    wait_idle(page)
    no_exception(page)
    expect(page.get_by_text("% confidence", exact=False)).to_have_count(1)
    screenshot(page, tmp_path, "own_images_prediction_calibrated")
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Model (.keras)").click()
    saved = tmp_path / "downloaded.keras"
    download.value.save_as(saved)
    assert zipfile.is_zipfile(saved)  # a .keras file is a zip archive


@pytest.mark.slow
def test_the_trained_model_opens_on_feature_maps(app_url, page, tmp_path, photos_zip):
    _open(page, app_url)
    _upload_and_train(page, photos_zip)
    name = page.get_by_text("Kept in this session's models as", exact=False).inner_text()
    registered = name.split(" as ", 1)[1].split(":", 1)[0].strip()
    page.locator('[data-testid="stSidebar"]').get_by_text("Feature maps").click()
    wait_idle(page, timeout=120_000)
    no_exception(page)
    page.wait_for_timeout(2_000)
    assert page.get_by_text(registered, exact=False).count() > 0
    screenshot(page, tmp_path, "own_images_feature_maps")


@pytest.mark.slow
def test_pause_step_a_new_learning_rate_resume_health_and_gradcam(
    app_url, page, tmp_path, photos_zip
):
    """From scratch, 48 training images in batches of 32 (2 an epoch), 2 epochs: paused
    before its first batch, two Steps (one batch each) with a new learning rate between
    them, marked on the curves; epoch 1's health and Grad-CAM while paused; Resume to the
    end and epoch 2's."""
    _open(page, app_url)
    _upload(page, photos_zip)
    _tab(page, "② Train")
    page.get_by_role("radiogroup", name="Model").get_by_text("From scratch").click()
    wait_idle(page)
    box = page.get_by_label("Epochs", exact=True)
    box.fill("2")
    box.press("Enter")
    wait_idle(page, timeout=120_000)
    pause_step_and_raise_the_rate(page, steps_per_epoch=2)
    # The second batch ended epoch 1: its health and Grad-CAM, while still paused.
    page.get_by_text("Layer health after epoch 1").wait_for(timeout=60_000)
    expect(page.get_by_text("Where it looks at the end of epoch 1", exact=False)).to_have_count(1)
    expect(page.get_by_text("Every layer of the convnet learns", exact=False)).to_have_count(1)
    no_exception(page)
    screenshot(page, tmp_path, "own_images_paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_text(re.compile(r"^Finished ·")).first.wait_for(timeout=180_000)
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text(re.compile(r"^Finished · Epoch 2/2 · step 2/2"))).to_have_count(1)
    page.get_by_text("Layer health after epoch 2").wait_for(timeout=30_000)
    health = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Dead ReLU units")
    expect(health).to_have_count(1)
    expect(page.get_by_text("Where it looks at the end of epoch 2", exact=False)).to_have_count(1)
    cams = page.locator('[data-testid="stImage"]', has_text=re.compile(r"^true \S+ · said \S+"))
    expect(cams).to_have_count(4)
    no_exception(page)
    cams.first.scroll_into_view_if_needed()
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height) + 50})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "own_images_resumed")
