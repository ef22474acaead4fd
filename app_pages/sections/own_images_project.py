"""Train on your own images: save the project as one file (tab ④), and open a saved one
(tab ①, "Open a saved project"), read through the same safe archive reader as any upload."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.budgets import format_bytes
from cnnlib.training.transfer import OwnImagesRecipe
from ui import own_images_project as project
from ui import own_images_session as session
from ui.errors import friendly_errors

#: Session key of the ``ResumedProject`` of the data opened from a project file: (key, it).
RESUMED = "own_resumed"


def open_project_ui() -> tuple[session.OwnData | None, project.ResumedProject | None]:
    """The project file to open: (the session's data, the ``ResumedProject`` when it was
    opened just now, to restore the settings' widgets). Raises ``ArchiveError``."""
    file = st.file_uploader(
        "A project file saved by CNN Lab (.zip)", type=["zip"], key="own_project"
    )
    current = session.data()
    kept = st.session_state.get(RESUMED)
    if file is None:
        if current is not None and kept is not None and kept[0] == current.key:
            show_resumed(kept[1])
            return current, None
        st.info("Upload a project file you saved (tab ④, Save the project).", icon="📁")
        return None, None
    key = f"project:{file.file_id}"
    if current is not None and current.key == key:
        if kept is not None and kept[0] == key:
            show_resumed(kept[1])
        return current, None
    entry, resumed = project.resume(key, file.getvalue)
    st.session_state[RESUMED] = (key, resumed)
    return entry, resumed


def show_resumed(resumed: project.ResumedProject) -> None:
    st.success(
        f"Opened your project: {resumed.images} images, your classes, relabels, exclusions and "
        "settings"
        + (
            ", and the trained model (tested again on its validation images: tabs ③ and ④)."
            if resumed.has_model
            else " (it was saved without a model: train one in tab ②)."
        ),
        icon=":material/folder_open:",
    )


def save_ui(
    entry: session.OwnData | None,
    recipe: OwnImagesRecipe | None,
    tested: session.OwnTested | None,
) -> None:
    st.subheader("Save the project")
    if entry is None:
        st.info("Choose your images (tab ①) to save them as a project.", icon="ℹ️")
        return
    with_model = project.includes_model(entry, tested)
    st.caption(
        "One file with your checked images (resized to at most 256 pixels), your classes, "
        "relabels and exclusions, the settings"
        + (", and the trained model with its curves" if with_model else "")
        + ". Open it later with **Open a saved project** (tab ①) to carry on where you left."
    )
    if tested is not None and not with_model:
        st.caption(
            "The trained model is not included: your data changed since it trained. Train "
            "again (tab ②) to include it."
        )
    data = project.prepared_file(entry, recipe, tested)
    if data is None:
        if st.button("Prepare the project file", key="own_project_prepare", icon=":material/save:"):
            with friendly_errors("The project could not be saved: "):
                project.prepare_file(entry, recipe, tested)
                st.rerun()
        return
    st.download_button(
        f"Download the project (.zip, {format_bytes(len(data))})",
        data,
        file_name="cnnlab-project.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        key="own_project_download",
    )
