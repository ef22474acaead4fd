"""The Network-overview page under AppTest: a model from the session's registry (the
tutorials' convnet on a drawn digit), an uploaded ``.keras`` file, and ResNet50 by block from
a local weights file (slow). What the page shows is checked against Keras itself: every
layer's column, the colour ranges, and one Conv2D cell's arithmetic (the layer's input patch
and kernel read from the model, its output from a Keras sub-model). A click on the overview
writes the session keys that the keyboard's widgets write; the browser test clicks for real
(``tests/e2e/test_network_overview.py``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnlib.core.text import shape_text
from cnnlib.inspect import features as F
from cnnlib.inspect import overview as O
from cnnlib.models.pretrained import RESNET50
from tests.imagenet_weights import resnet50_weights_file
from tests.pages.apptest import open_page, run_checked, values
from tests.pages.test_feature_maps import _entry, _registry
from ui import state

UPLOAD, RESNET = "Upload a .keras file", "ResNet50 (ImageNet), by block"
NETWORK = "One range for the whole network"


@pytest.fixture(scope="module")
def tutorial_model():
    from cnnlib.models import build_tutorial_convnet

    return build_tutorial_convnet(seed=0)


@pytest.fixture(scope="module")
def drawn_digit():
    digit = np.zeros((28, 28), np.float32)
    digit[5:23, 13:16] = 1.0  # a "1"
    digit[5:8, 10:13] = 1.0
    return digit


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _overview(at: AppTest) -> tuple[dict, str]:
    """(the overview figure's spec, its alt text): the chart with one image per column."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["layout"].get("images"):
            return spec, chart.proto.alt
    raise AssertionError("no overview on the page")


def _table(at: AppTest) -> dict[str, float]:
    """The cell's sum, step by step, as the page writes it."""
    text = next(m.value for m in at.markdown if m.value.startswith("| step | value |"))
    rows = [line.strip("|").split("|") for line in text.splitlines()[2:]]
    return {what.strip(): float(v) for what, v in rows}


def _keras_cell(model, layer: str, batch: np.ndarray, row: int, col: int, f: int):
    """(the layer's output at the cell, its input) by Keras sub-models, the kernel, bias."""
    import keras

    conv = model.get_layer(layer)
    out = keras.Model(model.inputs, conv.output)(batch).numpy()[0]
    inp = keras.Model(model.inputs, conv.input)(batch).numpy()[0]
    kernel, bias = conv.get_weights()
    return float(out[row, col, f]), inp, kernel, bias


@pytest.mark.slow
def test_a_registry_model_whole_network_a_layer_and_a_cell(
    tutorial_model, drawn_digit, monkeypatch
):
    model = tutorial_model
    run, passes = F.FeatureExtractor.run, []  # the page's forward passes

    def counted(self, x):
        passes.append(x.shape)
        return run(self, x)

    monkeypatch.setattr(F.FeatureExtractor, "run", counted)
    at = open_page(
        "network_overview", session={**_registry(_entry(model)), state.DRAWN_DIGIT: drawn_digit}
    )
    assert at.radio(key="ov_model_source").value.startswith("model: MNIST")
    assert at.radio(key="ov_input_mnist").value == "Digit drawn on the MNIST page"
    batch = drawn_digit[None, :, :, None] * 255.0  # the registry's models take raw pixels
    graph = O.layer_graph(model)
    acts = run(F.FeatureExtractor(model), batch)  # not counted

    # The overview: one column image per node, a click target per map, shapes written under
    # the columns, each layer's own range by default.
    spec, alt = _overview(at)
    assert len(spec["layout"]["images"]) == len(graph) == 9
    targets = spec["data"][1]["customdata"]
    assert len(targets) == 1 + 8 * 5 + 3  # input (1 channel), 5 spatial layers, 3 vectors
    below = " ".join(a["text"] for a in spec["layout"]["annotations"])
    for node in graph:
        assert node.name in alt
        assert shape_text(node.output_shape) in below
        if node.output_layer is not None:
            act = acts[node.output_layer]
            assert f"{act.min():.3g} … {act.max():.3g}" in below  # its own range
    bar = spec["data"][2]["marker"]
    assert (bar["cmin"], bar["cmax"]) == (0, 1) and "layer's highest" in bar["colorbar"]["ticktext"]

    # The layer in detail: the first Conv2D, its most active map; its grid of maps.
    first = next(n for n in graph if n.kind == "Conv2D")
    view_key = f"registry:{id(model)}"  # ui.features_session.registry_view's key
    node_key = f"ov_node_{view_key}"
    assert at.session_state[node_key] == first.name
    top = int(np.argmax(acts[first.name].mean(axis=(0, 1))))
    assert at.number_input(key=f"ov_channel_{view_key}_{first.name}").value == top
    assert any(
        "all 32 maps of 32, each 26×26" in c for img in at.get("image") for c in img.captions
    )

    # One cell by hand: the map's strongest cell, checked against Keras.
    table = _table(at)
    row = at.number_input(key=f"ov_row_{view_key}_{first.name}").value
    col = at.number_input(key=f"ov_col_{view_key}_{first.name}").value
    assert (row, col) == np.unravel_index(np.argmax(acts[first.name][:, :, top]), (26, 26))
    expected, inp, kernel, bias = _keras_cell(model, first.name, batch, row, col, top)
    assert table["the model's own output at this cell"] == pytest.approx(expected, rel=1e-5)
    assert table["relu(…) = the cell's value, by hand"] == pytest.approx(expected, rel=1e-4)
    assert table["\\+ bias"] == pytest.approx(float(bias[top]), abs=1e-7)
    by_hand = float((inp[row : row + 3, col : col + 3, :] * kernel[:, :, :, top]).sum())
    assert table["Σ patch ⊙ kernel over the 1 input channel"] == pytest.approx(by_hand, rel=1e-4)
    assert values(at.success) and "agree" in at.success[0].value

    # The keyboard's way (a click writes the same keys): the second Conv2D, channel 5, a cell
    # at the border, the input channel that is worked out square by square.
    second = [n for n in graph if n.kind == "Conv2D"][1]
    run_checked(at.selectbox(key=node_key).set_value(second.name))
    run_checked(at.number_input(key=f"ov_channel_{view_key}_{second.name}").set_value(5))
    run_checked(at.number_input(key=f"ov_row_{view_key}_{second.name}").set_value(0))
    run_checked(at.number_input(key=f"ov_col_{view_key}_{second.name}").set_value(10))
    run_checked(at.number_input(key=f"ov_in_{view_key}_{second.name}_5_0_10").set_value(7))
    expected, inp, kernel, _ = _keras_cell(model, second.name, batch, 0, 10, 5)
    table = _table(at)
    assert table["the model's own output at this cell"] == pytest.approx(expected, rel=1e-5)
    sums = (inp[0:3, 10:13, :] * kernel[:, :, :, 5]).sum(axis=(0, 1))
    assert table["Σ patch ⊙ kernel over the 32 input channels"] == pytest.approx(
        sums.sum(), rel=1e-4
    )
    said = next(m.value for m in at.markdown if m.value.startswith("Input channel 7:"))
    assert float(re.search(r"\*\*(.+?)\*\*", said).group(1)) == pytest.approx(
        sums[7], rel=1e-4, abs=1e-6
    )
    arithmetic = next(
        c for c in _charts(at) if len(c["data"]) == 3 and c["data"][0]["type"] == "heatmap"
    )
    assert arithmetic["layout"]["xaxis"]["title"]["text"] == "input patch"

    # One colour range for the whole network: the colour bar spans every layer's values.
    run_checked(at.radio(key="ov_scale").set_value(NETWORK))
    bar = _overview(at)[0]["data"][2]["marker"]
    lows = [batch.min()] + [acts[n].min() for n in acts.maps]
    highs = [batch.max()] + [acts[n].max() for n in acts.maps]
    assert (bar["cmin"], bar["cmax"]) == (pytest.approx(min(lows)), pytest.approx(max(highs)))
    run_checked(at.segmented_control(key="ov_maps").set_value(4))
    assert len(_overview(at)[0]["data"][1]["customdata"]) == 1 + 4 * 5 + 3
    # Every rerun above reused the page's one forward pass for this (model, image).
    assert len(passes) == 1

    # A vector layer: its units as bars with the class names.
    run_checked(at.selectbox(key=node_key).set_value(graph[-1].name))
    bars = [c["data"][0] for c in _charts(at) if c["data"][0]["type"] == "bar"]
    assert bars and bars[0]["x"] == [str(d) for d in range(10)]

    # The architecture graph: the model's DOT text.
    at.session_state["ov_tab"] = "Architecture graph"
    run_checked(at)
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot == O.architecture_dot(model)
    assert not [t for t in at.toggle if t.key == "ov_every_layer"]  # no blocks to open


def test_an_uploaded_keras_file(tutorial_model, drawn_digit):
    from cnnlib.training.trainer import save_model_bytes

    at = open_page("network_overview", session={state.DRAWN_DIGIT: drawn_digit})
    assert at.radio(key="ov_model_source").value == UPLOAD  # nothing in the registry yet
    assert any("Upload a `.keras` file" in i.value for i in at.info)
    uploader = at.file_uploader(key="ov_model_upload")
    run_checked(uploader.set_value(("bad.keras", b"not a model", "application/octet-stream")))
    assert any("“`bad.keras`”" in e.value for e in at.error)  # the Feature maps' helper
    assert not at.get("plotly_chart")
    good = ("mine.keras", save_model_bytes(tutorial_model), "application/octet-stream")
    run_checked(at.file_uploader(key="ov_model_upload").set_value(good))
    assert not at.error
    spec, alt = _overview(at)
    assert len(spec["layout"]["images"]) == 9 and alt.startswith("Network overview of mine")
    assert values(at.success)  # the first Conv2D's strongest cell, by hand = by the model


@pytest.mark.slow
def test_resnet50_by_block(monkeypatch):
    """ResNet50 (random weights from a local file, said on the page) by block: 25 columns in
    two rows, conv1_conv's 7×7×3 cell by hand, a residual block's Conv2D layers, and the
    architecture with every layer (the skip connections)."""
    monkeypatch.setenv(RESNET50.env_var, str(resnet50_weights_file()))
    at = open_page("network_overview")
    run_checked(at.radio(key="ov_model_source").set_value(RESNET))
    assert any("not** Keras' official ImageNet" in w.value for w in at.warning)
    spec, alt = _overview(at)
    assert len(spec["layout"]["images"]) == 25
    assert "conv3_block4 (Block, 28×28×512" in alt
    node_key = "ov_node_resnet50"
    assert at.session_state[node_key] == "conv1_conv"
    table = _table(at)
    assert table["linear(…) = the cell's value, by hand"] == pytest.approx(
        table["the model's own output at this cell"], rel=1e-4, abs=1e-4
    )
    assert any("7×7 kernel" in m.value and "3 input channels" in m.value for m in at.markdown)
    assert any("float16" in c.value for c in at.caption)  # the map's storage, said
    # A residual block: its maps, and a cell of one of its four Conv2D layers.
    run_checked(at.selectbox(key=node_key).set_value("conv3_block1"))
    assert any("This block is 12 layers" in c.value for c in at.caption)
    convs = at.selectbox(key="ov_conv_resnet50")
    assert convs.options == [
        "conv3_block1_1_conv",
        "conv3_block1_2_conv",
        "conv3_block1_0_conv",
        "conv3_block1_3_conv",
    ]
    table = _table(at)
    assert table["linear(…) = the cell's value, by hand"] == pytest.approx(
        table["the model's own output at this cell"], rel=1e-4, abs=1e-4
    )
    at.session_state["ov_tab"] = "Architecture graph"
    run_checked(at)
    assert at.get("graphviz_chart")[0].proto.spec.count("[label=") == 25
    run_checked(at.toggle(key="ov_every_layer").set_value(True))
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.count("[label=") == 177  # the input and every viewable layer
    assert dot.count("->") > 176  # the shortcuts of the residual blocks
