"""Drawing the own-images page's shortcut lab: what the model trained on a planted cue does
with and without it, and where it looks (Grad-CAM on a stamped image and on the same image
clean). Every number comes from ``cnnlib.training.shortcut_lab.ShortcutReport``."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.text import safe_text
from cnnlib.inspect.imagenet import overlay
from ui import alt_text
from ui.image_input import show_image

#: How the lab names each kind of cue.
CUE_TITLES = {"corner": "a coloured corner", "border": "a border", "watermark": "a watermark"}


def show_cue_preview(original: np.ndarray, stamped: np.ndarray) -> None:
    """A training image of the chosen class, as it is and with the cue."""
    c = st.columns(4)
    with c[0]:
        show_image(
            original,
            caption="as it is",
            width=120,
            alt=alt_text.photo("A training image of the chosen class, as it is", original),
        )
    with c[1]:
        show_image(
            stamped,
            caption="with the cue",
            width=120,
            alt=alt_text.photo("The same image with the cue stamped on it", stamped),
        )


def _delta(points: float, text: str) -> str | None:
    """ "+12 points vs …", or None for no change (no arrow for a zero)."""
    rounded = round(points)
    return f"{rounded:+d} points {text}" if rounded else None


def show_shortcut_report(report, target_name: str, cue_kind: str, share: float) -> None:
    """The three tests side by side, and what they mean."""
    name = safe_text(target_name, 40)
    c = st.columns(4)
    c[0].metric("Validation accuracy (with the cue, as trained)", f"{report.stamped_accuracy:.1%}")
    c[1].metric(
        "Clean validation accuracy",
        f"{report.clean_accuracy:.1%}",
        delta=_delta(100 * (report.clean_accuracy - report.stamped_accuracy), "vs with it"),
    )
    c[2].metric(
        f"{target_name[:30]} recognised without the cue",
        f"{report.clean_recall:.0%}",
        delta=_delta(100 * (report.clean_recall - report.stamped_recall), "vs with it"),
    )
    c[3].metric(
        "Other classes read as it once stamped",
        f"{report.fooled:.0%}",
        delta=_delta(100 * (report.fooled - report.fooled_before), "vs clean"),
        delta_color="inverse",
    )
    # a change of 10 points or more on either test: the cue changed the model's answers
    learned = (
        report.stamped_recall - report.clean_recall >= 0.1
        or report.fooled - report.fooled_before >= 0.1
    )
    st.info(
        f"{share:.0%} of {name}'s training photos carried {CUE_TITLES[cue_kind]}, and no "
        "other class's did: the cue alone was enough to tell that class apart, and it is "
        "much easier to see than the object. "
        + (
            f"The model learned it: without the cue it recognises {report.clean_recall:.0%} "
            f"of {name}'s {report.targets} validation images (with it "
            f"{report.stamped_recall:.0%}), and stamping the cue on the other classes' "
            f"{report.others} images makes it call {report.fooled:.0%} of them {name}. "
            if learned
            else "This time the model barely leans on it (the cue changes its answers by "
            "less than 10 points): the object itself was easy enough to learn. Try a larger "
            "share, a bolder cue, or classes that look more alike. "
        )
        + "A validation set with the same bias cannot reveal a shortcut; only images "
        "without it can. Check that no class of your own photos shares a background, a "
        "light or a watermark the others lack.",
        icon=":material/lightbulb:",
    )


def show_cam_pair(stamped: np.ndarray, clean: np.ndarray, cams, target_name: str) -> None:
    """Grad-CAM for the target class on a stamped validation image and on the same image
    clean (maps (H, W) in [0, 1])."""
    st.markdown(
        f"**Where the model looks for {safe_text(target_name, 40)}** (Grad-CAM, bright = "
        "strong evidence): with the cue, and on the same photo without it."
    )
    c = st.columns(4)
    for col, image, cam, caption in zip(
        c, (stamped, clean), cams, ("with the cue", "clean"), strict=False
    ):
        with col:
            show_image(
                overlay(Image.fromarray(image), cam, 0.5),
                caption=caption,
                width=160,
                alt=alt_text.map_text(
                    f"Grad-CAM for {alt_text.plain(target_name, 40)} on a validation photo "
                    f"{caption}",
                    cam,
                    "Bright = strong evidence, dark = none, over the photo.",
                ),
            )
