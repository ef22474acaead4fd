"""Short code shown as Markdown inline code, one line each.

``st.code`` makes the browser load Streamlit's syntax-highlighter chunk (1.5 MB of
JavaScript, every Prism language) the first time a page shows a code block: about 0.7 s of
the Convolution lab's first open on the 2-core machine (Chrome's profiler, 2026-12-07).
Inline code needs only the Markdown renderer every page already loads. Use this for a link
or a one-line layer; keep ``st.code`` for real multi-line listings.
"""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from cnnlib.core.text import safe_text

#: Longest line shown (a lab link: a 7×7 custom kernel and its settings stay far below).
MAX_LINE = 2000


def code_markdown(lines: Iterable[str]) -> str:
    """The Markdown for ``lines`` as inline code, one per line (``safe_text``'s code spans:
    shown verbatim, backticks included)."""
    return "  \n".join(safe_text(line, MAX_LINE) for line in lines)


def show_code_lines(lines: Iterable[str]) -> None:
    """Draw ``lines`` as inline code, one per line (no syntax highlighter)."""
    st.markdown(code_markdown(lines))
