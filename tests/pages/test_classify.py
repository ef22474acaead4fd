"""The Classify page under AppTest, with ResNet50 loaded from a local weights file
(``CNNLAB_RESNET50_WEIGHTS``; random weights, so the page must say they are not ImageNet's):
sample, upload of several files with one bad, camera, crop, Grad-CAM controls, and the
missing-weights path (message, preprocessing still shown, no predictions), 8 × 3000 and
3000 × 8 uploads, and options that survive a visit to another page.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnlib.data import samples
from cnnlib.inspect import imagenet
from cnnlib.models.pretrained import RESNET50
from tests.conftest import ROOT
from tests.imagenet_weights import missing_weights_file, resnet50_weights_file
from tests.markdown import outside_code_spans
from tests.pages.apptest import image_captions, open_page, run_checked
from tests.uploads import encode


@pytest.fixture
def local_weights(monkeypatch):
    monkeypatch.setenv(RESNET50.env_var, str(resnet50_weights_file()))


_run = run_checked


def _page() -> AppTest:
    return open_page("classify")


_image_captions = image_captions


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def _bar_labels(chart: dict) -> list[str]:
    return list(chart["data"][0]["y"])


def _jpeg(name: str) -> bytes:
    return encode(samples.load_sample(name), "JPEG", quality=92)


@pytest.mark.slow
def test_sample_photo_every_step_top5_and_grad_cam(local_weights):
    at = _page()
    headers = [h.value for h in at.subheader]
    assert len(headers) == 5 and headers[0].startswith("1 ·") and headers[4].startswith("5 ·")
    # Honest about the weights: a warning, and no claim of ImageNet predictions.
    assert any("not** Keras' official ImageNet" in w.value for w in at.warning)
    assert not any("Top-5 of ImageNet's" in m.value for m in at.markdown)
    assert any("unverified weights" in m.value for m in at.markdown)
    # Steps: shapes and the subtracted means come from the real computation.
    steps = imagenet.pipeline_steps(samples.load_sample("cat (chelsea)"))
    code = at.code[0].value
    assert "(224, 224, 3)" in code and "(1, 224, 224, 3)" in code
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["subtracted (ImageNet mean)"], steps.subtracted_bgr, atol=1e-3)
    assert any("Original: 451×300" in c for c in _image_captions(at))
    assert any("squashed from 451×300" in c for c in _image_captions(at))
    # Top-5 chart and inference time, Grad-CAM overlay and the map alone.
    charts = _charts(at)
    assert len(charts) == 2
    assert len(_bar_labels(charts[0])) == 5
    assert any(c.value.startswith("Inference (one forward pass") for c in at.caption)
    assert any(c.startswith("Grad-CAM overlay for") for c in _image_captions(at))
    assert "7×7 Grad-CAM from conv5_block3_out" in charts[1]["layout"]["title"]["text"]


@pytest.mark.slow
def test_grad_cam_class_choice_opacity_and_crop(local_weights):
    at = _page()
    labels = _bar_labels(_charts(at)[0])
    at.radio(key="classify_cam_class").set_value(2)
    at.slider(key="classify_opacity").set_value(0.8)
    _run(at)
    third = labels[2].rsplit(" (", 1)[0]
    assert any(
        c.startswith(f"Grad-CAM overlay for “{third}”") and "opacity 0.80" in c
        for c in _image_captions(at)
    )
    at.toggle(key="classify_crop").set_value(True)
    _run(at)
    assert any("centre square 300×300 (from x=75, y=0)" in c for c in _image_captions(at))


@pytest.mark.slow
def test_upload_several_files_one_bad(local_weights, monkeypatch):
    preprocessed = []
    steps = imagenet.pipeline_steps
    monkeypatch.setattr(
        imagenet, "pipeline_steps", lambda image, **kw: preprocessed.append(1) or steps(image, **kw)
    )
    at = _page()
    at.radio(key="classify_source").set_value("Upload")
    _run(at)
    assert any("Upload a JPEG" in i.value for i in at.info)
    preprocessed.clear()
    at.file_uploader(key="classify_upload").set_value(
        [
            ("coffee.jpg", _jpeg("coffee cup"), "image/jpeg"),
            ("broken.jpg", b"not really a jpeg", "image/jpeg"),
            ("rocket.jpg", _jpeg("rocket"), "image/jpeg"),
        ]
    )
    _run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert any(h.value == "2 photos" for h in at.subheader)
    charts = _charts(at)
    assert len(charts) == 2 + 2  # one compact chart per good photo, then the detail view
    assert len(preprocessed) == 2  # each new photo once (not once more to classify it)
    at.selectbox(key="classify_detail").set_value(1)
    _run(at)
    assert any("Original: 640×427" in c for c in _image_captions(at))


@pytest.mark.slow
def test_camera_photo(local_weights):
    at = _page()
    at.radio(key="classify_source").set_value("Camera")
    _run(at)
    assert not at.get("plotly_chart")
    at.camera_input(key="classify_camera").set_value(
        ("photo.jpg", _jpeg("astronaut"), "image/jpeg")
    )
    _run(at)
    assert not at.error
    assert any("Original: 512×512" in c for c in _image_captions(at))
    assert len(_bar_labels(_charts(at)[0])) == 5


@pytest.mark.slow
def test_missing_weights_message_steps_still_shown(monkeypatch):
    monkeypatch.setenv(RESNET50.env_var, str(missing_weights_file()))
    at = _page()
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    for needed in (RESNET50.file_name, RESNET50.env_var, str(missing_weights_file())):
        assert needed in errors[0]
    headers = [h.value for h in at.subheader]
    assert [h[:1] for h in headers] == ["1", "2", "3", "4"]
    assert at.dataframe and at.code
    assert not at.get("plotly_chart")  # no predictions without weights
    assert any("No predictions" in i.value for i in at.info)


@pytest.mark.slow
def test_camera_photo_that_is_not_an_image(local_weights):
    at = _page()
    at.radio(key="classify_source").set_value("Camera")
    _run(at)
    at.camera_input(key="classify_camera").set_value(("photo.jpg", b"\xff\xd8 junk", "image/jpeg"))
    _run(at)
    assert any("camera photo" in e.value for e in at.error)
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_grayscale_sample_is_classified(local_weights):
    at = _page()
    at.selectbox(key="classify_sample").set_value("camera man")
    _run(at)
    assert len(_bar_labels(_charts(at)[0])) == 5
    assert any("Original: 512×512" in c for c in _image_captions(at))


def _strip_png(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width)
    return encode(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))


@pytest.mark.slow
@pytest.mark.parametrize("size", [(8, 3000), (3000, 8)])
def test_an_extreme_upload_is_shown_and_classified(local_weights, size):
    """8 × 3000 and 3000 × 8 photos are shown letterboxed (``st.image`` used to raise)."""
    at = _page()
    at.radio(key="classify_source").set_value("Upload")
    _run(at)
    name = f"strip_{size[0]}x{size[1]}.png"
    at.file_uploader(key="classify_upload").set_value([(name, _strip_png(*size), "image/png")])
    _run(at)
    assert not at.error, [e.value for e in at.error]
    assert any(f"Original: {size[0]}×{size[1]} pixels" in c for c in _image_captions(at))
    assert len(_bar_labels(_charts(at)[0])) == 5


@pytest.mark.slow
def test_options_survive_a_visit_to_another_page(local_weights):
    """Image source, sample, crop, Grad-CAM class and opacity after Convolution lab → back."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    _run(at)
    _run(at.switch_page("app_pages/classify.py"))
    at.selectbox(key="classify_sample").set_value("camera man")
    at.toggle(key="classify_crop").set_value(True)
    at.slider(key="classify_opacity").set_value(0.8)
    _run(at)
    _run(at.radio(key="classify_cam_class").set_value(3))
    _run(at.switch_page("app_pages/convolution_lab.py"))
    assert not [t for t in at.toggle if t.key == "classify_crop"]  # really elsewhere
    _run(at.switch_page("app_pages/classify.py"))
    assert at.selectbox(key="classify_sample").value == "camera man"
    assert at.toggle(key="classify_crop").value is True
    assert at.slider(key="classify_opacity").value == 0.8
    assert at.radio(key="classify_cam_class").value == 3
    assert any("centre square 512×512" in c for c in _image_captions(at))
    at.radio(key="classify_source").set_value("Camera")
    _run(at)
    _run(at.switch_page("app_pages/convolution_lab.py"))
    _run(at.switch_page("app_pages/classify.py"))
    assert at.radio(key="classify_source").value == "Camera"


