"""A toast shows a visitor's or a model's text literally: Gradio renders the message of gr.Error, gr.Warning
and gr.Info as HTML, so markup in a link's value, a prompt or a name must come out as text (issue 17, kind 7).

Through gradio_client the messages come back escaped; in Chromium a crafted lesson link puts no link, image or
bold text into the page, and the page requests nothing from the address the link names."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from teaching_shelf import make_foreign_shelf
from test_app_browser import ARGS, BROWSER_MARKS, CHROMIUM

from gptlab.classroom.catalog import Catalog
from gptlab_app import build_app, launch_options

APP = Path(__file__).resolve().parent.parent / "gptlab_app"
TOASTS = {"Error", "Warning", "Info"}
LINK = '<a href="https://example.invalid/fix">Your teacher says: click here</a>'
IMAGE = '<img src="https://example.invalid/pixel.png">'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    shelf = make_foreign_shelf(tmp_path_factory)  # its gpt never saw '<', '=' or '>'
    demo = build_app(Catalog.from_sources(shelf).load_all(), str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(shelf))
    yield url
    demo.close()


def test_every_toast_is_made_by_the_one_escaping_helper():
    """gr.Error, gr.Warning and gr.Info are built only in common.py (error(), warning()), so no other module
    can put unescaped text into a toast."""
    made = []
    for path in sorted(APP.rglob("*.py")):
        if path.name == "common.py" and path.parent == APP:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in TOASTS:
                made.append(f"{path.relative_to(APP.parent)}:{node.lineno} {ast.unparse(func)}")
    assert made == []


def error_of(client: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api_name)
    return str(caught.value)


def test_error_messages_come_back_escaped(server):
    client = Client(server, verbose=False, analytics_enabled=False, download_files=False)
    # a number field given text: the app's own input guard quotes the value
    message = error_of(client, "speaker", "gpt", "to be", "<img src=x>", 0, -1, -1, False, api_name="/lesson")
    assert "got '&lt;img src=x&gt;'" in message and "<img" not in message
    # a library error (UnknownCharactersError) lists the prompt's characters the model never saw
    message = error_of(client, "speaker", "gpt", "<img src=x>", 0, 0, -1, -1, False, api_name="/lesson")
    assert "'&lt;'" in message and "'&gt;'" in message and "<" not in message


def in_the_browser(test):
    """The browser tests' marks (skipped with the reason where there is no Chromium, unless CI requires one)."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@in_the_browser
def test_a_crafted_lesson_link_shows_its_values_as_text(server):
    from playwright.sync_api import sync_playwright

    asked = []  # every request for the crafted link's address: answered with nothing, and recorded
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(45_000)
            page.route(lambda url: urlsplit(url).hostname == "example.invalid",
                       lambda route: (asked.append(route.request.url), route.abort()))
            page.goto(f"{server}?lesson=speaker&seed={quote(LINK + IMAGE)}&layer={quote('<b>BOLD</b>')}")
            page.wait_for_function("() => [...document.querySelectorAll('[class*=toast]')]"
                                   ".some(t => t.innerText.includes('is not a whole number'))")
            time.sleep(1)  # time for an image in a toast to be requested
            toasts = " ".join(page.eval_on_selector_all("[class*=toast]", "ts => ts.map(t => t.innerText)"))
            markup = page.eval_on_selector_all("[class*=toast] a, [class*=toast] img, [class*=toast] b",
                                               "els => els.map(e => e.outerHTML)")
        finally:
            browser.close()
    assert markup == [] and asked == []
    assert LINK[:40] in toasts and "<b>BOLD</b>" in toasts  # the values themselves, shown as typed
