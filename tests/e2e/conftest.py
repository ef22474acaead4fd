"""Browser-test harness: one ``streamlit run app.py`` server per test module, driven by
Playwright through Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``).
The server and browser code lives in ``tests/e2e/harness.py`` (the interaction benchmark
uses it too); every test here is marked ``e2e`` by ``tests/conftest.py``.

Screenshots go to the test's temporary folder; set ``CNNLAB_SCREENSHOTS`` to a folder to
keep a copy (the README's screenshot comes from there).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnlib.models.pretrained import RESNET50
from tests.conftest import IN_CI
from tests.e2e.axe import AXE
from tests.e2e.harness import (
    CHROMIUM,
    VIEWPORT,
    ServerError,
    assert_no_traceback,
    launch_chromium,
    no_exception,
    streamlit_server,
    wait_idle,
)
from tests.imagenet_weights import resnet50_weights_file

__all__ = ["no_exception", "screenshot", "wait_idle"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    """Start ``streamlit run app.py`` on a free port for this module; yield its URL. When the
    module is done, its server's log must hold no traceback."""
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    try:
        with streamlit_server("app.py", log=log) as url:
            yield url
    except ServerError as err:
        pytest.fail(str(err))
    assert_no_traceback(log)


@pytest.fixture(scope="module")
def local_weights_env():
    """CNNLAB_RESNET50_WEIGHTS (random ResNet50 weights in a local file) in os.environ for as
    long as the module's server runs. A module opts in by overriding ``app_url`` to request it
    first: ``def app_url(local_weights_env, app_url): return app_url``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RESNET50.env_var, str(resnet50_weights_file()))
        yield


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's ``axe.min.js`` (``.ci/run`` installs it from npm; fails in CI if missing)."""
    if not AXE.exists():
        message = f"axe-core not found at {AXE} (.ci/run installs it: npm install axe-core@4)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium under Playwright (fails in CI if either is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (requirements-dev.txt)")
        pytest.skip("playwright is not installed")
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("/usr/bin/chromium is missing (apt-get install chromium)")
        pytest.skip("/usr/bin/chromium is missing")
    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page (its own Streamlit session) at 1400×1000."""
    context = browser.new_context(viewport=VIEWPORT)
    context.grant_permissions(["camera"])
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """Full-page screenshot in the test's temp dir (and in $CNNLAB_SCREENSHOTS if set)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("CNNLAB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path
