"""The Train-on-MNIST page under AppTest, on the shared real MNIST test files (fallback split).

Rendering, the exact summary against Keras, an impossible stack, and a real (tiny) training
started from the page: queued behind a full slot, Start off while it runs, untouched by
widget clicks, its first layer watched each epoch, finished, tested, added to the session's
model registry and handed to the other pages. Refusals: a stack too big to train (with the
numbers), another page's training running in this session, a full server queue; a run ended
by the time limit says so and keeps its model. A photo of 8 × 3000 or 3000 × 8 pixels is
shown; the settings survive a visit to another page (``switch_page`` via app.py).
"""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cnnlib.core.text import safe_text
from cnnlib.models import preset_stack
from cnnlib.training import task_process, tasks
from cnnlib.training import trainer as training
from tests.conftest import ROOT
from tests.pages.apptest import open_page, run_checked, values
from ui import mnist_session, state


@pytest.fixture
def mnist_env(mnist_dir, monkeypatch):
    """Only the shared MNIST test files, no download, a fresh dataset cache."""
    from cnnlib.data import mnist as data

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("KERAS_HOME", str(mnist_dir / "no-such-keras-home"))

    def offline(name):
        raise data.DataUnavailableError("offline (test)")

    monkeypatch.setattr(data, "downloader", offline)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


_run = run_checked


def _page() -> AppTest:
    return open_page("train_mnist")


_texts = values


def test_renders_with_the_labelled_fallback_and_an_exact_summary(mnist_env):
    keras = pytest.importorskip("keras")
    from cnnlib.models import DEFAULT_PRESET, MNIST_PRESETS

    at = _page()
    infos = " ".join(_texts(at.info))
    assert "Fallback data" in infos and "8,000 for training / 2,000 for testing" in infos
    assert "t10k" not in infos or "missing" in infos
    assert not at.button(key="mnist_start").disabled
    table = at.table[0].value
    model = MNIST_PRESETS[DEFAULT_PRESET]()
    # Row 0 is the input; then one row per Keras layer, same shapes, same counts.
    assert table["Layer"].tolist()[1:] == [layer.name for layer in model.layers]
    shapes = ["×".join(str(d) for d in layer.output.shape[1:]) for layer in model.layers]
    assert table["Output shape"].tolist()[1:] == shapes
    counts = [layer.count_params() for layer in model.layers]
    assert [int(p.replace(",", "")) for p in table["Parameters"].tolist()[1:]] == counts
    total = model.count_params()
    assert [m.value for m in at.metric if m.label == "Total parameters"] == [f"{total:,}"]
    assert isinstance(model, keras.Model)


def test_nothing_available_says_what_was_tried_and_the_builder_still_works(tmp_path, monkeypatch):
    from cnnlib.data import mnist as data

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path))  # an empty folder
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(name):
        raise data.DataUnavailableError("offline (test)")

    monkeypatch.setattr(data, "downloader", offline)
    st.cache_data.clear()
    try:
        at = _page()
    finally:
        st.cache_data.clear()
    warning = " ".join(_texts(at.warning))
    assert "MNIST digits is not available" in warning
    assert str(tmp_path) in warning and "CNNLAB_DATA_DIR" in warning  # what was tried
    assert "To get the data" in warning  # how to get it
    assert at.button(key="mnist_start").disabled
    assert at.button(key="mnist_exp_start").disabled
    assert at.button(key="mnist_data_retry")  # look again after adding the files
    assert [m.value for m in at.metric if m.label == "Total parameters"]  # builder works


@pytest.mark.slow
def test_fashion_mnist_from_debian(mnist_env, fashion_dir):
    at = _page()
    at.radio(key="mnist_dataset").set_value("fashion_mnist")
    _run(at)
    assert "Fashion-MNIST (full dataset): 60,000 training images, 10,000 test images" in [
        c.value for c in at.caption
    ]
    assert at.slider(key="mnist_train_size_fashion_mnist").value == 12_000
    assert not at.button(key="mnist_start").disabled


