"""Accessibility in a real browser (WCAG 2.1 A and AA): axe-core on every page, on each tab of
the pages with tabs, in the light and the dark theme, and after a training has finished; the
Convolution lab's main flow and a training with the keyboard alone.

axe-core runs through ``tests/e2e/axe.py``: every serious or critical violation fails,
except the cases in its ``EXEMPT`` (each with its reason, also in the README).

One server for the module (``app_url``); each page is visited once per test.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cnnlib.conv import kernels, lab
from cnnlib.conv.ops import ConvGeometry, conv2d, output_size
from cnnlib.data import images, samples
from tests.e2e.axe import DARK, check, check_tabs, settle
from tests.e2e.conftest import no_exception, screenshot


def _nav(page, title: str, marker: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_text(marker).first.wait_for(timeout=180_000)
    settle(page)


# ----------------------------------------------------------------------------- keyboard

#: What the focused control is: its name (aria-label, label or text; the last line, after
#: an icon's name) and role; null for the page itself or a focusable region (main).
FOCUSED = """() => { const e = document.activeElement;
    if (!e || e === document.body || e.tagName === 'MAIN') return null;
    const label = e.getAttribute('aria-label')
        || (e.labels && e.labels[0] && e.labels[0].innerText) || e.innerText || '';
    const lines = label.split('\\n').map(l => l.trim()).filter(Boolean);
    return {name: lines.length ? lines[lines.length - 1] : '',
            role: e.getAttribute('role') || e.type || e.tagName.toLowerCase()}; }"""


def tab_to(page, name: str | re.Pattern, *, role: str | None = None) -> dict:
    """Press Tab until the focused control is named ``name`` (and has ``role``); fails after
    250 presses. Keyboard only: no click, no programmatic focus."""
    for _ in range(250):
        page.keyboard.press("Tab")
        f = page.evaluate(FOCUSED)
        if not f:
            continue
        named = re.search(name, f["name"]) if isinstance(name, re.Pattern) else f["name"] == name
        if named and (role is None or f["role"] == role):
            return f
    raise AssertionError(f"Tab never reached {name!r} ({role})")


def assert_focus_visible(page) -> None:
    """The focused control looks different from the same control unfocused: a screenshot of
    its surroundings with focus differs from one after focus moved on (Tab, then Shift+Tab
    brings it back)."""
    box = page.evaluate("""() => { const e = document.activeElement;
        const c = e.closest('[data-testid="stElementContainer"], .element-container') || e;
        const r = c.getBoundingClientRect();
        return {x: Math.max(r.x - 6, 0), y: Math.max(r.y - 6, 0),
                width: r.width + 12, height: r.height + 12}; }""")
    focused = page.screenshot(clip=box)
    name = page.evaluate(FOCUSED)["name"]
    page.keyboard.press("Tab")
    page.wait_for_timeout(150)
    unfocused = page.screenshot(clip=box)
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED)["name"] == name
    assert focused != unfocused, f"no visible focus on {name!r}"


def _choose_by_keyboard(page, label: str, option: str) -> None:
    """A selectbox: Tab to it, type the option's name, Enter."""
    tab_to(page, label, role="combobox")
    assert_focus_visible(page)
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    settle(page)


#: The accessible name of the radio group holding the focused radio button.
RADIO_GROUP = """() => { const g = document.activeElement.closest('[role=radiogroup]');
    const by = g && g.getAttribute('aria-labelledby');
    return g ? (g.getAttribute('aria-label')
        || (by && document.getElementById(by) && document.getElementById(by).innerText) || '')
        : ''; }"""


def _radio_by_keyboard(page, group: str, presses: int) -> None:
    """A radio group: Tab to its checked option, then ArrowRight ``presses`` times."""
    for _ in range(20):
        tab_to(page, re.compile(".*"), role="radio")
        if page.evaluate(RADIO_GROUP).strip() == group:
            break
    else:
        raise AssertionError(f"Tab never reached the radio group {group!r}")
    assert_focus_visible(page)
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    settle(page)


def _expect_output(page, h: int, w: int) -> None:
    line = page.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
    expect(line).to_contain_text(f"→ output {h}×{w}", timeout=60_000)


# --------------------------------------------------------------------------------- tests


def test_every_page_and_tab_passes_axe(app_url, page, axe_source, tmp_path):
    """Home, the lab, own images (each tab, with the built-in example), Classify (its
    preprocessing steps: this server has no ResNet50 weights; ``test_classify`` checks the
    results) and Network overview (before any model), in both themes. Train on MNIST,
    Feature maps and Network overview on a trained model: after a training, below."""
    problems: list[str] = []
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(app_url)
    page.get_by_text("Start with the Convolution lab").wait_for(timeout=120_000)
    settle(page)
    check(page, axe_source, "Home", problems)
    for title, marker in (
        ("Convolution lab", "Share this setup"),
        ("Train on your own images", "A few images of each class"),
        ("Classify with ResNet50", "From image to array to batch"),
        ("Network overview", "One image flows through"),  # no model yet: the upload
    ):
        _nav(page, title, marker)
        no_exception(page)
        check_tabs(page, axe_source, title, problems)
    assert not problems, "\n".join(problems)


