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
import json
import zipfile

import numpy as np
import pytest
import streamlit as st
from PIL import Image

from cnnlib.core.text import safe_text
from cnnlib.training import tasks
from cnnlib.training import trainer as training
from tests.conftest import wait_for
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
@pytest.mark.slow
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
    # Paused at once: it holds after its first batch of the feature extraction.
    at.select_slider(key="own_size").set_value(32)
    at.number_input(key="own_epochs").set_value(1)
    at.slider(key="own_copies").set_value(1)
    run_checked(at)
    run_checked(at.button(key="own_start").click())
    job = at.session_state[session.RUN].job
    run_checked(at.button(key="own_pause").click())
    assert wait_for(lambda: job.snapshot().paused, 300), job.snapshot()
    p = job.snapshot()
    assert (p.stage, p.features_done, p.features_total) == ("features", 32, 128 * 2 + 32)
    run_checked(at)
    assert "Paused after 32 of 288 images." in values(at.caption)
    assert next(g.proto.text for g in at.get("progress")).startswith("**Paused** · 32/288")
    run_checked(at.button(key="own_resume").click())
    p = job.wait(300)
    assert p.state == "finished", p.error
    run_checked(at)
    assert p.stage == "head" and p.features_done == p.features_total == 128 * 2 + 32
    assert not p.weights_verified
    assert "unverified" in " ".join(values(at.warning)).lower()
    model = at.session_state[session.RUN].result.model
    assert model.name == "mobilenetv2_transfer" and model.input_shape[1:] == (32, 32, 3)
    # The frozen backbone's health is the new head's, and the page says what it shows.
    table = next(t.value for t in at.table if "`gradient norm`" in t.value.columns)
    assert table["`layer`"].tolist() == ["`predictions`"]
    assert any("The backbone is frozen" in c for c in values(at.caption))
    assert any("Grad-CAM at layer `Conv_1`" in m for m in values(at.markdown))
    # Then from scratch on the same images and split: the side-by-side table.
    at, _ = _train(at, "scratch")
    table = next(d.value for d in at.dataframe if "Model" in d.value.columns)
    assert sorted(table["Model"]) == ["From scratch", "MobileNetV2"]
    names = at.session_state[state.MODEL_REGISTRY].names()
    assert names[0].startswith("Own images · From scratch") and "MobileNetV2" in names[1]


@pytest.mark.slow
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


@pytest.mark.slow
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


