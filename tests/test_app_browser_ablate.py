"""Knock out heads in Debian Chromium, on the shipped checkpoints as a learner's `python app.py` serves them:
check a head's box, press the button, and the chart of the next token before and after is drawn with both
bars. Screenshots go to test-output/."""

from __future__ import annotations

import pytest
from app_process import REPO, running_app
from test_app_browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, open_tab, plot_width

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with running_app(REPO / "checkpoints", tmp_path_factory.mktemp("log")) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(45_000)  # a shared 2-core machine can stall for seconds
        page.goto(url)
        page.wait_for_selector("#gen-btn")
        yield page
        browser.close()


def test_a_checked_head_knocked_out_draws_the_after_chart(page):
    open_tab(page, "Knock out heads")
    page.locator("#ablate-heads label").filter(has_text="L0 H0").first.click()
    page.click("#ablate-btn")
    page.wait_for_function("(document.querySelector('#ablate-note') || {}).innerText?.includes('Switched off: L0 H0')")
    page.wait_for_selector("#ablate-next .js-plotly-plot .bars")
    names = page.locator("#ablate-next .legendtext").all_text_contents()
    assert names == ["before", "after"]
    assert page.locator("#ablate-next .trace.bars").count() == 2  # the after bars are drawn beside the before ones
    assert plot_width(page, "#ablate-next") > 500
    page.wait_for_selector("#ablate-bits .js-plotly-plot .bars")
    assert "nats/token" in page.inner_text("#ablate-note")
    page.screenshot(path=str(SHOTS / "knock-out-heads.png"), full_page=True)
