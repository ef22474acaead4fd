"""cnnlib.core.text: the one shape formatter, and untrusted values made inert for markdown."""

from __future__ import annotations

import re

from cnnlib.core.text import safe_text, shape_text


def test_shape_text():
    assert shape_text((28, 28, 1)) == "28×28×1"
    assert shape_text([None, 10]) == "?×10"
    assert shape_text(()) == "scalar"


def test_safe_text_escapes_links_html_and_directives():
    out = safe_text("[x](https://evil) <b>hi</b> :red[boo] `code` $x$")
    assert "](" not in out and "<b>" not in out and ":red[" not in out
    # Every markdown special is preceded by a backslash; nothing is lost.
    assert re.sub(r"\\(.)", r"\1", out.replace("&lt;", "<").replace("&gt;", ">")) == (
        "[x](https://evil) <b>hi</b> :red[boo] `code` $x$"
    )


def test_safe_text_is_short_and_single_line():
    out = safe_text("a" * 5000)
    assert len(out) == 60 and out.endswith("…")
    assert safe_text("two\nlines\r\x00") == "two lines  "
    assert safe_text("plain words 3", max_len=100) == "plain words 3"
