"""Colour scales as lookup tables, and values → colours with them (pure NumPy).

One mechanism for every heatmap drawn as an image: the Convolution lab's JPEG thumbnails,
the Feature maps page's grids and the Grad-CAM / saliency overlays. ``SCALES`` holds the
app's named scales, spelled exactly as plotly's scales of the same name (so a heatmap figure
and an image of the same values look alike); ``table(name)`` is a scale's lookup table,
``colorize`` applies one, ``legend`` says in words what its colours mean. ``SIGN``,
``MAGNITUDE`` and ``HEAT`` name the app's three scales; ``ui.figures.colorscale`` /
``colorize`` are the page-side names.

Every scale stays readable with a colour-vision deficiency (``tests/test_colormaps.py``
simulates protanopia, deuteranopia and tritanopia with Machado et al. 2009): the diverging
scale's two ends stay far apart and both far from its white centre, and the sequential ones
grow steadily lighter from end to end, so their order survives without hue. That is why
Grad-CAM and saliency use "Inferno" (black → yellow), not the rainbow "Jet", whose lightness
goes up and down and whose middle is red against green.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

_VIRIDIS = [
    (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37),
]  # fmt: skip
_RDBU_R = [
    (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
    (247, 247, 247), (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43),
    (103, 0, 31),
]  # fmt: skip
_INFERNO = [
    (0, 0, 4), (27, 12, 65), (74, 12, 107), (120, 28, 109), (165, 44, 96), (207, 68, 70),
    (237, 105, 37), (251, 155, 6), (247, 209, 61), (252, 255, 164),
]  # fmt: skip

#: The app's scales: signed values (diverging around 0: weights, convolution outputs),
#: magnitudes (sequential: feature maps, |values|), and Grad-CAM / saliency evidence.
SIGN, MAGNITUDE, HEAT = "RdBu_r", "Viridis", "Inferno"
#: (position in [0, 1], (r, g, b) 0–255) stops of the app's named scales, evenly spaced, the
#: values of plotly's scales of the same name: "Viridis" (sequential, dark purple → yellow),
#: "RdBu_r" (blue = negative, white = 0, red = positive), "Inferno" (sequential, black →
#: yellow).
SCALES: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    name: tuple((i / (len(colours) - 1), c) for i, c in enumerate(colours))
    for name, colours in ((MAGNITUDE, _VIRIDIS), (SIGN, _RDBU_R), (HEAT, _INFERNO))
}
#: The colours of each scale's low end, centre (diverging only) and high end, in words.
COLOUR_NAMES: dict[str, tuple[str, ...]] = {
    SIGN: ("blue", "white", "red"),
    MAGNITUDE: ("dark purple", "yellow"),
    HEAT: ("black", "pale yellow"),
    "gray": ("black", "white"),
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


def legend(name: str, lo: float, hi: float) -> str:
    """What the colours of scale ``name`` mean for values ``lo``…``hi``, in words, e.g.
    "Colours: blue −0.5 · white 0 · red +0.5." or "Colours: dark purple 0 → yellow 2.1."."""
    names = COLOUR_NAMES.get(name)
    if names is None:
        return f"Colours: {name} scale from {lo:.3g} to {hi:.3g}."
    if len(names) == 3:
        return f"Colours: {names[0]} {lo:.3g} · {names[1]} 0 · {names[2]} +{hi:.3g}."
    return f"Colours: {names[0]} {lo:.3g} → {names[1]} {hi:.3g}."
