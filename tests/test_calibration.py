"""cnnlib.calibration: ECE against a hand computation, temperature scaling against a grid
search of the NLL, and on an over-confident model."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlib.calibration as cal
from cnnlib.core.errors import InvalidArgumentError

#: Six predictions of 3 classes, by hand (top probability, predicted, label, correct):
#: 0.90 → 0 (label 0, right), 0.80 → 1 (label 1, right), 0.85 → 2 (label 0, wrong),
#: 0.60 → 0 (label 0, right), 0.55 → 1 (label 2, wrong), 0.34 → 2 (label 2, right).
P = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.10, 0.80, 0.10],
        [0.05, 0.10, 0.85],
        [0.60, 0.30, 0.10],
        [0.20, 0.55, 0.25],
        [0.33, 0.33, 0.34],
    ]
)
Y = np.array([0, 1, 0, 0, 2, 2])


def test_ece_by_hand():
    """5 bins of 0.2: (0.2, 0.4] holds 0.34 (right); (0.4, 0.6] holds 0.60 (right) and 0.55
    (wrong); (0.6, 0.8] holds 0.80 (right); (0.8, 1] holds 0.90 (right) and 0.85 (wrong).
    ECE = 1/6·|1 − 0.34| + 2/6·|0.5 − 0.575| + 1/6·|1 − 0.8| + 2/6·|0.5 − 0.875|."""
    r = cal.reliability(P, Y, bins=5)
    np.testing.assert_array_equal(r.count, [0, 1, 2, 1, 2])
    np.testing.assert_allclose(r.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(r.confidence[1:], [0.34, 0.575, 0.80, 0.875])
    np.testing.assert_allclose(r.accuracy[1:], [1.0, 0.5, 1.0, 0.5])
    assert np.isnan(r.confidence[0]) and np.isnan(r.accuracy[0])  # an empty bin
    expected = (0.66 + 2 * 0.075 + 0.2 + 2 * 0.375) / 6
    assert r.ece == pytest.approx(expected)
    assert r.accuracy_all == pytest.approx(4 / 6)
    assert r.confidence_all == pytest.approx(P.max(1).mean())
    np.testing.assert_allclose(r.gap[1:], [-0.66, 0.075, -0.2, 0.375])


def test_bins_are_closed_on_the_right():
    """A confidence of exactly 0.6 belongs to (0.4, 0.6], 1.0 to the last bin."""
    p = np.array([[0.6, 0.4], [1.0, 0.0]])
    r = cal.reliability(p, np.array([0, 1]), bins=5)
    np.testing.assert_array_equal(r.count, [0, 0, 1, 0, 1])
    assert r.ece == pytest.approx((0.4 + 1.0) / 2)


def _overconfident(n: int, seed: int):
    """Labels drawn from softmax(z) (so z is calibrated by construction) and the logits of an
    over-confident model, 3·z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 10))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.minimum((rng.uniform(size=(n, 1)) > p.cumsum(1)).sum(1), 9)  # a draw from each p
    return 3.0 * z, y


def test_temperature_scaling_lowers_an_overconfident_models_ece():
    val_logits, val_y = _overconfident(4000, seed=0)
    test_logits, test_y = _overconfident(4000, seed=1)
    t = cal.fit_temperature(val_logits, val_y)
    assert t == pytest.approx(3.0, rel=0.08)  # it undoes the factor of 3
    before = cal.reliability(cal.softmax(test_logits), test_y)
    after = cal.reliability(cal.softmax(test_logits, t), test_y)
    assert before.ece > 0.15 and after.ece < 0.03
    assert np.nanmean(before.gap) > 0  # over-confident: confidence above accuracy
    # The predicted class never changes.
    np.testing.assert_array_equal(
        cal.softmax(test_logits).argmax(1), cal.softmax(test_logits, t).argmax(1)
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_temperature_minimises_the_nll_on_a_grid(seed):
    logits, y = _overconfident(1500, seed)
    logits = logits * np.random.default_rng(seed).uniform(0.2, 1.0)  # T anywhere in range
    t = cal.fit_temperature(logits, y)

    def grid_search(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), 401))
        return grid, np.array([cal.nll(logits, y, g) for g in grid])

    coarse, nlls = grid_search(cal.MIN_TEMPERATURE, cal.MAX_TEMPERATURE)  # 1.5 % apart
    i = int(nlls.argmin())
    fine, nlls = grid_search(coarse[max(i - 2, 0)], coarse[min(i + 2, 400)])  # 0.015 % apart
    assert t == pytest.approx(fine[nlls.argmin()], rel=1e-3)
    assert cal.nll(logits, y, t) <= nlls.min() + 1e-9


