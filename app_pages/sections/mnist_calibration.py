"""Tab ③'s calibration section of the Train-on-MNIST page: is the trained model's confidence
right? The reliability diagram and expected calibration error of the test set, before and after
temperature scaling fitted on the validation split.

Layout only: the report comes from ``ui.mnist_session.calibration``
(``cnnlib.inspect.calibration.calibration_report``), the drawing from ``ui.calibration_view``.
"""

from __future__ import annotations

import streamlit as st

from ui import calibration_view as view
from ui import mnist_session as session


def calibration_ui(tested: session.MnistTested) -> None:
    view.show_intro()
    report = session.calibration(tested)
    if report is None:
        st.info("The model is no longer in this session's registry: train it again.")
        return
    view.show_calibration(report, key=f"mnist_calibration_{tested.id}")
