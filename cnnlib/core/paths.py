"""Where files live that the project does not ship: Keras' own home folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["keras_home"]


def keras_home() -> Path:
    """Keras' home folder, as Keras resolves it: ``$KERAS_HOME`` when set (``~`` expanded),
    else ``~/.keras``. Its ``datasets`` and ``models`` folders hold Keras' downloads."""
    base = os.environ.get("KERAS_HOME", "").strip()
    return Path(base).expanduser() if base else Path.home() / ".keras"
