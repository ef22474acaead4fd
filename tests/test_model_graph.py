"""cnnlib.models.graph and cnnlib.models.keras_config: every layer kind against Keras itself.

For each kind a small Keras model is made with Keras' own API and saved; its config.json is
translated into a ``ModelSpec``, whose summary (shapes, parameters, weight shapes) must be
what Keras computes, whose weight groups must be where Keras wrote the weights, and whose
build must predict exactly like the original once the original's weights are assigned.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from cnnlib.core.errors import InvalidModelError
from cnnlib.models.graph import (
    ACTIVATION_NAMES,
    CONSTRAINTS,
    GRAPH_KINDS,
    INITIALIZER_NAMES,
    REGULARIZERS,
    assign_weights,
    build_from_graph,
    graph_from_stack,
    snake_case,
    spec_from_dict,
    summarize_graph,
)
from cnnlib.models.keras_config import (
    check_declared_shapes,
    spec_from_keras_config,
    weight_groups,
)
from cnnlib.models.layers import caffe_preprocess_layer
from cnnlib.models.presets import MNIST_PRESETS, preset_stack
from cnnlib.models.stack import build_from_stack, stack_param_count
from cnnlib.uploads.model_files import keras_settings

L = keras.layers
IMAGE = (12, 10, 3)

#: kind → (layer factory, input shape); merge kinds get two branches of the input.
ONE_INPUT = {
    "Conv2D": (
        lambda: L.Conv2D(
            6,
            (3, 2),
            strides=(2, 1),
            padding="same",
            groups=3,
            activation="relu6",
            kernel_regularizer="l2",
            bias_constraint="non_neg",
        ),
        IMAGE,
    ),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False), IMAGE),
    "SeparableConv2D": (lambda: L.SeparableConv2D(5, 3, dilation_rate=2, activation="gelu"), IMAGE),
    "Dense": (lambda: L.Dense(7, activation="softmax", kernel_initializer="he_normal"), (11,)),
    "MaxPooling2D": (lambda: L.MaxPooling2D(3, strides=2, padding="same"), IMAGE),
    "AveragePooling2D": (lambda: L.AveragePooling2D((2, 3)), IMAGE),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(keepdims=True), IMAGE),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(), IMAGE),
    "Flatten": (lambda: L.Flatten(), IMAGE),
    "Dropout": (lambda: L.Dropout(0.3, seed=4), IMAGE),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.2), IMAGE),
    "BatchNormalization": (
        lambda: L.BatchNormalization(momentum=0.9, epsilon=1.001e-5, center=False),
        IMAGE,
    ),
    "Activation": (lambda: L.Activation("swish"), IMAGE),
    "ReLU": (lambda: L.ReLU(max_value=6.0), IMAGE),
    "LeakyReLU": (lambda: L.LeakyReLU(negative_slope=0.1), IMAGE),
    "Softmax": (lambda: L.Softmax(), IMAGE),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(((0, 1), (2, 3))), IMAGE),
    "Rescaling": (lambda: L.Rescaling(1 / 127.5, offset=-1), IMAGE),
    "CaffePreprocess": (lambda: caffe_preprocess_layer("caffe"), IMAGE),
    "RandomFlip": (lambda: L.RandomFlip("horizontal", seed=1), IMAGE),
    "RandomRotation": (lambda: L.RandomRotation(0.1, fill_mode="constant"), IMAGE),
    "RandomZoom": (lambda: L.RandomZoom((-0.2, 0.1), 0.1), IMAGE),
    "RandomTranslation": (lambda: L.RandomTranslation(0.1, 0.2), IMAGE),
    "RandomContrast": (lambda: L.RandomContrast(0.2, value_range=(0, 255)), IMAGE),
    "RandomBrightness": (lambda: L.RandomBrightness(0.1), IMAGE),
}
MERGES = {
    "Add": L.Add,
    "Multiply": L.Multiply,
    "Average": L.Average,
    "Concatenate": L.Concatenate,
}


def keras_file(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.keras"
        model.save(path)
        return path.read_bytes()


def parts(data: bytes) -> tuple[dict, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("config.json")), zf.read("model.weights.h5")


def model_of(kind: str) -> keras.Model:
    inputs = keras.Input(IMAGE if kind in MERGES else ONE_INPUT[kind][1], name="x")
    if kind in MERGES:
        a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
        b = L.Conv2D(4 if kind != "Concatenate" else 2, 1, name="b")(inputs)
        out = MERGES[kind](name="merge")([a, b])
    else:
        out = ONE_INPUT[kind][0]()(inputs)
    return keras.Model(inputs, out, name="one")


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Weights that are not Keras' initial ones (BatchNormalization's variance positive)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))


def h5_arrays(h5: bytes, spec, summary) -> list[np.ndarray]:
    with h5py.File(io.BytesIO(h5), "r") as f:
        return [
            f[g.group][str(i)][()]
            for g in weight_groups(spec, summary)
            for i in range(len(g.row.weight_shapes))
        ]


def test_every_kind_is_tested_here():
    assert set(GRAPH_KINDS) == set(ONE_INPUT) | set(MERGES)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*ONE_INPUT, *MERGES])
def test_each_kind_is_summarized_built_and_loaded_like_keras(kind):
    model = model_of(kind)
    randomize(model)
    config, h5 = parts(keras_file(model))
    parsed = spec_from_keras_config(config)
    summary = summarize_graph(parsed.spec)
    check_declared_shapes(parsed, summary)
    assert summary.params == model.count_params()
    ours = {r.name: r for r in summary.rows}
    for layer in model.layers[1:]:
        assert ours[layer.name].output_shape == tuple(layer.output.shape[1:]), layer.name
        assert ours[layer.name].weight_shapes == tuple(tuple(w.shape) for w in layer.weights)
    rebuilt = build_from_graph(spec_from_dict(json.loads(json.dumps(parsed.spec.to_dict()))))
    assert rebuilt.count_params() == model.count_params()
    assert [type(x).__name__ for x in rebuilt.layers] == [type(x).__name__ for x in model.layers]
    assign_weights(rebuilt, summary, h5_arrays(h5, parsed.spec, summary))
    x = np.random.default_rng(1).uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(
        rebuilt(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5
    )


def test_names_of_weights_are_keras_snake_case():
    from keras.src.utils.naming import to_snake_case

    for kind in [*GRAPH_KINDS, "Functional", "Sequential", "InputLayer"]:
        assert snake_case(kind) == to_snake_case(kind), kind


def test_allow_lists_name_keras_built_ins():
    for name in ACTIVATION_NAMES:
        assert callable(keras.activations.get(name)), name
    for name in INITIALIZER_NAMES.values():
        assert keras.initializers.get(name) is not None, name
    for class_name, keys in REGULARIZERS.items():
        assert set(keys) <= set(getattr(keras.regularizers, class_name)().get_config())
    for class_name, keys in CONSTRAINTS.items():
        assert set(keys) <= set(getattr(keras.constraints, class_name)().get_config())


def test_nested_functional_and_sequential_models():
    """A backbone as a nested functional model and augmentation as a nested Sequential,
    as the own-images page builds them: weights found under Keras' nested names."""
    inner_in = keras.Input((16, 16, 3), name="inner_in")
    y = L.Conv2D(4, 3, strides=2, name="c1")(inner_in)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(6.0, name="relu")(y)
    z = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.Add(name="add")([y, z])
    backbone = keras.Model(inner_in, y, name="backbone")
    augment = keras.Sequential([L.RandomFlip("horizontal")], name="augment")
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = augment(inputs)
    x = L.Rescaling(1 / 255, name="scale")(x)
    x = backbone(x, training=False)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, L.Dense(3, activation="softmax", name="out")(x), name="outer")
    randomize(model, 2)
    config, h5 = parts(keras_file(model))
    parsed = spec_from_keras_config(config)
    summary = summarize_graph(parsed.spec)
    check_declared_shapes(parsed, summary)
    assert summary.params == model.count_params()
    groups = [g.group for g in weight_groups(parsed.spec, summary)]
    assert groups == [
        "layers/functional/layers/conv2d/vars",
        "layers/functional/layers/batch_normalization/vars",
        "layers/functional/layers/depthwise_conv2d/vars",
        "layers/dense/vars",
    ]
    rebuilt = build_from_graph(parsed.spec)
    assert [x.name for x in rebuilt.layers] == [x.name for x in model.layers]
    assert isinstance(rebuilt.get_layer("backbone"), keras.Model)
    assign_weights(rebuilt, summary, h5_arrays(h5, parsed.spec, summary))
    x = np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(
        rebuilt(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("preset", list(MNIST_PRESETS))
def test_editor_stacks_are_graphs_with_the_same_counts(preset):
    stack = preset_stack(preset)
    spec = graph_from_stack(stack)
    assert summarize_graph(spec).params == stack_param_count(stack)
    ours, theirs = build_from_graph(spec), build_from_stack(stack)
    assert [x.name for x in ours.layers] == [x.name for x in theirs.layers]
    assert ours.count_params() == theirs.count_params()


def test_augmentation_stack_is_a_graph():
    from cnnlib.models.stack import LayerSpec

    stack = [
        LayerSpec.random_flip(),
        LayerSpec.random_rotation(0.2),
        LayerSpec.random_zoom(),
        LayerSpec.random_translation(),
        LayerSpec.random_contrast(),
        LayerSpec.rescaling(),
        LayerSpec.conv2d(4, 3),
        LayerSpec.global_average_pooling(),
        LayerSpec.dense(10, activation="softmax"),
    ]
    theirs = build_from_stack(stack)
    ours = build_from_graph(graph_from_stack(stack))
    assert [x.get_config() for x in ours.layers if x.name.startswith("random")] == [
        {**x.get_config(), "seed": None} for x in theirs.layers if x.name.startswith("random")
    ]


# --------------------------------------------------------------------------------------------
# Refusals: the spec's own JSON and Keras' config
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[keras.Model, dict]:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="input"),
            L.Conv2D(2, 3, name="conv"),
            L.Flatten(name="flat"),
            L.Dense(3, activation="softmax", name="dense"),
        ],
        name="small",
    )
    return model, parts(keras_file(model))[0]


