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
    first, last = (
        pc.hex_to_rgb(c) if c.startswith("#") else pc.unlabel_rgb(c)
        for c in (scale[0][1], scale[-1][1])
    )
    assert tuple(rgb[0]) == tuple(int(v) for v in first)
    assert tuple(rgb[2]) == tuple(int(v) for v in last)
    gray = figures.colorize(np.linspace(0, 1, 11), figures.GRAY, 0.0, 1.0)
    assert gray[0, 0] == 0 and gray[-1, 0] >= 250 and np.all(np.diff(gray[:, 0].astype(int)) > 0)
    assert np.ptp(gray.astype(int), axis=1).max() <= 2  # grey: r ≈ g ≈ b


def test_shape_text_is_the_cnnlib_one():
    from cnnlib.core.text import shape_text

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


def test_bar_chart_options():
    fig = figures.bar_chart(
        ["a", "b", "c"],
        [0.5, 0.2, 0.3],
        color=["#111111", "#222222", "#333333"],
        highlight=2,
        highlight_color="#ff0000",
        show_values=False,
        hover="unit %{x}: %{y:.4g}<extra></extra>",
    )
    bar = fig.data[0]
    assert list(bar.marker.color) == ["#111111", "#222222", "#ff0000"]
    assert bar.text is None and bar.hovertemplate.startswith("unit %{x}")
    top = figures.bar_chart(["x"], [0.9], horizontal=True, text_position="auto")
    assert top.data[0].textposition == "auto" and top.layout.yaxis.autorange == "reversed"
    assert top.data[0].hovertemplate == "%{y}: %{x:.2%}<extra></extra>"


@pytest.mark.parametrize("name", ["Viridis", "RdBu_r", "Inferno"])
def test_the_app_scales_are_plotlys_and_shared_with_cnnlib(name):
    """``cnnlib.core.colormaps.SCALES`` spells plotly's scales exactly; ``figures.colorize`` and
    cnnlib's images (feature-map grids, the Grad-CAM overlay) colour with the same table."""
    from cnnlib.core import colormaps

    plotly_stops = [
        (round(p, 9), tuple(pc.hex_to_rgb(c) if c.startswith("#") else pc.unlabel_rgb(c)))
        for p, c in pc.get_colorscale(name)
    ]
    ours = [(round(p, 9), tuple(float(v) for v in c)) for p, c in colormaps.SCALES[name]]
    assert ours == [(p, tuple(float(v) for v in c)) for p, c in plotly_stops]
    values = np.linspace(0.0, 1.0, 33).astype(np.float32)
    shared = colormaps.colorize(values, colormaps.table(name), 0.0, 1.0)
    np.testing.assert_array_equal(figures.colorize(values, name, 0.0, 1.0), shared)


def test_cnnlib_images_use_the_app_scales():
    from cnnlib.inspect import features, imagenet

    cam = np.array([[0.0, 0.25], [0.75, 1.0]], np.float32)
    heat = np.asarray(imagenet.heatmap_rgb(cam, (2, 2)))  # same size: no resampling
    np.testing.assert_array_equal(heat, figures.colorize(cam, figures.HEAT, 0.0, 1.0))
    assert tuple(heat[0, 0]) == (0, 0, 4) and tuple(heat[1, 1]) == (252, 255, 164)  # Inferno's ends
    np.testing.assert_array_equal(
        features.colorize(cam, 0.0, 1.0), figures.colorize(cam, figures.MAGNITUDE, 0.0, 1.0)
    )
    signed = cam * 2 - 1
    np.testing.assert_array_equal(
        features.colorize(signed, -1.0, 1.0, "diverging"),
        figures.colorize(signed, figures.SIGN, -1.0, 1.0),
    )


def test_the_pages_bar_charts_come_from_bar_chart():
    """Per-class accuracy, probabilities and the top-5 keep their look through ``bar_chart``."""
    from cnnlib.inspect.imagenet import Prediction
    from ui import classify_view, training_view

    probs = training_view.probabilities_figure(np.array([0.1, 0.7, 0.2]), ["0", "1", "2"])
    bar = probs.data[0]
    assert list(bar.x) == ["0", "1", "2"] and list(bar.text) == ["10.0%", "70.0%", "20.0%"]
    assert bar.marker.color[1] == training_view.ACC_COLOR != bar.marker.color[0]
    assert tuple(probs.layout.yaxis.range) == (0.0, 1.15)
    acc = training_view.per_class_figure(np.array([0.9, np.nan]), ["a", "b"])
    np.testing.assert_allclose(acc.data[0].y, [0.9, 0.0])
    preds = [Prediction(281, "tabby", 0.6), Prediction(285, "Egyptian_cat", 0.3)]
    top = classify_view.top5_figure(preds).data[0]
    assert top.orientation == "h" and list(top.y) == ["tabby (281)", "Egyptian cat (285)"]


def _starting_status_app(process_id_is_server: bool):
    import os

    from cnnlib.training.trainer import TrainingProgress
    from ui import training_view

    pid = os.getpid() if process_id_is_server else os.getpid() + 1
    training_view.show_status(TrainingProgress(state="running", epochs=1, process_id=pid), 1)


@pytest.mark.slow
def test_the_starting_label_names_the_training_process_only_when_there_is_one():
    from streamlit.testing.v1 import AppTest

    def label(in_server: bool) -> str:
        at = AppTest.from_function(_starting_status_app, args=(in_server,)).run(timeout=30)
        assert not at.exception
        return at.get("progress")[0].proto.text

    assert label(False).startswith("**Starting: loading TensorFlow in this training's own proc")
    assert label(True).startswith("**Starting** · ")
