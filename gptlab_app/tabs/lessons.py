"""Lessons: ready-made views for a class that draw the same heatmaps every time, with a caption read from
the data; each view reopens from a link (``?lesson=speaker&layer=1&head=2&teacher=1``) and downloads as
one HTML file that opens with no server. Teacher mode restyles the whole page for a projector."""

from __future__ import annotations

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import (
    LESSONS,
    MAX_EXTEND,
    LessonPage,
    LessonView,
    draw_lesson,
    lesson_choices,
    lesson_view,
    lessons_html,
)
from gptlab.errors import InputError

from ..common import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    REFIT_PLOTS_JS,
    TEACH,
    bind,
    checked_prompt,
    library_errors,
    plot,
    quietly,
    whole,
)
from ..downloads import html_file
from ..links import linked_view, share_link
from ..pickers import Visitor, config_of, get_model, model_picker, opening_model, picker_updates
from ..teacher import TEACHER_JS


def page_of(catalog: Catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher) -> LessonPage:
    """The tab's values as a lesson view, drawn by the library (values checked first; GptlabError if bad)."""
    if lesson_id not in (None, ""):
        lesson_id = lesson_view(lesson_id if isinstance(lesson_id, str) else repr(lesson_id)).lesson  # known or refused
        if not (prompt or "").strip():
            prompt = LESSONS[lesson_id].prompt  # an API call that leaves the prompt out gets the lesson's own
    elif prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise InputError(f"No lesson is chosen and the prompt is empty: choose a lesson ({', '.join(LESSONS)}) "
                         "or write a prompt.")
    prompt = checked_prompt(prompt)
    checkpoint = get_model(catalog, model, None)
    config = checkpoint.config
    view = LessonView(lesson_id or "", model, prompt, whole(seed, "seed", 0, MAX_SEED),
                      whole(extend, "extend", 0, MAX_EXTEND), whole(layer, "layer", -1, config.n_layer - 1),
                      whole(head, "head", -1, config.n_head - 1), bool(teacher))
    return draw_lesson(checkpoint, view, baseline_of(catalog, view.lesson))


def baseline_of(catalog: Catalog, lesson_id: str) -> Checkpoint | None:
    """The checkpoint a lesson compares against ("Where does context pay?": the bigram), if offered here."""
    lesson = LESSONS.get(lesson_id)
    return catalog.get(lesson.baseline) if lesson and lesson.baseline in catalog.names else None


def draw(catalog: Catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher=False,
         request: gr.Request = None) -> tuple:
    """Draw a lesson: caption from the data, heatmap, labelled grid, resolved layer/head, share link."""
    with library_errors():
        page = page_of(catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher)
    # the figures are already in teacher style when asked
    return (page.summary, plot(page.heatmap), plot(page.grid), page.view.layer, page.view.head,
            share_link(request, page.view.query()))


def draw_on_load(catalog: Catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher=False,
                 request: gr.Request = None) -> tuple:
    """The restored lesson drawn at page load (a view this model cannot draw stays empty: see quietly)."""
    return quietly(lambda: draw(catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher, request), 6)


def html(catalog: Catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher=False) -> str:
    """This lesson view as one HTML file that opens with no server and no network (plotly.js inside)."""
    with library_errors():
        page = page_of(catalog, lesson_id, model, prompt, seed, extend, layer, head, teacher)
    with library_errors():
        return html_file(lessons_html([page]), f"{page.view.lesson or 'view'}-{model}")


def all_html(catalog: Catalog, model, teacher=False) -> str:
    """Every lesson with this model in one HTML file that opens with no server and no network."""
    with library_errors():
        checkpoint = get_model(catalog, model, None)
        pages = [draw_lesson(checkpoint, lesson_view(lesson, model, bool(teacher)), baseline_of(catalog, lesson))
                 for lesson in LESSONS]
        return html_file(lessons_html(pages), f"all-lessons-{model}")


def fields(catalog: Catalog, lesson_id) -> tuple:
    """Fill the lesson's fields (layer/head -1: the best head is found when drawing)."""
    with library_errors():
        lesson = LESSONS[lesson_view(lesson_id).lesson]  # InputError for a lesson there is not
    model = lesson.model if lesson.model in catalog.attention_names else opening_model(catalog)
    return (model, lesson.prompt, lesson.seed, lesson.extend, lesson.layer, lesson.head,
            f"**Look for:** {lesson.look_for}")