def test_the_tutorial_preset_shows_93322_parameters(mnist_env):
    at = _page()
    at.selectbox(key="mnist_preset").select("Tutorial convnet")
    _run(at)
    assert [m.value for m in at.metric if m.label == "Total parameters"] == ["93,322"]
    # Its training settings came with it (the tutorials' rmsprop, batch 64, 5 epochs).
    assert at.selectbox(key="mnist_optimizer").value == "rmsprop"
    assert at.selectbox(key="mnist_batch").value == 64
    assert at.number_input(key="mnist_epochs").value == 5


def test_a_preset_updates_same_kind_layers_in_place(mnist_env):
    """Fast → Intro convnet: the first layer is a Conv2D in both, so it keeps its uid (its
    widgets are updated, not drawn anew) and shows the preset's values, not the edited ones;
    the second layer changes kind, so it is a new layer with new widgets."""
    at = _page()
    _run(at)
    (first, _), (second, _) = at.session_state["mnist_stack"][:2]
    at.number_input(key=f"mnist_layer{first}_filters").set_value(17)
    _run(at)
    at.selectbox(key="mnist_preset").select("Intro convnet")
    _run(at)
    stack = at.session_state["mnist_stack"]
    assert stack[0][0] == first
    assert stack[1][0] not in (first, second)  # BatchNormalization → Conv2D: a new layer
    assert at.number_input(key=f"mnist_layer{first}_filters").value == 64
    assert at.number_input(key=f"mnist_layer{first}_strides").value == 1  # Fast's was 2
    assert at.selectbox(key=f"mnist_layer{first}_padding").value == "valid"  # was "same"
    assert at.number_input(key=f"mnist_layer{stack[1][0]}_filters").value == 32
    assert [spec for _, spec in stack] == preset_stack("Intro convnet")
    # 640 + 18,464 + 184,330 (two 3×3 convolutions, then 24·24·32 → 10)
    assert [m.value for m in at.metric if m.label == "Total parameters"] == ["203,434"]


@pytest.mark.slow
def test_an_impossible_stack_is_refused_naming_the_layer(mnist_env):
    at = _page()
    layers = list(at.session_state["mnist_stack"])
    index = next(i for i, (_, spec) in enumerate(layers) if spec.kind == "Flatten")
    at.button(key=f"mnist_remove{layers[index][0]}").click()
    _run(at)
    errors = " ".join(_texts(at.error))
    # The layer after the removed Flatten is now a Dense layer on a 3-D tensor.
    assert "cannot be built" in errors and f"Layer {index + 1} (Dense" in errors
    assert "Add a Flatten layer before it" in errors
    assert at.button(key="mnist_start").disabled
    # "Add layer" offers the place before the output layer; put Flatten back where it was.
    assert at.selectbox(key="mnist_add_position").value == len(layers) - 1
    at.selectbox(key="mnist_add_kind").select("Flatten")
    at.selectbox(key="mnist_add_position").select(index + 1)
    at.button(key="mnist_add").click()
    _run(at)
    assert [s.kind for _, s in at.session_state["mnist_stack"]] == [s.kind for _, s in layers]
    assert not at.error and not at.button(key="mnist_start").disabled


