"""What a hostile browser could send as the Convolution lab's kernel cells (``ui.kernel_grid``
sends rows of texts): each is refused by ``cnnlib.conv.lab.kernel_from_cells`` with a short,
plain message, and never reaches the convolution. Keyed by what it tries; the value is the
payload for a 3×3 kernel and a word its message must hold."""

from __future__ import annotations

from cnnlib.conv.lab import MAX_CELL_TEXT


def _grid(cell: object) -> list[list[object]]:
    """A 3×3 payload of zeros with ``cell`` in the middle."""
    return [["0", "0", "0"], ["0", cell, "0"], ["0", "0", "0"]]


HOSTILE_CELLS: dict[str, tuple[object, str]] = {
    "not a list": ("1,2,3;4,5,6;7,8,9", "did not send 3×3"),
    "a dict": ({"values": [[1]]}, "did not send 3×3"),
    "too few rows": ([["0", "0", "0"]] * 2, "did not send 3×3"),
    "a ragged row": ([["0", "0", "0"], ["0", "0"], ["0", "0", "0"]], "did not send 3×3"),
    "a million rows": ([["0", "0", "0"]] * 1_000_000, "did not send 3×3"),
    "a number, not text": (_grid(5), "at most"),
    "a nested list": (_grid(["1"]), "at most"),
    "a very long number": (_grid("1" * (MAX_CELL_TEXT + 1)), "at most"),
    "a megabyte of text": (_grid("9" * 1_000_000), "at most"),
    "a word": (_grid("two"), "not a number"),
    "markdown and a link": (_grid("[x](https://e.example)"), "not a number"),
    "html": (_grid("<b>1</b>"), "not a number"),
    "nan": (_grid("nan"), "finite"),
    "infinity": (_grid("-inf"), "finite"),
    "an overflow to infinity": (_grid("1e400"), "finite"),
    "too large a weight": (_grid("1e7"), "between"),
}
