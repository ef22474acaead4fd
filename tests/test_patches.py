"""cnnlib.inspect.patches: receptive-field windows against the gradient's support, and the top
patches of a hand-made filter whose best patches are known."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import features, patches

#: A 3 × 3 "plus" detector: its response to a patch is the patch's dot product with it.
PLUS = np.array([[-1, 2, -1], [2, 4, 2], [-1, 2, -1]], np.float32)


def _positive_linear_models():
    """Linear models with positive kernels and average pooling: the gradient of one cell
    with respect to the input is positive exactly on the pixels that cell sees."""
    import keras

    def conv(**kw):
        return keras.layers.Conv2D(1, kernel_initializer="ones", use_bias=False, **kw)

    L = keras.layers
    chains = {
        "valid": [conv(kernel_size=3), conv(kernel_size=3, name="target")],
        "same_strided": [
            conv(kernel_size=3, padding="same"),
            L.AveragePooling2D(2),
            conv(kernel_size=3, strides=2, padding="same", name="target"),
        ],
        "even_kernel_same": [
            conv(kernel_size=4, strides=2, padding="same"),
            conv(kernel_size=2, padding="same", name="target"),
        ],
        "dilated_padded_cropped": [
            L.ZeroPadding2D(((2, 1), (0, 3))),
            conv(kernel_size=3, dilation_rate=2),
            L.Cropping2D(((1, 0), (2, 1))),
            conv(kernel_size=3, strides=(1, 2), name="target"),
        ],
    }
    models = {}
    for name, layers in chains.items():
        models[name] = keras.Sequential([keras.Input((17, 19, 1)), *layers], name=name)
    # A functional model whose branches see different fields (the union counts).
    x = keras.Input((17, 19, 1))
    a = conv(kernel_size=5, padding="same")(x)
    b = conv(kernel_size=3, strides=1, padding="same")(x)
    merged = L.Add()([a, b])
    out = conv(kernel_size=3, strides=2, padding="same", name="target")(merged)
    models["branches"] = keras.Model(x, out, name="branches")
    return models


def _gradient_box(model, row, col):
    """Bounding box (top, left, bottom, right) of the input pixels with a non-zero gradient
    of cell (row, col) of the "target" layer."""
    import keras
    import tensorflow as tf

    sub = keras.Model(model.inputs[0], model.get_layer("target").output)
    x = tf.constant(np.ones((1, 17, 19, 1), np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = sub(x)[0, row, col, 0]
    g = tape.gradient(value, x).numpy()[0, :, :, 0]
    rows, cols = np.nonzero(g > 0)
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


@pytest.mark.parametrize("name", list(_positive_linear_models()))
def test_cell_window_is_the_gradients_support(name):
    model = _positive_linear_models()[name]
    h, w = model.get_layer("target").output.shape[1:3]
    field = features.model_receptive_fields(model)["target"]
    for row, col in [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (0, w - 1), (h - 1, 1)]:
        win = patches.cell_window(model, "target", row, col)
        assert win.size == field.size  # the same field size as features' arithmetic
        c = win.clipped(17, 19)
        assert (c.top, c.left, c.bottom, c.right) == _gradient_box(model, row, col), (row, col)


def _plus_model(size: int = 20):
    import keras

    model = keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(1, 3, use_bias=False, name="plus"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.get_layer("plus").set_weights([PLUS[:, :, None, None]])
    return model


def _planted(n: int, size: int = 20, seed: int = 0):
    """n noise images (|noise| ≤ 0.01), image i with a plus of strength 1 + i planted at a
    known place: the best patch of image i is exactly there."""
    rng = np.random.default_rng(seed)
    imgs = rng.uniform(-0.01, 0.01, size=(n, size, size, 1)).astype(np.float32)
    places = [(int(rng.integers(0, size - 3)), int(rng.integers(0, size - 3))) for _ in range(n)]
    for i, (r, c) in enumerate(places):
        imgs[i, r : r + 3, c : c + 3, 0] += (1 + i) * PLUS / 10
    return imgs, places


def test_top_patches_of_a_hand_made_filter():
    model = _plus_model()
    imgs, places = _planted(12)
    shown = (imgs * 1000).astype(np.int16)  # what is shown may differ from what the model takes
    top = patches.top_patches(model, "plus", 0, imgs, images=shown)
    assert top.field == (3, 3) and top.images_searched == 12 and len(top.patches) == 9
    # The strongest plants, strongest first (strength 1 + i), one per image.
    assert [p.image_index for p in top.patches] == list(range(11, 2, -1))
    for p in top.patches:
        r, c = places[p.image_index]
        assert p.cell == (r, c) and p.window == patches.Window(r, c, r + 3, c + 3)
        np.testing.assert_array_equal(p.pixels, shown[p.image_index, r : r + 3, c : c + 3])
        assert p.activation == pytest.approx(
            float((imgs[p.image_index, r : r + 3, c : c + 3, 0] * PLUS).sum()), rel=1e-5
        )
    values = [p.activation for p in top.patches]
    assert values == sorted(values, reverse=True)


def test_several_places_in_one_image_but_not_the_same_place_twice():
    model = _plus_model()
    imgs = np.zeros((2, 20, 20, 1), np.float32)
    imgs[0, 2:5, 2:5, 0] = PLUS  # strongest
    imgs[0, 12:15, 14:17, 0] = 0.8 * PLUS
    imgs[1, 8:11, 8:11, 0] = 0.5 * PLUS
    top = patches.top_patches(model, "plus", 0, imgs, k=3)  # per_image = ⌈3 / 2⌉ = 2
    assert [(p.image_index, p.cell) for p in top.patches] == [
        (0, (2, 2)),
        (0, (12, 14)),
        (1, (8, 8)),
    ]
    # The cells beside (2, 2) respond too, but their fields overlap it by more than half.
    one = patches.top_patches(model, "plus", 0, imgs[:1], k=2, per_image=2)
    assert [p.cell for p in one.patches] == [(2, 2), (12, 14)]


def test_an_edge_patch_is_clipped_to_the_image():
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 5, padding="same", name="c")]
    )
    model.get_layer("c").set_weights([np.ones((5, 5, 1, 1), np.float32), np.zeros(1, np.float32)])
    img = np.zeros((1, 8, 8, 1), np.float32)
    img[0, 0, 0, 0] = 1.0
    top = patches.top_patches(model, "c", 0, img, k=1)
    p = top.patches[0]
    assert (
        p.window.size == (5, 5)
        and p.window.top < 0
        and p.pixels.shape[:2]
        == (
            p.window.bottom,
            p.window.right,
        )
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer": "nope"}, "no layer"),
        ({"layer": "dense"}, "no feature maps"),
        ({"channel": 1}, "channel"),
        ({"k": 0}, "k must"),
        ({"per_image": 10}, "per_image"),
        ({"inputs": np.zeros((0, 20, 20, 1))}, "N ≥ 1"),
        ({"inputs": np.zeros((2, 21, 20, 1))}, "shape"),
        ({"inputs": np.full((2, 20, 20, 1), np.nan)}, "NaN"),
        ({"images": np.zeros((3, 20, 20))}, "same 2 images"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    model = _plus_model()
    args = {"layer": "plus", "channel": 0, "inputs": np.zeros((2, 20, 20, 1), np.float32)}
    args.update(kwargs)
    if args["layer"] == "dense":
        args["layer"] = model.layers[-1].name
    with pytest.raises(InvalidArgumentError, match=match):
        patches.top_patches(
            model, args.pop("layer"), args.pop("channel"), args.pop("inputs"), **args
        )


def test_the_size_budget_is_checked_before_work(monkeypatch):
    model = _plus_model()
    monkeypatch.setattr(patches, "MAX_MAP_BYTES", 100)
    monkeypatch.setattr(patches, "_channel_function", lambda *a: pytest.fail("ran over budget"))
    with pytest.raises(InvalidArgumentError, match="fewer images"):
        patches.top_patches(model, "plus", 0, np.zeros((2, 20, 20, 1), np.float32))


def test_mnist_digits_through_the_tutorial_convnet(mnist_test_set):
    """On real digits (the tutorial convnet, initial weights): each patch is the digit's pixels
    at the window, and it is the channel's strongest response in its image."""
    import keras

    from cnnlib.models import build_tutorial_convnet

    digits, _ = mnist_test_set
    model = build_tutorial_convnet(seed=0)
    inputs = digits[:300, :, :, None].astype(np.float32)
    convs = [lyr.name for lyr in model.layers if isinstance(lyr, keras.layers.Conv2D)]
    layer = convs[1]  # the second convolution: 8 × 8 px fields
    top = patches.top_patches(model, layer, 5, inputs, images=digits[:300])
    assert top.field == (8, 8) and len({p.image_index for p in top.patches}) == 9
    acts = features.FeatureExtractor(model, [layer])
    for p in top.patches:
        a = acts.run(inputs[p.image_index])[layer][:, :, 5]
        assert p.activation == pytest.approx(float(a.max()), rel=1e-5)
        part = p.window.clipped(28, 28)
        np.testing.assert_array_equal(
            p.pixels, digits[p.image_index, part.top : part.bottom, part.left : part.right]
        )