def dense_of(config: dict) -> dict:
    return config["config"]["layers"][-1]


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: dense_of(c)["config"].update(lora_rank=4), "lora_rank"),
        (
            lambda c: dense_of(c)["config"].update(quantization_config={"mode": "int8"}),
            "quantization_config",
        ),
        (lambda c: dense_of(c).update(shared_object_id=7), "shared_object_id"),
        (
            lambda c: dense_of(c).update(build_config={"input_shape": [None, 10**8]}),
            "declares the input shape",
        ),
        (lambda c: dense_of(c)["config"].update(activation="set_floatx"), "built-in activation"),
        (
            lambda c: dense_of(c)["config"].update(
                activation={"class_name": "__numpy__", "config": {"value": [1], "dtype": "float16"}}
            ),
            "built-in activation",
        ),
        (
            lambda c: dense_of(c)["config"].update(
                activation={
                    "module": "keras.config",
                    "class_name": "function",
                    "config": "set_floatx",
                    "registered_name": "function",
                }
            ),
            "built-in activation",
        ),
        (lambda c: dense_of(c)["config"].update(kernel_initializer="orthogonal"), "initializers"),
        (
            lambda c: dense_of(c)["config"].update(
                kernel_regularizer={"module": "evil", "class_name": "L2", "config": {"l2": 0.1}}
            ),
            "built-in regularizer",
        ),
        (lambda c: dense_of(c)["config"].update(units=2_000_000_000), "units"),
        (lambda c: dense_of(c)["config"].update(units=True), "units"),
        (
            lambda c: c["config"]["layers"][0]["config"].update(batch_input_shape=[None, 8, 8, 1]),
            "both batch_shape and batch_input_shape",
        ),
        (
            lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, None, None, 1]),
            "open size",
        ),
        (lambda c: c["config"]["layers"][1]["config"].update(dtype="float64"), "dtype"),
        (lambda c: c["config"]["layers"][1]["config"].update(padding="causal"), "padding"),
        (
            lambda c: c["config"]["layers"][1]["config"].update(data_format="channels_first"),
            "channels_last",
        ),
        (
            lambda c: c["config"]["layers"][1].update(class_name="Lambda"),
            "Lambda layer runs Python code",
        ),
        (
            lambda c: c["config"]["layers"][1].update(class_name="Conv3D"),
            "CNN Lab opens models made of these layers",
        ),
        (lambda c: c["config"]["layers"][1].update(module="evil.layers"), "custom code"),
        (  # text from the file is shown verbatim (a code span), never as a link
            lambda c: c["config"]["layers"][1].update(class_name="[x](https://evil.example)"),
            r"is a `\[x\]\(https://evil\.example\)`\. CNN Lab opens",
        ),
        (lambda c: c["config"]["layers"][1].update(registered_name="evil>Conv2D"), "custom code"),
        (
            lambda c: c["config"].update(build_input_shape=[None, 9, 9, 1]),
            "unknown|two different|does not match",
        ),
        (lambda c: c.update(build_config={"input_shape": [None, 4000, 4000, 1]}), "build_config"),
    ],
)
def test_config_tricks_are_refused(small, change, words):
    _, config = small
    config = json.loads(json.dumps(config))
    change(config)
    with pytest.raises(InvalidModelError, match=words):
        parsed = spec_from_keras_config(config)
        check_declared_shapes(parsed, summarize_graph(parsed.spec))


