"""cnnlib.core.text: the one shape formatter, and untrusted values shown verbatim in markdown
(the browser check that no link is made is in tests/e2e/test_convolution_lab.py)."""

from __future__ import annotations

import re

from cnnlib.core.text import plain_text, safe_text, shape_text


def test_shape_text():
    assert shape_text((28, 28, 1)) == "28×28×1"
    assert shape_text([None, 10]) == "?×10"
    assert shape_text(()) == "scalar"


#: Values a learner's upload or a shared link may carry, each meaning something in markdown.
HOSTILE = [
    "[x](https://evil.example)",
    "https://evil.example/login",
    "www.evil.example",
    "me@evil.example",
    "<b>hi</b> <img src=x onerror=alert(1)>",
    ":red[boo] :material/warning: $x^2$ **bold** _it_",
    "`code` ``more`` ```",
    "` starts with a backtick",
]


def _unfence(out: str) -> str:
    """The text of a code span as CommonMark reads it (fence, then one padding space each
    side when both are there)."""
    fence = re.match(r"`+", out).group()
    assert out.endswith(fence) and len(out) > 2 * len(fence)
    inner = out[len(fence) : -len(fence)]
    assert f"`{fence}" not in f"`{inner}`" or len(fence) > max(map(len, re.findall("`+", inner)))
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip():
        inner = inner[1:-1]
    return inner


def test_safe_text_is_a_code_span_that_shows_the_value_verbatim():
    for value in HOSTILE:
        out = safe_text(value, max_len=200)
        assert _unfence(out) == value, (value, out)
        # No backtick run inside is as long as the fence: the span cannot be closed early.
        fence = re.match(r"`+", out).group()
        assert all(len(r) < len(fence) for r in re.findall("`+", _unfence(out)))


def test_safe_text_is_short_and_single_line():
    out = safe_text("a" * 5000)
    assert out == "`" + "a" * 59 + "…`"
    assert safe_text("two\nlines\r\x00") == "`two lines  `"
    assert safe_text("plain words 3", max_len=100) == "`plain words 3`"
    assert safe_text("") == "“”" and safe_text("  ") == "“  ”"
    assert plain_text("a\nb" + "c" * 100, 10) == "a bcccccc…"
