"""Views drawn when the page opens, in Debian Chromium: the Attention explorer, Look closer and Lessons
show their plots with the default model and prompt as soon as their tab is shown, with no button
pressed, each at the width of its box.

The app serves the shipped checkpoints, as a learner's `python app.py` does (the default model is
the shipped gpt, which reads every default prompt). Each test opens a fresh page and only selects tabs.
"""

from __future__ import annotations

import pytest
from browser_page import module_browser, new_app_page, shipped_app_url  # noqa: F401 (the app_url and browser fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

pytestmark = BROWSER_MARKS

# tab -> (its note or caption, [(plot, what a drawn one holds, least width in px)]); at a 1400 px
# viewport a plot beside the inputs column is ~800 px wide, a full-row plot ~1200 px, a narrow one ~400
VIEWS = {
    "Attention explorer": ("#att-note", [("#att-heatmap", ".hm", 700), ("#att-grid", ".hm", 1000),
                                         ("#att-avg", ".hm", 700), ("#att-bars", ".bars", 300)]),
    "Look closer": ("#closer-sentence", [("#closer-heatmap", ".hm", 700), ("#closer-grid", ".hm", 1000),
                                         ("#closer-rollout", ".hm", 700), ("#closer-rollbar", ".bars", 300),
                                         ("#closer-lens", ".hm", 1000)]),
    "Lessons": ("#les-caption", [("#les-heatmap", ".hm", 700), ("#les-grid", ".hm", 1000)]),
}
# what each view says once drawn for the shipped gpt and the tab's default prompt or lesson
SAYS = {"Attention explorer": "gpt sees", "Look closer": "Layer 0, head 0", "Lessons": "previous-character"}


@pytest.fixture
def new_page(browser):
    pages = []

    def open_page():
        page = new_app_page(browser)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


def assert_drawn(page, tab: str) -> None:
    """Every plot of the tab's view drawn, as wide as its box, and the view's text filled in."""
    note, plots = VIEWS[tab]
    for selector, mark, least in plots:
        page.wait_for_selector(f"{selector} .js-plotly-plot {mark}")
        assert plot_width(page, selector) > least, f"{selector} drawn too narrow"
    assert SAYS[tab] in page.inner_text(note)


@pytest.mark.parametrize("tab", list(VIEWS))
def test_the_view_is_drawn_when_its_tab_is_opened_without_a_click(new_page, app_url, tab):
    page = new_page()
    page.goto(app_url)
    page.wait_for_selector("#gen-btn")
    open_tab(page, tab)
    assert_drawn(page, tab)
    # the explorers open on layer 0, head 0; a lesson on the head it looks for (the default lesson: the model's
    # clearest previous-character head), which its layer and head fields show
    shown = ((page.input_value("#les-layer input"), page.input_value("#les-head input")) if tab == "Lessons"
             else ("0", "0"))
    assert f"gpt · layer {shown[0]} · head {shown[1]}" in page.locator(f"{VIEWS[tab][1][0][0]} .gtitle").text_content()
    page.screenshot(path=str(SHOTS / f"open-{tab.split()[0].lower()}.png"), full_page=True)


def test_views_that_arrive_while_their_tab_is_hidden_fit_when_it_is_shown(new_page, app_url):
    # Hold the page's first requests to the queue (its on-open draws) while the visitor opens the three
    # tabs and leaves them: the answers then land in hidden tabs, where Plotly falls back to 700 px.
    page = new_page()
    held, holding = [], [True]
    page.route("**/queue/join*", lambda route: held.append(route) if holding[0] else route.continue_())
    page.goto(app_url)
    page.wait_for_selector("#gen-btn")
    for tab in VIEWS:
        open_tab(page, tab)
    open_tab(page, "Generate")
    holding[0] = False
    for route in held:
        route.continue_()
    assert held, "the page asked for no on-open draw"
    for tab in VIEWS:  # let every view arrive while Generate is shown
        page.wait_for_function("s => document.querySelector(s + ' .js-plotly-plot .main-svg') !== null",
                               arg=VIEWS[tab][1][0][0])
    for tab in VIEWS:
        open_tab(page, tab)
        page.wait_for_timeout(500)  # the refit runs just after the tab is shown
        assert_drawn(page, tab)


def test_a_lesson_link_keeps_its_view_while_the_other_views_draw(new_page, app_url):
    page = new_page()
    page.goto(f"{app_url}?lesson=line-start&layer=1&head=2")
    page.wait_for_selector("#les-btn")  # a lesson link opens on the Lessons tab (4ff7ad5)
    for tab in ("Attention explorer", "Look closer"):  # their on-open draws have come back
        open_tab(page, tab)
        page.wait_for_selector(f"{VIEWS[tab][1][0][0]} .js-plotly-plot .hm")
    open_tab(page, "Lessons")
    page.wait_for_selector("#les-heatmap .js-plotly-plot .hm")
    assert "gpt · layer 1 · head 2" in page.locator("#les-heatmap .gtitle").text_content()
    assert "Layer 1, head 2" in page.inner_text("#les-caption") and "Where does the line start" in page.inner_text(
        "#les-caption")
    assert "lesson=line-start" in page.input_value("#les-link textarea")
