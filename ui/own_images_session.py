"""The "Train on your own images" page's session: its data, its runs and their results.

Page-local session keys live here. The uploaded data is one ``OwnData`` per session
(``DATA``); replacing it removes the old temporary directory, and so does the end of the
session (garbage collection). A run is a ``cnnlib.training.transfer.OwnImagesJob`` of the
page's ``OwnImagesRecipe``, started, tested once on the validation images and added to the
session's model registry through the one flow of ``ui.runs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.training.evaluation import Evaluation, evaluate_model
from cnnlib.training.transfer import OwnImagesJob, OwnImagesRecipe
from cnnlib.uploads.folders import FolderData, HealthReport, ImageFolders, open_archive, open_files
from ui import runs

PAGE = "Train on your own images"  #: the page title, as the registry and busy messages name it
DATA = "own_data"  #: the session's ``OwnData``
RUN = "own_run"  #: ``ui.runs.Run`` of the latest training (info: ``OwnRun``)
COMPARE = "own_compare"  #: {(data key, version, image size): {model label: ComparisonRow}}


@dataclass(eq=False)
class OwnData:
    """The session's images: the upload's ``key``, its checked ``folders``, ``version`` (one
    more after each relabelling or exclusion) and the ``health`` report of that version."""

    key: str
    folders: ImageFolders
    health: HealthReport
    version: int = 0


@dataclass(frozen=True, eq=False)
class OwnRun:
    """What the page keeps about a training: its recipe, the split it trained on (tested on
    its validation images once done) and which data version it saw ((key, version, size))."""

    recipe: OwnImagesRecipe
    split: FolderData
    data: tuple[str, int, int]


@dataclass(frozen=True, eq=False)
class OwnImagesResult:
    """A finished training, tested on the validation images: the model, its ``evaluation``
    (None without validation images), the images ``x`` (N, H, W, 3) uint8 with labels ``y``
    (N,) and their files ``paths``, the class names, its registry name, its label ("From
    scratch" or the backbone) and whether the backbone's weights are Keras' own."""

    model: object
    evaluation: Evaluation | None
    x: np.ndarray
    y: np.ndarray
    paths: tuple[str, ...]
    class_names: tuple[str, ...]
    registered: str
    label: str
    verified: bool = field(default=False)


@dataclass(frozen=True)
class ComparisonRow:
    """One recipe trained on some data: a row of the comparison table."""

    model: str
    validation_accuracy: float
    epochs_run: int
    training_seconds: float
    extraction_seconds: float | None
    parameters: int


#: A training of the page, once tested (``result`` set) or not yet.
OwnTested = runs.Run[OwnRun, OwnImagesResult]


def data() -> OwnData | None:
    return st.session_state.get(DATA)


def running() -> bool:
    return runs.running(RUN)


def use_data(key: str, read) -> OwnData:
    """The session's data set for upload ``key``, opened from ``read()`` (zip bytes, or a
    folder upload's (path, bytes) list) when it is new; the old one is cleaned up. Raises
    ``ArchiveError``: the previous data then stays."""
    current = data()
    if current is not None and current.key == key:
        return current
    if running():
        raise InvalidArgumentError("Stop the running training before changing the images.")
    raw = read()
    with st.spinner("Checking every image…"):
        folders = open_archive(raw) if isinstance(raw, bytes) else open_files(raw)
    if current is not None:
        current.folders.cleanup()
    entry = OwnData(key, folders, folders.health())
    st.session_state[DATA] = entry
    return entry


def edited(entry: OwnData) -> None:
    """After a relabel or exclusion: a new data version, a fresh health report."""
    entry.version += 1
    entry.health = entry.folders.health()


def start(entry: OwnData, recipe: OwnImagesRecipe) -> None:
    """Start an ``OwnImagesJob`` of ``recipe`` on the current data. Raises
    ``SessionBusyError`` / ``ServerBusyError`` / ``ArchiveError`` /
    ``WeightsUnavailableError`` (nothing starts)."""
    entry.health.raise_for_issues()
    split = entry.folders.split(
        recipe.image_size, validation_fraction=recipe.validation_fraction, seed=recipe.seed
    )
    info = OwnRun(recipe, split, (entry.key, entry.version, recipe.image_size))
    runs.start(RUN, PAGE, lambda: OwnImagesJob(split, recipe), info)


def _test(run: OwnTested) -> OwnImagesResult:
    """Evaluate a finished run on its validation images, register its model, and add its
    row to the comparison table of its data."""
    model, p, info = run.job.model, run.job.snapshot(), run.info
    with st.spinner("Testing the model on the validation images…"):
        x, y, paths = info.split.arrays("validation")
        evaluation = evaluate_model(model, x, y) if len(y) else None
    accuracy = evaluation.accuracy if evaluation is not None else float("nan")
    class_names, label = tuple(info.split.class_names), info.recipe.label
    description = (
        f"{label} trained on your {len(class_names)} classes, validation accuracy {accuracy:.1%}"
    )
    name = runs.register(run, f"Own images · {label} · {100 * accuracy:.0f} %", description)
    table = st.session_state.setdefault(COMPARE, {}).setdefault(info.data, {})
    table[label] = ComparisonRow(
        model=label,
        validation_accuracy=accuracy,
        epochs_run=len(p.train_loss),
        training_seconds=round(p.elapsed_seconds, 1),
        extraction_seconds=round(p.extract_seconds, 1) if p.extract_seconds else None,
        parameters=int(model.count_params()),
    )
    result = OwnImagesResult(
        model, evaluation, x, y, tuple(paths), class_names, name, label, p.weights_verified
    )
    return result


def adopt() -> OwnTested | None:
    """Once the run is done: evaluate, register (once per run). Returns the latest tested
    run (this one, else the previous one), or None."""
    return runs.adopt(RUN, _test)


def comparison(tested: OwnTested | None) -> list[ComparisonRow]:
    """The rows of every recipe trained on the same data as ``tested``'s run."""
    if tested is None:
        return []
    return list(st.session_state.get(COMPARE, {}).get(tested.info.data, {}).values())
