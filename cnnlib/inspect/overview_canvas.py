"""Where the network overview goes on one canvas, and each column's image (pure NumPy/PIL).

``canvas(overview, tile_px=…)`` places the nodes of an ``Overview`` left to right, one
column per node, in rows when there are many (ResNet50's 25 blocks and layers: two rows):
a spatial node's maps stacked top to bottom in ``tile_px`` squares, a vector node (Dense,
Flatten, global pooling) as one narrow strip. It returns every column's box, the centre of
each map in it (where a click lands), and the edges as polylines: from each map of a node
to each map of the next column (a convolution's output channel reads every input channel),
an arc over the columns between two nodes that are not neighbours (a skip connection), or
a path down into the next row. Canvas units are pixels of the column images; y grows
downwards.

``column_image(node, lo, hi, …)`` draws one column as one (H, W, 3) uint8 image on white:
its maps in viridis (``lo`` darkest, ``hi`` brightest), enlarged cell by cell or shrunk by
averaging to fit their squares, or its units as bands of a strip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import features
from cnnlib.inspect.overview import Overview, OverviewNode

__all__ = ["Canvas", "ColumnBox", "canvas", "column_image", "columns_per_row"]

#: White space around and between the maps of a column (canvas px).
GAP = 4
#: Space between two rows of columns, in tiles: room for the names and shapes written there.
BAND_GAP = 5


@dataclass(frozen=True)
class ColumnBox:
    """One node's column on the canvas: ``left``, ``top``, ``width``, ``height`` (canvas px)
    in row ``band`` of the canvas; ``centers``: the y of each drawn map's centre, top to
    bottom (a vector strip: its middle), with ``channels`` the channel drawn there (empty for
    a strip)."""

    name: str
    band: int
    left: float
    top: float
    width: float
    height: float
    centers: tuple[float, ...]
    channels: tuple[int, ...]

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def center_x(self) -> float:
        return self.left + self.width / 2

    @property
    def middle_y(self) -> float:
        return self.top + self.height / 2


@dataclass(frozen=True)
class Canvas:
    """The overview laid out: ``columns`` in node order, in rows (``bands``: (top, bottom) of
    each, canvas px, left to right then top to bottom, as text reads); ``edges`` as polylines
    of (x, y) points; the canvas ``width`` × ``height`` (arcs of skip connections in the first
    row go above y = 0, up to ``-arc_room``); ``tile_px`` the side of each map's square."""

    columns: tuple[ColumnBox, ...]
    bands: tuple[tuple[float, float], ...]
    edges: tuple[tuple[tuple[float, float], ...], ...]
    width: float
    height: float
    tile_px: int
    arc_room: float


def _column_height(n_maps: int, tile_px: int) -> int:
    return n_maps * (tile_px + GAP) + GAP


