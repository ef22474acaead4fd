"""Saving the "Train on your own images" page as one project file, and resuming from one.

``project_file(entry, recipe, tested)`` → the bytes of a ``cnnlib.uploads.bundle`` zip: every
checked image (resized), the classes, relabels and exclusions, the settings (the trained
model's recipe when the model is included), the model and its curves. ``resume(key, read)``
opens such a file through the same safe reader as any upload (``read_bundle``: the decoding
sandbox; the model through the ``.keras`` upload path), makes it the session's data, and,
when it holds a model, tests that model on the same validation split it had (the same
images in the same order, so the same seeded split), keeps it as the page's latest run and
adds it to the session's model registry (the other pages open it like a model trained here).

Session bookkeeping only: the page restores its widgets from ``ResumedProject.recipe``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import streamlit as st
from PIL import Image

from cnnlib.core.errors import ArchiveError, InvalidArgumentError
from cnnlib.training.evaluation import evaluate_model
from cnnlib.training.trainer import save_model_bytes
from cnnlib.training.transfer import OwnImagesRecipe
from cnnlib.uploads.bundle import (
    OpenedProject,
    Project,
    ProjectImage,
    project_model,
    read_bundle,
    write_bundle,
)
from ui import own_images_session as session
from ui import runs

#: The recipe's settings a project saves (``weights`` is the server's, never saved).
SETTINGS = tuple(f.name for f in fields(OwnImagesRecipe) if f.name != "weights")
#: Session key of the prepared project file: ((data key, version, run id, recipe), bytes).
FILE = "own_project_file"


@dataclass(frozen=True)
class ResumedProject:
    """What a project file restored: its settings as a ``recipe``, whether it held a model,
    and how many images are in it (all, excluded ones too)."""

    recipe: OwnImagesRecipe
    has_model: bool
    images: int


def _settings(recipe: OwnImagesRecipe) -> dict:
    values = {name: getattr(recipe, name) for name in SETTINGS}
    values["augment"] = ",".join(recipe.augment)
    return values


def _recipe(settings: dict) -> OwnImagesRecipe:
    """The recipe of a project's settings; ``ArchiveError`` when they are not one."""
    values = dict(settings)
    if set(values) - set(SETTINGS):
        raise ArchiveError("The project's settings are not those of this page.")
    augment = values.pop("augment", "")
    try:
        kinds = tuple(k for k in str(augment).split(",") if k)
        return OwnImagesRecipe(**values, augment=kinds)
    except (InvalidArgumentError, TypeError) as err:
        raise ArchiveError(f"The project's settings cannot be used: {err}") from None


def includes_model(entry: session.OwnData, tested: session.OwnTested | None) -> bool:
    """Whether the saved project holds ``tested``'s model: it trained on this very data."""
    return tested is not None and tested.info.data[:2] == (entry.key, entry.version)


def project_of(
    entry: session.OwnData, recipe: OwnImagesRecipe | None, tested: session.OwnTested | None
) -> Project:
    """The page as a ``Project``: the images as first checked (``entry.initial``) with the
    relabels and exclusions made since; the trained model's recipe and model when it trained
    on this data, else the current ``recipe`` (None: the defaults)."""
    names = entry.folders.class_names
    current = {path: label for path, label in entry.folders.files}
    images, relabels, exclusions = [], {}, []
    for i, (path, label) in enumerate(entry.initial):
        name = f"{i:05d}"  # write_bundle adds the suffix of the format it saves
        with Image.open(path) as stored:
            images.append(ProjectImage(name, label, stored.convert("RGB")))
        key = f"{names[label]}/{name}"
        if path not in current:
            exclusions.append(key)
        elif current[path] != label:
            relabels[key] = current[path]
    model, history = None, {}
    if includes_model(entry, tested):
        recipe = tested.info.recipe
        model = save_model_bytes(tested.result.model)
        history = {k: v for k, v in tested.result.history.items() if v}
    return Project(
        class_names=names,
        images=tuple(images),
        relabels=relabels,
        exclusions=tuple(exclusions),
        settings=_settings(recipe or OwnImagesRecipe()),
        history=history,
        model=model,
    )


