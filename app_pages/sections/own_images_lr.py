"""Train on your own images, tab ②'s learning-rate finder: a range test of the chosen recipe
(about 100 batches with the rate growing from 1e-7 to 10) as a background job, its loss
curve, and the suggested rate applied to the Learning rate setting by one click."""

from __future__ import annotations

import math
from collections.abc import Sequence

import streamlit as st

from cnnlib.training.transfer import OwnImagesRecipe
from ui import figures, runs
from ui import own_images_explore_view as explore_view
from ui import own_images_session as session
from ui.errors import friendly_errors

STAGES = {
    "queued": "Waiting for a free slot on the server…",
    "loading": "Loading the backbone…",
    "features": "The backbone computes the training images' features once…",
    "range test": "Training a fresh model for about 100 batches, the rate growing each batch…",
}


def nearest(rate: float, choices: Sequence[float]) -> float:
    """The choice closest to ``rate`` on a log scale."""
    return min(choices, key=lambda c: abs(math.log(c) - math.log(rate)))


def lr_finder_ui(
    entry: session.OwnData, recipe: OwnImagesRecipe, rates: Sequence[float], key: str
) -> None:
    """The range test of ``recipe`` on ``entry``'s training images; its suggestion can set
    the select slider ``key`` (whose options are ``rates``)."""
    st.caption(
        "A range test (fastai's learning-rate finder): a fresh "
        + ("head trains on the backbone's features" if recipe.transfer else "convnet trains")
        + " for about 100 batches while the learning rate grows from 0.0000001 to 10. The "
        "loss stays flat while the rate is too small, falls where it learns, then blows up. "
        "The suggestion is the rate at the lowest loss divided by 10."
    )
    reason = runs.busy_message()
    if st.button(
        "Find a learning rate",
        key="own_lr_start",
        disabled=bool(reason) or not entry.health.ok,
        icon=":material/search:",
    ):
        with friendly_errors("The range test could not start: "):
            session.start_lr_finder(entry, recipe)
            st.rerun()
    run = runs.current(session.LR_RUN)
    active = run is not None and run.running
    runs.poll_progress(active, lr_progress, rates, key, active)


def _apply(key: str, rate: float) -> None:
    st.session_state[key] = rate


def lr_progress(rates: Sequence[float], key: str, polling: bool) -> None:
    run = runs.current(session.LR_RUN)
    if run is None:
        return
    p = run.job.snapshot()
    if not p.done:
        count = f" ({p.images_done:,}/{p.images_total:,} images)" if p.images_total else ""
        st.caption(STAGES.get(p.stage, STAGES["queued"]) + count)
        st.button("Stop the range test", key="own_lr_stop", on_click=run.job.stop)
    elif p.state == "failed":
        st.error(p.error or "The range test failed.", icon="⚠️")
    elif run.job.result() is None:
        st.warning(p.message or "The range test was stopped before it finished.")
    else:
        test = run.job.result()
        st.plotly_chart(
            explore_view.lr_figure(test),
            key="own_lr_curve",
            alt=f"Line chart of the training loss against the learning rate on a log scale, "
            f"{len(test.rates)} batches; lowest smoothed loss at {test.minimum_rate:.2g}, "
            f"suggested rate {test.suggested:.2g}.",
        )
        figures.table_view(explore_view.lr_rows(test), alt="Loss at each learning rate tried")
        choice = nearest(test.suggested, rates)
        st.caption(
            f"{run.info.label}: lowest smoothed loss at a rate of {test.minimum_rate:.2g}; "
            f"suggested {test.suggested:.2g} (green line)"
            + (", where the loss blew up" if test.diverged else "")
            + f". The nearest setting is {choice:g}."
        )
        st.button(
            f"Use a learning rate of {choice:g}",
            key="own_lr_apply",
            on_click=_apply,
            args=(key, choice),
            disabled=st.session_state.get(key) == choice,
            icon=":material/check:",
        )
    if polling and p.done:
        st.rerun()
