"""The Convolution lab's views: cached results of the chosen settings, and every figure.

Every map (input, output, ReLU, pools, filter bank, the zoom) is a colour-mapped JPEG shown
with ``st.image`` (``picture``: enlarged with crisp cells, orange/green boxes drawn in), big
ones block-reduced first (``lab.display_map``): a browser draws an image far faster than a
plotly heatmap. The grids the learner reads numbers from (the cell by hand, the small grid)
are SVG drawings (``ui.cell_grids``), for the same reason. Numbers come from
``cnnlib.conv.ops`` / ``cnnlib.conv.lab``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from cnnlib.conv import kernels, lab
from cnnlib.conv import ops as conv
from cnnlib.conv.ops import ConvGeometry
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.core.text import safe_text
from cnnlib.data import images
from ui import cell_grids, figures
from ui.cell_grids import GridPanel
from ui.code_text import show_code_lines
from ui.errors import friendly_errors
from ui.figures import MAGNITUDE, SIGN, legend, shape_text

#: Longest side drawn for the input and the main output, and for the smaller maps.
VIEW_MAX, THUMB_MAX = 512, 256
FIG_HEIGHT = 360
ORANGE, GREEN = "#ff7f0e", "#2ca02c"


def range_text(y: np.ndarray) -> str:
    """ "H×W, values from a to b" of a map."""
    return f"{shape_text(y.shape)}, values from {float(y.min()):.4g} to {float(y.max()):.4g}"


def drawn_note(f: int) -> str:
    return "" if f == 1 else f" Drawn with each {f}×{f} block as its strongest value."


# ------------------------------------------------------------------- URL and cache keys


def write_kernel_link(name: str, kernel: np.ndarray) -> None:
    """A custom kernel's matrix in the URL: the one link parameter no widget is bound to
    (removed when the kernel is a preset)."""
    key = lab.QUERY_KEYS["k"]
    text = lab.kernel_to_text(kernel) if name == lab.CUSTOM else None
    if st.query_params.get(key) != text:
        if text is None:
            del st.query_params[key]
        else:
            st.query_params[key] = text


# ------------------------------------------------------------------------ cached results


@dataclass(frozen=True)
class MapPicture:
    """A map drawn as a colour-mapped JPEG, and what its caption says: the map's ``shape``,
    its ``text`` ("H×W, values from a to b"), ``f`` (each f×f block drawn as its strongest
    value; 1 = full size) and its colour ``scale`` (name, low, high)."""

    jpeg: bytes
    shape: tuple[int, ...]
    text: str
    f: int
    scale: tuple[str, float, float]


@dataclass(frozen=True, eq=False)
class Convolved:
    """The lab's convolution of the prepared image and what is drawn of it: the output ``y``
    (H', W') float32, its coloured picture ``rgb`` (h, w, 3) uint8 drawn with each f×f block
    as one cell, its ``text`` and colour ``scale``, the input's ``x_text`` ("H×W, values from
    a to b"); the ReLU and the two 2×2 poolings
    (``max_pool``, ``avg_pool``), or ``pool_error`` when the output is too small to pool."""

    y: np.ndarray
    rgb: np.ndarray
    f: int
    text: str
    x_text: str
    scale: tuple[str, float, float]
    relu: MapPicture
    max_pool: MapPicture | None = None
    avg_pool: MapPicture | None = None
    pool_error: str | None = None


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=8)
def prepared(token: str, side: int, gray: bool, _img) -> np.ndarray:
    """(H, W) or (H, W, 3) float32 in [0, 1], downscaled; keyed by the image token."""
    img = images.downscale(_img, side) if side else _img
    return images.to_array(img, grayscale=gray)


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 → JPEG bytes (``st.image`` sends bytes as they are)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def _colored(view: np.ndarray, scale: str, limit: float) -> tuple[np.ndarray, tuple]:
    """A map coloured by the lab's scale: ((H, W, 3) uint8, (scale name, lo, hi))."""
    if scale == "magnitude":
        return figures.colorize(np.abs(view), MAGNITUDE, 0.0, limit), (MAGNITUDE, 0.0, limit)
    return figures.colorize(view, SIGN, -limit, limit), (SIGN, -limit, limit)


