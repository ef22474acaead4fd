"""The Feature-maps page under AppTest, for each model source: the session's model registry
(an MNIST model on a drawn digit, every layer; an own-images-like RGB model beside it), a
test-set digit, the quick training, uploaded .keras files (crafted and genuine), ResNet50 and
VGG19 from local weights files (random weights, so the page must say they are not
ImageNet's), and the missing-weights message. Choices survive a visit to another page; class
names and input shapes come from the registry entry.

The forward pass must run once per (model, image): reruns that only change a layer or a
display option reuse the stored activations (checked by object identity and pass counts).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnlib.core.text import safe_text
from cnnlib.inspect import features as F
from cnnlib.models.pretrained import RESNET50, VGG19_NOTOP
from cnnlib.models.registry import ModelRegistry, RegisteredModel
from tests.conftest import ROOT
from tests.imagenet_weights import resnet50_weights_file
from tests.pages.apptest import image_captions, open_page, run_checked, values
from ui import features_session as fs
from ui import state

QUICK, UPLOAD = "Quick-train a convnet", "Upload a .keras file"
RESNET, VGG = "ResNet50 (ImageNet)", "VGG19 without its classifier (ImageNet)"
MNIST_NAME = "MNIST · Tutorial convnet · 97.9 %"
SESSION = "model: " + MNIST_NAME  #: the radio's option for the registered MNIST model
DIGITS = tuple(str(d) for d in range(10))


_run = run_checked


def _entry(model, name=MNIST_NAME, class_names=DIGITS, description="", page="Train on MNIST"):
    shape = tuple(model.input_shape[1:])
    return RegisteredModel(name, model, class_names, shape, description, source_page=page)


def _registry(*entries: RegisteredModel) -> dict:
    """Session state holding a model registry with ``entries`` (the first is the newest)."""
    registry = ModelRegistry()
    for entry in reversed(entries):
        registry.add(entry)
    return {state.MODEL_REGISTRY: registry}


def _page(**session) -> AppTest:
    return open_page("feature_maps", session=session)


def _layer_box(at: AppTest):
    return next(s for s in at.selectbox if s.label.startswith("Layer ("))


def _captions(at: AppTest) -> list[str]:
    """Image captions, and the captions written beside small images."""
    return image_captions(at) + values(at.caption)


#: Every activation set the page computed in the current test, in order.
_FORWARD_PASSES: list[F.ActivationSet] = []


@pytest.fixture(autouse=True)
def _record_forward_passes(monkeypatch):
    """Record each forward pass (``FeatureExtractor.run``) the page makes: its session-scoped
    cache must make one per (model, image)."""
    run = F.FeatureExtractor.run

    def recorded(self, x):
        acts = run(self, x)
        _FORWARD_PASSES.append(acts)
        return acts

    monkeypatch.setattr(F.FeatureExtractor, "run", recorded)
    _FORWARD_PASSES.clear()
    yield
    _FORWARD_PASSES.clear()


def _acts(at: AppTest) -> F.ActivationSet:
    """The activations the page shows: those of its last forward pass."""
    return _FORWARD_PASSES[-1]


def _hierarchy(at: AppTest):
    return next(d.value for d in at.dataframe if "receptive field" in d.value.columns)


@pytest.fixture(scope="module")
def tutorial_model():
    from cnnlib.models import build_tutorial_convnet

    return build_tutorial_convnet(seed=0)


@pytest.fixture(scope="module")
def drawn_digit():
    digit = np.zeros((28, 28), np.float32)
    digit[5:23, 13:16] = 1.0  # a "1"
    return digit


@pytest.mark.slow
def test_session_model_every_layer_on_a_drawn_digit(tutorial_model, drawn_digit):
    at = _page(**_registry(_entry(tutorial_model)), **{state.DRAWN_DIGIT: drawn_digit})
    assert at.radio(key="fm_model_source").value == SESSION
    assert at.radio(key="fm_input_mnist").value == "Digit drawn on the MNIST page"
    box = _layer_box(at)
    layers = F.list_layers(tutorial_model)
    assert len(box.options) == len(layers) == 8
    assert box.options[0].endswith("Conv2D · 26×26×32") and "Dense · 10" in box.options[-1]
    # The class scores are the model's own prediction for this digit.
    expected = tutorial_model.predict(drawn_digit[None, :, :, None], verbose=0)[0]
    answer = next(m.value for m in at.markdown if m.value.startswith("**The model's answer:**"))
    assert f"answer:** {safe_text(str(int(np.argmax(expected))))} (" in answer
    acts = _acts(at)
    assert len(_FORWARD_PASSES) == 1
    # Walk through every layer: maps for spatial layers, a bar chart for vectors.
    for i, info in enumerate(layers):
        _run(_layer_box(at).select_index(i))
        if info.spatial:
            assert any(c.startswith(f"{info.name}: maps 1–") for c in _captions(at)), info.name
        else:
            charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
            bars = [c["data"][0] for c in charts if c["data"][0]["type"] == "bar"]
            assert any(len(b["x"]) == info.channels for b in bars), info.name
        stats = acts.stats(info.name)
        top = F.top_channel(stats)
        said = f"activating {'channel' if info.spatial else 'unit'}:** {top} of"
        assert any(said in m.value for m in at.markdown)
    # Display options rerun the page without another forward pass.
    _run(_layer_box(at).select_index(2))
    _run(at.radio(key="fm_order").set_value("Channel number"))
    _run(at.radio(key="fm_scale").set_value("One range for the whole layer"))
    _run(at.selectbox(key="fm_per_page").set_value(32))
    assert _acts(at) is acts and len(_FORWARD_PASSES) == 1  # no second forward pass
    # Filters: the first layer's 32 kernels, and one filter of any conv layer.
    assert any(c.startswith("Each square is one filter") for c in _captions(at))
    assert any("3×3 weights for each of its 32 input channels" in c.value for c in at.caption)
    # Spatial hierarchy: one stage per map size, receptive fields by hand: 3, 4, 8, 10, 18.
    table = _hierarchy(at)
    assert list(table["map size"]) == ["26×26", "13×13", "11×11", "5×5", "3×3"]
    assert list(table["receptive field"]) == ["3 px", "4 px", "8 px", "10 px", "18 px"]


def test_a_test_set_digit_and_an_mnist_photo(tutorial_model, mnist_dir, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    at = _page(**_registry(_entry(tutorial_model)))
    radio = at.radio(key="fm_input_mnist")
    assert radio.value == "Digit from the MNIST test set"  # nothing drawn in this session
    first = _acts(at)
    _run(at.number_input(key="fm_test_index_mnist").set_value(7))
    assert any("This digit is labelled" in c.value for c in at.caption)
    assert _acts(at) is not first and len(_FORWARD_PASSES) == 2  # a new image: one pass
    _run(radio.set_value("Photo (sample, upload or camera)"))
    assert any("MNIST-style" in c.value for c in at.caption)
    assert _layer_box(at).options


def test_a_fashion_model_gets_fashion_images_and_names(tutorial_model, fashion_dir):
    from cnnlib.data.mnist import CLASS_NAMES

    names = CLASS_NAMES["fashion_mnist"]
    at = _page(**_registry(_entry(tutorial_model, "Fashion-MNIST · Tutorial convnet", names)))
    assert at.radio(key="fm_input_mnist_fashion").value == "Image from the Fashion-MNIST test set"
    assert any("This image is labelled" in c.value for c in at.caption)
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert scores["x"] == list(names)


def test_every_registered_model_is_listed_with_its_classes_and_input(tutorial_model):
    """An MNIST model and an own-images-like RGB model (32×32×3, 3 classes, a name with
    markdown in it): both listed by (escaped) name, newest first; the RGB one gets a photo
    resized to its own input and its class names on the score bars."""
    import keras

    rgb = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu", name="own_conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    own = "Own images · *pets* [cats](http://x) · 80.0 %"
    classes = ("cat", "dog", "fox")
    session = _registry(
        _entry(rgb, own, classes, "3 folders of photos", page="Your own images"),
        _entry(tutorial_model),
    )
    at = _page(**session)
    radio = at.radio(key="fm_model_source")
    assert radio.options[:3] == [safe_text(own, 80), safe_text(MNIST_NAME, 80), QUICK]
    assert radio.value == "model: " + own  # the newest first
    assert any(c.value == safe_text("3 folders of photos", 300) for c in at.caption)
    assert any(
        c.value.startswith(f"{safe_text(own, 80)}: 3 layers, input 32×32×3") for c in at.caption
    )
    assert at.radio(key="fm_input_generic").value == "Photo (sample, upload or camera)"
    assert any("resized to 32×32, raw pixels 0…255" in c.value for c in at.caption)
    assert _acts(at)["own_conv"].shape == (30, 30, 4)  # the 32×32 input, 3×3 valid conv
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert scores["x"] == list(classes)
    answer = next(m.value for m in at.markdown if m.value.startswith("**The model's answer:**"))
    assert any(f"answer:** {safe_text(c)} (" in answer for c in classes)
    # The MNIST model from the same list: its digits and its 28×28×1 input.
    _run(radio.set_value(SESSION))
    title = f"{safe_text(MNIST_NAME, 80)}: 8 layers, input 28×28×1"
    assert any(c.value.startswith(title) for c in at.caption)
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert scores["x"] == list(DIGITS)


class _Running:
    """A stand-in for another page's training that is still running."""

    done = False