@pytest.mark.slow
def test_a_tiny_training_from_the_page(mnist_env, monkeypatch):
    """Queued behind a full slot → runs → widget clicks and a second Start do not disturb
    it → finishes → test accuracy, confusion matrix, model in session state."""
    slots = training.TrainingSlots(1)
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", slots)
    blocker, cancelled = object(), threading.Event()
    assert slots.acquire(blocker, cancelled)  # another session's training holds the slot

    at = _page()
    at.slider(key="mnist_train_size_mnist").set_value(1000)
    at.number_input(key="mnist_epochs").set_value(1)
    at.selectbox(key="mnist_batch").select(32)  # 900 training images → 29 steps
    at.button(key="mnist_start").click()
    _run(at)
    job = at.session_state[mnist_session.RUN].job
    assert job.snapshot().state == "queued"
    assert any("Waiting for a free training slot" in t for t in _texts(at.info))

    slots.release(blocker)
    deadline = time.monotonic() + 120
    while job.snapshot().state == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
    # Clicks elsewhere while it trains: other widgets, another preset, the same Start again.
    at.slider(key="mnist_pen").set_value(30)
    at.selectbox(key="mnist_preset").select("Dense baseline")
    _run(at)
    if not job.done:  # Start is off while it runs, saying why
        assert at.button(key="mnist_start").disabled
        assert "A training from Train on MNIST is running in this session: stop it or wait" in (
            " ".join(_texts(at.warning))
        )
    assert at.session_state[mnist_session.RUN].job is job
    assert job.snapshot().state in ("running", "finished")

    while not job.done and time.monotonic() < deadline:
        time.sleep(0.5)
        _run(at)
    progress = job.snapshot()
    assert progress.state == "finished", progress.error
    _run(at)
    metrics = {m.label: m.value for m in at.metric}
    accuracy = float(metrics["Test accuracy"].rstrip("%")) / 100
    assert accuracy > 0.5  # 900 real digits, one epoch: far above chance (10 %)
    assert metrics["Test images"] == "2,000"
    assert accuracy == pytest.approx(progress.test_accuracy, abs=5e-5)
    entry = at.session_state[state.MODEL_REGISTRY].latest("Train on MNIST")
    model = entry.model
    assert model is job.model and model.output_shape == (None, 10)
    assert "Fast convnet (default)" in entry.description
    assert entry.class_names == tuple(str(d) for d in range(10))
    assert entry.input_shape == (28, 28, 1)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heatmaps = [c for c in charts if c["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 1
    assert int(np.sum(heatmaps[0]["data"][0]["z"])) == 2000
    assert any("Finished" in t for t in [p.proto.text for p in at.get("progress")])
    # Watching it learn: the last epoch's filters and the first test digit's maps beside the
    # curves, equal to the trained model's first Conv2D kernel.
    watch = progress.watch
    assert watch is not None and watch.epoch == 1
    conv = next(layer for layer in model.layers if layer.name == watch.layer)
    np.testing.assert_array_equal(watch.filters, np.asarray(conv.kernel))
    captions = [c for image in at.get("image") for c in image.captions]
    assert any(c.startswith("Filters: blue negative") for c in captions), captions
    assert any(c.startswith("Its feature maps") for c in captions)
    # The session's model registry holds it, and the page names the entry.
    entry = at.session_state[state.MODEL_REGISTRY].latest()
    assert entry.model is model and entry.source_page == "Train on MNIST"
    assert entry.name == f"MNIST · Fast convnet (default) · {100 * accuracy:.1f} %"
    assert entry.class_names == tuple(str(d) for d in range(10))
    assert entry.input_shape == (28, 28, 1) and "test accuracy" in entry.description
    assert any(entry.name in t for t in _texts(at.success))
    # Calibration: the test set's ECE of the model's own probabilities, and T fitted on the
    # run's validation images (the same seeded split), never on the test set.
    from cnnlib import calibration as cal
    from cnnlib.data.training_data import ArrayData
    from ui.datasets import load_for_page

    info, config = at.session_state[mnist_session.RUN].info, job.config
    probabilities = model.predict(info.x_test[..., None].astype(np.float32), verbose=0)
    ece = cal.reliability(probabilities, info.y_test).ece
    assert metrics["Expected calibration error"] == f"{ece:.2%}"
    ds = load_for_page("mnist")
    split = {"validation_split": config.validation_split, "train_size": config.train_size}
    data = ArrayData.from_tuple(
        ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)), seed=config.seed, **split
    )
    x_val, y_val = data.arrays["validation"]
    assert len(y_val) == round(1000 * config.validation_split)
    t = cal.fit_temperature(cal.model_logits(model, x_val.astype(np.float32)), y_val)
    assert metrics["Temperature T (fitted on validation)"] == f"{t:.3g}"
    scaled = cal.softmax(cal.model_logits(model, info.x_test[..., None]), t)
    assert (
        metrics["ECE after temperature scaling"]
        == f"{cal.reliability(scaled, info.y_test).ece:.2%}"
    )
    bins = next(t.value for t in at.table if "confidence bin" in t.value.columns)
    assert bins["images"].sum() == 2000
    # The draw tab can show the temperature-scaled probabilities of a digit.
    from PIL import Image

    from cnnlib.data.digits import prepare_digit

    png = _strip_png(120, 160)
    _run(at.radio(key="mnist_draw_or_upload").set_value("Upload a photo"))
    _run(at.file_uploader(key="mnist_photo_upload").set_value(("d.png", png, "image/png")))
    x = prepare_digit(Image.open(io.BytesIO(png))).pixels[None, :, :, None]
    own = model.predict(x, verbose=0)[0]
    reads = [m.value for m in at.markdown if m.value.startswith("The model reads")]
    assert reads == [
        f"The model reads **{int(own.argmax())}** with probability **{own.max():.1%}**."
    ]
    _run(at.toggle(key="mnist_draw_calibrated").set_value(True))
    scaled = cal.softmax(cal.model_logits(model, x), t)[0]
    reads = [m.value for m in at.markdown if m.value.startswith("The model reads")]
    assert reads == [
        f"The model reads **{int(own.argmax())}** with probability **{scaled.max():.1%}**."
    ]


