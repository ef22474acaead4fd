"""cnnlib.core.checks and cnnlib.core.paths: the one whole-number check, and Keras' home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlib.core.checks import check_whole, is_whole
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.core.paths import keras_home


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (3, None, None, True),
        (np.int64(3), 1, 5, True),
        (0, 1, None, False),
        (6, 1, 5, False),
        (5, 1, 5, True),
        (-2, None, 0, True),
        (True, None, None, False),  # a bool is not a number of anything
        (np.bool_(True), None, None, False),
        (2.0, None, None, False),
        ("2", None, None, False),
        (None, None, None, False),
    ],
)
def test_is_whole(value, low, high, expected):
    assert is_whole(value, low, high) is expected


def test_check_whole_names_the_value_and_its_range():
    check_whole("batch_size", 32, 1, 64)
    with pytest.raises(InvalidArgumentError, match=r"^Batch size must be a whole number from 1 "):
        check_whole("batch_size", 0, 1, 64)


def test_keras_home_follows_keras_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", f" {tmp_path} ")
    assert keras_home() == tmp_path
    monkeypatch.setenv("KERAS_HOME", "~/k")
    assert keras_home() == Path.home() / "k"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_home() == Path.home() / ".keras"
