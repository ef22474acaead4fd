"""Train on MNIST in a real browser: a training started from the page draws live curves that
grow, Stop ends it and keeps the model, the results show the test accuracy and a clicked
confusion cell's images, a digit drawn with mouse strokes (and an uploaded photo of a real
MNIST digit) is read by the model, the dense-vs-convnet experiment plots its curves, and the
settings (dataset, preset, a layer, epochs) survive a visit to Home. A short training shows
its cost beside Start, the first layer's filters and one digit's feature maps beside the
curves, and the session-registry entry it produced.

The server has only the shared MNIST test files, so the page trains on the labelled split.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from cnnlib.data.mnist import read_idx
from tests.conftest import SHARED_MNIST
from tests.e2e.conftest import no_exception as _no_exception
from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.training_controls import pause_step_and_raise_the_rate
from tests.uploads import encode

LIVE_POINTS = """() => {
    for (const el of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
        const loss = (el.data || []).find(t => t.name === 'training loss (smoothed)');
        if (loss) return loss.x.length;
    }
    return 0;
}"""


def _open_page(page, app_url: str) -> None:
    """Home first (a deep link as a server's first request runs the old pages-folder mode)."""
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(app_url)
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Train on MNIST").click()
    page.get_by_text("Train a convnet on MNIST").first.wait_for(timeout=60_000)
    wait_idle(page)
    _no_exception(page)


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(400)


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def _slider_to(page, label: str, presses: int) -> None:
    """Move the slider labelled ``label`` to its minimum, then ``presses`` steps right."""
    thumb = page.locator(f'input[type="range"][aria-label="{label}"]')
    thumb.focus()
    thumb.press("Home")
    for _ in range(presses):
        thumb.press("ArrowRight")
    wait_idle(page)


def _progress_text(page) -> str:
    bars = page.locator('[data-testid="stProgress"]')
    return bars.first.inner_text() if bars.count() else ""


def _digit_png(index: int) -> bytes:
    """A real MNIST test digit as a photo would show it: dark ink on light paper, larger."""
    digit = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")[index]
    ink = Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC)
    paper = Image.new("L", (240, 200), 240)
    paper.paste(ink, (60, 30))
    return encode(paper.convert("RGB"))


