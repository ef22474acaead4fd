"""cnnlib.model_registry: the session's trained models, newest first and bounded."""

from __future__ import annotations

import pytest

from cnnlib.errors import InvalidArgumentError
from cnnlib.model_registry import ModelRegistry, RegisteredModel


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