def restore(catalog: Catalog, request: gr.Request) -> tuple:
    """Page load: the lesson and view named in the URL's query parameters (or the first lesson), with a
    warning for each parameter left out."""
    view = linked_view(catalog, request)
    model = view.model if view.model in catalog.attention_names else opening_model(catalog)
    return view.lesson, model, view.prompt, view.seed, view.extend, view.layer, view.head, view.teacher


def fit_pickers(catalog: Catalog, model, layer, head) -> tuple[dict, dict]:
    """The lesson's layer and head fields (-1 = best) bounded by the chosen model; a value it lacks is -1."""
    return picker_updates(config_of(catalog, model), layer, head, best=True)


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Lessons tab: the lesson, its fields and link beside its caption and heatmap; grid; HTML downloads."""
    with gr.Tab("Lessons", id="lessons") as tab:
        gr.Markdown("Ready-made views for a class. Each lesson draws the same heatmaps every time; the link "
                    "below reopens exactly this view. Teacher mode: large text, light page, Cividis colours.")
        with gr.Row():
            with gr.Column(scale=1):
                lesson = gr.Dropdown(lesson_choices(), value="previous-char", label="lesson", elem_id="les-lesson")
                teacher = gr.Checkbox(False, label="teacher mode (projector)", elem_id="les-teacher")
                model = model_picker(catalog, "les-model")
                prompt = gr.Textbox("", lines=3, label="prompt", elem_id="les-prompt", max_length=MAX_PROMPT_CHARS)
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="seed", elem_id="les-seed")
                    extend = gr.Number(0, precision=0, label="generate first (tokens)", elem_id="les-extend")
                with gr.Row():
                    layer = gr.Number(-1, precision=0, label="layer (-1 = best)", elem_id="les-layer")
                    head = gr.Number(-1, precision=0, label="head (-1 = best)", elem_id="les-head")
                button = gr.Button("Show lesson", variant="primary", elem_id="les-btn")
                look_for = gr.Markdown(elem_id="les-look")
                link = gr.Textbox(label="share this view (link)", elem_id="les-link", buttons=["copy"])
            with gr.Column(scale=2):
                caption = gr.Markdown(elem_id="les-caption")
                heatmap = gr.Plot(show_label=False, elem_id="les-heatmap")
        grid = gr.Plot(show_label=False, elem_id="les-grid")
        with gr.Row():  # for a class with no server or network: plotly.js, caption and styling inside the file
            one_html = gr.Button("Download this view as HTML (opens offline)", elem_id="les-html")
            every_html = gr.Button("Download every lesson as one HTML file", elem_id="les-all-html")
            file = gr.File(label="HTML to open from a USB stick", elem_id="les-file", interactive=False)
    inputs = [lesson, model, prompt, seed, extend, layer, head, teacher]
    outputs = [caption, heatmap, grid, layer, head, link]
    # the lesson named in the link (or the first) drawn at page load; the visitor's own draws cancel it
    on_load = visitor.demo.load(bind(restore, catalog), None, inputs, api_visibility="private").then(
        bind(draw_on_load, catalog), inputs, outputs, api_visibility="private", **TEACH)
    tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
    button.click(bind(draw, catalog), inputs, outputs, api_name="lesson", cancels=[on_load], **TEACH)
    lesson.input(bind(fields, catalog), lesson, [model, prompt, seed, extend, layer, head, look_for],
                 api_visibility="private", cancels=[on_load]).then(
        bind(draw, catalog), inputs, outputs, api_visibility="private", **TEACH)
    teacher.change(lambda on: on, teacher, visitor.teacher, api_visibility="private")  # for the other tabs
    teacher.input(bind(draw, catalog), inputs, outputs, api_visibility="private", cancels=[on_load], **TEACH)
    teacher.change(None, teacher, None, js=TEACHER_JS, api_visibility="private")  # restyle the page
    model.change(bind(fit_pickers, catalog), [model, layer, head], [layer, head], api_visibility="private")
    one_html.click(bind(html, catalog), inputs, file, api_name="lesson_html", **TEACH)
    every_html.click(bind(all_html, catalog), [model, teacher], file, api_name="all_lessons_html",
                     concurrency_id="export", concurrency_limit=1)  # six lessons: one such run at a time