# --------------------------------------------------------------------------------------------
# After one training with a test share: held-out test, exports, save and resume
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_page(fashion_dir, tmp_path_factory):
    """The page after one training from scratch (32 × 32, 1 epoch) on the example with a
    20 % test share: (AppTest, its run)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "_DEFAULT_SLOTS", training.TrainingSlots(2))
        mp.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
        st.cache_data.clear()
        at = open_page("own_images")
        at.slider(key="own_test").set_value(0.2)
        at, _ = _train(at, "scratch")
        yield at, at.session_state[session.RUN]
        st.cache_data.clear()


@pytest.mark.slow
def test_the_held_out_test_share_is_never_trained_on_and_its_gap_is_explained(trained_page):
    at, run = trained_page
    split = run.info.split
    assert run.info.recipe.test_fraction == 0.2
    # 40 per class: 8 validation, 8 test, 24 train; the three splits never share an image
    assert split.counts("test") == dict.fromkeys(run.result.class_names, 8)
    files = {s: set(split.files(s)[0]) for s in ("train", "validation", "test")}
    assert not files["test"] & (files["train"] | files["validation"])
    assert run.job.snapshot().train_samples == 96
    result = at.session_state[session.TESTS][(run.id, "share")]
    model = run.result.model
    x, y, _ = split.arrays("test")
    expected = model.predict(x.astype("float32"), verbose=0).argmax(1)
    assert np.array_equal(result.test.evaluation.predictions, expected)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{np.mean(expected == y):.1%}"
    assert metrics["Test images"] == "32"
    assert result.test.explanation in values(at.info)
    # per-class precision and recall, as the table shows them
    table = next(t.value for t in at.table if "`Precision`" in t.value.columns)
    precision, recall = result.test.precision, result.test.recall
    assert list(table["`Test images`"]) == [8, 8, 8, 8]
    assert list(table["`Recall`"]) == [f"`{r:.1%}`" for r in recall]
    confusion = result.test.evaluation.confusion
    # the test confusion matrix's table: one row per true class, its 8 test images
    shown = [t.value for t in at.table if "`true class`" in t.value.columns]
    assert any(np.array_equal(t.iloc[:, 1:].to_numpy(), confusion) for t in shown)
    assert np.allclose(recall, np.diag(confusion) / confusion.sum(1))
    with np.errstate(invalid="ignore"):
        assert np.allclose(precision, np.diag(confusion) / confusion.sum(0), equal_nan=True)


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.slow
def test_calibration_of_the_test_share_with_t_fitted_on_the_validation_images(trained_page):
    """The ECE shown is ``reliability`` of the model's own probabilities on the test share;
    T is ``fit_temperature`` of the validation images' logits (log-probabilities: the same
    logits up to a constant per row); the photo's calibrated probabilities divide them by T."""
    from cnnlib.inspect.calibration import fit_temperature, reliability, softmax

    at, run = trained_page
    model, result = run.result.model, run.result
    x, y, _ = run.info.split.arrays("test")
    p_test = model.predict(x.astype("float32"), verbose=0).astype(np.float64)
    p_val = model.predict(result.x.astype("float32"), verbose=0).astype(np.float64)
    t = fit_temperature(np.log(p_val), result.y)
    assert abs(np.log(t)) > 0.05  # far enough from 1 for the photo's check below to tell
    before, after = reliability(p_test, y), reliability(softmax(np.log(p_test), t), y)
    metrics = _metrics(at)
    assert metrics["Expected calibration error"] == f"{before.ece:.2%}"
    assert metrics["Temperature T (fitted on validation)"] == f"{t:.3g}"
    assert metrics["ECE after temperature scaling"] == f"{after.ece:.2%}"
    assert any("32 validation images (never the test set)" in c for c in values(at.caption))
    bins = next(t.value for t in at.table if "confidence bin" in t.value.columns)
    assert list(bins["images"]) == [int(n) for n in before.count if n]  # the 32 test images
    # the photo's probabilities: softmax(logits / T), the same answer
    shown = np.array(_probabilities(at))
    at.toggle(key="own_photo_calibrated").set_value(True)
    at = run_checked(at)
    calibrated = np.array(_probabilities(at))
    np.testing.assert_allclose(calibrated, softmax(np.log(shown)[None], t)[0], atol=2e-4)
    assert calibrated.argmax() == shown.argmax()
    at.toggle(key="own_photo_calibrated").set_value(False)
    # no test set chosen yet: the diagrams use the validation images, and say so
    at.radio(key="own_test_source").set_value("Upload a test zip")
    at = run_checked(at)
    assert _metrics(at)["Expected calibration error"] == f"{reliability(p_val, result.y).ece:.2%}"
    assert any("No test set yet" in c for c in values(at.caption))
    assert any("same validation images T was fitted on" in c for c in values(at.caption))
    at.radio(key="own_test_source").set_value("The test share set aside before training")
    run_checked(at)


@pytest.mark.slow
def test_a_test_zip_is_checked_like_any_upload(trained_page):
    from cnnlib.uploads.folders import example_archive

    at, run = trained_page
    at.radio(key="own_test_source").set_value("Upload a test zip")
    run_checked(at)
    # unseen Fashion-MNIST images (after the 40 per class of the example), 2 of the 4 classes
    fresh = example_archive(6, (5, 7), offset=100)
    at.file_uploader(key="own_test_zip").set_value([("test.zip", fresh, "application/zip")])
    run_checked(at)
    key = next(k for k in at.session_state[session.TESTS] if k[0] == run.id and k[1] != "share")
    result = at.session_state[session.TESTS][key]
    assert result.source == "your test zip" and len(result.x) == 12
    names = run.result.class_names
    assert np.bincount(result.test.evaluation.labels, minlength=4).tolist() == [0, 6, 6, 0]
    assert names[1] == "Sandal" and names[2] == "Sneaker"
    assert {m.label: m.value for m in at.metric}["Test images"] == "12"
    # a class the model does not know: a message, the page keeps working
    other = example_archive(3, (0, 5))  # T-shirt/top is not one of the model's classes
    at.file_uploader(key="own_test_zip").set_value([("bad.zip", other, "application/zip")])
    run_checked(at)
    assert "not trained on" in " ".join(values(at.error))
    at.radio(key="own_test_source").set_value("The test share set aside before training")
    run_checked(at)
    assert not at.error


