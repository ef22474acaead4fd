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


def _rgb(hex_colours: str) -> list[tuple[int, int, int]]:
    """ "440154 482878" → [(68, 1, 84), (72, 40, 120)]: colours written as hex triplets."""
    return [tuple(bytes.fromhex(h)) for h in hex_colours.split()]


_VIRIDIS = _rgb("440154 482878 3e4989 31688e 26828e 1f9e89 35b779 6ece58 b5de2b fde725")
_RDBU_R = _rgb("053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f")
_INFERNO = _rgb("000004 1b0c41 4a0c6b 781c6d a52c60 cf4446 ed6925 fb9b06 f7d13d fcffa4")

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