def picture(rgb: np.ndarray, cell: tuple[float, float] = (1, 1), boxes=(), min_side=320) -> bytes:
    """(h, w, 3) uint8 drawn for ``st.image``: enlarged (nearest) to at least ``min_side`` px
    so small maps show crisp cells, with boxes around cells (top, left, bottom, right[,
    colour]) of the full-size map (orange unless given); ``cell`` = (rows, columns) of the
    map per drawn pixel."""
    img = Image.fromarray(rgb)
    u = max(1, -(-min_side // max(img.size)))
    if u > 1:
        img = img.resize((img.width * u, img.height * u), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    sy, sx = cell
    for top, left, bottom, right, *color in boxes:
        x0, y0 = int(left / sx * u), int(top / sy * u)
        x1, y1 = int((right + 1) / sx * u) - 1, int((bottom + 1) / sy * u) - 1
        box = (x0 - 1, y0 - 1, max(x1, x0) + 1, max(y1, y0) + 1)
        draw.rectangle(box, outline=(color or [ORANGE])[0], width=2)
    return _jpeg(np.asarray(img))


def _thumb(a: np.ndarray, scale: str) -> MapPicture:
    """A map drawn small as a colour-mapped JPEG, with what its caption needs."""
    view, f = lab.display_map(a, THUMB_MAX)
    rgb, spec = _colored(view, scale, lab.symmetric_limit(a))
    return MapPicture(picture(rgb, min_side=200), a.shape, range_text(a), f, spec)


def map_alt(what: str, t: MapPicture | Convolved) -> str:
    """Alt text of a drawn map (``convolved``/``bank`` picture): what it is, its shape and
    value range (``range_text``), how it is drawn and what its colours mean."""
    return f"{what}: {t.text}.{drawn_note(t.f)} {legend(*t.scale)}"


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=24)
def convolved(
    token: str, side: int, gray: bool, kernel, geometry: ConvGeometry, scale: str, _x
) -> Convolved:
    """conv2d of the prepared image, then ReLU and 2×2 pooling (or why pooling cannot run).

    ``kernel`` is ``lab.kernel_tuple``'s hashable form; ``_x`` is keyed by the rest.
    """
    y = conv.conv2d(_x, np.array(kernel, dtype=np.float32), **geometry.kwargs)
    view, f = lab.display_map(y, VIEW_MAX)
    rgb, spec = _colored(view, scale, lab.symmetric_limit(y))
    relu = _thumb(conv.relu(y), "magnitude")
    made = {"y": y, "rgb": rgb, "f": f, "text": range_text(y), "x_text": range_text(_x)}
    try:
        pools = _thumb(conv.max_pool2d(y, 2), scale), _thumb(conv.avg_pool2d(y, 2), scale)
    except InvalidArgumentError as err:
        return Convolved(**made, scale=spec, relu=relu, pool_error=str(err))
    return Convolved(**made, scale=spec, relu=relu, max_pool=pools[0], avg_pool=pools[1])


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=8)
def bank(
    token: str,
    side: int,
    gray: bool,
    kernel4_bytes: bytes,
    shape: tuple[int, ...],
    geometry: ConvGeometry,
    scale: str,
    _x,
) -> tuple[tuple[int, ...], list[MapPicture]]:
    """The filter bank's (H′, W′, F) output shape and each map drawn small."""
    k4 = np.frombuffer(kernel4_bytes, dtype=np.float32).reshape(shape)
    maps = conv.conv2d(_x, k4, **geometry.kwargs)
    return maps.shape, [_thumb(maps[:, :, i], scale) for i in range(maps.shape[2])]


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=8)
def input_view(token: str, side: int, gray: bool, _x) -> tuple[np.ndarray, float, float]:
    """The prepared image drawn at most VIEW_MAX px: ((h, w, 3) uint8, rows and columns of
    the image per drawn pixel). Exact pixel values are shown in *Under the hood*."""
    img = images.to_image(_x)
    shown = images.downscale(img, VIEW_MAX)
    return np.asarray(shown.convert("RGB")), img.height / shown.height, img.width / shown.width


