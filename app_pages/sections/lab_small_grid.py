"""Convolution lab, section 5 "Small grid": which inputs feed which output, one step at a time
on a small n×n grid with the lab's padding, stride and dilation (step buttons, a slider, or
Play)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cnnlib.conv import lab
from cnnlib.conv.ops import ConvGeometry
from cnnlib.core.errors import CNNLabError
from ui import lab_view
from ui.state import KEEP

ss = st.session_state


def _step(delta: int, positions: int) -> None:
    ss.lab_step = (ss.get("lab_step", 0) + delta) % positions


@dataclass(frozen=True)
class GridChoice:
    """The small grid's size ``n`` (n×n), kernel size ``k`` (k×k) and whether it plays."""

    n: int
    k: int
    playing: bool


def grid_ui() -> GridChoice:
    """Small-grid size, kernel size and the play toggle."""
    c1, c2, c3 = st.columns([1, 1, 2])
    n = c1.selectbox("Grid size n×n", list(range(3, 10)), index=2, key="lab_grid_n", **KEEP)
    k = c2.selectbox("Kernel k×k", list(range(1, 6)), index=2, key="lab_grid_k", **KEEP)
    playing = c3.toggle("▶ Play (advance every 0.8 s)", key="lab_play", **KEEP)
    return GridChoice(int(n), int(k), bool(playing))


def _grid_view(grid: lab.SmallGrid, playing: bool) -> None:
    """Step buttons and slider, then the small grid (a fragment: stepping reruns only this)."""
    n = grid.positions
    ss.lab_step = (ss.get("lab_step", 0) + (1 if playing else 0)) % n
    b1, b2, b3 = st.columns([1, 1, 6])
    b1.button("◀ Step", on_click=_step, args=(-1, n), key="lab_prev", width="stretch")
    b2.button("Step ▶", on_click=_step, args=(1, n), key="lab_next", width="stretch")
    b3.slider("Output cell (row by row)", 0, max(n - 1, 1), key="lab_step", disabled=n == 1, **KEEP)
    lab_view.show_grid(grid, min(ss.lab_step, n - 1))


def small_grid_section(g: ConvGeometry) -> None:
    """The section: its widgets, then the grid (or why this geometry has none)."""
    choice = grid_ui()
    try:
        grid = lab.small_grid(choice.n, choice.k, g)
    except CNNLabError as err:
        st.info(str(err), icon=":material/info:")
    else:
        st.fragment(_grid_view, run_every=0.8 if choice.playing else None)(grid, choice.playing)
