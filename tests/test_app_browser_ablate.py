"""Knock out heads in Debian Chromium, on the shipped checkpoints as a learner's `python app.py` serves them:
check a head's box, press the button, and the chart of the next token before and after is drawn with both
bars. Screenshots go to test-output/."""

from __future__ import annotations

from app_process import REPO
from browser_page import opened_page, shipped_app_url  # noqa: F401 (the app_url and page fixtures)
from test_app_browser import BROWSER_MARKS, SHOTS, open_tab, plot_width

pytestmark = BROWSER_MARKS


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


def test_the_which_head_lesson_draws_the_head_the_model_needs_most(page):
    """A lesson link to "Which head matters?" with blocks: caption, heatmap and head fields name the head whose
    removal raises the validation loss most (rank_heads on the same fixed val batches)."""
    from gptlab import load_checkpoint
    from gptlab.inside.ablation import rank_heads, shakespeare_val_batches

    checkpoint = load_checkpoint(REPO / "checkpoints" / "blocks")
    layer, head, rise = rank_heads(checkpoint.model, shakespeare_val_batches(checkpoint))[0]
    page.goto(page.url.split("?")[0] + "?lesson=which-head&model=blocks")
    page.wait_for_selector("#les-btn")  # a lesson link opens on the Lessons tab (4ff7ad5)
    open_tab(page, "Lessons")
    page.wait_for_function("(document.querySelector('#les-caption') || {}).innerText?.includes('of all 12 heads')",
                           timeout=120_000)
    caption = page.inner_text("#les-caption")
    assert f"Switching off layer {layer}, head {head} alone" in caption
    assert f"({rise:+.4f}): the most of all 12 heads" in caption
    page.wait_for_selector("#les-heatmap .js-plotly-plot .hm")
    # the head fields end on the resolved head: the model change's picker answer, which may land later, used to
    # write the link's stale -1 ("best") back over them (gptlab_app/pickers.py keeps a kept value unsent)
    page.wait_for_function(
        "([layer, head]) => document.querySelector('#les-layer input')?.value === layer"
        " && document.querySelector('#les-head input')?.value === head", arg=[str(layer), str(head)], timeout=30_000)
    assert f"blocks · layer {layer} · head {head}" in page.locator("#les-heatmap .gtitle").text_content()
    assert plot_width(page, "#les-heatmap") > 300
    page.screenshot(path=str(SHOTS / "lesson-which-head.png"), full_page=True)
