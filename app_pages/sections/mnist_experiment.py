"""Train on MNIST, tab ⑤ "Dense vs convnet": train a dense baseline and a convnet on the same
centred digits, then test both on digits shifted by 0, 1, 2, … pixels."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import streamlit as st

from cnnlib.models import MNIST_PRESETS, build_from_stack
from cnnlib.training.experiments import DIRECTIONS
from ui import mnist_session as session
from ui import runs
from ui import training_view as view
from ui.datasets import PageDataset
from ui.errors import friendly_errors
from ui.stack_editor import current_stack
from ui.state import KEEP

YOUR_STACK = "Your stack (tab ① Model)"


@dataclass(frozen=True)
class ExperimentSettings:
    """The experiment's widgets: which convnet, images and epochs per model, the largest
    shift (pixels) and its direction."""

    convnet: str
    size: int
    epochs: int
    max_shift: int
    direction: str


def settings_ui(ds: PageDataset, stack_ok: bool) -> ExperimentSettings:
    convnets = [name for name in MNIST_PRESETS if "Dense" not in name]
    choices = [*convnets, YOUR_STACK] if stack_ok else convnets
    c = st.columns(5)
    index = choices.index("Tutorial convnet") if "Tutorial convnet" in choices else 0
    convnet = c[0].selectbox("Convnet", choices, index, key="mnist_exp_convnet", **KEEP)
    n_max = len(ds.x_train) if ds.available else 1000
    size = c[1].slider(
        "Training images (each model)",
        min(500, n_max),
        min(n_max, 20_000),
        min(4000, n_max),
        step=500,
        key="mnist_exp_size",
        **KEEP,
    )
    epochs = c[2].number_input("Epochs (each model)", 1, 10, 3, key="mnist_exp_epochs", **KEEP)
    max_shift = c[3].slider("Largest shift (pixels)", 2, 12, 8, key="mnist_exp_shift", **KEEP)
    direction = c[4].selectbox("Direction", DIRECTIONS, key="mnist_exp_direction", **KEEP)
    return ExperimentSettings(convnet, int(size), int(epochs), int(max_shift), direction)


def experiment_ui(ds: PageDataset, stack_ok: bool, stack_prefix: str, input_shape) -> None:
    """The tab: settings, Run (one training per session), and the progress or result."""
    st.markdown(
        "A dense network gives every pixel its own weights, so a digit moved by a few pixels "
        "lands on weights that never saw it. A convnet slides the same small filters over the "
        "whole image and pools their answers. Train a dense baseline and a convnet on the "
        "**same** centred digits, then test both on digits shifted by 0, 1, 2, … pixels."
    )
    s = settings_ui(ds, stack_ok)
    busy = runs.busy_message()
    start = st.button(
        "Run the experiment",
        key="mnist_exp_start",
        icon=":material/science:",
        disabled=not ds.available or bool(busy),
    )
    if busy:
        st.warning(busy, icon="⏳")
    if start:
        with friendly_errors("The experiment could not start: "):
            name = s.convnet if s.convnet in MNIST_PRESETS else "Your stack"
            builder = MNIST_PRESETS.get(s.convnet) or functools.partial(
                build_from_stack, current_stack(stack_prefix), input_shape, 10
            )
            session.start_experiment(
                ds,
                name,
                builder,
                size=s.size,
                epochs=s.epochs,
                max_shift=s.max_shift,
                direction=s.direction,
            )
            st.rerun()
    active = runs.running(session.EXPERIMENT)
    runs.poll_progress(active, experiment_progress, active)


def experiment_progress(polling: bool) -> None:
    run = runs.current(session.EXPERIMENT)
    if run is None:
        return
    p = run.job.snapshot()
    on_stop = functools.partial(runs.stop, session.EXPERIMENT)
    view.show_experiment(p, size=run.info.size, epochs=run.info.epochs, on_stop=on_stop)
    if polling and p.done:
        st.rerun()
