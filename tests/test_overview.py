"""cnnlib.inspect.overview: the layer graph against Keras' own graph, every node's maps
against the feature-map viewer's activations, one Conv2D cell's arithmetic against the
model's output, and the DOT text."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import features, overview


def _mnist_like():
    import keras

    keras.utils.set_random_seed(0)  # the same weights each run (a box shrink's mean drifts)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv_a"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(6, 3, activation="relu", name="conv_b"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, activation="softmax", name="predictions"),
        ],
        name="mnist_like",
    )


def _branches():
    import keras

    x = keras.Input((12, 12, 3), name="pixels")
    a = keras.layers.Conv2D(4, 3, padding="same", name="left")(x)
    b = keras.layers.Conv2D(4, 1, name="right")(x)
    s = keras.layers.Add(name="sum")([a, b])
    g = keras.layers.GlobalAveragePooling2D(name="gap")(s)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(g)
    return keras.Model(x, out)


def test_sequential_graph_passes_preprocessing_through():
    model = _mnist_like()
    graph = overview.layer_graph(model)
    names = [n.name for n in graph]
    assert names[1:] == ["conv_a", "pool", "conv_b", "flat", "predictions"]
    assert graph[0].kind == "Input" and graph[0].output_shape == (28, 28, 1)
    assert graph[1].inputs == (names[0],)  # Rescaling is skipped: the input feeds conv_a
    for node in graph[1:]:
        assert node.output_shape == tuple(model.get_layer(node.name).output.shape[1:])
        assert (
            node.layers == (node.name,) and node.kind == type(model.get_layer(node.name)).__name__
        )
    assert [n.inputs for n in graph[2:]] == [("conv_a",), ("pool",), ("conv_b",), ("flat",)]


def test_functional_graph_has_the_branches():
    graph = {n.name: n for n in overview.layer_graph(_branches())}
    assert set(graph) == {"pixels", "left", "right", "sum", "gap", "predictions"}
    assert graph["left"].inputs == ("pixels",) and graph["right"].inputs == ("pixels",)
    assert graph["sum"].inputs == ("left", "right")
    assert graph["gap"].output_shape == (4,)


def _blocky():
    """Layers with VGG-style block names, and a head without."""
    import keras

    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Conv2D(4, 3, padding="same", name="block1_conv1"),
            L.Conv2D(4, 3, padding="same", name="block1_conv2"),
            L.MaxPooling2D(name="block1_pool"),
            L.Conv2D(8, 3, padding="same", name="block2_conv1"),
            L.MaxPooling2D(name="block2_pool"),
            L.Flatten(name="flatten"),
            L.Dense(3, activation="softmax", name="predictions"),
        ]
    )


def test_blocks_become_one_node_each():
    model = _blocky()
    graph = overview.layer_graph(model)
    assert [(n.name, n.kind) for n in graph[1:]] == [
        ("block1", "Block"),
        ("block2", "Block"),
        ("flatten", "Flatten"),
        ("predictions", "Dense"),
    ]
    assert graph[1].layers == ("block1_conv1", "block1_conv2", "block1_pool")
    assert graph[1].output_shape == (8, 8, 4) and graph[2].inputs == ("block1",)
    assert graph[3].inputs == ("block2",)
    flat = overview.layer_graph(model, by_block=False)
    assert [n.name for n in flat[1:]][:3] == ["block1_conv1", "block1_conv2", "block1_pool"]


def test_every_nodes_maps_are_its_activation():
    model = _mnist_like()
    x = np.random.default_rng(0).uniform(0, 255, (28, 28, 1)).astype(np.float32)
    ov = overview.network_overview(model, x, maps=3, thumb_px=16)
    acts = features.FeatureExtractor(model).run(x)
    assert [n.name for n in ov.nodes] == [n.name for n in overview.layer_graph(model)]
    assert ov.edges == tuple((s, n.name) for n in ov.nodes for s in n.node.inputs)
    first = ov.nodes[0]  # the input image itself, 28 × 28 box-shrunk to 16 × 16
    assert first.maps.shape == (1, 16, 16) and (first.lo, first.hi) == (x.min(), x.max())
    for node in ov.nodes[1:]:
        act = acts[node.name]
        assert (node.lo, node.hi) == (pytest.approx(act.min()), pytest.approx(act.max()))
        if act.ndim == 1:
            np.testing.assert_allclose(node.values, act, rtol=1e-6)
            continue
        assert node.channels == tuple(np.argsort(-act.mean(axis=(0, 1)), kind="stable")[:3])
        h = act.shape[0]
        for m, c in zip(node.maps, node.channels, strict=True):
            if h <= 16:
                np.testing.assert_allclose(m, act[:, :, c], rtol=1e-6)
            else:  # conv_a is 26 × 26: box-shrunk to 16 × 16, same mean
                assert m.shape == (16, 16)
                assert m.mean() == pytest.approx(act[:, :, c].mean(), rel=0.02, abs=1e-3)
    assert ov.range == (min(n.lo for n in ov.nodes), max(n.hi for n in ov.nodes))
    assert ov.node("predictions").values.sum() == pytest.approx(1.0, abs=1e-5)
    assert not ov.by_block


def test_overview_from_activations_is_the_overview_without_a_forward_pass():
    """From the Feature-maps page's activations of every layer: the same nodes, maps and
    ranges as ``network_overview``'s own forward pass, and no second pass."""
    model = _mnist_like()
    x = np.random.default_rng(0).uniform(0, 255, (1, 28, 28, 1)).astype(np.float32)
    extractor = features.FeatureExtractor(model)
    acts = extractor.run(x)
    ov = overview.overview_from_activations(overview.layer_graph(model), acts, x, maps=4)
    assert extractor.forward_passes == 1
    direct = overview.network_overview(model, x, maps=4)
    assert ov.edges == direct.edges and ov.by_block == direct.by_block
    for a, b in zip(ov.nodes, direct.nodes, strict=True):
        assert (a.node, a.channels, a.lo, a.hi) == (b.node, b.channels, b.lo, b.hi)
        if a.maps is None:
            np.testing.assert_array_equal(a.values, b.values)
        else:
            np.testing.assert_allclose(a.maps, b.maps, rtol=1e-6)
    with pytest.raises(InvalidArgumentError):
        overview.overview_from_activations(overview.layer_graph(model), acts, x, maps=0)


