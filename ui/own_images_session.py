"""The "Train on your own images" page's session: its data, its runs and their results.

Page-local session keys live here. The uploaded data is one ``OwnData`` per session
(``DATA``); replacing it removes the old temporary directory, and so does the end of the
session (garbage collection). A run is a ``cnnlib.training.transfer.OwnImagesJob`` of the
page's ``OwnImagesRecipe``, started, tested once on the validation images and added to the
session's model registry through the one flow of ``ui.runs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from cnnlib.core.errors import ArchiveError, InvalidArgumentError
from cnnlib.core.text import safe_text
from cnnlib.data.shortcuts import Cue
from cnnlib.inspect.calibration import CalibrationReport, calibration_report
from cnnlib.inspect.data_map import FeatureMap, classifier_features, pca_2d
from cnnlib.training.evaluation import (
    Evaluation,
    HeldOutTest,
    evaluate_model,
    held_out_test,
    predict_probabilities,
)
from cnnlib.training.export import ExportJob
from cnnlib.training.lr_finder import LrFinderJob
from cnnlib.training.shortcut_lab import ShortcutReport, shortcut_data, shortcut_report
from cnnlib.training.tasks import default_slots
from cnnlib.training.transfer import OwnImagesJob, OwnImagesRecipe
from cnnlib.uploads.folders import FolderData, HealthReport, ImageFolders, open_archive, open_files
from ui import runs

PAGE = "Train on your own images"  #: the page title, as the registry and busy messages name it
DATA = "own_data"  #: the session's ``OwnData``
RUN = "own_run"  #: ``ui.runs.Run`` of the latest training (info: ``OwnRun``)
COMPARE = "own_compare"  #: {(data key, version, image size): {model label: ComparisonRow}}
EXPORT = "own_export"  #: ``ui.runs.Run`` of the latest export (info: the exported run's id)
EXPORT_PAGE = f"{PAGE} (export)"  #: how the busy message names a running export
#: The curves of a training kept with its result (and saved with a project).
HISTORY = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
LR_RUN = "own_lr_finder"  #: ``ui.runs.Run`` of the latest range test (info: its recipe)
LR_PAGE = f"{PAGE} (learning-rate finder)"  #: how the busy message names a running one
SHORTCUT_RUN = "own_shortcut"  #: ``ui.runs.Run`` of the shortcut lab's training (info: ShortcutRun)
SHORTCUT_PAGE = f"{PAGE} (shortcut lab)"  #: how the busy message names it
THRESHOLD = "own_threshold"  #: the confidence threshold chosen in tab ⑤ (0: always answer)
MAPS = "own_maps"  #: {run id: FeatureMap} of the validation images
TESTS = "own_tests"  #: {(run id, test source key): OwnTestResult}, the held-out tests done


@dataclass(eq=False)
class OwnData:
    """The session's images: the upload's ``key``, its checked ``folders``, ``version`` (one
    more after each relabelling or exclusion), the ``health`` report of that version and
    ``initial``: every (stored file, label) as first checked, in order (what a saved project
    holds; the relabels and exclusions are the differences from it)."""

    key: str
    folders: ImageFolders
    health: HealthReport
    version: int = 0
    initial: tuple[tuple[Path, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.initial:
            self.initial = tuple(self.folders.files)


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
    #: The training's curves per epoch ("train_loss", "val_accuracy"…), for a saved project.
    history: dict[str, tuple[float, ...]] = field(default_factory=dict)


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
    return replace_data(OwnData(key, folders, folders.health()))


def replace_data(entry: OwnData) -> OwnData:
    """Make ``entry`` the session's data; the previous one's temporary folder is removed."""
    current = data()
    if current is not None and current is not entry:
        current.folders.cleanup()
    st.session_state[DATA] = entry
    return entry


def edited(entry: OwnData) -> None:
    """After a relabel or exclusion: a new data version, a fresh health report."""
    entry.version += 1
    entry.health = entry.folders.health()


def split_of(entry: OwnData, recipe: OwnImagesRecipe) -> FolderData:
    """The seeded, stratified split of the data that ``recipe`` trains on (the one rule)."""
    return entry.folders.split(
        recipe.image_size,
        validation_fraction=recipe.validation_fraction,
        test_fraction=recipe.test_fraction,
        seed=recipe.seed,
    )


def start(entry: OwnData, recipe: OwnImagesRecipe) -> None:
    """Start an ``OwnImagesJob`` of ``recipe`` on the current data, measuring each layer's
    health and the Grad-CAM of four validation images at each epoch end. Raises
    ``SessionBusyError`` / ``ServerBusyError`` / ``ArchiveError`` /
    ``WeightsUnavailableError`` (nothing starts)."""
    entry.health.raise_for_issues()
    split = split_of(entry, recipe)
    info = OwnRun(recipe, split, (entry.key, entry.version, recipe.image_size))
    runs.start(RUN, PAGE, lambda: OwnImagesJob(split, recipe, health=True), info)


def real_examples(x: np.ndarray, y: np.ndarray) -> dict:
    """A model's registry ``examples`` (``RegisteredModel``): its validation images ``x``
    (N, H, W, 3) uint8 with labels ``y``, where other pages search for real examples, and
    what they are (none without validation images)."""
    if not len(y):
        return {}
    return {
        "examples": x,
        "examples_source": f"the {len(y):,} validation images of your own data",
    }


def _test(run: OwnTested) -> OwnImagesResult:
    """Evaluate a finished run on its validation images, register its model (with those
    images as its real examples for other pages), and add its row to the comparison table
    of its data."""
    model, p, info = run.job.model, run.job.snapshot(), run.info
    with st.spinner("Testing the model on the validation images…"):
        x, y, paths = info.split.arrays("validation")
        evaluation = evaluate_model(model, x, y) if len(y) else None
    accuracy = evaluation.accuracy if evaluation is not None else float("nan")
    class_names, label = tuple(info.split.class_names), info.recipe.label
    description = (
        f"{label} trained on your {len(class_names)} classes, validation accuracy {accuracy:.1%}"
    )
    name = runs.register(
        run, f"Own images · {label} · {100 * accuracy:.0f} %", description, **real_examples(x, y)
    )
    table = st.session_state.setdefault(COMPARE, {}).setdefault(info.data, {})
    table[label] = ComparisonRow(
        model=label,
        validation_accuracy=accuracy,
        epochs_run=len(p.train_loss),
        training_seconds=round(p.elapsed_seconds, 1),
        extraction_seconds=round(p.extract_seconds, 1) if p.extract_seconds else None,
        parameters=int(model.count_params()),
    )
    history = {k: tuple(getattr(p, k)) for k in HISTORY}
    return OwnImagesResult(
        model, evaluation, x, y, tuple(paths), class_names, name, label, p.weights_verified, history
    )


def adopt() -> OwnTested | None:
    """Once the run is done: evaluate, register (once per run). Returns the latest tested
    run (this one, else the previous one), or None."""
    return runs.adopt(RUN, _test)


def comparison(tested: OwnTested | None) -> list[ComparisonRow]:
    """The rows of every recipe trained on the same data as ``tested``'s run."""
    if tested is None:
        return []
    return list(st.session_state.get(COMPARE, {}).get(tested.info.data, {}).values())


