"""Benchmark: how long a click takes until its new content is shown, in a real browser.

Run from the repository root: ``python benchmarks/interaction_bench.py`` (5–10 minutes,
depending on the machine's load; ``--clicks N`` per control, ``--page lab|mnist`` for one
page only, ``--control NAME`` for some controls only, ``--no-first-open``).

Two Streamlit servers run side by side: the app (``streamlit run app.py``, started by the
browser tests' own harness, ``tests/e2e/harness.py``) and the *floor*: a one-radio app whose
radio swaps one 256×256 image, written to a temporary folder: Streamlit's own cost of a
rerun that changes an image, on this machine, in the same run. Playwright drives Debian's
Chromium (``/usr/bin/chromium``) with the browser tests' flags, 1400×1000 window.

One sample = from the press (``pointerdown`` or ``keydown``, time-stamped in the page) until
the page shows its new content: the rerun has finished (``data-test-script-state`` is not
``running`` and no running icon is left), no grey placeholder (``stSkeleton``) is left,
every image in the main area has loaded (``complete`` with a natural size), and nothing has
changed for ``QUIET_MS``. The sample's end is the last change before that quiet spell: a
DOM mutation or an image's ``load`` event, whichever came last. A script that is idle early
but whose images are still being fetched is therefore not counted as done (stopping at the
script's end measures the wrong thing). A press that changes nothing within 10 s is reported
as such, never counted as 0 ms.

Controls are found by their label text (the pages change; a control not found is reported
as ``skipped: not found``), each pressed N times alternating between two values, from its
default; it is put back to its default afterwards. The floor is measured before and after
the app's controls, and its median is the reference. Targets (issue 17): every control's
median ÷ the floor's median ≤ 3, and the lab's first open (navigation start → every image
shown, no placeholder) ≤ 2.5 s; one ``TARGET`` line each; exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.targets import report_targets  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    RUNNING_JS,
    VIEWPORT,
    launch_chromium,
    streamlit_server,
    wait_idle,
)

#: Each control's median may be at most this many times the floor's median.
RATIO_LIMIT = 3.0
#: The lab's first open (navigation → every image shown, no placeholder), ms.
FIRST_OPEN_LIMIT_MS = 2_500.0
CLICKS = 9
#: A press that has changed nothing after this long changed nothing.
START_GRACE_MS = 10_000
#: The page counts as done once it has been settled and unchanged this long.
QUIET_MS = 300

FLOOR_APP = """import io

import numpy as np
import streamlit as st
from PIL import Image


@st.cache_data
def picture(choice: str) -> bytes:
    y, x = np.mgrid[0:256, 0:256]
    phase = 0 if choice == "a" else 1
    rgb = np.stack([(x + 64 * phase) % 256, (y * 2) % 256, (x ^ y) % 256], -1)
    out = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