# -------------------------------------------------------------------------------- views


def show_thumb(t: MapPicture, title: str, caption: str, what: str) -> None:
    """A small map (``convolved``/``bank`` picture) as an image, with its caption; ``what``
    it is starts its alt text."""
    st.markdown(f"**{title}**")
    st.image(t.jpeg, width="stretch", alt=map_alt(what, t))
    st.caption(f"{caption}{t.text}.{drawn_note(t.f)} {legend(*t.scale)}")


# -------------------------------------------------------------------------------- views


def show_input(view: tuple[np.ndarray, float, float], title: str, box: tuple, alt: str) -> str:
    """The prepared input (``input_view``) with an orange box around cells top, left,
    bottom, right; returns a note on how much smaller it is drawn ("" at full size)."""
    rgb, sy, sx = view
    drawn = "" if sx == 1 and sy == 1 else f" Drawn at about 1/{max(sx, sy):.1f} size."
    st.markdown(f"**{title}**")
    st.image(picture(rgb, (sy, sx), [box]), width="stretch", alt=f"{alt}{drawn}")
    return drawn


def show_output(res: Convolved, row: int, col: int) -> None:
    """The main output map with output cell (row, col) outlined, and its caption."""
    out_h, out_w = res.y.shape
    f = res.f
    alt = (
        f"{map_alt('Output feature map', res)} An orange box marks output cell ({row}, {col}), "
        "worked out by hand under the hood."
    )
    st.markdown(f"**Output {out_h}×{out_w}**")
    st.image(picture(res.rgb, (f, f), [(row, col, row, col)]), width="stretch", alt=alt)
    st.caption(f"Output {res.text}.{drawn_note(f)} {legend(*res.scale)}")


def show_zoom(x: np.ndarray, expl: lab.CellExplanation, dilation: int) -> None:
    """The input around the taps (orange), padding zeros included; image edge in green."""
    z = lab.zoom_window(x, expl, margin=max(2, dilation))
    h, w = x.shape[:2]
    t, left = z.top, z.left
    taps = [
        (i - t, j - left, i - t, j - left) for i in expl.rows.tolist() for j in expl.cols.tolist()
    ]
    edge = (-t, -left, h - 1 - t, w - 1 - left, GREEN)
    rgb = np.asarray(images.to_image(z.crop).convert("RGB"))  # (rows, cols, 3) uint8
    beyond = t < 0 or left < 0 or z.bottom >= h or z.right >= w
    alt = (
        f"Zoom on input rows {t}–{z.bottom}, columns {left}–{z.right}, enlarged: orange boxes "
        f"mark the {len(taps)} pixels that output ({expl.row}, {expl.col}) reads"
        + (
            "; a green line marks the image's edge, padding zeros (black) beyond it."
            if beyond
            else "."
        )
    )
    st.markdown("**Zoom: the taps (orange), image edge (green)**")
    st.image(picture(rgb, boxes=[edge, *taps]), width="stretch", alt=alt)
    st.caption(
        f"Input rows {t}–{z.bottom}, columns {left}–{z.right}; outside the green edge "
        "are padding zeros (black)."
    )


def numbers_panels(expl: lab.CellExplanation, ch: int, label: str) -> list[GridPanel]:
    """Patch, kernel and products of one channel: three grids of numbers coloured by sign
    (taps on padding zeros shaded grey)."""
    panels = []
    for values, title, fmt, shade in (
        (expl.patch[:, :, ch], f"{label}patch", ".3f", ~expl.inside),
        (expl.kernel[:, :, ch], f"{label}kernel", ".3g", None),
        (expl.products[:, :, ch], f"{label}patch ⊙ kernel", ".3f", ~expl.inside),
    ):
        m = lab.symmetric_limit(values)
        fill = cell_grids.hex_colors(figures.colorize(values, SIGN, -m, m))
        text = np.array([[format(float(v), fmt) for v in row] for row in values])
        panels.append(GridPanel(fill, title, text, shade, font_px=10))
    return panels


