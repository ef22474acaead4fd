"""Convolution lab: slide a kernel over a real image with padding, stride and dilation.

Layout and widgets only: every number comes from ``cnnlib.conv`` and ``cnnlib.lab``.
No TensorFlow is imported unless the learner presses the button in the trust expander.
"""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnnlib import colormaps, conv, images, kernels, lab, samples
from cnnlib.errors import CNNLabError, InvalidArgumentError
from ui.image_input import pick_images

ss = st.session_state
#: Downscale choices: longest side in pixels (0 = keep the original size).
SIDES: dict[int, str] = {
    128: "128 px",
    256: "256 px (fast)",
    512: "512 px",
    1024: "1024 px (slow)",
    0: "original size (slow for big photos)",
}
PADDING_CHOICES = ["valid", "same", "full", "explicit"]
YOUR_KERNEL = "your kernel (above)"
BANK_DEFAULT = ["vertical edges", "horizontal edges", "laplacian", "box blur"]
FIG_HEIGHT = 360
#: Longest side drawn for the input and the main output, and for the smaller maps: bigger
#: arrays are drawn block-reduced (``lab.display_map``) so the page stays fast to send.
VIEW_MAX, THUMB_MAX = 512, 256


# ------------------------------------------------------------------ state and the URL


def _widget_values(settings: lab.LabSettings) -> dict[str, object]:
    """Session-state values of the widgets that a ``LabSettings`` describes."""
    explicit = not isinstance(settings.padding, str)
    return {
        "lab_source": "Sample",
        "lab_sample": settings.image,
        "lab_gray": settings.grayscale,
        "lab_side": 256,
        "lab_preset": settings.kernel_name,
        "lab_kh": settings.kernel_array.shape[0],
        "lab_kw": settings.kernel_array.shape[1],
        "lab_padding": "explicit" if explicit else settings.padding,
        "lab_p": int(settings.padding) if explicit else 1,
        "lab_stride": settings.stride,
        "lab_dilation": settings.dilation,
        "lab_bank": BANK_DEFAULT,
        "lab_grid_n": 5,
        "lab_grid_k": 3,
        "lab_scale": "sign",
    }


def _restore_state() -> None:
    """First visit: settings from the URL (bad values noted). Later: widgets that Streamlit
    forgot while another page was open are restored from the last run's values."""
    if "lab_saved" not in ss:
        settings, notices = lab.settings_from_query(
            st.query_params.to_dict(), samples.sample_names()
        )
        ss.lab_notices = notices
        ss.lab_saved = _widget_values(settings)
        ss.lab_kernel = settings.kernel_array
        ss.lab_kernel_now = settings.kernel_array
        ss.lab_editor_v = 0
    for key, value in ss.lab_saved.items():
        if key not in ss:
            ss[key] = value
    if f"lab_editor_{ss.lab_editor_v}" not in ss:
        ss.lab_kernel = ss.lab_kernel_now


def _save_state() -> None:
    ss.lab_saved.update({key: ss[key] for key in ss.lab_saved if key in ss})


def _set_kernel(kernel: np.ndarray, name: str) -> None:
    """Replace the editor's kernel (a fresh editor shows it) and the preset label."""
    ss.lab_kernel = kernel
    ss.lab_kernel_now = kernel
    ss.lab_kh, ss.lab_kw = kernel.shape
    ss.lab_preset = name
    ss.lab_editor_v += 1


def _on_preset() -> None:
    if ss.lab_preset != lab.CUSTOM:
        _set_kernel(kernels.preset(ss.lab_preset), ss.lab_preset)


def _on_resize() -> None:
    k = kernels.resize_kernel(ss.lab_kernel_now, (ss.lab_kh, ss.lab_kw))
    _set_kernel(k, lab.matching_preset(k) or lab.CUSTOM)


def _on_randomize() -> None:
    _set_kernel(kernels.random_kernel((ss.lab_kh, ss.lab_kw)), lab.CUSTOM)


def _on_normalize() -> None:
    try:
        k = kernels.normalize(ss.lab_kernel_now)
    except CNNLabError as err:
        ss.lab_kernel_msg = str(err)
        return
    _set_kernel(k, lab.matching_preset(k) or lab.CUSTOM)


def _on_edit() -> None:
    ss.lab_preset = lab.CUSTOM


def _step(delta: int, positions: int) -> None:
    ss.lab_step = (ss.get("lab_step", 0) + delta) % positions


# ------------------------------------------------------------------------ cached results


def _image_token(picked) -> str:
    """A short cache key for the chosen image: the sample's name or the upload's file id."""
    if ss.lab_source == "Sample":
        return f"sample:{picked.label}"
    widget = ss.get("lab_upload" if ss.lab_source == "Upload" else "lab_camera")
    file_id = getattr(widget, "file_id", None)
    if file_id:
        return f"{ss.lab_source}:{file_id}"
    return "pixels:" + hashlib.sha1(picked.image.tobytes()).hexdigest()


