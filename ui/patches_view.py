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
from PIL import Image, ImageDraw

from cnnlib.inspect import features as F
from cnnlib.inspect.patches import Patch, TopPatches
from ui import patches_session
from ui.features_session import ModelView
from ui.patches_session import PatchSet
from ui.state import KEEP

#: Side of each patch's tile (pixels): a small field is enlarged pixel by pixel.
TILE_PX = 96
#: The receptive field's outline on each tile (colour-blind safe: Okabe–Ito orange).
FIELD = (230, 159, 0)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """A patch (h, w) or (h, w, C) of any dtype as (h, w, 3) uint8."""
    p = np.asarray(pixels)
    if p.dtype != np.uint8:
        p = np.clip(p, 0, 255).astype(np.uint8)
    if p.ndim == 2:
        p = p[:, :, None]
    return np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p[..., :3]


def in_context(image: np.ndarray, patch: Patch) -> np.ndarray:
    """The patch's receptive field outlined on its image, with as much of the image around it
    as the field is wide on each side (clipped at the edges), enlarged to ``TILE_PX``: an
    (h, w, 3) uint8 tile."""
    h, w = image.shape[:2]
    win = patch.window.clipped(h, w)
    mh, mw = patch.window.size
    top, left = max(win.top - mh, 0), max(win.left - mw, 0)
    bottom, right = min(win.bottom + mh, h), min(win.right + mw, w)
    crop = Image.fromarray(_rgb(image[top:bottom, left:right]))
    scale = TILE_PX / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    tile = crop.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX)
    box = [
        (win.left - left) * scale,
        (win.top - top) * scale,
        (win.right - left) * scale - 1,
        (win.bottom - top) * scale - 1,
    ]
    ImageDraw.Draw(tile).rectangle(box, outline=FIELD, width=2)
    return np.asarray(tile)


def show_patches(tp: TopPatches, images: PatchSet) -> None:
    """The patches, strongest first, each outlined on its image and labelled with its
    activation, and what they are."""
    source = images.source
    if not tp.patches:
        st.info(f"No cell of filter {tp.channel} of {tp.layer} responds to any of {source}.")
        return
    tiles = [in_context(images.shown[p.image_index], p) for p in tp.patches]
    labels = [f"{p.activation:.3g}" for p in tp.patches]
    grid = F.tile_grid(tiles, labels, columns=len(tiles), tile_px=TILE_PX)
    rows, cols = tp.field
    values = ", ".join(labels)
    st.image(
        grid,
        output_format="PNG",
        alt=f"The {len(tiles)} image patches of {source} that excite filter {tp.channel} of "
        f"{tp.layer} most, strongest first, each {rows}×{cols} pixels (the cell's receptive "
        f"field) outlined in orange on its image, labelled with the filter's response: "
        f"{values}.",
    )
    images = len({p.image_index for p in tp.patches})
    st.caption(
        f"The {len(tiles)} places in {source} where filter {tp.channel} of {tp.layer} "
        f"responds most (from {images} different image{'s' * (images != 1)}), strongest "
        f"first, labelled with its response. The orange box is what one cell of the map sees "
        f"(its {rows}×{cols}-pixel receptive field, cut at the image's edge); around it, as "
        f"much of the image again on each side."
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
    show_patches(tp, images)