@pytest.mark.slow
def test_draw_tab_switches_to_photo_upload_without_errors(mnist_env):
    at = _page()
    assert any("Draw a digit in the black square" in t for t in _texts(at.info))
    at.radio(key="mnist_draw_or_upload").set_value("Upload a photo")
    _run(at)
    assert at.radio(key="mnist_photo_source").value == "Upload"
    assert any("Upload a JPEG, PNG" in t for t in _texts(at.info))
    assert state.DRAWN_DIGIT not in at.session_state


def _strip_png(width: int, height: int) -> bytes:
    """A dark stroke on light paper, ``width`` × ``height`` pixels (PNG)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (235, 235, 235))
    ImageDraw.Draw(img).line([(0, 0), (width - 1, height - 1)], fill=(20, 20, 20), width=4)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(8, 3000), (3000, 8)])
def test_an_extreme_photo_of_a_digit_is_shown(mnist_env, size):
    """An 8 × 3000 or 3000 × 8 upload is shown letterboxed (``st.image`` used to raise)."""
    at = _page()
    at.radio(key="mnist_draw_or_upload").set_value("Upload a photo")
    _run(at)
    name = f"strip_{size[0]}x{size[1]}.png"
    at.file_uploader(key="mnist_photo_upload").set_value((name, _strip_png(*size), "image/png"))
    _run(at)
    shown = [img for img in at.get("image") if safe_text(name) in img.captions]
    assert len(shown) == 1
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_settings_survive_a_visit_to_another_page(mnist_env, fashion_dir):
    """Dataset, preset, an edited layer and the hyperparameters, after Home → Convolution lab
    → back (``persist_state="session"``; without it the dataset went back to MNIST)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    _run(at)
    _run(at.switch_page("app_pages/train_mnist.py"))
    at.radio(key="mnist_dataset").set_value("fashion_mnist")
    at.selectbox(key="mnist_preset").select("Tutorial convnet")
    _run(at)
    uid = at.session_state["mnist_stack"][0][0]
    at.number_input(key=f"mnist_layer{uid}_filters").set_value(17)
    at.selectbox(key="mnist_optimizer").select("sgd")
    at.number_input(key="mnist_epochs").set_value(7)
    at.slider(key="mnist_train_size_fashion_mnist").set_value(3000)
    at.radio(key="mnist_draw_or_upload").set_value("Upload a photo")
    _run(at)
    _run(at.switch_page("app_pages/convolution_lab.py"))
    assert not [r for r in at.radio if r.key == "mnist_dataset"]  # really elsewhere
    _run(at.switch_page("app_pages/train_mnist.py"))
    assert at.radio(key="mnist_dataset").value == "fashion_mnist"
    assert at.selectbox(key="mnist_preset").value == "Tutorial convnet"
    assert at.number_input(key=f"mnist_layer{uid}_filters").value == 17
    assert at.session_state["mnist_stack"][0][1].filters == 17
    assert at.selectbox(key="mnist_optimizer").value == "sgd"
    assert at.number_input(key="mnist_epochs").value == 7
    assert at.slider(key="mnist_train_size_fashion_mnist").value == 3000
    assert at.radio(key="mnist_draw_or_upload").value == "Upload a photo"