@pytest.mark.slow
def test_export_runs_as_a_job_and_each_file_is_checked_by_its_runtime(trained_page):
    from cnnlib.export import run_exported

    at, run = trained_page
    at.pills(key="own_export_formats").set_value(["litert", "litert_int8", "onnx"])
    run_checked(at)
    at.button(key="own_export_start").click()
    run_checked(at)
    export = at.session_state[session.EXPORT]
    assert export.info == run.id and at.button(key="own_start").disabled  # one task at a time
    p = export.job.wait(300)
    assert p.state == "finished", p.error
    at = run_checked(at)
    labels = [d.proto.label for d in at.get("download_button")]
    assert [lab.split(" · ")[0] for lab in labels if "·" in lab] == [
        "LiteRT float32 (.tflite)",
        "LiteRT int8 (.tflite)",
        "ONNX (.onnx)",
    ]
    table = next(d.value for d in at.dataframe if "Same answer as Keras" in d.value.columns)
    assert list(table["Run by"]) == ["ai-edge-litert", "ai-edge-litert", "onnxruntime"]
    # the agreement shown is measured: run the downloaded ONNX file here, beside Keras
    files = export.job.files()
    x = run.result.x
    onnx = run_exported(files["onnx"], x).argmax(1)
    keras_top = run.result.model.predict(x.astype("float32"), verbose=0).argmax(1)
    shown = dict(zip(table["File"], table["Same answer as Keras"], strict=True))
    assert shown["ONNX (.onnx)"] == f"{np.mean(onnx == keras_top):.1%}"
    assert np.mean(onnx == keras_top) >= 0.99
    assert not at.button(key="own_start").disabled  # the export ended: training may start


def _resume(project_bytes: bytes):
    """A fresh page (a new session) that opens ``project_bytes`` as a saved project."""
    at = open_page("own_images")
    at.radio(key="own_source").set_value("Open a saved project")
    run_checked(at)
    at.file_uploader(key="own_project").set_value(
        [("cnnlab-project.zip", project_bytes, "application/zip")]
    )
    return run_checked(at)


