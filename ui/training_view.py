"""Drawing a training and its results: progress text, live curves, confusion matrix, galleries.

Figures are built from the result objects of ``cnnlib.training.trainer`` /
``cnnlib.training.evaluation`` / ``cnnlib.training.experiments``; nothing here computes a metric.
The ``show_*`` functions draw one section of the Train-on-MNIST page each; the page keeps the
widgets.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from cnnlib.core.budgets import format_bytes
from cnnlib.inspect.features import activation_grid, filter_grid, to_png
from cnnlib.training.evaluation import smooth_curve
from cnnlib.training.trainer import save_model_bytes
from ui import alt_text, figures
from ui.image_input import show_image
from ui.stack_editor import summary_table

LOSS_COLOR, ACC_COLOR, VAL_COLOR = "#1f77b4", "#2ca02c", "#d62728"
LR_COLOR = "#6a3d9a"  #: the learning-rate change marks


def _duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "…"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_line(p) -> str:
    """ "Epoch 2/3 · step 45/94 · 5,310 images/s · 12 s elapsed · about 8 s left"."""
    parts = [f"Epoch {max(p.epoch, 1)}/{p.epochs}"]
    if p.steps_per_epoch:
        parts.append(f"step {p.step}/{p.steps_per_epoch}")
    if p.images_per_second:
        parts.append(f"{p.images_per_second:,.0f} images/s")
    parts.append(f"{_duration(p.elapsed_seconds)} elapsed")
    if not p.done and p.eta_seconds is not None and not p.paused:
        parts.append(f"about {_duration(p.eta_seconds)} left")
    return " · ".join(parts)


def curves_figure(p, *, smoothing: float = 0.6) -> go.Figure:
    """Loss and accuracy against epochs: per-batch windows (faint), smoothed, and validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    x = list(p.batch_epoch)
    for col, values, color, name in (
        (1, p.batch_loss, LOSS_COLOR, "loss"),
        (2, p.batch_accuracy, ACC_COLOR, "accuracy"),
    ):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=list(values),
                mode="lines",
                line={"color": color, "width": 1},
                opacity=0.3,
                name=f"training {name} (per {p.batch_window} batch{'es' * (p.batch_window > 1)})",
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=smooth_curve(values, smoothing).tolist() if len(values) else [],
                mode="lines",
                line={"color": color, "width": 2},
                name=f"training {name} (smoothed)",
            ),
            row=1,
            col=col,
        )
    epochs = list(range(1, len(p.val_loss) + 1))
    for col, values, name in ((1, p.val_loss, "loss"), (2, p.val_accuracy, "accuracy")):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=list(values),
                mode="lines+markers",
                line={"color": VAL_COLOR, "width": 2, "dash": "dot"},
                marker={"size": 9},
                name=f"validation {name}",
            ),
            row=1,
            col=col,
        )
    for batch, value in p.lr_changes:
        if p.steps_per_epoch:
            fig.add_vline(
                x=batch / p.steps_per_epoch,
                line={"color": LR_COLOR, "width": 1.5, "dash": "dash"},
                annotation_text=f"lr {value:g}",
                annotation_position="top left",
                row="all",
                col="all",
            )
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        height=330,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        uirevision="curves",
    )
    return fig


def curves_alt(p) -> str:
    """What the live curves show, in words: the last values of each curve."""
    parts = []
    if p.batch_loss and p.batch_accuracy:
        parts.append(
            f"training loss {p.batch_loss[-1]:.4f} and accuracy {p.batch_accuracy[-1]:.1%} "
            f"at epoch {p.batch_epoch[-1]:.2f}"
        )
    if p.val_loss:
        parts.append(
            f"validation loss {p.val_loss[-1]:.4f} and accuracy {p.val_accuracy[-1]:.1%} after "
            f"epoch {len(p.val_loss)}"
        )
    latest = "; ".join(parts) if parts else "no values yet"
    changes = ""
    if p.lr_changes:
        marks = ", ".join(f"{v:g} from batch {b + 1:,}" for b, v in p.lr_changes)
        changes = f" Dashed vertical lines mark the learning-rate changes: {marks}."
    return (
        "Two line charts against epochs: loss (left, lower is better) and accuracy (right, "
        f"higher is better), for the training batches and the validation set. Latest: {latest}."
        + changes
    )


