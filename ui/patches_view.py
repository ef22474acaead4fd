"""Real examples beside "what a filter wants to see" (Distill's "Feature Visualization":
dataset examples): the image patches that excite one filter most, each cropped to the
receptive field of the cell that responded, on the Feature-maps page.

``patches_section`` asks ``ui.patches_session`` for the search (cached per session) and
draws it with ``show_patches``; the patches and their activations come from
``cnnlib.inspect.patches.top_patches``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnlib.inspect import features as F
from cnnlib.inspect.patches import TopPatches
from ui import patches_session
from ui.features_session import ModelView
from ui.state import KEEP

#: Side of each patch's tile (pixels): a small field is enlarged pixel by pixel.
TILE_PX = 96


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """A patch (h, w) or (h, w, C) of any dtype as (h, w, 3) uint8."""
    p = np.asarray(pixels)
    if p.dtype != np.uint8:
        p = np.clip(p, 0, 255).astype(np.uint8)
    if p.ndim == 2:
        p = p[:, :, None]
    return np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p[..., :3]


def show_patches(tp: TopPatches, source: str) -> None:
    """The patches, strongest first, each labelled with its activation, and what they are."""
    if not tp.patches:
        st.info(f"No cell of filter {tp.channel} of {tp.layer} responds to any of {source}.")
        return
    tiles = [_rgb(p.pixels) for p in tp.patches]
    labels = [f"{p.activation:.3g}" for p in tp.patches]
    grid = F.tile_grid(tiles, labels, columns=len(tiles), tile_px=TILE_PX)
    rows, cols = tp.field
    values = ", ".join(labels)
    st.image(
        grid,
        output_format="PNG",
        alt=f"The {len(tiles)} image patches of {source} that excite filter {tp.channel} of "
        f"{tp.layer} most, strongest first, each {rows}×{cols} pixels (the cell's receptive "
        f"field), labelled with the filter's response: {values}.",
    )
    images = len({p.image_index for p in tp.patches})
    st.caption(
        f"The {len(tiles)} places in {source} where filter {tp.channel} of {tp.layer} "
        f"responds most (from {images} different image{'s' * (images != 1)}), strongest "
        f"first, labelled with its response. Each patch is what one cell of the map sees: "
        f"its {rows}×{cols}-pixel receptive field, cut at the image's edge."
    )


def patches_section(view: ModelView, layer: str, channel: int | None, default: int = 0) -> None:
    """Real examples for ``channel`` of ``layer`` (a filter picked here, first ``default``,
    when ``channel`` is None, e.g. beside a grid of filters). Raises ``CNNLabError``
    (caught by the page)."""
    if channel is None:
        n = view.layer(layer).channels
        channel = st.number_input(
            f"Filter for real examples (0 to {n - 1})",
            0,
            n - 1,
            min(default, n - 1),
            key=f"fm_patches_{view.key}_{layer}",
            **KEEP,
        )
    st.markdown(f"**Real examples: the image patches that excite filter {channel} most**")
    with st.spinner(f"Searching the images for filter {channel} of {layer}…"):
        images = patches_session.patch_set(view)
        tp = patches_session.strongest_patches(view, layer, int(channel))
    show_patches(tp, images.source)
