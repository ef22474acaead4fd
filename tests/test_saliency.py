"""cnnlib.inspect.saliency against independent references.

The test model's decision depends on a known region: class 0's logit is the mean of a
feature map over region R (input rows 4–11, columns 12–19), class 1's over region R2 (rows
14–21, columns 2–9) of another feature map. Its weights are fixed by hand, so the maps can be
checked analytically (Grad-CAM), against ``tf.GradientTape`` on a logits copy of the model
(gradients, SmoothGrad), against the completeness property (integrated gradients) and against
a loop of hand-made occluded predictions (occlusion); and every method must put its maximum and
nearly all of its mass in R, none in R2.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.inspect import saliency

SIZE = 24
R = (slice(4, 12), slice(12, 20))  # class 0's region (input coordinates)
R2 = (slice(14, 22), slice(2, 10))  # class 1's region
#: Pixels at most this far from R can reach class 0's score (two 3 × 3 convolutions, the
#: second with stride 2).
HALO = 2


def _blur(sign: float, channels_in: int, source: int) -> np.ndarray:
    """3 × 3 kernel (3, 3, channels_in) averaging channel ``source`` times ``sign``."""
    k = np.zeros((3, 3, channels_in), np.float32)
    k[:, :, source] = sign / 9.0
    return k


def _weights():
    """Conv 1: ch0 = ReLU(blur x), ch1 = ReLU(−blur x). Conv 2 (stride 2): blur of each.
    Dense: class 0 = mean of conv-2 ch0 over R (conv-2 rows 2–5, cols 6–9), class 1 = mean
    of conv-2 ch1 over R2 (rows 7–10, cols 1–4), class 2 = 0."""
    k1 = np.stack([_blur(1, 1, 0), _blur(-1, 1, 0)], axis=-1)  # (3, 3, 1, 2)
    k2 = np.stack([_blur(1, 2, 0), _blur(1, 2, 1)], axis=-1)  # (3, 3, 2, 2)
    dense = np.zeros((12, 12, 2, 3), np.float32)
    dense[2:6, 6:10, 0, 0] = 1 / 16
    dense[7:11, 1:5, 1, 1] = 1 / 16
    return k1, k2, dense.reshape(-1, 3)


def _build(head_activation: str):
    import keras

    k1, k2, kd = _weights()
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(2, 3, padding="same", activation="relu", use_bias=False),
            keras.layers.Conv2D(
                2, 3, strides=2, padding="same", activation="relu", use_bias=False, name="target"
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation=head_activation, name="predictions"),
        ]
    )
    model.layers[0].set_weights([k1])
    model.layers[1].set_weights([k2])
    model.layers[3].set_weights([kd, np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="module")
def model():
    """Softmax head: the maps must use the logits (the layer's input times its kernel)."""
    return _build("softmax")


@pytest.fixture(scope="module")
def logits_model():
    """The same network without softmax: its output is the logits."""
    return _build("linear")


@pytest.fixture(scope="module")
def x():
    """A bright square in R, a dark (negative) one in R2, faint noise elsewhere."""
    rng = np.random.default_rng(0)
    img = rng.uniform(-0.05, 0.05, size=(SIZE, SIZE, 1)).astype(np.float32)
    img[R] = 1.0
    img[R2] = -1.0
    return img


def _grow(region, by: int):
    return tuple(slice(max(s.start - by, 0), min(s.stop + by, SIZE)) for s in region)


def _mass(m: np.ndarray, region) -> float:
    return float(m[region].sum() / m.sum())


@pytest.mark.parametrize("method", saliency.METHODS)
def test_every_method_highlights_the_deciding_region(model, x, method):
    m = saliency.saliency_map(model, x, 0, method=method)
    assert m.shape == (SIZE, SIZE) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    top = np.unravel_index(np.argmax(m), m.shape)
    near = _grow(R, HALO)
    assert near[0].start <= top[0] < near[0].stop and near[1].start <= top[1] < near[1].stop
    assert _mass(m, _grow(R, HALO + 2)) > 0.9
    assert _mass(m, R2) < 0.02
    # And class 1 moves everything to R2.
    m1 = saliency.saliency_map(model, x, 1, method=method)
    assert _mass(m1, _grow(R2, HALO + 2)) > 0.9 and _mass(m1, R) < 0.02


def test_grad_cam_is_the_analytic_map(model, x):
    """∂logit_0/∂A = mask/16 on channel 0 only, so Grad-CAM = ReLU(A_0)/max = A_0/max(A_0)."""
    import tensorflow as tf

    k1, k2, _ = _weights()
    a1 = tf.nn.relu(tf.nn.conv2d(x[None], k1, 1, "SAME"))
    a2 = tf.nn.relu(tf.nn.conv2d(a1, k2, 2, "SAME")).numpy()[0, :, :, 0]
    cam = saliency.class_activation_map(model, x, 0)
    assert cam.shape == (12, 12)
    np.testing.assert_allclose(cam, a2 / a2.max(), atol=1e-6)
    np.testing.assert_allclose(
        saliency.class_activation_map(model, x, 0, layer="target"), cam, atol=1e-6
    )
    assert saliency.conv_layer(model).name == "target"


def _tape_gradient(logits_model, batch, cls):
    import tensorflow as tf

    t = tf.constant(batch)
    with tf.GradientTape() as tape:
        tape.watch(t)
        score = logits_model(t)[:, cls]
    return tape.gradient(score, t).numpy()


def test_gradients_equal_gradient_tape_on_the_logits(model, logits_model, x):
    g = _tape_gradient(logits_model, x[None], 0)[0]
    expected = np.abs(g).max(-1)
    m = saliency.saliency_map(model, x, 0, method="gradients")
    np.testing.assert_allclose(m, expected / expected.max(), atol=1e-6)


def test_smoothgrad_is_the_mean_of_noisy_gradient_maps(model, logits_model, x):
    samples, noise, seed = 20, 0.2, 3
    sigma = noise * float(x.max() - x.min())
    rng = np.random.default_rng(seed)
    batch = x[None] + rng.normal(0.0, sigma, size=(samples, *x.shape)).astype(np.float32)
    expected = np.abs(_tape_gradient(logits_model, batch, 0)).max(-1).mean(0)
    m = saliency.saliency_map(
        model, x, 0, method="smoothgrad", samples=samples, noise=noise, seed=seed
    )
    np.testing.assert_allclose(m, expected / expected.max(), atol=1e-5)
    plain = saliency.saliency_map(model, x, 0, method="gradients")
    np.testing.assert_allclose(
        saliency.saliency_map(model, x, 0, method="smoothgrad", noise=0.0), plain, atol=1e-6
    )


def test_integrated_gradients_completeness(model, logits_model, x):
    """Σ attributions = logit(x) − logit(baseline) (up to the Riemann sum's error)."""
    baseline = np.full_like(x, 0.1)
    attr = saliency.integrated_gradients(model, x, 0, steps=128, baseline=baseline)
    assert attr.shape == x.shape and attr.dtype == np.float32
    logits = logits_model(np.stack([x, baseline])).numpy()[:, 0]
    assert attr.sum() == pytest.approx(logits[0] - logits[1], rel=0.02)


def test_occlusion_equals_a_loop_of_occluded_predictions(model, logits_model, x):
    patch = 6  # stride 6: each pixel lies in exactly one patch
    base = logits_model(x[None]).numpy()[0, 0]
    expected = np.zeros((SIZE, SIZE))
    for r in range(0, SIZE, patch):
        for c in range(0, SIZE, patch):
            y = x.copy()
            y[r : r + patch, c : c + patch] = 0.0
            expected[r : r + patch, c : c + patch] = base - logits_model(y[None]).numpy()[0, 0]
    expected = np.maximum(expected, 0)
    m = saliency.saliency_map(model, x, 0, method="occlusion", patch=patch, stride=patch)
    np.testing.assert_allclose(m, expected / expected.max(), atol=1e-5)


def test_saliency_maps_side_by_side(model, x):
    results = saliency.saliency_maps(
        model, x, 0, options={"smoothgrad": {"samples": 4}, "occlusion": {"patch": 4}}
    )
    assert [r.method for r in results] == list(saliency.METHODS)
    for r in results:
        assert r.map.shape == (SIZE, SIZE) and r.map.min() >= 0 and r.map.max() <= 1
        assert r.seconds >= 0 and r.label == saliency.METHOD_LABELS[r.method]
    with pytest.raises(InvalidArgumentError, match="not asked for"):
        saliency.saliency_maps(model, x, 0, methods=["gradients"], options={"occlusion": {}})


def test_reruns_do_not_retrace(model, x):
    saliency.saliency_map(model, x, 0, method="gradients")
    saliency.saliency_map(model, x, 1, method="smoothgrad", samples=3)
    saliency.saliency_map(model, x, 2, method="integrated_gradients", steps=7)
    gradient, scores = saliency.model_function(model, "scores", lambda: None)
    assert gradient.experimental_get_tracing_count() == 1
    saliency.saliency_map(model, x, 0, method="occlusion", patch=5)
    saliency.saliency_map(model, x, 1, method="occlusion", patch=8, stride=3)
    assert scores.experimental_get_tracing_count() == 1


def test_the_shared_model_is_not_modified(x):
    model = _build("softmax")
    before = [w.copy() for w in model.get_weights()]
    saliency.saliency_maps(model, x, 0, options={"smoothgrad": {"samples": 2}})
    assert model.layers[-1].activation.__name__ == "softmax"
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_is_freed_with_the_model(x):
    model = _build("softmax")
    saliency.saliency_map(model, x, 0, method="gradcam")
    saliency.saliency_map(model, x, 0, method="gradients")
    assert saliency.cached_function_count(model) == 2
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x: saliency.saliency_map(m, x, 0, method="lime"), "Unknown saliency method"),
        (lambda m, x: saliency.saliency_map(m, x, 3, method="gradients"), "from 0 to 2"),
        (lambda m, x: saliency.saliency_map(m, x, -1, method="gradients"), "from 0 to 2"),
        (lambda m, x: saliency.saliency_map(m, x, True, method="gradients"), "whole number"),
        (lambda m, x: saliency.saliency_map(m, x[:20], 0, method="gradients"), "shape"),
        (lambda m, x: saliency.saliency_map(m, x * np.nan, 0, method="gradients"), "NaN"),
        (lambda m, x: saliency.saliency_map(m, x, 0, method="gradients", steps=3), "no option"),
        (
            lambda m, x: saliency.saliency_map(m, x, 0, method="smoothgrad", samples=10_000),
            "samples",
        ),
        (lambda m, x: saliency.saliency_map(m, x, 0, method="smoothgrad", noise=-1), "noise"),
        (lambda m, x: saliency.saliency_map(m, x, 0, method="smoothgrad", seed="a"), "seed"),
        (
            lambda m, x: saliency.saliency_map(m, x, 0, method="integrated_gradients", steps=0),
            "steps",
        ),
        (lambda m, x: saliency.saliency_map(m, x, 0, method="occlusion", patch=99), "patch"),
        (lambda m, x: saliency.saliency_map(m, x, 0, method="gradcam", layer="nope"), "no layer"),
        (
            lambda m, x: saliency.saliency_map(m, x, 0, method="gradcam", layer="predictions"),
            "feature maps",
        ),
    ],
)
def test_bad_arguments_are_refused(model, x, call, match):
    with pytest.raises(InvalidArgumentError, match=match):
        call(model, x)


