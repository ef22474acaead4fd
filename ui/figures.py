"""The app's one figure toolkit: exactly one of each, for every page.

- **The fast figure path** (``plot``, ``figure``, ``axes``, ``rect``). A figure is a plain
  dict in plotly's schema (``{"data": [...], "layout": {...}}``). ``plot`` turns NumPy arrays
  into plotly.js typed arrays (base64, as plotly itself sends them), adds Streamlit's plotly
  template, and hands the dict to ``st.plotly_chart`` inside ``PlainFigure``: a
  ``go.Figure`` subclass whose ``to_dict()`` returns the dict as it is. ``st.plotly_chart``
  only calls ``to_dict()`` on a figure; plotly's own ``to_dict`` deep-copies and re-validates
  every array, which cost most of a Convolution-lab rerun. ``tests/test_figures.py`` checks
  that Streamlit still only needs ``to_dict`` and that a plain dict renders to the same JSON
  as the ``go.Figure`` equivalent. Use it for figures redrawn on every rerun; ordinary
  ``go.Figure`` objects are fine elsewhere.
- **One shape formatter**: ``shape_text`` (lives in ``cnnlib.core.text``; re-exported here).
- **One bar chart**: ``bar_chart`` (vertical or horizontal, a highlighted bar, value labels).
- **One colour-scale mechanism**: ``colorscale(name)`` spells a plotly scale out for traces
  (plotly.js alone does not know "RdBu_r" or "gray"); ``colorize(values, name, lo, hi)``
  colours an array with the same scale as (..., 3) uint8 via ``cnnlib.core.colormaps``, so a
  JPEG thumbnail and a heatmap of the same values look alike. ``SIGN`` (diverging around 0),
  ``MAGNITUDE`` (sequential), ``HEAT`` (Grad-CAM, saliency) and ``GRAY`` are the app's
  scales; cnnlib draws images with the same tables (``cnnlib.core.colormaps.table``), all
  readable with a colour-vision deficiency; ``legend`` says what a scale's colours mean.
- **Every chart has its numbers one click away**: ``table_view`` ("Show as table", an
  expander holding an HTML table a screen reader can read), and ``plot``/``st.plotly_chart``
  get an ``alt`` that says what the chart shows.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnlib.core import colormaps
from cnnlib.core.text import safe_text, shape_text
from ui import alt_text

__all__ = [
    "GRAY",
    "HEAT",
    "MAGNITUDE",
    "SIGN",
    "PlainFigure",
    "axes",
    "bar_chart",
    "colorize",
    "colorscale",
    "figure",
    "legend",
    "plain_label",
    "plot",
    "rect",
    "shape_text",
    "table_view",
]

#: The app's colour scales (plotly names): diverging around 0, sequential |value|, grey, and
#: Grad-CAM / saliency evidence (black = none, pale yellow = strongest).
SIGN, MAGNITUDE, HEAT = colormaps.SIGN, colormaps.MAGNITUDE, colormaps.HEAT
GRAY = "gray"
#: The label of every chart's table equivalent.
TABLE_LABEL = "Show as table"
#: Image-panel axes: no grid, square cells kept inside the domain.
AXIS = {"showgrid": False, "zeroline": False, "constrain": "domain"}
#: NumPy dtype → plotly.js typed-array name (what ``plot`` sends as base64).
TYPED = {"float32": "f4", "float64": "f8", "uint8": "u1", "int8": "i1", "int32": "i4"}


# ---------------------------------------------------------------------------- colours


@st.cache_resource(show_spinner=False)
def colorscale(name: str) -> list[list]:
    """A plotly colour scale by name as explicit [[position, colour], ...] stops."""
    import plotly.colors as pc

    return [[float(pos), color] for pos, color in pc.get_colorscale(name)]


@st.cache_resource(show_spinner=False)
def _table(name: str) -> np.ndarray:
    """The lookup table of scale ``name``: ``cnnlib.core.colormaps``' own for the app's scales
    (the same stops as plotly's), else built from plotly's stops."""
    if name in colormaps.SCALES:
        return colormaps.table(name)
    import plotly.colors as pc

    stops = [
        (pos, pc.hex_to_rgb(c) if c.startswith("#") else pc.unlabel_rgb(c))
        for pos, c in colorscale(name)
    ]
    return colormaps.lookup_table(stops)


def colorize(values: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
    """Values (...,) → (..., 3) uint8 with plotly scale ``name``: lo → its first colour,
    hi → its last (clipped outside)."""
    return colormaps.colorize(values, _table(name), lo, hi)


legend = colormaps.legend


# ----------------------------------------------------------------------- fast figures


class PlainFigure(go.Figure):
    """A figure given as a plain dict, handed to ``st.plotly_chart`` as it is.

    ``st.plotly_chart`` only calls ``to_dict()`` on a figure (see the module docstring);
    nothing of ``go.Figure``'s own state is built.
    """

    def __init__(self, fig: dict) -> None:  # no super().__init__: nothing else is used
        self._plain = fig

    def to_dict(self) -> dict:
        return self._plain


@st.cache_resource(show_spinner=False)
def _template() -> dict:
    """Streamlit's plotly template as a dict (what a ``go.Figure`` would carry)."""
    import plotly.io as pio

    return pio.templates[pio.templates.default].to_plotly_json()


def typed(a: np.ndarray) -> dict:
    """A NumPy array as a plotly.js typed array (base64), as plotly itself sends arrays."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.int64:
        a = a.astype(np.int32)
    spec = {"dtype": TYPED[str(a.dtype)], "bdata": base64.b64encode(a).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = ", ".join(str(d) for d in a.shape)
    return spec


def plain(fig: dict) -> dict:
    """``fig`` ready to send: arrays as typed arrays (others as lists), template added."""
    fig["layout"].setdefault("template", _template())
    for trace in fig["data"]:
        for name, value in trace.items():
            if isinstance(value, np.ndarray):
                trace[name] = typed(value) if str(value.dtype) in TYPED else value.tolist()
    return fig


def plot(fig: dict, key: str | None = None, *, alt: str | None = None) -> None:
    """Draw a plain-dict figure with ``st.plotly_chart`` (the fast path); ``alt`` says what it
    shows to a screen reader."""
    st.plotly_chart(PlainFigure(plain(fig)), key=key, config={"displaylogo": False}, alt=alt)


def plain_label(name: object, max_len: int = 40) -> str:
    """An uploaded name for a plotly label: control characters removed, cut to ``max_len``
    characters and HTML-escaped (plotly renders a few tags)."""
    return html.escape(alt_text.plain(name, max_len))


def table_view(rows, *, alt: str, label: str = TABLE_LABEL) -> None:
    """A chart's numbers one click away: an expander (keyboard-operable) holding ``rows`` (a
    DataFrame, a dict of columns or a list of row dicts) as an HTML table named ``alt``, which
    screen readers read cell by cell (``st.dataframe`` draws on a canvas). ``st.table`` reads
    markdown in its cells, so every text cell and header is shown as plain text
    (``safe_text``): class and file names come from uploads."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame = frame.rename(columns=lambda c: safe_text(c, 80))
    frame = frame.map(lambda v: safe_text(v, 80) if isinstance(v, str) else v)
    with st.expander(label):
        st.table(frame, hide_index=True, alt=alt)


