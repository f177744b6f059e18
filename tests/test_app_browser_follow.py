"""Follow one character in Debian Chromium, on the shipped checkpoints as `python app.py` serves them: a click
chooses a character, → and ← move it, the shading is the head's attention row and the heatmap's outline moves
with it; the choice stays when the head or the model changes; another tab can open the view at a prompt and
position. Screenshots go to test-output/."""

from __future__ import annotations

import pytest
import torch
from app_process import REPO
from browser_page import opened_page, shipped_app_url  # noqa: F401 (the app_url and page fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab

from gptlab import load_checkpoint
from gptlab.inside import attention_view, rollout
from gptlab_app.follow_js import open_follow_js

pytestmark = BROWSER_MARKS
PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."


def followed(page, prefix: str, position: int, title_part: str = "") -> None:
    """Wait until the server's answer for ``position`` is drawn: the text, and the heatmap titled for its row."""
    page.wait_for_function(
        """([prefix, position, part]) => {
             const view = document.querySelector(`#${prefix}-follow .gl-follow`);
             const title = document.querySelector(`#${prefix}-follow-heatmap .gtitle`);
             return view && view.dataset.position === String(position) && title
               && title.textContent.includes(`row ${position}:`) && title.textContent.includes(part);
           }""", arg=[prefix, position, title_part])


def shown(page, prefix: str) -> tuple[int, list[float], int, float]:
    """(the selected token's position, every visible token's weight, how many are greyed, the outlined row)."""
    selected = int(page.get_attribute(f"#{prefix}-follow .gl-sel", "data-pos"))
    weights = [float(w) for w in page.eval_on_selector_all(f"#{prefix}-follow [data-weight]",
                                                           "spans => spans.map(s => s.dataset.weight)")]
    future = page.locator(f"#{prefix}-follow .gl-future").count()
    row = page.evaluate(f"""() => {{
        const shape = document.querySelector('#{prefix}-follow-heatmap .js-plotly-plot').layout.shapes[0];
        return (shape.y0 + shape.y1) / 2; }}""")
    return selected, weights, future, row


def test_another_tab_opens_the_explorer_at_a_prompt_and_position(page):
    """What a tab such as 'Where context pays' runs as its event's js= to open Follow one character there (first:
    the explorer still shows gpt, whose context holds the whole prompt)."""
    open_tab(page, "Generate")
    prompt = "All:\nSpeak, speak."
    page.evaluate(f"() => ({open_follow_js()})({prompt!r}, 3)")
    followed(page, "att", 3)
    assert page.input_value("#att-prompt textarea") == prompt
    assert page.get_attribute("#att-follow .gl-follow", "data-n") == str(len(prompt))


def test_character_10_then_right_arrow_follows_character_11(page):
    checkpoint = load_checkpoint(REPO / "checkpoints" / "gpt")
    pattern = attention_view(checkpoint.model, checkpoint.tokenizer, PROMPT).patterns[0][0]
    open_tab(page, "Attention explorer")
    page.fill("#att-prompt textarea", PROMPT)
    page.click("#att-btn")
    page.wait_for_function("n => (document.querySelector('#att-follow .gl-follow') || {dataset: {}}).dataset.n === n",
                           arg=str(len(PROMPT)))
    page.locator("#att-follow [data-pos='10']").click()
    followed(page, "att", 10)
    at, before, future, row = shown(page, "att")
    assert (at, len(before), future, row) == (10, 11, len(PROMPT) - 11, 10)
    assert torch.allclose(torch.tensor(before), pattern[10, :11], atol=1e-3)
    page.keyboard.press("ArrowRight")  # the text kept the focus the click gave it
    followed(page, "att", 11)
    at, after, future, row = shown(page, "att")
    assert (at, len(after), future, row) == (11, 12, len(PROMPT) - 12, 11)
    assert torch.allclose(torch.tensor(after), pattern[11, :12], atol=1e-3) and after[:11] != before
    page.screenshot(path=str(SHOTS / "follow-explorer.png"), full_page=True)
    page.keyboard.press("ArrowLeft")
    followed(page, "att", 10)
    # another head, then another model: the same character is still followed
    page.fill("#att-head input[type=number]", "2")
    page.click("#att-btn")
    followed(page, "att", 10, "head 2")
    assert shown(page, "att")[0] == 10
    page.click("#att-model input")
    page.locator("[role=option]", has_text="gpt-bpe").first.click()
    page.click("#att-btn")
    followed(page, "att", 10, "gpt-bpe ·")
    at, weights, _, row = shown(page, "att")
    assert (at, len(weights), row) == (10, 11, 10)
    # a model whose context (8 tokens) ends before it: the last token is followed, and the caption says so
    page.click("#att-model input")
    page.locator("[role=option]", has_text="blocks").first.click()
    page.click("#att-btn")
    followed(page, "att", 7, "blocks ·")
    assert "Position 10 is past the end of this text (8 tokens)" in page.inner_text("#att-follow .gl-follow-caption")