def columns_per_row(n: int, most: int = 14) -> int:
    """Columns in each row: all ``n`` when they fit in ``most``, else as few rows of at most
    ``most - 1`` as hold them, filled evenly (25 → 13 + 12; 40 → 4 × 10)."""
    if n <= most:
        return max(n, 1)
    rows = -(-n // (most - 1))
    return -(-n // rows)


def canvas(
    ov: Overview, *, tile_px: int = 40, spacing: int | None = None, per_row: int | None = None
) -> Canvas:
    """Lay out ``ov`` (see the module's docstring): columns ``tile_px + 2·GAP`` wide,
    ``spacing`` apart (default: one tile), each centred on its row's middle line;
    ``per_row`` columns a row (default ``columns_per_row``), rows ``BAND_GAP`` tiles apart
    (room for the names and shapes written between them)."""
    if isinstance(tile_px, bool) or not 4 <= tile_px <= 256:
        raise InvalidArgumentError(f"tile_px must be from 4 to 256, got {tile_px!r}.")
    spacing = tile_px if spacing is None else spacing
    per_row = per_row or columns_per_row(len(ov.nodes))
    width = tile_px + 2 * GAP
    spatial = [len(n.maps) for n in ov.nodes if n.maps is not None]
    band_h = float(_column_height(max(spatial, default=1), tile_px))
    gap_y = BAND_GAP * tile_px
    n_bands = -(-len(ov.nodes) // per_row)
    bands = tuple((b * (band_h + gap_y), b * (band_h + gap_y) + band_h) for b in range(n_bands))
    columns = []
    for i, node in enumerate(ov.nodes):
        band, j = divmod(i, per_row)
        left, band_top = j * (width + spacing), bands[band][0]
        if node.maps is not None:
            h = _column_height(len(node.maps), tile_px)
            top = band_top + (band_h - h) / 2
            centers = tuple(
                top + GAP + k * (tile_px + GAP) + tile_px / 2 for k in range(len(node.maps))
            )
            box = ColumnBox(node.name, band, left, top, width, h, centers, node.channels)
        else:
            strip = tile_px / 2 + 2 * GAP
            middle = (band_top + band_h / 2,)
            box = ColumnBox(
                node.name, band, left + (width - strip) / 2, band_top, strip, band_h, middle, ()
            )
        columns.append(box)
    index = {c.name: i for i, c in enumerate(columns)}
    edges: list[tuple[tuple[float, float], ...]] = []
    arc_room = 0.0
    for src, dst in ov.edges:
        a, b = columns[index[src]], columns[index[dst]]
        if a.band != b.band:  # down the gap between the rows, then into the next column
            y = bands[a.band][1] + gap_y / 2
            x0, x1 = a.right + spacing / 2, b.left - spacing / 2
            edges.append(
                (
                    (a.right, a.middle_y),
                    (x0, a.middle_y),
                    (x0, y),
                    (x1, y),
                    (x1, b.middle_y),
                    (b.left, b.middle_y),
                )
            )
        elif index[dst] == index[src] + 1:
            edges += [((a.right, ya), (b.left, yb)) for ya in a.centers for yb in b.centers]
        else:  # a skip connection: an arc over the columns between
            lift = tile_px / 2 + GAP * abs(index[dst] - index[src])
            top = bands[a.band][0] - lift
            if a.band == 0:
                arc_room = max(arc_room, lift)
            edges.append(
                ((a.center_x, a.top), (a.center_x, top), (b.center_x, top), (b.center_x, b.top))
            )
    total = min(len(columns), per_row) * (width + spacing) - spacing
    height = bands[-1][1] if bands else band_h
    return Canvas(
        tuple(columns), bands, tuple(edges), float(total), float(height), tile_px, arc_room
    )


def column_image(
    node: OverviewNode, lo: float, hi: float, *, tile_px: int, height: int | None = None
) -> np.ndarray:
    """One column of the overview (see the module's docstring) as (H, W, 3) uint8 on white.

    Spatial nodes: H = n·(tile_px + GAP) + GAP, W = tile_px + 2·GAP, the maps in the order
    of ``node.channels``, non-square maps centred in their square. Vector nodes: a strip
    ``tile_px / 2`` wide inside ``GAP`` of white, ``height`` tall (default ``tile_px``), one
    band per unit from the top (units averaged where there are more units than pixels).
    """
    if node.maps is not None:
        n, h, w = node.maps.shape
        out = np.full((_column_height(n, tile_px), tile_px + 2 * GAP, 3), 255, np.uint8)
        scale = tile_px / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
        for k, m in enumerate(node.maps):
            fitted = np.asarray(Image.fromarray(np.float32(m), mode="F").resize(size, resample))
            y0 = GAP + k * (tile_px + GAP) + (tile_px - size[1]) // 2
            x0 = GAP + (tile_px - size[0]) // 2
            out[y0 : y0 + size[1], x0 : x0 + size[0]] = features.colorize(fitted, lo, hi)
        return out
    values = np.asarray(node.values, dtype=np.float32)
    rows = max(1, int(height or tile_px) - 2 * GAP)
    strip_w = max(1, tile_px // 2)
    resample = Image.Resampling.NEAREST if rows >= len(values) else Image.Resampling.BOX
    band = np.asarray(Image.fromarray(values[:, None], mode="F").resize((1, rows), resample))
    out = np.full((rows + 2 * GAP, strip_w + 2 * GAP, 3), 255, np.uint8)
    out[GAP : GAP + rows, GAP : GAP + strip_w] = features.colorize(band, lo, hi)
    return out
