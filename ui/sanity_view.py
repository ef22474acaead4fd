"""The saliency sanity check on a page (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018), under the side-by-side saliency view of the Classify and Feature-maps pages.

The learner picks the methods to test and how many blocks to randomise; a
``cnnlib.training.sanity_job.SanityCheckJob`` (a task of the one task base, on a clone of the
model: the shared model is never modified) re-initialises the model's layers from the top
down, one block at a time, and redraws each method's map after each step. A fragment polls
the job every second (progress, Stop, the methods done so far); the result shows each
method's maps before and after every step, and their Spearman rank correlation and SSIM to
the trained model's map, beside an edge detector that ignores the model (the control).

``sanity_ui`` returns what the widgets chose (a frozen ``SanityChoice``); ``start`` and
``kept_job`` keep one job per page in the session; ``show_check`` draws a
``SanityProgress``. The maps and numbers all come from ``cnnlib.inspect.sanity``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.inspect import features as F
from cnnlib.inspect import imagenet, saliency, sanity
from cnnlib.inspect.blocks import block_of
from cnnlib.training.sanity_job import SanityCheckJob, SanityProgress
from cnnlib.training.tasks import default_max_seconds
from ui.figures import PlainFigure, plain
from ui.runs import POLL_SECONDS
from ui.state import KEEP

#: Side of each map's tile in a method's row (pixels).
TILE_PX = 96
#: Tiles per row of a method's maps.
TILE_COLUMNS = 10
#: The longest a sanity check may run (seconds), at most the server's limit per task.
MAX_SECONDS = 300.0
#: The control's colour and each method's, in the correlation chart (colour-blind safe:
#: Okabe–Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
CONTROL_COLOUR = "#555555"

ss = st.session_state


@dataclass(frozen=True)
class SanityChoice:
    """What the learner asked for: the saliency ``methods`` to test (the edge-detector
    control is always added) and the ``steps``, blocks to randomise from the top."""

    methods: tuple[str, ...]
    steps: int


@dataclass(frozen=True)
class SanityQuestion:
    """Everything a check depends on: which model, which input, which class, which methods
    (the control last), how many steps, the methods' options. A kept job answers one."""

    model_key: str
    digest: str
    class_index: int
    methods: tuple[str, ...]
    steps: int
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


def _job_key(key: str) -> str:
    return f"{key}_sanity_job"


# ----------------------------------------------------------------------------- widgets


def sanity_ui(
    key: str, chosen: Sequence[str], cascade: Sequence[tuple[str, ...]]
) -> SanityChoice | None:
    """The methods to test (by default the side-by-side row's, occlusion left out: it takes
    hundreds of forward passes per map) and the number of blocks to randomise; None while
    no method is chosen."""
    default = [m for m in chosen if m != "occlusion"][:3] or ["gradcam", "gradients"]
    methods = st.pills(
        "Methods to test",
        saliency.METHODS,
        selection_mode="multi",
        default=default,
        format_func=lambda m: saliency.METHOD_LABELS[m],
        key=f"{key}_sanity_methods",
        **KEEP,
    )
    n = len(cascade)
    steps = n
    if n > 1:
        steps = st.slider(
            f"Blocks to randomise, from the top ({n} in this model)",
            1,
            n,
            n,
            key=f"{key}_sanity_steps",
            help="Each step re-initialises one more block of layers with weights, from the "
            "output layer down, and redraws every map.",
            **KEEP,
        )
    if not methods:
        st.info("Choose at least one method to test.")
        return None
    return SanityChoice(tuple(m for m in saliency.METHODS if m in methods), int(steps))


def question(
    choice: SanityChoice,
    options: Mapping[str, Mapping[str, Any]],
    *,
    model_key: str,
    digest: str,
    class_index: int,
) -> SanityQuestion:
    """The check ``choice`` asks for on this model, input and class (``options``: each
    method's options, as the side-by-side row uses them)."""
    methods = (*choice.methods, *sanity.CONTROLS)
    opts = tuple((m, tuple(sorted(options[m].items()))) for m in choice.methods if options.get(m))
    return SanityQuestion(model_key, digest, int(class_index), methods, choice.steps, opts)


