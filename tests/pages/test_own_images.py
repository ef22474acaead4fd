"""The "Train on your own images" page under AppTest, on the built-in example (real
Fashion-MNIST images as a zip of class folders).

Example set → health check → augmentation preview → one epoch from scratch at 32 × 32 in the
background → validation results, the model registered, a prediction with the tutorial's
sentence, Grad-CAM and the three downloads; a relabelled mistake changes the data. Bad zips
show their ``ArchiveError`` message and the page keeps working. Transfer learning without
weights says so (Start off); with a local ``weights=None`` MobileNetV2 file it trains at a
small size, labelled unverified.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import streamlit as st

from cnnlib.training import tasks
from cnnlib.training import trainer as training
from tests.markdown import outside_code_spans
from tests.pages.apptest import image_captions, open_page, run_checked, values
from tests.uploads import encode, photo
from ui import own_images_session as session
from ui import state

keras = pytest.importorskip("keras")


@pytest.fixture
def example_env(fashion_dir, monkeypatch, tmp_path):
    """Fresh slots, no weights anywhere (an empty Keras home), clean caches."""
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", training.TrainingSlots(2))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    for name in ("MOBILENETV2", "RESNET50", "VGG19"):
        monkeypatch.delenv(f"CNNLAB_{name}_WEIGHTS", raising=False)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A MobileNetV2 (no top) weights file with random weights: never Keras' own."""
    model = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_random.weights.h5"
    model.save_weights(path)
    return path


def _train(at, recipe: str, **sliders):
    at.select_slider(key="own_size").set_value(32)
    at.radio(key="own_recipe").set_value(recipe)
    at.number_input(key="own_epochs").set_value(1)
    for key, value in sliders.items():
        at.slider(key=key).set_value(value)
    run_checked(at)
    at.button(key="own_start").click()
    run_checked(at)
    p = at.session_state[session.RUN].job.wait(300)
    assert p.state == "finished", p.error
    return run_checked(at), p


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, raw in files.items():
            zf.writestr(name, raw)
    return buffer.getvalue()


@pytest.mark.slow
def test_example_health_preview_train_results_predict_export(example_env):
    at = open_page("own_images")
    text = " ".join(values(at.markdown) + values(at.caption))
    assert "160 images in 4 classes" in text and "Fashion-MNIST" in text
    assert "Ready to train" in " ".join(values(at.success))
    # The augmentation preview: 3 rows of an original and 4 copies, made by the layers.
    captions = image_captions(at)
    assert captions.count("copy 4") == 3 and captions.count("original") == 3
    # No weights here: transfer learning says so and Start is off; scratch works.
    at.radio(key="own_recipe").set_value("transfer")
    run_checked(at)
    assert "no pretrained weights" in " ".join(values(at.warning)).lower()
    assert "CNNLAB_MOBILENETV2_WEIGHTS" in " ".join(values(at.warning))
    assert at.button(key="own_start").disabled

    at, p = _train(at, "scratch")
    run = at.session_state[session.RUN]
    assert run.info.recipe.recipe == "scratch" and len(p.train_loss) == 1 and p.device
    assert run.info.recipe.image_size == 32 and run.info.recipe.epochs == 1
    evaluation = run.result.evaluation
    assert len(evaluation.labels) == 32  # 20 % of 40 per class, stratified
    assert np.array_equal(np.bincount(evaluation.labels), [8, 8, 8, 8])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation accuracy"] == f"{evaluation.accuracy:.1%}"
    entry = at.session_state[state.MODEL_REGISTRY].latest("Train on your own images")
    assert entry.name.startswith("Own images · From scratch ·")
    assert entry.class_names == ("Bag", "Sandal", "Sneaker", "Trouser")
    assert entry.input_shape == (32, 32, 3)
    # The sample photo's prediction: the tutorial's sentence and the bar chart.
    sentence = [m.replace("\\", "") for m in values(at.markdown) if "most likely belongs" in m]
    top = max(zip(entry.class_names, _probabilities(at), strict=True), key=lambda t: t[1])
    assert sentence and f"{top[0]} with {100 * top[1]:.1f}% confidence" in sentence[0]
    assert "Grad-CAM" in " ".join(values(at.markdown))
    downloads = [d.proto.label for d in at.get("download_button")]
    assert downloads == ["Model (.keras)", "Labels (labels.txt)", "Python snippet (predict.py)"]

    # Relabel the most confident mistake (if any), then the data has a new version.
    moves = [b for b in at.button if b.key and b.key.startswith("own_move_")]
    if moves:
        key = moves[0].key.replace("own_move_", "own_relabel_")
        box = at.selectbox(key=key)
        box.set_value(next(i for i in range(4) if i != box.value))
        run_checked(at)
        at.button(key=moves[0].key).click()
        run_checked(at)
        assert at.session_state[session.DATA].version == 1