def test_nll_by_hand():
    z = np.array([[0.0, np.log(3.0)]])  # softmax = (1/4, 3/4)
    assert cal.nll(z, np.array([1])) == pytest.approx(-np.log(0.75))
    # A huge temperature flattens every row to uniform: −log(1/2).
    assert cal.nll(z, np.array([0]), temperature=1e9) == pytest.approx(np.log(2), abs=1e-6)


def test_a_model_thats_always_right_wants_the_smallest_temperature():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert cal.fit_temperature(logits, np.array([0, 1])) == pytest.approx(
        cal.MIN_TEMPERATURE, rel=1e-3
    )


def test_model_logits_of_a_softmax_model():
    import keras

    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    x = np.random.default_rng(0).normal(size=(5, 4, 4, 1)).astype(np.float32)
    z = cal.model_logits(model, x, batch_size=2)
    assert z.shape == (5, 3)
    np.testing.assert_allclose(cal.softmax(z), model(x).numpy(), atol=1e-6)
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(z, x.reshape(5, -1) @ kernel + bias, atol=1e-5)


def test_calibration_report_fits_on_validation_and_measures_on_test():
    """An over-confident softmax model (labels follow its logits / 3): the report's numbers
    are the pure functions' on the model's own outputs, T comes from the validation set only
    and recovers the 3, and scaling lowers the test ECE and NLL."""
    import keras

    rng = np.random.default_rng(4)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    # Fixed weights (Keras' initialiser is unseeded): logits of spread about 6 per unit input.
    kernel = rng.normal(scale=1.5, size=(16, 3)).astype(np.float32)
    model.layers[-1].set_weights([kernel, np.zeros(3, np.float32)])
    x = rng.normal(size=(600, 4, 4, 1)).astype(np.float32)
    probs = model(x).numpy()
    # Labels drawn from softmax(logits / 3): the model is over-confident by a temperature of
    # 3 exactly, so scaling can calibrate it (whatever the seed; 30 seeds checked).
    z = x.reshape(600, -1) @ kernel
    y = (rng.random((600, 1)) > cal.softmax(z, 3.0).cumsum(1)).sum(1)
    report = cal.calibration_report(model, x[:400], y[:400], x_val=x[400:], y_val=y[400:])
    assert report.test_count == 400 and report.validation_count == 200
    expected = cal.reliability(probs[:400], y[:400])
    assert report.before.ece == pytest.approx(expected.ece, abs=1e-5)
    np.testing.assert_array_equal(report.before.count, expected.count)
    z_val = cal.model_logits(model, x[400:])
    assert report.temperature == pytest.approx(cal.fit_temperature(z_val, y[400:]), rel=1e-6)
    assert 2.0 < report.temperature < 4.5  # it was over-confident by 3
    assert report.after.ece < report.before.ece and report.nll_after < report.nll_before
    softer = cal.calibrated_probabilities(model, x[:5], report.temperature)
    np.testing.assert_allclose(
        softer, cal.softmax(cal.model_logits(model, x[:5]), report.temperature)
    )
    assert (softer.argmax(1) == probs[:5].argmax(1)).all() and (
        softer.max(1) < probs[:5].max(1)
    ).all()
    plain = cal.calibration_report(model, x[:400], y[:400])
    assert plain.temperature is None and plain.after is None and plain.validation_count == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cal.reliability(P[:, :1], Y), "at least 2 classes"),
        (lambda: cal.reliability(P, Y[:5]), "6 whole numbers"),
        (lambda: cal.reliability(P, Y.astype(float)), "whole numbers"),
        (lambda: cal.reliability(P, Y + 1), "from 0 to 2"),
        (lambda: cal.reliability(P * 2, Y), "between 0 and 1"),
        (lambda: cal.reliability(P * np.nan, Y), "NaN"),
        (lambda: cal.reliability(P, Y, bins=0), "bins"),
        (lambda: cal.reliability(P, Y, bins=True), "bins"),
        (lambda: cal.fit_temperature(np.zeros((0, 3)), np.zeros(0, int)), "N ≥ 1"),
        (lambda: cal.softmax(P, temperature=0), "positive"),
        (lambda: cal.nll(P, Y, temperature=-1.0), "positive"),
    ],
)
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(InvalidArgumentError, match=match):
        call()