# --------------------------------------------------------------------------------------------
# The held-out test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OwnTestResult:
    """A trained model on held-out test images: ``test`` (metrics, precision and recall, the
    validation–test gap explained), the images ``x`` (N, H, W, 3) uint8 in the order of
    ``test.evaluation`` and where they came from (``source``, for the learner)."""

    test: HeldOutTest
    x: np.ndarray
    source: str


def _held_out(tested: OwnTested, x: np.ndarray, y: np.ndarray, source: str) -> OwnTestResult:
    validation = tested.result.evaluation
    if validation is None:
        raise InvalidArgumentError(
            "This model has no validation score to compare with: train it with a validation split."
        )
    with st.spinner("Testing the model on the held-out images…"):
        probabilities = predict_probabilities(tested.result.model, x)
    test = held_out_test(
        probabilities,
        y,
        validation_accuracy=validation.accuracy,
        validation_size=len(validation.labels),
    )
    return OwnTestResult(test, x, source)


def _remember(key: tuple, compute) -> OwnTestResult:
    tests = st.session_state.setdefault(TESTS, {})
    if key not in tests:
        tests[key] = compute()
    return tests[key]


def test_share_size(tested: OwnTested) -> int:
    """Images of the test share the run's split set aside (0 when none was)."""
    return tested.info.split.size("test")