choice = st.radio("Floor choice", ["a", "b"], horizontal=True)
st.image(picture(choice), caption=f"Picture {choice}")
"""

# Installed in every page before its scripts run (``add_init_script``). ``arm()`` resets the
# record; the first press after it is t0 (the first open uses navigation start, 0).
# ``last``: the time of the latest DOM mutation or image load in the page.
OBSERVER_JS = """(() => {
    if (window.__bench) return;
    const b = window.__bench = {armed: true, t0: 0, last: null, changed: false};
    const main = () => document.querySelector('[data-testid="stMain"]') || document.body;
    b.settled = () => {
        const app = document.querySelector('[data-testid="stApp"]');
        if (!app || app.getAttribute('data-test-script-state') === 'running') return false;
        if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return false;
        if (document.querySelector('[data-testid="stSkeleton"]')) return false;
        for (const img of main().querySelectorAll('img')) {
            if (!img.complete || img.naturalWidth === 0) return false;
        }
        return !!main().querySelector('h1, [data-testid="stRadio"]');
    };
    b.arm = () => Object.assign(b, {armed: true, t0: null, last: null, changed: false});
    const press = () => { if (b.armed && b.t0 === null) b.t0 = performance.now(); };
    const seen = () => {
        if (!b.armed || b.t0 === null) return;
        b.last = performance.now();
        b.changed = true;
    };
    document.addEventListener('pointerdown', press, true);
    document.addEventListener('keydown', press, true);
    document.addEventListener('load', (e) => { if (e.target.tagName === 'IMG') seen(); }, true);
    const start = () => new MutationObserver(seen).observe(document.documentElement, {
        attributes: true, childList: true, characterData: true, subtree: true,
    });
    if (document.documentElement) start(); else addEventListener('DOMContentLoaded', start);
})()"""

# True once the sample is over: the page changed, is settled and has been still QUIET_MS;
# or nothing changed for the grace period.
DONE_JS = f"""() => {{
    const b = window.__bench, now = performance.now();
    if (!b || b.t0 === null) return false;
    if (!b.changed) return now - b.t0 > {START_GRACE_MS};
    return now - b.last > {QUIET_MS} && b.settled();
}}"""


@dataclass
class Sample:
    """One press: ms from the press until the new content was shown."""

    end_ms: float


@dataclass
class Control:
    """One widget, found by its label; ``kind``: radio, select, slider, toggle, number, buttons."""

    page: str
    name: str
    kind: str
    label: str
    values: tuple[str, ...] = ()  # radio/select: preferred pair; buttons: the two labels
    tab: str | None = None
    samples: list[Sample] = field(default_factory=list)
    note: str = ""


LAB = "lab"
MNIST = "mnist"
#: The lab's "Go further" tabs that hold controls (only the open tab is drawn).
GRID_TAB, TRANSPOSED_TAB = "5 · Small grid", "7 · Transposed convolution"
CONTROLS = [
    Control(LAB, "image_source", "radio", "Image source", ("Sample", "Upload")),
    Control(LAB, "sample_image", "select", "Sample image"),
    Control(LAB, "grayscale", "toggle", "Grayscale"),
    Control(LAB, "downscale", "select", "Downscale the longest side to"),
    Control(LAB, "kernel_preset", "select", "Kernel"),
    Control(LAB, "kernel_rows", "select", "Kernel rows", ("3", "5")),
    Control(LAB, "kernel_columns", "select", "Kernel columns", ("3", "5")),
    Control(LAB, "padding", "radio", "Padding", ("valid", "same")),
    Control(LAB, "padding_full", "radio", "Padding", ("valid", "full")),
    Control(LAB, "stride", "radio", "Stride", ("1", "2")),
    Control(LAB, "dilation", "radio", "Dilation", ("1", "2")),
    Control(LAB, "colour_scale", "radio", "Colour scale"),
    Control(LAB, "output_row", "slider", "Output row"),
    Control(LAB, "output_column", "slider", "Output column"),
    Control(LAB, "grid_size", "select", "Grid size n×n", tab=GRID_TAB),
    Control(LAB, "grid_kernel", "select", "Kernel k×k", tab=GRID_TAB),
    Control(LAB, "grid_step_buttons", "buttons", "Step", ("◀ Step", "Step ▶"), tab=GRID_TAB),
    Control(LAB, "grid_output_cell", "slider", "Output cell (row by row)", tab=GRID_TAB),
    Control(LAB, "transposed_input", "select", "Transposed: input i×i", tab=TRANSPOSED_TAB),
    Control(LAB, "transposed_kernel", "select", "Transposed: kernel k×k", tab=TRANSPOSED_TAB),
    Control(
        LAB, "transposed_stride", "select", "Transposed: stride s", ("2", "3"), tab=TRANSPOSED_TAB
    ),
    Control(
        LAB,
        "transposed_padding",
        "radio",
        "Transposed: padding",
        ("valid", "same"),
        tab=TRANSPOSED_TAB,
    ),
    Control(LAB, "transposed_input_cell", "slider", "Input cell (row by row)", tab=TRANSPOSED_TAB),
    Control(MNIST, "dataset", "radio", "Dataset"),
    Control(MNIST, "preset", "select", "Start from a preset", tab="① Model"),
    Control(MNIST, "optimizer", "select", "Optimizer", tab="② Train"),
    Control(MNIST, "learning_rate", "slider", "Learning rate", tab="② Train"),
    Control(MNIST, "batch_size", "select", "Batch size", tab="② Train"),
    Control(MNIST, "epochs", "number", "Epochs", tab="② Train"),
    Control(MNIST, "lr_schedule", "select", "Learning-rate schedule", tab="② Train"),
    Control(MNIST, "training_images", "slider", "Training images", tab="② Train"),
    Control(MNIST, "validation_split", "slider", "Validation split", tab="② Train"),
]
PAGE_PATHS = {LAB: "convolution_lab", MNIST: "train_mnist"}


class NotFound(Exception):
    """The control's label (or one of its values) is not on the page."""


