"""The Convolution lab in a real browser: kernel and stride change the output shape, the URL
follows the settings (Streamlit's bound widgets), settings survive a visit to another page,
and a photo uploaded through the real file chooser is convolved."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from cnnlib.conv import kernels, lab, quiz
from cnnlib.conv.ops import output_size
from cnnlib.data import images, samples
from tests.e2e.conftest import no_exception as _no_exception
from tests.e2e.conftest import screenshot, wait_idle


def _expect_output(page, h: int, w: int) -> None:
    """Wait (a rerun may still be on its way) until the page states output h×w."""
    shape = page.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
    expect(shape).to_contain_text(f"→ output {h}×{w}", timeout=60_000)


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    wait_idle(page)
    page.get_by_role("combobox", name=label, exact=True).click(timeout=60_000)
    page.get_by_role("option", name=option, exact=True).click(timeout=60_000)
    wait_idle(page)


def _radio(page, label: str, option: str) -> None:
    wait_idle(page)
    group = page.get_by_role("radiogroup", name=label, exact=True)
    group.locator('[data-testid="stRadioOption"]').filter(
        has_text=re.compile(rf"^{re.escape(option)}$")
    ).click(timeout=60_000)
    wait_idle(page)


def _open_lab(page, app_url: str) -> None:
    """Open the lab through the home page, as a visitor does, in a tall window (the page is
    long and Streamlit scrolls inside its own container, so a tall viewport shows it all).
    """
    page.set_viewport_size({"width": 1400, "height": 5200})
    page.goto(app_url)
    wait_idle(page)
    page.goto(f"{app_url}/convolution_lab")
    # The first run imports plotly, pandas and scikit-image: slow on a busy machine. The
    # page's last line means the whole run has been drawn.
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    wait_idle(page)


def test_shared_link_as_a_fresh_servers_first_request(app_url, page, tmp_path):
    """A teacher's link opened first on a just-started server: app.py still runs (the
    navigation shows the pages' titles, no "Page not found" dialog) and the link's settings
    are applied. This test must stay first in the module: its server is fresh."""
    img = images.downscale(samples.load_sample("coffee cup"), 256)
    h_in, w_in = images.to_array(img, grayscale=True).shape
    page.set_viewport_size({"width": 1400, "height": 5200})
    page.goto(
        f"{app_url}/convolution_lab?lab_sample=coffee%20cup&lab_preset=sobel%20x&lab_stride=2"
        "&lab_padding=same"
    )
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    wait_idle(page, timeout=180_000)  # a fresh server's first session draws the 5200 px page
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).to_contain_text("Convolution lab")
    expect(nav).to_contain_text("Classify with ResNet50")
    assert "convolution lab" not in nav.inner_text()  # a legacy folder listing's names
    expect(page.get_by_text("Page not found")).to_have_count(0)
    _expect_output(
        page,
        output_size(h_in, 3, padding="same", stride=2),
        output_size(w_in, 3, padding="same", stride=2),
    )
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_deep_link")


def test_kernel_and_stride_change_the_output(app_url, page, tmp_path):
    img = images.downscale(samples.load_sample(lab.DEFAULTS.image), 256)
    h_in, w_in = images.to_array(img, grayscale=True).shape
    _open_lab(page, app_url)
    _no_exception(page)
    _expect_output(page, h_in - 2, w_in - 2)  # the default 3×3 kernel, valid padding
    screenshot(page, tmp_path, "conv_lab_default")

    _choose(page, "Kernel", "gaussian blur")  # 5×5
    _expect_output(page, h_in - 4, w_in - 4)

    _radio(page, "Stride", "2")
    h2, w2 = output_size(h_in, 5, stride=2), output_size(w_in, 5, stride=2)
    _expect_output(page, h2, w2)
    _no_exception(page)
    expect(page).to_have_url(re.compile(r"lab_stride=2"), timeout=30_000)
    query = parse_qs(urlparse(page.url).query)
    assert query["lab_stride"] == ["2"] and query["lab_preset"] == ["gaussian blur"]
    screenshot(page, tmp_path, "conv_lab_gauss_stride2")

    # The link restores the configuration in a fresh session.
    page.goto(page.url)
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    _expect_output(page, h2, w2)
    _no_exception(page)


def _nav(page, title: str) -> None:
    """Switch page through the sidebar (the same browser session)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_idle(page)


