"""cnnlib.core.colormaps: lookup tables and colouring, checked against hand-computed values."""

import numpy as np
import pytest

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


# ------------------------------------------------------------------ colour-vision deficiencies
# Machado, Oliveira & Fernandes (2009), "A physiologically-based model for simulation of
# color vision deficiency", severity 1.0: 3×3 matrices applied to linear RGB.
MACHADO = {
    "protanopia": [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ],
    "deuteranopia": [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ],
    "tritanopia": [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.303900],
    ],
}
#: sRGB (D65) linear RGB → CIE XYZ, and the D65 white point.
_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _linear(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(rgb: np.ndarray, deficiency: str | None = None) -> np.ndarray:
    """(n, 3) uint8 sRGB → (n, 3) CIELAB (D65), as seen with ``deficiency`` (None: typical)."""
    lin = _linear(rgb)
    if deficiency is not None:
        lin = np.clip(lin @ np.array(MACHADO[deficiency]).T, 0.0, 1.0)
    t = (lin @ _XYZ.T) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 ΔE*ab: the distance in CIELAB."""
    return np.linalg.norm(a - b, axis=-1)


def _pair_distances(table: np.ndarray, deficiency: str) -> np.ndarray:
    """ΔE between the colours of −v and +v of a diverging table, for |v| from the full range
    down to a quarter of it (t = 0 … 3/8 against 1 − t)."""
    n = len(table) - 1
    low = np.arange(0, 3 * n // 8 + 1)
    return _delta_e(_lab(table[low], deficiency), _lab(table[n - low], deficiency))


def _steadily_lighter(lightness: np.ndarray) -> bool:
    return bool(np.all(np.diff(lightness[::16]) > 0) and np.all(np.diff(lightness) > -0.5))


def test_the_simulation_matches_published_values():
    """Pure red seen with protanopia and deuteranopia, by the matrices above (Machado 2009,
    severity 1): the first row of each matrix is red's linear R, and so on."""
    lin = _linear(np.array([[255, 0, 0]]))
    assert lin.tolist() == [[1.0, 0.0, 0.0]]
    for name in ("protanopia", "deuteranopia"):
        simulated = lin @ np.array(MACHADO[name]).T
        np.testing.assert_allclose(simulated[0], np.array(MACHADO[name])[:, 0])
    # CIELAB of sRGB white and of pure red (D65), standard reference values.
    np.testing.assert_allclose(_lab(np.array([[255, 255, 255]]))[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(_lab(np.array([[255, 0, 0]]))[0], [53.24, 80.09, 67.20], atol=0.05)


@pytest.mark.parametrize("deficiency", [None, *MACHADO])
@pytest.mark.parametrize("name", list(colormaps.SCALES))
def test_every_scale_keeps_its_ends_and_centre_apart(name, deficiency):
    """The issue's criterion: a scale's two ends, and its centre, stay distinguishable
    (ΔE ≥ 10 in CIELAB) with typical vision and each simulated deficiency."""
    table = colormaps.table(name)
    lo, mid, hi = _lab(table[[0, len(table) // 2, -1]], deficiency)
    assert _delta_e(lo, hi) >= 10
    assert min(_delta_e(lo, mid), _delta_e(mid, hi)) >= 10


@pytest.mark.parametrize("deficiency", [None, *MACHADO])
@pytest.mark.parametrize("name", [colormaps.MAGNITUDE, colormaps.HEAT])
def test_sequential_scales_get_steadily_lighter(name, deficiency):
    """A sequential scale is read by lightness: L* rises from each sixteenth of the table to
    the next, and no step back is visible (under 0.5; a just-noticeable difference is about
    2), so "more" looks lighter whatever hues a learner tells apart."""
    assert _steadily_lighter(_lab(colormaps.table(name), deficiency)[:, 0])


@pytest.mark.parametrize("deficiency", [None, *MACHADO])
def test_the_diverging_scale_tells_negative_from_positive(deficiency):
    """Signed values: −v and +v look different (ΔE ≥ 20) for every |v| above a quarter of the
    range, and lightness rises from each end to the white centre (0)."""
    table = colormaps.table(colormaps.SIGN)
    assert _pair_distances(table, deficiency).min() >= 20
    lightness = _lab(table, deficiency)[:, 0]
    centre = len(table) // 2
    assert _steadily_lighter(lightness[: centre + 1])
    assert _steadily_lighter(lightness[centre:][::-1])


def test_the_checks_reject_scales_that_fail_colour_blind_learners():
    """The checks can fail: ColorBrewer's red-yellow-green diverging scale loses its sign
    with deuteranopia and protanopia, and the rainbow "Jet" (the app's old Grad-CAM scale) is
    not ordered by lightness."""
    # ColorBrewer's RdYlGn, 11 colours as hex triplets.
    rdylgn = "a50026 d73027 f46d43 fdae61 fee08b ffffbf d9ef8b a6d96a 66bd63 1a9850 006837"
    red_green = colormaps.lookup_table(
        colormaps.evenly_spaced([tuple(bytes.fromhex(h)) for h in rdylgn.split()]),
        colormaps.TABLE_SIZE,
    )
    for deficiency in ("deuteranopia", "protanopia"):
        assert _pair_distances(red_green, deficiency).min() < 20
    assert _pair_distances(red_green, None).min() >= 20  # fine with typical vision
    jet = colormaps.lookup_table(
        colormaps.evenly_spaced(
            [(0, 0, 131), (0, 60, 170), (5, 255, 255), (255, 255, 0), (250, 0, 0), (128, 0, 0)]
        ),
        colormaps.TABLE_SIZE,
    )
    assert not _steadily_lighter(_lab(jet)[:, 0])


def test_legend_says_what_the_colours_mean():
    assert colormaps.legend(colormaps.SIGN, -0.5, 0.5) == (
        "Colours: blue -0.5 · white 0 · red +0.5."
    )
    assert (
        colormaps.legend(colormaps.MAGNITUDE, 0, 2.125) == "Colours: dark purple 0 → yellow 2.12."
    )
    assert colormaps.legend(colormaps.HEAT, 0, 1) == "Colours: black 0 → pale yellow 1."
