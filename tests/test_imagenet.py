"""cnnlib.inspect.imagenet: each step against Keras' own functions, offline class names,
classification end to end, Grad-CAM against an independent computation, thread safety, and
what the classify path does with awkward uploads.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
from PIL import Image

from cnnlib.core.errors import InvalidArgumentError, InvalidImageError
from cnnlib.data import samples
from cnnlib.data.images import load_image
from cnnlib.inspect import imagenet
from tests.imagenet_weights import resnet50_loaded, resnet50_reference
from tests.uploads import encode, png_declaring

PHOTOS = ["cat (chelsea)", "coffee cup", "rocket", "astronaut", "camera man"]


@pytest.fixture(scope="module")
def resnet():
    return resnet50_loaded()


@pytest.fixture(scope="module")
def cat():
    return samples.load_sample("cat (chelsea)")


# ---------------------------------------------------------------- class names


def test_class_index_is_keras_file_byte_for_byte():
    from keras.src.applications import imagenet_utils

    data = imagenet.CLASS_INDEX_PATH.read_bytes()
    assert hashlib.md5(data).hexdigest() == imagenet.CLASS_INDEX_MD5
    assert f'file_hash="{imagenet.CLASS_INDEX_MD5}"' in inspect.getsource(imagenet_utils)
    index = imagenet.class_index()
    assert sorted(index) == list(range(1000))
    assert len({wnid for wnid, _ in index.values()}) == 1000


@pytest.mark.parametrize(
    ("class_id", "wnid", "name"),
    [
        (281, "n02123045", "tabby"),
        (282, "n02123159", "tiger_cat"),
        (285, "n02124075", "Egyptian_cat"),
        (504, "n03063599", "coffee_mug"),
        (967, "n07920052", "espresso"),
        (0, "n01440764", "tench"),
        (999, "n15075141", "toilet_tissue"),
    ],
)
def test_known_class_ids(class_id, wnid, name):
    assert imagenet.class_index()[class_id] == (wnid, name)
    assert imagenet.class_name(class_id) == name


def test_decode_matches_keras_decode_predictions(monkeypatch):
    from keras.src.applications import imagenet_utils

    # Give Keras our file instead of its download: then both decoders must agree.
    monkeypatch.setattr(
        imagenet_utils, "CLASS_INDEX", json.loads(imagenet.CLASS_INDEX_PATH.read_text())
    )
    probs = np.random.default_rng(1).dirichlet(np.ones(1000), size=1).astype(np.float32)
    theirs = keras.applications.resnet50.decode_predictions(probs, top=5)[0]
    ours = imagenet.decode(probs, top=5)
    assert [(imagenet.class_index()[p.class_id][0], p.name) for p in ours] == [
        (wnid, name) for wnid, name, _ in theirs
    ]
    np.testing.assert_allclose([p.probability for p in ours], [s for *_, s in theirs])
    assert ours[0].label == ours[0].name.replace("_", " ")


def test_decode_rejects_wrong_shapes():
    with pytest.raises(InvalidArgumentError, match="1000"):
        imagenet.decode(np.zeros(10))
    with pytest.raises(InvalidArgumentError, match="top"):
        imagenet.decode(np.zeros(1000), top=0)
    with pytest.raises(InvalidArgumentError):
        imagenet.class_name(1000)


# ---------------------------------------------------------------- preprocessing steps


@pytest.mark.parametrize("crop", [False, True])
@pytest.mark.parametrize("name", PHOTOS)
def test_resize_equals_keras_load_img(tmp_path, name, crop):
    image = samples.load_sample(name)
    path = tmp_path / "photo.png"
    image.save(path)
    theirs = keras.utils.load_img(path, target_size=(224, 224), keep_aspect_ratio=crop)
    ours = imagenet.resize_for_model(image, crop=crop)
    assert ours.size == (224, 224) and ours.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_prepare_equals_the_tutorial_recipe(tmp_path, cat):
    path = tmp_path / "cat.png"
    cat.save(path)
    x = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224)))
    x = np.expand_dims(x, axis=0)
    np.testing.assert_array_equal(imagenet.to_batch(imagenet.resize_for_model(cat)), x)
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    ours = imagenet.prepare(cat)
    assert ours.shape == (1, 224, 224, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    # Independently: RGB → BGR, minus ImageNet's BGR means.
    manual = x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32)
    np.testing.assert_allclose(ours, manual, rtol=0, atol=1e-4)


def test_preprocess_leaves_its_input_alone(cat):
    batch = imagenet.to_batch(imagenet.resize_for_model(cat))
    before = batch.copy()
    imagenet.preprocess(batch)
    np.testing.assert_array_equal(batch, before)


@pytest.mark.parametrize("crop", [False, True])
def test_pipeline_steps_numbers(cat, crop):
    s = imagenet.pipeline_steps(cat, crop=crop)
    assert s.original_size == (451, 300)
    assert s.array_shape == (224, 224, 3) and s.batch_shape == (1, 224, 224, 3)
    rgb = np.asarray(s.resized, dtype=np.float64)
    np.testing.assert_allclose(s.means_rgb, rgb.mean(axis=(0, 1)), rtol=1e-9)
    np.testing.assert_allclose(s.subtracted_bgr, [103.939, 116.779, 123.68], atol=1e-3)
    np.testing.assert_allclose(
        s.means_bgr_after, rgb.mean(axis=(0, 1))[::-1] - [103.939, 116.779, 123.68], atol=1e-3
    )
    np.testing.assert_array_equal(s.batch, imagenet.prepare(cat, crop=crop))
    r, c = s.probe
    assert (r, c) == (112, 112)
    np.testing.assert_array_equal(s.probe_rgb, rgb[r, c])
    np.testing.assert_allclose(s.probe_bgr_after, s.batch[0, r, c], atol=1e-6)
    assert s.range_before[0] >= 0 and s.range_before[1] <= 255
    assert s.range_after[0] < 0
    if crop:
        assert s.crop_box == (75, 0, 375, 300)
    else:
        assert s.crop_box is None
    preview = imagenet.preprocessed_preview(s.batch)
    assert preview.size == (224, 224)


# ---------------------------------------------------------------- classification


@pytest.mark.slow
def test_classify_end_to_end_matches_model_predict(resnet, cat):
    reference, _ = resnet50_reference()
    preds = imagenet.classify(resnet, cat, top=5)
    assert len(preds) == 5
    assert all(isinstance(p, imagenet.Prediction) for p in preds)
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert [p.name for p in preds] == [imagenet.class_name(p.class_id) for p in preds]
    # The tutorials' path: model.predict on the same batch, then argsort.
    expected = reference.predict(imagenet.prepare(cat), verbose=0)[0]
    top = np.argsort(-expected)[:5]
    assert [p.class_id for p in preds] == [int(i) for i in top]
    np.testing.assert_allclose(probs, expected[top], rtol=1e-4, atol=1e-6)
    # A prepared batch gives the same answer as the image.
    assert imagenet.classify(resnet, imagenet.prepare(cat)) == preds


@pytest.mark.slow
def test_run_classification_keeps_steps_and_times(resnet, cat):
    result = imagenet.run_classification(resnet, cat, top=3, crop=True)
    assert len(result.predictions) == 3
    assert result.probabilities.shape == (1000,)
    assert abs(float(result.probabilities.sum()) - 1) < 1e-4
    assert result.steps.crop_box is not None
    assert result.inference_seconds > 0 and result.preprocess_seconds > 0
    assert result.predictions == imagenet.classify(resnet, cat, top=3, crop=True)
    # Given the steps the page already computed, the photo is not preprocessed again.
    again = imagenet.run_classification(resnet, result.steps, top=3)
    assert again.steps is result.steps and again.predictions == result.predictions
    assert again.preprocess_seconds == result.steps.seconds > 0


@pytest.mark.slow
def test_a_plain_keras_model_is_accepted(cat):
    reference, _ = resnet50_reference()
    assert imagenet.classify(reference, imagenet.prepare(cat), top=2)[0].class_id == int(
        np.argmax(reference.predict(imagenet.prepare(cat), verbose=0))
    )


@pytest.mark.slow
def test_classify_refuses_a_model_without_classifier(cat):
    headless = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(InvalidArgumentError, match="no classifier"):
        imagenet.classify(headless, cat)
    with pytest.raises(InvalidImageError, match="shape"):
        imagenet.classify(resnet50_reference()[0], np.zeros((224, 224, 3)))


# ---------------------------------------------------------------- Grad-CAM


def _independent_grad_cam(model, batch, class_id):
    """ResNet50's head is global average pooling then Dense, so the gradient of a class logit
    with respect to each conv5 map is the Dense weight / (7·7): Grad-CAM = ReLU(Σ_k A_k w_k)."""
    feats = keras.Model(model.input, model.get_layer("conv5_block3_out").output)(batch)
    kernel = np.asarray(model.get_layer("predictions").kernel)
    a = np.asarray(feats)[0]
    cam = np.maximum((a * (kernel[:, class_id] / (a.shape[0] * a.shape[1]))).sum(-1), 0)
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.mark.slow
def test_grad_cam_shape_range_and_value(resnet, cat):
    assert imagenet.last_conv_layer(resnet).name == "conv5_block3_out"
    preds = imagenet.classify(resnet, cat)
    reference, _ = resnet50_reference()
    batch = imagenet.prepare(cat)
    for p in preds[:2]:
        cam = imagenet.grad_cam(resnet, cat, p.class_id)
        assert cam.shape == (7, 7) and cam.dtype == np.float32
        assert cam.min() >= 0 and cam.max() <= 1
        assert cam.max() == pytest.approx(1.0) or cam.max() == 0
        np.testing.assert_allclose(
            cam, _independent_grad_cam(reference, batch, p.class_id), atol=2e-4
        )
    with pytest.raises(InvalidArgumentError):
        imagenet.grad_cam(resnet, cat, 1000)


def test_overlay_and_heatmap(cat):
    base = imagenet.resize_for_model(cat)
    cam = np.zeros((7, 7), np.float32)
    cam[3, 3] = 1.0
    heat = imagenet.heatmap_rgb(cam, base.size)
    assert heat.size == base.size
    centre, corner = np.asarray(heat)[112, 112], np.asarray(heat)[0, 0]
    assert centre.astype(int).sum() > 600 > 30 > corner.astype(int).sum()  # bright where high
    np.testing.assert_array_equal(np.asarray(imagenet.overlay(base, cam, 0.0)), np.asarray(base))
    np.testing.assert_array_equal(np.asarray(imagenet.overlay(base, cam, 1.0)), np.asarray(heat))
    with pytest.raises(InvalidArgumentError):
        imagenet.overlay(base, cam, 1.5)


# ---------------------------------------------------------------- thread safety


@pytest.mark.slow
def test_concurrent_classify_and_grad_cam_equal_sequential(resnet):
    photos = [samples.load_sample(n) for n in ("cat (chelsea)", "coffee cup", "rocket")]

    def work(i):
        img = photos[i % len(photos)]
        preds = imagenet.classify(resnet, img)
        return preds, imagenet.grad_cam(resnet, img, preds[0].class_id)

    sequential = [work(i) for i in range(len(photos))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(work, range(3 * len(photos))))
    for i, (preds, cam) in enumerate(concurrent):
        want_preds, want_cam = sequential[i % len(photos)]
        assert [p.class_id for p in preds] == [p.class_id for p in want_preds]
        np.testing.assert_allclose(
            [p.probability for p in preds], [p.probability for p in want_preds], rtol=1e-5
        )
        np.testing.assert_allclose(cam, want_cam, atol=1e-5)


# ---------------------------------------------------------------- awkward uploads


def _uploads() -> dict[str, tuple[bytes, bool]]:
    """file name → (bytes, whether the classify path must accept it)."""
    photo = samples.load_sample("coffee cup").resize((120, 80))
    jpeg = encode(photo, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    palette = Image.new("P", (40, 30), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 20, 30))
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "notes.jpg": (b"this is a text file, not a photo\n", False),
        "empty.png": (b"", False),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], False),
        "huge.png": (png_declaring(30000, 30000), False),
        "cmyk.jpg": (encode(photo.convert("CMYK"), "JPEG"), True),
        "sixteen.png": (
            encode(Image.fromarray(np.full((20, 30), 40000, np.uint16)), "PNG"),
            True,
        ),
        "palette.png": (encode(palette, "PNG", transparency=0), True),
        "animated.gif": (gif.getvalue(), True),
        "rotated.jpg": (encode(photo, "JPEG", exif=exif.tobytes()), True),
        "one.png": (encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), True),
    }


@pytest.mark.parametrize("name", list(_uploads()))
def test_uploads_through_the_classify_path(name):
    data, ok = _uploads()[name]
    if not ok:
        with pytest.raises(InvalidImageError, match=name):
            load_image(data, name=name)
        return
    image = load_image(data, name=name)
    steps = imagenet.pipeline_steps(image, crop=True)
    assert steps.batch.shape == (1, 224, 224, 3) and np.isfinite(steps.batch).all()
    pixels = np.asarray(steps.resized)
    if name == "rotated.jpg":
        assert steps.original_size == (80, 120)  # EXIF rotation applied before resizing
    elif name == "one.png":
        assert (pixels == (10, 200, 30)).all()  # one pixel fills the whole input
    elif name == "palette.png":
        # Opaque blue on the left; the transparent right composited on white.
        assert (pixels[:, :100] == (0, 0, 255)).all() and (pixels[:, 130:] == 255).all()
    elif name == "animated.gif":
        assert (pixels == (255, 0, 0)).all()  # first frame


@pytest.mark.slow
def test_several_uploads_one_bad_others_still_classified(resnet):
    """What the page does with a multi-file upload: the bad file is named, the rest run."""
    uploads = _uploads()
    chosen = ["cmyk.jpg", "notes.jpg", "one.png"]
    results, errors = {}, []
    for name in chosen:
        try:
            results[name] = imagenet.classify(resnet, load_image(uploads[name][0], name=name))
        except InvalidImageError as err:
            errors.append(str(err))
    assert sorted(results) == ["cmyk.jpg", "one.png"]
    assert all(len(p) == 5 for p in results.values())
    assert len(errors) == 1 and "notes.jpg" in errors[0]