def test_a_map_shrinks_by_box_averaging():
    act = np.arange(64, dtype=np.float32).reshape(8, 8, 1)
    thumb = overview._thumbnails(act, np.array([0]), 4)[0]
    expected = act[:, :, 0].reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(thumb, expected, rtol=1e-6)


def _conv_cells_model():
    import keras

    model = keras.Sequential(
        [
            keras.Input((11, 10, 4)),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(4, (3, 2), dilation_rate=2, groups=2, name="c2"),
            keras.layers.Conv2D(2, 4, padding="same", activation="sigmoid", name="c3"),
        ]
    )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["c1", "c2", "c3"])
def test_conv_cell_equals_the_models_activation(layer):
    model = _conv_cells_model()
    x = np.random.default_rng(1).normal(size=(11, 10, 4)).astype(np.float32)
    act = features.FeatureExtractor(model, [layer]).run(x)[layer]
    h, w, n = act.shape
    for row, col in [(0, 0), (h - 1, w - 1), (h // 2, 1), (0, w - 1)]:
        for f in range(n):
            cell = overview.conv_cell(model, layer, x, row, col, f)
            assert cell.value == pytest.approx(float(act[row, col, f]), abs=1e-5)
            assert cell.model_value == float(act[row, col, f])
            assert cell.total == pytest.approx(cell.per_channel.sum() + cell.bias)
            kernel = model.get_layer(layer).get_weights()[0]
            assert cell.kernel.shape == kernel.shape[:3]
    # Grouped convolution: filter 3 of c2 reads the second half of c1's 6 channels.
    cell = overview.conv_cell(model, "c2", x, 0, 0, 3)
    assert cell.first_channel == 3 and cell.patch.shape == (3, 2, 3)
    assert cell.activation == "linear" and cell.value == pytest.approx(cell.total)


def test_conv_cell_shows_the_padding_as_zeros():
    model = _conv_cells_model()
    x = np.ones((11, 10, 4), np.float32)
    cell = overview.conv_cell(model, "c1", x, 0, 0, 0)
    # 'same', stride 2 on 11 rows: 6 outputs, total padding (6-1)*2+3-11 = 2, 1 before.
    assert cell.rows == (-1, 0, 1) and cell.cols[0] == 0
    np.testing.assert_array_equal(cell.patch[0], 0.0)
    np.testing.assert_array_equal(cell.patch[1:], 1.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("nope", 0, 0, 0), "no layer"),
        (("c9", 0, 0, 0), "no layer"),
        (("c1", 6, 0, 0), "row"),
        (("c1", 0, -1, 0), "col"),
        (("c1", 0, 0, 6), "filter"),
    ],
)
def test_conv_cell_bad_arguments(args, match):
    model = _conv_cells_model()
    with pytest.raises(InvalidArgumentError, match=match):
        overview.conv_cell(model, args[0], np.zeros((11, 10, 4)), *args[1:])


