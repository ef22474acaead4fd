"""cnnlib.models.registry: the session's trained models, newest first and bounded."""

from __future__ import annotations

import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.models.registry import ModelRegistry, RegisteredModel, registered_from_job


def entry(name, **kwargs):
    fields = {"model": object(), "class_names": ["cat", "dog"], "input_shape": (32, 32, 3)}
    return RegisteredModel(name, **{**fields, **kwargs})


def test_newest_first_replace_by_name_and_remove():
    registry = ModelRegistry(limit=3)
    a, b = registry.add(entry("a")), registry.add(entry("b", source_page="Own images"))
    assert registry.names() == ("b", "a") and registry.get("a") is a and "b" in registry
    a2 = registry.add(entry("a", description="retrained"))
    assert registry.names() == ("a", "b") and registry.get("a") is a2
    assert registry.latest() is a2 and registry.latest("Own images") is b
    assert registry.remove("b") and not registry.remove("b") and registry.get("b") is None
    assert a.class_names == ("cat", "dog") and a.input_shape == (32, 32, 3) and a.created > 0


def test_the_count_is_bounded_dropping_the_oldest():
    registry = ModelRegistry(limit=2)
    for name in "xyz":
        registry.add(entry(name))
    assert registry.names() == ("z", "y") and len(registry) == 2
    assert registry.unique_name("z") == "z (2)" and registry.unique_name("new") == "new"


def test_bad_entries_are_refused():
    with pytest.raises(InvalidArgumentError):
        entry(" ")
    with pytest.raises(InvalidArgumentError):
        entry("m", input_shape=(28, 28))
    with pytest.raises(InvalidArgumentError):
        ModelRegistry(limit=0)
    with pytest.raises(InvalidArgumentError):
        ModelRegistry().add("a model")


@pytest.mark.slow
def test_a_finished_job_registers_with_its_class_names_and_input_shape():
    pytest.importorskip("keras")
    import numpy as np

    from cnnlib.data.training_data import ArrayData
    from cnnlib.models import LayerSpec, build_from_stack
    from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 6, 5, 3), dtype=np.uint8)
    y = np.arange(60) % 3
    data = ArrayData.from_arrays(x, y, class_names=["ant", "bee", "cat"], validation_split=0.0)

    def builder(seed=None):
        specs = [LayerSpec.flatten(), LayerSpec.dense(3, activation="softmax")]
        return build_from_stack(specs, (6, 5, 3), 3, seed=seed)

    job = TrainingJob(builder, data, TrainConfig(batch_size=20, epochs=1), slots=TrainingSlots(1))
    assert job.start().wait(60).state == "finished"
    entry = registered_from_job(job, "tiny", source_page="Own images")
    assert entry.class_names == ("ant", "bee", "cat") and entry.input_shape == (6, 5, 3)
    assert entry.model is job.model


def test_the_session_holds_one_registry():
    from streamlit.testing.v1 import AppTest

    from ui import state

    def script():
        import streamlit as st

        from ui import state

        registry = state.model_registry()
        assert registry is state.model_registry()
        st.write(len(registry))

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert isinstance(at.session_state[state.MODEL_REGISTRY], ModelRegistry)