def test_occlusion_budget_is_checked_before_work(model, x, monkeypatch):
    monkeypatch.setattr(saliency, "MAX_OCCLUSIONS", 100)
    monkeypatch.setattr(saliency, "_scores", lambda *a: pytest.fail("scored over budget"))
    with pytest.raises(InvalidArgumentError, match="larger patch"):
        saliency.saliency_map(model, x, 0, method="occlusion", patch=2, stride=2)  # 12 × 12


@pytest.mark.slow
def test_resnet50_grad_cam_equals_the_classify_page():
    """``class_activation_map`` on ResNet50 equals ``cnnlib.inspect.imagenet.grad_cam`` (which has
    its own analytic test), so imagenet.py can delegate to it."""
    from cnnlib.data import samples
    from cnnlib.inspect import imagenet
    from tests.imagenet_weights import resnet50_loaded

    pm = resnet50_loaded()
    batch = imagenet.prepare(samples.load_sample("cat (chelsea)"))
    cls = int(np.argmax(pm.predict(batch)[0]))
    np.testing.assert_allclose(
        saliency.class_activation_map(pm, batch[0], cls),
        imagenet.grad_cam(pm, batch, cls),
        atol=1e-5,
    )
    m = saliency.saliency_map(pm, batch[0], cls, method="gradcam++")
    assert m.shape == (224, 224) and m.max() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["gradcam", "gradients", "integrated_gradients"])
