"""Drawing the own-images exports: the conversion's progress, each exported file run by its
own runtime beside the Keras model (size, agreement, accuracy), and the downloads.

Every number comes from ``cnnlib.training.export.ExportCheck`` (measured in the export's
child process on the validation images); nothing here computes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from cnnlib.core.budgets import format_bytes
from cnnlib.training.export import EXPORT_FORMATS


def format_title(fmt: str) -> str:
    return EXPORT_FORMATS[fmt].title


def show_export_progress(p) -> None:
    """A running ``ExportProgress``: the format being converted, then the checks."""
    total = max(len(p.formats), 1)
    done = len(p.converted)
    if p.state == "queued":
        where = f" (number {p.queue_position} in line)" if p.queue_position else ""
        st.progress(0.0, text=f"Waiting for a free slot on the server{where}…")
    elif p.current is not None:
        st.progress(
            done / total,
            text=f"Converting to **{format_title(p.current)}** ({done + 1} of {total}), in a "
            "separate process…",
        )
    else:
        st.progress(1.0, text="Running every file in its own runtime beside the Keras model…")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def show_export_checks(checks: Sequence, images: int) -> None:
    """One row per exported file (``ExportCheck``): its size, how often it agrees with the
    Keras model, its accuracy and the Keras model's, the largest probability gap."""
    if not checks:
        st.caption("The files were not checked (there are no validation images).")
        return
    st.markdown(
        f"**Each file, run by its own runtime on your {images} validation images, beside the "
        "Keras model**"
    )
    rows = [
        {
            "File": c.title,
            "Run by": c.runtime,
            "Size": format_bytes(c.size_bytes),
            "Same answer as Keras": _percent(c.agreement),
            "Accuracy": _percent(c.accuracy),
            "Keras accuracy": _percent(c.keras_accuracy),
            "Largest probability gap": "—"
            if c.max_difference is None
            else f"{c.max_difference:.2g}",
        }
        for c in checks
    ]
    st.dataframe(rows, hide_index=True)
    for c in checks:
        if c.error:
            st.error(c.error, icon="⚠️")
    int8 = next((c for c in checks if c.format == "litert_int8" and c.accuracy is not None), None)
    if int8 is not None and int8.keras_accuracy is not None:
        lost = 100 * (int8.keras_accuracy - int8.accuracy)
        verdict = (
            "more than the 3 points to expect: check that your training images look like the "
            "photos it will see"
            if lost > 3
            else "within the 3 points to expect"
        )
        st.caption(
            "int8 stores each weight and activation in one byte instead of four, calibrated "
            f"on your training images: it loses {lost:.1f} points of accuracy here ({verdict})."
        )


def show_export_downloads(files: Mapping) -> None:
    """A download button for each exported file (``Exported``), in ``EXPORT_FORMATS`` order."""
    ordered = [files[f] for f in EXPORT_FORMATS if f in files]
    cols = st.columns(max(len(ordered), 1))
    for col, exported in zip(cols, ordered, strict=False):
        col.download_button(
            f"{exported.title} · {format_bytes(exported.size_bytes)}",
            exported.data,
            file_name=exported.filename,
            mime="application/octet-stream",
            on_click="ignore",
            icon=":material/download:",
            key=f"own_export_download_{exported.format}",
        )