# ------------------------------------------------------------------------------ measuring


def settle(page) -> None:
    """Wait until the page is settled (see ``OBSERVER_JS``) and no rerun starts 150 ms later."""
    for _ in range(50):
        page.wait_for_function(f"() => !({RUNNING_JS})()", timeout=120_000, polling=20)
        page.wait_for_function("() => window.__bench.settled()", timeout=120_000, polling=20)
        page.wait_for_timeout(150)
        if not page.evaluate(RUNNING_JS):
            return


def measure(page, prepare: Callable[[], Callable[[], None]]) -> Sample | None:
    """The press that ``prepare()``'s action makes, timed; None if it changed nothing.
    ``prepare`` does what comes before the press (open a list, focus a slider)."""
    settle(page)
    fire = prepare()
    page.evaluate("() => window.__bench.arm()")
    fire()
    page.wait_for_function(DONE_JS, timeout=120_000, polling=20)
    b = page.evaluate(
        "() => { const b = window.__bench; b.armed = false;"
        " return {t0: b.t0, last: b.last, changed: b.changed}; }"
    )
    if not b["changed"]:
        return None
    return Sample(b["last"] - b["t0"])


# ------------------------------------------------------------------------------ widgets


def _first(locator, what: str):
    if locator.count() == 0:
        raise NotFound(what)
    return locator.first


def _pick_pair(options: list[str], current: str, preferred: tuple[str, ...]) -> list[str]:
    """[current, other]: the preferred pair when it holds ``current``, else the next option."""
    if len(options) < 2:
        raise NotFound(f"fewer than two options: {options}")
    if current in preferred and all(v in options for v in preferred):
        other = next(v for v in preferred if v != current)
    else:
        other = options[(options.index(current) + 1) % len(options)]
    return [current, other]


def _radio_actions(page, c: Control):
    group = _first(page.get_by_role("radiogroup", name=c.label, exact=True), c.label)
    labels = group.locator("label")
    options = [t.strip() for t in labels.all_inner_texts()]
    checked = group.evaluate("g => [...g.querySelectorAll('input')].findIndex(i => i.checked)")
    pair = _pick_pair(options, options[checked], c.values)

    def press(value: str):
        def prepare():
            return lambda: labels.nth(options.index(value)).click()

        return prepare

    return [press(v) for v in pair]


def _select_actions(page, c: Control):
    box = _first(page.get_by_role("combobox", name=c.label, exact=True), c.label)
    box.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box.click()
    listbox = page.get_by_role("listbox")
    listbox.wait_for(timeout=10_000)
    opts = listbox.get_by_role("option")
    options = [t.strip() for t in opts.all_inner_texts()]
    selected = opts.evaluate_all(
        "os => os.findIndex(o => o.getAttribute('aria-selected') === 'true')"
    )
    page.keyboard.press("Escape")
    pair = _pick_pair(options, options[max(selected, 0)], c.values)

    def press(value: str):
        def prepare():
            box.click()
            option = page.get_by_role("listbox").get_by_role("option", name=value, exact=True)
            option.wait_for(timeout=10_000)
            return option.click

        return prepare

    return [press(v) for v in pair]


