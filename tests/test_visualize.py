"""cnnlib.inspect.visualize: gradient ascent raises a fixed-weight filter's activation, finds the
pattern the filter matches, reports the activation it measured (checked with an independent
forward pass), treats the model's input range and preprocessing as promised, caches results
and stops between two steps when asked; cnnlib.training.filter_grid.FilterGridJob (a task of the
one task base) fills a grid in the background, takes a slot, stops, times out and fails with a
message."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect import visualize
from cnnlib.training.filter_grid import FilterGridJob
from cnnlib.training.tasks import TrainingSlots
from tests.conftest import wait_for

SIZE = 16
#: Vertical-edge filter: dark on the left, bright on the right.
EDGE = np.array([[-1, 0, 1]] * 3, dtype=np.float32)


def _build(rescale: bool = False):
    """(16, 16, 1) → Conv2D "conv" (ch0 = ReLU(edge), ch1 = ReLU(−edge), ch2 = ReLU(mean))
    → Flatten → Dense(2). With ``rescale`` the model takes 0–255 and rescales inside."""
    import keras

    layers = [keras.Input((SIZE, SIZE, 1))]
    if rescale:
        layers.append(keras.layers.Rescaling(1 / 255))
    conv = keras.layers.Conv2D(3, 3, activation="relu", name="conv")
    layers += [conv, keras.layers.Flatten(), keras.layers.Dense(2, name="out")]
    model = keras.Sequential(layers)
    kernel = np.stack([EDGE, -EDGE, np.full((3, 3), 1 / 9, np.float32)], axis=-1)[:, :, None, :]
    conv.set_weights([kernel, np.array([0.0, 0.0, -0.5], np.float32)])
    return model


@pytest.fixture(scope="module")
def model():
    return _build()


@pytest.fixture(autouse=True)
def _fresh_cache():
    visualize.clear_cache()
    yield
    visualize.clear_cache()


def _mean_activation(model, layer, channel, image):
    """Independent forward pass: mean of the channel's map without its 2-cell border."""
    import keras

    act = keras.Model(model.inputs[0], model.get_layer(layer).output)(image[None]).numpy()[0]
    return float(act[2:-2, 2:-2, channel].mean())


@pytest.mark.parametrize("channel", [0, 1])
def test_ascent_finds_the_filter_pattern(model, channel):
    r = visualize.maximize_activation(model, "conv", channel, steps=30, seed=1)
    assert r.image.shape == (SIZE, SIZE, 1) and r.image.dtype == np.float32
    assert r.image.min() >= 0 and r.image.max() <= 1
    assert len(r.activations) == 31 and (r.layer, r.channel, r.steps) == ("conv", channel, 30)
    a = np.array(r.activations)
    assert a[-1] > a[0] + 0.5  # from near 0 (grey) to a strong response
    # Rising on the whole (single steps may dip: each is measured on a jittered copy).
    assert a[20:].mean() > a[10:20].mean() > a[:10].mean()
    # A vertical-edge filter wants vertical stripes: the image changes across columns and
    # hardly down them.
    img = r.image[:, :, 0]
    across, down = float(img.mean(axis=0).var()), float(img.var(axis=0).mean())
    assert across > 2 * down  # iid noise would give 1/16
    assert r.activations[-1] == pytest.approx(
        _mean_activation(model, "conv", channel, r.image), rel=1e-5, abs=1e-6
    )
    stretched = r.stretched()
    assert stretched.shape == r.image.shape and 0 <= stretched.min() <= stretched.max() <= 1


def test_input_range_and_preprocess(model):
    """A model that takes 0–255 and rescales inside gives the same [0, 1] image with
    ``input_range=(0, 255)``; so does the [0, 1] model with ``preprocess`` doing the rescale."""
    plain = visualize.maximize_activation(model, "conv", 0, steps=10, seed=2)
    raw = visualize.maximize_activation(
        _build(rescale=True), "conv", 0, steps=10, seed=2, input_range=(0, 255)
    )
    via_preprocess = visualize.maximize_activation(
        model, "conv", 0, steps=10, seed=2, input_range=(0, 255), preprocess=lambda t: t / 255.0
    )
    np.testing.assert_allclose(raw.image, plain.image, atol=1e-5)
    np.testing.assert_allclose(via_preprocess.image, plain.image, atol=1e-5)


