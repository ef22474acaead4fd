"""The Convolution lab's transposed-convolution section: the output-size formula with the
learner's numbers, a small grid showing which output cells one input cell writes to (and
the checkerboard of overlap counts), and the lab's image upsampled by ``conv2d_transpose``.

Numbers come from ``cnnlib.conv.ops`` (``transpose_grid``, ``conv2d_transpose``) and
``cnnlib.conv.lab.transpose_formula_latex``; figures from ``ui.figures`` and ``ui.lab_view``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.conv import lab
from cnnlib.conv import ops as conv
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import CNNLabError
from ui import cell_grids, figures
from ui.cell_grids import GridPanel, Outline
from ui.errors import friendly_errors
from ui.figures import SIGN, shape_text
from ui.lab_view import ORANGE, MapPicture, picture, range_text, show_tensorflow_check
from ui.state import KEEP

ss = st.session_state
#: Longest side of the image the section upsamples (stride 3 makes it 3× as long).
IMAGE_SIDE = 128
PADDINGS = ("valid", "same", "crop p")


@dataclass(frozen=True)
class TransposeSettings:
    """The small example's input size ``i``, kernel size ``k``, stride ``s`` and padding
    ("valid", "same", or p cells cropped from each side)."""

    i: int
    k: int
    s: int
    padding: int | str


def controls_ui() -> TransposeSettings:
    """Input size, kernel size, stride and padding of the small example."""
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
    i = c1.selectbox("Transposed: input i×i", list(range(2, 7)), index=1, key="lab_tr_i", **KEEP)
    k = c2.selectbox("Transposed: kernel k×k", list(range(1, 6)), index=2, key="lab_tr_k", **KEEP)
    s = c3.selectbox("Transposed: stride s", [1, 2, 3], index=1, key="lab_tr_s", **KEEP)
    with c4:
        mode = st.radio(
            "Transposed: padding",
            PADDINGS,
            horizontal=True,
            key="lab_tr_pad",
            help="valid: keep every output cell · same: TensorFlow's, output i·s · crop p: "
            "remove p cells from each side",
            **KEEP,
        )
        if mode != "crop p":
            return TransposeSettings(int(i), int(k), int(s), mode)
        top = max(((int(i) - 1) * int(s) + int(k) - 1) // 2, 0)
        p = st.number_input("Transposed: p", 0, top, min(1, top), key="lab_tr_p", **KEEP)
    return TransposeSettings(int(i), int(k), int(s), int(min(p, top)))


def grid_panels(g: conv.TransposeGrid, row: int, col: int) -> list[GridPanel]:
    """The input grid (cell (row, col) in orange) beside the output grid of overlap counts,
    with the cells that input cell writes to outlined in orange."""
    h, w = g.input_shape
    oh, ow = g.output_shape
    pick = np.full((h, w), "#ffffff", dtype=object)
    pick[row, col] = ORANGE
    rows, cols = g.feeds(row, col)
    counts = g.counts.astype(np.float32)
    fill = cell_grids.hex_colors(figures.colorize(counts, "Blues", 0.0, max(counts.max(), 1.0)))
    writes = [
        Outline(r, c, r, c, ORANGE, 3) for r in rows for c in cols if 0 <= r < oh and 0 <= c < ow
    ]
    return [
        GridPanel(
            pick, f"input {h}×{w}", np.array([[f"x{r},{c}" for c in range(w)] for r in range(h)])
        ),
        GridPanel(
            fill,
            f"output {oh}×{ow}: how many writes add up in each cell",
            np.array([[str(int(v)) for v in line] for line in g.counts]),
            outlines=writes,
        ),
    ]


def show_grid(g: conv.TransposeGrid) -> None:
    """Pick an input cell (slider) and see the output cells it writes, then the counts."""
    h, w = g.input_shape
    n = h * w
    ss.lab_tr_cell = min(int(ss.get("lab_tr_cell", 0)), n - 1)
    st.slider("Input cell (row by row)", 0, n - 1, key="lab_tr_cell")
    row, col = divmod(int(ss.lab_tr_cell), w)
    rows, cols = g.feeds(row, col)
    k = g.kernel_size[0]
    st.markdown(
        f"Input cell ({row}, {col}) writes its value × the {k}×{k} kernel into output rows "
        f"**{rows.start}–{rows.stop - 1}**, columns **{cols.start}–{cols.stop - 1}** "
        f"(starting at {row}·{g.stride[0]} − {g.crop[0]}, {col}·{g.stride[1]} − {g.crop[1]})."
        if len(rows) and len(cols)
        else f"Input cell ({row}, {col}) writes only into cells the padding crops away."
    )
    lo, hi = int(g.counts.min()), int(g.counts.max())
    oh, ow = g.counts.shape
    alt = (
        f"Left: the {h}×{w} input, cell ({row}, {col}) in orange. Right: the {oh}×{ow} output, "
        f"each cell showing how many writes add up in it ({lo} to {hi}, darker blue for more); "
        f"the cells that input ({row}, {col}) writes to are outlined in orange."
    )
    cell_grids.show_grids(grid_panels(g, row, col), alt=alt)
    if g.uneven:
        st.info(
            f"Kernel {k} is not a multiple of stride {g.stride[0]}: output cells receive "
            f"between {lo} and {hi} writes in a repeating pattern. That is the checkerboard "
            "pattern of transposed convolutions (a kernel size divisible by the stride, or "
            "resize-then-convolve, avoids it).",
            icon=":material/grid_on:",
        )
    else:
        st.caption(
            f"Kernel {k} is a multiple of stride {g.stride[0]}: away from the borders "
            f"every output cell receives the same number of writes ({hi})."
        )


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=8)
def upsampled(token: str, shape: tuple, kernel, stride: int, padding, _x) -> MapPicture:
    """``conv2d_transpose`` of the (H, W) image ``_x`` with the lab's (kh, kw) kernel
    (``lab.kernel_tuple`` form), coloured for drawing; keyed by the image token and shape."""
    y = conv.conv2d_transpose(_x, np.array(kernel, np.float32), stride=stride, padding=padding)
    m = lab.symmetric_limit(y)
    view, f = lab.display_map(y, 512)
    jpeg = picture(figures.colorize(view, SIGN, -m, m), min_side=256)
    return MapPicture(jpeg, y.shape, range_text(y), f, (SIGN, -m, m))


def show_upsampled(token: str, x: np.ndarray, kernel: np.ndarray, s: int, padding) -> None:
    """The lab's image (grayscale, at most IMAGE_SIDE px) and its transposed convolution."""
    res = upsampled(token, x.shape, lab.kernel_tuple(kernel), s, padding, x)
    kh, kw = kernel.shape
    st.markdown(
        f"The lab's image **{shape_text(x.shape)}** (grayscale), your **{kh}×{kw}** kernel, "
        f"stride **{s}**, padding **{lab.padding_to_text(padding)}** → "
        f"**{shape_text(res.shape)}**: each pixel writes a copy of the kernel, {s} "
        "cells apart."
    )
    c1, c2 = st.columns([1, 2])
    legend = figures.legend(*res.scale)
    note = "" if res.f == 1 else f" Drawn with each {res.f}×{res.f} block as one cell."
    c1.image(
        picture(figures.colorize(x, "gray", 0.0, 1.0), min_side=128),
        width="stretch",
        alt=f"The lab's image, grayscale: {range_text(x)} (0 black, 1 white).",
    )
    c1.caption(f"Input {shape_text(x.shape)}.")
    c2.image(
        res.jpeg,
        width="stretch",
        alt=f"Its transposed convolution with your {kh}×{kw} kernel, stride {s}: "
        f"{res.text}.{note} {legend}",
    )
    c2.caption(f"Transposed convolution: {res.text}.{note} {legend}")