def _conv_stack(filters: int, count: int) -> list:
    from cnnlib.models import LayerSpec

    convs = [LayerSpec.conv2d(filters, 3, padding="same") for _ in range(count)]
    specs = [*convs, LayerSpec.flatten(), LayerSpec.dense(10, activation="softmax")]
    return [[i, spec] for i, spec in enumerate(specs)]


def test_a_stack_too_big_to_train_is_refused_with_the_numbers(mnist_env):
    """Three same-padded 128-filter convolutions at 28 × 28, batch 512: refused, with the
    estimate and the largest batch that fits; batch 16 fits and shows its estimate."""
    from cnnlib.core.budgets import budgets
    from cnnlib.training.cost import training_cost

    session = {"mnist_stack": _conv_stack(128, 3), "mnist_next_uid": 5}
    at = open_page("train_mnist", session=session)
    at.selectbox(key="mnist_batch").select(512)
    _run(at)
    stack = [spec for _, spec in at.session_state["mnist_stack"]]
    cost = training_cost(stack, (28, 28, 1), 512)
    # Independent arithmetic: input + Rescaling + 3 convs (28·28·128) + Flatten + Dense.
    values = 784 + 784 + 3 * 28 * 28 * 128 + 28 * 28 * 128 + 10
    assert cost.activation_values_per_image == values
    assert cost.activation_bytes == values * 512 * 4 * 3 > budgets().training_activation_bytes
    warning = " ".join(_texts(at.warning))
    assert "too big to train here" in warning
    assert f"{cost.multiply_adds:,} multiply-adds" in warning
    assert f"Use a batch size of at most {cost.max_batch(budgets())}" in warning
    assert at.button(key="mnist_start").disabled
    at.selectbox(key="mnist_batch").select(16)
    _run(at)
    assert not at.button(key="mnist_start").disabled and not at.warning
    assert any(c.startswith("One batch of 16: ≈ ") for c in _texts(at.caption))


class _Running:
    """Stands for another page's training handle while it runs."""

    done = False


def test_a_training_running_on_another_page_turns_start_off(mnist_env):
    handle = _Running()
    at = open_page("train_mnist", session={state.RUNNING_TASK: ("Feature maps", handle)})
    message = "A training from Feature maps is running in this session: stop it or wait"
    assert message in " ".join(_texts(at.warning))
    assert at.button(key="mnist_start").disabled
    assert at.button(key="mnist_exp_start").disabled
    handle.done = True  # it ended: Start is back
    _run(at)
    assert not at.button(key="mnist_start").disabled
    assert not at.button(key="mnist_exp_start").disabled
    assert message not in " ".join(_texts(at.warning))


def test_a_full_server_queue_says_try_again(mnist_env, monkeypatch):
    """One slot held by another session and no room to wait: Start explains, starts nothing."""
    slots = training.TrainingSlots(1, max_waiting=0)
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", slots)
    blocker = object()
    assert slots.acquire(blocker, threading.Event())
    try:
        at = _page()
        at.button(key="mnist_start").click()
        _run(at)
    finally:
        slots.release(blocker)
    errors = " ".join(_texts(at.error))
    assert "The server is busy: 1 training is running and 0 waiting. Try again in a minute." in (
        errors
    )
    assert mnist_session.RUN not in at.session_state and slots.waiting == 0
    assert not at.button(key="mnist_start").disabled


@pytest.mark.slow
def test_a_run_ended_by_the_time_limit_says_so_and_keeps_its_model(mnist_env, monkeypatch):
    monkeypatch.setenv("CNNLAB_TRAINING_SECONDS", "1")
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", training.TrainingSlots(2))
    # The limit passes while the training's process starts: on a loaded machine it may take
    # longer than the usual grace to reach a batch and stop there.
    monkeypatch.setattr(task_process, "STOP_GRACE_SECONDS", 600.0)
    at = _page()
    at.slider(key="mnist_train_size_mnist").set_value(1000)
    at.number_input(key="mnist_epochs").set_value(50)  # far more than 1 s here
    at.selectbox(key="mnist_batch").select(32)
    at.button(key="mnist_start").click()
    _run(at)
    job = at.session_state[mnist_session.RUN].job
    progress = job.wait(180)
    assert progress.state == "stopped" and progress.epoch < 50
    _run(at)
    assert "Stopped after 1 s, the time limit per run here" in " ".join(_texts(at.warning))
    if job.model is not None:  # it had trained at least one batch: tested and kept
        entry = at.session_state[state.MODEL_REGISTRY].latest("Train on MNIST")
        assert entry is not None and entry.model is job.model
        assert any("Kept in this session's models as" in t for t in _texts(at.success))