def test_genuine_config_passes(small):
    model, config = small
    parsed = spec_from_keras_config(config)
    assert summarize_graph(parsed.spec).params == model.count_params()


def test_deep_nesting_is_refused(small):
    _, config = small
    nested = json.loads(json.dumps(config))
    for i in range(6):
        wrapper = json.loads(json.dumps(config))
        layer = json.loads(json.dumps(nested))
        layer["config"]["name"] = f"nest{i}"
        wrapper["config"]["layers"] = [config["config"]["layers"][0], layer]
        nested = wrapper
    with pytest.raises(InvalidModelError, match="nested more than"):
        spec_from_keras_config(nested)


def test_functional_graph_tricks():
    inputs = keras.Input((6, 6, 2), name="in")
    a = L.Conv2D(2, 1, name="a")(inputs)
    out = L.Add(name="add")([a, inputs])
    config = parts(keras_file(keras.Model(inputs, out, name="f")))[0]
    spec_from_keras_config(config)  # genuine
    layers = config["config"]["layers"]

    def refused(edit, words):
        c = json.loads(json.dumps(config))
        edit(c["config"]["layers"])
        with pytest.raises(InvalidModelError, match=words):
            parsed = spec_from_keras_config(c)
            check_declared_shapes(parsed, summarize_graph(parsed.spec))

    assert layers[-1]["name"] == "add"
    refused(lambda ls: ls[-1]["inbound_nodes"].append(ls[-1]["inbound_nodes"][0]), "used 2 times")
    refused(lambda ls: ls.reverse(), "no input layer|not an earlier layer")
    history = ["add", 0, 0]
    refused(
        lambda ls: ls[1]["inbound_nodes"][0]["args"][0]["config"].update(keras_history=history),
        "not an earlier layer",
    )
    refused(
        lambda ls: ls[1]["inbound_nodes"][0]["args"][0]["config"].update(shape=[None, 60, 6, 2]),
        "declares the input shape",
    )
    refused(lambda ls: ls[1]["inbound_nodes"][0]["kwargs"].update(mask=[1]), "mask")
    refused(lambda ls: ls[1].update(name="other"), "another name")


