"""The teaching tabs of the gptlab app (Gradio UI only; the logic lives in gptlab/).

``app.py`` stays the entry point; it calls ``add_teaching_tabs`` inside its Blocks.
"""

from .tabs import TEACHER_CSS, add_teaching_tabs, make_teaching_handlers

__all__ = ["TEACHER_CSS", "add_teaching_tabs", "make_teaching_handlers"]