@pytest.mark.slow
def test_save_the_project_and_resume_it_in_a_new_session(trained_page):
    from pathlib import Path

    from ui import own_images_project as project

    at, run = trained_page
    at.button(key="own_project_prepare").click()
    at = run_checked(at)
    labels = [d.proto.label for d in at.get("download_button")]
    assert any(lab.startswith("Download the project (.zip") for lab in labels)
    saved = at.session_state[project.FILE][1]
    entry = at.session_state[session.DATA]
    initial = [p for p, _ in entry.initial]

    fresh = _resume(saved)
    resumed = fresh.session_state[session.DATA]
    assert resumed.folders.class_names == entry.folders.class_names
    assert len(resumed.folders) == 160 and resumed.health.ok
    # the settings came back into the widgets
    assert fresh.select_slider(key="own_size").value == 32
    assert fresh.slider(key="own_test").value == 0.2
    assert fresh.number_input(key="own_epochs").value == 1
    assert fresh.radio(key="own_recipe").value == "scratch"
    # the same model, tested again on the same validation images (the same seeded split)
    back = fresh.session_state[f"{session.RUN}_adopted"]
    for a, b in zip(back.result.model.get_weights(), run.result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    before = [initial.index(Path(p)) for p in run.info.split.files("validation")[0]]
    after = [
        int(resumed.folders.source(p).rsplit("/", 1)[1].split(".")[0])
        for p in back.info.split.files("validation")[0]
    ]
    assert before == after
    assert np.array_equal(back.result.y, run.result.y)
    assert back.result.history["val_accuracy"] == run.result.history["val_accuracy"]
    assert len(back.result.history["val_accuracy"]) == 1
    assert "Opened your project" in " ".join(values(fresh.success))
    metrics = {m.label: m.value for m in fresh.metric}
    assert metrics["Validation accuracy"] == f"{back.result.evaluation.accuracy:.1%}"
    # the held-out share is the same images too: the resumed model can be tested on it
    assert back.info.split.counts("test") == run.info.split.counts("test")
    # in the session's registry like a model trained here: Feature maps opens it
    registry = fresh.session_state[state.MODEL_REGISTRY]
    entry = registry.get(back.result.registered)
    assert entry is not None and entry.model is back.result.model
    assert entry.class_names == back.result.class_names and entry.input_shape == (32, 32, 3)
    assert entry.source_page == session.PAGE and "project file" in entry.description
    # … with its validation images as its real examples, like a model trained here
    assert np.array_equal(entry.examples, back.result.x)
    assert entry.examples_source == f"the {len(back.result.y)} validation images of your own data"
    maps = open_page("feature_maps", session={state.MODEL_REGISTRY: registry})
    assert any(entry.name in o for o in maps.radio(key="fm_model_source").options)


@pytest.mark.slow
def test_relabels_and_exclusions_travel_in_a_project_without_the_old_model(trained_page):
    from ui import own_images_project as project

    at, _ = trained_page
    entry = at.session_state[session.DATA]
    (moved, label), (gone, _) = entry.folders.files[0], entry.folders.files[-1]
    entry.folders.relabel(moved, (label + 1) % 4)
    entry.folders.exclude(gone)
    session.edited(entry)
    at = run_checked(at)
    captions = " ".join(values(at.caption))
    assert "The trained model is not included" in captions
    at.button(key="own_project_prepare").click()
    at = run_checked(at)
    fresh = _resume(at.session_state[project.FILE][1])
    resumed = fresh.session_state[session.DATA]
    assert resumed.folders.counts() == entry.folders.counts()
    assert len(resumed.folders) == 159 and len(resumed.initial) == 160
    assert f"{session.RUN}_adopted" not in fresh.session_state
    assert "saved without a model" in " ".join(values(fresh.success))
    # saved again from the resumed page: the same relabel and exclusion
    again = project.project_of(resumed, None, None)
    first = project.project_of(entry, None, None)
    assert again.relabels == first.relabels and again.exclusions == first.exclusions


@pytest.mark.slow
def test_a_damaged_project_file_shows_its_message(example_env):
    at = _resume(b"PK\x03\x04 not really a zip")
    assert "These images cannot be used" in " ".join(values(at.error))
    at = _resume(_zip({"a/1.png": encode(photo()), "b/1.png": encode(photo())}))
    assert "not a CNN Lab project" in " ".join(values(at.error))


def _chart(at, key: str) -> dict:
    import json

    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)


def _numbers(values) -> np.ndarray:
    """A plotly trace's array (a list, or a typed array as plotly sends NumPy arrays)."""
    import base64

    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


