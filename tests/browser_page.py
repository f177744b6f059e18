"""Debian Chromium on the app for the browser tests, started one way: headless with test_app_browser's
arguments, pages 1400x1000 with a 45 s default timeout, test-output/ made for the screenshots.

Module-scoped fixtures for a test file to import by name (pytest then makes them once for that file), each
registered under the name the tests use: ``shipped_app_url`` is ``app_url`` (app.py serving the shipped
checkpoints/, as a learner's `python app.py` does), ``module_browser`` is ``browser`` (started after the file's
``app_url``, which a file may define itself), ``opened_page`` is ``page`` (one page at ``app_url`` once the app
is drawn, in a browser of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from app_process import REPO, running_app
from test_app_browser import ARGS, CHROMIUM, SHOTS

VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 45_000  # a shared 2-core machine can stall for seconds


@contextmanager
def launched_browser() -> Iterator:
    """Chromium started by Playwright, closed on exit."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def new_app_page(browser, url: str | None = None):
    """A new page of ``browser`` at the tests' size and timeout; given ``url``, opened there with the app drawn."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    if url is not None:
        page.goto(url)
        page.wait_for_selector("#gen-btn")
    return page


@pytest.fixture(scope="module", name="app_url")
def shipped_app_url(tmp_path_factory):
    with running_app(REPO / "checkpoints", tmp_path_factory.mktemp("log")) as url:
        yield url


@pytest.fixture(scope="module", name="browser")
def module_browser(app_url):
    with launched_browser() as browser:
        yield browser


@pytest.fixture(scope="module", name="page")
def opened_page(app_url):
    with launched_browser() as browser:
        yield new_app_page(browser, app_url)