def lr_change_rows(p) -> dict[str, list]:
    """One row per learning-rate change: from which batch (1-based, counted over the run),
    at which epoch position, and the rate read back from the optimizer."""
    steps = max(p.steps_per_epoch, 1)
    return {
        "from batch": [b + 1 for b, _ in p.lr_changes],
        "at epoch": [f"{b / steps:.2f}" for b, _ in p.lr_changes],
        "learning rate": [f"{v:g}" for _, v in p.lr_changes],
    }


def epoch_rows(p) -> dict[str, list]:
    """One row per finished epoch: training and validation loss and accuracy."""
    n = max(len(p.train_loss), len(p.val_loss))

    def column(values: Sequence[float], fmt: str) -> list[str]:
        return [format(values[i], fmt) if i < len(values) else "–" for i in range(n)]

    return {
        "epoch": list(range(1, n + 1)),
        "training loss": column(p.train_loss, ".4f"),
        "training accuracy": column(p.train_accuracy, ".2%"),
        "validation loss": column(p.val_loss, ".4f"),
        "validation accuracy": column(p.val_accuracy, ".2%"),
    }


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Heatmap of counts (row = true, column = predicted) with a clickable point per cell.

    Each cell centre carries an (almost invisible) scatter marker whose ``customdata`` is
    [true, predicted], so a click or box selection reports the cell reliably.
    """
    k = len(class_names)
    labels = [str(c) for c in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(confusion).tolist(),
            x=labels,
            y=labels,
            colorscale="Blues",
            text=np.asarray(confusion).tolist(),
            texttemplate="%{text}",
            hoverinfo="skip",
            showscale=False,
        )
    )
    rows, cols = np.indices((k, k))
    fig.add_trace(
        go.Scatter(
            x=[labels[c] for c in cols.ravel()],
            y=[labels[r] for r in rows.ravel()],
            mode="markers",
            marker={"size": 28, "color": "rgba(0,0,0,0.01)", "symbol": "square"},
            customdata=np.stack([rows.ravel(), cols.ravel(), np.ravel(confusion)], axis=1).tolist(),
            hovertemplate="true %{y}, predicted %{x}: %{customdata[2]} images<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(title_text="predicted class", type="category", side="bottom")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
    # Plotly's default click and drag modes: Streamlit reports a clicked point as selected.
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def confusion_chart(confusion: np.ndarray, class_names: Sequence[str], *, key: str):
    """The clickable confusion matrix (``confusion_figure``) with its alt text and its table
    one click away; returns the chart's selection event (``selected_cell`` reads it).
    ``class_names`` may come from an upload: each view makes them safe for itself."""
    counts = np.asarray(confusion)
    correct, total = int(np.trace(counts)), int(counts.sum())
    off = counts - np.diag(np.diag(counts))
    worst = ""
    if off.max() > 0:
        r, c = np.unravel_index(int(np.argmax(off)), off.shape)
        worst = (
            f" The most frequent mistake: true {alt_text.plain(class_names[r], 40)} read as "
            f"{alt_text.plain(class_names[c], 40)} "
            f"({int(off[r, c])} times)."
        )
    alt = (
        f"Confusion matrix of {len(class_names)} classes, rows the true class, columns the "
        f"model's answer, darker blue for more images: {correct:,} of {total:,} on the "
        f"diagonal (correct).{worst}"
    )
    event = st.plotly_chart(
        confusion_figure(counts, [figures.plain_label(c) for c in class_names]),
        key=key,
        on_select="rerun",
        selection_mode=("points", "box"),
        config={"displaylogo": False},
        alt=alt,
    )
    rows = {"true class": [str(c) for c in class_names]}
    rows.update({f"read as {c}": counts[:, j].tolist() for j, c in enumerate(class_names)})
    # Two upload names can be equal once cut: number the columns then.
    if len(rows) != len(class_names) + 1:
        rows = {"true class": rows["true class"]}
        rows.update({f"read as {j}": counts[:, j].tolist() for j in range(len(class_names))})
    figures.table_view(rows, alt="Confusion matrix: images per true class and answer")
    return event


def selected_cell(event) -> tuple[int, int] | None:
    """(true, predicted) of the cell selected in ``confusion_figure``'s chart, or None."""
    if not event:
        return None
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):  # a 2-D customdata row can arrive as {"0": …, "1": …}
            data = [data.get("0"), data.get("1")]
        if data is not None and len(data) >= 2 and None not in data[:2]:
            return int(data[0]), int(data[1])
    return None


