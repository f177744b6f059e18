"""The teaching tabs in Debian Chromium: across training, live training with Stop, look closer and export,
step-through, and a lesson restored from a shared URL in teacher mode. Screenshots go to test-output/."""

from __future__ import annotations

import pytest
from app_process import running_app
from browser_page import module_browser, new_app_page  # noqa: F401 (the browser fixture)
from teaching_shelf import SNAPSHOT_STEPS, make_foreign_shelf, make_shelf
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

from gptlab import load_checkpoint
from gptlab.classroom.lessons import LESSONS, resolve_head
from gptlab.inside.explore import attention_view
from gptlab.inside.heads import label_heads

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_checkpoints, tiny_text):
    shelf = make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text)
    with running_app(shelf, tmp_path_factory.mktemp("log")) as url:  # live training reads the shipped corpus
        yield url


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = new_app_page(browser, app_url)
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
    page = new_app_page(browser)
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


def test_a_lesson_link_with_a_layer_alone_keeps_that_layer(browser, app_url, tmp_path_factory, tiny_checkpoints,
                                                           tiny_text):
    """?lesson=speaker&layer=L opens layer L at its best head, not the best head of another layer (kind 9)."""
    ck = load_checkpoint(make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text) / "gpt")
    view = attention_view(ck.model, ck.tokenizer, LESSONS["speaker"].prompt)
    labels = label_heads(view.patterns, view.tokens)
    layer = 1 - resolve_head(labels, -1, -1, "speaker")[0]  # the layer the overall best head is not in
    head = resolve_head(labels, layer, -1, "speaker")[1]
    page = new_app_page(browser)
    try:
        page.goto(f"{app_url}?lesson=speaker&layer={layer}")
        open_tab(page, "Lessons")
        page.wait_for_function("want => document.querySelector('#les-caption').innerText.includes(want)",
                               arg=f"Layer {layer}, head {head} ")
        assert page.input_value("#les-layer input") == str(layer) and page.input_value("#les-head input") == str(head)
        assert f"layer={layer}&head={head}" in page.input_value("#les-link textarea")
    finally:
        page.close()


# ---- models unlike the shipped ones (few characters, Markdown characters, two shapes) --------------------
@pytest.fixture(scope="module")
def foreign_shelf(tmp_path_factory):
    return make_foreign_shelf(tmp_path_factory)


@pytest.fixture(scope="module")
def foreign_page(browser, foreign_shelf, tmp_path_factory):
    """A page of an app whose default model (1 layer, 2 heads) knows one paragraph; 'markup' has 2 layers, 4 heads."""
    with running_app(foreign_shelf, tmp_path_factory.mktemp("foreign-log")) as url:
        page = new_app_page(browser)
        page.goto(url)
        page.wait_for_selector("#gen-btn")
        yield page
        page.close()


def choose(page, dropdown: str, model: str) -> None:
    page.click(f"#{dropdown} input")
    page.get_by_role("option", name=model).first.click()


def slider_is(page, elem_id: str, maximum: int, locked: bool, value: int, timeout: float = 20_000) -> None:
    """Wait until a slider shows this range, lock state and value."""
    page.wait_for_function(
        "([sel, want]) => { const e = document.querySelector(sel);"
        " return e && [Number(e.max), e.disabled, Number(e.value)].join() === want.join(); }",
        arg=[f"#{elem_id} input[type=range]", [maximum, locked, value]], timeout=timeout)


def test_pickers_follow_the_chosen_model(foreign_page, foreign_shelf):
    """Layer and head pickers (and top-k) refit to the model chosen in every view that has a choice (kind 8)."""
    page = foreign_page
    open_tab(page, "Look closer")
    slider_is(page, "closer-layer", 1, True, 0)  # the default model has one layer: locked at 0
    slider_is(page, "closer-head", 1, False, 0)
    choose(page, "closer-model", "markup")
    slider_is(page, "closer-layer", 1, False, 0)
    slider_is(page, "closer-head", 3, False, 0)
    page.fill("#closer-layer input[type=number]", "1")
    page.fill("#closer-head input[type=number]", "3")
    page.click("#closer-btn")
    page.wait_for_function("document.querySelector('#closer-sentence').innerText.startsWith('Layer 1, head 3 ')")
    choose(page, "closer-model", "gpt")  # layer 1 and head 3 do not exist here: back to 0
    slider_is(page, "closer-layer", 1, True, 0)
    slider_is(page, "closer-head", 1, False, 0)
    page.click("#closer-btn")
    page.wait_for_function("document.querySelector('#closer-sentence').innerText.startsWith('Layer 0, head 0 ')",
                           timeout=20_000)
    open_tab(page, "Across training")  # the snapshots are of the default model
    slider_is(page, "across-layer", 1, True, 0)
    slider_is(page, "across-head", 1, False, 0)
    open_tab(page, "Lessons")
    choose(page, "les-model", "markup")
    page.wait_for_function("document.querySelector('#les-head input').max === '3'", timeout=20_000)
    choose(page, "les-model", "gpt")
    page.wait_for_function("document.querySelector('#les-head input').max === '1'", timeout=20_000)
    assert page.eval_on_selector("#les-layer input", "e => e.max") == "0"
    open_tab(page, "Step through")
    vocab = load_checkpoint(foreign_shelf / "gpt").tokenizer.vocab_size
    slider_is(page, "step-topk", vocab, False, 0)
    page.screenshot(path=str(SHOTS / "teach-pickers.png"), full_page=True)


def test_built_in_prompts_and_markdown_tokens_in_the_page(foreign_page):
    """The default prompt draws on a model of one paragraph, saying what it left out (kind 1); a token that is
    Markdown syntax shows as itself in the notes (kind 7)."""
    page = foreign_page
    open_tab(page, "Look closer")
    choose(page, "closer-model", "gpt")
    page.click("#closer-btn")  # the default prompt, with characters this model never saw
    page.wait_for_function("document.querySelector('#closer-sentence').innerText.includes('never seen')")
    drawn(page, "#closer-heatmap")
    open_tab(page, "Step through")
    choose(page, "step-model", "markup")
    page.fill("#step-text textarea", "a")
    page.click("#step-next")
    page.wait_for_function("document.querySelector('#step-note').innerText.startsWith('Picked ')")
    assert page.inner_text("#step-note").startswith("Picked ` with probability")
    assert page.locator("#step-note code").first.inner_text() == "`" and page.locator("#step-note strong").count() == 0
    open_tab(page, "Attention explorer")
    choose(page, "att-model", "markup")
    page.fill("#att-prompt textarea", "a`b*")
    page.click("#att-btn")
    page.wait_for_function("document.querySelector('#att-note').innerText.includes('sees 4 token(s)')")
    codes = page.locator("#att-note code").all_inner_texts()
    assert codes == ["markup", "0:a", "1:`", "2:b", "3:*", "3:*"]
    assert page.locator("#att-note em").count() == 0 and page.locator("#att-note strong").count() == 0
    page.screenshot(path=str(SHOTS / "teach-markdown-tokens.png"), full_page=True)