def test_softmax_head_gives_the_logits_maps(model, logits_model, x, method):
    """The score is the logit: a softmax head and a linear head give the same map."""
    np.testing.assert_allclose(
        saliency.saliency_map(model, x, 0, method=method),
        saliency.saliency_map(logits_model, x[None], 0, method=method),  # a batch of one
        atol=1e-5,
    )


def test_concurrent_calls_equal_sequential(model, x):
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(c, m) for c in (0, 1) for m in ("gradcam++", "smoothgrad", "occlusion")]
    expected = [saliency.saliency_map(model, x, c, method=m) for c, m in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(lambda job: saliency.saliency_map(model, x, job[0], method=job[1]), jobs)
        )
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_sequential_loaded_from_a_keras_file(model):
    """A loaded Sequential calls its layers once per rebuild: ``layer.output`` is from an
    earlier graph. Grad-CAM (and a maximised filter) must use the model's own graph and give
    the original's results."""
    from cnnlib.core.budgets import budgets
    from cnnlib.inspect import visualize
    from cnnlib.training.trainer import save_model_bytes
    from cnnlib.uploads.model_files import load_keras_file

    loaded = load_keras_file(save_model_bytes(model), budgets=budgets())
    x = np.random.default_rng(3).random((SIZE, SIZE, 1)).astype(np.float32)
    for method in ("gradcam", "gradcam++"):
        np.testing.assert_allclose(
            saliency.saliency_map(loaded, x, 0, method=method),
            saliency.saliency_map(model, x, 0, method=method),
            atol=1e-5,
        )
    kwargs = dict(steps=5, cache=False)
    ours = visualize.maximize_activation(loaded, loaded.layers[1].name, 0, **kwargs)
    theirs = visualize.maximize_activation(model, model.layers[1].name, 0, **kwargs)
    np.testing.assert_allclose(ours.activations, theirs.activations, rtol=1e-5)