def per_class_figure(per_class: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Test accuracy of each class (NaN for a class with no test images shows as 0)."""
    values = np.nan_to_num(per_class, nan=0.0)
    return figures.bar_chart(
        class_names,
        values,
        color=ACC_COLOR,
        value_range=(0.0, 1.1),
        value_title="test accuracy",
        label_title="true class",
    )


def probabilities_figure(probabilities: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """The class probabilities, the most likely one highlighted."""
    return figures.bar_chart(
        class_names,
        probabilities,
        highlight=int(np.argmax(probabilities)),
        color="#9aa5b1",
        highlight_color=ACC_COLOR,
        value_range=(0.0, 1.15),
        value_title="probability",
        label_title="class",
    )


def translation_figure(result) -> go.Figure:
    """Accuracy against shift, one line per model."""
    fig = go.Figure()
    palette = [VAL_COLOR, LOSS_COLOR, ACC_COLOR, "#9467bd"]
    # Each model also has its own marker and dash: the lines differ without colour.
    symbols, dashes = ["circle", "square", "diamond", "triangle-up"], ["solid", "dash", "dot"]
    for i, (name, accuracies) in enumerate(result.accuracies.items()):
        fig.add_trace(
            go.Scatter(
                x=list(result.shifts),
                y=accuracies,
                mode="lines+markers",
                name=f"{name} ({result.parameters[name]:,} parameters)",
                line={"color": palette[i % len(palette)], "width": 3, "dash": dashes[i % 3]},
                marker={"size": 8, "symbol": symbols[i % len(symbols)]},
            )
        )
    fig.add_hline(y=0.1, line_dash="dot", line_color="#888", annotation_text="chance (10 %)")
    fig.update_xaxes(title_text="shift of the test digits (pixels)", dtick=1)
    fig.update_yaxes(title_text="test accuracy", range=[0, 1.02], tickformat=".0%")
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """A small (H, W) image in [0, 1] enlarged by pixel repetition (sharp pixels on screen)."""
    return np.kron(np.clip(image, 0.0, 1.0), np.ones((factor, factor), dtype=np.float32))


def image_gallery(
    images: np.ndarray,
    captions: Sequence[str],
    alts: Sequence[str],
    *,
    columns: int = 8,
    factor: int = 3,
) -> None:
    """A grid of (H, W) images (uint8 or [0, 1]) with captions and alt texts."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        end = start + columns
        for col, image, caption, alt in zip(
            cols, images[start:end], captions[start:end], alts[start:end], strict=False
        ):
            col.image(upscale(image, factor), caption=caption, clamp=True, alt=alt)


# --------------------------------------------------------------------------------------------
# Page sections
# --------------------------------------------------------------------------------------------


def show_dataset(ds) -> None:
    """A ``ui.datasets.PageDataset``'s source line, fallback notice or why it is missing."""
    if ds.fallback:
        st.info(ds.notice, icon="ℹ️")
    elif not ds.available:
        st.warning(
            f"**{ds.title} is not available**, so training is off; the model builder below "
            f"still works.\n\n{ds.error}",
            icon="⚠️",
        )
    else:
        st.caption(ds.source)


def show_summary(rows, input_shape: tuple[int, ...]) -> None:
    """The stack's summary table (``cnnlib.models.SummaryRow`` list) and its total.

    An HTML table (``st.table``): screen readers read it cell by cell, and a preset's new
    stack redraws it in place (``st.dataframe`` draws on a canvas, mounted anew: about one
    floor's worth of a preset press). Its text is the project's own (layer kinds, shapes,
    arithmetic), so it is shown as Markdown."""
    table = summary_table(rows, input_shape)
    table["Parameters"] = table["Parameters"].map("{:,}".format)
    st.table(table, hide_index=True)
    st.metric("Total parameters", f"{sum(r.params for r in rows):,}")


def _count(n: float) -> str:
    """1_400_000_000 → "1.4 G", 52_000_000 → "52 M", 950 → "950"."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)}"


def cost_line(cost) -> str:
    """A ``cnnlib.core.budgets.TrainingCost`` for the learner: "One batch of 128: ≈ 120 MB of
    activations, 1.4 G multiply-adds"."""
    return (
        f"One batch of {cost.batch_size}: ≈ {format_bytes(cost.activation_bytes)} of "
        f"activations, {_count(cost.multiply_adds)} multiply-adds "
        f"({_count(cost.multiply_adds_per_image)} per image)"
    )


#: What a training waiting on the Ray cluster (``TaskProgress.queued_on_cluster``) shows.
CLUSTER_WAIT = (
    "Waiting for a free training slot on the cluster: every machine that trains is busy. "
    "It starts by itself; Stop cancels it."
)


def show_status(p, slot_limit: int) -> None:
    """Where the training stands: queued, failed, or a progress bar with its line."""
    if p.state == "queued" and p.queued_on_cluster:
        st.info(CLUSTER_WAIT, icon="⏳")
    elif p.state == "queued":
        st.info(
            f"Waiting for a free training slot: this server trains at most {slot_limit} "
            f"model{'s' * (slot_limit != 1)} at once. Your place in the queue: "
            f"{p.queue_position or 1}. It starts by itself.",
            icon="⏳",
        )
    elif p.state == "failed":
        st.error(p.error or "The training failed.", icon="⚠️")
    else:
        label = {
            "running": "Training",
            "stopping": "Stopping after this batch…",
            "finished": "Finished",
            "stopped": "Stopped",
        }.get(p.state, p.state)
        if p.state == "running" and p.paused:
            label = "Paused"
        if p.state == "running" and not p.steps_per_epoch:
            in_child = p.process_id not in (0, os.getpid())
            label = (
                "Starting: loading TensorFlow in this training's own process"
                if in_child
                else "Starting"
            )
        st.progress(p.fraction, text=f"**{label}** · {progress_line(p)}")
    if p.message:  # e.g. ended by the time limit
        st.warning(p.message, icon="⏱️")


def show_watch(watch, digit: np.ndarray | None) -> None:
    """A ``cnnlib.training.trainer.WatchSnapshot``: the first layer's filters and the watched
    digit's feature maps at the end of its epoch (drawn with ``cnnlib.inspect.features``' grids)."""
    if watch is None:
        st.caption(
            "The first layer's filters and one digit's feature maps appear here after "
            "each epoch (for a model with a Conv2D layer)."
        )
        return
    kh, kw, _, n = watch.filters.shape
    w, m = watch.filters, watch.maps
    st.markdown(f"**After epoch {watch.epoch}:** the {n} filters of layer `{watch.layer}`")
    st.image(
        to_png(filter_grid(watch.filters, columns=8, tile_px=28)),
        caption="Filters: blue negative, white 0, red positive weights",
        alt=f"Grid of the {n} {kh}×{kw} filters of {watch.layer} after epoch {watch.epoch}, "
        f"weights {alt_text.values_text(w.min(), w.max())}: blue negative, white 0, red "
        "positive.",
    )
    left, right = st.columns([1, 4])
    if digit is not None:
        left.image(
            upscale(np.asarray(digit, np.float32) / 255.0, 2),
            caption="Watched test image",
            alt="The watched test digit, 28×28 pixels, white on black.",
        )
    maps = activation_grid(watch.maps, range(watch.maps.shape[2]), columns=8, tile_px=28)
    right.image(
        to_png(maps),
        caption="Its feature maps in that layer (yellow = strong)",
        alt=f"Grid of that digit's {m.shape[2]} feature maps in {watch.layer}, each "
        f"{m.shape[0]}×{m.shape[1]}, {alt_text.values_text(m.min(), m.max())}: dark purple "
        "weak, yellow strong (each map on its own scale).",
    )


def show_live(p, *, recipe: str = "", has_model: bool = True) -> None:
    """The live curves and the facts of the run (sizes, device, early stopping)."""
    if p.batch_loss or p.val_loss:
        st.plotly_chart(
            curves_figure(p),
            key="mnist_live_curves",
            config={"displaylogo": False},
            alt=curves_alt(p),
        )
        if p.train_loss or p.val_loss:
            figures.table_view(epoch_rows(p), alt="Loss and accuracy after each epoch")
        if p.lr_changes:
            figures.table_view(
                lr_change_rows(p),
                alt="Learning-rate changes during training",
                label="Learning-rate changes as a table",
            )
    facts = [recipe] if recipe else []
    if p.train_samples:
        facts.append(
            f"{p.train_samples:,} training images, {p.val_samples:,} for validation"
            + (f", {p.test_samples:,} test images" if p.test_samples else "")
        )
    if p.device:
        facts.append(f"device: {p.device}")
    if p.tf_version:
        facts.append(f"TensorFlow {p.tf_version}")
    if facts:
        st.caption(" · ".join(facts))
    if p.done and p.state == "stopped" and not has_model:
        st.warning("Stopped before the first batch: nothing was learned, so there is no model.")
    if p.stopped_early and p.best_epoch:
        st.caption(
            f"Early stopping: the validation loss stopped improving; the weights of epoch "
            f"{p.best_epoch} were kept."
        )


def show_registered(name: str | None) -> None:
    """Which entry of the session's model registry a training produced (if any yet)."""
    if name:
        st.success(
            f"Kept in this session's models as **{name}**: the other pages (e.g. "
            "Feature maps) can open it.",
            icon=":material/inventory_2:",
        )


def show_experiment(p, *, size: int, epochs: int, on_stop) -> None:
    """A ``TranslationExperiment``'s snapshot: progress and a Stop button (calls ``on_stop``)
    while it runs, then its failure, its stop, or its result (trained on ``size`` images for
    ``epochs`` epochs per model)."""
    if not p.done:
        show_experiment_progress(p)
        st.button("Stop the experiment", key="mnist_exp_stop", on_click=on_stop)
    elif p.state == "failed":
        st.error(p.error or "The experiment failed.", icon="⚠️")
    elif p.state == "stopped":
        st.warning(
            p.message or "The experiment was stopped before it finished; run it again for a result."
        )
    elif p.result is not None:
        show_translation(p.result, size=size, epochs=epochs)


def download_model(
    model, file_name: str, *, key: str, label: str = "Download the model (.keras)"
) -> None:
    """A download button for ``model`` as a ``.keras`` file, saved once per model and kept
    in the session (under ``key``) while the button shows.

    Not Streamlit's deferred download (``data=`` a function, saved on click): the file it
    makes belongs to no session, so Streamlit deletes it at its second sweep for orphaned
    files, which follows any session's run; on a replica busy with a class that comes before
    the browser fetches it, and the download fails (a 404, seen in tests/e2e/test_classroom.py).
    """
    memo = f"{key}__keras_bytes"
    kept = st.session_state.get(memo)
    if kept is None or kept[0]() is not model:
        kept = (weakref.ref(model), save_model_bytes(model))
        st.session_state[memo] = kept
    st.download_button(
        label,
        data=kept[1],
        file_name=file_name,
        mime="application/octet-stream",
        on_click="ignore",
        icon=":material/download:",
        key=key,
    )


def how_it_ended(p) -> str:
    """ "3 epochs", "stopped by you during epoch 2 of 5" or "stopped early after epoch 4"."""
    if p.state == "stopped":
        return f"stopped by you during epoch {p.epoch} of {p.epochs}"
    if p.stopped_early:
        return f"stopped early after epoch {len(p.train_loss)}, best epoch kept"
    return f"{p.epochs} epoch{'s' * (p.epochs != 1)}"


def show_test_metrics(evaluation) -> None:
    """Accuracy, loss, number of test images and mistakes of a
    ``cnnlib.training.evaluation.Evaluation``."""
    c = st.columns(4)
    c[0].metric("Test accuracy", f"{evaluation.accuracy:.2%}")
    c[1].metric("Test loss", f"{evaluation.loss:.4f}")
    c[2].metric("Test images", f"{len(evaluation.labels):,}")
    c[3].metric("Mistakes", f"{int((evaluation.predictions != evaluation.labels).sum()):,}")


def per_class_alt(per_class: np.ndarray, class_names: Sequence[str], what: str) -> str:
    """ "Bar chart of the test accuracy of each of 10 classes, from 91.2% (8) to 99.1% (1)."."""
    acc = np.nan_to_num(per_class, nan=0.0)
    lo, hi = int(np.argmin(acc)), int(np.argmax(acc))
    low, high = alt_text.plain(class_names[lo], 40), alt_text.plain(class_names[hi], 40)
    return (
        f"Bar chart of the {what} of each of {len(acc)} classes, from {acc[lo]:.1%} ({low}) "
        f"to {acc[hi]:.1%} ({high})."
    )


def per_class_rows(per_class: np.ndarray, class_names: Sequence[str], what: str) -> dict:
    """Table columns: class and its accuracy ("–" for a class without images)."""
    return {
        "class": [str(c) for c in class_names],
        what: ["–" if np.isnan(a) else f"{a:.1%}" for a in per_class],
    }


def show_per_class(evaluation, class_names: Sequence[str]) -> None:
    st.subheader("Accuracy per class")
    st.plotly_chart(
        per_class_figure(evaluation.per_class, class_names),
        key="mnist_per_class",
        alt=per_class_alt(evaluation.per_class, class_names, "test accuracy"),
    )
    rows = per_class_rows(evaluation.per_class, class_names, "test accuracy")
    figures.table_view(rows, alt="Test accuracy per class")


def show_mistakes(evaluation, x_test: np.ndarray, class_names: Sequence[str]) -> None:
    """The 16 most confident mistakes, captioned "true → predicted (probability)"."""
    st.subheader("Most confident mistakes")
    st.caption("Test images the model got wrong while being most sure of its answer.")
    worst = evaluation.confident_mistakes(16)
    if not len(worst):
        st.success("No mistakes on the test images.")
        return
    captions = [
        f"{class_names[evaluation.labels[i]]} → {class_names[evaluation.predictions[i]]} "
        f"({evaluation.probabilities[i, evaluation.predictions[i]]:.0%})"
        for i in worst
    ]
    alts = [
        f"Test image {i}: a {class_names[evaluation.labels[i]]}, read as "
        f"{class_names[evaluation.predictions[i]]} with probability "
        f"{evaluation.probabilities[i, evaluation.predictions[i]]:.0%}"
        for i in worst
    ]
    image_gallery(x_test[worst], captions, alts)


def show_cell(
    evaluation, cell: tuple[int, int], x_test: np.ndarray, class_names: Sequence[str]
) -> None:
    """The test images of one confusion-matrix cell (true, predicted): the first 32."""
    true_class, predicted = cell
    indices = evaluation.cell(true_class, predicted)
    shown = indices[:32]
    st.markdown(
        f"**True {class_names[true_class]}, predicted {class_names[predicted]}: "
        f"{len(indices):,} test image{'s' * (len(indices) != 1)}**"
        + (f" (the first {len(shown)} shown)" if len(indices) > len(shown) else "")
    )
    if len(shown):
        captions = [f"#{i} · {evaluation.probabilities[i, predicted]:.0%}" for i in shown]
        alts = [
            f"Test image {i}: a {class_names[true_class]}, read as {class_names[predicted]} "
            f"with probability {evaluation.probabilities[i, predicted]:.0%}"
            for i in shown
        ]
        image_gallery(x_test[shown], captions, alts)


def show_prepared_digit(prepared) -> None:
    """A ``cnnlib.data.digits.PreparedDigit``: the 28 × 28 input, and the cropped step below."""
    show_image(
        upscale(prepared.digit, 6),
        width=168,
        caption="What the model sees: 28 × 28",
        alt="Your digit as the model sees it: 28×28 pixels, white ink on black, centred.",
    )
    sh, sw = prepared.scaled.shape
    inverted = " (inverted: it was dark on light)" if prepared.inverted else ""
    with st.expander("The steps"):
        show_image(
            upscale(prepared.scaled, 4),
            width=4 * sw,
            caption=f"Cropped and scaled to fit 20 × 20: {sw} × {sh}{inverted}",
            alt=f"Your digit cropped to its ink and scaled to fit 20×20: {sw}×{sh} pixels"
            f"{inverted}.",
        )


def show_reading(probabilities: np.ndarray, class_names: Sequence[str]) -> None:
    """What the model reads in a drawn digit: the best class and all probabilities."""
    best = int(np.argmax(probabilities))
    st.markdown(
        f"The model reads **{class_names[best]}** with probability **{probabilities[best]:.1%}**."
    )
    bars = ", ".join(f"{c} {v:.1%}" for c, v in zip(class_names, probabilities, strict=True))
    st.plotly_chart(
        probabilities_figure(probabilities, class_names),
        key="mnist_probabilities",
        alt=f"Bar chart of the probability of each class, {class_names[best]} highest: {bars}.",
    )
    rows = {"class": list(class_names), "probability": [f"{v:.1%}" for v in probabilities]}
    figures.table_view(rows, alt="Probability of each class")


def show_experiment_progress(p) -> None:
    """A running ``TranslationExperiment``'s progress bar (model i of n, then measuring)."""
    t = p.training
    step = f" · {progress_line(t)}" if t is not None and t.state == "running" else ""
    if p.current is None:  # both trained: measuring
        fraction, text = 1.0, f"**{p.phase}…**"
    else:
        fraction = (p.current + (t.fraction if t is not None else 0.0)) / len(p.models)
        text = f"**{p.phase}** (model {p.current + 1} of {len(p.models)}){step}"
    st.progress(min(1.0, fraction), text=text)
    if t is not None and t.state == "queued":
        where = "on the cluster" if t.queued_on_cluster else "on this server"
        st.info(f"Waiting for a free training slot {where}…", icon="⏳")


def show_translation(result, *, size: int, epochs: int) -> None:
    """The experiment's result: accuracy-against-shift chart, table and one sentence."""
    lines = "; ".join(
        f"{name} from {acc[0]:.0%} at shift {result.shifts[0]} to {acc[-1]:.0%} at shift "
        f"{result.shifts[-1]}"
        for name, acc in result.accuracies.items()
    )
    st.plotly_chart(
        translation_figure(result),
        key="mnist_translation",
        alt=f"Line chart of test accuracy against the shift of the digits, one line per model: "
        f"{lines}. The table below lists every point.",
    )
    names = list(result.accuracies)
    table = {"shift (pixels)": list(result.shifts)}
    table.update({name: [f"{a:.1%}" for a in result.accuracies[name]] for name in names})
    st.dataframe(table, hide_index=True)
    mid = min(4, result.shifts[-1])
    i = list(result.shifts).index(mid) if mid in result.shifts else len(result.shifts) - 1
    parts = [f"{name} {result.accuracies[name][i]:.0%}" for name in names]
    st.markdown(
        f"Both were trained on {size:,} centred images for {epochs} "
        f"epoch{'s' * (epochs != 1)} and tested on the same {result.test_size:,} test digits. "
        f"Shifted by {result.shifts[i]} pixels ({result.direction} direction): "
        f"{', '.join(parts)}."
    )