def tap_rows(expl: lab.CellExplanation) -> dict[str, list]:
    """One row per tap (and channel) of an output cell: where it reads, the pixel, the
    weight and their product ("padding" where the tap falls outside the image)."""
    kh, kw, channels = expl.patch.shape
    names = ["gray"] if channels == 1 else ["R", "G", "B"][:channels]
    rows: dict[str, list] = {"tap": [], "channel": [], "input (row, column)": []}
    rows.update({"pixel": [], "weight": [], "pixel × weight": []})
    for i in range(kh):
        for j in range(kw):
            for c, name in enumerate(names):
                where = f"({int(expl.rows[i])}, {int(expl.cols[j])})"
                rows["tap"].append(f"({i}, {j})")
                rows["channel"].append(name)
                rows["input (row, column)"].append(where if expl.inside[i, j] else "padding")
                rows["pixel"].append(f"{expl.patch[i, j, c]:.4f}")
                rows["weight"].append(f"{expl.kernel[i, j, c]:.4g}")
                rows["pixel × weight"].append(f"{expl.products[i, j, c]:.4f}")
    if channels == 1:
        del rows["channel"]
    return rows


def show_numbers(expl: lab.CellExplanation, channels: int) -> None:
    """Patch, kernel and products, one row of three panels per input channel."""
    names = ["gray"] if channels == 1 else ["R", "G", "B"][:channels]
    kh, kw = expl.patch.shape[:2]
    for ch, name in enumerate(names):
        alt = (
            f"Three {kh}×{kw} grids of numbers for output ({expl.row}, {expl.col}), channel "
            f"{name}: the input patch, the kernel, and their products cell by cell; red cells "
            "are positive, blue negative, grey shading marks taps on padding zeros."
        )
        panels = numbers_panels(expl, ch, "" if channels == 1 else f"{name}: ")
        cell_grids.show_grids(panels, alt=alt, cell=44)
    figures.table_view(tap_rows(expl), alt=f"Every tap of output ({expl.row}, {expl.col})")


#: Small-grid colours by ``lab.SmallGrid.cells`` kind (padding, input, fed padding, fed
#: input) and by progress (to do, done, now).
GRID_IN_COLORS = np.array(["#d9d9d9", "#ffffff", "#fdd0a2", "#fd8d3c"])
GRID_OUT_COLORS = np.array(["#f4f4f4", "#c6dbef", "#fd8d3c"])


def grid_panels(g: lab.SmallGrid, position: int) -> list[GridPanel]:
    """Padded input (grey padding, orange taps labelled w_ij) beside the output grid."""
    kinds, labels = g.cells(position)
    otext = np.array([[f"y{r},{c}" for c in range(g.out)] for r in range(g.out)])
    return [
        GridPanel(
            GRID_IN_COLORS[np.asarray(kinds, int)],
            f"padded input {g.padded}×{g.padded} (grey = padding zeros)",
            np.asarray(labels),
            font_px=10,
        ),
        GridPanel(
            GRID_OUT_COLORS[np.asarray(g.progress(position), int)], f"output {g.out}×{g.out}", otext
        ),
    ]


# ------------------------------------------------------------------------ page sections