@st.cache_data(show_spinner=False, max_entries=8)
def _prepared(token: str, side: int, gray: bool, _img) -> np.ndarray:
    """(H, W) or (H, W, 3) float32 in [0, 1], downscaled; keyed by the image token."""
    img = images.downscale(_img, side) if side else _img
    return images.to_array(img, grayscale=gray)


def _summary(a: np.ndarray, max_side: int) -> dict[str, object]:
    """What the page draws of the main map: its drawable view, shape and value range."""
    return {"view": lab.display_map(a, max_side), "shape": a.shape, "text": _range_text(a)}


def _jpeg_uri(rgb: np.ndarray, quality: int = 92) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb(a: np.ndarray, scale: str) -> dict[str, object]:
    """A smaller map drawn as a colour-mapped JPEG (a few KB instead of a float per cell;
    hover gives positions, the caption the value range)."""
    view, f = lab.display_map(a, THUMB_MAX)
    if scale == "magnitude":
        name, lo, hi, view = MAGNITUDE_SCALE, 0.0, lab.symmetric_limit(a), np.abs(view)
    else:
        m = lab.symmetric_limit(a)
        name, lo, hi = SIGN_SCALE, -m, m
    return {
        "uri": _jpeg_uri(colormaps.colorize(view, LUTS[name], lo, hi)),
        "f": f,
        "size": view.shape,
        "shape": a.shape,
        "text": _range_text(a),
        "scale": (name, lo, hi),
    }


@st.cache_data(show_spinner=False, max_entries=24)
def _convolved(
    token: str,
    side: int,
    gray: bool,
    kernel,
    padding,
    stride: int,
    dilation: int,
    scale: str,
    _x,
) -> dict[str, object]:
    """conv2d of the prepared image, then ReLU and 2×2 pooling (or why pooling cannot run)."""
    y = conv.conv2d(
        _x, np.array(kernel, dtype=np.float32), padding=padding, stride=stride, dilation=dilation
    )
    out: dict[str, object] = {
        "y": y,
        "out": _summary(y, VIEW_MAX),
        "relu": _thumb(conv.relu(y), "magnitude"),
    }
    try:
        out["max"] = _thumb(conv.max_pool2d(y, 2), scale)
        out["avg"] = _thumb(conv.avg_pool2d(y, 2), scale)
    except InvalidArgumentError as err:
        out["pool_error"] = str(err)
    return out


@st.cache_data(show_spinner=False, max_entries=8)
def _bank(
    token: str,
    side: int,
    gray: bool,
    kernel4_bytes: bytes,
    shape,
    padding,
    stride: int,
    dilation: int,
    scale: str,
    _x,
) -> tuple[tuple[int, ...], list[dict[str, object]]]:
    """The filter bank's (H′, W′, F) output shape and each map drawn small."""
    k4 = np.frombuffer(kernel4_bytes, dtype=np.float32).reshape(shape)
    maps = conv.conv2d(_x, k4, padding=padding, stride=stride, dilation=dilation)
    return maps.shape, [_thumb(maps[:, :, i], scale) for i in range(maps.shape[2])]


@st.cache_data(show_spinner=False, max_entries=8)
def _input_jpeg(token: str, side: int, gray: bool, _x) -> tuple[str, float, float]:
    """The prepared image as a JPEG data URI (at most VIEW_MAX px) and its pixel scale.

    A JPEG is a tenth of the bytes of the raw pixels, so reruns send less; exact pixel
    values are shown in *Under the hood*.
    """
    img = images.to_image(_x)
    shown = images.downscale(img, VIEW_MAX)
    uri = _jpeg_uri(np.asarray(shown.convert("RGB")))
    return uri, img.width / shown.width, img.height / shown.height


# ------------------------------------------------------------------------------- figures
# Figures are plain dicts: building them through plotly's object model (update_layout,
# add_shape, make_subplots) cost most of a rerun; ``_plot`` wraps them without re-validation.

AXIS = {"showgrid": False, "zeroline": False, "constrain": "domain"}
SIGN_SCALE, MAGNITUDE_SCALE, GRAY_SCALE = "RdBu_r", "Viridis", "gray"


def _lookup_table(name: str) -> np.ndarray:
    import plotly.colors as pc

    stops = [
        (pos, pc.hex_to_rgb(c) if c.startswith("#") else pc.unlabel_rgb(c))
        for pos, c in pc.get_colorscale(name)
    ]
    return colormaps.lookup_table(stops)


def _colorscale(name: str) -> list:
    import plotly.colors as pc

    return [[float(pos), color] for pos, color in pc.get_colorscale(name)]


@st.cache_resource(show_spinner=False)
def _colour_tables() -> tuple[dict[str, list], dict[str, np.ndarray]]:
    """Colour scales spelled out (plotly.js alone does not know "RdBu_r" or "gray"), and the
    same scales as 256-colour tables for the JPEG thumbnails (built once per process)."""
    scales = {name: _colorscale(name) for name in (SIGN_SCALE, MAGNITUDE_SCALE, GRAY_SCALE)}
    return scales, {name: _lookup_table(name) for name in (SIGN_SCALE, MAGNITUDE_SCALE)}


