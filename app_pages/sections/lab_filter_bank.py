"""Convolution lab, section 6 "Filter bank": one Conv2D layer with F filters, the lab's kernel
among presets; the layer's shapes, weight count, Keras code and one output map per filter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.conv import kernels, lab
from cnnlib.conv.ops import ConvGeometry
from ui import lab_view
from ui.errors import friendly_errors
from ui.state import KEEP

YOUR_KERNEL = "your kernel (above)"
BANK_DEFAULT = ["vertical edges", "horizontal edges", "laplacian", "box blur"]
BANK_MAX = 8  #: filters in the filter bank's layer


@dataclass(frozen=True, eq=False)
class Bank:
    """The filters chosen: their ``names`` and their (kh, kw, C, F) ``weights`` (None when
    none is chosen)."""

    names: list[str]
    weights: np.ndarray | None


def bank_ui(kernel: np.ndarray, channels: int) -> Bank:
    """The filter bank's kernels, as one layer's weights."""
    # Pills, not a multiselect: its chips are white text on the primary colour, too faint
    # on the dark theme's (README, Accessibility).
    names = st.pills(
        "Kernels in the layer (each one is a filter)",
        [*kernels.PRESETS, YOUR_KERNEL],
        selection_mode="multi",
        default=BANK_DEFAULT,
        key="lab_bank",
        **KEEP,
    )
    if len(names) > BANK_MAX:
        st.caption(f"A layer here has at most {BANK_MAX} filters: the first {BANK_MAX} are used.")
        names = names[:BANK_MAX]
    if not names:
        st.info("Choose at least one kernel to build a layer.", icon=":material/info:")
        return Bank(names, None)
    chosen = [kernel if n == YOUR_KERNEL else kernels.preset(n) for n in names]
    k4 = lab.filter_bank(chosen, channels)
    if any(k.shape != k4.shape[:2] for k in chosen):
        kh, kw = k4.shape[:2]
        st.caption(f"One layer has one kernel size: smaller kernels are zero-padded to {kh}×{kw}.")
    return Bank(names, k4)


@st.fragment
def bank_section(key: tuple, x: np.ndarray, kernel: np.ndarray, g: ConvGeometry, scale: str):
    """The filter bank (a fragment: choosing its kernels reruns only this)."""
    bank = bank_ui(kernel, 1 if x.ndim == 2 else x.shape[2])
    names, k4 = bank.names, bank.weights
    if k4 is not None:
        with friendly_errors():
            shape, thumbs = lab_view.bank(*key, k4.tobytes(), k4.shape, g, scale, x)
            lab_view.show_bank(names, k4, shape, thumbs, x.shape, g)
