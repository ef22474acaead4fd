"""Rendering the home page and the Convolution lab never imports TensorFlow or Keras
(importing TensorFlow costs seconds): checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import sys
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("app.py", default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "CNN Lab"
    at.switch_page("app_pages/convolution_lab.py").run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert any("→ output" in m.value for m in at.markdown)
    at.radio(key="lab_stride").set_value(2).run(timeout=120)
    assert not at.exception
    print("LOADED", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """
)


@pytest.mark.slow
def test_home_and_lab_render_without_tensorflow():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout
