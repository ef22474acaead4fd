"""Start a Streamlit server and drive a page in Chromium: shared by the browser tests
(``tests/e2e/conftest.py``) and ``benchmarks/interaction_bench.py`` (no fixtures here).

Chromium is Debian's (``/usr/bin/chromium``); never ``playwright install``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, SHARED_MNIST

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
#: Browser window of every test page (and of the benchmark).
VIEWPORT = {"width": 1400, "height": 1000}


class ServerError(RuntimeError):
    """The Streamlit server exited or did not answer its health check in time (log attached)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise ServerError(f"streamlit exited early:\n{log.read_text()}")
    raise ServerError(f"streamlit did not start in {timeout:g} s:\n{log.read_text()}")


def assert_no_traceback(log: Path) -> None:
    """Fail, quoting it, if a server's log holds a traceback (an error in a script run, a
    thread or a callback, even one that no page showed)."""
    text = log.read_text()
    if "Traceback" in text:
        at = text.index("Traceback")
        excerpt = text[max(0, at - 300) : at + 3000]
        raise AssertionError(f"the server logged a traceback:\n{excerpt}")


@contextmanager
def streamlit_server(
    script: str | os.PathLike = "app.py",
    *,
    log: Path,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """Run ``streamlit run script`` headless on a free port; yield its URL, then stop it.

    The server reads MNIST from ``$CNNLAB_DATA_DIR`` (default: the shared test set) and writes
    its output to ``log``. Raises ``ServerError`` (with the log) if it does not come up.
    """
    port = free_port()
    env = {
        **os.environ,
        "CNNLAB_DATA_DIR": os.environ.get("CNNLAB_DATA_DIR", str(SHARED_MNIST)),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(env or {}),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(script),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch_chromium(playwright):
    """Headless Debian Chromium with the harness's flags (``playwright.chromium.launch``)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


#: True while Streamlit runs the script (or a fragment): the app's run state is 'running'
#: or the status widget shows its running icon.
RUNNING_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !app || app.getAttribute('data-test-script-state') === 'running'
        || !!document.querySelector('[data-testid="stStatusWidgetRunningIcon"]');
}"""


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished the current script run (no 'running' status)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(f"() => !({RUNNING_JS})()", timeout=timeout)
    page.wait_for_timeout(300)


def no_exception(page) -> None:
    """Fail if the page shows a Streamlit exception box."""
    assert page.locator('[data-testid="stException"]').count() == 0
