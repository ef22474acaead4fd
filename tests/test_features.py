"""cnnlib.inspect.features: layers, one-pass activations, stats, grids, filters, receptive fields.

References are independent of the code under test: ``cnnlib.conv.ops`` for convolutions,
Keras' own ``model.summary`` for shapes, receptive fields computed by hand (and ResNet50's
483 px, published in Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnlib.conv import ops as conv
from cnnlib.core.errors import InvalidArgumentError, InvalidModelError
from cnnlib.inspect import features as F

keras = pytest.importorskip("keras")

EDGE = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=np.float32)


class CallCounter(keras.layers.Layer):
    """Identity layer that counts how often it runs (eagerly)."""

    calls = 0

    def call(self, x):
        type(self).calls += 1
        return x


def tiny_model():
    """(8, 8, 1) → Conv2D(2, 3×3, fixed kernels, no bias) → ReLU → MaxPool → Flatten → Dense."""
    inp = keras.Input((8, 8, 1))
    x = CallCounter(name="counter")(inp)
    x = keras.layers.Conv2D(2, 3, use_bias=False, name="conv")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(3, activation="softmax", name="scores")(x)
    model = keras.Model(inp, out)
    kernel = np.stack([EDGE, EDGE.T], axis=-1)[:, :, None, :]  # (3, 3, 1, 2)
    model.get_layer("conv").set_weights([kernel])
    return model


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.random((8, 8, 1), dtype=np.float32)


# ------------------------------------------------------------------ layers and activations


def test_layers_match_model_summary(tiny):
    lines: list[str] = []
    tiny.summary(print_fn=lambda line, **_: lines.append(line))
    text = "\n".join(lines)
    layers = F.list_layers(tiny)
    assert [info.name for info in layers] == ["counter", "conv", "relu", "pool", "flat", "scores"]
    for info in layers:
        row = next(line for line in text.splitlines() if f"{info.name} (" in line)
        assert "(None, " + ", ".join(map(str, info.output_shape)) + ")" in row
    conv_info = layers[1]
    assert (conv_info.kind, conv_info.output_shape, conv_info.params) == ("Conv2D", (6, 6, 2), 18)
    assert conv_info.has_filters and conv_info.spatial and conv_info.channels == 2
    assert conv_info.label == "conv · Conv2D · 6×6×2"
    assert layers[-1].output_shape == (3,) and not layers[-1].spatial
    assert F.default_layer(layers) == "relu"  # the first maps after a ReLU
    assert F.default_layer(layers[:2]) == "conv"
    # Zeros mean "switched off by a ReLU" only after one.
    assert [info.relu for info in layers] == [False, False, True, False, False, False]


def test_activations_equal_hand_convolution_from_one_forward_pass(tiny, image):
    ex = F.FeatureExtractor(tiny)
    CallCounter.calls = 0
    acts = ex.run(image)
    assert ex.forward_passes == 1 and CallCounter.calls == 1
    kernel = tiny.get_layer("conv").get_weights()[0]
    expected = conv.conv2d(image, kernel)
    np.testing.assert_allclose(acts["conv"], expected, atol=1e-5)
    np.testing.assert_allclose(acts["relu"], conv.relu(expected), atol=1e-5)
    np.testing.assert_allclose(acts["pool"], conv.max_pool2d(conv.relu(expected), 2), atol=1e-5)
    # Every layer (and the scores) came from that one pass; reading them runs nothing.
    for name in ex.layer_names:
        assert acts[name].dtype == np.float32
    scores = F.output_scores(tiny, acts)
    assert scores is not None and scores.probabilities and scores.layer == "scores"
    np.testing.assert_allclose(scores.values, tiny.predict(image[None], verbose=0)[0], atol=1e-5)
    assert CallCounter.calls == 2  # the predict above, not the extractor
    assert ex.forward_passes == 1


def test_extractor_for_a_layer_subset_and_bad_inputs(tiny, image):
    ex = F.FeatureExtractor(tiny, ["relu", "pool"])
    acts = ex.run(image[None])
    assert set(acts.maps) == {"relu", "pool"}
    assert F.output_scores(tiny, acts) is None
    with pytest.raises(InvalidArgumentError, match="8×8×1"):
        ex.run(np.zeros((28, 28, 1), np.float32))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        ex.run(np.full((8, 8, 1), np.nan, np.float32))
    with pytest.raises(InvalidArgumentError, match="nope"):
        F.FeatureExtractor(tiny, ["nope"])
    with pytest.raises(InvalidArgumentError, match="No activation"):
        acts["conv"]


class FailsWhenRun(keras.layers.Layer):
    """Identity while the model is built; raises like a broken custom layer once ``fail``."""

    fail = False

    def call(self, x):
        if type(self).fail:
            raise RuntimeError("custom layer broke")
        return x


def test_a_model_failing_on_the_input_raises_the_projects_error(image):
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Conv2D(2, 3, name="conv")(FailsWhenRun(name="odd")(inp))
    ex = F.FeatureExtractor(keras.Model(inp, out))
    FailsWhenRun.fail = True
    try:
        with pytest.raises(InvalidModelError, match="could not run on this image") as caught:
            ex.run(image)
    finally:
        FailsWhenRun.fail = False
    message = str(caught.value)
    assert "RuntimeError" in message and "custom layer broke" in message
    assert "\x1b[" not in message and "Arguments received" not in message  # no Keras noise
    assert ex.forward_passes == 0


def test_a_model_the_viewer_cannot_open_raises_the_projects_error(tiny, monkeypatch):
    extractor, fields = F.open_model(tiny)
    assert extractor.layer_names == tuple(i.name for i in F.list_layers(tiny))
    assert set(extractor.layer_names) <= set(fields)

    def broken(model):
        raise KeyError("inbound_nodes")  # what Keras raises for a graph it cannot walk

    monkeypatch.setattr(F, "model_receptive_fields", broken)
    with pytest.raises(InvalidModelError, match=r"cannot open this model \(KeyError: "):
        F.open_model(tiny)


def test_unbuilt_model_is_refused():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(InvalidModelError, match="not been built"):
        F.list_layers(model)


def test_logit_outputs_are_not_called_probabilities(image):
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(4, name="logits")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    scores = F.output_scores(model, F.FeatureExtractor(model).run(image))
    assert scores is not None and not scores.probabilities and scores.values.shape == (4,)


# ------------------------------------------------------------------ statistics, order, pages


def test_channel_stats_order_top_and_pages():
    act = np.zeros((2, 2, 3), np.float32)
    act[:, :, 0] = [[0.0, 1.0], [2.0, 3.0]]  # mean 1.5, one zero of four
    act[:, :, 1] = 5.0  # mean 5
    act[:, :, 2] = [[-1.0, 0.0], [0.0, 0.0]]  # mean -0.25, three zeros
    stats = F.channel_stats(act)
    np.testing.assert_allclose(stats.min, [0, 5, -1])
    np.testing.assert_allclose(stats.max, [3, 5, 0])
    np.testing.assert_allclose(stats.mean, [1.5, 5, -0.25])
    np.testing.assert_allclose(stats.zero_fraction, [0.25, 0, 0.75])
    assert stats.of(2) == F.MapStats(-1.0, 0.0, -0.25, 0.75)
    assert stats.layer_range == (-1.0, 5.0)
    assert F.top_channel(stats) == 1
    assert F.channel_order(stats).tolist() == [1, 0, 2]
    assert F.channel_order(stats, by="index").tolist() == [0, 1, 2]
    order = np.arange(10)
    assert F.page_of(order, 0, 4)[0].tolist() == [0, 1, 2, 3]
    assert F.page_of(order, 2, 4) == (pytest.approx(np.array([8, 9])), 3)
    with pytest.raises(InvalidArgumentError, match="Page 4"):
        F.page_of(order, 3, 4)
    vector = F.channel_stats(np.array([0.0, 2.0], np.float32))
    np.testing.assert_allclose(vector.zero_fraction, [1.0, 0.0])


# ------------------------------------------------------------------ colours and grids


def test_colorize_and_activation_grid():
    lo_colour, hi_colour = F.colorize(np.array([0.0, 1.0]), 0.0, 1.0)
    assert tuple(lo_colour) == (68, 1, 84) and tuple(hi_colour) == (253, 231, 37)
    assert tuple(F.colorize(np.array(0.0), -1.0, 1.0, "diverging")) == (247, 247, 247)
    flat = F.colorize(np.ones((2, 2)), 1.0, 1.0)
    assert (flat == np.array([68, 1, 84])).all()

    act = np.zeros((4, 4, 3), np.float32)
    act[:, :, 0] = np.arange(16).reshape(4, 4)  # ramp 0..15
    act[:, :, 1] = np.arange(16).reshape(4, 4) / 15.0  # same ramp, 15× smaller

    def rgb(image):
        return np.asarray(image.convert("RGB"))

    per_map = rgb(F.activation_grid(act, [0, 1], columns=2, tile_px=8, labels=False))
    shared = rgb(F.activation_grid(act, [0, 1], scale="shared", columns=2, tile_px=8, labels=False))
    assert per_map.shape == shared.shape == (3 + 8 + 3, 3 + 2 * (8 + 3), 3)
    # Each 4×4 map is enlarged cell by cell: 2×2 pixels per cell; the corners are the ramp's
    # ends, the darkest and brightest viridis colours.
    assert tuple(per_map[3, 3]) == (68, 1, 84) and tuple(per_map[10, 10]) == (253, 231, 37)
    np.testing.assert_array_equal(per_map[3:5, 3:5], np.broadcast_to(per_map[3, 3], (2, 2, 3)))
    tile = slice(3, 11)
    left, right = (slice(3, 11), slice(14, 22))
    # Per map: both ramps span the full colour scale; shared: the small one stays dark.
    np.testing.assert_array_equal(per_map[tile, left], per_map[tile, right])
    assert shared[tile, right].mean() < shared[tile, left].mean()
    labelled = F.activation_grid(act, [2, 0, 1], columns=3, tile_px=16)
    assert labelled.mode == "P" and labelled.height > 16 + 6
    png = F.to_png(labelled)
    assert Image.open(io.BytesIO(png)).size == labelled.size
    # Maps larger than the tile are shrunk by averaging: a 2×2 checkerboard of 0/1 blocks on
    # a 4×4 map shown in 2×2 pixels averages each 2×2 block exactly.
    big = np.zeros((4, 4, 1), np.float32)
    big[:2, :2] = big[2:, 2:] = 1.0
    shrunk = rgb(F.activation_grid(big, [0], tile_px=2, labels=False))[3:5, 3:5]
    assert tuple(shrunk[0, 0]) == (253, 231, 37) and tuple(shrunk[0, 1]) == (68, 1, 84)
    with pytest.raises(InvalidArgumentError):
        F.activation_grid(np.zeros(4), [0])


# ------------------------------------------------------------------ filters


def test_filters_first_layer_and_one_filter(tiny):
    assert F.conv_layer_names(tiny) == ["conv"] and F.first_conv_layer(tiny) == "conv"
    fw = F.filter_weights(tiny, "conv", 1)
    np.testing.assert_array_equal(fw.kernel[:, :, 0], EDGE.T)
    assert fw.bias is None and fw.stats.min == -2.0 and fw.stats.max == 2.0
    with pytest.raises(InvalidArgumentError, match="2 filters"):
        F.filter_weights(tiny, "conv", 2)
    with pytest.raises(InvalidArgumentError, match="not a Conv2D"):
        F.filter_weights(tiny, "pool", 0)
    grid = F.filter_grid(F.layer_kernel(tiny, "conv"), columns=2, tile_px=9, labels=False)
    assert grid.shape == (3 + 9 + 3, 3 + 2 * 12, 3)
    one = F.weight_grid(fw.kernel, tile_px=9, labels=False)
    assert one.shape == (15, 15, 3)


def test_strongest_input_channel_of_a_filter():
    kernel = np.zeros((3, 3, 4), np.float32)
    kernel[:, :, 1] = 0.5  # sum of |w| = 4.5
    kernel[0, 0, 3] = -5.0  # sum of |w| = 5: negative weights count by their size
    fw = F.FilterWeights(layer="conv", index=0, kernel=kernel, bias=None)
    assert fw.strongest_channel == 3


def test_colour_filters_swap_bgr_to_rgb():
    kernel = np.zeros((1, 1, 3, 1), np.float32)
    kernel[0, 0, 0, 0] = 1.0  # weight on input channel 0: blue in a BGR network
    rgb_view = F.filter_grid(kernel, tile_px=1, labels=False, bgr=False)[3, 3]
    bgr_view = F.filter_grid(kernel, tile_px=1, labels=False, bgr=True)[3, 3]
    assert tuple(rgb_view) == (255, 128, 128)  # channel 0 shown as red
    assert tuple(bgr_view) == (128, 128, 255)  # the same weight shown as blue


# ------------------------------------------------------------------ receptive fields


def test_receptive_field_chain_by_hand():
    g = F.Geometry
    fields = F.receptive_field_chain(
        [g((3, 3)), g((2, 2), (2, 2)), g((3, 3), dilation=(2, 2)), g((1, 5), (1, 1))]
    )
    # 3 → +1·1 = 4 (jump 2) → +2·2·2 = 12 → rows +0, cols +4·2 = 20
    assert [f.size for f in fields] == [(3, 3), (4, 4), (12, 12), (12, 20)]
    assert [f.jump for f in fields] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert fields[-1].label == "12×20 px" and fields[0].label == "3 px"
    assert fields[2].describe((28, 28)) == "12 px"
    assert fields[2].describe((10, 10)) == "12 px, more than the whole 10×10 image"


def test_receptive_fields_of_a_branching_graph():
    g = F.Geometry
    graph = [
        ("in", g(), []),
        ("stem", g((3, 3), (2, 2)), ["in"]),  # 3, jump 2
        ("a", g((3, 3)), ["stem"]),  # 3 + 2·2 = 7
        ("b", g(), ["stem"]),  # 1×1 shortcut: 3
        ("add", g(), ["a", "b"]),  # union: 7
        ("up", None, ["add"]),  # unknown
        ("after_up", g((3, 3)), ["up"]),
        ("flat", F.GLOBAL, ["add"]),
    ]
    fields = F.receptive_fields(graph, input_size=(32, 32))
    assert fields["add"].size == (7, 7) and fields["add"].jump == (2, 2)
    assert fields["up"] is None and fields["after_up"] is None
    assert fields["flat"].whole_input and fields["flat"].size == (32, 32)
    assert fields["flat"].label == "the whole image"


def test_tutorial_convnet_stages_and_receptive_fields():
    from cnnlib.models import build_tutorial_convnet

    model = build_tutorial_convnet(seed=0)
    layers = F.list_layers(model)
    fields = F.model_receptive_fields(model)
    stages = F.stage_layers(layers)
    # conv 3 → pool 4 (jump 2) → conv 4 + 2·2 = 8 → pool 10 (jump 4) → conv 10 + 2·4 = 18
    sizes = [next(i for i in layers if i.name == s).output_shape[:2] for s in stages]
    assert sizes == [(26, 26), (13, 13), (11, 11), (5, 5), (3, 3)]
    assert [fields[s].size[0] for s in stages] == [3, 4, 8, 10, 18]
    assert [info.relu for info in layers if info.kind == "Conv2D"] == [True, True, True]
    assert fields[layers[-1].name].whole_input

    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = 1.0
    acts = F.FeatureExtractor(model).run(F.digit_input(digit, (28, 28, 1)))
    steps = F.spatial_hierarchy(acts, layers, fields)
    assert [s.size for s in steps] == sizes
    for step in steps:
        stats = acts.stats(step.layer)
        assert step.channel == F.top_channel(stats)
        np.testing.assert_array_equal(step.map, acts[step.layer][:, :, step.channel])


@pytest.fixture(scope="module")
def vgg19_small():
    return keras.applications.VGG19(weights=None, include_top=False, input_shape=(64, 64, 3))


@pytest.mark.slow
def test_vgg19_blocks_receptive_fields(vgg19_small, image):
    layers = F.list_layers(vgg19_small)
    fields = F.model_receptive_fields(vgg19_small)
    stages = F.stage_layers(layers)
    assert stages == [
        "block1_conv2",
        "block2_conv2",
        "block3_conv4",
        "block4_conv4",
        "block5_conv4",
        "block5_pool",
    ]
    # Block 1: 3, 5; pool 6 (jump 2); block 2: 10, 14; pool 16 (jump 4); block 3: 24 … 48;
    # pool 52 (jump 8); block 4: 68 … 116; pool 124 (jump 16); block 5: 156 … 252; pool 268.
    assert [fields[s].size[0] for s in stages] == [5, 14, 48, 116, 252, 268]
    assert fields["block5_pool"].jump == (32, 32)
    kernel = F.layer_kernel(vgg19_small, F.first_conv_layer(vgg19_small))
    assert kernel.shape == (3, 3, 3, 64)
    assert F.filter_grid(kernel, bgr=True, columns=16, tile_px=24).shape[2] == 3


@pytest.mark.slow
def test_vgg19_hierarchy_on_a_small_image(vgg19_small):
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8))
    acts = F.FeatureExtractor(vgg19_small).run(F.image_input(photo, (64, 64, 3)) * 255 - 120)
    steps = F.spatial_hierarchy(acts, F.list_layers(vgg19_small), {})
    assert [s.size for s in steps] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert all(s.receptive_field is None for s in steps)


@pytest.mark.slow
def test_resnet50_layers_receptive_fields_and_compact_activations():
    model = keras.applications.ResNet50(weights=None)
    layers = F.list_layers(model)
    kinds = {info.kind for info in layers}
    assert {"Conv2D", "BatchNormalization", "Activation", "Add", "MaxPooling2D"} <= kinds
    add = next(info for info in layers if info.name == "conv2_block1_add")
    assert add.output_shape == (56, 56, 256)
    fields = F.model_receptive_fields(model)
    expected = {
        "conv1_relu": 7,
        "pool1_pool": 11,
        "conv2_block3_out": 35,
        "conv3_block4_out": 99,
        "conv4_block6_out": 291,
        "conv5_block3_out": 483,  # Araujo et al. (Distill 2019): ResNet-50, 483 px
    }
    assert {name: fields[name].size[0] for name in expected} == expected
    assert F.stage_layers(layers) == [
        "conv1_relu",
        "conv2_block3_out",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_out",
    ]
    ex = F.FeatureExtractor(model)
    x = np.random.default_rng(2).normal(0, 50, (1, 224, 224, 3)).astype(np.float32)
    acts = ex.run(x)
    assert ex.forward_passes == 1
    assert acts.maps["conv1_conv"].dtype == np.float16  # 148 MB in float32: stored compact
    reference = keras.Model(model.input, model.get_layer("conv1_conv").output)(x)
    np.testing.assert_allclose(acts["conv1_conv"], np.asarray(reference)[0], rtol=2e-3, atol=2e-3)
    steps = F.spatial_hierarchy(acts, layers, fields)
    assert [s.size for s in steps] == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert [s.receptive_field.size[0] for s in steps] == [7, 35, 99, 291, 483]
    scores = F.output_scores(model, acts)
    assert scores is not None and scores.probabilities and scores.values.shape == (1000,)


# ------------------------------------------------------------------ inputs


def test_digit_and_image_inputs():
    digit = np.zeros((28, 28), np.float32)
    digit[10:18, 10:18] = 1.0
    x = F.digit_input(digit, (28, 28, 1))
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, :, 0], digit)
    big = F.digit_input(digit, (56, 56, 3))
    assert big.shape == (1, 56, 56, 3) and np.allclose(big[..., 0], big[..., 2])
    rgb = F.digit_to_image(digit)
    assert rgb.mode == "RGB" and rgb.size == (28, 28) and rgb.getpixel((14, 14)) == (255,) * 3
    photo = Image.new("RGB", (40, 30), (255, 0, 0))
    gray = F.image_input(photo, (16, 16, 1))
    assert gray.shape == (1, 16, 16, 1) and np.allclose(gray, 76 / 255, atol=1 / 255)
    colour = F.image_input(photo, (8, 8, 3))
    assert colour.shape == (1, 8, 8, 3) and np.allclose(colour[0, 0, 0], [1, 0, 0])
    with pytest.raises(InvalidArgumentError, match="4-channel"):
        F.image_input(photo, (8, 8, 4))


def test_preprocessing_layers_are_not_listed_and_inputs_follow_the_model():
    """A model that scales its own input takes raw pixels; its Rescaling and augmentation
    layers are not feature maps."""
    import keras

    from cnnlib.models import takes_raw_pixels

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Conv2D(2, 3, name="conv"),
        ]
    )
    assert [info.name for info in F.list_layers(model)] == ["conv"]
    assert takes_raw_pixels(model)
    digit = np.full((28, 28), 0.5, np.float32)
    raw = F.digit_input(digit, (8, 8, 1), raw_pixels=True)
    scaled = F.digit_input(digit, (8, 8, 1))
    np.testing.assert_allclose(raw, scaled * 255.0, rtol=1e-6)
    photo = Image.new("RGB", (4, 4), (255, 0, 0))
    assert F.image_input(photo, (4, 4, 3), raw_pixels=True).max() == 255.0
    assert F.image_input(photo, (4, 4, 3)).max() == 1.0


def test_a_transfer_model_with_a_shared_nested_backbone_opens():
    """An own-images transfer model: CaffePreprocess → backbone (a nested model, here shared
    by two models as ``cnnlib.training.transfer.assemble`` shares one) → pooling → classes. The
    backbone's maps are its call in THIS model's graph, equal to running it by hand."""
    import keras

    from cnnlib.training.transfer import caffe_preprocess_layer

    inner = keras.Input((16, 16, 3))
    backbone = keras.Model(inner, keras.layers.Conv2D(4, 3, activation="relu")(inner), name="bb")

    def assemble(classes: int):
        pixels = keras.Input((16, 16, 3))
        x = backbone(caffe_preprocess_layer()(pixels), training=False)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.Model(pixels, keras.layers.Dense(classes, activation="softmax")(x))

    assemble(2)  # another model on the same backbone
    model = assemble(3)
    extractor, fields = F.open_model(model)
    assert [(i.name, i.output_shape) for i in extractor.layers][:2] == [
        ("bb", (14, 14, 4)),
        ("pool", (4,)),
    ]  # the preprocessing layer is not a feature map
    x = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    acts = extractor.run(x)
    bgr = x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(acts["bb"], np.asarray(backbone(bgr))[0], rtol=1e-5, atol=1e-4)
    assert fields["bb"] is None  # inside a backbone: not worked out, shown as unknown