def show_sizes(x_shape: tuple, label: str, k_shape: tuple, g: ConvGeometry, sizes: tuple) -> None:
    """The settings in one line, then each axis' output-size formula with its numbers.

    Drawn inside one container, so the elements after it keep their places in the page when
    a setting adds or removes a line here ("same"'s rule, the dropped cells): the browser
    then updates them instead of mounting them again (a padding change took ~300 ms)."""
    size_h, size_w = sizes
    with st.container():
        st.markdown(
            f"Input **{shape_text(x_shape)}** ({safe_text(label)}), kernel "
            f"**{shape_text(k_shape)}**, "
            f"padding **{lab.padding_to_text(g.padding)}**, stride **{g.stride}**, dilation "
            f"**{g.dilation}** → output **{size_h.out}×{size_w.out}**"
        )
        for size in sizes:
            st.markdown(f"**{size.axis.capitalize()}** (i = {size.n}, k = {size.k}):")
            st.latex(size.formula_latex())
            if rule := size.same_rule_latex():
                st.latex(rule)
        if g.padding == "same":
            st.caption(
                "“same” keeps ⌈i/s⌉ outputs. TensorFlow splits the padding it needs with the "
                "odd extra row/column at the bottom/right, so the kernel's centre lands on the "
                "same pixels as in Keras."
            )
        for text in filter(None, (size_h.dropped_text(), size_w.dropped_text())):
            st.info(text, icon=":material/content_cut:")


def show_maps(res: Convolved, shown: tuple, x_shape: tuple, expl) -> None:
    """Input (with the explained cell's box), output, ReLU and the two poolings."""
    out_h, out_w = res.y.shape
    row, col = expl.row, expl.col
    top, left, bottom, right = expl.box
    colour = "grayscale" if len(x_shape) == 2 else "RGB"
    alt = (
        f"Input image, {colour}: {res.x_text} (0 black, 1 white). An orange box marks rows "
        f"{top}–{bottom}, columns {left}–{right}: the pixels that feed output ({row}, {col})."
    )
    c1, c2 = st.columns(2)
    with c1:
        drawn = show_input(shown, f"Input {shape_text(x_shape)}", expl.box, alt)
        st.caption(
            f"Orange box: the pixels that feed output ({row}, {col}); pick it in *Under the "
            f"hood*.{drawn}"
        )
    with c2:
        show_output(res, row, col)
    c1, c2, c3 = st.columns(3)
    with c1:
        relu = "ReLU of the output, negatives set to 0"
        show_thumb(res.relu, f"ReLU: {out_h}×{out_w}", "max(0, x): negatives become 0. ", relu)
    if res.pool_error is not None:
        c2.info(f"Pooling skipped: {res.pool_error}")
        return
    for column, pooled, word in ((c2, res.max_pool, "max"), (c3, res.avg_pool, "average")):
        title = f"2×2 {word} pool: {out_h}×{out_w} → {shape_text(pooled.shape)}"
        what = f"2×2 {word} pool of the output, each 2×2 block replaced by its {word}"
        with column:
            show_thumb(pooled, title, f"Each 2×2 block → its {word}. ", what)


def show_cell(x: np.ndarray, expl, value: float, g: ConvGeometry, sizes: tuple) -> None:
    """Which inputs one output cell reads, zoomed; patch ⊙ kernel; their sum against ``value``."""
    row, col, s, d = expl.row, expl.col, g.stride, g.dilation
    rows_text = ", ".join(str(int(r)) for r in expl.rows)
    cols_text = ", ".join(str(int(c)) for c in expl.cols)
    st.markdown(
        f"Output ({row}, {col}) reads input rows **{rows_text}** and columns **{cols_text}** "
        f"(row = {row}·{s} − {sizes[0].before} + {d}·i, col = {col}·{s} − {sizes[1].before} "
        f"+ {d}·j). Shaded taps fall on padding zeros."
    )
    c_zoom, c_nums = st.columns([1, 2])
    with c_zoom:
        show_zoom(x, expl, d)
    channels = expl.patch.shape[2]
    with c_nums:
        show_numbers(expl, channels)
    sums = " + ".join(f"{v:.4f}" for v in expl.channel_sums)
    chan_note = "" if channels == 1 else f" (the R, G and B sums: {sums})"
    verdict = (
        ":green[:material/check_circle: equal] (float32 rounding aside)."
        if lab.agrees(expl.total, value)
        else ":red[:material/cancel: they differ.]"
    )
    st.markdown(
        f"Sum of the {expl.products.size} products{chan_note} = **{expl.total:.5f}**; the "
        f"output map holds **{value:.5f}** at ({row}, {col}) {verdict}"
    )


