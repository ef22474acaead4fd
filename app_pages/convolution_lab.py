"""Convolution lab: slide a kernel over a real image with padding, stride and dilation (a
fragment from the geometry down: a geometry click reruns only that); then "Go further", four
stateful tabs of which only the open one runs and is drawn: the small grid and the filter
bank (``app_pages/sections/lab_small_grid.py``, ``lab_filter_bank.py``), transposed
convolution (``ui.transpose_view``) and the output-size quiz (``ui.quiz_view``; a shared
question opens its tab). The open tab is kept for the session, across page switches.

Layout and widgets only (``*_ui()`` sections return typed values): numbers come from
``cnnlib.conv.ops`` / ``cnnlib.conv.lab``, figures from ``ui.lab_view``; computed on at most
``budgets().lab_pixels`` pixels. Widgets keep their values across page switches
(``persist_state``); shareable ones are bound to the URL (``bind="query-params"``,
``lab.QUERY_KEYS``). TensorFlow loads only for the checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from app_pages.sections import lab_filter_bank, lab_small_grid
from cnnlib.conv import kernels, lab, quiz
from cnnlib.conv.ops import ConvGeometry
from cnnlib.core.budgets import budgets
from cnnlib.core.errors import CNNLabError
from cnnlib.data import samples
from ui import kernel_grid, lab_view, quiz_view, transpose_view
from ui.code_text import show_code_lines
from ui.image_input import PickedImage, pick_images
from ui.state import KEEP, kept_tabs, open_tab

ss = st.session_state
#: Downscale choices: longest side in pixels (0 = keep the original size).
SIDES = {128: "128 px", 256: "256 px (fast)", 512: "512 px", 1024: "1024 px (slow)"}
SIDES[0] = "original size (slow for big photos)"
SHARE = {**KEEP, "bind": "query-params"}  #: kept for the session and in the share link
D = lab.DEFAULTS
#: Sections 5–8, one tab each: only the open tab runs and is sent to the browser.
FURTHER = ["5 · Small grid", "6 · Filter bank", "7 · Transposed convolution", "8 · Quiz"]
QUIZ_TAB = FURTHER[3]


def _first_visit() -> None:
    """Once per session: notices for link values Streamlit drops silently, and the kernel
    (a preset, or a custom matrix that only the project's parser reads) from the link."""
    if "lab_notices" in ss:
        return
    params = st.query_params.to_dict()
    settings, ss.lab_notices = lab.settings_from_query(params, samples.sample_names())
    ss.lab_kernel_now = settings.kernel_array  # the last valid kernel
    ss.lab_editor_v = 0
    ss.lab_kh, ss.lab_kw = settings.kernel_array.shape
    if any(name.startswith(quiz.QUERY_PREFIX) for name in params):  # a shared question
        open_tab("lab_further", QUIZ_TAB)


def _set_kernel(kernel: np.ndarray, name: str) -> None:
    """Replace the editor's kernel (a new version: the editor shows it) and the preset label."""
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


@dataclass(frozen=True)
class ImageChoice:
    """The chosen image (None until there is one), grayscale or RGB, and the longest side
    it is computed at (pixels; 0 = its original size)."""

    picked: PickedImage | None
    gray: bool
    side: int


def image_ui() -> ImageChoice:
    """Image, grayscale and downscale widgets."""
    picked = pick_images("lab", keep_sample=True, **SHARE)
    c1, c2 = st.columns(2)
    gray = c1.toggle(
        "Grayscale",
        value=D.grayscale,
        key="lab_gray",
        help="Off: RGB, and one filter spans all three channels (Conv2D semantics).",
        **SHARE,
    )
    size, cap = (picked[0].size if picked else (256, 256)), budgets().lab_pixels
    choices = lab.downscale_choices(size, list(SIDES), cap)
    side = c2.selectbox(
        "Downscale the longest side to",
        choices,
        index=choices.index(256) if 256 in choices else 0,
        format_func=lambda s: SIDES.get(s, f"{s} px"),
        key="lab_side",
        help=f"Big photos are shrunk so that every change redraws quickly; the lab computes on "
        f"at most {cap / 1e6:g} megapixels (original size only for images that fit).",
        **KEEP,
    )
    side = lab.compute_side(size, int(side), cap)
    return ImageChoice(picked[0] if picked else None, bool(gray), int(side))


def kernel_ui() -> np.ndarray:
    """Preset, size, the editable weights and two buttons; returns the (kh, kw) kernel."""
    names = [*kernels.PRESETS, lab.CUSTOM]
    st.selectbox(
        "Kernel",
        names,
        index=names.index(D.kernel_name),
        key="lab_preset",
        on_change=_on_preset,
        **SHARE,
    )
    st.caption(
        kernels.PRESETS.get(ss.lab_preset, (0, "Your own weights: edit the cells below."))[1]
    )
    sizes = list(range(1, kernels.MAX_KERNEL_SIZE + 1))
    c1, c2 = st.columns(2)
    c1.selectbox("Kernel rows", sizes, key="lab_kh", on_change=_on_resize, **KEEP)
    c2.selectbox("Kernel columns", sizes, key="lab_kw", on_change=_on_resize, **KEEP)
    cells = kernel_grid.kernel_grid(
        ss.lab_kernel_now, key="lab_kernel_cells", version=ss.lab_editor_v, on_change=_on_edit
    )
    c1, c2 = st.columns(2)
    for column, label, icon, callback, key in (
        (c1, "Randomize", "casino", _on_randomize, "lab_randomize"),
        (c2, "Normalize (sum to 1)", "balance", _on_normalize, "lab_normalize"),
    ):
        column.button(label, icon=f":material/{icon}:", on_click=callback, key=key, width="stretch")
    if msg := ss.pop("lab_kernel_msg", None):
        st.error(msg, icon=":material/warning:")
    if cells is not None:
        try:
            ss.lab_kernel_now = lab.kernel_from_cells(cells, (ss.lab_kh, ss.lab_kw))
        except CNNLabError as err:
            st.error(f"{err} Showing the last valid kernel.", icon=":material/warning:")
    return np.asarray(ss.lab_kernel_now, dtype=np.float32)


def geometry_ui() -> ConvGeometry:
    """Padding, stride and dilation widgets; returns their ``ConvGeometry``."""
    c1, c2, c3 = st.columns([3, 2, 2])
    with c1:
        mode = st.radio(
            "Padding",
            lab.PADDING_CHOICES,
            horizontal=True,
            key="lab_padding",
            help="valid: none · same: output ⌈i/s⌉ (TensorFlow's rule) · full: every overlap · "
            "explicit: p zero rows/columns on each side",
            **SHARE,
        )
        padding = mode
        if mode == "explicit":
            top = lab.MAX_EXPLICIT_PADDING
            label = "p (zeros on each side)"
            padding = int(st.number_input(label, 0, top, lab.DEFAULT_P, key="lab_p", **SHARE))
    stride = c2.radio("Stride", lab.STRIDES, horizontal=True, key="lab_stride", **SHARE)
    dilation = c3.radio("Dilation", lab.DILATIONS, horizontal=True, key="lab_dilation", **SHARE)
    return ConvGeometry(padding, int(stride), int(dilation))


def scale_ui() -> str:
    """The colour-scale radio: "sign" or "magnitude"."""
    names = {"sign": "sign (red +, blue −, white 0)", "magnitude": "magnitude |value|"}
    return st.radio(
        "Colour scale", list(names), format_func=names.get, horizontal=True, key="lab_scale", **KEEP
    )


def cell_ui(out_h: int, out_w: int) -> tuple[int, int]:
    """The output cell explained by hand, kept inside the output (the sliders come later)."""
    for key, top in (("lab_row", out_h - 1), ("lab_col", out_w - 1)):
        # Set on every run: when the output size changes the position is clamped to it.
        ss[key] = min(int(ss.get(key, top // 2)), top)
    return int(ss.lab_row), int(ss.lab_col)


def cell_sliders(out_h: int, out_w: int) -> None:
    c1, c2 = st.columns(2)
    for column, key, label, top in (
        (c1, "lab_row", "Output row", out_h - 1),
        (c2, "lab_col", "Output column", out_w - 1),
    ):
        if top > 0:
            column.slider(label, 0, top, key=key, **KEEP)
        else:
            column.caption(f"{label}: 0 (the output has only one)")


@st.fragment
def maps_and_cell(
    key: tuple, x, kernel, g: ConvGeometry, sizes: tuple, res: lab_view.Convolved, scale: str
):
    """Sections 3–4 below the colour scale: the maps, and one output cell by hand. A
    fragment: moving the row/column sliders reruns only this."""
    row, col = cell_ui(*res.y.shape)
    expl = lab.explain_cell(x, kernel, g, row=row, col=col)
    lab_view.show_maps(res, lab_view.input_view(*key, x), x.shape, expl)
    st.header("4 · Under the hood: one output value by hand", divider="gray")
    cell_sliders(*res.y.shape)
    lab_view.show_cell(x, expl, float(res.y[row, col]), g, sizes)


def main() -> None:
    _first_visit()
    st.title("Convolution lab")
    st.markdown(
        "Slide a **kernel** (a small matrix of weights) over an image: each output value is "
        "the sum of the kernel's weights times the pixels under it. Change padding, stride "
        "and dilation and watch the output size follow the formula; open *Under the hood* to "
        "check one output value by hand."
    )
    for notice in ss.lab_notices:
        st.warning(notice, icon=":material/link:")

    st.header("1 · Image and kernel", divider="gray")
    col_img, col_kernel = st.columns([1, 1], gap="large")
    with col_img:
        chosen = image_ui()
    with col_kernel:
        kernel = kernel_ui()
    name = lab.link_kernel_name(ss.lab_preset, kernel)
    lab_view.write_kernel_link(name, kernel)
    geometry_sections(chosen, name, kernel)


@st.fragment
def geometry_sections(chosen: ImageChoice, name: str, kernel: np.ndarray) -> None:
    """Section 2's padding, stride and dilation, the share link, sections 3–4 on the chosen
    image, then sections 5–8 as tabs. A fragment: a geometry change reruns only these
    (section 1's editor stays as it is in the browser)."""
    st.header("2 · Padding, stride, dilation", divider="gray")
    g = geometry_ui()
    share_link(chosen.gray, name, kernel, g)
    conv = lab_sections(chosen, kernel, g) if chosen.picked is not None else None
    further_sections(chosen, kernel, g, conv)


@dataclass(frozen=True)
class LabConv:
    """What sections 3–4 computed on, for the filter bank: the image's cache key, the
    image as (H, W) or (H, W, C) float32 in [0, 1], and the colour scale."""

    key: tuple
    x: np.ndarray
    scale: str


def lab_sections(chosen: ImageChoice, kernel: np.ndarray, g: ConvGeometry) -> LabConv | None:
    """Sections 3–4, on the chosen image (None, with a message, when the kernel does not
    fit)."""
    picked = chosen.picked
    key = (picked.token, chosen.side, chosen.gray)
    x = lab_view.prepared(*key, picked.image)
    try:
        sizes = lab.output_sizes(x.shape[:2], kernel.shape, g)
    except CNNLabError as err:
        st.error(str(err), icon=":material/warning:")
        return None
    lab_view.show_sizes(x.shape, picked.label, kernel.shape, g, sizes)
    st.header("3 · Output feature map", divider="gray")
    scale = scale_ui()
    res = lab_view.convolved(*key, lab.kernel_tuple(kernel), g, scale, x)
    maps_and_cell(key, x, kernel, g, sizes, res, scale)
    return LabConv(key, x, scale)


def further_sections(
    chosen: ImageChoice, kernel: np.ndarray, g: ConvGeometry, conv: LabConv | None
) -> None:
    """Sections 5–8 as tabs (stateful: only the open one is computed and drawn, so the page
    opens with a third of the elements it would have otherwise)."""
    st.header("Go further", divider="gray")
    tabs = kept_tabs(FURTHER, "lab_further")
    with tabs[0]:
        if tabs[0].open:
            st.subheader("Which inputs feed which output")
            lab_small_grid.small_grid_section(g)
    with tabs[1]:
        if tabs[1].open:
            st.subheader("One Conv2D layer with F filters")
            if conv is None:
                st.info("Choose an image above to see the filter bank.", icon=":material/info:")
            else:
                lab_filter_bank.bank_section(conv.key, conv.x, kernel, g, conv.scale)
                with st.expander("Trust, but verify: the same convolution in TensorFlow"):
                    st.fragment(lab_view.tensorflow_section)(conv.key, conv.x, kernel, g)
    with tabs[2]:
        if tabs[2].open:
            st.subheader("Upsampling")
            if chosen.picked is None:
                st.info("Choose an image above to upsample it.", icon=":material/info:")
            else:
                side = min(chosen.side, transpose_view.IMAGE_SIDE)
                small = lab_view.prepared(chosen.picked.token, side, True, chosen.picked.image)
                transpose_view.transpose_section(chosen.picked.token, small, kernel)
    with tabs[3]:
        if tabs[3].open:
            st.subheader("Predict the output size")
            quiz_view.quiz_section()


def share_link(gray: bool, name: str, kernel: np.ndarray, g: ConvGeometry) -> None:
    """The lab's share link, below the settings it holds (the quiz shares its question
    itself)."""
    image = ss.get("lab_sample", D.image)
    query = lab.settings_to_query(lab.LabSettings(image, gray, name, lab.kernel_tuple(kernel), g))
    st.caption(
        ":material/link: Share this setup: the page address holds the image, grayscale, "
        "kernel, padding, stride and dilation — copy it from the address bar. Current link "
        "parameters:"
    )
    link = "?" + urlencode(query) if query else "(defaults)"
    show_code_lines([link])


main()