@pytest.mark.slow
def test_the_threshold_says_not_sure_and_the_map_marks_the_mistakes(trained_page):
    at, run = trained_page
    evaluation = run.result.evaluation
    confidence = evaluation.probabilities.max(1)
    threshold = float(np.round(np.median(confidence), 2))
    at.slider(key=session.THRESHOLD).set_value(threshold)
    at = run_checked(at)
    # by hand: the images whose top probability reaches the threshold are answered
    answered = confidence >= threshold
    right = answered & (evaluation.predictions == evaluation.labels)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Answered"] == f"{answered.mean():.1%}"
    assert metrics["Accuracy of the answers"] == f"{right.sum() / answered.sum():.1%}"
    assert metrics["“Not sure” (validation images)"] == str(int((~answered).sum()))
    table = next(t.value for t in at.table if "`Not sure`" in t.value.columns)
    for k in range(4):
        mine = evaluation.labels == k
        assert table["`Right`"][k] == int((right & mine).sum())
        assert table["`Not sure`"][k] == int((~answered & mine).sum())
    # the curve's table: coverage and accuracy every 0.05, by hand
    curve = next(t.value for t in at.table if "`coverage`" in t.value.columns)
    row = list(curve["`threshold`"]).index("`0.50`")
    half = confidence >= 0.5
    assert curve["`coverage`"][row] == f"`{half.mean():.1%}`"
    assert curve["`answered`"][row] == f"`{int(half.sum())} of 32`"
    # the prediction panel uses the same threshold
    top = max(_probabilities(at))
    warned = any("Not sure" in w for w in values(at.warning))
    assert warned == (top < threshold)
    at.slider(key=session.THRESHOLD).set_value(0.99)
    at = run_checked(at)
    assert any("Not sure" in w for w in values(at.warning)) == (max(_probabilities(at)) < 0.99)
    # the map: one point per validation image, at its PCA coordinates, mistakes as crosses
    spec = _chart(at, "own_data_map_")
    feature_map = at.session_state[session.MAPS][run.id]
    xs = np.concatenate([_numbers(t["x"]) for t in spec["data"]])
    assert len(xs) == len(evaluation.labels) == 32
    crosses = sum(len(_numbers(t["x"])) for t in spec["data"] if "(mistake)" in t["name"])
    assert crosses == int((evaluation.predictions != evaluation.labels).sum())
    first = spec["data"][0]
    index = _numbers(first["customdata"]).reshape(-1, 2)[:, 0].astype(int)
    np.testing.assert_allclose(_numbers(first["x"]), feature_map.points[index, 0], rtol=1e-5)
    points = next(t.value for t in at.table if "`direction 1`" in t.value.columns)
    assert len(points) == 32
    assert (points["`mistake`"] == "`yes`").sum() == crosses
    assert points["`direction 2`"][5] == f"`{feature_map.points[5, 1]:.3g}`"
    at.slider(key=session.THRESHOLD).set_value(0.0)
    run_checked(at)


@pytest.mark.slow
def test_webcam_classes_photos_removed_one_by_one_then_checked_like_an_upload(example_env):
    """The capture flow without a camera (AppTest has none; the browser test takes real
    photos with Chromium's fake camera): classes made by name, photos kept per class, one
    removed, then used: the same archive reader and health report as an upload."""
    from PIL import Image

    from ui import own_images_camera as camera

    at = open_page("own_images")
    at.radio(key="own_source").set_value("Webcam")
    run_checked(at)
    camera_widget = at.get("camera_input")[0]
    assert camera_widget.proto.disabled  # no class yet
    for name in ("thumbs up", "[x](evil.example)", "a/b"):
        at.text_input(key="own_cam_new").set_value(name)
        at.button(key="own_cam_add").click()
        run_checked(at)
    assert at.session_state[camera.CLASSES] == ["thumbs up", "[x](evil.example)"]
    assert "without / \\ :" in " ".join(values(at.error))  # "a/b" refused
    assert at.selectbox(key="own_cam_class").value == "[x](evil.example)"
    assert not at.get("camera_input")[0].proto.disabled
    rng = np.random.default_rng(0)
    shots = [
        camera.Capture(i + 1, name, Image.fromarray(rng.integers(0, 256, (60, 80, 3), np.uint8)))
        for i, name in enumerate(["thumbs up"] * 6 + ["[x](evil.example)"] * 6)
    ]
    at.session_state[camera.CAPTURES] = shots
    run_checked(at)
    at.button(key="own_cam_remove_3").click()
    run_checked(at)
    assert [c.id for c in at.session_state[camera.CAPTURES]] == [1, 2, 4, *range(5, 13)]
    at.button(key="own_cam_use").click()
    run_checked(at)
    entry = at.session_state[session.DATA]
    assert entry.key.startswith("camera:")
    assert entry.folders.counts() == {"[x](evil.example)": 6, "thumbs up": 5}
    shown = " ".join(values(at.markdown) + values(at.caption))
    assert "11 images in 2 classes" in shown and "Ready to train" in " ".join(values(at.success))
    assert "](evil" not in outside_code_spans(shown)


