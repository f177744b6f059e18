"""Where context pays in Debian Chromium, on the shipped checkpoints as `python app.py` serves them: the tab draws
the default text coloured by gpt minus bigram when opened, and hovering a character shows its bits under both
models, its rank and the top five guesses, the library's own numbers. Screenshots go to test-output/."""

from __future__ import annotations

import re

import pytest
from app_process import REPO
from browser_page import opened_page, shipped_app_url  # noqa: F401 (the app_url and page fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

from gptlab import load_checkpoint
from gptlab.inside import surprise
from gptlab.prompts import SURPRISE_PROMPT

pytestmark = BROWSER_MARKS
WIDTH = 64  # characters per drawn line (surprise_text_figure's default)


def ordinal(n: int) -> str:
    """How the hover names the n-th guess, counted from 1: '1st guess', '2nd guess', '11th guess'."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')} guess"


def hover_cell(page, row: int, col: int, rows: int) -> str:
    """Move over the cell of drawn line ``row``, column ``col``; the hover label's text."""
    box = page.locator("#surprise-plot .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * (col + 0.5) / WIDTH, box["y"] + box["height"] * (row + 0.5) / rows)
    page.wait_for_selector("#surprise-plot .hoverlayer .hovertext")
    return " ".join(page.locator("#surprise-plot .hoverlayer").all_text_contents())


def test_the_tab_draws_a_minus_b_and_the_hover_shows_bits_rank_and_top_five(page):
    open_tab(page, "Where context pays")
    page.wait_for_selector("#surprise-plot .js-plotly-plot .hm")
    assert plot_width(page, "#surprise-plot") > 500
    summary = page.inner_text("#surprise-note")
    assert "gpt − bigram" in summary and "bits per character on average" in summary, summary
    gpt, bigram = (load_checkpoint(REPO / "checkpoints" / name) for name in ("gpt", "bigram"))
    a = surprise(gpt.model, gpt.tokenizer, SURPRISE_PROMPT)
    b = surprise(bigram.model, bigram.tokenizer, SURPRISE_PROMPT)
    lines = SURPRISE_PROMPT.splitlines(keepends=True)  # every line is shorter than WIDTH: one drawn line each
    assert max(map(len, lines)) <= WIDTH
    row, col = 1, 1  # the 'o' of 'Good' on the second line
    position = len(lines[0]) + col
    hover = hover_cell(page, row, col, len(lines))
    t = position - 1  # the prediction of this character is made at the one before it
    top = ", ".join(f"{label} {float(p):.0%}" for label, p in zip(a.top_labels[t], a.top_probs[t], strict=True))
    assert f"{position}:{SURPRISE_PROMPT[position]}" in hover, hover
    assert f"gpt {float(a.bits[t]):.2f} bits, bigram {float(b.bits[t]):.2f} bits" in hover, hover
    assert f"{ordinal(int(a.ranks[t]) + 1)} of gpt" in hover and f"top guesses: {top}" in hover, hover
    page.screenshot(path=str(SHOTS / "surprise-a-minus-b.png"), full_page=True)


def test_bits_of_a_alone(page):
    open_tab(page, "Where context pays")
    page.get_by_role("radio", name="bits of A").check()  # .input redraws
    page.wait_for_function("() => !(document.querySelector('#surprise-plot .gtitle') || {textContent: '−'})"
                           ".textContent.includes('−')")
    hover = hover_cell(page, 1, 1, len(SURPRISE_PROMPT.splitlines()))
    assert re.search(r"\d+\.\d\d bits · \d+(st|nd|rd|th) guess *top guesses: ", hover), hover


def test_clicking_a_character_follows_the_query_that_predicted_it_in_the_attention_explorer(page):
    """The hover of character p shows the prediction made at query p - 1: the click follows that query, with p
    shown (greyed) after it and named in the caption."""
    open_tab(page, "Where context pays")
    page.get_by_role("radio", name="A minus B").check()  # .input redraws
    page.wait_for_function("() => (document.querySelector('#surprise-plot .gtitle') || {textContent: ''})"
                           ".textContent.includes('−')")
    lines = SURPRISE_PROMPT.splitlines(keepends=True)
    row, col = 1, 3  # the 'd' of 'Good'
    position = len(lines[0]) + col
    hover_cell(page, row, col, len(lines))
    box = page.locator("#surprise-plot .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * (col + 0.5) / WIDTH, box["y"] + box["height"] * (row + 0.5) / len(lines))
    page.wait_for_function("t => (document.querySelector('#att-prompt textarea') || {}).value === t",
                           arg=SURPRISE_PROMPT[: position + 1])
    page.wait_for_function("p => (document.querySelector('#att-follow .gl-sel') || {dataset: {}}).dataset.pos === p",
                           arg=str(position - 1))
    assert "the attention that predicted ‘d’" in page.inner_text("#att-follow .gl-follow-caption")
    assert page.get_attribute(f"#att-follow [data-pos='{position}']", "aria-disabled") == "true"  # the future


@pytest.mark.parametrize("text", ["ab", "Good morrow to you all, my friends and neighbours.",
                                  "Good morrow to you all,\nmy friends."])
def test_a_one_or_two_line_text_draws(page, text):
    """A short text (one or two drawn lines) once gave Plotly no room ('Something went wrong with axis
    scaling'), a blank plot and a tab stuck greyed: it draws, its characters in the cells, with no page error."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_tab(page, "Where context pays")
    page.get_by_role("radio", name="A minus B").check()
    page.fill("#surprise-text textarea", text)
    page.click("#surprise-btn")
    page.wait_for_function("""(want) => {
        const plot = document.querySelector('#surprise-plot .js-plotly-plot');
        if (!plot || !plot.data || !plot.querySelector('.hm')) return false;
        const cells = [...plot.querySelectorAll('.textpoint text, .hm ~ * text, text')].map((t) => t.textContent);
        return want.every((c) => cells.includes(c));
      }""", arg=[c for c in text if c.isalpha()][:6])
    page.wait_for_selector("#surprise-plot .pending", state="detached")
    height = page.evaluate("() => document.querySelector('#surprise-plot .main-svg').getBoundingClientRect().height")
    assert not errors, errors
    assert "axis scaling" not in page.inner_text("body")
    assert height >= 200