def test_on_share(tested: OwnTested) -> OwnTestResult:
    """The run's model on the test share set aside before it trained (computed once).
    Raises ``InvalidArgumentError`` when there is no test share."""
    if not test_share_size(tested):
        raise InvalidArgumentError(
            "No test share was set aside for this model: set a test share (tab ②) and train "
            "again, or upload a test zip."
        )

    def compute() -> OwnTestResult:
        x, y, _ = tested.info.split.arrays("test")
        return _held_out(tested, x, y, "the test share set aside before training")

    return _remember((tested.id, "share"), compute)


def test_on_zip(tested: OwnTested, key: str, read) -> OwnTestResult:
    """The run's model on a test zip (``read()``: its bytes; ``key`` names the upload),
    checked and decoded like any upload (the decoding sandbox), resized to the model's input.
    Its class folders must be classes of the model. Raises ``ArchiveError``."""

    def compute() -> OwnTestResult:
        names = tested.result.class_names
        folders = open_archive(read())
        try:
            unknown = [n for n in folders.class_names if n not in names]
            if unknown:
                raise ArchiveError(
                    f"The test zip has a class the model was not trained on: "
                    f"{', '.join(safe_text(n) for n in unknown[:5])}. Name its folders like "
                    f"the training classes ({', '.join(safe_text(n) for n in names[:10])})."
                )
            h, w = tested.result.model.input_shape[1:3]
            x, local, _ = folders.split((int(h), int(w)), validation_fraction=0.0).arrays("train")
            y = np.array([names.index(folders.class_names[i]) for i in local], np.int64)
        finally:
            folders.cleanup()
        return _held_out(tested, x, y, "your test zip")

    return _remember((tested.id, key), compute)


@st.cache_data(scope="session", max_entries=4, show_spinner="Measuring its calibration…")
def _calibration(
    run_id: int, source: str, _model, _shown: tuple, _validation: tuple | None
) -> CalibrationReport:
    x, y = _shown
    x_val, y_val = _validation if _validation is not None else (None, None)
    return calibration_report(
        _model,
        x.astype(np.float32),
        y,
        x_val=None if x_val is None else x_val.astype(np.float32),
        y_val=y_val,
    )


def calibration(tested: OwnTested, test: OwnTestResult | None, key: str) -> CalibrationReport:
    """The run's calibration (computed once per run and test source ``key``): the
    reliability diagram of ``test``'s held-out images, or of the validation images when
    ``test`` is None, before and after temperature scaling fitted on the run's validation
    images (never on a test set; no T without validation images). Raises
    ``InvalidArgumentError`` when there are neither test nor validation images."""
    r = tested.result
    validation = (r.x, r.y) if len(r.y) else None
    if test is not None:
        shown, key = (test.x, test.test.evaluation.labels), f"test:{key}"
    elif validation is not None:
        shown, key = validation, "validation"
    else:
        raise InvalidArgumentError(
            "This model has neither validation nor test images to measure its calibration on: "
            "train it with a validation split."
        )
    return _calibration(tested.id, key, r.model, shown, validation)


def temperature(tested: OwnTested) -> float | None:
    """T fitted on the run's validation images (``calibration``'s, computed once per run);
    None without validation images."""
    return calibration(tested, None, "").temperature if len(tested.result.y) else None


def start_lr_finder(entry: OwnData, recipe: OwnImagesRecipe) -> None:
    """Start the range test of ``recipe`` on the current data's training split (an
    ``LrFinderJob``, this session's one task). Raises like ``start``."""
    entry.health.raise_for_issues()
    split = split_of(entry, recipe)
    runs.start(LR_RUN, LR_PAGE, lambda: LrFinderJob(split, recipe, slots=default_slots()), recipe)


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------


