"""The induction model in Debian Chromium, on the shipped checkpoints as `python app.py` serves them: the lesson
link ?lesson=copying opens "Copying what came before" on the induction model with its induction head ('induct NN%')
and the copy bits in the caption; Across training draws the induction score per snapshot with its caption.
Screenshots go to test-output/."""

from __future__ import annotations

import pytest
from app_process import REPO
from browser_page import module_browser, new_app_page, shipped_app_url  # noqa: F401 (the app_url and browser fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

from gptlab.inside.formation import induction_across
from gptlab.snapshots import SnapshotCache, find_snapshots

pytestmark = BROWSER_MARKS


@pytest.fixture
def page(browser):
    page = new_app_page(browser)
    yield page
    page.close()


def test_the_copying_lesson_link_shows_the_induction_head_and_the_copy_bits(page, app_url):
    page.goto(f"{app_url}?lesson=copying")
    open_tab(page, "Lessons")
    page.wait_for_function("document.querySelector('#les-caption').innerText.includes('on the second, where it "
                           "could copy')")
    caption = page.inner_text("#les-caption")
    assert "Copying what came before" in caption and "bits per character" in caption
    page.wait_for_selector("#les-grid .js-plotly-plot .annotation-text")
    titles = page.eval_on_selector_all("#les-grid .annotation-text", "els => els.map(e => e.textContent)")
    assert any("induct " in t for t in titles), titles
    assert "lesson=copying" in page.input_value("#les-link textarea")
    assert "model=induction" in page.input_value("#les-link textarea")
    page.screenshot(path=str(SHOTS / "lesson-copying.png"), full_page=True)


def test_across_training_draws_the_induction_score_per_snapshot(page, app_url):
    page.goto(app_url)
    open_tab(page, "Across training")
    page.click("#across-induction-btn")
    page.wait_for_function("document.querySelector('#across-induction-caption').innerText.includes('step')")
    found = induction_across(find_snapshots(REPO / "checkpoints" / "induction"), SnapshotCache(size=64))
    assert page.inner_text("#across-induction-caption").replace("\n", " ").startswith(
        f"The induction score jumps between step {found.rise.start:,} and step {found.rise.end:,}")
    page.wait_for_selector("#across-induction-plot .js-plotly-plot .scatterlayer .trace")
    assert plot_width(page, "#across-induction-plot") > 500
    page.screenshot(path=str(SHOTS / "across-induction.png"), full_page=True)
