"""cnnlib.training.sanity_job: the sanity check for several methods as a task of the one task
base, on the known-region model of test_saliency. Its maps are ``sanity_check``'s own; the
shared model is never modified; Stop keeps the methods done; bad questions are refused up
front; ``sanity_check``'s hooks report each map and stop between two."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect import sanity
from cnnlib.training.sanity_job import MAX_SANITY_METHODS, SanityCheckJob
from cnnlib.training.tasks import TrainingSlots
from tests.test_saliency import SIZE, _build


@pytest.fixture(scope="module")
def model():
    return _build("softmax")


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(1)
    img = rng.uniform(-0.05, 0.05, size=(SIZE, SIZE, 1)).astype(np.float32)
    img[4:12, 12:20] = 1.0
    return img


def test_the_job_gives_sanity_checks_maps_and_leaves_the_model_alone(model, x):
    before = [w.copy() for w in model.get_weights()]
    methods = ["gradients", "gradcam", "edges"]
    slots = TrainingSlots(1)
    job = SanityCheckJob(model, x[None], 0, methods=methods, steps=2, seed=5, slots=slots)
    job.start()
    p = job.wait(120)
    assert p.state == "finished" and p.error is None
    assert p.methods == ("gradients", "gradcam", "edges") and p.steps == 2
    assert p.fraction == 1.0 and p.current == ""
    for method in p.methods:
        direct = sanity.sanity_check(model, x, 0, method=method, steps=2, seed=5)
        got = p.checks[method]
        assert got.layers == direct.layers == (("predictions",), ("target",))
        np.testing.assert_allclose(got.original, direct.original, atol=1e-6)
        for a, b in zip(got.maps, direct.maps, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(got.rank_correlation, direct.rank_correlation, atol=1e-6)
    np.testing.assert_allclose(p.checks["edges"].rank_correlation, 1.0)
    for a, b in zip(before, model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_stop_keeps_the_methods_done(model, x, monkeypatch):
    """Stopped while the second method runs: the first stays, the second is not kept."""
    second_started = threading.Event()
    release = threading.Event()
    real = sanity.sanity_check

    def gated(*args, method, **kwargs):
        if method == "gradcam":
            second_started.set()
            release.wait(30)
        return real(*args, method=method, **kwargs)

    monkeypatch.setattr(sanity, "sanity_check", gated)
    job = SanityCheckJob(model, x, 0, methods=["gradients", "gradcam"], slots=TrainingSlots(1))
    job.start()
    assert second_started.wait(60)
    job.stop()
    release.set()
    p = job.wait(60)
    assert p.state == "stopped"
    assert list(p.checks) == ["gradients"]


def test_bad_questions_are_refused_before_any_work(model, x):
    slots = TrainingSlots(1)
    with pytest.raises(InvalidArgumentError, match="Unknown method"):
        SanityCheckJob(model, x, 0, methods=["gradients", "magic"], slots=slots)
    with pytest.raises(InvalidArgumentError, match="1 to"):
        SanityCheckJob(model, x, 0, methods=[], slots=slots)
    with pytest.raises(InvalidArgumentError, match="1 to"):
        SanityCheckJob(model, x, 0, methods=[f"m{i}" for i in range(MAX_SANITY_METHODS + 1)])
    with pytest.raises(InvalidArgumentError, match="steps"):
        SanityCheckJob(model, x, 0, methods=["gradients"], steps=4, slots=slots)
    with pytest.raises(InvalidArgumentError):
        SanityCheckJob(model, x, 7, methods=["gradients"], slots=slots)  # 3 classes
    with pytest.raises(InvalidArgumentError):
        SanityCheckJob(model, x[:5], 0, methods=["gradients"], slots=slots)
    with pytest.raises(InvalidArgumentError, match="max_seconds"):
        SanityCheckJob(model, x, 0, methods=["gradients"], max_seconds=0, slots=slots)
    with pytest.raises(InvalidArgumentError, match="no option"):
        SanityCheckJob(
            model, x, 0, methods=["gradients"], options={"gradients": {"samples": 3}}, slots=slots
        )


def test_hooks_report_each_map_and_stop_between_two(model, x):
    seen = []
    result = sanity.sanity_check(
        model, x, 0, method="gradients", on_step=lambda done, total: seen.append((done, total))
    )
    assert result.steps == 3
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    asked = []

    def stop_after_two() -> bool:
        asked.append(1)
        return len(asked) > 2  # before the map, after the original, after step 1: stop

    with pytest.raises(WorkStopped):
        sanity.sanity_check(model, x, 0, method="gradients", should_stop=stop_after_two)
    assert len(asked) == 3
