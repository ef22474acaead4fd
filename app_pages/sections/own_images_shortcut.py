"""Train on your own images, tab ⑥ "Shortcut lab": plant a cue (a coloured corner, a border
or a watermark) in most of one class's photos, train with the page's settings, and see the
validation score soar on the biased data, collapse on clean images, the cue alone turn other
classes into that one, and Grad-CAM pointing at the cue."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnlib.data.shortcuts import CUES, MAX_TEXT, Cue, choose_stamped, stamp
from cnnlib.inspect.saliency import saliency_map
from cnnlib.training.trainer import default_slots
from cnnlib.training.transfer import OwnImagesRecipe
from ui import own_images_session as session
from ui import own_images_shortcut_view as shortcut_view
from ui import runs, training_view
from ui.errors import friendly_errors

CUE_LABELS = {"corner": "Coloured corner", "border": "Border", "watermark": "Watermark text"}


def _rgb(color: str) -> tuple[int, int, int]:
    """ "#RRGGBB" (``st.color_picker``) as (r, g, b)."""
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def cue_ui(names: tuple[str, ...]) -> tuple[int, Cue, float]:
    """(target class, cue, share of that class's photos stamped). Raises
    ``InvalidArgumentError`` for a bad watermark."""
    c = st.columns([2, 2, 1, 2])
    target = c[0].selectbox(
        "Plant it in the class",
        range(len(names)),
        format_func=names.__getitem__,
        key="own_sc_class",
    )
    kind = c[1].radio("Cue", CUES, format_func=CUE_LABELS.get, key="own_sc_kind")
    color = c[2].color_picker("Colour", "#FF0000", key="own_sc_color")
    share = c[3].slider("Share of its photos stamped", 0.5, 1.0, 0.9, 0.05, key="own_sc_share")
    text = "CNN"
    if kind == "watermark":
        text = st.text_input("Watermark text", "CNN", max_chars=MAX_TEXT, key="own_sc_text")
    return int(target), Cue(kind, _rgb(color), None, text), float(share)


def shortcut_ui(entry: session.OwnData | None, recipe: OwnImagesRecipe | None) -> None:
    st.subheader("The shortcut lab")
    st.caption(
        "A model learns whatever tells the classes apart most easily, even if it is not the "
        "object. Plant a cue in most photos of one class, train with the settings of tab ②, "
        "and see what it learned."
    )
    if entry is None or not entry.health.ok or recipe is None:
        st.info("Choose your images (tab ①) and the settings (tab ②) first.", icon="ℹ️")
        return
    names = entry.folders.class_names
    with friendly_errors():
        target, cue, share = cue_ui(names)
        samples = entry.health.samples.get(names[target]) or []
        if samples:
            size = (recipe.image_size, recipe.image_size)
            original = np.asarray(samples[0].convert("RGB").resize(size))
            shortcut_view.show_cue_preview(original, stamp(original, cue))
        reason = runs.busy_message()
        if st.button(
            "Plant the cue and train",
            key="own_sc_start",
            disabled=bool(reason),
            icon=":material/science:",
        ):
            session.start_shortcut(entry, recipe, cue, target, share)
            st.rerun()
    run = runs.current(session.SHORTCUT_RUN)
    active = run is not None and run.running
    runs.poll_progress(active, shortcut_progress, active)
    tested = session.shortcut_tested()
    if tested is not None and tested.result is not None:
        with friendly_errors():
            results_ui(tested)


def shortcut_progress(polling: bool) -> None:
    run = runs.current(session.SHORTCUT_RUN)
    if run is None:
        return
    p = run.job.snapshot()
    if not p.done:
        training_view.show_status(p, default_slots().limit)
        st.button("Stop", key="own_sc_stop", on_click=run.job.stop)
    elif p.state == "failed":
        st.error(p.error or "The training failed.", icon="⚠️")
    if polling and p.done:
        st.rerun()


def results_ui(tested) -> None:
    info, report = tested.info, tested.result
    name = info.class_names[info.target]
    shortcut_view.show_shortcut_report(report, name, info.cue.kind, info.share)
    stamped = choose_stamped(info.y, info.target, info.share, info.recipe.seed + 1)
    if not len(stamped):
        return
    i = int(stamped[0])
    model = tested.job.model
    cams = [
        saliency_map(model, image.astype("float32"), info.target, method="gradcam")
        for image in (report.stamped[i], report.clean[i])
    ]
    shortcut_view.show_cam_pair(report.stamped[i], report.clean[i], cams, name)