def test_spec_json_is_checked_again():
    spec = graph_from_stack(preset_stack("Intro convnet"))
    data = spec.to_dict()
    assert spec_from_dict(json.loads(json.dumps(data))) == spec
    for edit, words in [
        (lambda d: d["nodes"][1]["args"].update(filters=10**9), "filters"),
        (lambda d: d["nodes"][1]["args"].update(evil=1), "evil"),
        (lambda d: d["nodes"][1].update(kind="Lambda"), "CNN Lab opens"),
        (lambda d: d["nodes"][1].update(inputs=["dense_1"]), "not an earlier layer"),
        (lambda d: d.update(input_shape=[None, 28, 1]), "open input size"),
        (lambda d: d["nodes"][2].update(name="conv2d_1"), "two layers named"),
        (lambda d: d.update(extra=1), "not laid out"),
    ]:
        changed = json.loads(json.dumps(data))
        edit(changed)
        with pytest.raises(InvalidModelError, match=words):
            spec_from_dict(changed)


def test_budgets_are_checked_while_summarizing():
    spec = graph_from_stack(preset_stack("Dense baseline"))
    with pytest.raises(InvalidModelError, match="more than 1,000 parameters"):
        summarize_graph(spec, max_params=1000)
    with pytest.raises(InvalidModelError, match="activations for one image"):
        summarize_graph(spec, max_activation_bytes=1000)


def test_building_and_running_keeps_keras_settings():
    before = keras_settings()
    model = build_from_graph(graph_from_stack(preset_stack("Fast convnet (default)")))
    model(np.zeros((1, 28, 28, 1), "float32"))
    assert keras_settings() == before