def _expect_settings(page, h: int, w: int) -> None:
    """The page shows the settings chosen in ``test_settings_survive_...``."""
    _expect_output(page, h, w)
    line = page.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
    expect(line).to_contain_text("padding same, stride 2, dilation 2")
    expect(line).to_contain_text("(moon)")
    expect(page.get_by_text(kernels.PRESETS["box blur"][1], exact=True)).to_have_count(1)
    scale = page.get_by_role("radiogroup", name="Colour scale", exact=True)
    expect(scale.get_by_role("radio", name=re.compile("magnitude"))).to_be_checked()


def test_typing_a_weight_makes_a_custom_kernel(app_url, page, tmp_path):
    """The kernel editor (``ui.kernel_grid``): one labelled input per weight. Typing a weight
    and pressing Enter makes the kernel custom, in the page and its link; a cell that is not
    a number gets a message and the last valid kernel stays; a preset rewrites the cells."""
    _open_lab(page, app_url)
    _choose(page, "Kernel", "identity")
    middle = page.get_by_label("Weight row 1, column 1")
    expect(middle).to_have_value("1", timeout=60_000)
    middle.fill("2")
    middle.press("Enter")
    kernel = page.get_by_role("combobox", name="Kernel", exact=True)
    expect(kernel).to_have_value(lab.CUSTOM, timeout=60_000)
    expect(page).to_have_url(re.compile(r"lab_k=0%2C0%2C0%3B0%2C2%2C0%3B0%2C0%2C0"))
    sums = page.locator('[data-testid="stMarkdownContainer"]', has_text="Sum of the 9 products")
    expect(sums.first).to_contain_text("equal")
    corner = page.get_by_label("Weight row 0, column 0")
    corner.fill("two")
    corner.press("Tab")  # leaving the cell commits it too
    expect(page.get_by_text("is not a number").first).to_be_visible(timeout=60_000)
    expect(page).to_have_url(re.compile(r"lab_k=0%2C0%2C0%3B0%2C2%2C0%3B0%2C0%2C0"))
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_kernel_typed")
    _choose(page, "Kernel", "sharpen")
    expect(middle).to_have_value("5", timeout=60_000)
    expect(corner).to_have_value("0")
    expect(page.get_by_text("is not a number")).to_have_count(0)


def test_settings_survive_another_page_and_a_shared_link(app_url, page, browser, tmp_path):
    """Change settings and open a "Go further" tab, visit Home and come back: all still there
    (``persist_state``; the tab by the page's own key). The page's URL, opened in a fresh
    browser (a new session), shows the same shareable ones."""
    img = images.downscale(samples.load_sample("moon"), 256)
    h_in, w_in = images.to_array(img, grayscale=True).shape
    h, w = (output_size(n, 3, padding="same", stride=2, dilation=2) for n in (h_in, w_in))
    _open_lab(page, app_url)
    _choose(page, "Sample image", "moon")
    _choose(page, "Kernel", "box blur")
    _radio(page, "Padding", "same")
    _radio(page, "Stride", "2")
    _radio(page, "Dilation", "2")
    _radio(page, "Colour scale", "magnitude |value|")
    _expect_settings(page, h, w)
    expect(page).to_have_url(re.compile(r"lab_dilation=2"), timeout=30_000)
    link = page.url
    page.get_by_role("tab", name="6 · Filter bank").click()
    page.get_by_text("The same layer in Keras").first.wait_for(timeout=60_000)
    wait_idle(page)

    _nav(page, "Home")
    expect(page.get_by_text("Share this setup")).to_have_count(0)
    _nav(page, "Convolution lab")
    page.get_by_text("Share this setup").first.wait_for(timeout=120_000)
    wait_idle(page)
    _expect_settings(page, h, w)
    filter_bank = page.get_by_role("tab", name="6 · Filter bank")  # the open tab, kept
    expect(filter_bank).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("The same layer in Keras").first).to_be_visible()
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_back_from_home")

    query = parse_qs(urlparse(link).query)
    assert query == {
        "lab_sample": ["moon"],
        "lab_preset": ["box blur"],
        "lab_padding": ["same"],
        "lab_stride": ["2"],
        "lab_dilation": ["2"],
    }
    fresh = browser.new_context(viewport={"width": 1400, "height": 5200})
    try:
        other = fresh.new_page()
        other.goto(link)
        other.get_by_text("Share this setup").first.wait_for(timeout=180_000)
        wait_idle(other, timeout=180_000)  # a new session draws the whole 5200 px page
        _expect_output(other, h, w)
        line = other.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
        expect(line).to_contain_text("padding same, stride 2, dilation 2")
        expect(line).to_contain_text("(moon)")
        expect(other.get_by_text("not used")).to_have_count(0)  # no notice: all values valid
        screenshot(other, tmp_path, "conv_lab_link_in_fresh_browser")
    finally:
        fresh.close()


