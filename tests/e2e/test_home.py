"""The home page in a real browser: it renders and links to every page."""

from tests.e2e.conftest import screenshot, wait_idle


def test_home_lists_every_page(app_url, page, tmp_path):
    page.goto(app_url)
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    for title in ("Convolution lab", "Train on MNIST", "Classify with ResNet50", "Feature maps"):
        assert main.get_by_text(title, exact=True).count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, tmp_path, "home")
