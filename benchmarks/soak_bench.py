"""Soak benchmark: visitors come and go for a bounded time; does the server's memory level off?

Run from the repository root: ``python benchmarks/soak_bench.py`` (``--minutes 8`` by default,
at most 10). Everything stays on this machine (loopback only).

One ``streamlit run app.py`` server (the browser tests' harness, ``tests/e2e/harness.py``;
ResNet50 with random weights from a local file, ``tests/imagenet_weights.py``; a 10 s
``server.disconnectedSessionTTL`` so that closed sessions are cleaned up within the run) is
visited in *waves*. Each wave opens four new browser contexts (four new sessions) at once,
each doing one page's work, then closes them all:

- classify: the Classify page's sample photo, until ResNet50's top-5 guesses are drawn;
- train: a tiny MNIST training (500 images, 1 epoch), until it has finished;
- lab: the Convolution lab, two kernel changes and a stride change, each drawn;
- maps: ResNet50's feature maps of the sample photo, until the layer's maps are drawn.

A sampler thread reads the server process's resident memory (``VmRSS`` in
``/proc/<pid>/status``) every ``--sample-seconds``, and that of the server with its child
processes (each training runs in its own, ``cnnlib.training.task_process``). The first ``--warmup``
waves load TensorFlow, ResNet50 and the caches; growth of the server's RSS is measured from
the median of the samples during the last warm-up wave to the median of the last three
samples of the run, taken after a final pause of ``TTL`` + ``GC_EVERY_SECONDS`` (the
server's cleanup: a session is released ``TTL`` seconds after its tab closed, and its memory
freed by the next garbage collection, at most ``GC_EVERY_SECONDS`` later), so that the last
wave's sessions have been released and freed.

Prints the RSS series (seconds, MB), one row per wave, and the targets (issue 10):

- ``TARGET soak_rss_growth_pct <growth> <= 10``
- ``TARGET soak_exceptions <count> <= 0`` (``stException`` boxes seen on any page)
- ``TARGET soak_lost_sessions <count> <= 0`` (sessions whose work never finished)
- ``TARGET soak_server_tracebacks <count> <= 0`` (tracebacks in the server's log: errors no
  page showed, e.g. in a session's cleanup)

Exits 1 if any target fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.targets import report_targets  # noqa: E402
from cnnlib.models.pretrained import RESNET50  # noqa: E402
from cnnlib.training.task_process import process_rss_bytes  # noqa: E402
from tests.e2e.harness import VIEWPORT, launch_chromium, streamlit_server, wait_idle  # noqa: E402
from tests.imagenet_weights import resnet50_weights_file  # noqa: E402
from ui.session_cleanup import GC_EVERY_SECONDS  # noqa: E402

MAX_MINUTES = 10
GROWTH_LIMIT_PCT = 10.0
TTL_SECONDS = 10
#: Milliseconds one session's work may take before it counts as lost.
ACTION_MS = 240_000
EXCEPTION = '[data-testid="stException"]'


# ------------------------------------------------------------------------------ the server's RSS


def server_pid() -> int:
    """The pid of the ``streamlit run`` child process this benchmark started."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"streamlit" in cmdline:
            return int(entry.name)
    raise RuntimeError("the streamlit server process was not found")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (10^6 bytes), from ``/proc/<pid>/status``."""
    return (process_rss_bytes(pid) or 0) / 1e6


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class Sampler(threading.Thread):
    """(seconds since start, server RSS MB, server + children RSS MB) every ``every`` seconds
    until ``done``."""

    def __init__(self, pid: int, every: float):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.start_time = time.monotonic()
        self.samples: list[tuple[float, float]] = []
        self.tree: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            server = rss_mb(self.pid)
            tree = server + sum(rss_mb(c) for c in children(self.pid))
            self.samples.append((time.monotonic() - self.start_time, server))
            self.tree.append(tree)
            self.done.wait(self.every)

    def now(self) -> float:
        return time.monotonic() - self.start_time


# ------------------------------------------------------------------------------ one wave


@dataclass
class Visit:
    """One session's work: ``begin`` opens and triggers it, ``finish`` waits for its result."""

    name: str
    page: object = None
    error: str = ""
    exceptions: int = 0


@dataclass
class Wave:
    index: int
    start: float
    seconds: float = 0.0
    visits: list[Visit] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(1 for v in self.visits if v.error)

    @property
    def exceptions(self) -> int:
        return sum(v.exceptions for v in self.visits)


