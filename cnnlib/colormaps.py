"""Colour scales as lookup tables, and values → colours with them (pure NumPy).

One mechanism for every heatmap drawn as an image: the Convolution lab's JPEG thumbnails and
the Feature maps page's grids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