def start_export(tested: OwnTested, formats: tuple[str, ...]) -> None:
    """Convert the run's model to ``formats`` in the background (an ``ExportJob``, this
    session's one task), each file then run by its own runtime on the validation images
    beside Keras. int8 is calibrated on the training images. Raises ``SessionBusyError`` /
    ``ServerBusyError`` / ``InvalidArgumentError`` (nothing starts)."""
    result = tested.result
    calibration = None
    if "litert_int8" in formats:
        calibration = tested.info.split.arrays("train")[0]

    def make() -> ExportJob:
        return ExportJob(
            result.model,
            formats,
            calibration=calibration,
            check_images=result.x if len(result.y) else None,
            check_labels=result.y if len(result.y) else None,
            slots=default_slots(),
        )

    runs.start(EXPORT, EXPORT_PAGE, make, tested.id)


def export_of(tested: OwnTested) -> runs.Run | None:
    """The latest export of ``tested``'s model (running or done), or None."""
    run = runs.current(EXPORT)
    return run if run is not None and run.info == tested.id else None


# --------------------------------------------------------------------------------------------
# The threshold and the map of the data
# --------------------------------------------------------------------------------------------


def threshold() -> float:
    """The confidence threshold the learner chose (0.0 until they do: always answer)."""
    return float(st.session_state.get(THRESHOLD, 0.0))


def prediction_sets(tested: OwnTested) -> dict[str, Evaluation]:
    """The run's predictions a threshold can be explored on: the validation images, and the
    held-out test share once it was tested ({what: Evaluation})."""
    sets = {}
    if tested.result.evaluation is not None:
        sets["validation images"] = tested.result.evaluation
    test = st.session_state.get(TESTS, {}).get((tested.id, "share"))
    if test is not None:
        sets["held-out test share"] = test.test.evaluation
    return sets


def data_map(tested: OwnTested) -> FeatureMap:
    """The 2-D PCA of the features the model's classifier reads for each validation image
    (computed once per run)."""
    maps = st.session_state.setdefault(MAPS, {})
    if tested.id not in maps:
        with st.spinner("Computing what the model sees in each validation image…"):
            maps[tested.id] = pca_2d(classifier_features(tested.result.model, tested.result.x))
    return maps[tested.id]


# --------------------------------------------------------------------------------------------
# The shortcut lab
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShortcutRun:
    """What the shortcut lab keeps about its training: the recipe, the planted ``cue`` in
    ``share`` of class ``target``'s images, and the clean validation images ``x`` (N, H, W,
    3) uint8 with labels ``y`` it is tested on once trained."""

    recipe: OwnImagesRecipe
    cue: Cue
    target: int
    share: float
    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


def start_shortcut(
    entry: OwnData, recipe: OwnImagesRecipe, cue: Cue, target: int, share: float
) -> None:
    """Train ``recipe`` on the data with ``cue`` planted in ``share`` of class ``target``'s
    training and validation images (an ``OwnImagesJob``, this session's one task). Raises
    like ``start``."""
    entry.health.raise_for_issues()
    split = split_of(entry, recipe)
    xt, yt, _ = split.arrays("train")
    xv, yv, _ = split.arrays("validation")
    names = tuple(split.class_names)
    data = shortcut_data((xt, yt), (xv, yv), names, target, share, cue, recipe.seed)
    info = ShortcutRun(recipe, cue, target, share, xv, yv, names)
    runs.start(SHORTCUT_RUN, SHORTCUT_PAGE, lambda: OwnImagesJob(data, recipe), info)


def shortcut_tested() -> runs.Run | None:
    """The shortcut lab's latest trained run, tested three ways once (``result``: a
    ``ShortcutReport``), or None."""

    def test(run: runs.Run) -> ShortcutReport:
        i = run.info
        with st.spinner("Testing the model with and without the cue…"):
            return shortcut_report(run.job.model, i.x, i.y, i.target, i.share, i.cue, i.recipe.seed)

    return runs.adopt(SHORTCUT_RUN, test)
