"""The app in Debian Chromium where PNG/SVG export has no browser to render with (kaleido's lookup pointed
at a missing path; the app runs as a subprocess): Look closer's export still hands over the CSV and JSON and
a warning says what to install, and the Lessons tab downloads HTML files that open with no server."""

from __future__ import annotations

import pytest
from app_process import running_app
from offline_html import assert_standalone
from teaching_shelf import make_shelf
from test_app_browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, open_tab

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_checkpoints, tiny_text):
    from playwright.sync_api import sync_playwright

    shelf = make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text)
    missing = tmp_path_factory.mktemp("no-browser") / "chromium"
    with running_app(shelf, tmp_path_factory.mktemp("log"), BROWSER_PATH=str(missing)) as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(45_000)
        page.goto(url)
        page.wait_for_selector("#gen-btn")
        yield page
        browser.close()


def test_export_without_a_renderer_gives_csv_and_json_and_says_what_to_install(page):
    open_tab(page, "Look closer")
    page.fill("#closer-prompt textarea", "First Citizen:\nBefore we proceed")
    page.click("#closer-export")
    page.wait_for_function("document.querySelectorAll('#closer-files a').length >= 2")
    links = page.eval_on_selector_all("#closer-files a", "links => links.map(a => a.href)")
    assert sorted({link.rsplit(".", 1)[-1] for link in links}) == ["csv", "json"]
    warning = page.get_by_text("apt-get install chromium", exact=False).first
    warning.wait_for()
    text = warning.inner_text()
    assert "Exported CSV and JSON only" in text and "packages.txt" in text and "camera button" in text
    page.screenshot(path=str(SHOTS / "export-without-renderer.png"), full_page=True)


def test_the_lessons_tab_downloads_the_view_and_every_lesson_as_html(page, tmp_path):
    open_tab(page, "Lessons")
    page.wait_for_function("document.querySelector('#les-caption').innerText.includes('Layer ')")  # drawn on open
    for button, name in (("#les-html", "previous-char-gpt.html"), ("#les-all-html", "all-lessons-gpt.html")):
        page.click(button)
        link = page.locator(f"#les-file a[href$='{name}']")
        link.wait_for()
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / name
        download.value.save_as(saved)
        text = saved.read_text(encoding="utf-8")
        assert_standalone(text)
        assert "1. The previous-character head" in text