SCALES, LUTS = _colour_tables()


def _axes(n: int = 1, gap: float = 0.06, widths: list[float] | None = None) -> dict:
    """Layout axes for ``n`` side-by-side image panels (row 0 on top, square cells)."""
    widths = widths or [1.0] * n
    total = sum(widths) + gap * (n - 1) * sum(widths) / n
    axes, left = {}, 0.0
    for i, w in enumerate(widths):
        suffix = "" if i == 0 else str(i + 1)
        span = w / total
        axes[f"xaxis{suffix}"] = {**AXIS, "domain": [left, min(left + span, 1.0)]}
        axes[f"yaxis{suffix}"] = {
            **AXIS,
            "autorange": "reversed",
            "scaleanchor": f"x{suffix}",
            "anchor": f"x{suffix}",
        }
        left += span + gap * sum(widths) / n / total
    return axes


def _figure(traces: list[dict], title: str, height: int = FIG_HEIGHT, shapes=(), **layout) -> dict:
    return {
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": 14}},
            "height": height,
            "margin": {"l": 10, "r": 10, "t": 36, "b": 10},
            "shapes": list(shapes),
            **(layout or _axes()),
        },
    }


def _rect(top, left, bottom, right, color: str, width: int = 2, fill: str | None = None, ax=""):
    """A rectangle around cells top..bottom × left..right (inclusive)."""
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


def _image_trace(x: np.ndarray, x0: float = 0, y0: float = 0, f: int = 1) -> dict:
    """An image in [0, 1] (drawn with f×f cells per value): grey heatmap or RGB image."""
    if f > 1:
        x0, y0 = x0 + (f - 1) / 2, y0 + (f - 1) / 2
    if x.ndim == 2:
        return {
            "type": "heatmap",
            "z": x,
            "x0": x0,
            "y0": y0,
            "dx": f,
            "dy": f,
            "colorscale": SCALES[GRAY_SCALE],
            "zmin": 0.0,
            "zmax": 1.0,
            "showscale": False,
            "hovertemplate": "row %{y}, col %{x}<br>value %{z:.3f}<extra></extra>",
        }
    return {
        "type": "image",
        "z": np.round(x * 255.0).astype(np.uint8),
        "x0": x0,
        "y0": y0,
        "dx": f,
        "dy": f,
        "hovertemplate": "row %{y}, col %{x}<br>RGB %{z}<extra></extra>",
    }


def _map_trace(view: tuple[np.ndarray, int], scale: str, name: str = "value") -> dict:
    """Feature map as a heatmap: diverging around 0 (sign) or sequential (magnitude).

    ``view`` is ``lab.display_map``'s (array, f): f > 1 draws each value over f×f cells.
    """
    y, f = view
    where = "row %{y}, col %{x}" if f == 1 else f"rows/cols ≈ %{{y:.0f}}, %{{x:.0f}} (±{f // 2})"
    trace = {
        "type": "heatmap",
        "x0": (f - 1) / 2,
        "y0": (f - 1) / 2,
        "dx": f,
        "dy": f,
        "hovertemplate": f"{where}<br>{name} %{{z:.4f}}<extra></extra>",
        "colorbar": {"thickness": 12},
    }
    if scale == "magnitude":
        return {**trace, "z": np.abs(y), "colorscale": SCALES[MAGNITUDE_SCALE], "zmin": 0.0}
    m = lab.symmetric_limit(y)
    return {**trace, "z": y, "colorscale": SCALES[SIGN_SCALE], "zmin": -m, "zmax": m}


def _thumb_figure(t: dict, title: str, height: int) -> dict:
    """A JPEG thumbnail from ``_thumb`` with its colour bar (an invisible marker trace)."""
    f = t["f"]
    name, lo, hi = t["scale"]
    image = {
        "type": "image",
        "source": t["uri"],
        "x0": (f - 1) / 2,
        "y0": (f - 1) / 2,
        "dx": f,
        "dy": f,
        "hovertemplate": "row %{y:.0f}, col %{x:.0f}<extra></extra>",
    }
    bar = {
        "type": "scatter",
        "x": [None],
        "y": [None],
        "mode": "markers",
        "showlegend": False,
        "hoverinfo": "skip",
        "marker": {
            "color": [lo, hi],
            "colorscale": SCALES[name],
            "cmin": lo,
            "cmax": hi,
            "showscale": True,
            "colorbar": {"thickness": 12},
        },
    }
    return _figure([image, bar], title, height=height)


def _drawn_note(f: int) -> str:
    return "" if f == 1 else f" Drawn with each {f}×{f} block as its strongest value."


