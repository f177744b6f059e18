"""Lesson links: the view a page's address asks for (``?lesson=speaker&layer=1&head=2&teacher=1``), and the
address that reopens a view. The Lessons tab restores and shares views; Look closer reads teacher mode."""

from __future__ import annotations

import gradio as gr

from gptlab.classroom.lessons import LessonView, view_from_query
from gptlab.errors import GptlabError


def linked_view(request: gr.Request | None, warn: bool = True) -> LessonView:
    """The lesson view the page's query parameters name; the first lesson when there are none or they are bad
    (with a warning to the visitor unless ``warn`` is False)."""
    params = dict(request.query_params) if request is not None else {}
    try:
        return view_from_query(params)
    except GptlabError as exc:
        if warn:
            gr.Warning(f"{exc} Showing the first lesson instead.")
        return view_from_query({})


def share_link(request: gr.Request | None, query: str) -> str:
    """The page's own address with the view's query: the Referer header when the browser sends it."""
    page = ""
    if request is not None:
        headers = getattr(request, "headers", None) or {}
        page = headers.get("referer") or ""
    return page.split("?")[0].split("#")[0] + query if page else query
