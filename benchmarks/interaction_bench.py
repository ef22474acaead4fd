"""Benchmark: how long a click takes to come back, in a real browser, at the default settings.

Run from the repository root: ``python benchmarks/interaction_bench.py`` (4–8 minutes,
depending on the machine's load; ``--clicks N`` per control, ``--page lab|mnist`` for one
page only).

Two Streamlit servers run side by side: the app (``streamlit run app.py``, started by the
browser tests' own harness, ``tests/e2e/harness.py``) and the *floor*: a one-radio app written
to a temporary folder, Streamlit's own cost of a rerun on this machine. Playwright drives
Debian's Chromium (``/usr/bin/chromium``) with the browser tests' flags, 1400×1000 window.

One sample = from the press (``pointerdown`` or ``keydown``, time-stamped in the page) to the
end of the rerun it caused: a ``MutationObserver`` installed before the press sees the app's
``data-test-script-state`` leave ``notRunning`` (the rerun started) and come back with no
running icon left; that mutation is the end (the table also shows the next animation frame,
"painted"). A rerun that starts within 150 ms of the end (a callback's ``st.rerun``, a
fragment) extends the sample. When React draws a rerun's start and end in one frame (a quick
rerun, or a busy browser), no run state is seen: the end is then the page's last change once
it has been still for 1 s, and the table counts such samples. A press that changes nothing
within 10 s is reported as such, never counted as 0 ms.

Controls are found by their label text (the pages change; a control not found is reported as
``skipped: not found``), each pressed N times alternating between two values, from its
default; it is put back to its default afterwards. The floor is measured before and after the
app's controls. Target (issue 8): the median of every Convolution-lab control and of the Train
on MNIST page's main controls ≤ 250 ms; one ``TARGET`` line per control; exits 1 if any fails.
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

LIMIT_MS = 250.0
CLICKS = 9
#: A press that has not started a rerun after this long started none.
START_GRACE_MS = 10_000
#: A rerun that starts this soon after the previous one ended belongs to the same press.
CHAIN_MS = 150
#: A rerun so quick that React drew 'running' and 'notRunning' in one frame shows no run
#: state: its end is then the page's last change, once the page has been still this long.
DOM_QUIET_MS = 1_000

FLOOR_APP = """import streamlit as st