def test_quick_training_waits_for_the_sessions_other_training():
    at = _page(**{state.RUNNING_TASK: ("Train on MNIST", _Running())})
    assert at.radio(key="fm_model_source").value == QUICK  # nothing registered yet
    assert at.button(key="fm_quick_start").disabled
    assert any("Train on MNIST" in i.value for i in at.info)


@pytest.mark.slow
def test_quick_training_then_every_view(mnist_dir, monkeypatch):

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.setattr(fs, "QUICK_IMAGES", 600)
    monkeypatch.setattr(fs, "QUICK_EPOCHS", 1)
    at = _page()
    assert at.radio(key="fm_model_source").value == QUICK
    assert not [s for s in at.selectbox if s.label.startswith("Layer (")]
    _run(at.button(key="fm_quick_start").click())
    deadline = time.monotonic() + 150
    while not [s for s in at.selectbox if s.label.startswith("Layer (")]:
        assert time.monotonic() < deadline, "the quick training did not finish"
        assert not at.error, [e.value for e in at.error]
        time.sleep(0.5)
        _run(at)
    start = "Quick-trained tutorial convnet: 540 training"  # shown verbatim (a code span)
    assert any(c.value.lstrip("`").startswith(start) for c in at.caption)
    # Added to the session's registry and shown from there, under its registry name.
    entry = at.session_state[state.MODEL_REGISTRY].latest("Feature maps")
    assert entry.class_names == DIGITS and entry.input_shape == (28, 28, 1)
    assert at.radio(key="fm_model_source").value == "model: " + entry.name
    assert entry.name.startswith("MNIST · Tutorial convnet (quick) · ")
    assert len(_layer_box(at).options) == 8
    assert len(_hierarchy(at)) == 5