def _held(job, batches: int, timeout: float = 180):
    """The first snapshot of ``job`` paused after more than ``batches`` batches (or done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = job.snapshot()
        if p.done or (p.paused and p.batches_done > batches):
            return p
        time.sleep(0.05)
    raise AssertionError(f"not held after batch {batches}: {job.snapshot()}")


@pytest.mark.slow
def test_pause_step_a_new_learning_rate_and_resume_from_the_page(mnist_env, monkeypatch):
    monkeypatch.setattr(tasks, "_DEFAULT_SLOTS", training.TrainingSlots(2))
    at = _page()
    at.slider(key="mnist_train_size_mnist").set_value(1000)
    at.number_input(key="mnist_epochs").set_value(1)
    at.selectbox(key="mnist_batch").select(32)  # 900 training images → 29 steps
    at.selectbox(key="mnist_lr_schedule").select("constant")
    at.button(key="mnist_start").click()
    _run(at)
    job = at.session_state[mnist_session.RUN].job
    _run(at.button(key="mnist_pause").click())  # before its process has loaded TensorFlow
    assert job.pause_requested and at.button(key="mnist_resume")
    assert at.button(key="mnist_step").disabled  # not held yet: a Step would count later
    p = _held(job, -1)
    assert (p.state, p.batches_done) == ("running", 0)
    _run(at)
    assert any(t.startswith("**Paused**") for t in [g.proto.text for g in at.get("progress")])
    assert not at.button(key="mnist_step").disabled
    _run(at.button(key="mnist_step").click())
    assert _held(job, 0).batches_done == 1  # one batch, then held again
    _run(at)
    assert "Paused after 1 batch." in _texts(at.caption)
    _run(at.select_slider(key="mnist_new_lr").set_value(0.01))
    _run(at.button(key="mnist_set_lr").click())
    _run(at.button(key="mnist_step").click())
    p = _held(job, 1)
    assert p.batches_done == 2 and len(p.lr_changes) == 1
    assert p.lr_changes[0][0] == 1 and p.lr_changes[0][1] == pytest.approx(0.01, rel=1e-6)
    _run(at)
    # The curves mark the change at batch 2 of 29, and the table says so.
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = [s for s in curves["layout"].get("shapes", []) if s.get("type") == "line"]
    assert marks and all(m["x0"] == pytest.approx(1 / 29) for m in marks)
    table = next(t.value for t in at.table if "`learning rate`" in t.value.columns)
    assert table["`from batch`"].tolist() == [2]
    assert table["`learning rate`"].tolist() == ["`0.01`"]  # shown as plain text
    _run(at.button(key="mnist_resume").click())
    done = job.wait(180)
    assert done.state == "finished", done.error
    assert done.batches_done == 29 and not done.paused
    lr = float(np.asarray(job.model.optimizer.learning_rate))
    assert lr == pytest.approx(0.01, rel=1e-6)
    # Each layer's health after the epoch: a row per layer with a kernel or a ReLU.
    _run(at)
    (health,) = done.health
    table = next(t.value for t in at.table if "`gradient norm`" in t.value.columns)
    assert table["`layer`"].tolist() == [f"`{row.name}`" for row in health.layers]
    kinds = {layer.name: type(layer).__name__ for layer in job.model.layers}
    assert [kinds[row.name] for row in health.layers] == [row.kind for row in health.layers]
    assert sum(row.kind == "Conv2D" for row in health.layers) == 2  # the default recipe's
    assert any("Layer health after epoch 1" in m.value for m in at.markdown)
    # Grad-CAM of the four fixed validation images after the epoch, with the model's answers.
    cams = done.cams
    captions = [c for image in at.get("image") for c in image.captions if c.startswith("true ")]
    assert captions == [
        f"true {label} · said {answer} ({p:.0%})"
        for label, answer, p in zip(cams.labels, cams.predicted, cams.confidence, strict=True)
    ]