def _slider_actions(page, c: Control):
    thumb = _first(page.locator(f'input[type="range"][aria-label="{c.label}"]'), c.label)
    at_max = thumb.evaluate("t => Number(t.value) >= Number(t.max)")
    # [back to the default, away from it]
    keys = ["ArrowRight", "ArrowLeft"] if at_max else ["ArrowLeft", "ArrowRight"]

    def press(key: str):
        def prepare():
            thumb.focus()
            return lambda: page.keyboard.press(key)

        return prepare

    return [press(k) for k in keys]


def _toggle_actions(page, c: Control):
    box = page.locator('[data-testid="stCheckbox"]').filter(has_text=c.label)
    label = _first(box, c.label).locator("label").first

    def prepare():
        return label.click

    return [prepare, prepare]


def _number_actions(page, c: Control):
    box = _first(page.get_by_label(c.label, exact=True), c.label)
    current = float(box.input_value())
    top = box.get_attribute("max") or box.get_attribute("aria-valuemax")
    away = current - 1 if top is not None and current + 1 > float(top) else current + 1

    def press(value: float):
        def prepare():
            box.fill(f"{value:g}")
            return lambda: box.press("Enter")

        return prepare

    return [press(current), press(away)]


def _button_actions(page, c: Control):
    buttons = [_first(page.get_by_role("button", name=name, exact=True), name) for name in c.values]
    return [(lambda b=b: b.click) for b in buttons]


#: kind → function(page, control) returning two prepare-functions: [back to the default,
#: away from it]; raises NotFound when the label (or a value) is not on the page.
ACTIONS = {
    "radio": _radio_actions,
    "select": _select_actions,
    "slider": _slider_actions,
    "toggle": _toggle_actions,
    "number": _number_actions,
    "buttons": _button_actions,
}


# ------------------------------------------------------------------------------ pages


