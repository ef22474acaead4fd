"""The training controls in the browser, as the MNIST and the own-images browser tests both
drive them: Pause while the process starts, Step one batch, a new learning rate, Step again
(no fixtures here)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.harness import wait_idle

#: The x positions of the learning-rate marks on the live curves (in epochs).
LR_MARKS = """() => {
    for (const el of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
        if ((el.data || []).some(t => t.name === 'training loss (smoothed)'))
            return ((el.layout || {}).shapes || []).map(s => s.x0);
    }
    return [];
}"""


def pause_step_and_raise_the_rate(page, steps_per_epoch: int) -> None:
    """Press Start, then Pause at once (while the training's process loads TensorFlow);
    Step one batch (the progress says step 1 of ``steps_per_epoch``); raise the rate by two
    notches of the slider and use it; Step again. Checks that each step stops after exactly
    one batch and that the curves mark the new rate after the first batch (at 1 /
    ``steps_per_epoch`` epochs), labelled "lr 0.01". Leaves the training paused."""
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Pause").click()
    page.get_by_text("Paused after 0 batches.").wait_for(timeout=180_000)
    page.get_by_role("button", name="Step one batch").click()
    page.get_by_text("Paused after 1 batch.").wait_for(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text(re.compile(rf"step 1/{steps_per_epoch}"))).to_have_count(1)
    thumb = page.get_by_role("slider", name="Learning rate from the next batch")
    thumb.focus()
    for _ in range(2):  # both pages' runs here: 0.001 or 0.002 → 0.003 → 0.01
        thumb.press("ArrowRight")
    wait_idle(page)
    page.get_by_role("button", name="Use it").click()
    wait_idle(page)
    page.get_by_role("button", name="Step one batch").click()
    page.get_by_text("Paused after 2 batches.").wait_for(timeout=60_000)
    wait_idle(page)
    marks = page.evaluate(LR_MARKS)
    assert marks and all(abs(x - 1 / steps_per_epoch) < 1e-9 for x in marks), marks
    expect(page.get_by_text("lr 0.01").first).to_be_visible()  # the mark's label