@pytest.mark.slow
def test_live_training_stop_results_and_drawing(app_url, page, tmp_path):
    _open_page(page, app_url)
    expect(page.get_by_text("Fallback data:")).to_have_count(1)  # the labelled test-set split

    # Train: the default recipe on 8,000 images for up to 50 epochs (Stop ends it long before).
    _tab(page, "② Train")
    _set_number(page, "Epochs", 50)
    page.get_by_role("button", name="Start training").click()

    # The live chart must update at least twice while the progress text moves on.
    counts, texts = [], []
    for _ in range(240):
        page.wait_for_timeout(500)
        n = page.evaluate(LIVE_POINTS)
        if n and (not counts or n > counts[-1]):
            counts.append(n)
            texts.append(_progress_text(page))
        if len(counts) >= 3:
            break
    assert len(counts) >= 3, (counts, _progress_text(page))
    assert len(set(texts)) >= 2, texts
    assert all(t.startswith("Training") for t in texts)
    screenshot(page, tmp_path, "train_mnist_live")

    # Clicks elsewhere do not stop or freeze it: edit the model, open another page, come back.
    _tab(page, "① Model")
    page.get_by_role("button", name="Add layer").click()
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Home").click()
    page.get_by_text("Learn how").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    page.locator('[data-testid="stSidebar"]').get_by_text("Train on MNIST").click()
    page.get_by_text("Train a convnet on MNIST").first.wait_for(timeout=60_000)
    _tab(page, "② Train")
    for _ in range(120):
        page.wait_for_timeout(500)
        if page.evaluate(LIVE_POINTS) > counts[-1] and _progress_text(page).startswith("Training"):
            break
    assert page.evaluate(LIVE_POINTS) > counts[-1], "the training did not go on"

    page.get_by_role("button", name="Stop training").click()
    page.get_by_text(re.compile(r"^Stopped ·")).wait_for(timeout=60_000)
    wait_idle(page)
    epoch = int(re.search(r"Epoch (\d+)/50", _progress_text(page)).group(1))
    assert epoch < 50  # ended by Stop, not by running out of epochs
    _no_exception(page)

    # Results of the model as trained so far.
    _tab(page, "③ Results")
    page.get_by_text("Test accuracy").first.wait_for(timeout=60_000)
    accuracy = page.locator('[data-testid="stMetric"]', has_text="Test accuracy")
    value = float(re.search(r"([\d.]+)%", accuracy.inner_text()).group(1))
    assert value > 50.0, value  # trained on real digits (a few epochs at most): not chance
    expect(page.get_by_text("stopped by you").first).to_be_visible()
    # Click the diagonal cell "true 1, predicted 1" of the confusion matrix.
    heatmap = page.locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator(".hm, .heatmaplayer")
    )
    heatmap.scroll_into_view_if_needed()
    area = heatmap.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.15, area["y"] + area["height"] * 0.15)
    page.get_by_text(re.compile(r"^True 1, predicted 1: [\d,]+ test images")).wait_for(
        timeout=30_000
    )
    wait_idle(page)
    page.set_viewport_size({"width": 1400, "height": 3000})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "train_mnist_results")
    # Calibration: the test set's reliability before and after temperature scaling.
    section = page.get_by_text("Calibration: is its confidence right?", exact=True)
    section.scroll_into_view_if_needed()
    ece = page.locator('[data-testid="stMetric"]', has_text="Expected calibration error")
    expect(ece).to_have_count(1)
    diagrams = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="perfectly calibrated")
    expect(diagrams).to_have_count(2)
    _no_exception(page)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height) + 50})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "train_mnist_calibration")
    page.set_viewport_size({"width": 1400, "height": 1600})

    # Draw a 7 with mouse strokes on the canvas.
    _tab(page, "④ Draw a digit")
    canvas = None
    for _ in range(40):
        boxes = [c.bounding_box() for c in page.locator("canvas").all()]
        canvas = next((b for b in boxes if b and abs(b["width"] - 280) < 4), None)
        if canvas:
            break
        page.wait_for_timeout(250)
    assert canvas, "the drawing canvas did not appear"
    x0, y0 = canvas["x"], canvas["y"]
    page.mouse.move(x0 + 70, y0 + 60)
    page.mouse.down()
    for t in range(1, 21):
        page.mouse.move(x0 + 70 + 7 * t, y0 + 60)
    for t in range(1, 31):
        page.mouse.move(x0 + 210 - 3.5 * t, y0 + 60 + 6.5 * t)
    page.mouse.up()
    reads = page.get_by_text(re.compile(r"^The model reads \S+ with probability"))
    reads.wait_for(timeout=30_000)
    wait_idle(page)
    expect(page.get_by_text("What the model sees: 28 × 28")).to_have_count(1)
    charts = page.locator('[data-testid="stPlotlyChart"]')  # not the Results tab's diagrams
    probabilities = charts.filter(has_text="probability", has_not_text="perfectly calibrated")
    expect(probabilities.first).to_be_visible()
    _no_exception(page)
    screenshot(page, tmp_path, "train_mnist_draw")

    # Upload a photo of a real MNIST "2" (test digit #1), dark ink on light paper.
    page.get_by_text("Upload a photo", exact=True).click()
    wait_idle(page)
    photo = tmp_path / "digit.png"
    photo.write_bytes(_digit_png(1))
    with page.expect_file_chooser() as chooser:
        page.locator('[data-testid="stFileUploaderDropzone"] button').click()
    chooser.value.set_files(str(photo))
    page.get_by_text("digit.png").first.wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"^The model reads \S+ with probability")).wait_for(timeout=30_000)
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "train_mnist_upload")


@pytest.mark.slow
def test_dense_vs_convnet_experiment(app_url, page, tmp_path):
    _open_page(page, app_url)
    _tab(page, "⑤ Dense vs convnet")
    _slider_to(page, "Training images (each model)", 2)  # 500 + 2 × 500 = 1,500
    _set_number(page, "Epochs (each model)", 1)
    _slider_to(page, "Largest shift (pixels)", 2)  # 2 + 2 = 4
    page.get_by_role("button", name="Run the experiment").click()
    page.get_by_text(re.compile(r"^Both were trained on 1,500 centred images")).wait_for(
        timeout=180_000
    )
    wait_idle(page)
    text = page.get_by_text(re.compile(r"^Both were trained on")).inner_text()
    shares = [int(v) for v in re.findall(r"(\d+)%", text)]
    assert len(shares) == 2 and all(0 <= v <= 100 for v in shares)
    chart = page.locator('[data-testid="stPlotlyChart"]').filter(
        has_text="shift of the test digits"
    )
    expect(chart).to_have_count(1, timeout=60_000)  # drawn just after the text
    _no_exception(page)
    screenshot(page, tmp_path, "train_mnist_experiment")
    assert np.isfinite(shares).all()


