"""Small labelled cell grids (a patch, a kernel, the small-grid walkthrough, the transposed
convolution's writes) drawn as one SVG picture for ``st.image``.

Why not a chart: these grids are drawings, not data to zoom or hover (every number is
written in its cell, and each view has a "Show as table" alternative). A Plotly chart costs
the browser 150–400 ms each time it changes (its layout defaults are recomputed on every
redraw), which made each Convolution-lab click several times Streamlit's floor; an SVG of a
few hundred rectangles is drawn in a few milliseconds, and an unchanged one is the same
``data:`` address, so the browser leaves it alone.

``grid_picture(panels)`` returns the SVG text; ``show_grids`` draws it at its natural size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
import streamlit as st

#: Drawing sizes, px: one cell, the gap between panels, a panel title's band, the margin.
CELL = 34
GAP = 28
TITLE = 22
MARGIN = 4
#: Width of one title character at 13 px, px (an upper estimate for sans-serif).
TITLE_CHAR = 7.4
#: Grid lines between cells.
LINE = "#9e9e9e"
FONT = "font-family='sans-serif' text-anchor='middle' dominant-baseline='central'"


@dataclass(frozen=True)
class Outline:
    """A rectangle drawn around cells ``top..bottom`` × ``left..right`` (inclusive)."""

    top: int
    left: int
    bottom: int
    right: int
    color: str
    width: float = 3.0


@dataclass(frozen=True)
class GridPanel:
    """One grid: ``fill`` (h, w) CSS colours; ``text`` (h, w) labels or None; a title;
    ``shade`` (h, w) bool cells covered in translucent grey; outlines drawn on top."""

    fill: np.ndarray
    title: str
    text: np.ndarray | None = None
    shade: np.ndarray | None = None
    outlines: Sequence[Outline] = field(default_factory=tuple)
    font_px: int = 11


def hex_colors(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 → (...,) array of ``#rrggbb`` strings."""
    flat = np.asarray(rgb, np.uint8).reshape(-1, 3)
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in flat]).reshape(rgb.shape[:-1])


def _ink(color: str) -> str:
    """Black or white text, whichever reads on ``color`` (``#rrggbb``)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def _slot(p: GridPanel, cell: float) -> float:
    """A panel's width, px: its grid, or its title where that is wider."""
    return max(p.fill.shape[1] * cell, TITLE_CHAR * len(p.title))


def _panel(p: GridPanel, slot_x: float, cell: float) -> list[str]:
    h, w = p.fill.shape
    slot = _slot(p, cell)
    x0, y0 = slot_x + (slot - w * cell) / 2, MARGIN + TITLE  # the grid centred in its slot
    out = [
        f"<text x='{slot_x + slot / 2:.1f}' y='{MARGIN + TITLE / 2:.1f}' font-size='13' "
        f"{FONT}>{escape(p.title)}</text>"
    ]
    for r in range(h):
        for c in range(w):
            x, y, color = x0 + c * cell, y0 + r * cell, str(p.fill[r, c])
            out.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{cell:.1f}' height='{cell:.1f}' "
                f"fill='{color}' stroke='{LINE}' stroke-width='1'/>"
            )
            if p.shade is not None and p.shade[r, c]:
                out.append(
                    f"<rect x='{x:.1f}' y='{y:.1f}' width='{cell:.1f}' height='{cell:.1f}' "
                    "fill='rgb(120,120,120)' fill-opacity='0.35'/>"
                )
            if p.text is not None and str(p.text[r, c]):
                out.append(
                    f"<text x='{x + cell / 2:.1f}' y='{y + cell / 2:.1f}' "
                    f"font-size='{p.font_px}' fill='{_ink(color)}' {FONT}>"
                    f"{escape(str(p.text[r, c]))}</text>"
                )
    for o in p.outlines:
        out.append(
            f"<rect x='{x0 + o.left * cell:.1f}' y='{y0 + o.top * cell:.1f}' "
            f"width='{(o.right - o.left + 1) * cell:.1f}' "
            f"height='{(o.bottom - o.top + 1) * cell:.1f}' fill='none' stroke='{o.color}' "
            f"stroke-width='{o.width:g}'/>"
        )
    return out


def grid_picture(panels: Sequence[GridPanel], cell: float = CELL) -> tuple[str, int]:
    """The panels side by side, tops aligned: (SVG text, its width in px)."""
    parts, x = [], float(MARGIN)
    for p in panels:
        parts += _panel(p, x, cell)
        x += _slot(p, cell) + GAP
    width = round(x - GAP + MARGIN)
    height = round(2 * MARGIN + TITLE + max(p.fill.shape[0] for p in panels) * cell)
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'><rect width='100%' height='100%' fill='#ffffff'/>"
        + "".join(parts)
        + "</svg>"
    )
    return svg, width


def show_grids(panels: Sequence[GridPanel], *, alt: str, cell: float = CELL) -> None:
    """Draw the panels as one picture at their natural width (narrower where the column is)."""
    st.image(grid_picture(panels, cell)[0], width="content", alt=alt)
