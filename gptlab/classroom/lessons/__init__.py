"""Lessons: presets that draw the same attention view every time, shareable as a link or one HTML file.

``presets.py`` holds the lessons, the view a link restores and the data-driven caption;
``page.py`` draws a view (``draw_lesson`` -> ``LessonPage``, the one call behind the app's Lessons
tab) and writes pages as self-contained HTML. From the terminal (``__main__.py``, never imported
by the library): ``python -m gptlab.classroom.lessons export OUT_DIR [--teacher] [--model gpt]``.
"""

from .page import LessonPage, draw_lesson, lesson_view, lessons_html
from .presets import (
    LESSONS,
    MAX_EXTEND,
    Lesson,
    LessonView,
    LinkedView,
    caption,
    find_for,
    lesson_choices,
    read_link,
    resolve_head,
    view_from_query,
)

__all__ = [
    "LESSONS", "MAX_EXTEND", "Lesson", "LessonPage", "LessonView", "LinkedView", "caption", "draw_lesson", "find_for",
    "lesson_choices", "lesson_view", "lessons_html", "read_link", "resolve_head", "view_from_query",
]