@pytest.mark.slow
def test_saliency_side_by_side_only_while_open(local_weights):
    """Section 6 computes nothing while closed; open, it shows one overlay per chosen method,
    each captioned with its seconds, for the chosen top-5 class; occlusion adds its sliders;
    a rerun that changes nothing the maps depend on takes them from the session's cache."""
    from cnnlib.inspect import saliency
    from ui import saliency_view as sv

    at = _page()
    assert not [c for c in _image_captions(at) if c.startswith("Grad-CAM++ ·")]
    at.session_state["classify_saliency_open"] = True
    _run(at)
    shown = [c for c in _image_captions(at) if " · " in c and c.endswith(" s")]
    assert [c.split(" · ")[0] for c in shown] == [
        saliency.METHOD_LABELS[m] for m in sv.DEFAULT_METHODS
    ]
    labels = _bar_labels(_charts(at)[0])
    second = labels[1].rsplit(" (", 1)[0]
    classes = at.radio(key="classify_saliency_class")
    classes.set_value(classes.options[1])
    at.pills(key="classify_saliency_methods").set_value(["gradcam", "occlusion"])
    _run(at)
    assert any(f"evidence for “{second}" in c.value for c in at.caption)
    assert at.slider(key="classify_occlusion_patch").value == 32
    at.slider(key="classify_occlusion_patch").set_value(112)
    at.slider(key="classify_occlusion_stride").set_value(56)
    _run(at)
    assert any("about 9 forward passes" in c.value for c in at.caption)
    shown = [c for c in _image_captions(at) if " · " in c and c.endswith(" s")]
    assert [c.split(" · ")[0] for c in shown] == ["Grad-CAM", "Occlusion"]
    _run(at.slider(key="classify_opacity").set_value(0.7))  # display only: same maps
    assert [c for c in _image_captions(at) if " · " in c and c.endswith(" s")] == shown


