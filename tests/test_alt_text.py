"""Alt text: every image and chart call of the pages and views passes one (read from the
source, so a new call without it fails here), and ``ui.alt_text`` writes plain, bounded
text with the numbers it is given.

The browser suite checks the rendered pages with axe-core (``tests/e2e/test_accessibility.py``)
and the Convolution lab's alt texts against an independent computation
(``tests/pages/test_convolution_lab.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlib.core.text import safe_text
from tests.conftest import ROOT
from ui import alt_text

SOURCES = sorted(
    [*(ROOT / "app_pages").rglob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]
)
#: Calls that draw an image or a chart, by the name called (``st.image``, ``col.image``…),
#: and the keyword or positional place (0-based) of their alt text.
NEEDS_ALT = {
    "image": "alt",
    "show_image": "alt",
    "show_png": "alt",
    "plotly_chart": "alt",
    "plot": "alt",
    "table_view": "alt",
    "image_gallery": 2,
    "gallery": 2,
}


def _calls_without_alt(path: Path) -> list[str]:
    """``file:line name`` of each call in ``path`` named in NEEDS_ALT that lacks its alt."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        where = NEEDS_ALT.get(name)
        if where is None or (name == "image" and not node.args):
            continue
        has = (
            any(k.arg == where for k in node.keywords)
            if isinstance(where, str)
            else len(node.args) > where or any(k.arg == "alts" for k in node.keywords)
        )
        if not has:
            missing.append(f"{path.parent.name}/{path.name}:{node.lineno} {name}")
    return missing


def test_every_image_and_chart_call_passes_alt_text():
    missing = [m for path in SOURCES for m in _calls_without_alt(path)]
    assert not missing, "calls without alt text:\n" + "\n".join(missing)


def test_the_check_finds_a_call_without_alt(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(
        "import streamlit as st\n"
        "st.image(b'', caption='x')\n"
        "st.image(b'', alt='A cat')\n"
        "col.plotly_chart(fig, key='k')\n"
        "show_image(img, alt='')\n"
        "gallery(images, captions)\n"
    )
    found = [m.split(" ", 1)[1] for m in _calls_without_alt(page)]
    assert found == ["image", "plotly_chart", "gallery"]


def test_plain_strips_control_characters_and_cuts():
    assert alt_text.plain("cats\n<b>&\x00dogs") == "cats <b>& dogs"
    assert alt_text.plain("x" * 100, 10) == "x" * 9 + "…"
    assert alt_text.plain("[link](https://evil)") == "[link](https://evil)"  # not markdown


@pytest.mark.parametrize(
    "name", ["mine.keras", "`tick`.keras", "a``b", " spaced ", "[x](https://evil)", "x" * 90]
)
def test_unquote_gives_back_what_safe_text_shows(name):
    assert alt_text.unquote(safe_text(name, 80)) == alt_text.plain(name, 80)
    assert alt_text.unquote("ResNet50 (ImageNet)") == "ResNet50 (ImageNet)"


def test_map_text_states_shape_range_and_colours():
    values = np.array([[-1.2734, 0.5], [0.0, 1.0159]], np.float32)
    text = alt_text.map_text("Feature map 1 of 8 (vertical edges)", values, "Colours: …")
    assert text == (
        "Feature map 1 of 8 (vertical edges): 2×2, values from -1.273 to 1.016. Colours: …"
    )


@pytest.mark.parametrize(
    ("image", "size"),
    [(Image.new("RGB", (224, 160)), "224×160"), (np.zeros((28, 40), np.uint8), "40×28")],
)
def test_photo_states_width_by_height(image, size):
    assert alt_text.photo("Model input", image) == f"Model input, {size} pixels"