# ----------------------------------------------------------------------------- the job


def start(key: str, model: Any, x: np.ndarray, q: SanityQuestion) -> SanityCheckJob:
    """Start the check ``q`` on ``model`` and input ``x`` in the background (a task of the one
    task base), replacing this page's previous one. Raises ``CNNLabError`` (a bad question,
    or ``ServerBusyError`` when the server's queue is full)."""
    stop(key)
    job = SanityCheckJob(
        model,
        x,
        q.class_index,
        methods=q.methods,
        steps=q.steps,
        options={m: dict(o) for m, o in q.options},
        max_seconds=min(MAX_SECONDS, default_max_seconds()),
    )
    ss[_job_key(key)] = (q, job.start())
    return job


def stop(key: str) -> None:
    """Stop this page's check, if any, and forget it."""
    kept = ss.pop(_job_key(key), None)
    if kept is not None:
        kept[1].stop()


def kept_job(key: str, q: SanityQuestion) -> SanityCheckJob | None:
    """This page's check if it answers ``q``; a check of another question (another image,
    class, method or model) is stopped and forgotten: its maps would never be shown."""
    kept = ss.get(_job_key(key))
    if kept is None:
        return None
    if kept[0] != q:
        stop(key)
        return None
    return kept[1]


# ----------------------------------------------------------------------------- drawing


def step_labels(cascade: Sequence[tuple[str, ...]]) -> list[str]:
    """Each step's name: the block it re-initialises (``conv5_block3``, ``dense_1``)."""
    return [block_of(names[0]) for names in cascade]


def _tiles(check: sanity.SanityCheck, base: Image.Image, opacity: float) -> list[np.ndarray]:
    """The trained model's map and the map after each step, over the input, as RGB tiles."""
    small = base.convert("RGB").resize((TILE_PX, TILE_PX), Image.Resampling.NEAREST)
    maps = (check.original, *check.maps)
    return [np.asarray(imagenet.overlay(small, m, opacity)) for m in maps]


def _verdict(check: sanity.SanityCheck) -> str:
    rho = float(check.rank_correlation[-1])
    if check.method in sanity.CONTROLS:
        return (
            f"rank correlation {rho:.2f} after the last step: it ignores the weights, so it "
            "never changes. A saliency map that stays like this shows the image, not the model."
        )
    if check.decorrelated:
        return (
            f"rank correlation {rho:.2f} after the last step (below {sanity.DECORRELATED}): "
            "the map changed as the learned weights were destroyed, so it depends on what "
            "the network learned. It passes."
        )
    return (
        f"rank correlation {rho:.2f} after the last step (not below "
        f"{sanity.DECORRELATED}): the map still looks like the trained model's with random "
        "weights, so part of what it shows is the image itself, not the model. Read it with "
        "care."
    )


def _row(check: sanity.SanityCheck, base: Image.Image, labels: Sequence[str], opacity: float):
    """One method: the trained model's map, then the map after each step, labelled."""
    names = ["trained", *[f"+{lbl}" for lbl in labels[: check.steps]]]
    grid = F.tile_grid(_tiles(check, base, opacity), names, columns=TILE_COLUMNS, tile_px=TILE_PX)
    rho = ", ".join(f"{v:.2f}" for v in check.rank_correlation)
    alt = (
        f"{check.label} maps over the input: first for the trained model, then after "
        f"randomising each of {check.steps} blocks from the top ({', '.join(labels[: check.steps])}"
        f"). Rank correlation to the first map after each step: {rho}."
    )
    st.markdown(f"**{check.label}**: {_verdict(check)}")
    st.image(grid, alt=alt, output_format="PNG")