@st.fragment
def transpose_section(token: str, x: np.ndarray, kernel: np.ndarray) -> None:
    """The whole section (a fragment: its controls rerun only this). ``x`` is the lab's
    image as (H, W) float32 in [0, 1], at most IMAGE_SIDE px; ``kernel`` (kh, kw)."""
    st.markdown(
        "A **transposed convolution** runs a convolution backwards: every input cell *writes* "
        "the kernel, scaled by its value, into the output, copies `s` cells apart. Decoders "
        "and GANs use it to upsample (Keras: `Conv2DTranspose`)."
    )
    c = controls_ui()
    i, k, s, padding = c.i, c.k, c.s, c.padding
    try:
        st.latex(lab.transpose_formula_latex(i, k, s, padding))
        show_grid(conv.transpose_grid((i, i), k, stride=s, padding=padding))
        show_upsampled(token, x, kernel, s, padding)
    except CNNLabError as err:
        st.info(str(err), icon=":material/info:")
        return
    with st.expander("Trust, but verify: the same in tf.nn.conv2d_transpose"):
        tensorflow_ui(token, x, kernel, s, padding)


def tensorflow_ui(token: str, x: np.ndarray, kernel: np.ndarray, s: int, padding) -> None:
    """The image's transposed convolution by TensorFlow on request (it loads only then)."""
    check_key = (token, x.shape, lab.kernel_tuple(kernel), s, padding)
    if st.button("Compare with tf.nn.conv2d_transpose", key="lab_tf_tr"):
        with friendly_errors(), st.spinner("Loading TensorFlow…"):
            ss.lab_tf_tr_result = (check_key, lab.tensorflow_transpose_check(x, kernel, s, padding))
    if ss.get("lab_tf_tr_result", (None,))[0] == check_key:
        show_tensorflow_check(ss.lab_tf_tr_result[1])