def _open(browser, url: str, title: str | None):
    context = browser.new_context(viewport={**VIEWPORT, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(ACTION_MS)
    page.goto(url)
    wait_idle(page, timeout=ACTION_MS)
    if title:
        page.locator('[data-testid="stSidebar"]').get_by_text(title).click()
    return page


def _choose(page, label: str, option: str) -> None:
    wait_idle(page, timeout=ACTION_MS)
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page, timeout=ACTION_MS)


def begin(browser, url: str, name: str):
    if name == "classify":
        return _open(browser, url, "Classify with ResNet50")
    if name == "maps":
        page = _open(browser, url, "Feature maps")
        page.get_by_text("ResNet50 (ImageNet)", exact=True).click()
        return page
    if name == "lab":
        return _open(browser, url, "Convolution lab")
    page = _open(browser, url, "Train on MNIST")
    page.get_by_text("Train a convnet on MNIST").first.wait_for()
    wait_idle(page, timeout=ACTION_MS)
    page.get_by_role("tab", name="② Train").click()
    box = page.get_by_label("Epochs", exact=True)
    box.fill("1")
    box.press("Enter")
    wait_idle(page, timeout=ACTION_MS)
    page.locator('input[type="range"][aria-label="Training images"]').focus()
    page.keyboard.press("Home")
    wait_idle(page, timeout=ACTION_MS)
    page.get_by_role("button", name="Start training").click()
    return page


def finish(page, name: str) -> None:
    if name == "classify":
        page.get_by_text("4 · ResNet50's top-5 guesses").wait_for()
    elif name == "maps":
        page.get_by_role("tab", name="Activations").wait_for()
    elif name == "lab":
        page.get_by_text("Share this setup").first.wait_for()
        for kernel in ("gaussian blur", "sobel x"):
            _choose(page, "Kernel", kernel)
        group = page.get_by_role("radiogroup", name="Stride", exact=True)
        group.locator('[data-testid="stRadioOption"]').filter(has_text="2").first.click()
    else:
        page.get_by_text("Finished ·", exact=False).first.wait_for()
    wait_idle(page, timeout=ACTION_MS)


def run_wave(browser, url: str, index: int, sampler: Sampler) -> Wave:
    wave = Wave(index, sampler.now())
    for name in ("classify", "train", "lab", "maps"):
        visit = Visit(name)
        wave.visits.append(visit)
        try:
            visit.page = begin(browser, url, name)
        except Exception as err:  # a benchmark records every failure and goes on
            visit.error = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    for visit in wave.visits:
        if visit.page is None:
            continue
        try:
            if not visit.error:
                finish(visit.page, visit.name)
        except Exception as err:
            visit.error = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        visit.exceptions = visit.page.locator(EXCEPTION).count()
        visit.page.context.close()
    wave.seconds = sampler.now() - wave.start
    return wave


# ------------------------------------------------------------------------------ report


def growth_pct(samples: list[tuple[float, float]], warm_from: float, warm_to: float) -> float:
    """Growth from the median RSS during the last warm-up wave to that of the last 3 samples."""
    base = [mb for t, mb in samples if warm_from <= t <= warm_to] or [samples[0][1]]
    end = [mb for _, mb in samples[-3:]]
    return 100.0 * (statistics.median(end) - statistics.median(base)) / statistics.median(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="run time (at most 10)")
    parser.add_argument("--warmup", type=int, default=2, help="waves before measuring growth")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    args = parser.parse_args()
    minutes = min(max(args.minutes, 1.0), MAX_MINUTES)
    from playwright.sync_api import sync_playwright

    # A plain `kill` still stops the server and the browser (the `with` blocks' exits run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    env = {
        "CNNLAB_MAX_TRAININGS": "2",
        "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(TTL_SECONDS),
        RESNET50.env_var: str(resnet50_weights_file()),
    }
    log = Path(tempfile.mkdtemp(prefix="cnnlab-soak-")) / "streamlit.log"
    waves: list[Wave] = []
    with streamlit_server("app.py", log=log, env=env) as url, sync_playwright() as pw:
        sampler = Sampler(server_pid(), args.sample_seconds)
        sampler.start()
        browser = launch_chromium(pw)
        # The last sessions' release and collection, then three samples of what stays.
        pause = TTL_SECONDS + GC_EVERY_SECONDS + 3 * args.sample_seconds
        # A wave takes about a minute on a busy machine: start one only if it can end in time.
        end = minutes * 60 - pause
        while not waves or sampler.now() + max(w.seconds for w in waves) < end:
            waves.append(run_wave(browser, url, len(waves) + 1, sampler))
            w = waves[-1]
            print(
                f"wave {w.index:2d} at {w.start:5.0f} s: {w.seconds:5.1f} s, "
                f"lost {w.lost}, exceptions {w.exceptions} "
                + " ".join(f"[{v.name}: {v.error}]" for v in w.visits if v.error),
                flush=True,
            )
        browser.close()
        time.sleep(pause)
        sampler.done.set()
        sampler.join()

    samples = sampler.samples
    tracebacks = log.read_text().count("Traceback")
    print(f"server log: {log} ({tracebacks} tracebacks)")
    print("\nRSS over time (MB)\n\n| s | server | server + trainings |\n|---:|---:|---:|")
    for (t, mb), tree in zip(samples, sampler.tree, strict=True):
        print(f"| {t:.0f} | {mb:.0f} | {tree:.0f} |")
    print("\n| wave | start s | seconds | sessions | lost | exceptions |")
    print("|---:|---:|---:|---:|---:|---:|")
    for w in waves:
        print(
            f"| {w.index} | {w.start:.0f} | {w.seconds:.1f} | {len(w.visits)} | {w.lost} "
            f"| {w.exceptions} |"
        )
    warm = waves[min(args.warmup, len(waves)) - 1]
    growth = growth_pct(samples, warm.start, warm.start + warm.seconds)
    sessions = sum(len(w.visits) for w in waves)
    print(
        f"\n{len(waves)} waves, {sessions} sessions in {samples[-1][0]:.0f} s; RSS "
        f"{samples[0][1]:.0f} MB at start, {max(mb for _, mb in samples):.0f} MB peak, "
        f"{samples[-1][1]:.0f} MB at the end; growth after warm-up (wave {warm.index}) "
        f"{growth:.1f} %. With the trainings' processes: {max(sampler.tree):.0f} MB peak."
    )
    return report_targets(
        [
            ("soak_rss_growth_pct", growth, GROWTH_LIMIT_PCT),
            ("soak_exceptions", float(sum(w.exceptions for w in waves)), 0),
            ("soak_lost_sessions", float(sum(w.lost for w in waves)), 0),
            ("soak_server_tracebacks", float(tracebacks), 0),
        ],
        digits=1,
    )


if __name__ == "__main__":
    sys.exit(main())
