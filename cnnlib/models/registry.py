"""The models trained in one session, for every page that uses them (e.g. Feature maps).

A page that trains a model ``add``s a ``RegisteredModel`` (the model, its class names and the
shape of the raw images it takes, and, where the learner's own data is not one another page
can load, a few of its images as ``examples``); other pages list ``entries()`` (newest
first) and ``get`` one by name. The registry is a plain class (no Streamlit);
``ui.state.model_registry()`` keeps one per browser session. It holds at most ``limit``
models: adding one more drops the oldest, so a session cannot pile up models in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

__all__ = ["DEFAULT_LIMIT", "ModelRegistry", "RegisteredModel", "registered_from_job"]

#: Models kept per session by default.
DEFAULT_LIMIT = 5


@dataclass(frozen=True)
class RegisteredModel:
    """One trained model and what a page needs to use it.

    ``model``: a Keras model taking RAW pixels (N, H, W, C) 0…255 (it owns its rescaling)
    and returning a softmax over ``class_names``; ``input_shape``: (H, W, C);
    ``description``: one line for the learner (dataset, recipe, test accuracy);
    ``source_page``: the page that trained it (e.g. "Train on MNIST"); ``created``: Unix time.
    ``examples``: images of the learner's data it was trained for, (N, H, W, C) uint8 raw
    pixels at ``input_shape`` (a read-only view), where other pages look for real examples
    (e.g. the image patches that excite a filter most), or None; ``examples_source`` says
    what they are, for the learner ("the 32 validation images of your own data").
    """

    name: str
    model: Any
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    description: str = ""
    source_page: str = ""
    created: float = field(default_factory=time.time)
    examples: np.ndarray | None = None
    examples_source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgumentError("A registered model needs a name.")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        shape = tuple(int(d) for d in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InvalidArgumentError(f"The input shape must be (H, W, C); got {shape}.")
        object.__setattr__(self, "input_shape", shape)
        if self.examples is not None:
            x = np.asarray(self.examples)
            if x.dtype != np.uint8 or x.ndim != 4 or not len(x) or tuple(x.shape[1:]) != shape:
                raise InvalidArgumentError(
                    f"A model's examples must be (N, {', '.join(map(str, shape))}) uint8 images; "
                    f"got {x.dtype} {x.shape}."
                )
            view = x.view()
            view.flags.writeable = False  # shared by every page that reads it
            object.__setattr__(self, "examples", view)
            if not self.examples_source:
                object.__setattr__(self, "examples_source", f"{len(x):,} images of its data")


def registered_from_job(
    job,
    name: str,
    *,
    description: str = "",
    source_page: str = "",
    examples: np.ndarray | None = None,
    examples_source: str = "",
) -> RegisteredModel:
    """A ``RegisteredModel`` for a finished (or stopped) ``cnnlib.training.trainer.TrainingJob``:
    its model, the class names of its data and the model's input shape (``examples``: see
    ``RegisteredModel``)."""
    model = job.model
    if model is None:
        raise InvalidArgumentError("This training has no model to keep (it never trained).")
    return RegisteredModel(
        name=name,
        model=model,
        class_names=job.snapshot().class_names,
        input_shape=tuple(model.input_shape[1:]),
        description=description,
        source_page=source_page,
        examples=examples,
        examples_source=examples_source,
    )


class ModelRegistry:
    """At most ``limit`` ``RegisteredModel``s by name, newest first (thread-safe)."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"The registry must hold at least 1 model; got {limit!r}.")
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: list[RegisteredModel] = []  # newest first

    def add(self, entry: RegisteredModel) -> RegisteredModel:
        """Add ``entry`` as the newest; one with the same name is replaced, and beyond
        ``limit`` the oldest is dropped. Returns ``entry``."""
        if not isinstance(entry, RegisteredModel):
            raise InvalidArgumentError("Only a RegisteredModel can be added.")
        with self._lock:
            kept = [e for e in self._entries if e.name != entry.name]
            self._entries = [entry, *kept][: self.limit]
        return entry

    def get(self, name: str) -> RegisteredModel | None:
        """The model called ``name``, or None."""
        with self._lock:
            return next((e for e in self._entries if e.name == name), None)

    def remove(self, name: str) -> bool:
        """Forget the model called ``name``; True if there was one."""
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.name != name]
            return len(self._entries) < before

    def entries(self) -> tuple[RegisteredModel, ...]:
        """Every model, newest first."""
        with self._lock:
            return tuple(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries())

    def latest(self, source_page: str | None = None) -> RegisteredModel | None:
        """The newest model (from ``source_page`` when given), or None."""
        for entry in self.entries():
            if source_page is None or entry.source_page == source_page:
                return entry
        return None

    def unique_name(self, base: str, taken: Sequence[str] | None = None) -> str:
        """``base``, or "base (2)", "base (3)", … whichever is not yet in the registry."""
        names = set(self.names() if taken is None else taken)
        if base not in names:
            return base
        n = 2
        while f"{base} ({n})" in names:
            n += 1
        return f"{base} ({n})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None if isinstance(name, str) else False
