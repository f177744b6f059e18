"""Inside a head in Debian Chromium, on the shipped checkpoints as a learner's `python app.py` serves them: the
tab draws when opened, and lesson 1's previous-character head puts its largest weight on the previous character.
Screenshots go to test-output/."""

from __future__ import annotations

from app_process import REPO
from browser_page import opened_page, shipped_app_url  # noqa: F401 (the app_url and page fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

from gptlab import load_checkpoint
from gptlab.classroom.lessons import LESSONS, resolve_head
from gptlab.inside.explore import attention_view
from gptlab.inside.heads import label_heads

pytestmark = BROWSER_MARKS
QUERY = 20  # any query of lesson 1's prompt past the first character would do


def lesson_one_head() -> tuple[str, int, int]:
    """Lesson 1's prompt and the (layer, head) it shows on the shipped gpt: the best 'previous' head."""
    lesson = LESSONS["previous-char"]
    checkpoint = load_checkpoint(REPO / "checkpoints" / "gpt")
    view = attention_view(checkpoint.model, checkpoint.tokenizer, lesson.prompt)
    labels = label_heads(view.patterns, view.tokens, view.ids)
    return lesson.prompt, *resolve_head(labels, lesson.layer, lesson.head, lesson.find)


def rows_shown(count: int) -> str:
    """A page condition: the table holds ``count`` keys (Gradio's grid counts its header row too)."""
    return f"document.querySelector('#inside-table [role=grid]').getAttribute('aria-rowcount') === '{count + 1}'"


def top_row(page) -> tuple[str, str]:
    """The first row's key position and key, as shown (Gradio draws only the visible rows, as grid cells)."""
    return tuple(page.inner_text(f"#inside-table [data-testid=cell-0-{col}]").strip() for col in (0, 1))


def test_the_tab_draws_when_opened(page):
    open_tab(page, "Inside a head")
    page.wait_for_selector("#inside-bars .js-plotly-plot .bars")
    assert plot_width(page, "#inside-bars") > 500
    note = page.inner_text("#inside-note")
    assert "head_size = 32, √32 = 5.66, so each q·k is multiplied by 1/5.66 = 0.1768" in note
    assert "Query: position 16, t" in note  # the last character of the default prompt, 'ROMEO:\nWhat light'
    page.wait_for_function(rows_shown(17))


def test_lesson_ones_head_weighs_the_previous_character_most(page):
    prompt, layer, head = lesson_one_head()
    open_tab(page, "Inside a head")
    page.fill("#inside-prompt textarea", prompt)
    page.fill("#inside-layer input[type=number]", str(layer))
    page.fill("#inside-head input[type=number]", str(head))
    page.fill("#inside-query input[type=number]", str(QUERY))
    page.click("#inside-btn")
    title = f"gpt · layer {layer} · head {head} · query {QUERY}:{prompt[QUERY]}"
    page.wait_for_function("t => (document.querySelector('#inside-bars .gtitle') || {}).textContent === t",
                           arg=title)
    page.wait_for_function(rows_shown(QUERY + 1))
    assert top_row(page) == (str(QUERY - 1), prompt[QUERY - 1])
    assert f"Query: position {QUERY}, {prompt[QUERY]}" in page.inner_text("#inside-note")
    page.wait_for_function("document.querySelector('#inside-csv a') !== null")
    assert page.eval_on_selector("#inside-csv a", "a => a.href").endswith(".csv")
    page.screenshot(path=str(SHOTS / "inside-a-head.png"), full_page=True)