def test_upload_through_the_file_chooser(app_url, page, tmp_path):
    photo = tmp_path / "coffee.jpg"
    samples.load_sample("coffee cup").save(photo, quality=90)  # 600×400 → 256×171 shown
    _open_lab(page, app_url)
    _radio(page, "Image source", "Upload")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=re.compile("Browse files|Upload")).first.click()
    chooser.value.set_files(str(photo))
    page.get_by_text("(coffee.jpg)").first.wait_for(timeout=60_000)
    _expect_output(page, 169, 254)  # 171×256 input, 3×3 kernel, valid padding
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_upload")

    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    # Replace the file through the uploader's input (the chooser was exercised above).
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
    page.get_by_text("is not an image").first.wait_for(timeout=60_000)
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_bad_upload")


def test_transposed_convolution_and_the_quiz(app_url, page, tmp_path):
    """Sections 5–8 are tabs, and only the open one is drawn. The transposed-convolution
    section redraws on its own controls; the quiz checks a wrong then a right answer (worked
    formula, score), and its link, opened in the same browser, opens the quiz's tab on the
    same question."""
    _open_lab(page, app_url)
    expect(page.get_by_label("Grid size n×n")).to_be_visible()  # the first tab, open
    expect(page.get_by_text("Input cell (0, 0) writes")).to_have_count(0)
    page.get_by_role("tab", name="7 · Transposed convolution").click()
    section = page.get_by_text("Input cell (0, 0) writes").first
    expect(section).to_contain_text("rows 0–2, columns 0–2", timeout=60_000)
    _choose(page, "Transposed: kernel k×k", "4")
    expect(page.get_by_text("every output cell receives the same").first).to_be_visible(
        timeout=60_000
    )
    _radio(page, "Transposed: padding", "same")
    x = images.to_array(
        images.downscale(samples.load_sample(lab.DEFAULTS.image), 128), grayscale=True
    )
    line = page.locator('[data-testid="stMarkdownContainer"]', has_text="(grayscale), your")
    expect(line.first).to_contain_text(f"→ {2 * x.shape[0]}×{2 * x.shape[1]}", timeout=60_000)
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_transposed")

    page.get_by_role("tab", name="8 · Quiz").click()
    page.get_by_role("button", name=re.compile("New question")).click()
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"quiz_h=\d+"), timeout=30_000)
    query = {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}
    q = quiz.question_from_query(query, quiz.QUERY_PREFIX)
    h, w = q.answer()
    answer = page.get_by_label("Your answer H′×W′")
    answer.fill(f"{h + 1}x{w}")
    answer.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=re.compile("^.*Check$")).click()
    expect(page.get_by_text("Not quite").first).to_be_visible(timeout=60_000)
    expect(page.locator(".katex").filter(has_text=f"{h}").first).to_be_visible()
    expect(page.get_by_text("0 of 1 right").first).to_be_visible()
    answer.fill(f"{h}×{w}")
    answer.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=re.compile("^.*Check$")).click()
    expect(page.get_by_text(f"Right: the output is {h}×{w}").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("1 of 2 right").first).to_be_visible()
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_quiz")

    page.goto(page.url)  # the shared link: a new session, the same question
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    expect(page.get_by_role("tab", name="8 · Quiz")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text(q.text()).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("0 of 0 right").first).to_be_visible()


def test_hostile_link_values_are_shown_as_text_never_as_links(app_url, page, tmp_path):
    """A shared link whose values are a markdown link, a bare URL and an e-mail address: the
    notices show them verbatim (code), with no clickable link anywhere in them. (Backslash
    escapes still let Streamlit's markdown turn a bare URL or address into a link.)"""
    page.set_viewport_size({"width": 1400, "height": 5200})
    page.goto(
        f"{app_url}/convolution_lab?lab_sample=https%3A%2F%2Fevil.example%2Flogin"
        "&lab_preset=%5Bwin%5D(https%3A%2F%2Fevil.example)&lab_stride=admin%40evil.example"
    )
    page.get_by_text("Share this setup").first.wait_for(timeout=180_000)
    wait_idle(page)
    notices = page.locator('[data-testid="stAlert"]', has_text="was not used")
    expect(notices).to_have_count(3)
    expect(notices.locator("a")).to_have_count(0)
    expect(notices.locator("code", has_text="https://evil.example/login")).to_have_count(1)
    expect(notices.locator("code", has_text="admin@evil.example")).to_have_count(1)
    expect(page.locator('a[href*="evil.example"]')).to_have_count(0)
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_hostile_link")