def correlation_figure(checks: Sequence[sanity.SanityCheck], labels: Sequence[str]) -> dict:
    """Rank correlation (left) and SSIM (right) of each method's map with the trained
    model's, step by step (step 0: the trained model, 1 by definition)."""
    steps = max(c.steps for c in checks)
    x = ["trained", *labels[:steps]]
    traces = []
    colours = iter(COLOURS)
    for check in checks:
        colour = CONTROL_COLOUR if check.method in sanity.CONTROLS else next(colours)
        dash = "dot" if check.method in sanity.CONTROLS else "solid"
        for axis, values in (("", check.rank_correlation), ("2", check.ssim)):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "x": x[: check.steps + 1],
                    "y": [1.0, *map(float, values)],
                    "name": check.label,
                    "legendgroup": check.method,
                    "showlegend": axis == "",
                    "line": {"color": colour, "dash": dash, "width": 2},
                    "xaxis": f"x{axis}",
                    "yaxis": f"y{axis}",
                    "hovertemplate": f"{check.label}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
                }
            )
    threshold = {
        "type": "line",
        "xref": "x domain",
        "yref": "y",
        "x0": 0,
        "x1": 1,
        "y0": sanity.DECORRELATED,
        "y1": sanity.DECORRELATED,
        "line": {"color": "#888888", "dash": "dash", "width": 1},
    }
    axis = {"type": "category", "tickangle": -45, "automargin": True}
    return {
        "data": traces,
        "layout": {
            "height": 380,
            "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            "xaxis": {**axis, "domain": [0, 0.47]},
            "xaxis2": {**axis, "domain": [0.53, 1], "anchor": "y2"},
            "yaxis": {"title": {"text": "rank correlation"}, "range": [-1.05, 1.05]},
            "yaxis2": {"title": {"text": "SSIM"}, "range": [-1.05, 1.05], "anchor": "x2"},
            "shapes": [threshold],
            "legend": {"orientation": "h", "y": 1.12},
        },
    }


def _table(checks: Sequence[sanity.SanityCheck], labels: Sequence[str]) -> dict[str, list]:
    """The chart's numbers: one row per step, a rank-correlation and an SSIM column per
    method."""
    steps = max(c.steps for c in checks)
    table: dict[str, list] = {"step": [f"{i + 1}. +{lbl}" for i, lbl in enumerate(labels[:steps])]}
    for c in checks:
        pad = [None] * (steps - c.steps)
        table[f"{c.label}: ρ"] = [round(float(v), 3) for v in c.rank_correlation] + pad
        table[f"{c.label}: SSIM"] = [round(float(v), 3) for v in c.ssim] + pad
    return table


def show_check(
    p: SanityProgress,
    base: Image.Image,
    labels: Sequence[str],
    *,
    class_label: str,
    opacity: float,
) -> None:
    """The methods done so far: the correlation chart and its table, then each method's maps
    step by step; how the job ended."""
    if p.error:
        st.error(p.error, icon="⚠️")
    if p.done and p.state != "failed":
        how = p.message or {"finished": "Finished", "stopped": "Stopped"}[p.state]
        st.caption(
            f"{how}: {len(p.checks)} of {len(p.methods)} methods tested in "
            f"{p.elapsed_seconds:.0f} s, for “{class_label}”."
        )
    checks = [p.checks[m] for m in p.methods if m in p.checks]
    if not checks:
        return
    fig = correlation_figure(checks, labels)
    methods = ", ".join(c.label for c in checks)
    last = "; ".join(f"{c.label} {float(c.rank_correlation[-1]):.2f}" for c in checks)
    st.plotly_chart(
        PlainFigure(plain(fig)),
        config={"displaylogo": False},
        alt=f"Line charts of the rank correlation (left) and SSIM (right) of each map ({methods}) "
        f"with the trained model's map, as blocks are randomised from the top. Rank "
        f"correlation after the last step: {last}.",
    )
    st.caption(
        "1 = the same map as the trained model's; around 0 = no longer related. The dashed "
        f"line is {sanity.DECORRELATED}: a method whose map falls below it depends on the "
        "weights. The edge detector (dotted) is the control: it never looks at the model."
    )
    st.table(
        _table(checks, labels),
        hide_index=True,
        alt=f"The chart's numbers: rank correlation (ρ) and SSIM of {methods} after each step.",
    )
    for check in checks:
        _row(check, base, labels, opacity)


