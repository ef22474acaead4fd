"""The shortcut lab's data and report (cnnlib.training.shortcut_lab) against a model whose
rule is known: it answers the target class exactly when the red corner is there."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.shortcuts import Cue, choose_stamped
from cnnlib.training.shortcut_lab import shortcut_data, shortcut_report

TARGET, RED = 2, (255, 0, 0)


class CornerModel:
    """Predicts TARGET when the top-left pixel is pure red, else class 0 (of 3)."""

    output_shape = (None, 3)

    def predict(self, x, batch_size=None, verbose=0):
        red = np.all(np.asarray(x)[:, 0, 0] == RED, axis=-1)
        out = np.zeros((len(x), 3), np.float32)
        out[np.arange(len(x)), np.where(red, TARGET, 0)] = 1.0
        return out


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, (n, 20, 20, 3), dtype=np.uint8)


def test_the_cue_is_planted_in_the_chosen_share_of_the_target_class_only():
    y = np.repeat([0, 1, 2], 10)
    data = shortcut_data(
        (images(30, 0), y), (images(30, 1), y), ("a", "b", "c"), TARGET, 0.8, Cue(), seed=3
    )
    x_train, y_train = data.arrays["train"]
    red = np.all(x_train[:, 0, 0] == RED, axis=-1)
    assert np.array_equal(np.flatnonzero(red), choose_stamped(y, TARGET, 0.8, 3))
    assert red.sum() == 8 and set(y_train[red]) == {TARGET}
    x_val, _ = data.arrays["validation"]
    assert np.all(x_val[:, 0, 0] == RED, axis=-1).sum() == 8
    assert data.input_shape == (20, 20, 3) and data.class_names == ("a", "b", "c")


def test_the_report_by_hand_for_a_model_that_learned_only_the_cue():
    y = np.repeat([0, 1, 2], 10)
    x = images(30, 5)
    report = shortcut_report(CornerModel(), x, y, TARGET, 0.8, Cue(), seed=3)
    # stamped: 8 of the 10 target images carry the cue and are right; class 0 is always
    # right (the default answer); class 1 never: (10 + 0 + 8) / 30
    assert report.stamped_accuracy == pytest.approx(18 / 30)
    assert report.stamped_recall == pytest.approx(0.8)
    # clean: no cue, so the target is never found: (10 + 0 + 0) / 30
    assert report.clean_accuracy == pytest.approx(10 / 30)
    assert report.clean_recall == 0.0
    # the cue on the 20 other images: every one read as the target; none without it
    assert report.fooled == 1.0 and report.fooled_before == 0.0
    assert (report.others, report.targets) == (20, 10)
    with pytest.raises(InvalidArgumentError):
        shortcut_report(CornerModel(), x, np.zeros(30, int), TARGET, 0.8, Cue())