def test_look_closer_follows_rollout_and_moves_left(page):
    checkpoint = load_checkpoint(REPO / "checkpoints" / "gpt")
    open_tab(page, "Look closer")
    page.wait_for_selector("#closer-follow .gl-tok")
    prompt = page.input_value("#closer-prompt textarea")
    matrix = rollout(attention_view(checkpoint.model, checkpoint.tokenizer, prompt).patterns)[-1]
    page.locator("#closer-follow-by label", has_text="rollout").click()
    page.locator("#closer-follow [data-pos='6']").click()
    followed(page, "closer", 6, "rollout")
    page.keyboard.press("ArrowLeft")
    followed(page, "closer", 5, "rollout")
    at, weights, future, row = shown(page, "closer")
    assert (at, row, future) == (5, 5, len(prompt) - 6)
    assert torch.allclose(torch.tensor(weights), matrix[5, :6], atol=1e-3)
    page.screenshot(path=str(SHOTS / "follow-closer.png"), full_page=True)


def test_choosing_another_model_redraws_the_explorer_for_it(page):
    """No plot of the old model stays on screen under the new model's sliders (back at layer 0, head 0)."""
    open_tab(page, "Attention explorer")
    page.wait_for_selector("#att-heatmap .gtitle")
    page.click("#att-model input")
    page.locator("[role=option]", has_text="single_head").first.click()  # no button pressed
    page.wait_for_function("() => (document.querySelector('#att-heatmap .gtitle') || {textContent: ''})"
                           ".textContent.includes('single_head · layer 0 · head 0')")
    page.wait_for_function("() => (document.querySelector('#att-follow-heatmap .gtitle') || {textContent: ''})"
                           ".textContent.startsWith('single_head ·')")
    assert "layer 0" in page.text_content("#att-grid .gtitle")


def test_teacher_mode_keeps_the_shaded_text_readable_on_the_colour_blind_safe_scale(page, app_url):
    """In teacher mode (?teacher=1) the page's dark prose ink must not cover a shaded token: a dark-shaded one
    keeps light ink; the explorer's text is on the Cividis scale, as the /follow API's is."""
    from plotly.colors import sample_colorscale

    from gptlab.figures.style import TEACHER_COLORSCALE

    page.goto(f"{app_url}?teacher=1")
    page.wait_for_function("() => document.body.classList.contains('gptlab-teacher')")
    open_tab(page, "Attention explorer")
    page.wait_for_selector("#att-follow .gl-tok")
    page.locator("#att-follow [data-pos='5']").click()
    followed(page, "att", 5)
    spans = page.eval_on_selector_all(
        "#att-follow [data-weight]",
        "spans => spans.map(s => [getComputedStyle(s).color, getComputedStyle(s).backgroundColor])")
    dark = [(ink, shade) for ink, shade in spans if sum(int(v) for v in shade[4:-1].split(",")) < 300]
    assert dark, spans  # some token is shaded dark
    for ink, shade in dark:
        assert sum(int(v) for v in ink[4:-1].split(",")) > 600, (ink, shade)  # white ink on a dark shade
    cividis = {c.replace(" ", "") for c in sample_colorscale(TEACHER_COLORSCALE, [0, 1])}
    legend = page.get_attribute("#att-follow .gl-follow div:last-child span", "style").replace(" ", "")
    assert all(c in legend for c in cividis), legend
    page.screenshot(path=str(SHOTS / "follow-teacher.png"), full_page=True)


@pytest.mark.parametrize("prefix, tab", [("att", "Attention explorer"), ("closer", "Look closer")])
def test_twenty_fast_right_arrows_from_10_end_at_30_and_stop_at_the_end(page, prefix, tab):
    """No press is lost while the server redraws: the hidden number is the keys' source of truth and the last
    position asked for is always drawn (trigger_mode='always_last'); → past the last character stays there."""
    page.reload()
    open_tab(page, tab)
    page.wait_for_selector(f"#{prefix}-follow .gl-tok")
    page.fill(f"#{prefix}-prompt textarea", PROMPT)
    page.click(f"#{prefix}-btn")
    page.wait_for_function(f"n => (document.querySelector('#{prefix}-follow .gl-follow') || "
                           "{dataset: {}}).dataset.n === n", arg=str(len(PROMPT)))
    page.locator(f"#{prefix}-follow [data-pos='10']").click()
    followed(page, prefix, 10)
    for _ in range(20):
        page.keyboard.press("ArrowRight", delay=0)
    followed(page, prefix, 30)
    page.wait_for_timeout(1500)  # idle: a late answer for an older position would move the view back
    followed(page, prefix, 30)
    at, _, _, row = shown(page, prefix)
    assert (at, row, page.input_value(f"#{prefix}-follow-pos input")) == (30, 30, "30")
    last = len(PROMPT) - 1
    page.locator(f"#{prefix}-follow [data-pos='{last - 1}']").click()
    followed(page, prefix, last - 1)
    for _ in range(3):
        page.keyboard.press("ArrowRight", delay=0)
    followed(page, prefix, last)
    page.wait_for_timeout(1000)
    assert shown(page, prefix)[0] == last and page.input_value(f"#{prefix}-follow-pos input") == str(last)