def _signature(entry, recipe, tested) -> tuple:
    with_model = includes_model(entry, tested)
    return (entry.key, entry.version, tested.id if with_model else None, recipe)


def prepared_file(
    entry: session.OwnData, recipe: OwnImagesRecipe | None, tested: session.OwnTested | None
) -> bytes | None:
    """The project file made by ``prepare_file`` for the page as it is now, or None."""
    kept = st.session_state.get(FILE)
    return kept[1] if kept is not None and kept[0] == _signature(entry, recipe, tested) else None


def prepare_file(
    entry: session.OwnData, recipe: OwnImagesRecipe | None, tested: session.OwnTested | None
) -> bytes:
    """The project zip of the page as it is, kept in the session for its download button.
    Raises ``InvalidArgumentError`` when a class name cannot be a file name."""
    with st.spinner("Saving your images, settings and model into one file…"):
        data = write_bundle(project_of(entry, recipe, tested))
    st.session_state[FILE] = (_signature(entry, recipe, tested), data)
    return data


def _initial(opened: OpenedProject) -> tuple:
    """(stored file, label collected under) of every image of the project, in the order it
    was saved (the reader stores a class folder's n-th image as ``<folder>/<n>.<ext>``),
    excluded ones too."""
    folders = opened.folders
    names = opened.manifest.classes
    paths = [p for p, _ in folders.files] + list(opened.excluded.values())
    paths.sort(key=lambda p: (int(p.parent.name), int(p.stem)))
    return tuple((p, names.index(folders.source(p).split("/")[-2])) for p in paths)


def resume(key: str, read) -> tuple[session.OwnData, ResumedProject]:
    """Open the project file ``read()`` (upload ``key``) as the session's data, and its model
    (tested on its validation split) as the page's latest run. Raises ``ArchiveError`` (the
    previous data then stays) or ``InvalidModelError``."""
    if session.running():
        raise InvalidArgumentError("Stop the running training before opening a project.")
    with st.spinner("Opening your project: checking every image and the model…"):
        opened = read_bundle(read())
        try:
            recipe = _recipe(opened.manifest.settings)
            model = project_model(opened)
            names = opened.manifest.classes
            if model is not None and (
                tuple(model.input_shape[1:]) != (recipe.image_size, recipe.image_size, 3)
                or model.output_shape[-1] != len(names)
            ):
                raise ArchiveError(
                    "The project's model does not fit its images and classes; save it again."
                )
            entry = session.OwnData(
                key, opened.folders, opened.folders.health(), initial=_initial(opened)
            )
        except BaseException:
            opened.folders.cleanup()
            raise
    session.replace_data(entry)
    if model is not None:
        _adopt(entry, recipe, model, opened.manifest.history)
    return entry, ResumedProject(recipe, model is not None, len(entry.initial))


def _adopt(entry: session.OwnData, recipe: OwnImagesRecipe, model, history: dict) -> None:
    """The project's model as the page's latest run: tested on its validation split, and
    added to the session's model registry."""
    split = session.split_of(entry, recipe)
    with st.spinner("Testing the saved model on its validation images…"):
        x, y, paths = split.arrays("validation")
        evaluation = evaluate_model(model, x, y) if len(y) else None
    accuracy = evaluation.accuracy if evaluation is not None else math.nan
    info = session.OwnRun(recipe, split, (entry.key, entry.version, recipe.image_size))
    class_names = tuple(split.class_names)
    # in the session's registry like a model trained here: Feature maps, Network overview…
    registered = runs.register_model(
        model,
        class_names,
        f"Own images · {recipe.label} · {100 * accuracy:.0f} % (from your project file)",
        f"{recipe.label} trained on your {len(class_names)} classes (opened from a project "
        f"file), validation accuracy {accuracy:.1%}",
        session.PAGE,
        **session.real_examples(x, y),
    )
    result = session.OwnImagesResult(
        model,
        evaluation,
        x,
        y,
        tuple(paths),
        class_names,
        registered,
        recipe.label,
        history={k: tuple(v) for k, v in history.items()},
    )
    runs.resume(session.RUN, session.PAGE, info, result)
