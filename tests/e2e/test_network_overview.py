"""The Network-overview page in a real browser, on one server: a learner's convnet (trained on
real MNIST digits, saved as ``.keras`` and uploaded, as a learner saves it from the MNIST
page) and ResNet50 by block (random weights from a local file, ``CNNLAB_RESNET50_WEIGHTS``).
Clicks land on the plotly figures themselves: a map of the overview opens its layer, a cell
of a Conv2D map opens its arithmetic; then the architecture graph.

(The session's model registry and the numbers against Keras are tested under AppTest in
``tests/pages/test_network_overview.py``.)
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import no_exception, screenshot, wait_idle

#: Per-point data of a plotly figure's trace, read from the drawn chart.
TRACE_JS = "(el, i) => el.closest('.js-plotly-plot').data[i].customdata"


@pytest.fixture(scope="module")
def app_url(local_weights_env, app_url):
    """The harness's server, started after (so with) the local weights in its environment."""
    return app_url


@pytest.fixture(scope="module")
def learners_model(tmp_path_factory, mnist_test_set):
    """The tutorials' convnet, trained one quick epoch on 2,000 real MNIST test digits."""
    from cnnlib.data import mnist as data
    from cnnlib.models import build_tutorial_convnet

    images, labels = (a[:2000] for a in mnist_test_set)
    model = build_tutorial_convnet(seed=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(data.to_model_input(images), labels.astype(np.int64), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "my_convnet.keras"
    model.save(path)
    return path


def _open(page, app_url, source: str) -> None:
    page.goto(app_url)
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Network overview").click()
    wait_idle(page)
    page.get_by_text(source, exact=True).click()
    wait_idle(page)


def _charts(page):
    return page.locator('[data-testid="stPlotlyChart"]')


def _wait_for_overview(page, timeout: float = 120_000) -> None:
    page.get_by_text("Layer detail", exact=True).wait_for(timeout=timeout)
    wait_idle(page, timeout=timeout)
    _charts(page).first.locator(".scatterlayer .trace").nth(1).wait_for()


def _click_point(page, chart, trace: int, index: int) -> None:
    """Click point ``index`` of trace ``trace`` where it is drawn (plotly finds the point
    under the pointer, as for a learner's click)."""
    point = chart.locator(".scatterlayer .trace").nth(trace).locator("path.point").nth(index)
    point.scroll_into_view_if_needed()  # the mouse clicks inside the window only
    box = point.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_idle(page, timeout=120_000)


def _click_map(page, node_index: int, nth: int = 0) -> int:
    """Click the ``nth`` map of overview column ``node_index``; returns its channel."""
    overview = _charts(page).first
    targets = overview.locator(".scatterlayer .trace").nth(1)
    data = targets.element_handle().evaluate(TRACE_JS, 1)
    index = [i for i, (node, _) in enumerate(data) if node == node_index][nth]
    _click_point(page, overview, 1, index)
    return int(data[index][1])


def _tall_screenshot(page, tmp_path, name: str) -> None:
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 50)})
    page.wait_for_timeout(1000)
    screenshot(page, tmp_path, name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_a_learners_convnet_click_a_map_then_a_cell(app_url, page, tmp_path, learners_model):
    _open(page, app_url, "Upload a .keras file")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        str(learners_model)
    )
    _wait_for_overview(page)
    overview = _charts(page).first
    expect(overview.locator(".imagelayer image")).to_have_count(9)  # a column per layer
    expect(overview.get_by_text("layer's highest")).to_have_count(1)  # the colour bar
    # Click the third map of the second Conv2D layer (column 3): its layer opens below.
    channel = _click_map(page, 3, nth=2)
    picker = page.get_by_role("combobox", name="Layer", exact=True)
    expect(picker).to_have_value(re.compile(r"^conv2d\S* · Conv2D · 11×11×64$"))
    expect(page.get_by_label(re.compile(r"^Channel \(0 to 63\)"))).to_have_value(str(channel))
    expect(page.get_by_text("all 64 maps of 64, each 11×11", exact=False)).to_have_count(1)
    expect(page.get_by_text(re.compile(f"^Filter {channel} of"))).to_have_count(1)
    # Click cell (2, 7) of that filter's map: its arithmetic, by hand and by the model.
    _click_point(page, _charts(page).nth(1), 0, 2 * 11 + 7)
    expect(page.get_by_label(re.compile(r"^Row \(0 to 10\)"))).to_have_value("2")
    expect(page.get_by_label(re.compile(r"^Column \(0 to 10\)"))).to_have_value("7")
    expect(page.get_by_text(f"Row 2, column 7 of filter {channel} of", exact=False)).to_have_count(
        1
    )
    expect(page.get_by_text("By hand and by the model agree", exact=False)).to_have_count(1)
    expect(page.get_by_text("input patch", exact=True)).to_have_count(1)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "network_overview_learner_cell")
    # One colour range for the whole network: the colour bar shows values.
    page.get_by_text("One range for the whole network", exact=True).click()
    wait_idle(page)
    expect(_charts(page).first.get_by_text("layer's highest")).to_have_count(0)
    # The architecture graph.
    page.get_by_role("tab", name="Architecture graph").click()
    wait_idle(page)
    graph = page.locator('[data-testid="stGraphVizChart"] svg')
    graph.wait_for()
    expect(graph.locator("g.node")).to_have_count(9)
    expect(graph.locator("g.edge")).to_have_count(8)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "network_overview_learner_architecture")


def test_resnet50_by_block(app_url, page, tmp_path):
    _open(page, app_url, "ResNet50 (ImageNet), by block")
    _wait_for_overview(page, timeout=300_000)
    overview = _charts(page).first
    expect(overview.locator(".imagelayer image")).to_have_count(25)
    # conv1_conv first: a 7×7 kernel over the photo's 3 channels, by hand.
    expect(page.get_by_text("7×7 kernel lands on input rows", exact=False)).to_have_count(1)
    expect(page.get_by_text("By hand and by the model agree", exact=False)).to_have_count(1)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "network_overview_resnet50_conv1")
    # A residual block (column 10, conv3_block1): its maps and one of its Conv2D layers.
    _click_map(page, 10)
    picker = page.get_by_role("combobox", name="Layer", exact=True)
    expect(picker).to_have_value("conv3_block1 · 12 layers · 28×28×512")
    expect(page.get_by_text("This block is 12 layers", exact=False)).to_have_count(1)
    convs = page.get_by_role("combobox", name="Conv2D layer of this block")
    expect(convs).to_have_value("conv3_block1_1_conv")
    expect(page.get_by_text("By hand and by the model agree", exact=False)).to_have_count(1)
    no_exception(page)
    _tall_screenshot(page, tmp_path, "network_overview_resnet50_block")
    page.get_by_role("tab", name="Architecture graph").click()
    wait_idle(page)
    graph = page.locator('[data-testid="stGraphVizChart"] svg')
    graph.wait_for()
    expect(graph.locator("g.node")).to_have_count(25)
    no_exception(page)
    screenshot(page, tmp_path, "network_overview_resnet50_architecture")
