"""Public API: calibration, reliability diagrams and temperature scaling
(``cnnlib.inspect.calibration``)."""

from cnnlib.inspect.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    CalibrationReport,
    Reliability,
    calibrated_probabilities,
    calibration_report,
    fit_temperature,
    model_logits,
    nll,
    reliability,
    softmax,
)

__all__ = [
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "CalibrationReport",
    "Reliability",
    "calibrated_probabilities",
    "calibration_report",
    "fit_temperature",
    "model_logits",
    "nll",
    "reliability",
    "softmax",
]
