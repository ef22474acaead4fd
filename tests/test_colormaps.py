"""cnnlib.core.colormaps: lookup tables and colouring, checked against hand-computed values."""

import numpy as np

from cnnlib.core import colormaps


def test_lookup_table_interpolates_between_stops():
    table = colormaps.lookup_table([(0.0, (0, 0, 0)), (1.0, (255, 100, 0))], n=5)
    assert table.dtype == np.uint8 and table.shape == (5, 3)
    assert table[:, 0].tolist() == [0, 64, 128, 191, 255]  # round(255·k/4)
    assert table[:, 1].tolist() == [0, 25, 50, 75, 100]


def test_evenly_spaced_stops():
    stops = colormaps.evenly_spaced([(0, 0, 0), (1, 1, 1), (2, 2, 2)])
    assert [p for p, _ in stops] == [0.0, 0.5, 1.0]


def test_colorize_ends_clipping_and_flat_range():
    table = colormaps.lookup_table([(0.0, (0, 0, 0)), (1.0, (200, 200, 200))], n=3)  # 0,100,200
    out = colormaps.colorize(np.array([[-5.0, 0.0], [0.5, 9.0]]), table, 0.0, 1.0)
    assert out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 0], [100, 200]]
    flat = colormaps.colorize(np.ones(3), table, 1.0, 1.0, flat=0.5)
    assert flat[:, 0].tolist() == [100, 100, 100]
