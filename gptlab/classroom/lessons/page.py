"""Lessons as self-contained HTML: one file a teacher copies to a USB stick and opens with no server.

Everything a page needs is inside the file: plotly.js (inlined once per file), every figure's data,
the caption and the styling (teacher mode: large type, the Cividis scale). It opens by double-click
(``file://``) and requests nothing from the network. In a notebook::

    page = draw_lesson(load_checkpoint("checkpoints/gpt"), lesson_view("previous-char", teacher=True))
    Path("lesson.html").write_text(lessons_html([page]), encoding="utf-8")

``python -m gptlab.classroom.lessons export OUT_DIR`` writes every lesson this way.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace

import plotly.graph_objects as go
from markdown_it import MarkdownIt

from ...checkpoint import Checkpoint
from ...errors import InputError, shown_value
from ...figures.attention import attention_heatmap, head_grid
from ...figures.style import PLOT_CONFIG, teacher_style
from ...generate import generate_ids
from ...inside.explore import attention_view_ids
from ...inside.heads import label_heads, unit_for
from ...markdown import code_span
from ...prompts import fit_builtin
from ...sampling import GenerationSettings
from .context import context_lesson
from .copying import copying_caption
from .matters import NEEDED, head_ranking, ranking_caption
from .presets import LESSONS, MAX_EXTEND, LessonView, caption, find_for, resolve_head

EXTEND_TEMPERATURE = 0.8  # a lesson's seeded continuation, as the app's Lessons tab writes it
PAGE_CSS = """
body {font-family: "DejaVu Sans", Arial, sans-serif; font-size: 16px; line-height: 1.45; color: #1a1a1a;
  background: #fafafa; max-width: 1150px; margin: 0 auto; padding: 1em 1.5em 3em}
section {background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 0.5em 1.2em 1em; margin: 1.5em 0}
code {font-family: "DejaVu Sans Mono", monospace; background: #f0f0f0; padding: 0 0.2em; border-radius: 3px}
.meta {color: #555; font-size: 0.85em}
nav a {margin-right: 1em}
body.teacher {font-size: 22px; color: #111; background: #fff}
body.teacher h1 {font-size: 36px} body.teacher h2 {font-size: 30px}
body.teacher section {border-color: #999}
"""
_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # raw HTML in a caption shows as text, never as markup


@dataclass(frozen=True)
class LessonPage:
    """One lesson drawn with one model: the view (layer and head resolved), its words and its figures.

    ``heatmap`` draws the head's ``[query, key]`` attention over the T tokens of the prompt (and of
    its seeded continuation); ``grid`` draws the layer's ``[head, query, key]`` on one colour scale.
    """

    view: LessonView  # layer and head are the ones drawn (never -1)
    title: str
    look_for: str  # what the teacher points at ('' for a view that is not a preset lesson)
    caption: str  # Markdown, computed from the head's pattern (lessons.caption), after the ranking if it has one
    heatmap: go.Figure  # the head's attention, [query, key]
    grid: go.Figure  # every head of the layer on one colour scale, each titled with its label
    note: str = ""  # Markdown: which characters of a built-in prompt this model never saw and left out

    @property
    def summary(self) -> str:
        """Markdown for the Lessons tab: the lesson and what to look for, the caption, the prompt's note."""
        text = self.caption
        if self.look_for:
            title = self.title if self.title.endswith((".", "?", "!")) else f"{self.title}."  # keep a question
            text = f"**{title}** Look for {self.look_for}\n\n{text}"
        return text + (f"\n\n⚠️ {self.note}" if self.note else "")


def lesson_view(lesson_id: str, model: str = "gpt", teacher: bool = False) -> LessonView:
    """The preset lesson ``lesson_id`` as a view of ``model`` (layer/head still to find); InputError if unknown."""
    lesson = LESSONS.get(lesson_id)
    if lesson is None:
        raise InputError(f"No lesson {lesson_id!r}; the lessons are: {', '.join(LESSONS)}.")
    return LessonView(lesson.id, model, lesson.prompt, lesson.seed, lesson.extend, lesson.layer, lesson.head, teacher)


def draw_lesson(checkpoint: Checkpoint, view: LessonView, baseline: Checkpoint | None = None) -> LessonPage:
    """Draw ``view`` with ``checkpoint``: generate its seeded continuation, capture attention, find the head.
    A lesson with a baseline ("Where does context pay?") colours its text by bits instead, against ``baseline``
    (the checkpoint of the lesson's ``baseline`` model; without it the model's own bits alone).

    The same view gives the same page every time. A built-in prompt is fitted to the model (characters
    it never saw are left out, and ``note`` says so); a person's own prompt is kept. Raises InputError
    for a seed, layer, head or length that is not a whole number or out of range, and UnknownCharactersError
    for a prompt the model cannot read.
    """
    config = checkpoint.config
    for name in ("seed", "extend", "layer", "head"):  # 1.5 would fail deep inside, as a TypeError
        value = getattr(view, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy's ints too
            raise InputError(f"The lesson's {name} must be a whole number, got {shown_value(value)}.")
    bounds = (("extend", view.extend, 0, MAX_EXTEND), ("layer", view.layer, -1, config.n_layer - 1),
              ("head", view.head, -1, config.n_head - 1))
    for name, value, low, high in bounds:
        if not low <= value <= high:
            raise InputError(f"The lesson's {name}={shown_value(value)} is outside {low}..{high} for this model.")
    fit = fit_builtin(checkpoint.tokenizer, view.prompt)  # the view (and its link) keeps the lesson's own prompt
    ids = checkpoint.tokenizer.encode(fit.text)
    if not ids:
        raise InputError("The lesson's prompt is empty: give it some text to look at.")
    lesson = LESSONS.get(view.lesson)
    if lesson is not None and lesson.baseline:  # bits per token, not attention: no continuation, no head
        return _context_page(checkpoint, baseline, view, fit.text, fit.note(code_span) if fit.changed else "")
    if view.extend:
        settings = GenerationSettings(max_new_tokens=view.extend, temperature=EXTEND_TEMPERATURE, seed=view.seed)
        # the ids the model wrote, as it wrote them: decoded and re-encoded, BPE text gives other tokens
        ids = ids + list(generate_ids(checkpoint.model, ids, settings))
    seen = attention_view_ids(checkpoint.model, checkpoint.tokenizer, ids)
    labels = label_heads(seen.patterns, seen.tokens, seen.ids)
    find = find_for(view)
    ranking = head_ranking(checkpoint, ids) if find == NEEDED else None  # "Which head matters?"
    layer, head = (ranking.resolve(view.layer, view.head) if ranking
                   else resolve_head(labels, view.layer, view.head, find))
    pattern = seen.patterns[layer][head]  # [query, key]
    words = caption(pattern, seen.tokens, seen.labels, labels[layer][head], unit_for(checkpoint.tokenizer.kind))
    if find == "induction":  # "Copying what came before": what the earlier copy is worth, in bits
        words = f"{words}\n\n{copying_caption(checkpoint, ids, view.model, unit_for(checkpoint.tokenizer.kind))}"
    heatmap = attention_heatmap(pattern, seen.labels, f"{view.model} · layer {layer} · head {head}")
    grid = head_grid(seen.patterns[layer], seen.labels, f"All heads of layer {layer}",
                     panel_titles=[label.panel_title for label in labels[layer]])
    if view.teacher:
        heatmap, grid = teacher_style(heatmap), teacher_style(grid)
    lesson = LESSONS.get(view.lesson)
    return LessonPage(
        view=replace(view, layer=layer, head=head),
        title=lesson.title if lesson else f"{view.model}: layer {layer}, head {head}",
        look_for=lesson.look_for if lesson else "",
        caption=f"{ranking_caption(ranking, layer, head)}\n\n{words}" if ranking else words,
        heatmap=heatmap,
        grid=grid,
        note=fit.note(code_span) if fit.changed else "",
    )


def _context_page(checkpoint: Checkpoint, baseline: Checkpoint | None, view: LessonView, text: str,
                  note: str) -> LessonPage:
    """A lesson with a baseline: its text coloured by model − baseline (heatmap) and by the model's bits (grid)."""
    lesson = LESSONS[view.lesson]
    words, difference, own = context_lesson(checkpoint, baseline, text, view.model, lesson.baseline)
    if view.teacher:
        difference, own = teacher_style(difference), teacher_style(own)
    return LessonPage(view=view, title=lesson.title, look_for=lesson.look_for, caption=words, heatmap=difference,
                      grid=own, note=note)


def lessons_html(pages: Sequence[LessonPage], title: str | None = None) -> str:
    """One HTML document holding every page (plotly.js inlined once); teacher style if every page asks for it.

    ``title`` names the document (default: the page's own title for one page, "gptlab lessons" for
    several). The document loads nothing from anywhere: no ``src`` or ``href`` leaves the file.
    """
    if not pages:
        raise InputError("No lessons to write: give at least one page.")
    title = title or (pages[0].title if len(pages) == 1 else "gptlab lessons")
    teacher = all(page.view.teacher for page in pages)
    sections = []
    for i, page in enumerate(pages):
        anchor = f"lesson-{i + 1}"
        figures = [_figure_html(fig, f"{anchor}-{part}", first=i == 0 and part == "heatmap")
                   for part, fig in (("heatmap", page.heatmap), ("grid", page.grid))]
        look = f'<p class="look"><strong>Look for:</strong> {html.escape(page.look_for)}</p>' if page.look_for else ""
        v = page.view
        against = LESSONS[v.lesson].baseline if v.lesson in LESSONS else ""
        shape = f"against <code>{html.escape(against)}</code>" if against else f"layer {v.layer} · head {v.head}"
        meta = (f"Model <code>{html.escape(v.model)}</code> · {shape} · seed {v.seed}"
                f"{f' · {v.extend} tokens generated first' if v.extend else ''} · prompt "
                f"<code>{html.escape(v.prompt)}</code> · the same view in the app: "
                f"<code>{html.escape(v.query())}</code>")
        sections.append(f'<section id="{anchor}">\n<h2>{html.escape(page.title)}</h2>\n{look}\n'
                        f'<div class="caption">{_MARKDOWN.render(page.caption)}{_MARKDOWN.render(page.note)}</div>\n'
                        + "\n".join(figures) + f'\n<p class="meta">{meta}</p>\n</section>')
    header = ""  # one page: its own heading is the title
    if len(pages) > 1:
        links = "".join(f'<a href="#lesson-{i + 1}">{html.escape(p.title)}</a>' for i, p in enumerate(pages))
        header = f"<h1>{html.escape(title)}</h1>\n<nav>{links}</nav>\n"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_CSS}</style>\n</head>\n"
            f'<body class="{"teacher" if teacher else "learner"}">\n{header}'
            f"<p>Attention heatmaps from gptlab: rows are queries, columns the keys each may look at. "
            f"Hover over a cell to read its weight (on a coloured text: its bits, rank and top guesses). "
            f"This file needs no server and no network.</p>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def _figure_html(fig: go.Figure, div_id: str, first: bool) -> str:
    """A figure as a <div> and its script; the first one of a file carries plotly.js inline."""
    config = {**PLOT_CONFIG, "responsive": True}
    config["toImageButtonOptions"] = {**config["toImageButtonOptions"], "filename": div_id}
    return fig.to_html(full_html=False, include_plotlyjs=bool(first), include_mathjax=False, config=config,
                       div_id=div_id)