def axes(n: int = 1, gap: float = 0.06, widths: Sequence[float] | None = None) -> dict:
    """Layout axes for ``n`` side-by-side image panels (row 0 on top, square cells)."""
    widths = list(widths or [1.0] * n)
    total = sum(widths) + gap * (n - 1) * sum(widths) / n
    out, left = {}, 0.0
    for i, w in enumerate(widths):
        suffix = "" if i == 0 else str(i + 1)
        span = w / total
        out[f"xaxis{suffix}"] = {**AXIS, "domain": [left, min(left + span, 1.0)]}
        out[f"yaxis{suffix}"] = {
            **AXIS,
            "autorange": "reversed",
            "scaleanchor": f"x{suffix}",
            "anchor": f"x{suffix}",
        }
        left += span + gap * sum(widths) / n / total
    return out


def figure(
    traces: list[dict], title: str, height: int = 360, shapes: Sequence[dict] = (), **layout
) -> dict:
    """A plain-dict figure: traces, a small title, tight margins; ``layout`` defaults to
    one image panel (``axes()``)."""
    return {
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": 14}},
            "height": height,
            "margin": {"l": 10, "r": 10, "t": 36, "b": 10},
            "shapes": list(shapes),
            **(layout or axes()),
        },
    }


def rect(
    top: float,
    left: float,
    bottom: float,
    right: float,
    color: str,
    width: int = 2,
    fill: str | None = None,
    ax: str = "",
) -> dict:
    """A rectangle around image cells top..bottom × left..right (inclusive) on axes ``ax``."""
    shape = {
        "type": "rect",
        "xref": f"x{ax}",
        "yref": f"y{ax}",
        "x0": float(left) - 0.5,
        "x1": float(right) + 0.5,
        "y0": float(top) - 0.5,
        "y1": float(bottom) + 0.5,
        "line": {"color": color, "width": width},
    }
    if fill:
        shape["fillcolor"] = fill
    return shape


