"""The allow-list of child-side parsers: ``@sandbox_task("name")`` functions.

A module that parses untrusted bytes (images in ``cnnlib.data.images``, zip archives in
``cnnlib.uploads.archives``, ``.keras`` models …) marks its parser with ``@sandbox_task``.
The decorator registers the function under its task name in the server (so
``run_in_sandbox("name", …)`` knows which module and function to ask for), and marks it; the
child imports that module and runs the function only if it carries the mark for that name
(``resolve``). No request can make a decoder run anything else.

A task is ``fn(source, **options) -> TaskOutput``: ``source`` is the file's ``bytes`` or,
when the server passed a path, a ``pathlib.Path`` the task may open for reading; options are
JSON values, always with ``name``: how the task's messages name the file (safe to show). It
returns ``TaskOutput(meta, arrays)``: ``meta`` a JSON object (numbers, strings, lists,
objects), ``arrays`` NumPy arrays of the dtypes in ``wire.DTYPES``. It raises a
``CNNLabError`` subclass for a file it refuses (the message is for the learner and names the
file by ``name``); any other exception is reported as a failed decoder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TaskOutput", "registered", "resolve", "sandbox_task"]

#: Task name → (module, function name), filled as the modules defining tasks are imported.
_TASKS: dict[str, tuple[str, str]] = {}
_MARK = "__sandbox_task__"


@dataclass
class TaskOutput:
    """What a child-side parser returns: a JSON object and named arrays (see the module)."""

    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def sandbox_task(name: str) -> Callable[[Callable[..., TaskOutput]], Callable[..., TaskOutput]]:
    """Register the decorated module-level function as the child-side parser ``name``."""

    def mark(fn: Callable[..., TaskOutput]) -> Callable[..., TaskOutput]:
        if "." in fn.__qualname__:
            raise TypeError(f"sandbox task {name!r} must be a module-level function")
        setattr(fn, _MARK, name)
        _TASKS[name] = (fn.__module__, fn.__qualname__)
        return fn

    return mark


def registered(name: str) -> tuple[str, str] | None:
    """(module, function) of task ``name``, or None when no imported module defines it."""
    return _TASKS.get(name)


def task_modules() -> list[str]:
    """The modules of every registered task (a decoder imports them when it starts)."""
    return sorted({module for module, _ in _TASKS.values()})


def resolve(name: str, module: str, function: str) -> Callable[..., TaskOutput]:
    """In the child: the function ``module.function`` if it is marked as task ``name``.
    Raises ``LookupError`` otherwise."""
    if not isinstance(module, str) or not module.startswith(("cnnlib.", "tests.")):
        raise LookupError(f"sandbox tasks live in cnnlib (or the tests), not {module!r}")
    fn = getattr(importlib.import_module(module), str(function), None)
    if fn is None or getattr(fn, _MARK, None) != name:
        raise LookupError(f"{module}.{function} is not the sandbox task {name!r}")
    return fn