# ---------------------------------------------------------------- LayerCAM and Score-CAM

#: A model small enough to compute by hand: 5 × 5 input → Conv2D(2 filters, 2 × 2, ReLU) →
#: (4, 4, 2) maps A → Flatten → Dense(2, softmax). ∂logit_c/∂A is the Dense kernel's column c.
TINY_X = np.array(
    [
        [1, 0, 2, 0, 1],
        [0, 3, 0, 1, 0],
        [2, 0, -1, 0, 2],
        [0, 1, 0, 3, 0],
        [1, 0, 2, 0, -2],
    ],
    np.float32,
)[:, :, None]
TINY_K = np.array([[[1, -1], [0, 1]], [[1, 0], [-1, 2]]], np.float32)[:, :, None, :]  # (2,2,1,2)
TINY_B = np.array([0.5, -1.0], np.float32)


def _tiny_dense() -> np.ndarray:
    """(32, 2) Dense kernel with both signs, so LayerCAM (ReLU per location) and Grad-CAM
    (mean per map) differ."""
    return (np.arange(64, dtype=np.float32).reshape(32, 2) % 7 - 3) / 4


def _tiny_model():
    import keras

    model = keras.Sequential(
        [
            keras.Input((5, 5, 1)),
            keras.layers.Conv2D(2, 2, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax", name="predictions"),
        ]
    )
    model.get_layer("conv").set_weights([TINY_K, TINY_B])
    model.get_layer("predictions").set_weights([_tiny_dense(), np.zeros(2, np.float32)])
    return model


def _tiny_maps_by_hand() -> np.ndarray:
    """A[i, j, k] = ReLU(Σ_uv x[i+u, j+v] K[u, v, k] + b_k), by loops."""
    A = np.zeros((4, 4, 2))
    for i in range(4):
        for j in range(4):
            for k in range(2):
                z = sum(
                    float(TINY_X[i + u, j + v, 0]) * float(TINY_K[u, v, 0, k])
                    for u in range(2)
                    for v in range(2)
                )
                A[i, j, k] = max(0.0, z + float(TINY_B[k]))
    return A


@pytest.mark.parametrize("cls", [0, 1])
def test_layercam_is_the_analytic_map(cls):
    """LayerCAM = ReLU(Σ_k ReLU(G_k) ⊙ A_k) with G the Dense kernel's column reshaped to
    (4, 4, 2) (Flatten's row-major order), normalised by its maximum."""
    model = _tiny_model()
    A = _tiny_maps_by_hand()
    G = _tiny_dense()[:, cls].reshape(4, 4, 2)
    expected = np.maximum((np.maximum(G, 0) * A).sum(-1), 0)
    cam = saliency.class_activation_map(model, TINY_X, cls, method="layercam")
    np.testing.assert_allclose(cam, expected / expected.max(), atol=1e-6)
    grad_cam = saliency.class_activation_map(model, TINY_X, cls, method="gradcam")
    assert not np.allclose(cam, grad_cam, atol=0.05)  # a different method
    full = saliency.saliency_map(model, TINY_X, cls, method="layercam", layer="conv")
    assert full.shape == (5, 5) and full.max() == pytest.approx(1.0)


def _same_size_model():
    """Conv2D('same') keeps 6 × 6, so Score-CAM's masks need no upsampling."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax", name="predictions"),
        ]
    )
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("maps", [4, 2])
def test_score_cam_weighs_each_map_by_its_masked_inputs_increase_of_confidence(maps):
    """Score-CAM by hand with the model's own predictions: masks H_k = min-max normalised
    A_k, weights p_c(x ⊙ H_k) − p_c(0), map ReLU(Σ_k w_k A_k); with ``maps`` = 2 only the two
    maps of largest spatial standard deviation (one of the four maps is dead: all zeros)."""
    import keras

    model = _same_size_model()
    x = np.random.default_rng(1).uniform(0, 1, (6, 6, 1)).astype(np.float32)
    sub = keras.Model(model.inputs[0], model.get_layer("conv").output)
    A = sub(x[None]).numpy()[0].astype(np.float64)
    for cls in range(3):
        keep = np.argsort(-A.reshape(36, 4).std(0), kind="stable")[:maps]
        expected = np.zeros((6, 6))
        base = model(np.zeros((1, 6, 6, 1), np.float32)).numpy()[0, cls]
        for k in keep:
            if np.ptp(A[:, :, k]) == 0:
                continue  # a flat map masks nothing
            H = (A[:, :, k] - A[:, :, k].min()) / np.ptp(A[:, :, k])
            p = model((x * H[:, :, None])[None].astype(np.float32)).numpy()[0, cls]
            expected += (p - base) * A[:, :, k]
        expected = np.maximum(expected, 0)
        got = saliency.saliency_map(model, x, cls, method="scorecam", maps=maps)
        if expected.max() == 0:
            assert got.max() == 0
        else:
            np.testing.assert_allclose(got, expected / expected.max(), atol=1e-5)


def test_score_cam_map_count_is_checked(model, x):
    for bad in (0, saliency.MAX_SCORECAM_MAPS + 1, 2.5):
        with pytest.raises(InvalidArgumentError, match="maps"):
            saliency.saliency_map(model, x, 0, method="scorecam", maps=bad)


def test_every_method_has_a_when_to_use_note():
    assert set(saliency.METHOD_NOTES) == set(saliency.METHODS) == set(saliency.METHOD_LABELS)
    assert len(saliency.METHODS) == 8
    for note in saliency.METHOD_NOTES.values():
        assert note.use_when and note.cost and note.source[-4:].isdigit()