def test_conv_cell_refuses_other_layers():
    model = _mnist_like()
    with pytest.raises(InvalidArgumentError, match="not a"):
        overview.conv_cell(model, "pool", np.zeros((28, 28, 1)), 0, 0, 0)


def test_architecture_dot():
    model = _branches()
    dot = overview.architecture_dot(model, rankdir="LR")
    assert dot.startswith("digraph model {") and "rankdir=LR;" in dot
    graph = overview.layer_graph(model)
    assert dot.count("[label=") == len(graph)
    assert dot.count("->") == sum(len(n.inputs) for n in graph) == 6
    assert '[label="sum\\nAdd\\n12×12×4"]' in dot
    with pytest.raises(InvalidArgumentError, match="rankdir"):
        overview.architecture_dot(model, rankdir="BT; evil")


def test_dot_labels_escape_what_a_name_could_smuggle():
    assert overview._dot_text('a"b\\c\nd\x07e') == 'a\\"b\\\\c\\nde'


def test_bad_overview_arguments():
    model = _mnist_like()
    x = np.zeros((28, 28, 1), np.float32)
    for kwargs in ({"maps": 0}, {"maps": 65}, {"thumb_px": 2}, {"thumb_px": True}):
        with pytest.raises(InvalidArgumentError):
            overview.network_overview(model, x, **kwargs)
    with pytest.raises(InvalidArgumentError, match="shape"):
        overview.network_overview(model, np.zeros((27, 28, 1)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ResNet50", "VGG19"])
def test_imagenet_networks_by_block(name):
    """ResNet50 and VGG19 (weights=None: the graph and shapes do not depend on the weights)
    by block: VGG19's five blocks, ResNet50's sixteen residual blocks joined in a chain."""
    import keras

    model = getattr(keras.applications, name)(weights=None)
    x = np.random.default_rng(0).normal(0, 50, (224, 224, 3)).astype(np.float32)
    ov = overview.network_overview(model, x, maps=4)
    names = [n.name for n in ov.nodes]
    if name == "VGG19":
        assert names[1:6] == [f"block{i}" for i in range(1, 6)]
        assert ov.node("block5").node.output_shape == (7, 7, 512)
        assert ov.node("block3").node.layers[-1] == "block3_pool"
    else:
        blocks = [n for n in names if "_block" in n]
        assert len(blocks) == 16 and blocks[0] == "conv2_block1" and blocks[-1] == "conv5_block3"
        assert ov.node("conv3_block1").node.inputs == ("conv2_block3",)
        assert ov.node("conv5_block3").node.output_shape == (7, 7, 2048)
        assert ov.node("conv2_block1").node.output_layer == "conv2_block1_out"
    for node in ov.nodes:
        if node.maps is not None:  # 4 maps (the input has 3 channels), at most 32 px a side
            assert len(node.maps) == min(4, node.node.output_shape[-1])
            assert max(node.maps.shape[1:]) <= 32
    assert ov.by_block
    assert overview.architecture_dot(model).count("[label=") == len(ov.nodes)