def _with_member(data: bytes, name: str, body: bytes) -> bytes:
    """The .keras archive ``data`` with one more member."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for member in src.namelist():
            dst.writestr(member, src.read(member))
        dst.writestr(name, body)
    return out.getvalue()


def test_uploaded_keras_files_bad_and_good(tutorial_model):
    import keras

    from cnnlib.training.trainer import save_model_bytes

    at = _page()
    _run(at.radio(key="fm_model_source").set_value(UPLOAD))
    assert any("Upload a `.keras` file" in i.value for i in at.info)
    _run(
        at.file_uploader(key="fm_model_upload").set_value(
            ("bad.keras", b"not a model", "application/octet-stream")
        )
    )
    assert any(safe_text("bad.keras") in e.value and "zip" in e.value for e in at.error)
    assert not [s for s in at.selectbox if s.label.startswith("Layer (")]
    # Crafted files are refused with a message for a learner, never an exception's name.
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    extra = _with_member(save_model_bytes(tutorial_model), "evil.py", b"import os")
    for name, data, words in [
        ("lambda.keras", save_model_bytes(lam), "Lambda layer runs Python code"),
        ("extra.keras", extra, "evil.py"),
        ("[x](http://evil).keras", b"PK junk", safe_text("[x](http://evil).keras")),
    ]:
        _run(at.file_uploader(key="fm_model_upload").set_value((name, data, "application/zip")))
        message = " ".join(e.value for e in at.error)
        assert words in message, message
        assert "Error" not in message and "Traceback" not in message
        assert not [s for s in at.selectbox if s.label.startswith("Layer (")]

    good = save_model_bytes(tutorial_model)
    _run(
        at.file_uploader(key="fm_model_upload").set_value(
            ("mine.keras", good, "application/octet-stream")
        )
    )
    assert not at.error
    assert len(_layer_box(at).options) == 8
    summary = f"{safe_text('mine.keras')}: 8 layers, input 28×28×1"
    assert any(c.value.startswith(summary) for c in at.caption)


def test_uploaded_model_without_an_image_input_is_explained():
    import keras

    from cnnlib.training.trainer import save_model_bytes

    inp = keras.Input((10,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    at = _page()
    _run(at.radio(key="fm_model_source").set_value(UPLOAD))
    _run(
        at.file_uploader(key="fm_model_upload").set_value(
            ("vector.keras", save_model_bytes(model), "application/octet-stream")
        )
    )
    assert any("fixed-size image input" in e.value for e in at.error)


@pytest.mark.slow
def test_resnet50_from_a_local_weights_file(monkeypatch):
    monkeypatch.setenv(RESNET50.env_var, str(resnet50_weights_file()))
    at = _page()
    _run(at.radio(key="fm_model_source").set_value(RESNET))
    # Random weights from a file that is not Keras' official one: said, not hidden.
    assert any("not** Keras' official ImageNet" in w.value for w in at.warning)
    box = _layer_box(at)
    assert len(box.options) == 176
    assert box.value == "conv1_relu"
    acts = _acts(at)
    # The widest layer (2048 channels of 7×7), in pages of channels.
    _run(_layer_box(at).set_value("conv5_block3_out"))
    assert any(c.startswith("conv5_block3_out: maps 1–64 of 2048") for c in _captions(at))
    pager = at.get("pagination")[0]
    assert pager.num_pages == 32
    _run(pager.set_value(3))
    assert any(c.startswith("conv5_block3_out: maps 129–192 of 2048") for c in _captions(at))
    _run(at.radio(key="fm_scale").set_value("One range for the whole layer"))
    assert _acts(at) is acts
    table = _hierarchy(at)
    assert list(table["receptive field"]) == ["7 px", "35 px", "99 px", "291 px", "483 px"]
    assert any("swapped back to RGB" in c for c in _captions(at))


@pytest.fixture(scope="module")
def vgg19_weights(tmp_path_factory):
    import keras

    model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(224, 224, 3))
    path = tmp_path_factory.mktemp("vgg19") / "vgg19_notop.weights.h5"
    model.save_weights(path)
    return path


@pytest.mark.slow
def test_vgg19_from_a_local_weights_file(vgg19_weights, drawn_digit, monkeypatch):
    monkeypatch.setenv(VGG19_NOTOP.env_var, str(vgg19_weights))
    at = _page(**{state.DRAWN_DIGIT: drawn_digit})
    _run(at.radio(key="fm_model_source").set_value(VGG))
    assert any("not** Keras' official ImageNet" in w.value for w in at.warning)
    assert at.radio(key="fm_input_imagenet").value == "Photo (sample, upload or camera)"
    assert len(_layer_box(at).options) == 21
    table = _hierarchy(at)
    assert list(table["receptive field"]) == [
        "5 px",
        "14 px",
        "48 px",
        "116 px",
        "252 px",
        "268 px",
    ]
    # The drawn digit, prepared for VGG19 (224×224, BGR, means subtracted).
    _run(at.radio(key="fm_input_imagenet").set_value("Digit drawn on the MNIST page"))
    assert any("RGB → BGR" in c.value for c in at.caption)
    assert not [m for m in at.markdown if m.value.startswith("**The model's answer")]
    # No classifier, so no class to explain: said plainly.
    at.session_state["fm_tab"] = "Saliency"
    _run(at)
    assert any("has no class scores" in i.value for i in at.info)


def test_missing_weights_are_named_and_nothing_is_faked(tmp_path, monkeypatch):
    monkeypatch.setenv(VGG19_NOTOP.env_var, str(tmp_path / "nowhere" / VGG19_NOTOP.file_name))
    at = _page()
    _run(at.radio(key="fm_model_source").set_value(VGG))
    message = " ".join(e.value for e in at.error)
    assert VGG19_NOTOP.env_var in message and VGG19_NOTOP.file_name in message
    assert not [s for s in at.selectbox if s.label.startswith("Layer (")]
    assert any("random weights" in c.value for c in at.caption)


@pytest.mark.slow
def test_choices_survive_a_visit_to_another_page(
    tutorial_model, drawn_digit, mnist_dir, monkeypatch
):
    """Model, input, test image, layer and view options after Convolution lab → back."""
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, value in _registry(_entry(tutorial_model)).items():
        at.session_state[key] = value
    at.session_state[state.DRAWN_DIGIT] = drawn_digit
    _run(at)
    _run(at.switch_page("app_pages/feature_maps.py"))
    _run(at.radio(key="fm_input_mnist").set_value("Digit from the MNIST test set"))
    _run(at.number_input(key="fm_test_index_mnist").set_value(7))
    _run(_layer_box(at).select_index(2))
    at.radio(key="fm_order").set_value("Channel number")
    at.radio(key="fm_scale").set_value("One range for the whole layer")
    at.selectbox(key="fm_per_page").set_value(32)
    _run(at)
    chosen = (_layer_box(at).value, _acts(at))
    _run(at.switch_page("app_pages/convolution_lab.py"))
    assert not [r for r in at.radio if r.key == "fm_order"]  # really elsewhere
    _run(at.switch_page("app_pages/feature_maps.py"))
    assert at.radio(key="fm_model_source").value == SESSION
    assert at.radio(key="fm_input_mnist").value == "Digit from the MNIST test set"
    assert at.number_input(key="fm_test_index_mnist").value == 7
    assert (_layer_box(at).value, _acts(at)) == chosen  # same layer, no new forward pass
    assert at.radio(key="fm_order").value == "Channel number"
    assert at.radio(key="fm_scale").value == "One range for the whole layer"
    assert at.selectbox(key="fm_per_page").value == 32


def test_class_names_come_from_the_registry_not_the_description(tutorial_model):
    """Class names come from the registry entry, never guessed from a description."""
    from cnnlib.data.mnist import CLASS_NAMES

    at = _page(**_registry(_entry(tutorial_model, description="A Fashion-MNIST-looking one")))
    assert at.radio(key="fm_input_mnist").value == "Digit from the MNIST test set"
    scores = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert scores["x"] == list(CLASS_NAMES["mnist"])


# ----------------------------------------------------------------------------- issue 11's tabs

WANTS = "What a filter wants to see"


def _overlay_methods(at: AppTest) -> list[str]:
    """The methods of the saliency row, from its captions ("Grad-CAM · 0.12 s")."""
    return [c.split(" · ")[0] for c in _captions(at) if " · " in c and c.endswith(" s")]


@pytest.mark.slow
def test_saliency_tab_on_the_session_model(tutorial_model, drawn_digit):
    """Computed only while open; the predicted class first; one overlay per method."""
    from cnnlib.inspect import saliency
    from ui import saliency_view as sv

    session = {**_registry(_entry(tutorial_model)), state.DRAWN_DIGIT: drawn_digit}
    at = _page(**session)
    assert not _overlay_methods(at)  # a closed tab computes nothing
    at.session_state["fm_tab"] = "Saliency"
    _run(at)
    expected = int(np.argmax(tutorial_model.predict(drawn_digit[None, :, :, None], verbose=0)))
    assert at.radio(key="fm_saliency_class").value == expected
    assert _overlay_methods(at) == [saliency.METHOD_LABELS[m] for m in sv.DEFAULT_METHODS]
    _run(at.radio(key="fm_saliency_class").set_value((expected + 1) % 10))
    _run(at.pills(key="fm_saliency_methods").set_value(["occlusion", "gradients"]))
    assert _overlay_methods(at) == ["Occlusion", "Gradients"]
    assert at.slider(key="fm_occlusion_patch").value == 4  # 28 // 7 pixels
    assert any(f"evidence for “{(expected + 1) % 10}”" in c.value for c in at.caption)


@pytest.mark.slow
def test_saliency_maps_are_cached_per_session(tutorial_model, drawn_digit, monkeypatch):
    """A rerun that changes nothing the maps depend on computes nothing (a digit of its own:
    the cache outlives AppTest's sessions in one process)."""
    from cnnlib.inspect import saliency

    drawn_digit = drawn_digit.copy()
    drawn_digit[5:8, 8:20] = 1.0  # a "7"

    calls = []
    real = saliency.saliency_maps
    monkeypatch.setattr(saliency, "saliency_maps", lambda *a, **k: calls.append(1) or real(*a, **k))
    session = {**_registry(_entry(tutorial_model)), state.DRAWN_DIGIT: drawn_digit}
    at = AppTest.from_file(str(ROOT / "app_pages" / "feature_maps.py"), default_timeout=180)
    for key, value in {**session, "fm_tab": "Saliency"}.items():
        at.session_state[key] = value
    _run(at)
    assert len(calls) == 4
    _run(at.radio(key="fm_order").set_value("Channel number"))
    assert len(calls) == 4


@pytest.mark.slow
def test_what_a_filter_wants_to_see_on_the_session_model(tutorial_model, drawn_digit):
    from cnnlib.inspect import visualize

    session = {**_registry(_entry(tutorial_model)), state.DRAWN_DIGIT: drawn_digit}
    at = _page(**session, fm_tab=WANTS)
    conv = F.conv_layer_names(tutorial_model)[0]
    layer = next(s for s in at.selectbox if s.key.startswith("fm_wants_layer_"))
    assert layer.value == conv  # the conv layer behind the default layer (the first conv)
    channel = next(n for n in at.number_input if n.key.startswith("fm_wants_channel_"))
    _run(channel.set_value(3))
    at.slider(key="fm_wants_steps").set_value(20)
    _run(at.button(key="fm_wants_run").click())
    assert any(c.startswith(f"Filter 3 of {conv} after 20 steps") for c in _captions(at))
    curve = json.loads(at.get("plotly_chart")[-1].proto.spec)["data"][0]
    assert curve["type"] == "scatter" and len(curve["y"]) == 21
    # The same question asked directly gets the page's result from the cache.
    direct = visualize.maximize_activation(  # the app's models take raw pixels 0…255
        tutorial_model, conv, 3, steps=20, seed=0, input_range=(0.0, 255.0)
    )
    np.testing.assert_allclose(curve["y"], direct.activations, rtol=1e-6)
    assert direct.activations[-1] > direct.activations[0]  # gradient ascent raised it


def test_maximize_options_follow_the_model_input():
    import keras

    from cnnlib.models import takes_raw_pixels
    from ui import filters_view

    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    raw = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(2, 3)]
    )

    def view(model, key="m", preprocessing="mnist"):
        raw = preprocessing != "imagenet" and takes_raw_pixels(model)
        return fs.ModelView(key, "t", model, None, [], {}, preprocessing, raw_pixels=raw)

    assert filters_view.maximize_options(view(plain)) == {}
    assert filters_view.maximize_options(view(raw)) == {"input_range": (0.0, 255.0)}
    resnet = filters_view.maximize_options(view(plain, "resnet50", "imagenet"))
    assert resnet["input_range"] == (0.0, 255.0)
    assert resnet["preprocess"] is keras.applications.resnet50.preprocess_input
    vgg = filters_view.maximize_options(view(plain, "vgg19", "imagenet"))
    assert vgg["preprocess"] is keras.applications.vgg19.preprocess_input


