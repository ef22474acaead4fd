"""Train on your own images, tab ③'s held-out test: the trained model on images it never
saw and that never helped pick it (the test share set aside before training, or a test
zip), beside its validation score, with the gap explained, per-class precision and recall,
a confusion matrix whose cells open their images, and the most-confused pairs; then the
model's calibration on those test images (on the validation images while there is no test
set), before and after temperature scaling fitted on the validation images."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.errors import ArchiveError
from ui import calibration_view, training_view
from ui import own_images_session as session
from ui import own_images_test_view as test_view
from ui import own_images_view as view
from ui.errors import friendly_errors

SHARE, ZIP = "The test share set aside before training", "Upload a test zip"


def source_ui(tested: session.OwnTested) -> tuple[str, str, object] | None:
    """Where the test images come from: ("share", …) or ("zip", upload key, read), or None
    while a test zip is still to be uploaded."""
    share = session.test_share_size(tested)
    choice = st.radio(
        "Test images",
        (SHARE, ZIP),
        index=0 if share else 1,
        horizontal=True,
        key="own_test_source",
    )
    if choice == SHARE:
        if not share:
            st.info(
                "This model trained without a test share. Set one in tab ② (Test share) and "
                "train again, or upload a test zip.",
                icon="ℹ️",
            )
            return None
        st.caption(f"{share} images of your data, set aside before training.")
        return "share", "share", None
    file = st.file_uploader(
        "A .zip of test images, one folder per class (named like the training classes)",
        type=["zip"],
        key="own_test_zip",
    )
    if file is None:
        return None
    return "zip", f"zip:{file.file_id}", file.getvalue


def held_out_ui(tested: session.OwnTested | None) -> None:
    st.subheader("Held-out test")
    st.caption(
        "The validation images helped pick this model (early stopping kept its best epoch on "
        "them, and you compared settings on them). A test set did neither: its score is what "
        "to expect on new photos."
    )
    if tested is None:
        st.info("Train a model (tab ②) to test it here.", icon="ℹ️")
        return
    source = source_ui(tested)
    if source is None:
        calibration_ui(tested, None, "")
        return
    kind, key, read = source
    result = None
    with friendly_errors("The test could not run: "):
        try:
            result = (
                session.test_on_share(tested)
                if kind == "share"
                else session.test_on_zip(tested, key, read)
            )
        except ArchiveError as err:  # its message shows the upload's names as code spans
            st.error(f"These test images cannot be used: {err}", icon="⚠️")
    if result is None:
        return
    names = tested.result.class_names
    test_view.show_test_summary(result)
    test_view.show_precision_recall(result, names)
    test_confusion_ui(tested, result, key)
    test_view.show_confused_pairs(result, names)
    calibration_ui(tested, result, key)


def calibration_ui(
    tested: session.OwnTested, result: session.OwnTestResult | None, key: str
) -> None:
    """The calibration of ``result``'s test images (of the validation images when None)."""
    calibration_view.show_intro("test images" if result is not None else "validation images")
    if result is None and not len(tested.result.y):
        st.info("With neither test nor validation images, there is nothing to measure.", icon="ℹ️")
        return
    if result is None:
        st.caption(
            "No test set yet, so these diagrams use the validation images. Choose a test share "
            "or upload a test zip above for the honest figure."
        )
    with friendly_errors("The calibration could not be measured: "):
        report = session.calibration(tested, result, key)
        calibration_view.show_calibration(
            report, key=f"own_calibration_{tested.id}_{key}", on_validation=result is None
        )


@st.fragment
def test_confusion_ui(tested: session.OwnTested, result: session.OwnTestResult, key: str) -> None:
    st.markdown(
        "**Test confusion matrix** (row = true class, column = the model's answer). Click a "
        "cell to see its images."
    )
    evaluation, names = result.test.evaluation, tested.result.class_names
    event = training_view.confusion_chart(
        evaluation.confusion, names, key=f"own_test_confusion_{tested.id}_{key}"
    )
    cell = training_view.selected_cell(event)
    if cell is not None:
        view.show_cell(evaluation, cell, result.x, names)