def show_grid(grid: lab.SmallGrid, position: int) -> None:
    """The small grid at one step: what it is, the two grids and the step's equation."""
    out_r, out_c = grid.output_cell(position)
    st.markdown(
        f"{grid.n}×{grid.n} input, {grid.k}×{grid.k} kernel, padding "
        f"{lab.padding_to_text(grid.padding)} ({grid.before} before, {grid.after} after), "
        f"stride {grid.stride}, dilation {grid.dilation} → **{grid.out}×{grid.out} output**. "
        f"Step {position + 1} of {grid.positions}: output ({out_r}, {out_c})."
    )
    alt = (
        f"Left: the padded {grid.padded}×{grid.padded} input, padding cells grey, the "
        f"{grid.k * grid.k} cells output ({out_r}, {out_c}) reads in orange and labelled with "
        f"their kernel weight w. Right: the {grid.out}×{grid.out} output, cells done in blue, "
        f"output ({out_r}, {out_c}) in orange, the rest not yet computed."
    )
    cell_grids.show_grids(grid_panels(grid, position), alt=alt)
    st.latex(grid.equation(position))


def show_bank(
    names: list[str],
    k4: np.ndarray,
    shape: tuple,
    thumbs: list[MapPicture],
    x_shape: tuple,
    g: ConvGeometry,
) -> None:
    """The filter bank: shapes and weight count, Keras code, then one map per filter."""
    kh, kw, channels, f = k4.shape
    weights, biases = lab.conv_layer_params(kh, kw, channels, f)
    h, w = x_shape[:2]
    st.markdown(
        f"{f} filters of {kh}×{kw}×{channels} (kernel × input channels) turn the input "
        f"**({h}, {w}, {channels})** into **({shape[0]}, {shape[1]}, {shape[2]})**: one map "
        f"per filter. The weight tensor is ({kh}, {kw}, {channels}, {f}) = {weights:,} "
        f"weights (+ {biases} biases in Keras)."
    )
    code, note = lab.keras_layers(f, (kh, kw), (h, w), g)
    st.markdown("The same layer in Keras (weights aside):")
    show_code_lines(code.splitlines())
    if note:
        st.info(note, icon=":material/info:")
    for start in range(0, f, 4):
        for column, i in zip(st.columns(4), range(start, min(start + 4, f)), strict=False):
            what = kernels.PRESETS.get(names[i], (None, "your own kernel"))[1].rstrip(".")
            what = f"Feature map {i + 1} of {f}, filter {i} ({names[i]}: {what})"
            with column:
                show_thumb(thumbs[i], f"filter {i}: {names[i]}", "", what)


def show_tensorflow_check(result: lab.TensorFlowCheck) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Our shape", shape_text(result.ours_shape))
    c2.metric("TensorFlow's shape", shape_text(result.tf_shape))
    c3.metric("max |difference|", f"{result.max_abs_diff:.2e}")
    st.caption(
        f"TensorFlow {result.tf_version}, {result.tf_seconds * 1000:.0f} ms. Largest |value| "
        f"{result.max_abs_value:.4g}: differences near 1e-6 of it are float32 rounding."
    )


def tensorflow_section(key: tuple, x: np.ndarray, kernel: np.ndarray, g: ConvGeometry) -> None:
    """The same convolution by ``tf.nn.conv2d`` on request (TensorFlow loads only then)."""
    st.markdown(
        "Everything above is computed with NumPy in `cnnlib.conv.ops.conv2d`. Press the button to "
        "load TensorFlow (a few seconds the first time) and run `tf.nn.conv2d` on the same "
        "input and kernel."
    )
    check_key = (*key, lab.kernel_tuple(kernel), g)
    if st.button("Compare with tf.nn.conv2d", key="lab_tf"):
        with friendly_errors(), st.spinner("Loading TensorFlow and running tf.nn.conv2d…"):
            st.session_state.lab_tf_result = (check_key, lab.tensorflow_check(x, kernel, g))
    if st.session_state.get("lab_tf_result", (None,))[0] == check_key:
        show_tensorflow_check(st.session_state.lab_tf_result[1])
