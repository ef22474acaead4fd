"""cnnlib.data.samples: every built-in image loads offline as 8-bit RGB."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data import samples


@pytest.mark.parametrize("name", samples.sample_names())
def test_every_sample_loads_as_rgb(name):
    img = samples.load_sample(name)
    assert img.mode == "RGB" and min(img.size) >= 64
    arr = np.asarray(img)
    assert arr.std() > 5  # a picture, not a blank


def test_names_and_patterns():
    names = samples.sample_names()
    assert names[: len(samples.PHOTOS)] == list(samples.PHOTOS)
    assert {"checkerboard", "shapes", "gradient"} <= set(samples.PATTERNS)
    board = np.asarray(samples.checkerboard(64, 8))
    assert set(np.unique(board)) == {0, 255}
    assert board[0, 0, 0] != board[0, 8, 0] and board[0, 0, 0] == board[8, 8, 0]
    np.testing.assert_array_equal(np.asarray(samples.shapes()), np.asarray(samples.shapes()))
    ramp = np.asarray(samples.gradient(32))[:, :, 0]
    assert np.all(np.diff(ramp.astype(int), axis=1) >= 0)
    with pytest.raises(InvalidArgumentError, match="Unknown sample"):
        samples.load_sample("no such photo")