def open_page(context, url: str, path: str = ""):
    """A fresh session on ``url/path`` (after the home page, as a visitor comes), once its
    first run has finished and its content is shown."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_idle(page, timeout=180_000)
    if path:
        page.goto(f"{url}/{path}")
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=180_000)
        wait_idle(page, timeout=180_000)
    settle(page)
    return page


def first_open_ms(context, url: str, path: str) -> float:
    """ms from navigation start until ``url/path`` shows every image with no placeholder
    (a new session of a warm server)."""
    page = context.new_page()
    page.goto(f"{url}/{path}")
    page.wait_for_function(DONE_JS, timeout=180_000, polling=20)
    last = page.evaluate("() => window.__bench.last")
    page.close()
    return float(last)


def sidebar_open_ms(context, url: str, title: str) -> float:
    """ms from the click on ``title`` in Home's sidebar until that page shows every image
    with no placeholder (a new session's first visit of it, Streamlit's code already loaded:
    the way a visitor usually arrives). Printed for reference; the target is the direct
    open."""
    page = open_page(context, url)
    page.evaluate("() => window.__bench.arm()")
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.wait_for_function(DONE_JS, timeout=180_000, polling=20)
    ms = page.evaluate("() => window.__bench.last - window.__bench.t0")
    page.close()
    return float(ms)


def run_control(page, c: Control, clicks: int) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    """Measure ``clicks`` presses of ``c`` alternating between two values; restore its default."""
    try:
        if c.tab:
            _first(page.get_by_role("tab", name=c.tab, exact=True), c.tab).click()
            settle(page)
        actions = ACTIONS[c.kind](page, c)
    except NotFound as missing:
        c.note = f"skipped: not found ({missing})"
        return
    except PlaywrightTimeout as err:  # e.g. a dropdown that never opened: report, go on
        page.keyboard.press("Escape")
        c.note = f"skipped: timed out ({str(err).splitlines()[0][:80]})"
        return
    for i in range(clicks):
        sample = measure(page, actions[(i + 1) % 2])
        if sample is None:
            c.note = "a press changed nothing"
            break
        c.samples.append(sample)
    if len(c.samples) % 2 and not c.note:
        measure(page, actions[0])  # back to the default, unmeasured


def run_floor(context, url: str, floor: Control, clicks: int) -> None:
    """Measure the one-radio app in a fresh session; add to ``floor.samples``."""
    page = open_page(context, url)
    run_control(page, floor, clicks)
    page.close()
    if not floor.samples:
        raise SystemExit(f"the floor app could not be measured: {floor.note}")


# ------------------------------------------------------------------------------ main


def _row(c: Control, floor_ms: float) -> str:
    if not c.samples:
        return f"| {c.page}: {c.name} | | | | {c.note.strip()} |"
    ends = [s.end_ms for s in c.samples]
    med = statistics.median(ends)
    return (
        f"| {c.page}: {c.name} | {med:.0f} | {max(ends):.0f} | {med / floor_ms:.1f}× | "
        f"{len(ends)} {c.note} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=CLICKS)
    parser.add_argument("--page", choices=[LAB, MNIST], action="append")
    parser.add_argument(
        "--control", action="append", help="only this control (by name; repeatable)"
    )
    parser.add_argument("--no-first-open", action="store_true", help="skip the lab's first open")
    args = parser.parse_args()
    pages = args.page or [LAB, MNIST]
    controls = [c for c in CONTROLS if c.page in pages]
    if args.control:
        controls = [c for c in controls if c.name in args.control]
        pages = [p for p in pages if any(c.page == p for c in controls)]

    from playwright.sync_api import sync_playwright

    floor = Control("floor", "one_radio", "radio", "Floor choice")
    started = time.perf_counter()
    opens: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-interaction-") as tmp:
        tmp = Path(tmp)
        (tmp / "floor_app.py").write_text(FLOOR_APP)
        with (
            streamlit_server("app.py", log=tmp / "app.log") as app_url,
            streamlit_server(tmp / "floor_app.py", log=tmp / "floor.log", cwd=tmp) as floor_url,
            sync_playwright() as pw,
        ):
            browser = launch_chromium(pw)
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(OBSERVER_JS)
            run_floor(context, floor_url, floor, args.clicks)
            print(f"  floor: {sorted(round(s.end_ms) for s in floor.samples)} ms", flush=True)
            if LAB in pages and not args.no_first_open:
                open_page(context, app_url, PAGE_PATHS[LAB]).close()  # warm the server
                opens = [first_open_ms(context, app_url, PAGE_PATHS[LAB]) for _ in range(3)]
                print(f"  lab first open: {', '.join(f'{ms:.0f}' for ms in opens)} ms")
                via = [sidebar_open_ms(context, app_url, "Convolution lab") for _ in range(3)]
                shown = ", ".join(f"{ms:.0f}" for ms in via)
                print(f"  lab opened from Home's sidebar: {shown} ms")
                floor_opens = [first_open_ms(context, floor_url, "") for _ in range(3)]
                print(  # the same measure on the floor app: Streamlit's own start in a tab
                    f"  floor app first open: {', '.join(f'{ms:.0f}' for ms in floor_opens)} ms"
                )
            for name in pages:
                page = open_page(context, app_url, PAGE_PATHS[name])
                for c in (c for c in controls if c.page == name):
                    run_control(page, c, args.clicks)
                    ends = sorted(s.end_ms for s in c.samples)
                    shown = f"median {statistics.median(ends):.0f} ms of {ends}" if ends else ""
                    print(f"  {c.page}/{c.name}: {c.note or shown}", flush=True)
                page.close()
            run_floor(context, floor_url, floor, args.clicks)
            browser.close()

    floor_ms = statistics.median(s.end_ms for s in floor.samples)
    print(f"\nPress → new content shown, ms ({time.perf_counter() - started:.0f} s in all)\n")
    print("| control | median | max | ÷ floor | presses |")
    print("|---|---:|---:|---:|---|")
    for c in [floor, *controls]:
        print(_row(c, floor_ms))
    targets = [
        (
            f"interaction_{c.page}_{c.name}_ratio_to_floor",
            statistics.median(s.end_ms for s in c.samples) / floor_ms,
            RATIO_LIMIT,
        )
        for c in controls
        if c.samples
    ]
    if opens:
        targets.append(("lab_first_open_ms", statistics.median(opens), FIRST_OPEN_LIMIT_MS))
    return report_targets(targets, digits=2)


if __name__ == "__main__":
    sys.exit(main())
