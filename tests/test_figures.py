"""ui.figures: the fast plain-dict path renders what plotly's own path renders, the colour
scales match plotly's, and the bar chart draws what it is given.

The fast path relies on two things outside this project, checked here so that an upgrade
of Streamlit or plotly that changes them fails a test instead of drawing wrong figures:
``st.plotly_chart`` reaches a figure's data only through ``to_dict()`` (plotly's
``return_figure_from_figure_or_data`` takes a ``BaseFigure``'s ``to_dict()`` as already
validated), and a plain dict with typed arrays encodes to the same JSON as the
``go.Figure`` built from the same dict.
"""

from __future__ import annotations

import json

import numpy as np
import plotly.colors as pc
import plotly.tools
import pytest
from streamlit.testing.v1 import AppTest

from ui import figures


def _plain_and_plotly_specs() -> list[dict]:
    """JSON specs of one figure drawn through ``figures.plot`` and as a ``go.Figure``."""

    def script() -> None:
        import numpy as np
        import plotly.graph_objects as go
        import streamlit as st

        from ui import figures

        def fig() -> dict:
            z = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
            rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
            traces = [
                {"type": "heatmap", "z": z, "colorscale": figures.colorscale("RdBu_r")},
                {"type": "image", "z": rgb, "xaxis": "x2", "yaxis": "y2"},
            ]
            shapes = [figures.rect(0, 1, 2, 3, "#ff7f0e")]
            return figures.figure(traces, "title", 300, shapes, **figures.axes(2))

        figures.plot(fig())
        st.plotly_chart(go.Figure(fig()), config={"displaylogo": False})

    at = AppTest.from_function(script).run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    return [json.loads(c.proto.spec) for c in charts]


def test_plain_dict_renders_the_same_json_as_go_figure():
    plain, plotly_fig = _plain_and_plotly_specs()
    assert plain == plotly_fig
    assert plain["data"][0]["z"]["dtype"] == "f4"  # arrays travel as typed arrays


def test_plotly_takes_a_figures_to_dict_as_it_is():
    """What ``PlainFigure`` relies on: plotly hands a BaseFigure's ``to_dict()`` on without
    re-validating it (so the dict is sent as built)."""
    spec = {"data": [{"type": "bar", "y": [1, 2]}], "layout": {"height": 200}}
    got = plotly.tools.return_figure_from_figure_or_data(
        figures.PlainFigure(spec), validate_figure=True
    )
    assert got is spec


def test_colorscale_and_colorize_follow_plotly():
    scale = figures.colorscale(figures.SIGN)
    assert scale == [[float(p), c] for p, c in pc.get_colorscale("RdBu_r")]
    rgb = figures.colorize(np.array([-1.0, 0.0, 1.0]), figures.SIGN, -1.0, 1.0)
    assert rgb.shape == (3, 3) and rgb.dtype == np.uint8
    first, last = (pc.hex_to_rgb(c) if c.startswith("#") else pc.unlabel_rgb(c)
                   for c in (scale[0][1], scale[-1][1]))  # fmt: skip
    assert tuple(rgb[0]) == tuple(int(v) for v in first)
    assert tuple(rgb[2]) == tuple(int(v) for v in last)
    gray = figures.colorize(np.linspace(0, 1, 11), figures.GRAY, 0.0, 1.0)
    assert gray[0, 0] == 0 and gray[-1, 0] >= 250 and np.all(np.diff(gray[:, 0].astype(int)) > 0)
    assert np.ptp(gray.astype(int), axis=1).max() <= 2  # grey: r ≈ g ≈ b


def test_shape_text_is_the_cnnlib_one():
    from cnnlib.text import shape_text

    assert figures.shape_text is shape_text


@pytest.mark.parametrize("horizontal", [False, True])
def test_bar_chart(horizontal):
    fig = figures.bar_chart(
        ["cat", "dog", "fox"], [0.1, 0.7, 0.2], horizontal=horizontal, highlight=1, height=250
    )
    bar = fig.data[0]
    values, names = (bar.x, bar.y) if horizontal else (bar.y, bar.x)
    assert list(names) == ["cat", "dog", "fox"]
    np.testing.assert_allclose(values, [0.1, 0.7, 0.2])
    assert list(bar.text) == ["10.0%", "70.0%", "20.0%"]
    assert bar.marker.color[1] != bar.marker.color[0] == bar.marker.color[2]
    assert bar.orientation == ("h" if horizontal else "v")
    assert fig.layout.height == 250
    plain = figures.bar_chart([1, 2], [3.14159, 2.0], value_format=".2f")
    assert list(plain.data[0].text) == ["3.14", "2.00"]
