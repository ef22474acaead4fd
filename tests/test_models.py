"""MNIST presets and layer stacks: summaries against the models Keras builds.

Keras' own ``count_params()`` and layer output shapes are the reference for every number
``summarize_stack`` computes without TensorFlow.
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from cnnlib.core.errors import InvalidModelError
from cnnlib.models import (
    MNIST_PRESETS,
    PRESET_TRAINING,
    LayerSpec,
    build_from_stack,
    build_tutorial_convnet,
    preset_stack,
    stack_multiply_adds,
    stack_param_count,
    summarize_stack,
)
from tests.conftest import ROOT

keras = pytest.importorskip("keras")


def assert_summary_matches_keras(specs, model, input_shape=(28, 28, 1), num_classes=10):
    rows = summarize_stack(specs, input_shape, num_classes, max_params=None)
    assert len(model.layers) == len(rows)
    for row, layer in zip(rows, model.layers, strict=True):
        assert layer.name == row.name
        assert tuple(layer.output.shape[1:]) == row.output_shape, row.name
        assert layer.count_params() == row.params, (row.name, row.formula)
        assert f"= {row.params:,}" in row.formula or row.formula.startswith("0 ")
    assert sum(r.params for r in rows) == model.count_params()


def test_tutorial_convnet_has_the_tutorials_counts():
    model = build_tutorial_convnet()
    assert model.count_params() == 93_322
    before_flatten = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            break
        before_flatten += layer.count_params()
    assert before_flatten == 55_744
    rows = summarize_stack(preset_stack("Tutorial convnet"))
    # The model owns its rescaling: raw pixels 0…255 in, Rescaling(1/255) first.
    assert rows[0].name == "rescaling_1" and rows[0].params == 0
    assert rows[0].description == "Rescaling ×1/255"
    assert rows[1].output_shape == (26, 26, 32)
    assert rows[1].formula == "(3·3·1 + 1)·32 = 320"
    assert rows[1].shape_formula == "⌊(28 − 3)/1⌋ + 1 = 26"
    flatten = next(i for i, r in enumerate(rows) if r.kind == "Flatten")
    assert sum(r.params for r in rows[:flatten]) == 55_744
    assert rows[flatten].output_shape == (576,)


@pytest.mark.parametrize("name", list(MNIST_PRESETS))
def test_every_preset_summary_equals_the_built_model(name):
    model = MNIST_PRESETS[name]()
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert isinstance(model.layers[0], keras.layers.Rescaling)
    assert model.layers[0].scale == pytest.approx(1 / 255)
    assert not model.compiled
    assert_summary_matches_keras(preset_stack(name), model)
    assert set(PRESET_TRAINING[name]) >= {"optimizer", "learning_rate", "batch_size", "epochs"}


def _random_stack(rng: random.Random) -> list[LayerSpec]:
    specs: list[LayerSpec] = []
    if rng.random() < 0.5:  # augmentation, then (sometimes) an explicit Rescaling
        specs += rng.sample(
            [
                LayerSpec.random_flip(rng.choice(["horizontal", "vertical"])),
                LayerSpec.random_rotation(0.1),
                LayerSpec.random_zoom(0.2),
                LayerSpec.random_translation(0.1),
                LayerSpec.random_contrast(0.3),
            ],
            rng.randint(1, 3),
        )
    if rng.random() < 0.5:
        specs.append(LayerSpec.rescaling(1 / 127.5, -1.0))
    for _ in range(rng.randint(1, 4)):
        specs.append(
            LayerSpec.conv2d(
                rng.choice([1, 4, 8]),
                rng.choice([1, 2, 3, 5]),
                strides=rng.choice([1, 1, 2, 3]),
                padding=rng.choice(["valid", "same"]),
                activation=rng.choice(["relu", "tanh", "linear"]),
            )
        )
        if rng.random() < 0.5:
            specs.append(
                LayerSpec.max_pool(
                    rng.choice([2, 3]),
                    strides=rng.choice([None, 1, 2]),
                    padding=rng.choice(["valid", "same"]),
                )
            )
        if rng.random() < 0.3:
            specs.append(rng.choice([LayerSpec.batch_norm(), LayerSpec.dropout(0.1)]))
    specs.append(rng.choice([LayerSpec.flatten(), LayerSpec.global_average_pooling()]))
    if rng.random() < 0.5:
        specs += [LayerSpec.dense(rng.choice([3, 16])), LayerSpec.batch_norm()]
    specs.append(LayerSpec.dense(7, activation="softmax"))
    return specs


def test_multiply_adds_per_image():
    # Tutorial: 26·26·32·9 + 11·11·64·288 + 3·3·64·576 + 576·64 + 64·10.
    assert stack_multiply_adds(preset_stack("Tutorial convnet")) == 2_794_240
    rows = summarize_stack(preset_stack("Fast convnet (default)"))
    assert rows[1].multiply_adds == 14 * 14 * 32 * 9 and rows[2].multiply_adds == 0
    fast = stack_multiply_adds(preset_stack("Fast convnet (default)"))
    assert fast < stack_multiply_adds(preset_stack("Tutorial convnet")) / 1.5


def test_random_valid_stacks_match_keras():
    rng = random.Random(20261122)
    checked = 0
    for _ in range(200):
        specs = _random_stack(rng)
        input_shape = (rng.choice([9, 17, 28]), rng.choice([9, 17, 28]), rng.choice([1, 3]))
        try:
            summarize_stack(specs, input_shape, num_classes=7)
        except InvalidModelError as err:
            assert "would reach 0" in str(err)
            continue
        assert_summary_matches_keras(
            specs, build_from_stack(specs, input_shape, num_classes=7), input_shape, 7
        )
        checked += 1
        if checked == 12:
            break
    assert checked == 12


def _message(specs, **kwargs) -> str:
    with pytest.raises(InvalidModelError) as err:
        summarize_stack(specs, **kwargs)
    return str(err.value)


def test_a_spatial_size_reaching_zero_names_the_layer():
    specs = [
        LayerSpec.conv2d(8, 3),  # 26
        LayerSpec.max_pool(2),  # 13
        LayerSpec.conv2d(8, 5, strides=2),  # 5
        LayerSpec.max_pool(2),  # 2
        LayerSpec.conv2d(8, 3),  # does not fit
        LayerSpec.flatten(),
        LayerSpec.dense(10, activation="softmax"),
    ]
    message = _message(specs)
    assert message.startswith("Layer 5 (Conv2D 8 × 3×3, relu)")
    assert "2×2" in message and "reach 0" in message
    with pytest.raises(InvalidModelError, match="Layer 5"):
        build_from_stack(specs)  # validated before anything is built


def test_dense_on_an_image_tensor_names_the_layer():
    message = _message([LayerSpec.conv2d(4, 3), LayerSpec.dense(10, activation="softmax")])
    assert message.startswith("Layer 2 (Dense 10, softmax)")
    assert "26×26×4" in message and "Flatten" in message


def test_conv_after_flatten_names_the_layer():
    message = _message(
        [LayerSpec.flatten(), LayerSpec.conv2d(4, 3), LayerSpec.dense(10, activation="softmax")]
    )
    assert message.startswith("Layer 2 (Conv2D") and "flat vector of 784" in message


@pytest.mark.parametrize(
    "last",
    [LayerSpec.dense(5, activation="softmax"), LayerSpec.dense(10), LayerSpec.dropout(0.2)],
)
def test_the_output_layer_must_be_dense_10_softmax(last):
    message = _message([LayerSpec.flatten(), LayerSpec.dense(32), last])
    assert message.startswith("Layer 3 (") and "Dense(10, softmax)" in message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (LayerSpec.conv2d(0, 3), "filters"),
        (LayerSpec.conv2d(8, 3, strides=0), "stride"),
        (LayerSpec.conv2d(8, 3, padding="full"), "padding"),
        (LayerSpec.conv2d(8, 3, activation="gelu?"), "activation"),
        (LayerSpec.dropout(1.0), "dropout rate"),
        (LayerSpec("Conv3D"), "unknown kind"),
    ],
)
def test_bad_layer_settings_are_refused(spec, fragment):
    message = _message([spec, LayerSpec.flatten(), LayerSpec.dense(10, activation="softmax")])
    assert message.startswith("Layer 1") and fragment in message


def test_empty_and_oversized_stacks_are_refused():
    assert "empty" in _message([])
    huge = [LayerSpec.flatten(), LayerSpec.dense(4096), LayerSpec.dense(10, activation="softmax")]
    message = _message(huge, input_shape=(64, 64, 3))
    assert message.startswith("Layer 2 (Dense 4096, relu)") and "parameters" in message
    assert stack_param_count(huge, (64, 64, 3)) == (64 * 64 * 3 + 1) * 4096 + 4097 * 10


def test_spec_dicts_round_trip_and_presets_are_fresh_copies():
    for spec in preset_stack("Dropout convnet"):
        assert LayerSpec(**spec.to_dict()) == spec
    stack = preset_stack("Tutorial convnet")
    stack.pop()
    assert len(preset_stack("Tutorial convnet")) == len(stack) + 1
    with pytest.raises(InvalidModelError, match="Unknown preset"):
        preset_stack("ResNet")


def test_seeded_builds_start_from_the_same_weights():
    specs = preset_stack("Fast convnet (default)")
    a, b = build_from_stack(specs, seed=5), build_from_stack(specs, seed=5)
    c = build_from_stack(specs, seed=6)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_summaries_do_not_import_tensorflow():
    code = (
        "import sys; from cnnlib.models import summarize_stack, preset_stack;"
        "rows = summarize_stack(preset_stack('Tutorial convnet'));"
        "assert sum(r.params for r in rows) == 93322;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_registry_kind_is_complete_and_round_trips():
    from cnnlib.models import LAYER_KINDS, LAYER_REGISTRY

    assert set(LAYER_KINDS) >= {
        "Rescaling",
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
        "GlobalAveragePooling2D",
    }
    for kind in LAYER_KINDS:
        entry = LAYER_REGISTRY[kind]
        spec = LayerSpec.new(kind)
        assert spec.kind == kind and LayerSpec(**spec.to_dict()) == spec
        for param in entry.params:  # the defaults are valid values
            assert param.problem(param.value(spec)) is None, (kind, param.name)
        assert spec.describe().startswith(kind) and entry.note


def test_new_kinds_build_the_keras_layers_they_describe():
    specs = [
        LayerSpec.random_flip("horizontal_and_vertical"),
        LayerSpec.random_rotation(0.2),
        LayerSpec.random_zoom(0.3),
        LayerSpec.random_translation(0.1),
        LayerSpec.random_contrast(0.4),
        LayerSpec.rescaling(1 / 127.5, -1.0),
        LayerSpec.conv2d(4, 3),
        LayerSpec.global_average_pooling(),
        LayerSpec.dense(3, activation="softmax"),
    ]
    model = build_from_stack(specs, (20, 24, 3), 3, seed=0)
    assert_summary_matches_keras(specs, model, (20, 24, 3), 3)
    rows = summarize_stack(specs, (20, 24, 3), 3)
    assert rows[5].description == "Rescaling ×1/127.5 − 1"  # explicit: none is added
    assert rows[7].output_shape == (4,) and rows[8].params == (4 + 1) * 3
    flip, rotation, zoom, shift, contrast, rescale = model.layers[:6]
    assert flip.mode == "horizontal_and_vertical" and rotation.factor == (-0.2, 0.2)
    assert zoom.height_factor == 0.3 and shift.width_factor == 0.1
    assert contrast.factor == (0.4, 0.4) and rescale.offset == -1.0  # contrast × 0.6…1.4
    # Augmentation acts only in training: at inference the output is the rescaled input.
    x = np.random.default_rng(0).integers(0, 256, (2, 20, 24, 3)).astype(np.float32)

    def first_six(training):
        out = x
        for layer in model.layers[:6]:
            out = layer(out, training=training)
        return np.asarray(out)

    np.testing.assert_allclose(first_six(False), x / 127.5 - 1, atol=1e-5)
    assert not np.allclose(first_six(True), x / 127.5 - 1, atol=1e-3)


def test_takes_raw_pixels_tells_app_models_from_older_ones():
    from cnnlib.models import takes_raw_pixels

    assert takes_raw_pixels(build_tutorial_convnet())
    older = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    assert not takes_raw_pixels(older)
    inputs = keras.Input((28, 28, 1))
    wrapped = keras.Model(inputs, build_tutorial_convnet()(inputs))  # a nested backbone
    assert takes_raw_pixels(wrapped)


def test_new_kinds_are_checked():
    assert "flat vector" in _message(
        [
            LayerSpec.flatten(),
            LayerSpec.global_average_pooling(),
            LayerSpec.dense(10, activation="softmax"),
        ]
    )
    assert "rotation factor" in _message(
        [
            LayerSpec.random_rotation(0.9),
            LayerSpec.flatten(),
            LayerSpec.dense(10, activation="softmax"),
        ]
    )
    assert "flip mode" in _message(
        [
            LayerSpec.random_flip("diagonal"),
            LayerSpec.flatten(),
            LayerSpec.dense(10, activation="softmax"),
        ]
    )