def test_settings_survive_a_visit_to_home(app_url, page, tmp_path):
    """Fashion-MNIST, a preset, an edited layer and the epochs are still there after the
    sidebar's Home and back (they used to reset to MNIST digits and the defaults)."""
    _open_page(page, app_url)
    page.get_by_text("Fashion-MNIST", exact=True).click()
    page.get_by_text(re.compile(r"^Fashion-MNIST \(full dataset\)")).wait_for(timeout=60_000)
    wait_idle(page)
    preset = page.get_by_role("combobox", name="Start from a preset")
    preset.click()
    page.get_by_role("option", name="Tutorial convnet").click()
    wait_idle(page)
    expect(page.get_by_text("93,322", exact=True)).to_have_count(1)  # its parameter count
    filters = page.get_by_label("Filters", exact=True).first
    filters.fill("17")
    filters.press("Enter")
    wait_idle(page)
    _tab(page, "② Train")
    _set_number(page, "Epochs", 7)

    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Home").click()
    page.get_by_text("Learn how").first.wait_for(timeout=30_000)
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Train on MNIST").click()
    page.get_by_text("Train a convnet on MNIST").first.wait_for(timeout=60_000)
    wait_idle(page)
    _no_exception(page)
    expect(page.get_by_role("radio", name="Fashion-MNIST")).to_be_checked()
    expect(page.get_by_text(re.compile(r"^Fashion-MNIST \(full dataset\)"))).to_have_count(1)
    expect(preset).to_have_value("Tutorial convnet")
    expect(page.get_by_label("Filters", exact=True).first).to_have_value("17")
    _tab(page, "② Train")
    expect(page.get_by_label("Epochs", exact=True)).to_have_value("7")
    screenshot(page, tmp_path, "train_mnist_settings_kept")


@pytest.mark.e2e
@pytest.mark.slow
def test_watching_it_learn_filters_and_maps_beside_the_curves(app_url, page, tmp_path):
    """1,000 images, 2 epochs: the estimate beside Start, then the filters and feature-map
    images of the last epoch next to the curves, and the registry entry's name."""
    _open_page(page, app_url)
    _tab(page, "② Train")
    expect(page.get_by_text(re.compile(r"^One batch of \d+: ≈ .+ of activations"))).to_have_count(1)
    _slider_to(page, "Training images", 5)  # 500 + 5 × 100 = 1,000
    _set_number(page, "Epochs", 2)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"^After epoch \d:")).wait_for(timeout=180_000)
    kept = page.get_by_text(re.compile(r"^Kept in this session's models as"))
    kept.first.wait_for(timeout=180_000)  # shown in ② Train and ③ Results
    wait_idle(page)
    _no_exception(page)
    expect(page.get_by_text("After epoch 2:")).to_have_count(1)
    for caption in (
        "Filters: blue negative",
        "Its feature maps in that layer",
        "Watched test image",
    ):
        image = page.locator('[data-testid="stImage"]', has_text=caption)
        expect(image).to_have_count(1)
        size = image.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert min(size) > 20, (caption, size)  # a drawn grid, not a broken image
    expect(kept.first).to_contain_text(re.compile(r"MNIST · .+ · \d+\.\d %"))
    screenshot(page, tmp_path, "train_mnist_watch")


@pytest.mark.e2e
@pytest.mark.slow
def test_pause_step_a_new_learning_rate_and_resume(app_url, page, tmp_path):
    """1,000 images (4 batches of 256 an epoch, the default recipe's), 1 epoch: paused
    before its first batch, two Steps (one batch each), a new learning rate between them,
    marked on the curves, then Resume to the end."""
    _open_page(page, app_url)
    _tab(page, "② Train")
    _slider_to(page, "Training images", 5)  # 500 + 5 × 100 = 1,000: 900 to train on
    _set_number(page, "Epochs", 1)
    page.get_by_role("combobox", name="Learning-rate schedule").click()
    page.get_by_role("option", name="constant").click()
    wait_idle(page)
    pause_step_and_raise_the_rate(page, steps_per_epoch=4)
    expect(page.get_by_text(re.compile(r"^Paused ·"))).to_have_count(1)
    _no_exception(page)
    screenshot(page, tmp_path, "train_mnist_paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_text(re.compile(r"^Finished ·")).wait_for(timeout=180_000)
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"step 4/4"))).to_have_count(1)
    page.get_by_text("Layer health after epoch 1").wait_for(timeout=30_000)
    health = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Dead ReLU units")
    expect(health).to_have_count(1)
    cams = page.locator('[data-testid="stImage"]', has_text=re.compile(r"^true \d · said \d"))
    expect(cams).to_have_count(4)
    _no_exception(page)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height) + 50})
    page.wait_for_timeout(800)
    screenshot(page, tmp_path, "train_mnist_resumed")