def test_cache_hit_returns_the_same_object(model):
    first = visualize.maximize_activation(model, "conv", 2, steps=5, seed=3)
    assert visualize.maximize_activation(model, "conv", 2, steps=5, seed=3) is first
    assert visualize.maximize_activation(model, "conv", 2, steps=5, seed=4) is not first
    assert visualize.maximize_activation(model, "conv", 2, steps=5, seed=3, jitter=0) is not first
    fresh = visualize.maximize_activation(model, "conv", 2, steps=5, seed=3, cache=False)
    assert fresh is not first
    np.testing.assert_array_equal(fresh.image, first.image)  # same seed, same image


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer_name": "nope"}, "no layer"),
        ({"layer_name": "out"}, "no feature maps"),
        ({"channel": 3}, "from 0 to 2"),
        ({"channel": -1}, "from 0 to 2"),
        ({"steps": 0}, "steps"),
        ({"steps": 10_000}, "steps"),
        ({"colour": 1}, "Unknown option"),
        ({"input_range": (1, 0)}, "input_range"),
        ({"input_range": "wide"}, "input_range"),
        ({"step_size": 5}, "step_size"),
        ({"preprocess": 3}, "preprocess"),
    ],
)
def test_bad_arguments_are_refused(model, kwargs, match):
    args = {"layer_name": "conv", "channel": 0, **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        visualize.maximize_activation(model, args.pop("layer_name"), args.pop("channel"), **args)


def test_should_stop_ends_the_ascent_between_two_steps_and_caches_nothing(model):
    asked = []

    def third_time() -> bool:
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(WorkStopped):
        visualize.maximize_activation(model, "conv", 0, steps=20, should_stop=third_time)
    assert len(asked) == 3
    assert visualize.cached_filter(model, "conv", 0, steps=20) is None
    done = visualize.maximize_activation(model, "conv", 0, steps=20, should_stop=lambda: False)
    assert visualize.cached_filter(model, "conv", 0, steps=20) is done
    assert visualize.cached_filter(model, "conv", 0, steps=20, jitter=0) is None


def test_grid_job_fills_the_grid_shares_the_cache_and_frees_its_slot(model):
    cached = visualize.maximize_activation(model, "conv", 1, steps=5)
    slots = TrainingSlots(1)
    job = FilterGridJob(model, "conv", [0, 1, 2], steps=5, max_seconds=120, slots=slots)
    first = job.snapshot()
    assert first.state == "queued" and first.fraction == 0 and first.total == 3
    job.start()
    job.start()  # a second start does nothing
    p = job.wait(120)
    assert p.state == "finished" and p.error is None and p.message is None
    assert (p.filters_done, p.total, p.fraction) == (3, 3, 1.0)
    assert p.images[1] is cached  # taken from the cache, not recomputed
    assert len(p.filter_seconds) == 2 and all(s > 0 for s in p.filter_seconds)
    for c in (0, 2):
        assert visualize.maximize_activation(model, "conv", c, steps=5) is p.images[c]
    assert slots.running == 0 and slots.waiting == 0


def test_grid_job_waits_for_a_slot_stops_and_times_out(model):
    slots = TrainingSlots(1)
    blocker = object()
    assert slots.acquire(blocker, threading.Event())
    queued = FilterGridJob(model, "conv", [0, 1], steps=5, slots=slots).start()
    assert wait_for(lambda: queued.snapshot().queue_position == 1)
    assert queued.snapshot().state == "queued"
    queued.stop()
    p = queued.wait(60)
    assert p.state == "stopped" and p.filters_done == 0 and slots.waiting == 0
    slots.release(blocker)
    late = FilterGridJob(model, "conv", [0, 1], steps=200, max_seconds=1e-3, slots=slots)
    p = late.start().wait(60)
    assert p.state == "stopped" and p.filters_done == 0
    assert "Time limit reached" in p.message and slots.running == 0


def test_grid_job_reports_a_failure(model, monkeypatch):
    def broken(*args, **kwargs):
        raise InvalidArgumentError("broken on purpose")

    monkeypatch.setattr(visualize, "maximize_activation", broken)
    p = FilterGridJob(model, "conv", [0], steps=5, slots=TrainingSlots(1)).start().wait(60)
    assert p.state == "failed" and "Could not finish the filter grid: broken on purpose" in p.error


@pytest.mark.slow
def test_grid_job_budgets_are_checked_up_front(model):
    with pytest.raises(InvalidArgumentError, match="1 to 64"):
        FilterGridJob(model, "conv", list(range(65)))
    with pytest.raises(InvalidArgumentError, match="from 0 to 2"):
        FilterGridJob(model, "conv", [0, 7])
    with pytest.raises(InvalidArgumentError, match="max_seconds"):
        FilterGridJob(model, "conv", [0], max_seconds=0)
    with pytest.raises(InvalidArgumentError, match="Unknown option"):
        FilterGridJob(model, "conv", [0], colour=1)