def _numbers_fig(expl: lab.CellExplanation, ch: int, label: str) -> dict:
    """Patch, kernel and products of one channel as three annotated heatmaps."""
    panels = [
        (expl.patch[:, :, ch], f"{label}patch", ".3f"),
        (expl.kernel[:, :, ch], f"{label}kernel", ".3g"),
        (expl.products[:, :, ch], f"{label}patch ⊙ kernel", ".3f"),
    ]
    traces, shapes, notes = [], [], []
    for i, (values, title, fmt) in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        m = lab.symmetric_limit(values)
        traces.append(
            {
                "type": "heatmap",
                "z": values,
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "zmin": -m,
                "zmax": m,
                "colorscale": SCALES[SIGN_SCALE],
                "showscale": False,
                "texttemplate": f"%{{z:{fmt}}}",
                "textfont": {"size": 11},
                "hovertemplate": f"tap (%{{y}}, %{{x}}): %{{z:{fmt}}}<extra></extra>",
            }
        )
        if i != 1:
            for r, c in zip(*np.nonzero(~expl.inside), strict=True):
                shapes.append(_rect(r, c, r, c, "#999999", 1, "rgba(120,120,120,0.35)", suffix))
        notes.append(
            {
                "text": title,
                "xref": f"x{suffix} domain",
                "yref": f"y{suffix} domain",
                "x": 0.5,
                "y": 1.0,
                "yanchor": "bottom",
                "showarrow": False,
            }
        )
    layout = _axes(3)
    for key in layout:
        layout[key]["dtick"] = 1
    layout["annotations"] = notes
    height = 70 + 34 * expl.patch.shape[0]
    fig = _figure(traces, "", height=height, shapes=shapes, **layout)
    fig["layout"]["margin"]["t"] = 26
    return fig


GRID_IN_SCALE = [
    [0.0, "#d9d9d9"],
    [0.25, "#d9d9d9"],
    [0.25, "#ffffff"],
    [0.5, "#ffffff"],
    [0.5, "#fdd0a2"],
    [0.75, "#fdd0a2"],
    [0.75, "#fd8d3c"],
    [1.0, "#fd8d3c"],
]
GRID_OUT_SCALE = [
    [0.0, "#f4f4f4"],
    [0.33, "#f4f4f4"],
    [0.33, "#c6dbef"],
    [0.66, "#c6dbef"],
    [0.66, "#fd8d3c"],
    [1.0, "#fd8d3c"],
]


def _grid_figure(g: lab.SmallGrid, position: int) -> dict:
    """Padded input (grey padding, orange taps labelled w_ij) beside the output grid."""
    kinds = np.zeros((g.padded, g.padded))
    text = np.full((g.padded, g.padded), "0", dtype=object)
    for r in range(g.padded):
        for c in range(g.padded):
            if not g.is_padding(r, c):
                kinds[r, c] = 1
                text[r, c] = f"x{r - g.before},{c - g.before}"
    for t, (r, c) in enumerate(g.feeds(position)):
        kinds[r, c] = 2 if g.is_padding(r, c) else 3
        text[r, c] = "w{},{}".format(*divmod(t, g.k))
    out_r, out_c = g.output_cell(position)
    done = np.zeros((g.out, g.out))
    done.flat[:position] = 1
    done[out_r, out_c] = 2
    otext = [[f"y{r},{c}" for c in range(g.out)] for r in range(g.out)]
    common = {"type": "heatmap", "showscale": False, "hoverinfo": "skip", "xgap": 1, "ygap": 1}
    traces = [
        {
            **common,
            "z": kinds,
            "zmin": -0.5,
            "zmax": 3.5,
            "colorscale": GRID_IN_SCALE,
            "text": text.tolist(),
            "texttemplate": "%{text}",
            "textfont": {"size": 10},
        },
        {
            **common,
            "z": done,
            "zmin": -0.5,
            "zmax": 2.5,
            "colorscale": GRID_OUT_SCALE,
            "text": otext,
            "texttemplate": "%{text}",
            "textfont": {"size": 11},
            "xaxis": "x2",
            "yaxis": "y2",
        },
    ]
    layout = _axes(2, widths=[g.padded, max(g.out, 2)])
    for key in layout:
        layout[key]["showticklabels"] = False
    layout["plot_bgcolor"] = "#9e9e9e"  # shows through the cell gaps as grid lines
    layout["annotations"] = [
        {
            "text": text_,
            "xref": f"x{suffix} domain",
            "yref": f"y{suffix} domain",
            "x": 0.5,
            "y": 1.03,
            "yanchor": "bottom",
            "showarrow": False,
        }
        for suffix, text_ in (
            ("", f"padded input {g.padded}×{g.padded} (grey = padding zeros)"),
            ("2", f"output {g.out}×{g.out}"),
        )
    ]
    return _figure(traces, "", height=380, **layout)


def _shape(a: np.ndarray) -> str:
    return "×".join(str(d) for d in a.shape)


def _range_text(y: np.ndarray) -> str:
    return f"{_shape(y)}, values from {float(y.min()):.4g} to {float(y.max()):.4g}"


class _PlainFigure(go.Figure):
    """A figure given as a plain dict, handed to ``st.plotly_chart`` as it is.

    ``st.plotly_chart`` only calls ``to_dict()`` on a figure; plotly's own version deep-copies
    and re-validates every array, which cost most of a rerun here. The dicts above follow
    plotly's schema and get Streamlit's theme template, as ``go.Figure`` would give them.
    """

    def __init__(self, fig: dict) -> None:  # no super().__init__: nothing else is used
        self._plain = fig

    def to_dict(self) -> dict:
        return self._plain


