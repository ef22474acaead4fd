"""Colour scales as lookup tables, and values → colours with them (pure NumPy).

One mechanism for every heatmap drawn as an image: the Convolution lab's JPEG thumbnails,
the Feature maps page's grids and the Grad-CAM / saliency overlays. ``SCALES`` holds the
app's named scales, spelled exactly as plotly's scales of the same name (so a heatmap figure
and an image of the same values look alike); ``table(name)`` is a scale's lookup table,
``colorize`` applies one. ``ui.figures.colorscale`` / ``colorize`` are the page-side names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

_VIRIDIS = [
    (68, 1, 84),
    (72, 40, 120),
    (62, 73, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (110, 206, 88),
    (181, 222, 43),
    (253, 231, 37),
]
_RDBU_R = [
    (5, 48, 97),
    (33, 102, 172),
    (67, 147, 195),
    (146, 197, 222),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (244, 165, 130),
    (214, 96, 77),
    (178, 24, 43),
    (103, 0, 31),
]
_JET = [(0, 0, 131), (0, 60, 170), (5, 255, 255), (255, 255, 0), (250, 0, 0), (128, 0, 0)]

#: (position in [0, 1], (r, g, b) 0–255) stops of the app's named scales, evenly spaced, the
#: values of plotly's scales of the same name: "Viridis" (sequential, dark purple → yellow:
#: feature maps, |values|), "RdBu_r" (blue = negative, white = 0, red = positive: weights),
#: "Jet" (blue = none → red = strongest: Grad-CAM and saliency overlays).
SCALES: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    name: tuple((i / (len(colours) - 1), c) for i, c in enumerate(colours))
    for name, colours in (("Viridis", _VIRIDIS), ("RdBu_r", _RDBU_R), ("Jet", _JET))
}
#: Table length: 257 colours, so that the middle of a symmetric range (0) is one of them.
TABLE_SIZE = 257


@functools.cache
def table(name: str) -> np.ndarray:
    """The (TABLE_SIZE, 3) uint8 lookup table of the named scale in ``SCALES`` (read-only)."""
    out = lookup_table(SCALES[name], TABLE_SIZE)
    out.flags.writeable = False
    return out


def lookup_table(stops: Sequence[tuple[float, Sequence[float]]], n: int = 256) -> np.ndarray:
    """A colour scale given as (position in [0, 1], (r, g, b) 0–255) stops → (n, 3) uint8."""
    pos = np.array([p for p, _ in stops], dtype=np.float64)
    rgb = np.array([c for _, c in stops], dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)
    table = np.stack([np.interp(t, pos, rgb[:, i]) for i in range(3)], axis=-1)
    return np.clip(np.round(table), 0, 255).astype(np.uint8)


def evenly_spaced(colours: Sequence[Sequence[float]]) -> list[tuple[float, Sequence[float]]]:
    """Stops for ``lookup_table`` from colours spread evenly over [0, 1]."""
    positions = np.linspace(0.0, 1.0, len(colours))
    return [(float(p), c) for p, c in zip(positions, colours, strict=True)]


def colorize(
    values: np.ndarray, table: np.ndarray, lo: float, hi: float, *, flat: float = 0.0
) -> np.ndarray:
    """Values (...,) → colours (..., 3) uint8: ``lo`` maps to table[0], ``hi`` to table[-1],
    values outside are clipped. A flat range (hi ≤ lo) gives the colour at ``flat`` ∈ [0, 1].
    """
    top = len(table) - 1
    v = np.asarray(values, dtype=np.float32)
    if hi > lo:
        idx = np.clip((v - lo) * (top / (hi - lo)), 0, top)
    else:
        idx = np.full(v.shape, flat * top, dtype=np.float32)
    return table[np.rint(idx).astype(np.intp)]
