"""A lesson link keeps every valid parameter, leaves out only the ones the chosen model cannot take, says which
and what they may be, and draws the lesson with the rest (issue 17, kind 9).

The library's ``read_link`` on real checkpoints, then the page in Chromium: each link's warning, fields and
drawn lesson. The view a link restores is read at page load by a private event, so there is no endpoint for
gradio_client to call: the browser is the way in."""

from __future__ import annotations

import pytest
from browser_page import launched_browser, new_app_page
from teaching_shelf import make_foreign_shelf
from test_app_browser import BROWSER_MARKS, open_tab

from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import LESSONS, read_link
from gptlab_app import build_app, launch_options

# The foreign shelf: 'gpt' (the page's default) has 1 layer and 2 heads, 'markup' 2 layers and 4 heads.
CASES = {  # link -> (the warnings, the model drawn, the layer and head the fields keep, -1 = best)
    "lesson=speaker&layer=99": (["layer 99 is not in 0..0 for gpt; searching every layer instead."], "gpt", -1, -1),
    "lesson=speaker&model=markup&layer=3&head=3": (
        ["layer 3 is not in 0..1 for markup; searching every layer instead."], "markup", -1, 3),
    "lesson=speaker&head=-5": (["head -5 is not in 0..1 for gpt; searching every head instead."], "gpt", -1, -1),
    "lesson=speaker&layer=abc&head=1": (
        ["layer 'abc' is not a whole number in 0..0 for gpt; searching every layer instead."], "gpt", -1, 1),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return Catalog.from_sources(make_foreign_shelf(tmp_path_factory)).load_all()


def read(catalog: Catalog, query: str, **options):
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    return read_link(params, {name: catalog.get(name) for name in catalog.attention_names}, "gpt", **options)


@pytest.mark.parametrize("query", CASES)
def test_a_link_keeps_its_valid_parameters_and_names_the_rest(catalog, query):
    warnings, model, layer, head = CASES[query]
    link = read(catalog, query)
    assert list(link.dropped) == warnings
    assert (link.view.lesson, link.view.model, link.view.layer, link.view.head) == ("speaker", model, layer, head)
    assert link.view.prompt == LESSONS["speaker"].prompt


def test_every_kind_of_bad_value_gives_way_to_the_lessons_own(catalog):
    link = read(catalog, "lesson=own-words&layer=7&seed=-1&extend=201&teacher=1")
    assert (link.view.layer, link.view.seed, link.view.extend, link.view.teacher) == (0, 7, 80, True)
    assert link.dropped == ("seed -1 is not in 0..2147483647; using the lesson's seed 7 instead.",
                            "extend 201 is not in 0..200; using the lesson's extend 80 instead.",
                            "layer 7 is not in 0..0 for gpt; using the lesson's layer 0 instead.")
    link = read(catalog, "lesson=nope&model=live&seed=5")
    assert (link.view.lesson, link.view.model, link.view.seed) == ("previous-char", "gpt", 5)
    assert link.dropped[0].startswith("lesson 'nope' is not one of previous-char, line-start,")
    assert link.dropped[1] == "model 'live' is not one of gpt, markup; using gpt instead."
    for prompt, why in (("", "is empty"), ("to be" * 5, "has 25 characters, over the limit of 20"),
                        ("to be?!", "has characters gpt has never seen ('?', '!')")):
        link = read(catalog, f"lesson=speaker&prompt={prompt}", max_prompt_chars=20)
        assert link.dropped == (f"prompt {why}; using the lesson's prompt instead.",)
        assert link.view.prompt == LESSONS["speaker"].prompt
    assert read(catalog, "lesson=speaker&prompt=to be").view.prompt == "to be"
    for value in ("9" * 500, "x" * 500):  # a link can be long; its warning is not
        assert len(read(catalog, "seed=" + value).dropped[0]) < 150


@pytest.fixture(scope="module")
def server(catalog):
    demo = build_app(catalog, "")
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser(server):
    with launched_browser() as browser:
        yield browser


def in_the_browser(test):
    """The browser tests' marks (skipped with the reason where there is no Chromium, unless CI requires one)."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@in_the_browser
@pytest.mark.parametrize("query", CASES)
def test_the_page_warns_and_draws_the_lesson_with_what_is_left(browser, server, query):
    warnings, model, layer, head = CASES[query]
    page = new_app_page(browser)
    try:
        page.goto(f"{server}?{query}")
        for warning in warnings:
            page.wait_for_function("want => [...document.querySelectorAll('[class*=toast]')]"
                                   ".some(t => t.innerText.includes(want))", arg=f"The link's {warning}")
        open_tab(page, "Lessons")
        page.wait_for_function("() => document.querySelector('#les-caption').innerText.includes('Who is speaking')")
        page.wait_for_selector("#les-heatmap .js-plotly-plot .main-svg")
        shown_layer, shown_head = int(page.input_value("#les-layer input")), int(page.input_value("#les-head input"))
        assert shown_layer >= 0 and shown_head >= 0 and head in (-1, shown_head) and layer in (-1, shown_layer)
        link = page.input_value("#les-link textarea")
        assert "lesson=speaker" in link and f"model={model}" in link
        assert f"layer={shown_layer}&head={shown_head}" in link
    finally:
        page.close()


def selected_tab(page) -> str:
    """The name of the tab Gradio marks selected (in the bar, or in its 'More tabs' menu at narrow widths)."""
    return page.evaluate("() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                         ".map(t => t.innerText.trim()).join('|')")


@in_the_browser
@pytest.mark.parametrize("query", ["lesson=copying", "lesson=speaker&layer=0&head=1", "model=markup"])
def test_a_lesson_link_opens_the_lessons_tab_without_a_click(browser, server, query):
    page = new_app_page(browser)
    try:
        page.goto(f"{server}?{query}")
        page.wait_for_function("() => document.querySelector('#les-caption') && "
                               "document.querySelector('#les-caption').innerText.includes('Layer')")
        page.wait_for_function("() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                               ".some(t => t.innerText.trim() === 'Lessons')")
        assert page.is_visible("#les-caption") and page.is_visible("#les-heatmap")
        assert not page.is_visible("#gen-btn")  # the Generate tab is not the one shown
    finally:
        page.close()


@in_the_browser
def test_a_page_without_a_lesson_link_opens_on_generate(browser, server):
    page = new_app_page(browser)
    try:
        page.goto(f"{server}?teacher=1")
        page.wait_for_selector("#gen-btn")
        # teacher=1 restyles the page from the Lessons tab's load events, which run beside the one that picks a tab
        page.wait_for_function("() => document.body.classList.contains('gptlab-teacher')")
        page.wait_for_timeout(1_000)
        assert "Generate" in selected_tab(page) and page.is_visible("#gen-btn")
    finally:
        page.close()