@pytest.mark.slow
def test_photos_per_run_are_capped_and_names_escaped(monkeypatch):
    """More photos than ``budgets().classify_photos``: only the first N, said plainly; file
    names (from the learner's computer) are shown as text, not as markdown links."""
    from cnnlib.core.text import safe_text

    monkeypatch.setenv(RESNET50.env_var, str(missing_weights_file()))  # fast: no model
    monkeypatch.setenv("CNNLAB_CLASSIFY_PHOTOS", "3")
    photo = encode(Image.new("RGB", (40, 30), (200, 80, 20)), "PNG")
    names = [f"[p{i}](http://evil.example).png" for i in range(5)]
    at = _page()
    at.radio(key="classify_source").set_value("Upload")
    _run(at)
    at.file_uploader(key="classify_upload").set_value([(n, photo, "image/png") for n in names])
    _run(at)
    assert any(
        "5 photos were given: only the first 3 are classified" in w.value for w in at.warning
    )
    assert any(h.value == "3 photos" for h in at.subheader)
    captions = _image_captions(at)
    assert [f"{i + 1}. {safe_text(n)}" for i, n in enumerate(names[:3])] == [
        c for c in captions if c[:2] in ("1.", "2.", "3.")
    ]
    assert not any("](http" in outside_code_spans(c) for c in captions)
    assert len(at.selectbox(key="classify_detail").options) == 3
