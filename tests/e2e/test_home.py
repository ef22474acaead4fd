"""The home page in a real browser: it renders and links to every page."""

from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, wait_idle


def test_home_lists_every_page(app_url, page, tmp_path):
    page.goto(app_url)
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    for title in ("Convolution lab", "Train on MNIST", "Classify with ResNet50", "Feature maps"):
        expect(main.get_by_role("link", name=title)).to_be_visible(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, tmp_path, "home")