# ----------------------------------------------------------------------------- the section


@st.fragment(run_every=POLL_SECONDS)
def _poll(key: str, base: Image.Image, labels: list[str], class_label: str, opacity: float):
    """While the check runs: its progress, Stop, and the methods done so far."""
    kept = ss.get(_job_key(key))
    if kept is None:
        return
    job = kept[1]
    p = job.snapshot()
    if p.done:
        st.rerun(scope="app")
    if p.state == "queued":
        where = f" (position {p.queue_position})" if p.queue_position else ""
        text = f"Waiting for a free slot on the server{where}…"
    else:
        current = saliency.METHOD_LABELS.get(p.current) or sanity.CONTROL_LABELS.get(p.current)
        doing = f" · {current}: map {p.maps_done} of {p.maps_total}" if current else ""
        text = f"{len(p.checks)} of {len(p.methods)} methods{doing} · {p.elapsed_seconds:.0f} s"
    st.progress(p.fraction, text=text)
    st.button("Stop", key=f"{key}_sanity_stop", on_click=job.stop, icon=":material/stop:")
    show_check(p, base, labels, class_label=class_label, opacity=opacity)


def sanity_section(
    model: Any,
    x: np.ndarray,
    base: Image.Image,
    *,
    chosen: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    class_index: int,
    class_label: str,
    key: str,
    model_key: str,
    digest: str,
    opacity: float,
) -> None:
    """The sanity check under the side-by-side row: shown on request (a toggle), run in the
    background on request (a button), polled while it runs, drawn when done. ``model``,
    ``x``, ``model_key`` and ``digest`` as for ``saliency_view.compute``; ``base``: the model
    input as the overlays show it; ``chosen`` and ``options``: the row's methods."""
    label = "Sanity check: do these maps depend on what the network learned?"
    if not st.toggle(label, key=f"{key}_sanity_open", **KEEP):
        return
    st.markdown(
        "A saliency map should explain **the model**. Adebayo et al. (NeurIPS 2018) test this "
        "by destroying what the network learned: on a copy of the model (never the one the "
        "page uses) the layers are re-initialised with random weights, from the output layer "
        "down, one block at a time, and each map is drawn again after each step. A map that "
        "explains the model must change; one that stays the same is showing the image "
        "(its edges), whatever the weights. An edge detector, which never looks at the "
        "model, is drawn beside them as the control."
    )
    cascade = sanity.randomisation_steps(model)
    choice = sanity_ui(key, chosen, cascade)
    if choice is None:
        return
    q = question(choice, options, model_key=model_key, digest=digest, class_index=class_index)
    job = kept_job(key, q)
    labels = step_labels(cascade)
    n_maps = len(q.methods) * (q.steps + 1)
    if st.button(
        f"Run the sanity check ({n_maps} maps)",
        key=f"{key}_sanity_run",
        icon=":material/play_arrow:",
        disabled=job is not None and not job.done,
    ):
        job = start(key, model, x, q)
    if job is None:
        st.caption(
            f"Runs in the background on a copy of the model: {len(q.methods)} maps "
            f"(with the control) × {q.steps + 1} (the trained model, then after each step)."
        )
        return
    if job.done:
        show_check(job.snapshot(), base, labels, class_label=class_label, opacity=opacity)
    else:
        _poll(key, base, labels, class_label, opacity)
