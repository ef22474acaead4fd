"""Showing errors to learners at the page boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from cnnlib.core.errors import CNNLabError


@contextmanager
def friendly_errors(prefix: str = "") -> Iterator[None]:
    """Show a ``CNNLabError`` raised inside the block as ``st.error`` instead of a traceback."""
    try:
        yield
    except CNNLabError as err:
        st.error(f"{prefix}{err}", icon="⚠️")