# ---------------------------------------------------------------------------- bar chart


def bar_chart(
    labels: Sequence[object],
    values: Sequence[float] | np.ndarray,
    *,
    horizontal: bool = False,
    highlight: int | None = None,
    color: str | Sequence[str] = "#1f77b4",
    highlight_color: str = "#d62728",
    value_format: str = ".1%",
    value_range: tuple[float, float] | None = None,
    value_title: str = "",
    label_title: str = "",
    height: int = 300,
    show_values: bool = True,
    text_position: str = "outside",
    hover: str | None = None,
) -> go.Figure:
    """Bars with their values written on them, e.g. class probabilities or accuracies.

    ``labels`` name the bars (shown as categories, in order: top to bottom when
    ``horizontal``); ``color`` is one colour or one per bar; ``highlight`` is the index of a
    bar drawn in ``highlight_color``; ``value_format`` is a Python format spec for the labels
    and the value axis ticks (".1%" shares, ".3f" numbers); ``show_values=False`` leaves the
    bars unlabelled (many bars); ``text_position`` is plotly's ("outside", "auto", …);
    ``hover`` a plotly hover template (default: the label and the value).
    """
    values = np.asarray(values, dtype=np.float64)
    names = [str(c) for c in labels]
    colors = [color] * len(values) if isinstance(color, str) else [str(c) for c in color]
    if highlight is not None and 0 <= highlight < len(colors):
        colors[highlight] = highlight_color
    percent = value_format.endswith("%")
    tick = ".0%" if percent else None
    axis = "x" if horizontal else "y"
    hover_value = f"%{{{axis}:{'.2%' if percent else '.4g'}}}"
    label_ref = "%{y}" if horizontal else "%{x}"
    bar = go.Bar(
        x=values if horizontal else names,
        y=names if horizontal else values,
        orientation="h" if horizontal else "v",
        text=[format(float(v), value_format) for v in values] if show_values else None,
        textposition=text_position if show_values else None,
        marker_color=colors,
        cliponaxis=False,
        hovertemplate=hover or f"{label_ref}: {hover_value}<extra></extra>",
    )
    fig = go.Figure(bar)
    value_axis = {"title_text": value_title, "tickformat": tick}
    if value_range is not None:
        value_axis["range"] = list(value_range)
    label_axis = {"title_text": label_title, "type": "category"}
    if horizontal:
        label_axis["autorange"] = "reversed"
        fig.update_xaxes(**value_axis)
        fig.update_yaxes(**label_axis)
    else:
        fig.update_yaxes(**value_axis)
        fig.update_xaxes(**label_axis)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig
