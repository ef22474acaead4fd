r"""Text shown to learners: shapes written the one way, and untrusted values made safe.

``shape_text`` is the project's single shape formatter (cnnlib summaries and every page use
it; ``ui.figures`` re-exports it). ``safe_text`` quotes a value that came from outside (a
link, a file name, a class name) so Streamlit's markdown shows it as plain text.

Why a code span and not backslash escapes: Streamlit renders markdown with GitHub's
extensions, whose autolinks are found in the text *after* escapes are resolved, so an
escaped ``https\://evil\.example`` or ``www\.evil\.example`` is still shown as a link
(seen in Chromium). Inside a code span nothing is interpreted: no link, autolink, emphasis,
HTML, LaTeX, colour or icon directive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def shape_text(shape: Iterable[int | None]) -> str:
    """(28, 28, 1) → "28×28×1"; None (a batch axis) is written "?"; () → "scalar"."""
    parts = ["?" if d is None else str(int(d)) for d in shape]
    return "×".join(parts) if parts else "scalar"


def plain_text(value: object, max_len: int = 60) -> str:
    """``value`` as one line of at most ``max_len`` characters: control characters and line
    breaks become spaces, a longer text is cut and ends with "…". For places that show text
    as it is (``st.text``, table cells, chart labels)."""
    text = "".join(" " if (ord(c) < 32 or ord(c) == 127) else c for c in str(value))
    if len(text) > max_len:
        text = text[: max(max_len - 1, 0)] + "…"
    return text


def safe_text(value: object, max_len: int = 60) -> str:
    """An untrusted value as a markdown code span that shows it verbatim, at most
    ``max_len`` characters (``plain_text``): ``[x](https://evil)`` shows as those
    characters, never as a link; nor does a bare ``https://…``, ``www.…`` or e-mail address.

    The fence is one backtick more than the longest run inside the value (CommonMark), with
    a space inside it when the value starts or ends with a backtick, or with spaces.
    """
    text = plain_text(value, max_len)
    if not text.strip():
        return "“”" if not text else "“" + text + "”"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    both_spaces = text[0] == " " and text[-1] == " "  # CommonMark strips one of each
    pad = " " if "`" in (text[0], text[-1]) or both_spaces else ""
    return f"{fence}{pad}{text}{pad}{fence}"