@st.cache_resource(show_spinner=False)
def _streamlit_template() -> dict:
    import plotly.io as pio

    return pio.templates[pio.templates.default].to_plotly_json()


TEMPLATE = _streamlit_template()


#: NumPy dtype → plotly.js typed-array name (the ones this page sends).
TYPED = {"float32": "f4", "float64": "f8", "uint8": "u1", "int32": "i4"}


def _typed(a: np.ndarray) -> dict:
    """A NumPy array as a plotly.js typed array (base64), as plotly itself sends arrays."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.int64:
        a = a.astype(np.int32)
    spec = {"dtype": TYPED[str(a.dtype)], "bdata": base64.b64encode(a).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = ", ".join(str(d) for d in a.shape)
    return spec


def _plot(fig: dict, key: str | None = None) -> None:
    fig["layout"].setdefault("template", TEMPLATE)
    for trace in fig["data"]:
        for name, value in trace.items():
            if isinstance(value, np.ndarray):
                trace[name] = _typed(value) if str(value.dtype) in TYPED else value.tolist()
    st.plotly_chart(_PlainFigure(fig), key=key, config={"displaylogo": False})


# ----------------------------------------------------------------------------- the page

_restore_state()

st.title("Convolution lab")
st.markdown(
    "Slide a **kernel** (a small matrix of weights) over an image: each output value is the "
    "sum of the kernel's weights times the pixels under it. Change padding, stride and "
    "dilation and watch the output size follow the formula; open *Under the hood* to check "
    "one output value by hand."
)
for notice in ss.lab_notices:
    st.warning(notice, icon=":material/link:")

# 1 · image and kernel ------------------------------------------------------------------
st.header("1 · Image and kernel", divider="gray")
col_img, col_kernel = st.columns([1, 1], gap="large")
with col_img:
    picked = pick_images("lab")
    c1, c2 = st.columns(2)
    gray = c1.toggle(
        "Grayscale",
        key="lab_gray",
        help="Off: RGB, and one filter spans all three channels (Conv2D semantics).",
    )
    side = c2.selectbox(
        "Downscale the longest side to",
        list(SIDES),
        format_func=SIDES.get,
        key="lab_side",
        help="Big photos are shrunk so that every change redraws quickly.",
    )
with col_kernel:
    preset_names = [*kernels.PRESETS, lab.CUSTOM]
    st.selectbox("Kernel", preset_names, key="lab_preset", on_change=_on_preset)
    st.caption(
        kernels.PRESETS[ss.lab_preset][1]
        if ss.lab_preset in kernels.PRESETS
        else "Your own weights: edit the cells below."
    )
    sizes = list(range(1, kernels.MAX_KERNEL_SIZE + 1))
    c1, c2 = st.columns(2)
    c1.selectbox("Kernel rows", sizes, key="lab_kh", on_change=_on_resize)
    c2.selectbox("Kernel columns", sizes, key="lab_kw", on_change=_on_resize)
    base = np.asarray(ss.lab_kernel, dtype=np.float32)
    table = pd.DataFrame(base.astype(np.float64), columns=[str(j) for j in range(base.shape[1])])
    edited = st.data_editor(
        table,
        key=f"lab_editor_{ss.lab_editor_v}",
        on_change=_on_edit,
        hide_index=True,
        num_rows="fixed",
        column_config={
            c: st.column_config.NumberColumn(c, format="%.4g", width="small") for c in table.columns
        },
    )
    c1, c2 = st.columns(2)
    c1.button(
        "Randomize",
        icon=":material/casino:",
        on_click=_on_randomize,
        width="stretch",
        key="lab_randomize",
    )
    c2.button(
        "Normalize (sum to 1)",
        icon=":material/balance:",
        on_click=_on_normalize,
        width="stretch",
        key="lab_normalize",
    )
    if msg := ss.pop("lab_kernel_msg", None):
        st.error(msg, icon=":material/warning:")
    try:
        kernel = lab.kernel_from_table(edited.to_numpy())
    except CNNLabError as err:
        st.error(f"{err} Showing the last valid kernel.", icon=":material/warning:")
        kernel = np.asarray(ss.lab_kernel_now, dtype=np.float32)
    ss.lab_kernel_now = kernel

# 2 · padding, stride, dilation ----------------------------------------------------------
st.header("2 · Padding, stride, dilation", divider="gray")
c1, c2, c3 = st.columns([3, 2, 2])
with c1:
    mode = st.radio(
        "Padding",
        PADDING_CHOICES,
        horizontal=True,
        key="lab_padding",
        help="valid: none · same: output ⌈i/s⌉ (TensorFlow's rule) · full: every overlap · "
        "explicit: p zero rows/columns on each side",
    )
    if mode == "explicit":
        p = st.number_input(
            "p (zeros on each side)", 0, lab.MAX_EXPLICIT_PADDING, step=1, key="lab_p"
        )
        padding: lab.Padding = int(p)
    else:
        padding = mode
stride = c2.radio("Stride", lab.STRIDES, horizontal=True, key="lab_stride")
dilation = c3.radio("Dilation", lab.DILATIONS, horizontal=True, key="lab_dilation")

# The link: write the current settings to the URL (before anything can stop the page).
if ss.lab_source == "Sample" and "lab_sample" in ss:
    ss.lab_last_sample = ss.lab_sample
current = lab.LabSettings(
    image=ss.get("lab_last_sample", lab.DEFAULTS.image),
    grayscale=bool(gray),
    kernel_name=ss.lab_preset
    if ss.lab_preset in kernels.PRESETS and lab.matching_preset(kernel) == ss.lab_preset
    else lab.CUSTOM,
    kernel=lab.kernel_tuple(kernel),
    padding=padding,
    stride=int(stride),
    dilation=int(dilation),
)
query = lab.settings_to_query(current)
if st.query_params.to_dict() != query:
    st.query_params.from_dict(query)
_save_state()

if not picked:
    st.stop()
image = picked[0]
token = _image_token(image)
x = _prepared(token, side, bool(gray), image.image)
channels = 1 if x.ndim == 2 else x.shape[2]
try:
    size_h, size_w = lab.output_sizes(
        x.shape[:2], kernel.shape, padding=padding, stride=stride, dilation=dilation
    )
except CNNLabError as err:
    st.error(str(err), icon=":material/warning:")
    st.stop()

in_shape = f"{x.shape[0]}×{x.shape[1]}" + ("" if x.ndim == 2 else f"×{channels}")
st.markdown(
    f"Input **{in_shape}** ({image.label}), kernel **{kernel.shape[0]}×{kernel.shape[1]}**, "
    f"padding **{lab.padding_to_text(padding)}**, stride **{stride}**, dilation "
    f"**{dilation}** → output **{size_h.out}×{size_w.out}**"
)
for size in (size_h, size_w):
    st.markdown(f"**{size.axis.capitalize()}** (i = {size.n}, k = {size.k}):")
    st.latex(size.formula_latex())
    if rule := size.same_rule_latex():
        st.latex(rule)
if padding == "same":
    st.caption(
        "“same” keeps ⌈i/s⌉ outputs. TensorFlow splits the padding it needs with the odd extra "
        "row/column at the bottom/right, so the kernel's centre lands on the same pixels as "
        "in Keras."
    )
dropped = [t for t in (size_h.dropped_text(), size_w.dropped_text()) if t]
for text in dropped:
    st.info(text, icon=":material/content_cut:")

# 3 · output -----------------------------------------------------------------------------
st.header("3 · Output feature map", divider="gray")
kernel_key = lab.kernel_tuple(kernel)
scale = st.radio(
    "Colour scale",
    ["sign", "magnitude"],
    format_func={
        "sign": "sign (red +, blue −, white 0)",
        "magnitude": "magnitude |value|",
    }.get,
    horizontal=True,
    key="lab_scale",
)
res = _convolved(token, side, bool(gray), kernel_key, padding, int(stride), int(dilation), scale, x)
y = res["y"]
out_h, out_w = y.shape
for key, top in (("lab_row", out_h - 1), ("lab_col", out_w - 1)):
    # Assigned on every run: when the output size changes, the slider is a new widget and
    # keeps the position only if it is set here (clamped to the new size).
    ss[key] = min(int(ss.get(key, top // 2)), top)
row, col = int(ss.lab_row), int(ss.lab_col)
expl = lab.explain_cell(
    x, kernel, padding=padding, stride=stride, dilation=dilation, row=row, col=col
)

c1, c2 = st.columns(2)
with c1:
    top, left, bottom, right = expl.box
    box = _rect(top, left, bottom, right, "#ff7f0e", 3)
    uri, sx, sy = _input_jpeg(token, side, bool(gray), x)
    trace = {
        "type": "image",
        "source": uri,
        "x0": (sx - 1) / 2,
        "y0": (sy - 1) / 2,
        "dx": sx,
        "dy": sy,
        "hovertemplate": "row %{y:.0f}, col %{x:.0f}<extra></extra>",
    }
    _plot(_figure([trace], f"Input {in_shape}", shapes=[box]))
    drawn = "" if sx == 1 and sy == 1 else f" Drawn at about 1/{max(sx, sy):.1f} size."
    st.caption(
        f"Orange box: the pixels that feed output ({row}, {col}); pick it in *Under the hood*."
        + drawn
    )
with c2:
    mark = _rect(row, col, row, col, "#ff7f0e", 2)
    main = res["out"]
    _plot(_figure([_map_trace(main["view"], scale)], f"Output {out_h}×{out_w}", shapes=[mark]))
    st.caption(f"Output {main['text']}.{_drawn_note(main['view'][1])}")

c1, c2, c3 = st.columns(3)
with c1:
    relu = res["relu"]
    _plot(_thumb_figure(relu, f"ReLU: {out_h}×{out_w}", 300))
    st.caption(f"max(0, x): negatives become 0. {relu['text']}.{_drawn_note(relu['f'])}")
if "pool_error" in res:
    c2.info(f"Pooling skipped: {res['pool_error']}")
else:
    for column, key, what in ((c2, "max", "max"), (c3, "avg", "average")):
        pooled = res[key]
        with column:
            title = f"2×2 {what} pool: {out_h}×{out_w} → {pooled['shape'][0]}×{pooled['shape'][1]}"
            _plot(_thumb_figure(pooled, title, 300))
            st.caption(f"Each 2×2 block → its {what}. {pooled['text']}.{_drawn_note(pooled['f'])}")

# 4 · under the hood ---------------------------------------------------------------------
st.header("4 · Under the hood: one output value by hand", divider="gray")
c1, c2 = st.columns(2)
for column, key, label, top in (
    (c1, "lab_row", "Output row", out_h - 1),
    (c2, "lab_col", "Output column", out_w - 1),
):
    if top > 0:
        column.slider(label, 0, top, key=key)
    else:
        column.caption(f"{label}: 0 (the output has only one)")
rows_text = ", ".join(str(int(r)) for r in expl.rows)
cols_text = ", ".join(str(int(c)) for c in expl.cols)
st.markdown(
    f"Output ({row}, {col}) reads input rows **{rows_text}** and columns **{cols_text}** "
    f"(row = {row}·{stride} − {size_h.before} + {dilation}·i, col = {col}·{stride} − "
    f"{size_w.before} + {dilation}·j). Shaded taps fall on padding zeros."
)
c_zoom, c_nums = st.columns([1, 2])
with c_zoom:
    margin = max(2, dilation)
    r0, r1 = expl.rows[0] - margin, expl.rows[-1] + margin
    q0, q1 = expl.cols[0] - margin, expl.cols[-1] + margin
    h, w = x.shape[:2]
    crop = np.zeros((r1 - r0 + 1, q1 - q0 + 1, *x.shape[2:]), dtype=np.float32)
    rr0, rr1, qq0, qq1 = max(r0, 0), min(r1, h - 1), max(q0, 0), min(q1, w - 1)
    if rr0 <= rr1 and qq0 <= qq1:
        crop[rr0 - r0 : rr1 - r0 + 1, qq0 - q0 : qq1 - q0 + 1] = x[rr0 : rr1 + 1, qq0 : qq1 + 1]
    taps = [_rect(i, j, i, j, "#ff7f0e", 2) for i in expl.rows.tolist() for j in expl.cols.tolist()]
    edge = _rect(0, 0, h - 1, w - 1, "#2ca02c", 2)
    layout = _axes()
    layout["xaxis"]["range"] = [float(q0) - 0.5, float(q1) + 0.5]
    layout["yaxis"]["range"] = [float(r1) + 0.5, float(r0) - 0.5]
    layout["yaxis"].pop("autorange")
    title = "Zoom: the taps (orange), image edge (green)"
    trace = _image_trace(crop, int(q0), int(r0))
    _plot(_figure([trace], title, 320, shapes=[edge, *taps], **layout))
with c_nums:
    names = ["gray"] if channels == 1 else ["R", "G", "B"][:channels]
    for ch, name in enumerate(names):
        _plot(_numbers_fig(expl, ch, "" if channels == 1 else f"{name}: "))
value = float(y[row, col])
sums = " + ".join(f"{s:.4f}" for s in expl.channel_sums)
chan_note = "" if channels == 1 else f" (the R, G and B sums: {sums})"
agree = abs(expl.total - value) <= 1e-4 * max(1.0, abs(value))
st.markdown(
    f"Sum of the {expl.products.size} products{chan_note} = **{expl.total:.5f}**; the "
    f"output map holds **{value:.5f}** at ({row}, {col}) "
    + (
        ":green[:material/check_circle: equal] (float32 rounding aside)."
        if agree
        else ":red[:material/cancel: they differ.]"
    )
)


# 5 · small-grid view --------------------------------------------------------------------
st.header("5 · Small grid: which inputs feed which output", divider="gray")
c1, c2, c3 = st.columns([1, 1, 2])
c1.selectbox("Grid size n×n", list(range(3, 10)), key="lab_grid_n")
c2.selectbox("Kernel k×k", list(range(1, 6)), key="lab_grid_k")
playing = c3.toggle("▶ Play (advance every 0.8 s)", key="lab_play")
try:
    grid = lab.small_grid(
        ss.lab_grid_n, ss.lab_grid_k, padding=padding, stride=stride, dilation=dilation
    )
except CNNLabError as err:
    st.info(str(err), icon=":material/info:")
    grid = None


@st.fragment(run_every=0.8 if playing else None)
def _small_grid_view(g: lab.SmallGrid, playing: bool) -> None:
    n = g.positions
    step = ss.get("lab_step", 0)
    if playing:
        step += 1
    ss.lab_step = step % n
    b1, b2, b3 = st.columns([1, 1, 6])
    b1.button("◀ Step", on_click=_step, args=(-1, n), key="lab_prev", width="stretch")
    b2.button("Step ▶", on_click=_step, args=(1, n), key="lab_next", width="stretch")
    b3.slider("Output cell (row by row)", 0, max(n - 1, 1), key="lab_step", disabled=n == 1)
    position = min(ss.lab_step, n - 1)
    out_r, out_c = g.output_cell(position)
    st.markdown(
        f"{g.n}×{g.n} input, {g.k}×{g.k} kernel, padding {lab.padding_to_text(g.padding)} "
        f"({g.before} before, {g.after} after), stride {g.stride}, dilation {g.dilation} → "
        f"**{g.out}×{g.out} output**. Step {position + 1} of {n}: output ({out_r}, {out_c})."
    )
    _plot(_grid_figure(g, position))
    st.latex(g.equation(position))


if grid is not None:
    _small_grid_view(grid, playing)

# 6 · filter bank ------------------------------------------------------------------------
st.header("6 · Filter bank: one Conv2D layer with F filters", divider="gray")
bank_names = st.multiselect(
    "Kernels in the layer (each one is a filter)",
    [*kernels.PRESETS, YOUR_KERNEL],
    key="lab_bank",
    max_selections=8,
)
if not bank_names:
    st.info("Choose at least one kernel to build a layer.", icon=":material/info:")
else:
    chosen = [kernel if n == YOUR_KERNEL else kernels.preset(n) for n in bank_names]
    k4 = lab.filter_bank(chosen, channels)
    kh4, kw4, _, f = k4.shape
    try:
        bank_shape, summaries = _bank(
            token,
            side,
            bool(gray),
            k4.tobytes(),
            k4.shape,
            padding,
            int(stride),
            int(dilation),
            scale,
            x,
        )
    except CNNLabError as err:
        st.error(str(err), icon=":material/warning:")
    else:
        weights, biases = lab.conv_layer_params(kh4, kw4, channels, f)
        st.markdown(
            f"{f} filters of {kh4}×{kw4}×{channels} (kernel × input channels) turn the input "
            f"**({x.shape[0]}, {x.shape[1]}, {channels})** into **({bank_shape[0]}, "
            f"{bank_shape[1]}, {bank_shape[2]})**: one map per filter. The weight tensor is "
            f"({kh4}, {kw4}, {channels}, {f}) = {weights:,} weights (+ {biases} biases in Keras)."
        )
        if any(k.shape != (kh4, kw4) for k in chosen):
            st.caption(
                f"One layer has one kernel size: smaller kernels are zero-padded to {kh4}×{kw4}."
            )
        code, note = lab.keras_layers(
            f, (kh4, kw4), x.shape[:2], padding=padding, stride=stride, dilation=dilation
        )
        st.markdown("The same layer in Keras (weights aside):")
        st.code(code, language="python")
        if note:
            st.info(note, icon=":material/info:")
        per_row = 4
        for start in range(0, f, per_row):
            cols = st.columns(per_row)
            for i in range(start, min(start + per_row, f)):
                with cols[i - start]:
                    thumb = summaries[i]
                    _plot(_thumb_figure(thumb, f"filter {i}: {bank_names[i]}", 260))
                    st.caption(thumb["text"] + _drawn_note(thumb["f"]))

# 7 · trust ------------------------------------------------------------------------------
with st.expander("Trust, but verify: the same convolution in TensorFlow"):
    st.markdown(
        "Everything above is computed with NumPy in `cnnlib.conv.conv2d`. Press the button to "
        "load TensorFlow (a few seconds the first time) and run `tf.nn.conv2d` on the same "
        "input and kernel."
    )
    check_key = (token, side, bool(gray), kernel_key, padding, int(stride), int(dilation))
    if st.button("Compare with tf.nn.conv2d", key="lab_tf"):
        try:
            with st.spinner("Loading TensorFlow and running tf.nn.conv2d…"):
                result = lab.tensorflow_check(
                    x, kernel, padding=padding, stride=stride, dilation=dilation
                )
            ss.lab_tf_result = (check_key, result)
        except ImportError:
            st.error("TensorFlow is not installed here: `pip install -r requirements.txt`.")
        except CNNLabError as err:
            st.error(str(err), icon=":material/warning:")
    if "lab_tf_result" in ss and ss.lab_tf_result[0] == check_key:
        result = ss.lab_tf_result[1]
        c1, c2, c3 = st.columns(3)
        c1.metric("Our shape", "×".join(map(str, result.ours_shape)))
        c2.metric("TensorFlow's shape", "×".join(map(str, result.tf_shape)))
        c3.metric("max |difference|", f"{result.max_abs_diff:.2e}")
        st.caption(
            f"TensorFlow {result.tf_version}, {result.tf_seconds * 1000:.0f} ms. Largest |value| "
            f"{result.max_abs_value:.4g}: differences near 1e-6 of it are float32 rounding."
        )

st.divider()
st.caption(
    ":material/link: Share this setup: the page address holds the image, grayscale, kernel, "
    "padding, stride and dilation — copy it from the address bar. Current link parameters:"
)
st.code("?" + "&".join(f"{k}={v}" for k, v in query.items()), language=None)
