"""What a class needs around the model: the catalog of models offered, lessons, live training.

Built on the core, ``inside`` and ``figures``; nothing below imports it.
"""

from .catalog import Catalog, Entry
from .lessons import LESSONS, LessonPage, LessonView, draw_lesson, lesson_view, lessons_html
from .live import LiveConfig, LiveReport, train_live
from .live_slots import LiveSlots

__all__ = [
    "LESSONS", "Catalog", "Entry", "LessonPage", "LessonView", "LiveConfig", "LiveReport", "LiveSlots",
    "draw_lesson", "lesson_view", "lessons_html", "train_live",
]
