"""Lesson links: the view a page's address asks for (``?lesson=speaker&layer=1&head=2&teacher=1``), and the
address that reopens a view. The Lessons tab restores and shares views; Look closer reads teacher mode."""

from __future__ import annotations

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import LessonView, read_link

from .common import MAX_PROMPT_CHARS, warning
from .pickers import opening_model

LESSONS_TAB = "lessons"  # the id of the tab a lesson link opens (gptlab_app/tabs/lessons.py)
VIEW_KEYS = ("lesson", "model", "prompt", "seed", "extend", "layer", "head")  # teacher=1 alone targets no tab


def linked_view(catalog: Catalog, request: gr.Request | None, warn: bool = True) -> LessonView:
    """The lesson view the page's query parameters name (the first lesson when there are none), built from
    the valid ones: each parameter that the chosen model cannot take is left out and, unless ``warn`` is
    False, named in a warning with what it may be ("The link's layer 99 is not in 0..5 for gpt; ...")."""
    params = dict(request.query_params) if request is not None else {}
    models = {name: catalog.get(name) for name in catalog.attention_names}
    link = read_link(params, models, opening_model(catalog), MAX_PROMPT_CHARS)
    if warn:
        for sentence in link.dropped:
            warning(f"The link's {sentence}")
    return link.view


def opening_tab(request: gr.Request | None):
    """Page load: select the Lessons tab when the address names a lesson view (any of ``VIEW_KEYS``), so a
    student who opens a shared link sees the lesson, not the first tab; otherwise leave the tabs as they are."""
    params = dict(request.query_params) if request is not None else {}
    return gr.Tabs(selected=LESSONS_TAB) if any(key in params for key in VIEW_KEYS) else gr.skip()


def share_link(request: gr.Request | None, query: str) -> str:
    """The page's own address with the view's query: the Referer header when the browser sends it."""
    page = ""
    if request is not None:
        headers = getattr(request, "headers", None) or {}
        page = headers.get("referer") or ""
    return page.split("?")[0].split("#")[0] + query if page else query
