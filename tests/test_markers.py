"""The test-suite's markers select what they say: ``-m e2e`` exactly the browser tests under
``tests/e2e/`` (marked by ``tests/conftest.py``'s collection hook), and unknown markers are
errors (``--strict-markers``). Checked by collecting in a fresh pytest process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _collect(*args: str) -> subprocess.CompletedProcess:
    """``pytest --collect-only -q`` with ``args`` in a fresh process, from the project root."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ids(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_e2e_marker_selects_exactly_the_browser_tests():
    in_folder = _ids(_collect("tests/e2e"))
    marked = _ids(_collect("-m", "e2e", "tests"))
    assert in_folder, "no browser tests collected under tests/e2e"
    assert all(i.startswith("tests/e2e/") for i in in_folder)
    assert marked == in_folder


@pytest.mark.slow
def test_unknown_markers_are_errors(tmp_path):
    module = tmp_path / "test_typo.py"
    module.write_text("import pytest\n\n\n@pytest.mark.slwo\ndef test_x():\n    pass\n")
    result = _collect("-c", str(ROOT / "pyproject.toml"), str(module))
    assert result.returncode != 0
    assert "'slwo' not found in `markers` configuration option" in result.stdout + result.stderr
