"""Event functions of the teaching tabs: validate, call one gptlab function, draw what it returns."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import (
    LESSONS,
    MAX_EXTEND,
    LessonPage,
    LessonView,
    draw_lesson,
    lesson_view,
    lessons_html,
    view_from_query,
)
from gptlab.classroom.live import MAX_CHARS, MAX_SECONDS, LiveConfig, LiveSlots, nats_to_text, train_live
from gptlab.data import TINY_SHAKESPEARE, load_text
from gptlab.errors import ExportError, GptlabError
from gptlab.figures import (
    attention_heatmap,
    candidates_figure,
    contribution_bar,
    head_grid,
    live_loss_figure,
    logit_lens_figure,
    rollout_heatmap,
    step_attention_figure,
    teacher_style,
    training_strip,
)
from gptlab.figures.export import safe_name, write_data, write_images
from gptlab.inside import across_view, attention_view, closer_look, step_once
from gptlab.markdown import code_span
from gptlab.prompts import fit_builtin
from gptlab.sampling import GenerationSettings
from gptlab.snapshots import SnapshotCache, find_snapshots

from .common import LIVE, checked_prompt, error, fitted_prompt, get_model, picker_updates, plot, quietly, whole

LIVE_CAP = 2  # live trainings at once on the whole server: each takes one CPU thread
STEP_TOP_K = 100  # Step through's top-k slider: at most this, or the vocabulary if smaller
LIVE_REPORT_S = 3.0


def export_root() -> Path:
    """A folder Gradio serves from: its own upload/cache folder (files created there are allowed)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()) / "gptlab-export"


@functools.lru_cache(maxsize=1)
def shakespeare() -> str:
    """Tiny Shakespeare's first MAX_CHARS characters (the shipped copy, read once)."""
    return load_text(TINY_SHAKESPEARE)[:MAX_CHARS]


def _view(checkpoint, prompt: str):
    try:
        return attention_view(checkpoint.model, checkpoint.tokenizer, prompt)
    except GptlabError as exc:
        raise error(exc) from None


def _lesson_page(checkpoint, lesson_id, model, prompt, seed, extend, layer, head, teacher) -> LessonPage:
    """The Lessons tab's values as a view, drawn by the library (numbers checked, errors as gr.Error)."""
    config = checkpoint.config
    view = LessonView(lesson_id or "", model, prompt, whole(seed, "seed", 0, 2**31 - 1),
                      whole(extend, "extend", 0, MAX_EXTEND), whole(layer, "layer", -1, config.n_layer - 1),
                      whole(head, "head", -1, config.n_head - 1), bool(teacher))
    try:
        return draw_lesson(checkpoint, view)
    except GptlabError as exc:
        raise error(exc) from None


def _html_file(text: str, stem: str) -> str:
    """Write a page where Gradio serves downloads from (a fresh folder per request); its path."""
    path = export_root() / uuid.uuid4().hex / f"{safe_name(stem)}.html"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def _pick(config, layer, head) -> tuple[int, int]:
    return (whole(layer, "layer", 0, config.n_layer - 1), whole(head, "head", 0, config.n_head - 1))


