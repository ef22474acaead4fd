"""The "Train on your own images" page's session: its data, its runs and their results.

Page-local session keys live here. The uploaded data is one ``cnnlib.uploads.folders.ImageFolders``
per session (``DATA``); replacing it removes the old temporary directory, and so does the end
of the session (garbage collection). A run is a ``cnnlib.training.transfer.OwnImagesJob`` started
through ``ui.training_session.start_task`` (one training per session, across pages).
"""

from __future__ import annotations

import streamlit as st

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.models.registry import RegisteredModel
from cnnlib.training import transfer
from cnnlib.training.evaluation import Evaluation, evaluate_model
from cnnlib.uploads.folders import open_archive, open_files
from ui import state
from ui import training_session as runs
from ui.keras_runtime import freeze_imported_objects

PAGE = "Train on your own images"  #: the page title, as the registry and busy messages name it
DATA = "own_data"  #: {"key", "folders": ImageFolders, "version": int, "health": HealthReport}
JOB = "own_job"  #: the page's current or last OwnImagesJob
RUN = "own_run"  #: dict describing JOB's run
RESULT = "own_result"  #: dict: the adopted result of the last finished run
COMPARE = "own_compare"  #: {(data key, version, image size): {recipe label: table row}}
COUNTER = "own_run_counter"


def data() -> dict | None:
    return st.session_state.get(DATA)


def running() -> bool:
    job = st.session_state.get(JOB)
    return job is not None and not job.done


def use_data(key: str, read) -> dict:
    """The session's data set for upload ``key``, opened from ``read()`` (zip bytes, or a
    folder upload's (path, bytes) list) when it is new; the old one is cleaned up. Raises
    ``ArchiveError``: the previous data then stays."""
    current = data()
    if current is not None and current["key"] == key:
        return current
    if running():
        raise InvalidArgumentError("Stop the running training before changing the images.")
    raw = read()
    with st.spinner("Checking every image…"):
        folders = open_archive(raw) if isinstance(raw, bytes) else open_files(raw)
    if current is not None:
        current["folders"].cleanup()
    entry = {"key": key, "folders": folders, "version": 0, "health": folders.health()}
    st.session_state[DATA] = entry
    return entry


def edited(entry: dict) -> None:
    """After a relabel or exclusion: a new data version, a fresh health report."""
    entry["version"] += 1
    entry["health"] = entry["folders"].health()


def start(entry: dict, options: dict) -> None:
    """Start an ``OwnImagesJob`` on the current data with the page's ``options``. Raises
    ``SessionBusyError`` / ``ServerBusyError`` / ``ArchiveError`` (nothing starts)."""
    entry["health"].raise_for_issues()
    with st.spinner("Loading TensorFlow…"):
        freeze_imported_objects()
    split = entry["folders"].split(options["image_size"], validation_fraction=options["val"])
    recipe = options["recipe"]
    job = transfer.OwnImagesJob(
        split, recipe=recipe, backbone=options["backbone"], epochs=options["epochs"],
        learning_rate=options["lr"], patience=options["patience"], augment=options["augment"],
        augment_copies=options["copies"] if recipe == "transfer" else 0,
        fine_tune_epochs=options["fine_tune"] if recipe == "transfer" else 0,
    )  # fmt: skip
    runs.start_task(PAGE, job)
    ss = st.session_state
    ss[COUNTER] = ss.get(COUNTER, 0) + 1
    label = "From scratch" if recipe == "scratch" else options["backbone"]
    ss[RUN] = {
        "id": ss[COUNTER], "label": label, "split": split, "options": dict(options),
        "data": (entry["key"], entry["version"], options["image_size"]),
    }  # fmt: skip
    ss[JOB] = job


def adopt() -> dict | None:
    """Once the run is done: evaluate on the validation images, register the model (once per
    run). Returns the result to show (the last adopted one), or None."""
    ss = st.session_state
    job, run, result = ss.get(JOB), ss.get(RUN), ss.get(RESULT)
    if job is None or run is None or not job.done or (result and result["id"] == run["id"]):
        return result
    model, p = job.model, job.snapshot()
    if model is None or p.state == "failed":
        return result
    with st.spinner("Testing the model on the validation images…"):
        x, y, paths = run["split"].arrays("validation")
        evaluation = evaluate_model(model, x, y) if len(y) else None
    accuracy = evaluation.accuracy if evaluation is not None else float("nan")
    class_names = run["split"].class_names
    registry = state.model_registry()
    name = registry.unique_name(f"Own images · {run['label']} · {100 * accuracy:.0f} %")
    description = (
        f"{run['label']} trained on your {len(class_names)} classes, validation accuracy "
        f"{accuracy:.1%}"
    )
    registry.add(
        RegisteredModel(name, model, class_names, tuple(model.input_shape[1:]),
                        description=description, source_page=PAGE)
    )  # fmt: skip
    result = {
        "id": run["id"], "model": model, "evaluation": evaluation, "x": x, "y": y,
        "paths": paths, "class_names": class_names, "registered": name, "label": run["label"],
        "verified": p.weights_verified, "recipe": p.recipe,
    }  # fmt: skip
    ss[RESULT] = result
    table = ss.setdefault(COMPARE, {}).setdefault(run["data"], {})
    table[run["label"]] = {
        "Model": run["label"],
        "Validation accuracy": f"{accuracy:.1%}",
        "Epochs run": len(p.train_loss),
        "Training time (s)": round(p.elapsed_seconds, 1),
        "Feature extraction (s)": round(p.extract_seconds, 1) if p.extract_seconds else "—",
        "Parameters": f"{model.count_params():,}",
    }
    return result


def comparison(result: dict | None) -> list[dict]:
    """The table rows of every recipe trained on the same data as ``result``'s run."""
    run = st.session_state.get(RUN)
    if result is None or run is None:
        return []
    return list(st.session_state.get(COMPARE, {}).get(run["data"], {}).values())


def evaluation_of(result: dict | None) -> Evaluation | None:
    return None if result is None else result["evaluation"]
