"""Views of the Network-overview page: the whole network as columns of maps joined by edges
(one plotly figure, one composed image per column), one node's maps, one Conv2D cell's
arithmetic, the architecture graph. They draw what ``cnnlib.inspect.overview`` and
``overview_canvas`` computed and compute nothing themselves.

Every image and chart gets alt text with the numbers it shows (``alt=``, Streamlit's own
argument). ``legend`` says what the colours mean in words. Activations are drawn in viridis
(dark purple = low, yellow = high), the arithmetic's signed numbers in blue–white–red around
0: both stay readable with every common colour-vision deficiency, and the chosen map or cell
is outlined in black on white, which needs no colour vision at all.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import streamlit as st

from cnnlib.core.text import safe_text, shape_text
from cnnlib.inspect import features as F
from cnnlib.inspect import overview as O
from cnnlib.inspect.overview_canvas import Canvas, ColumnBox
from ui import alt_text, figures
from ui import features_view as fv

#: The outline of the chosen map or cell.
MARK = "#111111"
EDGE = "rgba(110, 110, 110, 0.35)"
#: Room (px) above the columns for their names, and below for their shapes and ranges.
TOP_PX, BOTTOM_PX = 52, 76
#: Most maps in a node's grid.
GRID_MAPS = 64
#: Cells above which the clickable map uses WebGL, and up to which its values are written.
GL_CELLS, WRITTEN_CELLS = 2500, 14 * 14


def legend(lo: float, hi: float) -> str:
    """What the activation colours mean, e.g. "Colours: dark purple 0 → yellow 2.1."."""
    return f"Colours: dark purple {lo:.3g} → yellow {hi:.3g}."


def _label(name: str, limit: int = 18) -> str:
    """A node name for plotly: cut to ``limit`` characters and HTML-escaped (plotly renders
    a few tags; names come from uploaded models)."""
    return html.escape(name if len(name) <= limit else name[: limit - 1] + "…")


def _what(node: O.GraphNode) -> str:
    return f"{len(node.layers)} layers" if node.kind == "Block" else node.kind


def _image(png: bytes, *, alt: str, caption: str | None = None) -> None:
    """A composed PNG at its own width (up to the column's): the one place images are drawn,
    so the page's alt text goes through one call."""
    st.image(png, caption=caption, alt=alt, output_format="PNG")


# ----------------------------------------------------------------------------- overview


def _column_image(col: ColumnBox, png: bytes) -> dict:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return {
        "source": uri,
        "xref": "x",
        "yref": "y",
        "x": col.left,
        "y": col.top,
        "sizex": col.width,
        "sizey": col.height,
        "sizing": "stretch",
        "layer": "below",
        "xanchor": "left",
        "yanchor": "top",
    }


def _labels(i: int, node: O.OverviewNode, col: ColumnBox, cv: Canvas, rng, per_layer) -> list:
    """The node's name above its column, its shape (and range) below; every other column a
    row further out, so that long names do not overlap."""
    below = shape_text(node.node.output_shape)
    if per_layer:
        below += f"<br>{rng[0]:.3g} … {rng[1]:.3g}"
    top, bottom = cv.bands[col.band]
    common = {"x": col.center_x, "xref": "x", "yref": "y", "showarrow": False}
    above = top - (cv.arc_room if col.band == 0 else 0)
    name = {"y": above, "yanchor": "bottom", "yshift": 4 + 18 * (i % 2)}
    shape = {"y": bottom, "yanchor": "top", "yshift": -4 - 32 * (i % 2)}
    return [
        {**common, **name, "text": f"<b>{_label(node.name)}</b>", "font": {"size": 11}},
        {**common, **shape, "text": below, "font": {"size": 10}},
    ]


def _targets(ov: O.Overview, cv: Canvas) -> dict:
    """One transparent marker per drawn map (a strip: one for the node): what a click hits.
    ``customdata``: [node index, channel], channel -1 for a vector strip."""
    xs, ys, custom, hover = [], [], [], []
    for i, (node, col) in enumerate(zip(ov.nodes, cv.columns, strict=True)):
        g = node.node
        for y, ch in zip(col.centers, col.channels or (-1,), strict=True):
            xs.append(col.center_x)
            ys.append(y)
            custom.append([i, ch])
            unit = f"channel {ch} of {g.output_shape[-1]}" if ch >= 0 else "its units"
            hover.append(f"{html.escape(g.name)} · {_what(g)}<br>{unit} · click for details")
    return {
        "type": "scatter",
        "mode": "markers",
        "x": xs,
        "y": ys,
        "customdata": custom,
        "text": hover,
        "hovertemplate": "%{text}<extra></extra>",
        "showlegend": False,
        "marker": {"size": max(8, cv.tile_px // 2), "color": "rgba(0,0,0,0)"},
        "selected": {"marker": {"opacity": 1}},
        "unselected": {"marker": {"opacity": 1}},
    }


def _edges(cv: Canvas) -> dict:
    ex: list[float | None] = []
    ey: list[float | None] = []
    for line in cv.edges:
        ex += [p[0] for p in line] + [None]
        ey += [p[1] for p in line] + [None]
    mode = {"mode": "lines", "hoverinfo": "skip", "showlegend": False}
    return {"type": "scatter", **mode, "x": ex, "y": ey, "line": {"color": EDGE, "width": 1}}


def _colour_bar(cv: Canvas, lo: float, hi: float, per_layer: bool) -> dict:
    """An invisible point that carries the colour bar (the legend of the columns' colours)."""
    bar = {"thickness": 12, "len": 0.8, "title": {"text": "value", "side": "right"}}
    if per_layer:
        lo, hi = 0.0, 1.0
        bar.update(
            tickvals=[0, 1],
            ticktext=["layer's lowest", "layer's highest"],
            title={"text": "each layer's own range", "side": "right"},
        )
    col = cv.columns[0]
    marker = {"color": [lo], "cmin": lo, "cmax": hi, "opacity": 0, "showscale": True}
    marker.update(colorscale=figures.colorscale(figures.MAGNITUDE), colorbar=bar)
    point = {"x": [col.center_x], "y": [col.centers[0]], "hoverinfo": "skip"}
    return {"type": "scatter", "mode": "markers", **point, "showlegend": False, "marker": marker}


def _mark(ov: O.Overview, cv: Canvas, selected: tuple[str, int] | None) -> list[dict]:
    """A black outline around the chosen map (or the whole column of a vector node)."""
    names = [n.name for n in ov.nodes]
    if selected is None or selected[0] not in names:
        return []
    col = cv.columns[names.index(selected[0])]
    y0, y1 = col.top, col.top + col.height
    if selected[1] in col.channels:
        y = col.centers[col.channels.index(selected[1])]
        y0, y1 = y - cv.tile_px / 2 - 2, y + cv.tile_px / 2 + 2
    box = {"x0": col.left - 1, "x1": col.right + 1, "y0": y0, "y1": y1}
    return [{"type": "rect", "xref": "x", "yref": "y", **box, "line": {"color": MARK, "width": 3}}]


def overview_figure(
    ov: O.Overview,
    cv: Canvas,
    pngs: Sequence[bytes],
    ranges: Sequence[tuple[float, float]],
    *,
    per_layer: bool,
    selected: tuple[str, int] | None,
) -> dict:
    """The overview as a plain-dict plotly figure (``ui.figures``' fast path): each column's
    PNG at its place on the canvas, the edges, a click target per map, names above, shapes
    (and, ``per_layer``, each node's range) below, a colour bar, the chosen map outlined.
    Node ``i`` is coloured over ``ranges[i]``."""
    images, annotations = [], []
    for i, (node, col, png, rng) in enumerate(zip(ov.nodes, cv.columns, pngs, ranges, strict=True)):
        images.append(_column_image(col, png))
        annotations += _labels(i, node, col, cv, rng, per_layer)
    lo, hi = ov.range
    traces = [_edges(cv), _targets(ov, cv), _colour_bar(cv, lo, hi, per_layer)]
    span_x, span_y = cv.width + cv.tile_px, cv.height + cv.arc_room + 8
    plot_px = int(np.clip(span_y * 900 / span_x, 220, 900))
    axis = {"visible": False, "fixedrange": True, "constrain": "domain"}
    layout = {
        "images": images,
        "annotations": annotations,
        "shapes": _mark(ov, cv, selected),
        "height": plot_px + TOP_PX + BOTTOM_PX,
        "margin": {"l": 10, "r": 10, "t": TOP_PX, "b": BOTTOM_PX},
        "xaxis": {**axis, "range": [-cv.tile_px / 2, cv.width + cv.tile_px / 2]},
        "yaxis": {**axis, "range": [cv.height + 4, -cv.arc_room - 4], "scaleanchor": "x"},
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "hoverdistance": 80,
        "dragmode": False,
    }
    return {"data": traces, "layout": layout}


def overview_alt(
    title: str, ov: O.Overview, ranges: Sequence[tuple[float, float]], per_layer: bool
) -> str:
    """The figure in words: every column, left to right, with its shape and value range."""
    parts = []
    for node in ov.nodes:
        g = node.node
        maps = (
            f"{len(node.maps)} of its {g.output_shape[-1]} maps"
            if node.maps is not None
            else ("a strip of its units")
        )
        parts.append(
            f"{g.name} ({g.kind}, {shape_text(g.output_shape)}, {maps}, values from "
            f"{node.lo:.3g} to {node.hi:.3g})"
        )
    scale = "each layer its own range" if per_layer else "one range for the whole network"
    lo, hi = ov.range
    return (
        f"Network overview of {alt_text.unquote(title)}: {len(ov.nodes)} columns from left to "
        f"right, joined by {len(ov.edges)} edges: " + "; ".join(parts) + f". Colours over "
        f"{scale}: dark purple = lowest, yellow = highest (the network's values run from "
        f"{lo:.3g} to {hi:.3g})."
    )


def show_overview(fig: dict, alt: str, *, key: str, on_click: Callable[[], None]) -> None:
    """Draw the overview; a click on a map calls ``on_click`` before the rerun (the chart's
    state under ``key`` holds the clicked point with its customdata)."""
    st.plotly_chart(
        figures.PlainFigure(figures.plain(fig)),
        key=key,
        on_select=on_click,
        selection_mode="points",
        config={"displayModeBar": False, "scrollZoom": False, "displaylogo": False},
        alt=alt,
    )


# ----------------------------------------------------------------------------- one node


def show_node_maps(node: O.GraphNode, act: np.ndarray, stats: F.ChannelStats) -> None:
    """A spatial node's maps, up to ``GRID_MAPS`` (most active first), in one grid on the
    node's own range; what a block holds."""
    h, w, c = act.shape
    if node.kind == "Block":
        members = ", ".join(safe_text(n, 40) for n in node.layers)
        st.caption(
            f"This block is {len(node.layers)} layers ({members}); its maps are the output of "
            f"its last layer, {safe_text(node.layers[-1], 40)}."
        )
    order = F.channel_order(stats, by="mean")[:GRID_MAPS]
    grid = F.activation_grid(act, order, stats=stats, scale="shared", columns=16, tile_px=40)
    lo, hi = stats.layer_range
    shown = f"the {len(order)} most active" if len(order) < c else f"all {c}"
    caption = (
        f"{safe_text(node.name, 40)}: {shown} maps of {c}, each {h}×{w}, labelled with their "
        f"channel number, on one range for the layer. {legend(lo, hi)}"
    )
    alt = (
        f"Grid of {len(order)} feature maps of {node.name}, each {h}×{w}, channels "
        f"{', '.join(str(int(k)) for k in order[:8])}{'…' if len(order) > 8 else ''}; "
        f"{legend(lo, hi)}"
    )
    _image(F.to_png(grid), caption=caption, alt=alt)


def map_figure(
    values: np.ndarray, lo: float, hi: float, *, cell: tuple[int, int] | None = None
) -> dict:
    """One (H, W) map as a heatmap with a transparent click target on every cell (plotly
    cannot click a heatmap's cells), values written in small maps, ``cell`` outlined."""
    h, w = values.shape
    rows, cols = np.mgrid[0:h, 0:w]
    heat = {
        "type": "heatmap",
        "z": np.asarray(values, np.float32),
        "zmin": lo,
        "zmax": hi,
        "colorscale": figures.colorscale(figures.MAGNITUDE),
        "hoverinfo": "skip",
        "colorbar": {"thickness": 12, "title": {"text": "value", "side": "right"}},
    }
    if h * w <= WRITTEN_CELLS:
        heat["texttemplate"] = "%{z:.3g}"
    targets = {
        "type": "scattergl" if h * w > GL_CELLS else "scatter",
        "mode": "markers",
        "x": cols.ravel().astype(np.int32),
        "y": rows.ravel().astype(np.int32),
        "customdata": np.asarray(values, np.float32).ravel(),
        "hovertemplate": "row %{y}, column %{x}: %{customdata:.4g}<extra></extra>",
        "marker": {"size": 6, "color": "rgba(0,0,0,0)"},
        "showlegend": False,
    }
    shapes = [] if cell is None else [figures.rect(cell[0], cell[1], *cell, MARK, width=3)]
    layout = figures.axes(1)
    for axis in ("xaxis", "yaxis"):
        layout[axis]["fixedrange"] = True
    layout.update(hovermode="closest", dragmode=False, plot_bgcolor="white")
    return figures.figure([heat, targets], "", height=420, shapes=shapes, **layout)


def show_map(fig: dict, alt: str, *, key: str, on_click: Callable[[], None] | None = None) -> None:
    """One map (``map_figure``); clickable when ``on_click`` is given (the clicked cell's
    row and column are the point's y and x in the chart's state under ``key``)."""
    config = {"displayModeBar": False, "scrollZoom": False, "displaylogo": False}
    chart = figures.PlainFigure(figures.plain(fig))
    if on_click is None:
        st.plotly_chart(chart, key=key, config=config, alt=alt)
    else:
        kwargs = {"on_select": on_click, "selection_mode": "points"}
        st.plotly_chart(chart, key=key, config=config, alt=alt, **kwargs)


def map_alt(what: str, values: np.ndarray, lo: float, hi: float) -> str:
    v = np.asarray(values)
    return (
        f"{what}: {shape_text(v.shape)} map, values from {float(v.min()):.4g} to "
        f"{float(v.max()):.4g}. {legend(lo, hi)}"
    )


def show_map_facts(
    info: F.LayerInfo | None,
    channel: int,
    stats: F.MapStats,
    field: F.ReceptiveField | None,
    input_hw: tuple[int, int],
) -> None:
    """Beside an enlarged map: which channel, its statistics, what one cell sees."""
    name = "the input" if info is None else f"{safe_text(info.name, 40)} ({info.kind})"
    st.markdown(f"**Channel {channel}** of {name}")
    relu = info is not None and info.relu
    fv.show_stats(stats, zeros="exact zeros (switched off by the ReLU)" if relu else "exact zeros")
    if field is not None and info is not None and info.spatial:
        h, w = input_hw
        st.caption(
            f"Each cell of this {info.output_shape[0]}×{info.output_shape[1]} map sees "
            f"{field.describe((h, w))} of the {h}×{w} input."
        )


# ----------------------------------------------------------------------------- one Conv2D cell


def _number(v: float) -> str:
    return f"{v:.6g}"


def _span(what: str, taps: Sequence[int]) -> str:
    """ "rows 4…6", "row 4" (one tap), "rows 0, 2, 4" (a dilated kernel's taps)."""
    if len(taps) == 1:
        return f"{what} {taps[0]}"
    if all(b - a == 1 for a, b in pairwise(taps)):
        return f"{what}s {taps[0]}…{taps[-1]}"
    return f"{what}s " + ", ".join(str(t) for t in taps)


def arithmetic_figure(cell: O.ConvCell, k: int) -> dict:
    """Input channel ``k`` of the cell's window: patch, kernel and patch ⊙ kernel side by
    side, numbers written in every square, blue < 0 < red (white = 0, so is the padding)."""
    patch, kernel = cell.patch[:, :, k].astype(np.float64), cell.kernel[:, :, k].astype(np.float64)
    panels = [("input patch", patch), ("kernel", kernel), ("patch ⊙ kernel", patch * kernel)]
    kh, kw = patch.shape
    traces = []
    for i, (_, z) in enumerate(panels):
        top = float(np.abs(z).max()) or 1.0
        suffix = "" if i == 0 else str(i + 1)
        traces.append(
            {
                "type": "heatmap",
                "z": z.astype(np.float32),
                "zmin": -top,
                "zmax": top,
                "colorscale": figures.colorscale(figures.SIGN),
                "showscale": False,
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "hovertemplate": "row %{y}, column %{x}: %{z:.6g}<extra></extra>",
                "texttemplate": "%{z:.3g}" if kh * kw <= 81 else None,
                "textfont": {"size": 11},
            }
        )
    titles = " | ".join(title for title, _ in panels)
    height = min(300, 140 + 30 * kh)
    fig = figures.figure(traces, titles, height=height, **figures.axes(3, gap=0.08))
    for i, (title, _) in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        fig["layout"][f"xaxis{suffix}"].update(title={"text": title}, fixedrange=True)
        fig["layout"][f"yaxis{suffix}"]["fixedrange"] = True
    fig["layout"]["title"] = {"text": ""}
    return fig


def show_cell_sum(cell: O.ConvCell, shown: float, *, float16: bool) -> None:
    """One output cell's sum: where its window lands, Σ over the input channels, the bias,
    the activation, against the model's own output at the cell (``cell.model_value``) and
    the value the map shows (``shown``; ``float16``: the map stores the network's values as
    float16, so it is rounded to about 4 digits)."""
    kh, kw, c = cell.patch.shape
    layer = safe_text(cell.layer, 40)
    st.markdown(
        f"**Row {cell.row}, column {cell.col} of filter {cell.filter} of {layer}**: the "
        f"{kh}×{kw} kernel lands on input {_span('row', cell.rows)} and "
        f"{_span('column', cell.cols)} (a row or column outside the input is padding and "
        "reads 0). It is multiplied square by square with "
        + (f"each of the {c} input channels" if c > 1 else "the one input channel")
        + ", and everything is added up:"
    )
    channels = f"the {c} input channel{'s' if c > 1 else ''}"
    rows = [
        (f"Σ patch ⊙ kernel over {channels}", cell.per_channel.sum()),
        ("\\+ bias", cell.bias),
        ("= before the activation", cell.total),
        (f"{cell.activation}(…) = the cell's value, by hand", cell.value),
        ("the model's own output at this cell", cell.model_value),
    ]
    st.markdown(
        "| step | value |\n|---|---:|\n"
        + "\n".join(f"| {what} | {_number(float(v))} |" for what, v in rows)
    )
    diff = abs(cell.value - cell.model_value)
    if diff <= 1e-4 * max(1.0, abs(cell.model_value)):
        st.success(f"By hand and by the model agree: difference {diff:.2g}.", icon="✅")
    else:
        st.warning(f"By hand and by the model differ by {diff:.3g}.", icon="⚠️")
    if float16:
        st.caption(
            f"The map stores this big network's activations as float16 (about 4 significant "
            f"digits), so it shows {_number(shown)} at this cell."
        )
    else:
        st.caption(f"The map shows {_number(shown)} at this cell.")


def show_cell_channel(cell: O.ConvCell, k: int) -> None:
    """Input channel ``k`` of the cell's window worked out square by square, then every
    input channel's sum (the largest first)."""
    kh, kw, _ = cell.patch.shape
    channel = cell.first_channel + k
    alt = (
        f"Input channel {channel} of the window of row {cell.row}, column {cell.col}: the "
        f"{kh}×{kw} input patch, the kernel and their product, each number written in its "
        f"square; the products add up to {_number(cell.per_channel[k])}. Colours: blue "
        "negative, white 0, red positive."
    )
    show_map(arithmetic_figure(cell, k), alt, key="ov_cell_arithmetic")
    st.markdown(
        f"Input channel {channel}: the {kh * kw} products add up to "
        f"**{_number(cell.per_channel[k])}**. Blue < 0 < red; white is 0, as is the padding."
    )
    _sum_table(cell)


def _sum_table(cell: O.ConvCell, top: int = 8) -> None:
    """Each input channel's Σ patch ⊙ kernel, the largest (by size) first, the rest summed."""
    c = len(cell.per_channel)
    if c == 1:
        return
    order = np.argsort(-np.abs(cell.per_channel), kind="stable")
    lines = [
        f"| {cell.first_channel + int(i)} | {_number(float(cell.per_channel[i]))} |"
        for i in order[:top]
    ]
    if c > top:
        rest = float(cell.per_channel[order[top:]].sum())
        lines.append(f"| the other {c - top} channels together | {_number(rest)} |")
    st.markdown(
        "| input channel | Σ patch ⊙ kernel |\n|---|---:|\n" + "\n".join(lines),
        help="Largest contributions first; the signs show which channels push the cell up "
        "and which pull it down.",
    )


# ----------------------------------------------------------------------------- architecture


def show_architecture(dot: str, nodes: Sequence[O.GraphNode], title: str) -> None:
    """The model's graph (``architecture_dot``) as boxes and arrows, and what it says."""
    chain = " → ".join(f"{n.name} ({_what(n)}, {shape_text(n.output_shape)})" for n in nodes)
    edges = sum(len(n.inputs) for n in nodes)
    name = alt_text.unquote(title)
    alt = f"Architecture graph of {name}: {len(nodes)} boxes and {edges} arrows: {chain}."
    st.graphviz_chart(dot, alt=alt)
    st.caption(
        "One box per layer (or block of layers): its name, its type (or how many layers the "
        "block holds) and its output shape; an arrow from each layer to the layers that read "
        "its output. Preprocessing layers (rescaling, augmentation) are left out: the arrow "
        "goes past them."
    )
