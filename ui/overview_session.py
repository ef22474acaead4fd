"""Page-side helpers for the Network-overview page: the layer graph, the overview of one
image, each column's image and one Conv2D cell's arithmetic, each computed once and kept for
as long as what it depends on stays the same.

The model, its input and the activations are the Feature-maps page's own helpers
(``ui.features_session``: ``registry_view``, ``load_uploaded_model``, ``shared_view``,
``prepare_input``, ``activations``), so one forward pass per (model, image) serves both
pages. What is kept, and where:

- the layer graph and the architecture's DOT text: with the shared ``PretrainedModel``
  (``PretrainedModel.cached``, once per process) or in this session's state (per model);
- the overview: one slot per session, keyed by (model view, input digest, maps per column);
- column images (PNG) and Conv2D cells: session-scoped ``st.cache_data``, keyed by what they
  depend on, bounded in bytes (``budgets().cache_bytes``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from cnnlib.core.budgets import budgets
from cnnlib.inspect import features as F
from cnnlib.inspect import overview as O
from cnnlib.inspect.overview_canvas import Canvas, column_image
from ui import features_session as fs

_GRAPHS = "overview_graphs"
_OVERVIEW = "overview_slot"
#: Thumbnails are computed at this size (pixels a side) and drawn at the column's tile size.
THUMB_PX = 48


def graph(view: fs.ModelView, *, every_layer: bool = False) -> tuple[list[O.GraphNode], str]:
    """(``layer_graph``, ``architecture_dot``) of ``view``'s model, built once per model:
    by block where the model has blocks, or with ``every_layer`` one node per layer."""
    by_block = False if every_layer else None

    def build() -> tuple[list[O.GraphNode], str]:
        model = view.model
        return O.layer_graph(model, by_block=by_block), O.architecture_dot(model, by_block=by_block)

    key = f"cnnlab.overview.graph.{'layers' if every_layer else 'auto'}"
    if view.shared is not None:
        return view.shared.cached(key, build)
    kept: dict[tuple[str, str], tuple] = st.session_state.setdefault(_GRAPHS, {})
    if (view.token, key) not in kept:
        while len(kept) >= 6:  # a few models per session, as ``fs.session_view`` keeps
            kept.pop(next(iter(kept)))
        kept[view.token, key] = build()
    return kept[view.token, key]


def overview(
    view: fs.ModelView, prepared: fs.PreparedInput, acts: F.ActivationSet, maps: int
) -> O.Overview:
    """The overview of ``prepared`` through ``view``'s model from its activations ``acts``
    (no forward pass), kept in one session slot until the model, image or ``maps`` change."""
    key = (view.key, view.token, prepared.digest, maps)
    slot = st.session_state.get(_OVERVIEW)
    if slot is not None and slot[0] == key:
        return slot[1]
    nodes, _ = graph(view)
    ov = O.overview_from_activations(nodes, acts, prepared.batch, maps=maps, thumb_px=THUMB_PX)
    st.session_state[_OVERVIEW] = (key, ov)
    return ov


@st.cache_data(max_size=budgets().cache_bytes, max_entries=256, show_spinner=False, scope="session")
def _column_png(key: tuple, _node: O.OverviewNode) -> bytes:
    """One column's PNG; ``key``: (model token, input digest, maps per column, node name, lo,
    hi, tile px, column height), everything the image depends on."""
    _, _, _, _, lo, hi, tile, height = key
    return F.to_png(column_image(_node, lo, hi, tile_px=tile, height=height))


def column_pngs(
    view: fs.ModelView,
    prepared: fs.PreparedInput,
    ov: O.Overview,
    cv: Canvas,
    ranges: list[tuple[float, float]],
) -> list[bytes]:
    """Every column of ``ov`` as PNG, node ``i`` coloured over ``ranges[i]`` (lo, hi)."""
    maps = max((len(n.maps) for n in ov.nodes if n.maps is not None), default=0)
    return [
        _column_png(
            (view.token, prepared.digest, maps, node.name, lo, hi, cv.tile_px, int(cv.height)),
            node,
        )
        for node, (lo, hi) in zip(ov.nodes, ranges, strict=True)
    ]


@st.cache_data(max_size=budgets().cache_bytes, max_entries=32, show_spinner=False, scope="session")
def _cell(
    token: str, digest: str, layer: str, row: int, col: int, filter: int, _runner: Any, _x: Any
) -> O.ConvCell:
    return O.conv_cell(_runner, layer, _x, row, col, filter)


def conv_cell(
    view: fs.ModelView, prepared: fs.PreparedInput, layer: str, row: int, col: int, filter: int
) -> O.ConvCell:
    """``conv_cell`` for ``prepared`` through ``view``'s model (a shared model under its
    lock), computed once per (model, image, layer, cell, filter) in this session. Raises
    ``InvalidArgumentError`` for a cell outside the layer."""
    x = np.asarray(prepared.batch)[0]
    return _cell(view.token, prepared.digest, layer, row, col, filter, view.runner, x)