@pytest.mark.slow
def test_resnet50_saliency_and_a_grid_of_filters_in_the_background(monkeypatch):
    from ui import filters_view

    monkeypatch.setenv(RESNET50.env_var, str(resnet50_weights_file()))
    at = _page(fm_tab="Saliency")
    _run(at.radio(key="fm_model_source").set_value(RESNET))
    box = at.selectbox(key="fm_saliency_class")
    assert len(box.options) == 1000 and box.options[281] == "281 · tabby"
    _run(at.pills(key="fm_saliency_methods").set_value(["gradcam"]))
    assert _overlay_methods(at) == ["Grad-CAM"]
    at.session_state["fm_tab"] = WANTS
    _run(at)
    at.number_input(key="fm_grid_count").set_value(2)
    at.slider(key="fm_grid_steps").set_value(5)
    _run(at.button(key="fm_grid_start").click())
    job = at.session_state[filters_view.GRID_JOB][1]
    assert job.wait(240).done
    _run(at)
    snap = job.snapshot()
    assert snap.state == "finished" and snap.filters_done == 2
    assert any(c.startswith("Finished: 2 of 2 filters") for c in _captions(at))
    assert any(c.startswith("What each filter of conv1_conv wants") for c in _captions(at))


@pytest.mark.slow
def test_saliency_sanity_check_in_the_background(tutorial_model, drawn_digit):
    """The sanity check under the saliency row: a job on a clone (the registry's model keeps
    its weights), its numbers are ``sanity_check``'s, the control never changes."""
    from cnnlib.inspect import sanity
    from ui import sanity_view

    before = [w.copy() for w in tutorial_model.get_weights()]
    session = {**_registry(_entry(tutorial_model)), state.DRAWN_DIGIT: drawn_digit}
    at = _page(**session, fm_tab="Saliency")
    assert not [b for b in at.button if b.key == "fm_sanity_run"]  # closed until asked
    _run(at.toggle(key="fm_sanity_open").set_value(True))
    assert at.pills(key="fm_sanity_methods").value == ["gradcam", "gradcam++", "gradients"]
    assert at.slider(key="fm_sanity_steps").max == 5  # 3 Conv2D and 2 Dense layers
    _run(at.pills(key="fm_sanity_methods").set_value(["gradients"]))
    _run(at.slider(key="fm_sanity_steps").set_value(4))
    _run(at.button(key="fm_sanity_run").click())
    job = at.session_state[sanity_view._job_key("fm")][1]
    assert job.wait(180).state == "finished"
    _run(at)
    cls = at.radio(key="fm_saliency_class").value
    x = drawn_digit[None, :, :, None] * 255.0  # the registry's models take raw pixels
    direct = sanity.sanity_check(tutorial_model, x, cls, method="gradients", steps=4)
    table = next(t.value for t in at.table if "step" in t.value.columns)
    assert list(table["step"]) == ["1. +dense_2", "2. +dense_1", "3. +conv2d_3", "4. +conv2d_2"]
    np.testing.assert_allclose(table["Gradients: ρ"], direct.rank_correlation, atol=2e-3)
    np.testing.assert_allclose(table["Gradients: SSIM"], direct.ssim, atol=2e-3)
    np.testing.assert_allclose(table["Edge detector (ignores the model): ρ"], 1.0)
    said = [m.value for m in at.markdown if m.value.startswith("**Gradients**:")]
    assert said and f"rank correlation {direct.rank_correlation[-1]:.2f}" in said[0]
    alts = [a for image in at.get("image") for a in _alts(image)]
    # One row of maps per method, the control included.
    assert len([a for a in alts if "randomising each of 4 blocks" in a]) == 2
    for a, b in zip(before, tutorial_model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    # Another class is another question: the old check is not shown for it.
    _run(at.radio(key="fm_saliency_class").set_value((cls + 1) % 10))
    assert not [t for t in at.table if "step" in t.value.columns]
    assert sanity_view._job_key("fm") not in at.session_state


def _alts(image) -> list[str]:
    return [img.alt for img in image.proto.imgs]


@pytest.mark.slow
def test_real_examples_beside_what_a_filter_wants_to_see(
    tutorial_model, drawn_digit, mnist_dir, monkeypatch
):
    """The 9 MNIST test patches that excite a filter most, beside the filter's image: the
    strongest is the filter's highest response over all the digits searched (Keras), and
    each is cropped to a 3×3 receptive field (the first Conv2D's)."""
    import keras

    from ui import patches_session
    from ui.datasets import load_for_page

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    session = {**_registry(_entry(tutorial_model)), state.DRAWN_DIGIT: drawn_digit}
    at = _page(**session, fm_tab=WANTS)
    conv = F.conv_layer_names(tutorial_model)[0]
    channel = next(n for n in at.number_input if n.key.startswith("fm_wants_channel_"))
    _run(channel.set_value(3))
    n = patches_session.DIGITS
    alts = [a for image in at.get("image") for a in _alts(image)]
    first = "The 9 image patches of the first 2,000 test images of MNIST"
    said = [a for a in alts if a.startswith(first)]
    assert len(said) == 1 and f"filter 3 of {conv} most" in said[0] and "3×3 pixels" in said[0]
    responses = [float(v) for v in said[0].rsplit(": ", 1)[1].rstrip(".").split(", ")]
    assert len(responses) == 9 and responses == sorted(responses, reverse=True)
    digits = load_for_page("mnist").x_test[:n].astype(np.float32)[..., None]  # raw pixels
    layer = tutorial_model.get_layer(conv)
    maps = keras.Model(tutorial_model.inputs, layer.output)(digits).numpy()[..., 3]
    assert responses[0] == pytest.approx(float(maps.max()), rel=1e-3)
    assert any(f"where filter 3 of {conv} responds most" in c.value for c in at.caption)
