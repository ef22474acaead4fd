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


def code_markdown(lines: Iterable[str]) -> str:
    """The Markdown for ``lines`` as inline code, one per line (a line holding a backtick is
    fenced with two, padded with spaces as CommonMark asks)."""
    out = []
    for line in lines:
        out.append(f"`` {line} ``" if "`" in line else f"`{line}`")
    return "  \n".join(out)


def show_code_lines(lines: Iterable[str]) -> None:
    """Draw ``lines`` as inline code, one per line (no syntax highlighter)."""
    st.markdown(code_markdown(lines))
