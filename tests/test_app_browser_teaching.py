"""The teaching tabs in Debian Chromium: across training, live training with Stop, look closer and export,
step-through, and a lesson restored from a shared URL in teacher mode. Screenshots go to test-output/."""

from __future__ import annotations

import pytest
from app_process import running_app
from teaching_shelf import SNAPSHOT_STEPS, make_shelf
from test_app_browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, open_tab, plot_width

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_checkpoints, tiny_text):
    shelf = make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text)
    with running_app(shelf, tmp_path_factory.mktemp("log")) as url:  # live training reads the shipped corpus
        yield url


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(45_000)
    page.goto(app_url)
    page.wait_for_selector("#gen-btn")
    yield page
    page.close()


def drawn(page, selector: str) -> None:
    page.wait_for_selector(f"{selector} .js-plotly-plot .main-svg")


def test_across_training_slider_changes_step_heatmap_and_sample(page):
    open_tab(page, "Across training")  # fits the slider to the snapshots on disk (the tiny model's
    # vocabulary lacks letters of the default prompt, so draw with one of its own)
    page.fill("#across-prompt textarea", "First Citizen:\nBefore we proceed")
    page.click("#across-btn")
    page.wait_for_function(f"document.querySelector('#across-note').innerText.includes('step {SNAPSHOT_STEPS[-1]}')")
    drawn(page, "#across-heatmap")
    assert "Snapshot 3 of 3" in page.inner_text("#across-note")  # opens on the latest snapshot
    page.fill("#across-step input[type=number]", "0")
    page.click("#across-btn")
    page.wait_for_function("document.querySelector('#across-sample textarea').value === 'sample at step 0'")
    assert "Snapshot 1 of 3: step 0" in page.inner_text("#across-note")
    assert page.locator("#across-grid .hm").count() == 4
    titles = page.locator("#across-grid .annotation-text").all_text_contents()
    assert titles[0].startswith("head 0 · ") and "%" in titles[0]
    assert page.inner_text("#across-sentence").startswith("Layer 0, head 0 ")
    assert plot_width(page, "#across-heatmap") > 500
    page.screenshot(path=str(SHOTS / "teach-across-training.png"), full_page=True)


def test_watch_it_learn_streams_and_stops(page):
    open_tab(page, "Watch it learn")
    page.fill("#live-seconds input[type=number]", "60")
    page.click("#live-start")  # Tiny Shakespeare from the data folder
    page.wait_for_function("document.querySelector('#live-status').innerText.includes('training')")
    drawn(page, "#live-loss")
    drawn(page, "#live-heatmap")
    page.click("#live-stop")
    page.wait_for_function("document.querySelector('#live-status').innerText.includes('done (stopped)')")
    assert len(page.input_value("#live-sample textarea")) > 20
    page.screenshot(path=str(SHOTS / "teach-live.png"), full_page=True)


def test_look_closer_and_export(page):
    open_tab(page, "Look closer")
    page.fill("#closer-prompt textarea", "First Citizen:\nBefore we proceed")
    page.click("#closer-btn")
    for selector in ("#closer-heatmap", "#closer-grid", "#closer-rollout", "#closer-rollbar", "#closer-lens"):
        drawn(page, selector)
    assert page.inner_text("#closer-sentence").startswith("Layer 0, head 0 ")
    assert "after layer 1" in " ".join(page.locator("#closer-lens .ytick text").all_text_contents())
    page.click("#closer-export")
    page.wait_for_function("document.querySelectorAll('#closer-files a').length >= 4")
    names = " ".join(page.eval_on_selector_all("#closer-files a", "links => links.map(a => a.href)"))
    for ext in ("png", "svg", "csv", "json"):
        assert f".{ext}" in names
    page.screenshot(path=str(SHOTS / "teach-look-closer.png"), full_page=True)


def test_step_through_adds_a_token_per_click(page):
    open_tab(page, "Step through")
    page.fill("#step-text textarea", "All:\nSpeak")
    page.click("#step-next")
    page.wait_for_function("document.querySelector('#step-text textarea').value.length === 11")
    page.click("#step-next")
    page.wait_for_function("document.querySelector('#step-text textarea').value.length === 12")
    drawn(page, "#step-bars")
    drawn(page, "#step-attn")
    assert "Picked" in page.inner_text("#step-note")
    page.screenshot(path=str(SHOTS / "teach-step-through.png"), full_page=True)


def test_a_shared_lesson_link_restores_the_view_in_teacher_mode(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(45_000)
    try:
        page.goto(f"{app_url}?lesson=speaker&prompt=All%3A%0ASpeak%2C+speak.%0A&layer=1&head=2&teacher=1")
        open_tab(page, "Lessons")
        page.wait_for_function("document.querySelector('#les-caption').innerText.includes('Layer 1, head 2')")
        drawn(page, "#les-heatmap")
        assert page.evaluate("document.body.classList.contains('gptlab-teacher')")
        assert page.input_value("#les-prompt textarea") == "All:\nSpeak, speak.\n"
        assert "layer=1" in page.input_value("#les-link textarea") and "teacher=1" in page.input_value(
            "#les-link textarea")
        font = page.evaluate("getComputedStyle(document.querySelector('#les-prompt textarea')).fontSize")
        assert float(font.rstrip("px")) >= 20
        page.screenshot(path=str(SHOTS / "teach-lesson-teacher-mode.png"), full_page=True)
    finally:
        page.close()
