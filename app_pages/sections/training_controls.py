"""Pause, Resume, Step one batch and a new learning rate, for a page's running training.

``controls_ui`` draws the buttons under the progress (inside the page's polling fragment);
the clicks go to the run's job through ``ui.runs`` (the job's ``TaskControl``), which carries
them to where the training runs. The curves mark each change of learning rate
(``ui.training_view.curves_figure``).
"""

from __future__ import annotations

import streamlit as st

from ui import runs
from ui.errors import friendly_errors

#: The learning rates offered while paused (with the run's current one).
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)

HELP = {
    "pause": "Holds the training before its next batch (a feature extraction after its current "
    "one); Stop and the time limit still work.",
    "step": "Runs exactly one batch, then holds again: watch the curves move by one batch.",
    "lr": "Used from the next batch on; the curves mark where it changed.",
}


def current_learning_rate(p, configured: float) -> float:
    """The rate the training uses now: the last change read back from its optimizer, else
    the configured one."""
    return p.lr_changes[-1][1] if p.lr_changes else configured


def controls_ui(
    run_key: str,
    p,
    *,
    prefix: str,
    learning_rate: float,
    refusal: str | None = None,
    note: str = "",
    held: str = "",
) -> None:
    """Pause / Resume and, while paused, Step one batch and a new learning rate, for the run
    under ``run_key`` whose snapshot is ``p`` (widget keys start with ``prefix``).
    ``learning_rate``: the rate the current stage was configured with; ``refusal``: why the
    learning rate cannot be changed (``TrainConfig.lr_change_refusal``), shown instead of
    the choice; ``note``: shown under the choice (e.g. which stage it applies to);
    ``held``: where the paused work holds, instead of the batches done."""
    if p.done or p.state not in ("queued", "running"):
        return
    asked = runs.current(run_key).job.pause_requested
    cols = st.columns([1, 1, 2])
    if asked:
        cols[0].button(
            "Resume",
            key=f"{prefix}_resume",
            on_click=runs.resume_training,
            args=(run_key,),
            icon=":material/play_arrow:",
        )
    else:
        cols[0].button(
            "Pause",
            key=f"{prefix}_pause",
            on_click=runs.pause_training,
            args=(run_key,),
            icon=":material/pause:",
            help=HELP["pause"],
        )
    cols[1].button(
        "Step one batch",
        key=f"{prefix}_step",
        on_click=runs.step_training,
        args=(run_key,),
        disabled=not (asked and p.paused),  # a Step counts once the work holds
        icon=":material/skip_next:",
        help=HELP["step"],
    )
    if asked and p.paused:
        n = p.batches_done
        cols[2].caption(held or f"Paused after {n:,} batch{'es' * (n != 1)}.")
    if not asked:
        return
    if refusal:
        st.caption(refusal)
        if note:
            st.caption(note)
        return
    now = current_learning_rate(p, learning_rate)
    options = sorted(set(LEARNING_RATES) | {now})
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.select_slider(
        "Learning rate from the next batch",
        options,
        value=now,
        format_func=lambda v: f"{v:g}",
        key=f"{prefix}_new_lr",
        help=HELP["lr"],
    )
    if note:
        st.caption(note)
    if right.button("Use it", key=f"{prefix}_set_lr", disabled=chosen == now):
        with friendly_errors("The learning rate could not be changed: "):
            runs.set_learning_rate(run_key, chosen)
            st.toast(f"Learning rate {chosen:g} from the next batch.")
