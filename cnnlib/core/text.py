"""Text shown to learners: shapes written the one way, and untrusted values made safe.

``shape_text`` is the project's single shape formatter (cnnlib summaries and every page use
it; ``ui.figures`` re-exports it). ``safe_text`` quotes a value that came from outside (a
link, a file name) so Streamlit's markdown shows it as plain text.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Characters with a meaning in Streamlit's markdown (CommonMark, GitHub extras, LaTeX, colour
#: and icon directives) or in HTML; each is backslash-escaped or replaced by an entity.
_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|~>:$=")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;"}


def shape_text(shape: Iterable[int | None]) -> str:
    """(28, 28, 1) → "28×28×1"; None (a batch axis) is written "?"; () → "scalar"."""
    parts = ["?" if d is None else str(int(d)) for d in shape]
    return "×".join(parts) if parts else "scalar"


def safe_text(value: object, max_len: int = 60) -> str:
    """An untrusted value as inert markdown/HTML text, at most ``max_len`` characters shown.

    Longer values are cut and end with "…"; control characters and line breaks become spaces;
    markdown specials are backslash-escaped and HTML specials become entities, so
    ``[x](https://evil)`` shows as those characters, not as a link.
    """
    text = "".join(" " if (ord(c) < 32 or ord(c) == 127) else c for c in str(value))
    if len(text) > max_len:
        text = text[: max(max_len - 1, 0)] + "…"
    out = []
    for c in text:
        if c in _HTML:
            out.append(_HTML[c])
        elif c in _MARKDOWN_SPECIALS:
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)
