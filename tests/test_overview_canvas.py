"""cnnlib.inspect.overview_canvas: where the overview's columns, maps and edges go, and each
column's pixels, against hand-made overviews (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import features
from cnnlib.inspect.overview import GraphNode, Overview, OverviewNode
from cnnlib.inspect.overview_canvas import GAP, canvas, column_image, columns_per_row


def _node(name, inputs, maps=None, values=None, shape=None):
    rng = np.random.default_rng(len(name))
    if maps is not None:
        n, h, w = maps
        arr = rng.uniform(0, 1, (n, h, w)).astype(np.float32)
        shape = shape or (h, w, n + 2)
        g = GraphNode(name, "Conv2D", shape, (name,), inputs)
        return OverviewNode(g, arr, tuple(range(n)), None, float(arr.min()), float(arr.max()))
    vec = rng.uniform(0, 1, values).astype(np.float32)
    g = GraphNode(name, "Dense", (values,), (name,), inputs)
    return OverviewNode(g, None, (), vec, float(vec.min()), float(vec.max()))


def _chain(n_spatial: int, maps: int = 3) -> Overview:
    nodes = [_node("input", (), maps=(1, 8, 8))]
    for i in range(n_spatial):
        nodes.append(_node(f"c{i}", (nodes[-1].name,), maps=(maps, 6, 6)))
    nodes.append(_node("out", (nodes[-1].name,), values=10))
    edges = tuple((s, n.name) for n in nodes for s in n.node.inputs)
    return Overview(tuple(nodes), edges, False)


def test_columns_stand_side_by_side_with_every_map_inside_its_column():
    ov = _chain(3, maps=4)
    cv = canvas(ov, tile_px=20)
    assert [c.name for c in cv.columns] == [n.name for n in ov.nodes]
    assert len(cv.bands) == 1 and cv.height == 4 * (20 + GAP) + GAP
    for a, b in zip(cv.columns, cv.columns[1:], strict=False):
        assert b.left >= a.right + 20 - 1e-9  # one tile of room for the edges
    for col, node in zip(cv.columns, ov.nodes, strict=True):
        assert col.top >= 0 and col.top + col.height <= cv.height
        assert col.middle_y == pytest.approx(cv.height / 2)  # centred on the middle line
        if node.maps is None:
            assert col.channels == () and col.centers == (cv.height / 2,)
            continue
        assert col.channels == node.channels and len(col.centers) == len(node.maps)
        assert all(col.top + 10 <= y <= col.top + col.height - 10 for y in col.centers)
        assert np.all(np.diff(col.centers) == 20 + GAP)
    assert cv.width == 5 * (20 + 2 * GAP + 20) - 20  # 5 columns, 4 gaps of one tile
    assert cv.columns[-1].right <= cv.width


def test_edges_join_every_map_to_every_map_of_the_next_column():
    ov = _chain(2, maps=3)  # input (1 map) → c0 (3) → c1 (3) → out (strip)
    cv = canvas(ov, tile_px=16)
    assert len(cv.edges) == 1 * 3 + 3 * 3 + 3 * 1
    columns = {c.name: c for c in cv.columns}
    for (x0, y0), (x1, y1) in cv.edges:
        left = next(c for c in cv.columns if c.right == x0)
        right = next(c for c in cv.columns if c.left == x1)
        assert y0 in left.centers and y1 in right.centers
    assert columns["out"].centers[0] in {e[1][1] for e in cv.edges}


def test_a_skip_connection_arcs_over_the_columns_between():
    nodes = list(_chain(2).nodes)
    add = _node("add", ("c1", "input"), maps=(3, 6, 6))
    nodes.insert(3, add)
    edges = [(s, n.name) for n in nodes for s in n.node.inputs if n.name != "out"]
    ov = Overview(tuple(nodes), (*edges, ("add", "out")), False)
    cv = canvas(ov, tile_px=16)
    arcs = [e for e in cv.edges if len(e) == 4]
    assert len(arcs) == 1
    start, up, over, down = arcs[0]
    assert start[0] == cv.columns[0].center_x and down[0] == cv.columns[3].center_x
    assert up[1] == over[1] == -cv.arc_room < 0  # above every column


def test_many_columns_wrap_into_rows_joined_through_the_gap():
    assert [columns_per_row(n) for n in (1, 9, 14, 15, 25, 40)] == [1, 9, 14, 8, 13, 10]
    ov = _chain(23)  # 25 nodes, as ResNet50 by block
    cv = canvas(ov, tile_px=20)
    assert len(cv.bands) == 2
    assert [c.band for c in cv.columns] == [0] * 13 + [1] * 12
    (_, bottom0), (top1, bottom1) = cv.bands
    assert top1 - bottom0 >= 4 * 20 and cv.height == bottom1
    assert cv.columns[13].left == cv.columns[0].left  # the second row starts on the left
    across = [e for e in cv.edges if len(e) == 6]
    assert len(across) == 1
    a, b = cv.columns[12], cv.columns[13]
    assert across[0][0] == (a.right, a.middle_y) and across[0][-1] == (b.left, b.middle_y)
    assert bottom0 < across[0][2][1] < top1  # through the gap between the rows


def test_column_image_draws_each_map_in_its_square():
    node = _node("c", (), maps=(2, 4, 8))  # 4 × 8 maps: 2 tiles of 16, each 8 px tall
    img = column_image(node, 0.0, 1.0, tile_px=16)
    assert img.shape == (2 * (16 + GAP) + GAP, 16 + 2 * GAP, 3) and img.dtype == np.uint8
    assert (img[:GAP] == 255).all() and (img[:, :GAP] == 255).all()  # white margins
    for k, m in enumerate(node.maps):
        y0 = GAP + k * (16 + GAP) + (16 - 8) // 2
        tile = img[y0 : y0 + 8, GAP : GAP + 16]
        expected = features.colorize(np.repeat(np.repeat(m, 2, 0), 2, 1), 0.0, 1.0)
        np.testing.assert_array_equal(tile, expected)  # each cell a 2 × 2 block, viridis
        assert (img[y0 - 1, GAP : GAP + 16] == 255).all()  # centred: white above


def test_column_image_of_a_vector_is_a_strip_of_bands():
    node = _node("d", (), values=4)
    img = column_image(
        node, float(node.values.min()), float(node.values.max()), tile_px=20, height=48
    )
    assert img.shape == (48, 10 + 2 * GAP, 3)
    strip = img[GAP : 48 - GAP, GAP]
    expected = features.colorize(node.values, node.lo, node.hi)
    for unit in range(4):  # 40 rows, 10 per unit, top to bottom
        assert (strip[unit * 10 : unit * 10 + 10] == expected[unit]).all()
    many = _node("d", (), values=1000)
    assert column_image(many, 0.0, 1.0, tile_px=20, height=48).shape == (48, 18, 3)


def test_bad_tile_size():
    with pytest.raises(InvalidArgumentError):
        canvas(_chain(1), tile_px=2)