def make_teaching_handlers(catalog: Catalog, snapshots_of: str | None = None, live_cap: int = LIVE_CAP,
                           live_report_s: float = LIVE_REPORT_S) -> dict:
    """The teaching tabs' event functions, closed over the catalog, the snapshot cache and the live slots."""
    cache = SnapshotCache()
    slots = LiveSlots(live_cap)
    default = catalog.default("gpt", catalog.attention_names)
    if snapshots_of is None and default is not None:
        snapshots_of = str(catalog.get(default).folder)

    def snapshots():
        return find_snapshots(snapshots_of) if snapshots_of else []

    # ---- 1. attention across training -------------------------------------------------------
    def across_steps_fn():
        """The snapshot slider fitted to the snapshots on disk now (a running training adds more)."""
        found = snapshots()
        top = max(len(found) - 1, 1)
        return gr.update(maximum=top, value=min(len(found) - 1, top) if found else 0, interactive=len(found) > 1)

    def across_fn(prompt, layer, head, index, teacher=False):
        """One snapshot: note (step, val loss), head heatmap, labelled grid, its sample, the head sentence."""
        prompt = checked_prompt(prompt)
        index = whole(index, "snapshot", 0, 10**6)
        layer, head = whole(layer, "layer", 0, 10**6), whole(head, "head", 0, 10**6)  # across_view checks the model
        try:
            look = across_view(snapshots(), cache, prompt, layer, head, index)
        except GptlabError as exc:
            raise error(exc) from None
        step, labels = look.snapshot.step, look.view.labels
        return (
            look.note,
            plot(attention_heatmap(look.pattern, labels, f"step {step:,} · layer {layer} · head {head}"), teacher),
            plot(head_grid(look.view.patterns[layer], labels, f"step {step:,} · all heads of layer {layer}",
                           panel_titles=look.panel_titles), teacher),
            look.sample,
            look.sentence,
            plot(training_strip(look.frames, f"Layer {layer}, head {head} as training goes on"), teacher),
        )

    # ---- 2. watch it learn --------------------------------------------------------------------
    def live_fn(source, text, seconds, request: gr.Request):
        """Train a tiny GPT for a bounded time, streaming loss, sample and heatmap; keeps the model."""
        seconds = whole(seconds, "seconds", 1, int(MAX_SECONDS))
        if source == "Tiny Shakespeare":
            try:
                text = shakespeare()
            except GptlabError as exc:
                raise gr.Error(f"Tiny Shakespeare is not available here ({exc}). Choose 'My text' and paste "
                               "some text instead.") from None
        visitor = (request.session_hash if request is not None else None) or "anonymous"
        config = LiveConfig(max_seconds=seconds, report_every_s=live_report_s)
        try:
            with slots.claim(visitor) as stop:
                for report in train_live(text, config, stop):
                    yield _live_outputs(report)
        except GptlabError as exc:
            raise error(exc) from None

    def live_stop_fn(request: gr.Request):
        visitor = (request.session_hash if request is not None else None) or "anonymous"
        stopped = slots.stop(visitor)
        return "Stopping… the model keeps what it learned so far." if stopped else "No training of yours is running."

    # ---- 3/4/6. look closer: head labels, rollout, logit lens, export ------------------------
    def closer_fn(model, prompt, layer, head, position, teacher=False, live=None):
        """Head sentence, heatmap, labelled grid, rollout, rollout bar and logit lens at ``position``."""
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = _pick(checkpoint.config, layer, head)
        position = whole(position, "position", -1, 10**6)
        try:
            look = closer_look(checkpoint.model, checkpoint.tokenizer, prompt, layer, head, position)
        except GptlabError as exc:
            raise error(exc) from None
        labels, at = look.view.labels, look.view.labels[look.position]
        return (
            look.note,
            plot(attention_heatmap(look.pattern, labels, f"{model} · layer {layer} · head {head}"), teacher),
            plot(head_grid(look.view.patterns[layer], labels, f"All heads of layer {layer}, labelled",
                           panel_titles=look.panel_titles), teacher),
            plot(rollout_heatmap(look.rollout, labels, "Attention rollout through all layers "
                                 "(0.5·A + 0.5·I, heads averaged)"), teacher),
            plot(contribution_bar(look.rollout[look.position], labels, f"What flows into {at}"), teacher),
            plot(logit_lens_figure(look.lens, f"Logit lens at {at}: next-token guesses layer by layer"), teacher),
        )

    def export_fn(model, prompt, layer, head, teacher=False, live=None):
        """CSV, JSON, PNG and SVG of the head heatmap shown in 'Look closer' (same inputs, same figure)."""
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = _pick(checkpoint.config, layer, head)
        fit = fit_builtin(checkpoint.tokenizer, prompt)
        if fit.changed:  # the files are the answer here: the note goes to a toast
            gr.Warning(fit.note())
        prompt = fit.text
        view = _view(checkpoint, prompt)
        title = f"{model} · layer {layer} · head {head}"
        fig = attention_heatmap(view.patterns[layer][head], view.labels, title)
        if teacher:
            fig = teacher_style(fig)
        meta = {"model": model, "layer": layer, "head": head, "prompt": prompt, "dropped": view.dropped}
        folder = export_root() / uuid.uuid4().hex
        try:
            paths = write_data(folder, title, view.patterns[layer][head], view.labels, view.tokens, meta)
        except GptlabError as exc:
            raise error(exc) from None
        try:  # the images need a browser; without one the visitor still gets the CSV and JSON
            paths.update(write_images(folder, title, fig))
        except ExportError as exc:
            gr.Warning(f"Exported CSV and JSON only. {exc}", duration=30)
        return [str(paths[k]) for k in ("png", "svg", "csv", "json") if k in paths]

    # ---- 5. step-through generation ------------------------------------------------------------
    def step_fn(model, text, temperature, top_k, top_p, seed, teacher=False, live=None, ids=None):
        """Append one token; show candidates before/after the settings and every head's attention.

        ``ids`` (a session state) are the tokens behind the text from the last step: they keep a
        character split over byte tokens whole until its last byte comes.
        """
        text = checked_prompt(text)
        checkpoint = get_model(catalog, model, live)
        text, fit_note = fitted_prompt(checkpoint.tokenizer, text)
        try:
            settings = GenerationSettings(max_new_tokens=1, temperature=temperature,
                                          top_k=whole(top_k, "top_k", 0, 1000), top_p=top_p,
                                          seed=whole(seed, "seed", 0, 2**31 - 1)).validate()
            step = step_once(checkpoint.model, checkpoint.tokenizer, text, settings,
                             ids=ids if isinstance(ids, list) else None)
        except GptlabError as exc:
            raise error(exc) from None
        note = (f"Picked {code_span(step.token)} with probability {step.chosen_p:.1%} under your settings "
                f"(grey bars: the model at temperature 1; coloured: after temperature {temperature}, "
                f"top-k {settings.top_k or 'off'}, top-p {settings.top_p if settings.top_p < 1 else 'off'}).")
        if step.held_back:
            note += (f"\n\nThe bytes {' '.join(f'{b:02X}' for b in step.held_back)} begin a character that needs "
                     "more bytes: it joins the text when the token holding its last byte comes.")
        if fit_note:
            note += f"\n\n{fit_note}"
        return (
            step.text,
            note,
            plot(candidates_figure(step.candidates, step.chosen_index,
                                   f"Candidates for the next token → {step.token}"), teacher),
            plot(step_attention_figure(step.attention, step.key_labels,
                                       f"Where every head looked to choose {step.token}"), teacher),
            step.ids,
        )

    # ---- 7. lessons and teacher mode ------------------------------------------------------------
    def lesson_fields_fn(lesson_id):
        """Fill the lesson's fields (layer/head -1: the best head is found when drawing)."""
        lesson = LESSONS.get(lesson_id)
        if lesson is None:
            raise gr.Error(f"No lesson {lesson_id!r}.")
        model = lesson.model if lesson.model in catalog.attention_names else default
        return (model, lesson.prompt, lesson.seed, lesson.extend, lesson.layer, lesson.head,
                f"**Look for:** {lesson.look_for}")

    def lesson_fn(lesson_id, model, prompt, seed, extend, layer, head, teacher=False, request: gr.Request = None):
        """Draw a lesson: caption from the data, heatmap, labelled grid, resolved layer/head, share link."""
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, None)
        page = _lesson_page(checkpoint, lesson_id, model, prompt, seed, extend, layer, head, teacher)
        return (
            page.summary,
            plot(page.heatmap),  # already in teacher style when asked
            plot(page.grid),
            page.view.layer,
            page.view.head,
            share_link(request, page.view.query()),
        )

    def lesson_html_fn(lesson_id, model, prompt, seed, extend, layer, head, teacher=False):
        """This lesson view as one HTML file that opens with no server and no network (plotly.js inside)."""
        prompt = checked_prompt(prompt)
        page = _lesson_page(get_model(catalog, model, None), lesson_id, model, prompt, seed, extend, layer, head,
                            teacher)
        return _html_file(lessons_html([page]), f"{page.view.lesson or 'view'}-{model}")

    def all_lessons_html_fn(model, teacher=False):
        """Every lesson with this model in one HTML file that opens with no server and no network."""
        checkpoint = get_model(catalog, model, None)
        try:
            pages = [draw_lesson(checkpoint, lesson_view(lesson, model, bool(teacher))) for lesson in LESSONS]
        except GptlabError as exc:
            raise error(exc) from None
        return _html_file(lessons_html(pages), f"all-lessons-{model}")

    def restore_fn(request: gr.Request):
        """Page load: the lesson and view named in the URL's query parameters (or the first lesson)."""
        params = dict(request.query_params) if request is not None else {}
        try:
            view = view_from_query(params)
        except GptlabError as exc:
            gr.Warning(f"{exc} Showing the first lesson instead.")
            view = view_from_query({})
        model = view.model if view.model in catalog.attention_names else default
        return view.lesson, model, view.prompt, view.seed, view.extend, view.layer, view.head, view.teacher

    def lesson_on_load_fn(lesson_id, model, prompt, seed, extend, layer, head, teacher=False,
                          request: gr.Request = None):
        """The restored lesson drawn at page load (a view this model cannot draw stays empty: see quietly)."""
        return quietly(lambda: lesson_fn(lesson_id, model, prompt, seed, extend, layer, head, teacher, request), 6)

    def closer_on_open_fn(model, prompt, layer, head, position, live=None, request: gr.Request = None):
        """Look closer drawn at page load with its defaults, in teacher style when the link asks (?teacher=1)."""
        params = dict(request.query_params) if request is not None else {}
        try:
            teacher = view_from_query(params).teacher
        except GptlabError:  # restore then shows the first lesson, out of teacher mode
            teacher = False
        return quietly(lambda: closer_fn(model, prompt, layer, head, position, teacher, live), 6)

    # ---- pickers that follow the chosen model ------------------------------------------------------
    def config_of(model, live=None):
        """The chosen model's config, or None while there is none (the live model before training)."""
        if model == LIVE:
            return live.config if live is not None else None
        return catalog.get(model).config if model in catalog.attention_names else None

    def across_pickers_fn(layer, head):
        """Across training's layer and head sliders fitted to the model the snapshots are of."""
        found = snapshots()
        try:
            config = cache.get(found[-1]).config if found else None
        except GptlabError:
            config = None  # a snapshot being rewritten: the draw that follows says so
        return picker_updates(config, layer, head)

    def closer_pickers_fn(model, layer, head, live=None):
        """Look closer's layer and head sliders fitted to the chosen model."""
        return picker_updates(config_of(model, live), layer, head)

    def lesson_pickers_fn(model, layer, head):
        """The lesson's layer and head fields (-1 = best) bounded by the chosen model; a value it lacks is -1."""
        config = config_of(model)
        if config is None:
            return gr.update(), gr.update()

        def fit(value, top: int) -> dict:
            keep = isinstance(value, (int, float)) and -1 <= value <= top and float(value).is_integer()
            return gr.update(maximum=top, value=int(value) if keep else -1)

        return fit(layer, config.n_layer - 1), fit(head, config.n_head - 1)

    def step_top_k_fn(model, top_k, live=None):
        """Step through's top-k slider up to this model's vocabulary (at most STEP_TOP_K)."""
        config = config_of(model, live)
        if config is None:
            return gr.update()
        top = min(STEP_TOP_K, config.vocab_size)
        keep = isinstance(top_k, (int, float)) and 0 <= top_k <= top
        return gr.update(maximum=top, value=top_k if keep else 0)

    return dict(across=across_fn, across_steps=across_steps_fn, live=live_fn, live_stop=live_stop_fn,
                closer_on_open=closer_on_open_fn,
                closer=closer_fn, export=export_fn, step=step_fn, lesson_fields=lesson_fields_fn,
                lesson=lesson_fn, lesson_on_load=lesson_on_load_fn, restore=restore_fn, slots=slots,
                lesson_html=lesson_html_fn, all_lessons_html=all_lessons_html_fn,
                snapshots=snapshots, across_pickers=across_pickers_fn, closer_pickers=closer_pickers_fn,
                lesson_pickers=lesson_pickers_fn, step_top_k=step_top_k_fn)


def _live_outputs(report):
    last = report.history[-1]
    state = "done" if report.done else "training"
    why = f" ({report.reason})" if report.done else ""
    status = (f"**{state}{why}** · {report.elapsed_s:.0f} s · step {report.step:,} · validation loss "
              f"{nats_to_text(last['val_loss'])}")
    if report.done:
        status += "\n\nYour model is ready: pick *your model* in 'Look closer' or 'Step through'."
    view = attention_view(report.model, report.tokenizer, report.probe)
    heat = attention_heatmap(view.patterns[0][0], view.labels, f"step {report.step:,} · layer 0 · head 0")
    return (status, plot(live_loss_figure(report.history)), report.sample, plot(heat),
            report.checkpoint() if report.done else gr.skip())


def share_link(request: gr.Request | None, query: str) -> str:
    """The page's own address with the view's query: the Referer header when the browser sends it."""
    page = ""
    if request is not None:
        headers = getattr(request, "headers", None) or {}
        page = headers.get("referer") or ""
    return page.split("?")[0].split("#")[0] + query if page else query