def _probabilities(at) -> list[float]:
    """The prediction's probabilities, in class order, read from the bar chart."""
    import json

    chart = next(c for c in at.get("plotly_chart") if "own_prediction" in c.proto.id)
    bar = json.loads(chart.proto.spec)["data"][0]
    names, probs = bar["y"], bar["x"]
    if isinstance(probs, dict):  # a typed array
        import base64

        probs = np.frombuffer(base64.b64decode(probs["bdata"]), dtype=probs["dtype"]).tolist()
    return [p for _, p in sorted(zip(names, probs, strict=True))]


@pytest.mark.parametrize(
    ("upload", "words"),
    [
        (b"just text", "not a zip"),
        (_zip({}), "empty"),
        (_zip({"cats/1.png": encode(photo((40, 40))), "cats/2.png": encode(photo())}), "one class"),
        (_zip({"a/notes.txt": b"hello", "b/notes.txt": b"world"}), "no usable images"),
        (_zip({"../evil/1.png": encode(photo())}), "leaves its folder"),
        (_zip({"a/inner.zip": _zip({"x.txt": b"x"}), "b/1.png": b"x"}), "archive"),
        (_zip({"a/bomb.png": bytes(30_000_000), "b/1.png": b"x"}), "zip bomb"),
    ],
)
def test_bad_zips_show_their_message_and_the_page_keeps_working(example_env, upload, words):
    at = open_page("own_images")
    at.radio(key="own_source").set_value("Upload a .zip")
    run_checked(at)
    at.file_uploader(key="own_zip").set_value([("bad.zip", upload, "application/zip")])
    run_checked(at)
    errors = " ".join(values(at.error))
    assert "These images cannot be used" in errors and words in errors.lower()
    at.radio(key="own_source").set_value("Built-in example")
    run_checked(at)
    assert not at.error and "Ready to train" in " ".join(values(at.success))


@pytest.mark.slow
def test_transfer_with_a_local_random_file_is_labelled_unverified(
    example_env, mobilenet_file, monkeypatch
):
    monkeypatch.setenv("CNNLAB_MOBILENETV2_WEIGHTS", str(mobilenet_file))
    at = open_page("own_images")
    at.radio(key="own_recipe").set_value("transfer")
    run_checked(at)
    assert "CNNLAB_MOBILENETV2_WEIGHTS" in " ".join(values(at.caption))
    at, p = _train(at, "transfer", own_copies=1)
    assert p.stage == "head" and p.features_done == p.features_total == 128 * 2 + 32
    assert not p.weights_verified
    assert "unverified" in " ".join(values(at.warning)).lower()
    model = at.session_state[session.RUN].result.model
    assert model.name == "mobilenetv2_transfer" and model.input_shape[1:] == (32, 32, 3)
    # Then from scratch on the same images and split: the side-by-side table.
    at, _ = _train(at, "scratch")
    table = at.dataframe[-1].value
    assert sorted(table["Model"]) == ["From scratch", "MobileNetV2"]
    names = at.session_state[state.MODEL_REGISTRY].names()
    assert names[0].startswith("Own images · From scratch") and "MobileNetV2" in names[1]


def test_a_folder_upload_replaces_the_example_and_its_temporary_folder_goes(example_env):
    at = open_page("own_images")
    example_root = at.session_state[session.DATA].folders.root
    assert example_root.is_dir()
    at.radio(key="own_source").set_value("Upload a folder")
    run_checked(at)
    hostile = "[click](evil.example) <b>bold"
    files = [
        (f"photos/{hostile}/{i}.png", encode(photo((30 + i, 30))), "image/png") for i in range(5)
    ]
    files += [(f"photos/plain/{i}.png", encode(photo((40, 30 + i))), "image/png") for i in range(5)]
    files.append(("photos/plain/broken.png", b"not an image", "image/png"))
    at.file_uploader(key="own_folder").set_value(files)
    run_checked(at)
    entry = at.session_state[session.DATA]
    assert entry.key.startswith("folder:") and len(entry.folders) == 10
    assert entry.folders.class_names == (hostile, "plain")
    assert not example_root.exists()  # the replaced data's temporary folder is removed
    shown = " ".join(values(at.markdown) + values(at.caption) + values(at.warning))
    words = shown.replace("\\", "")
    assert "10 images in 2 classes" in words and "1 file(s) were skipped" in words
    bare = outside_code_spans(shown)  # the names are shown verbatim, never as a link
    assert "](evil" not in bare and "<b>" not in bare and "evil" not in bare
    assert "`[click](evil.example) <b>bold`" in shown


def test_start_is_refused_while_another_page_trains_or_the_server_is_full(example_env, monkeypatch):
    class Running:
        done = False

    at = open_page("own_images", session={state.RUNNING_TASK: ("Train on MNIST", Running())})
    assert at.button(key="own_start").disabled
    assert "A training from Train on MNIST is running" in " ".join(values(at.warning))

    full = training.TrainingSlots(1, max_waiting=0)
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", full)
    import threading

    blocker = object()
    assert full.acquire(blocker, threading.Event())
    at = open_page("own_images")
    at.radio(key="own_recipe").set_value("scratch")
    run_checked(at)
    at.button(key="own_start").click()
    run_checked(at)
    assert "The server is busy" in " ".join(values(at.error))
    assert session.RUN not in at.session_state and not at.button(key="own_start").disabled
    full.release(blocker)
