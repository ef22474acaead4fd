"""A section of the Network-overview page: one output cell of a Conv2D layer worked out by
hand. The learner clicks a cell of the map (or types its row and column), and reads its
input window, patch ⊙ kernel for one input channel, every channel's sum, the bias and the
activation, against the value the map shows.

``cell_ui`` returns the chosen cell (a frozen ``CellChoice``); ``cell_section`` draws the
clickable map, computes the cell with ``ui.overview_session.conv_cell`` (the model's own
numbers, ``cnnlib.inspect.overview.conv_cell``) and draws it with ``ui.overview_view``. A
click writes the same session keys as the row and column inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnnlib.core.text import safe_text
from cnnlib.inspect import features as F
from cnnlib.inspect import overview as O
from ui import features_session as fs
from ui import overview_session as ovs
from ui import overview_view as view_ui

ss = st.session_state


@dataclass(frozen=True)
class CellChoice:
    """Output cell (``row``, ``col``) of filter ``filter`` of Conv2D ``layer``."""

    layer: str
    filter: int
    row: int
    col: int


def _keys(view: fs.ModelView, layer: str) -> tuple[str, str, str]:
    """Session keys of (the clickable map, its row input, its column input)."""
    where = f"{view.key}_{layer}"
    return f"ov_cells_{where}", f"ov_row_{where}", f"ov_col_{where}"


def cell_ui(
    view: fs.ModelView, node: O.GraphNode, channel: int, acts: F.ActivationSet
) -> CellChoice | None:
    """The Conv2D cell to work out: in ``node``'s Conv2D layer (a block's: picked), filter =
    the chosen ``channel`` (a block's: picked); first the map's strongest cell, then the one
    clicked or typed. None when the node holds no Conv2D layer."""
    convs = [n for n in node.layers if view.layer(n).has_filters]
    if not convs:
        return None
    st.subheader("One cell of a convolution, by hand")
    if node.kind != "Block":
        layer, filter = convs[0], channel
    else:
        c1, c2 = st.columns([3, 1])
        layer = c1.selectbox("Conv2D layer of this block", convs, key=f"ov_conv_{view.key}")
        n = view.layer(layer).channels
        top = F.top_channel(acts.stats(layer))
        filter = c2.number_input(
            f"Filter (0 to {n - 1})", 0, n - 1, top, key=f"ov_filter_{view.key}_{layer}"
        )
    h, w = view.layer(layer).output_shape[:2]
    _, row_key, col_key = _keys(view, layer)
    if row_key not in ss or col_key not in ss:
        r, c = np.unravel_index(int(np.argmax(acts[layer][:, :, filter])), (h, w))
        ss[row_key], ss[col_key] = int(r), int(c)
    return CellChoice(layer, int(filter), int(ss[row_key]), int(ss[col_key]))


def _cell_clicked(chart_key: str, row_key: str, col_key: str) -> None:
    """A click on the map: its point's y and x are the cell's row and column."""
    points = ((ss.get(chart_key) or {}).get("selection") or {}).get("points") or []
    cells = [(p["y"], p["x"]) for p in points if "x" in p and "y" in p]
    if cells:
        ss[row_key], ss[col_key] = int(cells[0][0]), int(cells[0][1])


def input_channel_ui(cell: O.ConvCell, key: str) -> int:
    """Which input channel's window to work out square by square (default: the one that
    contributes most, by size); returns its position in the cell's patch."""
    c = len(cell.per_channel)
    if c == 1:
        return 0
    first = cell.first_channel
    top = first + int(np.argmax(np.abs(cell.per_channel)))
    label = f"Input channel to work out ({first} to {first + c - 1})"
    return int(st.number_input(label, first, first + c - 1, top, key=key)) - first


def cell_section(
    view: fs.ModelView,
    prepared: fs.PreparedInput,
    acts: F.ActivationSet,
    choice: CellChoice,
    facts: tuple | None = None,
) -> None:
    """The clickable map of ``choice``'s filter with the row and column inputs (and
    ``facts`` for ``view_ui.show_map_facts`` beneath) beside the cell's sum; below, one input
    channel's window worked out square by square."""
    values = acts[choice.layer][:, :, choice.filter]
    lo, hi = float(values.min()), float(values.max())
    key, row_key, col_key = _keys(view, choice.layer)
    left, right = st.columns(2)
    with left:
        layer = safe_text(choice.layer, 40)
        st.markdown(f"Filter {choice.filter} of **{layer}** on this image: **click a cell**")
        fig = view_ui.map_figure(values, lo, hi, cell=(choice.row, choice.col))
        alt = view_ui.map_alt(f"Filter {choice.filter} of {choice.layer}", values, lo, hi)
        view_ui.show_map(fig, alt, key=key, on_click=lambda: _cell_clicked(key, row_key, col_key))
        h, w = values.shape
        c1, c2 = st.columns(2)
        c1.number_input(f"Row (0 to {h - 1})", 0, h - 1, key=row_key)
        c2.number_input(f"Column (0 to {w - 1})", 0, w - 1, key=col_key)
        if facts is not None:
            view_ui.show_map_facts(*facts)
    with right:
        cell = ovs.conv_cell(view, prepared, choice.layer, choice.row, choice.col, choice.filter)
        float16 = acts.maps[choice.layer].dtype == np.float16
        view_ui.show_cell_sum(cell, float(values[choice.row, choice.col]), float16=float16)
    where = f"{choice.layer}_{choice.filter}_{choice.row}_{choice.col}"
    view_ui.show_cell_channel(cell, input_channel_ui(cell, key=f"ov_in_{view.key}_{where}"))
