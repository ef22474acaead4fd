"""Train on your own images, tab ④'s exports: choose formats (Keras, LiteRT float32 and
int8, ONNX, SavedModel), convert them as a background job (a child process: the converter
keeps memory), see each file run by its own runtime beside the Keras model, download them;
and the labels file and a prediction script."""

from __future__ import annotations

import streamlit as st

from cnnlib.training import transfer
from cnnlib.training.export import EXPORT_FORMATS
from ui import own_images_export_view as export_view
from ui import own_images_session as session
from ui import runs, training_view
from ui.errors import friendly_errors

DEFAULT_FORMATS = ["litert", "onnx"]


def formats_ui() -> tuple[str, ...]:
    """The formats to export, in ``EXPORT_FORMATS`` order."""
    chosen = st.pills(
        "Formats",
        tuple(EXPORT_FORMATS),
        selection_mode="multi",
        default=DEFAULT_FORMATS,
        format_func=export_view.format_title,
        key="own_export_formats",
        help="LiteRT (.tflite) runs on phones and microcontrollers; int8 is about 4× smaller, "
        "calibrated on your training images. ONNX runs in many runtimes; SavedModel in "
        "TensorFlow Serving.",
    )
    return tuple(f for f in EXPORT_FORMATS if f in (chosen or ()))


def export_ui(tested: session.OwnTested | None) -> None:
    if tested is None:
        return
    st.subheader("Export")
    st.caption(
        "Every file is the model without its augmentation layers; it takes raw pixels (its "
        "preprocessing is inside). Each one is run by its own runtime on your validation "
        "images, so you know it works before you download it."
    )
    formats = formats_ui()
    run = session.export_of(tested)
    reason = runs.busy_message() or (None if formats else "Choose at least one format.")
    if st.button(
        "Export and check",
        key="own_export_start",
        disabled=bool(reason),
        icon=":material/output:",
    ):
        with friendly_errors("The export could not start: "):
            session.start_export(tested, formats)
            st.rerun()
    if reason and formats:
        st.caption(reason)
    active = run is not None and run.running
    runs.poll_progress(active, export_progress, tested, active)
    downloads_ui(tested)


def export_progress(tested: session.OwnTested, polling: bool) -> None:
    run = session.export_of(tested)
    if run is None:
        st.caption("No export of this model yet: choose formats and press Export and check.")
        return
    p = run.job.snapshot()
    if not p.done:
        export_view.show_export_progress(p)
        st.button("Stop the export", key="own_export_stop", on_click=run.job.stop)
    elif p.state == "failed":
        st.error(p.error or "The export failed.", icon="⚠️")
    else:
        if p.state == "stopped":
            st.warning(p.message or "The export was stopped; the files made so far are below.")
        with friendly_errors():
            export_view.show_export_checks(run.job.checks(), len(tested.result.y))
            export_view.show_export_downloads(run.job.files())
    if polling and p.done:
        st.rerun()  # one full rerun: Start and Export come back, polling stops


def downloads_ui(tested: session.OwnTested) -> None:
    """The model as it trained (.keras, at once), the labels file and the prediction script."""
    model, names = tested.result.model, tested.result.class_names
    c = st.columns(3)
    with c[0]:
        training_view.download_model(
            model, "own_images_model.keras", key="own_download_model", label="Model (.keras)"
        )
    c[1].download_button(
        "Labels (labels.txt)",
        transfer.labels_text(names),
        file_name="labels.txt",
        on_click="ignore",
        key="own_download_labels",
    )
    c[2].download_button(
        "Python snippet (predict.py)",
        transfer.prediction_snippet(model, threshold=session.threshold()),
        file_name="predict.py",
        on_click="ignore",
        key="own_download_snippet",
    )