@pytest.mark.slow
def test_resnet50_sample_photos():
    """ResNet50 (weights=None: the geometry does not depend on the weights) on the sample
    photos: each window has the receptive field's size, and the gradient of its cell is zero
    outside it (a wrong offset would put gradient outside)."""
    import keras
    import tensorflow as tf

    from cnnlib.data import samples
    from cnnlib.inspect import imagenet

    keras.utils.set_random_seed(0)  # random weights: fixed, so filter 7 is alive
    model = keras.applications.ResNet50(weights=None)
    names = samples.sample_names()[:4]
    photos = [imagenet.resize_for_model(samples.load_sample(n)) for n in names]
    shown = np.stack([np.asarray(p.convert("RGB")) for p in photos])  # (4, 224, 224, 3) uint8
    inputs = np.concatenate([imagenet.preprocess(imagenet.to_batch(p)) for p in photos])
    layer = "conv3_block1_out"
    top = patches.top_patches(model, layer, 7, inputs, images=shown)
    field = features.model_receptive_fields(model)[layer]
    assert len(top.patches) == 9 and top.field == field.size
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    assert top.patches[0].activation > 0  # the strongest cell is active: it has a gradient
    for p in [q for q in top.patches[:3] if q.activation > 0]:  # a dead cell has none
        x = tf.constant(inputs[p.image_index : p.image_index + 1])
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = sub(x)[0, p.cell[0], p.cell[1], 7]
        g = np.abs(tape.gradient(value, x).numpy()[0]).sum(-1)
        rows, cols = np.nonzero(g)
        part = p.window.clipped(224, 224)
        assert part.top <= rows.min() and rows.max() < part.bottom
        assert part.left <= cols.min() and cols.max() < part.right
        assert p.pixels.shape == (part.bottom - part.top, part.right - part.left, 3)
