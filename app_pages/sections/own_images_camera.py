"""Train on your own images, tab ①'s "Webcam": make classes, take photos for the chosen one
(one per click, or a burst while "Hold to record" is held), remove any, then use them: they
are checked like an upload (the health report below)."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import BudgetError, InvalidImageError
from cnnlib.core.text import safe_text
from ui import alt_text
from ui import own_images_camera as camera
from ui import own_images_session as session
from ui.errors import friendly_errors
from ui.image_input import show_image
from ui.webcam_widgets import burst_widget

#: Thumbnails per row in the capture galleries.
COLUMNS = 8


def _new_class() -> None:
    """The "Add class" button's callback: add the typed class and choose it."""
    with friendly_errors():
        name = camera.add_class(st.session_state.get("own_cam_new", ""))
        st.session_state["own_cam_class"] = name
        st.session_state["own_cam_new"] = ""


def classes_ui() -> str | None:
    """The class the next photo is for (None until a class exists)."""
    c = st.columns([2, 2, 1], vertical_alignment="bottom")
    c[1].text_input(
        "New class", key="own_cam_new", max_chars=camera.MAX_NAME, placeholder="e.g. thumbs up"
    )
    c[2].button("Add class", key="own_cam_add", on_click=_new_class, icon=":material/add:")
    names = camera.classes()
    if not names:
        c[0].caption("Name a class, then take its photos.")
        return None
    return c[0].selectbox("Photos for class", names, key="own_cam_class")


def burst_ui(chosen: str | None, side: int) -> None:
    """ "Hold to record": the burst's frames (at most ``side`` pixels) go to class ``chosen``."""
    limits = budgets()
    payload = burst_widget(
        key="own_cam_burst",
        target=chosen or "",
        side=side,
        max_frames=limits.burst_frames,
        max_bytes=limits.burst_bytes,
        disabled=chosen is None,
    )
    if payload is None or chosen is None:
        return
    try:
        added = camera.add_burst(chosen, payload)
    except (BudgetError, InvalidImageError) as err:
        st.error(str(err), icon="⚠️")
        return
    st.success(
        f"Added {len(added.photos)} photo(s) from your burst to {safe_text(chosen)}.",
        icon=":material/burst_mode:",
    )
    for problem in added.problems[:5]:
        st.warning(problem, icon="⚠️")
    if len(added.problems) > 5:
        st.warning(f"… and {len(added.problems) - 5} more photo(s) skipped.", icon="⚠️")


def gallery_ui() -> None:
    """Each class's photos, each with a Remove button."""
    for name, photos in camera.by_class().items():
        st.caption(f"{safe_text(name)}: {len(photos)} photo(s)")
        for start in range(0, len(photos), COLUMNS):
            cols = st.columns(COLUMNS)
            for col, capture in zip(cols, photos[start : start + COLUMNS], strict=False):
                with col:
                    show_image(
                        capture.image,
                        alt=alt_text.photo(
                            f"Webcam photo {capture.id} of class {alt_text.plain(name, 40)}",
                            capture.image,
                        ),
                    )
                    st.button(
                        "Remove",
                        key=f"own_cam_remove_{capture.id}",
                        on_click=camera.remove_capture,
                        args=(capture.id,),
                        icon=":material/delete:",
                    )


def camera_ui(side: int) -> session.OwnData | None:
    """Capture photos per class (a burst's frames at most ``side`` pixels, the largest
    training size); returns the session's data once the photos are used."""
    st.caption(
        "Make a class, point the camera at an example of it and take a photo, or hold "
        "*Hold to record* to take about 5 a second while you move it; take at least "
        f"{budgets().min_images_per_class} per class, from different angles and distances, "
        "for 2 classes or more. Then use them: they are checked like any upload."
    )
    chosen = classes_ui()
    left, right = st.columns(2)
    with left:
        shot = st.camera_input(
            "Take a photo" if chosen is None else f"Take a photo of {chosen}",
            key="own_cam_shot",
            disabled=chosen is None,
        )
    if shot is not None and chosen is not None:
        try:
            camera.add_capture(chosen, shot)
        except (BudgetError, InvalidImageError) as err:
            st.error(str(err), icon="⚠️")
    with right:
        st.markdown("**Or record a burst**")
        burst_ui(chosen, side)
    gallery_ui()
    current = session.data()
    using = current is not None and current.key.startswith("camera:")
    if st.button(
        "Use these photos",
        key="own_cam_use",
        disabled=len(camera.captures()) == 0,
        icon=":material/check:",
    ):
        return camera.use_captures()
    if using:
        st.caption("Using the photos as they were when you last pressed Use these photos.")
        return current
    return None
