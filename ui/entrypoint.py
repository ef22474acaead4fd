"""Make every page run through ``app.py``, whatever URL a visitor opens first.

Streamlit 1.67 decides per process whether an app uses its legacy ``pages/`` folder mode:
until ``st.navigation`` has run once, a ``pages/`` folder beside the entry script switches
it on. A fresh server whose first request is a deep link (``/convolution_lab?stride=2``, a
teacher's shared link) then runs that page file alone — no page config, no navigation,
the folder's file names in the sidebar. Pages call ``run_through_entrypoint()`` first: in
that case it switches the legacy mode off and reruns, so ``app.py`` runs and its
``st.navigation`` opens the same page (both modes derive a page's id from its URL path).
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def run_through_entrypoint() -> None:
    """Rerun through ``app.py`` if Streamlit ran this page file directly (see module doc)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