choice = st.radio("Floor choice", ["a", "b"], horizontal=True)
st.write(f"You chose {choice}.")
"""

# Installed once per page load. ``arm()`` resets the record; the first press after it is t0.
# ``end``: the mutation that showed the run over; ``painted``: the animation frame after it.
OBSERVER_JS = """() => {
    if (window.__bench) return;
    const running = () => {
        const app = document.querySelector('[data-testid="stApp"]');
        return !app || app.getAttribute('data-test-script-state') !== 'notRunning'
            || !!document.querySelector('[data-testid="stStatusWidgetRunningIcon"]');
    };
    const b = window.__bench = {armed: false};
    b.arm = () => Object.assign(b, {armed: true, t0: null, started: null, end: null,
                                    painted: null, last: null});
    const press = () => { if (b.armed && b.t0 === null) b.t0 = performance.now(); };
    document.addEventListener('pointerdown', press, true);
    document.addEventListener('keydown', press, true);
    new MutationObserver(() => {
        if (!b.armed || b.t0 === null) return;
        b.last = performance.now();
        if (running()) {
            if (b.started === null) b.started = performance.now();
            b.end = b.painted = null;  // a chained rerun: not finished yet
        } else if (b.started !== null && b.end === null) {
            const end = b.end = performance.now();
            requestAnimationFrame(() => { if (b.end === end) b.painted = performance.now(); });
        }
    }).observe(document.body, {
        attributes: true, attributeFilter: ['data-test-script-state'],
        childList: true, characterData: true, subtree: true,
    });
}"""

# True once the sample is over: finished, painted and quiet for CHAIN_MS; or no run state
# seen but the page changed and has been still for DOM_QUIET_MS; or nothing for the grace.
DONE_JS = f"""() => {{
    const b = window.__bench, now = performance.now();
    if (b.t0 === null) return false;
    if (b.painted !== null) return now - b.end > {CHAIN_MS};
    if (b.started !== null) return false;
    if (b.last !== null && now - b.last > {DOM_QUIET_MS}) return true;
    return now - b.t0 > {START_GRACE_MS};
}}"""


@dataclass
class Sample:
    """One press: ms to the end of its rerun, ms to the frame painted after it; ``by_dom``
    when no run state was seen and the end is the page's last change."""

    end_ms: float
    painted_ms: float
    by_dom: bool = False


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
    Control(LAB, "grid_size", "select", "Grid size n×n"),
    Control(LAB, "grid_kernel", "select", "Kernel k×k"),
    Control(LAB, "grid_step_buttons", "buttons", "Step", ("◀ Step", "Step ▶")),
    Control(LAB, "grid_output_cell", "slider", "Output cell (row by row)"),
    Control(LAB, "transposed_input", "select", "Transposed: input i×i"),
    Control(LAB, "transposed_kernel", "select", "Transposed: kernel k×k"),
    Control(LAB, "transposed_stride", "select", "Transposed: stride s", ("2", "3")),
    Control(LAB, "transposed_padding", "radio", "Transposed: padding", ("valid", "same")),
    Control(LAB, "transposed_input_cell", "slider", "Input cell (row by row)"),
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
    """Wait until no rerun is running, and none has started 150 ms later."""
    for _ in range(50):
        page.wait_for_function(f"() => !({RUNNING_JS})()", timeout=120_000, polling=20)
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
        " return {t0: b.t0, end: b.end, painted: b.painted, last: b.last}; }"
    )
    if b["end"] is not None:
        return Sample(b["end"] - b["t0"], b["painted"] - b["t0"])
    if b["last"] is not None:
        return Sample(b["last"] - b["t0"], b["last"] - b["t0"], by_dom=True)
    return None


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
    """A fresh session on ``url/path`` (after the home page, as a visitor comes), with the
    observer installed, once the first run has finished."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_idle(page, timeout=180_000)
    if path:
        page.goto(f"{url}/{path}")
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=180_000)
        wait_idle(page, timeout=180_000)
    page.evaluate(OBSERVER_JS)
    settle(page)
    return page


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
        return f"| {c.page}: {c.name} | | | | | {c.note.strip()} |"
    ends = [s.end_ms for s in c.samples]
    painted = statistics.median(s.painted_ms for s in c.samples)
    med = statistics.median(ends)
    dom = sum(s.by_dom for s in c.samples)
    notes = [f"{dom} timed by the page's last change"] if dom else []
    notes += [c.note] if c.note else []
    return (
        f"| {c.page}: {c.name} | {med:.0f} | {max(ends):.0f} | {med / floor_ms:.1f}× | "
        f"{painted:.0f} | {len(ends)} {'; '.join(notes)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=CLICKS)
    parser.add_argument("--page", choices=[LAB, MNIST], action="append")
    args = parser.parse_args()
    pages = args.page or [LAB, MNIST]
    controls = [c for c in CONTROLS if c.page in pages]

    from playwright.sync_api import sync_playwright

    floor = Control("floor", "one_radio", "radio", "Floor choice")
    started = time.perf_counter()
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
            run_floor(context, floor_url, floor, args.clicks)
            for name in pages:
                page = open_page(context, app_url, PAGE_PATHS[name])
                for c in (c for c in controls if c.page == name):
                    run_control(page, c, args.clicks)
                    print(f"  {c.page}/{c.name}: {c.note or f'{len(c.samples)} samples'}")
                page.close()
            run_floor(context, floor_url, floor, args.clicks)
            browser.close()

    floor_ms = statistics.median(s.end_ms for s in floor.samples)
    print(f"\nPress → rerun finished, ms ({time.perf_counter() - started:.0f} s in all)\n")
    print("| control | median | max | ÷ floor | painted (median) | presses |")
    print("|---|---:|---:|---:|---:|---|")
    for c in [floor, *controls]:
        print(_row(c, floor_ms))
    targets = [
        (
            f"interaction_{c.page}_{c.name}_median_ms",
            statistics.median(s.end_ms for s in c.samples),
            LIMIT_MS,
        )
        for c in controls
        if c.samples
    ]
    return report_targets(targets, digits=0)


if __name__ == "__main__":
    sys.exit(main())
