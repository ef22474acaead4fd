"""``ui.code_text``: short code as Markdown inline code, checked with a CommonMark renderer
(markdown-it-py, requirements-dev.txt): each line shows exactly as written."""

from __future__ import annotations

from markdown_it import MarkdownIt

from ui.code_text import code_markdown


def test_each_line_becomes_one_code_span_on_its_own_line():
    text = code_markdown(["?lab_stride=2&lab_k=0.5%2C1", "keras.layers.Conv2D(4, (3, 3))"])
    assert text == "`?lab_stride=2&lab_k=0.5%2C1`  \n`keras.layers.Conv2D(4, (3, 3))`"


def test_a_backtick_inside_is_fenced_with_one_more():
    """CommonMark: a code span is fenced with one backtick more than the longest run inside
    it, so the span shows the line exactly."""
    assert code_markdown(["a`b"]) == "``a`b``"
    assert code_markdown(["a``b"]) == "```a``b```"


def test_a_code_span_renders_its_text_literally():
    md = MarkdownIt("commonmark")
    lines = ["?a=1&b=*2*", "x = [1, 2]  # _not_ emphasis", "a`b", "a``b", "`x`", "<b>bold</b>"]
    for line in lines:
        html = md.renderInline(code_markdown([line]))
        assert html.startswith("<code>") and html.endswith("</code>"), html
        inner = html.removeprefix("<code>").removesuffix("</code>")
        assert inner.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") == line
