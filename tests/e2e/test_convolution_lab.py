"""The Convolution lab in a real browser: kernel and stride change the output shape, the URL
follows the settings, and a photo uploaded through the real file chooser is convolved."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from cnnlib import samples
from cnnlib.conv import output_size
from tests.e2e.conftest import screenshot, wait_idle

SHAPE = re.compile(r"→ output (\d+)×(\d+)")


def _output_shape(page) -> tuple[int, int]:
    text = page.locator('[data-testid="stMarkdownContainer"]', has_text="→ output").first
    match = SHAPE.search(text.inner_text())
    assert match, text.inner_text()
    return int(match.group(1)), int(match.group(2))


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def _radio(page, label: str, option: str) -> None:
    group = page.get_by_role("radiogroup", name=label, exact=True)
    group.locator('[data-testid="stRadioOption"]').filter(
        has_text=re.compile(rf"^{re.escape(option)}$")
    ).click()
    wait_idle(page)


def _open_lab(page, app_url: str, query: str = "") -> None:
    """Open the lab through the home page, as a visitor does, in a tall window (the page is
    long and Streamlit scrolls inside its own container, so a tall viewport shows it all).

    The home page comes first because a server whose very first request is a deep link runs
    ``pages/convolution_lab.py`` in Streamlit's old pages-folder mode (without app.py); see
    the lead's note on renaming ``pages/``.
    """
    page.set_viewport_size({"width": 1400, "height": 5200})
    page.goto(app_url)
    wait_idle(page)
    page.goto(f"{app_url}/convolution_lab{query}")
    # The first run imports plotly, pandas and scikit-image: slow on a busy machine.
    page.get_by_text("→ output").first.wait_for(timeout=180_000)
    wait_idle(page)


def test_kernel_and_stride_change_the_output(app_url, page, tmp_path):
    _open_lab(page, app_url)
    _no_exception(page)
    h0, w0 = _output_shape(page)
    screenshot(page, tmp_path, "conv_lab_default")

    _choose(page, "Kernel", "gaussian blur")  # 3×3 → 5×5 under "valid" padding
    h1, w1 = _output_shape(page)
    assert (h1, w1) == (h0 - 2, w0 - 2)

    _radio(page, "Stride", "2")
    h2, w2 = _output_shape(page)
    h_in, w_in = h0 + 2, w0 + 2  # the default 3×3 kernel, valid padding
    assert (h2, w2) == (output_size(h_in, 5, stride=2), output_size(w_in, 5, stride=2))
    _no_exception(page)
    query = parse_qs(urlparse(page.url).query)
    assert query["stride"] == ["2"] and query["kernel"] == ["gaussian blur"]
    screenshot(page, tmp_path, "conv_lab_gauss_stride2")

    # The link restores the configuration in a fresh session.
    page.goto(page.url)
    wait_idle(page)
    assert _output_shape(page) == (h2, w2)
    _no_exception(page)


def test_upload_through_the_file_chooser(app_url, page, tmp_path):
    photo = tmp_path / "coffee.jpg"
    samples.load_sample("coffee cup").save(photo, quality=90)  # 600×400 → 256×171 shown
    _open_lab(page, app_url)
    _radio(page, "Image source", "Upload")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=re.compile("Browse files|Upload")).first.click()
    chooser.value.set_files(str(photo))
    page.get_by_text("(coffee.jpg)").first.wait_for()
    wait_idle(page)
    _no_exception(page)
    assert _output_shape(page) == (169, 254)  # 171×256 input, 3×3 kernel, valid padding
    screenshot(page, tmp_path, "conv_lab_upload")

    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=re.compile("Browse files|Upload")).first.click()
    chooser.value.set_files(str(bad))
    page.get_by_text("is not an image").first.wait_for()
    wait_idle(page)
    _no_exception(page)
    screenshot(page, tmp_path, "conv_lab_bad_upload")