@pytest.mark.slow
def test_the_learning_rate_finder_runs_as_a_job_and_its_suggestion_is_one_click(example_env):
    from app_pages.sections.own_images_lr import nearest

    at = open_page("own_images")
    at.select_slider(key="own_size").set_value(32)
    at.radio(key="own_recipe").set_value("scratch")
    run_checked(at)
    at.button(key="own_lr_start").click()
    run_checked(at)
    run = at.session_state[session.LR_RUN]
    assert run.info.recipe == "scratch" and run.info.image_size == 32
    assert at.button(key="own_start").disabled  # one task at a time
    p = run.job.wait(300)
    assert p.state == "finished", p.error
    at = run_checked(at)
    test = run.job.result()
    assert 10 <= len(test.rates) <= 100 and test.rates[0] == pytest.approx(1e-7)
    assert test.suggested == pytest.approx(test.minimum_rate / 10)
    spec = _chart(at, "own_lr_curve")
    np.testing.assert_allclose(_numbers(spec["data"][1]["y"]), test.smoothed, rtol=1e-6)
    rows = next(t.value for t in at.table if "`smoothed loss`" in t.value.columns)
    assert len(rows) == len(test.rates)
    assert rows["`loss`"][0] == f"`{test.losses[0]:.4g}`"
    choice = nearest(test.suggested, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    assert f"The nearest setting is {choice:g}" in " ".join(values(at.caption))
    current = at.select_slider(key="own_lr").value
    assert at.button(key="own_lr_apply").disabled == (current == choice)
    at.select_slider(key="own_lr").set_value(1e-4 if choice != 1e-4 else 1e-2)
    at = run_checked(at)
    at.button(key="own_lr_apply").click()
    at = run_checked(at)
    assert at.select_slider(key="own_lr").value == choice
    assert not at.button(key="own_start").disabled


@pytest.mark.slow
def test_the_shortcut_lab_plants_a_cue_trains_and_tests_with_and_without_it(example_env):
    from cnnlib.data.shortcuts import Cue, stamp_all, stamp_share

    at = open_page("own_images")
    at.select_slider(key="own_size").set_value(32)
    at.radio(key="own_recipe").set_value("scratch")
    at.number_input(key="own_epochs").set_value(3)
    run_checked(at)
    assert image_captions(at).count("with the cue") == 1  # the preview of the cue
    at.selectbox(key="own_sc_class").set_value(0)  # Bag
    at.slider(key="own_sc_share").set_value(1.0)
    at = run_checked(at)
    at.button(key="own_sc_start").click()
    at = run_checked(at)
    run = at.session_state[session.SHORTCUT_RUN]
    assert run.info.cue == Cue("corner", (255, 0, 0)) and run.info.target == 0
    p = run.job.wait(300)
    assert p.state == "finished", p.error
    at = run_checked(at)
    report = run.result
    # independently: the model on the validation images stamped, clean, and others stamped
    model, x, y = run.job.model, run.info.x, run.info.y
    stamped = stamp_share(x, y, 0, 1.0, run.info.cue, run.info.recipe.seed + 1).images
    top = model.predict(stamped.astype("float32"), verbose=0).argmax(1)
    clean = model.predict(x.astype("float32"), verbose=0).argmax(1)
    others = stamp_all(x[y != 0], run.info.cue)
    fooled = model.predict(others.astype("float32"), verbose=0).argmax(1)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation accuracy (with the cue, as trained)"] == f"{np.mean(top == y):.1%}"
    assert metrics["Clean validation accuracy"] == f"{np.mean(clean == y):.1%}"
    assert metrics["Bag recognised without the cue"] == f"{np.mean(clean[y == 0] == 0):.0%}"
    assert metrics["Other classes read as it once stamped"] == f"{np.mean(fooled == 0):.0%}"
    assert report.targets == 8 and report.others == 24
    assert "A validation set with the same bias cannot reveal a shortcut" in " ".join(
        values(at.info)
    )
    captions = image_captions(at)
    assert "clean" in captions and captions.count("with the cue") == 2  # preview + Grad-CAM
    assert state.MODEL_REGISTRY not in at.session_state  # a lab model is not registered


@pytest.mark.slow
def test_the_live_webcam_prediction_answers_each_frame_with_the_threshold(
    trained_page, monkeypatch
):
    """The live widget's frames (faked here: AppTest has no browser; the browser test uses
    Chromium's fake camera) go through the sandbox and the model; the widget is told which
    frame was answered; "not sure" below the threshold; a hostile frame gets a message."""
    from app_pages.sections import own_images_try
    from cnnlib.inspect.calibration import fit_temperature, softmax
    from tests.hostile_bursts import data_url

    at, run = trained_page
    frames, told = [], []

    def fake_widget(*, key, side, answered, on_frame, interval_ms=1000):
        told.append((side, answered))
        on_frame()  # Streamlit calls it before the rerun; the next run shows its answer

    monkeypatch.setattr(own_images_try, "live_widget", fake_widget)
    monkeypatch.setattr(own_images_try, "sent_frame", lambda key: frames.pop(0) if frames else None)
    monkeypatch.setattr(own_images_try, "LIVE_MIN_SECONDS", 0.0)
    x = run.result.x[0]  # a validation image, as the camera would send it
    frames.append({"n": 1, "image": data_url(encode(Image.fromarray(x), "PNG"), "image/png")})
    at = run_checked(run_checked(at))
    answer = at.session_state[own_images_try.LIVE]
    assert answer.n == 1 and answer.run_id == run.id and not answer.problem
    expected = run.result.model.predict(x[None].astype("float32"), verbose=0)[0]
    best = int(expected.argmax())
    assert answer.predictions[0][0] == run.result.class_names[best]
    assert answer.predictions[0][1] == pytest.approx(float(expected[best]), abs=1e-5)
    assert told[-1] == (32, 1)  # the rerun told the widget frame 1 was answered
    shown = " ".join(values(at.markdown))
    assert "(frame 1)" in shown and "confidence" in shown
    bars = [p.proto.text for p in at.get("progress") if p.proto.text.endswith("%")]
    assert len(bars) == min(3, len(run.result.class_names))
    assert bars[0].endswith(f"{answer.predictions[0][1]:.1%}")
    # above every probability: "not sure"
    at.slider(key=session.THRESHOLD).set_value(0.99)
    frames.append({"n": 2, "image": data_url(encode(Image.fromarray(x), "JPEG"))})
    at = run_checked(run_checked(at))
    assert "**Not sure** (frame 2)" in " ".join(values(at.markdown))
    # a hostile frame: a message, nothing predicted
    frames.append({"n": 3, "image": data_url(b"<svg onload=alert(1)>", "image/svg+xml")})
    at = run_checked(run_checked(at))
    assert "not a JPEG" in " ".join(values(at.warning))
    at.slider(key=session.THRESHOLD).set_value(0.0)
    # with calibrated probabilities switched on, the live answer is calibrated too
    p_val = run.result.model.predict(run.result.x.astype("float32"), verbose=0)
    t = fit_temperature(np.log(p_val.astype(np.float64)), run.result.y)  # tab ③'s T
    assert abs(np.log(t)) > 0.05  # far enough from 1 for the check below to tell
    at.toggle(key="own_photo_calibrated").set_value(True)
    frames.append({"n": 4, "image": data_url(encode(Image.fromarray(x), "PNG"), "image/png")})
    at = run_checked(run_checked(at))
    answer = at.session_state[own_images_try.LIVE]
    logits = np.log(expected.astype(np.float64))[None]
    calibrated = dict(zip(run.result.class_names, softmax(logits, t)[0], strict=True))
    assert answer.n == 4 and answer.predictions[0][0] == run.result.class_names[best]
    for name, probability in answer.predictions:
        assert probability == pytest.approx(calibrated[name], abs=2e-4)
    at.toggle(key="own_photo_calibrated").set_value(False)
    at.session_state[own_images_try.LIVE] = None
    run_checked(at)


# --------------------------------------------------------------------------------------------
# Training you can watch closely
# --------------------------------------------------------------------------------------------


def _held(job, batches: int, timeout: float = 300):
    """The first snapshot of ``job`` paused after more than ``batches`` batches (or done)."""
    found = []

    def held():
        p = job.snapshot()
        if p.done or (p.paused and p.batches_done > batches):
            found.append(p)
        return bool(found)

    assert wait_for(held, timeout), f"not held after batch {batches}: {job.snapshot()}"
    return found[0]


@pytest.mark.slow
def test_pause_step_a_new_learning_rate_resume_health_and_gradcam_from_the_page(example_env):
    """From scratch on the example (128 training images, batches of 32: 4 per epoch): Pause,
    Step one batch, a new rate from the next batch marked on the curves, Resume to the
    uninterrupted run's 4 batches, then each layer's health and the Grad-CAM of four
    validation images of four classes, their uploaded class names quoted."""
    at = open_page("own_images")
    at.select_slider(key="own_size").set_value(32)
    at.radio(key="own_recipe").set_value("scratch")
    at.number_input(key="own_epochs").set_value(1)
    run_checked(at)
    at.button(key="own_start").click()
    run_checked(at)
    job = at.session_state[session.RUN].job
    run_checked(at.button(key="own_pause").click())  # before its process has loaded TensorFlow
    assert job.pause_requested and at.button(key="own_resume")
    p = _held(job, -1)
    assert (p.state, p.stage, p.batches_done) == ("running", "scratch", 0)
    run_checked(at)
    assert any(t.startswith("**Paused**") for t in [g.proto.text for g in at.get("progress")])
    run_checked(at.button(key="own_step").click())
    assert _held(job, 0).batches_done == 1  # one batch, then held again
    run_checked(at)
    assert "Paused after 1 batch." in values(at.caption)
    assert at.select_slider(key="own_new_lr").value == 1e-3  # the recipe's rate
    run_checked(at.select_slider(key="own_new_lr").set_value(0.01))
    run_checked(at.button(key="own_set_lr").click())
    run_checked(at.button(key="own_step").click())
    p = _held(job, 1)
    assert p.batches_done == 2 and p.lr_changes == ((1, pytest.approx(0.01, rel=1e-6)),)
    run_checked(at)
    curves = json.loads(at.get("plotly_chart")[-1].proto.spec)
    marks = [s for s in curves["layout"].get("shapes", []) if s.get("type") == "line"]
    assert marks and all(m["x0"] == pytest.approx(1 / 4) for m in marks)
    table = next(t.value for t in at.table if "`learning rate`" in t.value.columns)
    assert table["`from batch`"].tolist() == [2]
    run_checked(at.button(key="own_resume").click())
    done = job.wait(300)
    assert done.state == "finished", done.error
    assert done.batches_done == 4 and not done.paused
    at = run_checked(at)
    assert float(np.asarray(job.model.optimizer.learning_rate)) == pytest.approx(0.01, rel=1e-6)
    # The model's registry entry carries the validation images as its real examples.
    entry = at.session_state[state.MODEL_REGISTRY].latest("Train on your own images")
    result = at.session_state[session.RUN].result
    assert np.array_equal(entry.examples, result.x) and len(entry.examples) == 32
    assert entry.examples_source == "the 32 validation images of your own data"
    # Each layer's health after the epoch, and what it covers.
    (health,) = done.health
    table = next(t.value for t in at.table if "`gradient norm`" in t.value.columns)
    assert table["`layer`"].tolist() == [f"`{row.name}`" for row in health.layers]
    assert [row.kind for row in health.layers] == ["Conv2D"] * 3 + ["Dense"] * 2
    assert any("Layer health after epoch 1" in m for m in values(at.markdown))
    assert any("Every layer of the convnet learns" in c for c in values(at.caption))
    # Grad-CAM of four fixed validation images, one per class, with the model's answers.
    cams, names = done.cams, done.class_names
    assert sorted(cams.labels.tolist()) == [0, 1, 2, 3]
    captions = [c for c in image_captions(at) if c.startswith("true ")]
    assert captions == [
        f"true {safe_text(names[t])} · said {safe_text(names[s])} ({c:.0%})"
        for t, s, c in zip(cams.labels, cams.predicted, cams.confidence, strict=True)
    ]
