"""axe-core in a real browser: run it on a page, in the light and the dark theme, and report
the serious and critical WCAG 2.1 A/AA violations (``tests/e2e/test_accessibility.py``,
``tests/e2e/test_classify.py``). No fixtures here: ``axe_source`` is in ``conftest.py``.

axe-core comes from npm (``.ci/run`` installs it into ``.ci/axe``; ``CNNLAB_AXE`` may name
another ``axe.min.js``). ``EXEMPT`` lists the only violations let through, each with its
reason (also in the README's "Accessibility" section).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import ROOT
from tests.e2e.harness import no_exception, wait_idle

AXE = Path(os.environ.get("CNNLAB_AXE", ROOT / ".ci/axe/node_modules/axe-core/axe.min.js"))
#: The WCAG 2.0 and 2.1 A/AA rule sets of axe-core.
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: Exempt violations, by rule: the reason, and a JavaScript test of the failing element.
EXEMPT = {
    "color-contrast": (
        "WCAG 1.4.3 exempts the text of inactive controls: the label of a disabled widget "
        "(e.g. Backbone while From scratch is chosen) is drawn faded by Streamlit on purpose; "
        "axe does not link Streamlit's label to the disabled input, so it reports it.",
        """el => { const box = el.closest('[data-testid="stElementContainer"], .element-container');
                   return !!box && !!box.querySelector(
                       'input:disabled, button:disabled, [aria-disabled="true"]'); }""",
    ),
}
#: Runs axe on the document; returns [{id, impact, help, nodes: [{target, html, summary}]}]
#: of the serious and critical violations that are not exempt.
RUN_AXE = """async ([tags, exempt]) => {
    const tests = Object.fromEntries(Object.entries(exempt).map(([id, f]) => [id, eval(f)]));
    const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                       resultTypes: ['violations'], elementRef: true});
    return r.violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.filter(n => !(tests[v.id] && tests[v.id](n.element)))
                                  .map(n => ({target: n.target.join(' '), html: n.html,
                                              summary: n.failureSummary}))}))
        .filter(v => v.nodes.length);
}"""
#: Test-only: no CSS transitions, so a theme switch is complete when axe reads the colours.
STILL = "*, *::before, *::after { transition: none !important; animation: none !important; }"
#: All images loaded and no element still a loading skeleton.
SETTLED = """() => [...document.images].every(i => i.complete)
    && !document.querySelector('[data-testid="stSkeleton"]')"""
#: The app's background is dark (for the theme that was asked for).
DARK = """() => { const c = getComputedStyle(document.querySelector('[data-testid="stApp"]'))
    .backgroundColor.match(/\\d+/g).map(Number); return c[0] + c[1] + c[2] < 200; }"""


def settle(page) -> None:
    """Wait for the script run to finish, the images to load and the skeletons to go."""
    wait_idle(page, timeout=180_000)
    page.wait_for_function(SETTLED, timeout=60_000)
    page.wait_for_timeout(300)


def axe_violations(page, axe_source: str) -> list[dict]:
    """The page's serious and critical WCAG 2.1 A/AA violations now (``EXEMPT`` left out)."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(content=axe_source)
        page.add_style_tag(content=STILL)
    exempt = {rule: test for rule, (_, test) in EXEMPT.items()}
    return page.evaluate(RUN_AXE, [WCAG, exempt])


#: Height of the page's content (Streamlit scrolls inside its main container).
CONTENT_HEIGHT = """() => document.querySelector('[data-testid="stMain"]').scrollHeight"""


def show_everything(page) -> None:
    """Make the window as tall as the page: axe checks contrast only of what lies in the
    viewport, and Streamlit scrolls inside its own container, so a normal window would leave
    everything below the fold unchecked."""
    size = page.viewport_size
    for _ in range(3):  # a taller window can lay the page out taller (wrapping, plots)
        height = max(size["height"], int(page.evaluate(CONTENT_HEIGHT)) + 40)
        if height == page.viewport_size["height"]:
            break
        page.set_viewport_size({"width": size["width"], "height": min(height, 16_000)})
        page.wait_for_timeout(300)


def check(page, axe_source: str, where: str, problems: list[str]) -> None:
    """axe on the whole page (``show_everything``) in the light and the dark theme (the
    browser's preference, which the app follows); each violation is added to ``problems`` as
    a readable line. The window keeps its new height."""
    show_everything(page)
    settle(page)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_function(DARK if scheme == "dark" else f"() => !({DARK})()")
        for v in axe_violations(page, axe_source):
            for n in v["nodes"]:
                summary = " ".join(n["summary"].split())
                problems.append(
                    f"{where} ({scheme}): {v['impact']} {v['id']}: {n['html'][:160]} — "
                    f"{summary[:300]}"
                )
    page.emulate_media(color_scheme="light")


def check_tabs(page, axe_source: str, where: str, problems: list[str]) -> None:
    """``check`` each tab of the page (``where``: the page's name), the open one first."""
    tabs = page.get_by_role("tab")
    order = sorted(
        range(tabs.count()), key=lambda i: tabs.nth(i).get_attribute("aria-selected") != "true"
    )
    for i in order:
        name = tabs.nth(i).inner_text()
        if tabs.nth(i).get_attribute("aria-selected") != "true":
            tabs.nth(i).click()
            settle(page)
        no_exception(page)
        check(page, axe_source, f"{where}, tab {name}", problems)
