"""Teacher mode, for a projector: large type, a light page and (from gptlab.figures) a colour-blind-safe scale.

The Lessons tab's checkbox, or ``?teacher=1`` in a lesson link, puts the class ``gptlab-teacher`` on the body.
"""

TEACHER_CSS = """
body.gptlab-teacher, body.gptlab-teacher .gradio-container {background: #ffffff !important; color: #111 !important;
  --body-text-size: 20px; --text-md: 20px; --text-lg: 22px; --text-sm: 18px; --block-label-text-size: 18px;
  --input-text-size: 20px; --prose-text-size: 20px; font-size: 20px}
body.gptlab-teacher textarea, body.gptlab-teacher input {font-size: 20px !important}
body.gptlab-teacher .prose, body.gptlab-teacher .prose * {font-size: 21px !important}
/* dark ink for prose, but not over a shaded token: its own ink follows its shade (gptlab.figures.follow) */
body.gptlab-teacher .prose, body.gptlab-teacher .prose *:not(.gl-tok) {color: #111 !important}
#les-caption, #closer-sentence, #across-sentence {font-size: 1.1em}
"""
TEACHER_JS = """(on) => {
  document.body.classList.toggle('gptlab-teacher', Boolean(on));
  if (on) { document.body.classList.remove('dark'); }
  return [];
}"""
# Prepended to an event's js= whose first input is a hidden 'teacher' checkbox: sends whether the page is in
# teacher mode now (a tab built before the visitor's shared state reads it from the page).
PAGE_TEACHER_JS = "document.body.classList.contains('gptlab-teacher')"
