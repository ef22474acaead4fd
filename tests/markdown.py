"""Reading markdown in tests: what of it Streamlit would interpret."""

from __future__ import annotations

import re


def outside_code_spans(markdown: str) -> str:
    """``markdown`` without its code spans (CommonMark: a run of backticks up to the same
    run): what is left is all that markdown interprets. Hostile values must not be in it."""
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", markdown, flags=re.S)
