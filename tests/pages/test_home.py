"""The home page (app.py) under AppTest: it renders and links to every page."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TITLES = [
    "Convolution lab",
    "Train on MNIST",
    "Train on your own images",
    "Classify with ResNet50",
    "Feature maps",
    "Network overview",
]


def test_home_links_every_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "CNN Lab"
    links = at.get("page_link")
    assert [link.proto.label for link in links] == TITLES
    assert len(at.caption) >= len(TITLES)  # what each page teaches


def test_home_opens_the_convolution_lab():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/convolution_lab.py").run(timeout=60)
    assert not at.exception
    assert at.title[0].value == "Convolution lab"
