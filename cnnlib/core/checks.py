"""Checks of arguments shared by every package: one definition of "a whole number in range".

``is_whole`` answers the question; each caller raises its own learner-facing message
(what the number is for, and which values are allowed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

__all__ = ["check_whole", "is_whole"]


def is_whole(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """True when ``value`` is a Python or NumPy integer (never a bool) with
    ``low <= value <= high`` (a bound of None: no bound)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        return False
    return bool((low is None or value >= low) and (high is None or value <= high))


def check_whole(name: str, value: Any, low: int, high: int) -> None:
    """Raise ``InvalidArgumentError`` ("<Name> must be a whole number from low to high; got
    …") unless ``is_whole(value, low, high)``; ``name`` may use underscores (batch_size)."""
    if not is_whole(value, low, high):
        raise InvalidArgumentError(
            f"{name.replace('_', ' ').capitalize()} must be a whole number from {low} to "
            f"{high}; got {value!r}."
        )
