"""The page tests' one way to run a page under AppTest and fail on any exception, and to read
what it shows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from ui.keras_runtime import keep_keras_state_between_runs

# app.py applies this once per process; AppTest runs a page file without app.py.
keep_keras_state_between_runs()


def run_checked(target: Any, timeout: float = 180) -> AppTest:
    """Run an ``AppTest`` (or the app of a widget just changed); fail on any exception."""
    at = target.run(timeout=timeout)
    at = at if isinstance(at, AppTest) else target
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(
    page: str,
    *,
    timeout: float = 180,
    query: dict[str, str] | None = None,
    session: dict[str, Any] | None = None,
) -> AppTest:
    """Run ``app_pages/<page>.py`` once, with optional URL query and session state."""
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{page}.py"), default_timeout=timeout)
    at.query_params.update(query or {})
    for key, value in (session or {}).items():
        at.session_state[key] = value
    return run_checked(at, timeout)


def values(elements: Iterable[Any]) -> list[Any]:
    """The ``.value`` of each element, e.g. ``values(at.error)``, ``values(at.markdown)``."""
    return [e.value for e in elements]


def image_captions(at: AppTest) -> list[str]:
    """Every caption of every ``st.image`` on the page, in order."""
    return [c for img in at.get("image") for c in img.captions]


def image_alts(at: AppTest) -> list[str]:
    """The alt text of every ``st.image`` on the page, in order ("" for a decorative image;
    an image without alt text has none in its proto and is listed as None)."""
    return [
        img.alt if img.HasField("alt") else None for el in at.get("image") for img in el.proto.imgs
    ]


def component_data(at: AppTest, name: str) -> list[dict]:
    """The data each Custom Component v2 named ``name`` (e.g. "cnnlab.kernel_grid") was drawn
    with in the last run, in page order (AppTest has no browser to run its JavaScript)."""
    return [
        json.loads(el.proto.json)
        for el in at.get("bidi_component")
        if el.proto.component_name == name
    ]
