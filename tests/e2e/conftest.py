"""Browser-test harness: one ``streamlit run app.py`` server per test module, driven by
Playwright through Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``).

Screenshots go to the test's temporary folder; set ``CNNLAB_SCREENSHOTS`` to a folder to
keep a copy (the README's screenshot comes from there).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, ROOT, SHARED_MNIST

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    """Start ``streamlit run app.py`` on a free port for this module; yield its URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {
        **os.environ,
        "CNNLAB_DATA_DIR": os.environ.get("CNNLAB_DATA_DIR", str(SHARED_MNIST)),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited early:\n{log.read_text()}")
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start in 60 s:\n{log.read_text()}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


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
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page (its own Streamlit session) at 1400×1000."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["camera"])
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current script run (no 'running' status)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') !== 'running'
                && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]');
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """Full-page screenshot in the test's temp dir (and in $CNNLAB_SCREENSHOTS if set)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("CNNLAB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path