def test_the_lab_by_keyboard_alone(app_url, page, axe_source, tmp_path):
    """Image, kernel, padding, stride and dilation, an output cell and a step of the small
    grid, with Tab, arrows, typing and Enter only (no mouse event, no programmatic focus):
    the output size, the cell's value and its formulas follow; every control shows focus."""
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(f"{app_url}/convolution_lab")
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    settle(page)

    _choose_by_keyboard(page, "Sample image", "moon")
    _choose_by_keyboard(page, "Kernel", "sobel x")
    _radio_by_keyboard(page, "Padding", 1)  # valid → same
    _radio_by_keyboard(page, "Stride", 1)  # 1 → 2
    _radio_by_keyboard(page, "Dilation", 1)  # 1 → 2
    x = images.to_array(images.downscale(samples.load_sample("moon"), 256), grayscale=True)
    g = ConvGeometry("same", 2, 2)
    h, w = (output_size(n, 3, padding="same", stride=2, dilation=2) for n in x.shape)
    _expect_output(page, h, w)
    line = page.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
    expect(line).to_contain_text("(moon)")
    expect(line).to_contain_text("padding same, stride 2, dilation 2")

    # Output cell (3, last column) with the sliders' keys: Home, arrows, End.
    tab_to(page, "Output row", role="range")
    assert_focus_visible(page)
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    settle(page)
    tab_to(page, "Output column", role="range")
    page.keyboard.press("End")
    settle(page)
    row, col = 3, w - 1
    y = conv2d(x, kernels.preset("sobel x"), **g.kwargs)
    sums = page.locator('[data-testid="stMarkdownContainer"]', has_text="Sum of the 9 products")
    expect(sums.first).to_contain_text(
        f"the output map holds {y[row, col]:.5f} at ({row}, {col})", timeout=60_000
    )
    expect(sums.first).to_contain_text("equal")
    sizes = lab.output_sizes(x.shape, (3, 3), g)
    reads = page.locator(
        '[data-testid="stMarkdownContainer"]', has_text=f"Output ({row}, {col}) reads"
    )
    expect(reads.first).to_contain_text(
        f"row = {row}·2 − {sizes[0].before} + 2·i, col = {col}·2 − {sizes[1].before} + 2·j"
    )
    expect(page.locator(".katex").filter(has_text="⌊").first).to_be_visible()  # o = ⌊…⌋ + 1
    screenshot(page, tmp_path, "a11y_lab_keyboard")

    # The small grid: one step with the keyboard.
    tab_to(page, "Step ▶")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    settle(page)
    step = page.locator('[data-testid="stMarkdownContainer"]', has_text="Step 2 of")
    expect(step.first).to_contain_text("output (0, 1)", timeout=30_000)
    no_exception(page)

    # The colour-blind-safe scales in the dark theme (looked at; the README shows one).
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(DARK)
    settle(page)
    problems: list[str] = []
    check(page, axe_source, "Convolution lab after the keyboard flow", problems)
    assert not problems, "\n".join(problems)
    page.set_viewport_size({"width": 1400, "height": 5200})  # the page scrolls inside
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(DARK)
    settle(page)
    screenshot(page, tmp_path, "a11y_lab_dark")


@pytest.mark.slow
def test_training_by_keyboard_then_its_results_and_feature_maps_pass_axe(
    app_url, page, axe_source, tmp_path
):
    """Train on MNIST with the keyboard alone: its Train tab, the smallest training set, 50
    epochs, Start, Stop once it has learned a little, then the Results tab: the test accuracy
    and the per-class table behind "Show as table". Then axe on every tab of the page, and on
    every tab of Feature maps and Network overview opened on the model just trained."""
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(app_url)
    page.get_by_text("Start with the Convolution lab").wait_for(timeout=120_000)
    settle(page)
    tab_to(page, "Train on MNIST")
    page.keyboard.press("Enter")
    page.get_by_text("Train a convnet on MNIST").first.wait_for(timeout=120_000)
    settle(page)

    tab_to(page, "① Model", role="tab")
    page.keyboard.press("ArrowRight")
    settle(page)
    expect(page.get_by_role("tab", name="② Train")).to_have_attribute("aria-selected", "true")
    tab_to(page, "Training images", role="range")
    page.keyboard.press("Home")  # 500 images
    settle(page)
    for label, value in (("Epochs", "50"), ("Early-stopping patience", "0")):
        tab_to(page, label)
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
        settle(page)
    tab_to(page, "Start training")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    progress = page.locator('[data-testid="stProgress"]').first
    # Stop as soon as a batch is done (a model exists), long before epoch 50.
    expect(progress).to_contain_text(
        re.compile(r"^Training · Epoch \d+/50 · step [1-9]"), timeout=240_000
    )
    tab_to(page, "Stop training")
    page.keyboard.press("Enter")
    expect(progress).to_contain_text(re.compile(r"^Stopped · Epoch \d+/50"), timeout=120_000)
    settle(page)

    tab_to(page, "② Train", role="tab")
    page.keyboard.press("ArrowRight")
    page.get_by_text("Test accuracy").first.wait_for(timeout=180_000)
    settle(page)
    accuracy = page.locator('[data-testid="stMetric"]', has_text="Test accuracy").inner_text()
    assert re.search(r"\d+\.\d+%", accuracy), accuracy
    tab_to(page, "Show as table")
    page.keyboard.press("Enter")
    table = page.locator('[data-testid="stTable"]').filter(has_text="test accuracy")
    expect(table).to_be_visible(timeout=30_000)  # opened by Enter
    expect(table.locator("tbody tr")).to_have_count(10)  # one row per digit
    no_exception(page)
    screenshot(page, tmp_path, "a11y_training_results")

    problems: list[str] = []
    check_tabs(page, axe_source, "Train on MNIST after a training", problems)
    _nav(page, "Feature maps", "Layers")
    check_tabs(page, axe_source, "Feature maps on the trained model", problems)
    _nav(page, "Network overview", "Layer detail")
    check_tabs(page, axe_source, "Network overview of the trained model", problems)
    assert not problems, "\n".join(problems)
