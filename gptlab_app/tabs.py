"""Layout of the teaching tabs: across training, watch it learn, look closer, step through, lessons."""

from __future__ import annotations

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import lesson_choices
from gptlab.classroom.live import MAX_CHARS, MAX_SECONDS
from gptlab.prompts import GENERATE_PROMPT, LOOK_PROMPT

from .common import LIVE, MAX_PROMPT_CHARS, REFIT_PLOTS_JS, TEACH_CONCURRENCY, model_choices
from .handlers import LIVE_CAP, make_teaching_handlers

DEFAULT_PROMPT = LOOK_PROMPT  # fitted to the chosen model when it lacks a character (gptlab.prompts)
# Teacher mode: the body gets this class (a checkbox in the Lessons tab, or ?teacher=1 in the URL).
TEACHER_CSS = """
body.gptlab-teacher, body.gptlab-teacher .gradio-container {background: #ffffff !important; color: #111 !important;
  --body-text-size: 20px; --text-md: 20px; --text-lg: 22px; --text-sm: 18px; --block-label-text-size: 18px;
  --input-text-size: 20px; --prose-text-size: 20px; font-size: 20px}
body.gptlab-teacher textarea, body.gptlab-teacher input {font-size: 20px !important}
body.gptlab-teacher .prose, body.gptlab-teacher .prose * {font-size: 21px !important; color: #111 !important}
#les-caption, #closer-sentence, #across-sentence {font-size: 1.1em}
"""
TEACHER_JS = """(on) => {
  document.body.classList.toggle('gptlab-teacher', Boolean(on));
  if (on) { document.body.classList.remove('dark'); }
  return [];
}"""


def add_teaching_tabs(catalog: Catalog, snapshots_of: str | None = None, live_cap: int = LIVE_CAP,
                      demo: gr.Blocks | None = None) -> dict:
    """Add the five teaching tabs to the Blocks being built; returns the handlers (tests use them)."""
    h = make_teaching_handlers(catalog, snapshots_of, live_cap)
    default = catalog.default("gpt", catalog.attention_names)
    configs = [catalog.get(n).config for n in catalog.attention_names]
    max_layer = max((c.n_layer for c in configs), default=1) - 1
    max_head = max((c.n_head for c in configs), default=1) - 1
    teach = dict(concurrency_id="teach", concurrency_limit=TEACH_CONCURRENCY)
    on_load = [demo.load] if demo is not None else []  # pickers fitted to the default model per visitor

    def sliders(prefix: str):
        layer = gr.Slider(0, max(max_layer, 1), value=0, step=1, label="layer", elem_id=f"{prefix}-layer")
        head = gr.Slider(0, max(max_head, 1), value=0, step=1, label="head", elem_id=f"{prefix}-head")
        return layer, head

    with gr.Tab("Across training", id="across") as across_tab:
        # created inside a tab: a component between two gr.Tab blocks would split the tab bar in two
        live_state = gr.State(None)  # this visitor's live-trained model (a Checkpoint) for the other tabs
        teacher = gr.Checkbox(False, visible=False)  # mirrors the Lessons tab's visible checkbox
        gr.Markdown("Move the slider through the saved training steps: watch the heads go from even "
                    "smears to sharp patterns as the model learns.")
        with gr.Row():
            with gr.Column(scale=1):
                ac_prompt = gr.Textbox(DEFAULT_PROMPT, lines=3, label="prompt", elem_id="across-prompt",
                                       max_length=MAX_PROMPT_CHARS)
                ac_layer, ac_head = sliders("across")
                top = max(len(h["snapshots"]()) - 1, 1)  # a training still running adds more: see across_steps
                ac_step = gr.Slider(0, top, value=top, step=1, label="training snapshot (earliest → latest)",
                                    elem_id="across-step")
                ac_btn = gr.Button("Show", variant="primary", elem_id="across-btn")
                ac_note = gr.Markdown(elem_id="across-note")
                ac_sentence = gr.Markdown(elem_id="across-sentence")
            with gr.Column(scale=2):
                ac_heat = gr.Plot(show_label=False, elem_id="across-heatmap")
        ac_strip = gr.Plot(show_label=False, elem_id="across-strip")
        ac_grid = gr.Plot(show_label=False, elem_id="across-grid")
        ac_sample = gr.Textbox(lines=6, label="what the model wrote at this step", elem_id="across-sample")
        ac_in = [ac_prompt, ac_layer, ac_head, ac_step, teacher]
        ac_out = [ac_note, ac_heat, ac_grid, ac_sample, ac_sentence, ac_strip]
        ac_btn.click(h["across"], ac_in, ac_out, api_name="across", **teach)
        for slider in (ac_step, ac_layer, ac_head):
            slider.release(h["across"], ac_in, ac_out, api_visibility="private", **teach)
        across_tab.select(h["across_steps"], None, ac_step, api_name="across_steps").then(
            h["across_pickers"], [ac_layer, ac_head], [ac_layer, ac_head], api_visibility="private").then(
            h["across"], ac_in, ac_out, api_visibility="private", **teach)

    with gr.Tab("Watch it learn", id="live"):
        gr.Markdown(f"Train a tiny GPT (2 layers, 4 heads, 64 wide) right here, for up to {MAX_SECONDS:.0f} "
                    f"seconds on one CPU thread. The loss curve, a sample and a heatmap refresh every few seconds. "
                    f"One run per visitor, {LIVE_CAP} at once on this server.")
        with gr.Row():
            with gr.Column(scale=1):
                lv_source = gr.Radio(["Tiny Shakespeare", "My text"], value="Tiny Shakespeare", label="train on",
                                     elem_id="live-source")
                lv_text = gr.Textbox(lines=6, label=f"your text (1,000 to {MAX_CHARS:,} characters)",
                                     elem_id="live-text", max_length=MAX_CHARS)
                lv_seconds = gr.Slider(1, MAX_SECONDS, value=30, step=1, label="seconds of training",
                                       elem_id="live-seconds")
                with gr.Row():
                    lv_start = gr.Button("Start training", variant="primary", elem_id="live-start")
                    lv_stop = gr.Button("Stop", variant="stop", elem_id="live-stop")
                lv_status = gr.Markdown(elem_id="live-status")
            with gr.Column(scale=2):
                lv_loss = gr.Plot(show_label=False, elem_id="live-loss")
        with gr.Row():
            lv_sample = gr.Textbox(lines=8, label="a fresh sample", elem_id="live-sample")
            lv_heat = gr.Plot(show_label=False, elem_id="live-heatmap")
        lv_start.click(h["live"], [lv_source, lv_text, lv_seconds], [lv_status, lv_loss, lv_sample, lv_heat,
                                                                      live_state],
                       api_name="live", concurrency_id="live", concurrency_limit=LIVE_CAP + 2)
        lv_stop.click(h["live_stop"], None, lv_status, api_name="live_stop", concurrency_limit=None)

    with gr.Tab("Look closer", id="closer") as closer_tab:
        gr.Markdown("What each head does (labelled), where information flows through all layers (rollout), "
                    "and what the model would predict after each layer (logit lens). Export any view.")
        with gr.Row():
            with gr.Column(scale=1):
                cl_model = gr.Dropdown(model_choices(catalog), value=default, label="model", elem_id="closer-model")
                cl_prompt = gr.Textbox(DEFAULT_PROMPT, lines=3, label="prompt", elem_id="closer-prompt",
                                       max_length=MAX_PROMPT_CHARS)
                cl_layer, cl_head = sliders("closer")
                cl_pos = gr.Number(-1, precision=0, label="position for rollout and logit lens (-1 = last)",
                                   elem_id="closer-pos")
                cl_btn = gr.Button("Look", variant="primary", elem_id="closer-btn")
                cl_sentence = gr.Markdown(elem_id="closer-sentence")
            with gr.Column(scale=2):
                cl_heat = gr.Plot(show_label=False, elem_id="closer-heatmap")
        cl_grid = gr.Plot(show_label=False, elem_id="closer-grid")
        with gr.Row():
            cl_roll = gr.Plot(show_label=False, elem_id="closer-rollout", scale=2)
            cl_bar = gr.Plot(show_label=False, elem_id="closer-rollbar", scale=1)
        cl_lens = gr.Plot(show_label=False, elem_id="closer-lens")
        with gr.Row():
            cl_export = gr.Button("Export this head: PNG, SVG, CSV, JSON", elem_id="closer-export")
            cl_files = gr.File(label="downloads", file_count="multiple", elem_id="closer-files", interactive=False)
        cl_in = [cl_model, cl_prompt, cl_layer, cl_head, cl_pos, teacher, live_state]
        cl_out = [cl_sentence, cl_heat, cl_grid, cl_roll, cl_bar, cl_lens]
        # drawn when the page opens; the visitor's own draws cancel it, so a late answer never replaces them
        cl_open = [demo.load(h["closer_on_open"], [cl_model, cl_prompt, cl_layer, cl_head, cl_pos, live_state],
                             cl_out, api_visibility="private", **teach)] if demo is not None else []
        closer_tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
        cl_btn.click(h["closer"], cl_in, cl_out, api_name="closer", cancels=cl_open, **teach)
        cl_layer.release(h["closer"], cl_in, cl_out, api_visibility="private", cancels=cl_open, **teach)
        cl_head.release(h["closer"], cl_in, cl_out, api_visibility="private", cancels=cl_open, **teach)
        # the sliders follow the chosen model (and the visitor's live model once it is trained)
        gr.on([cl_model.change, live_state.change, *on_load], h["closer_pickers"],
              [cl_model, cl_layer, cl_head, live_state], [cl_layer, cl_head], api_visibility="private")
        cl_export.click(h["export"], [cl_model, cl_prompt, cl_layer, cl_head, teacher, live_state], cl_files,
                        api_name="export", concurrency_id="export", concurrency_limit=1)

    with gr.Tab("Step through", id="step"):
        gr.Markdown("Generate one token at a time. The bars show how temperature, top-k and top-p reshape the "
                    "model's probabilities; the heatmap shows where every head looked to choose the new token.")
        with gr.Row():
            with gr.Column(scale=1):
                st_model = gr.Dropdown(model_choices(catalog), value=default, label="model", elem_id="step-model")
                st_text = gr.Textbox(GENERATE_PROMPT, lines=4, label="text so far", elem_id="step-text",
                                     max_length=MAX_PROMPT_CHARS)
                st_temp = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="temperature (0 = greedy)")
                st_topk = gr.Slider(0, 100, value=0, step=1, label="top-k (0 = off)", elem_id="step-topk")
                st_topp = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (1 = off)")
                st_seed = gr.Number(1337, precision=0, label="seed")
                with gr.Row():
                    st_next = gr.Button("Next token", variant="primary", elem_id="step-next")
                    st_reset = gr.Button("Reset", elem_id="step-reset")
                st_note = gr.Markdown(elem_id="step-note")
            with gr.Column(scale=2):
                st_bars = gr.Plot(show_label=False, elem_id="step-bars")
        st_attn = gr.Plot(show_label=False, elem_id="step-attn")
        st_ids = gr.State(None)  # the tokens behind the text: a character split over byte tokens waits whole
        st_next.click(h["step"], [st_model, st_text, st_temp, st_topk, st_topp, st_seed, teacher, live_state,
                                  st_ids], [st_text, st_note, st_bars, st_attn, st_ids], api_name="step", **teach)
        st_reset.click(lambda: (GENERATE_PROMPT, None), None, [st_text, st_ids], api_visibility="private")
        gr.on([st_model.change, live_state.change, *on_load], h["step_top_k"], [st_model, st_topk, live_state],
              st_topk, api_visibility="private")

    with gr.Tab("Lessons", id="lessons") as lessons_tab:
        gr.Markdown("Ready-made views for a class. Each lesson draws the same heatmaps every time; the link "
                    "below reopens exactly this view. Teacher mode: large text, light page, Cividis colours.")
        with gr.Row():
            with gr.Column(scale=1):
                ls_lesson = gr.Dropdown(lesson_choices(), value="previous-char", label="lesson", elem_id="les-lesson")
                ls_teacher = gr.Checkbox(False, label="teacher mode (projector)", elem_id="les-teacher")
                ls_model = gr.Dropdown(model_choices(catalog)[:-1], value=default, label="model",
                                       elem_id="les-model")
                ls_prompt = gr.Textbox("", lines=3, label="prompt", elem_id="les-prompt", max_length=MAX_PROMPT_CHARS)
                with gr.Row():
                    ls_seed = gr.Number(0, precision=0, label="seed", elem_id="les-seed")
                    ls_extend = gr.Number(0, precision=0, label="generate first (tokens)", elem_id="les-extend")
                with gr.Row():
                    ls_layer = gr.Number(-1, precision=0, label="layer (-1 = best)", elem_id="les-layer")
                    ls_head = gr.Number(-1, precision=0, label="head (-1 = best)", elem_id="les-head")
                ls_btn = gr.Button("Show lesson", variant="primary", elem_id="les-btn")
                ls_look = gr.Markdown(elem_id="les-look")
                ls_link = gr.Textbox(label="share this view (link)", elem_id="les-link", buttons=["copy"])
            with gr.Column(scale=2):
                ls_caption = gr.Markdown(elem_id="les-caption")
                ls_heat = gr.Plot(show_label=False, elem_id="les-heatmap")
        ls_grid = gr.Plot(show_label=False, elem_id="les-grid")
        with gr.Row():  # for a class with no server or network: plotly.js, caption and styling inside the file
            ls_html = gr.Button("Download this view as HTML (opens offline)", elem_id="les-html")
            ls_all_html = gr.Button("Download every lesson as one HTML file", elem_id="les-all-html")
            ls_file = gr.File(label="HTML to open from a USB stick", elem_id="les-file", interactive=False)
        ls_in = [ls_lesson, ls_model, ls_prompt, ls_seed, ls_extend, ls_layer, ls_head, ls_teacher]
        ls_out = [ls_caption, ls_heat, ls_grid, ls_layer, ls_head, ls_link]
        ls_open = []  # the lesson named in the link (or the first) drawn at page load; the visitor's draws cancel it
        if demo is not None:
            restored = [ls_lesson, ls_model, ls_prompt, ls_seed, ls_extend, ls_layer, ls_head, ls_teacher]
            ls_open = [demo.load(h["restore"], None, restored, api_visibility="private").then(
                h["lesson_on_load"], ls_in, ls_out, api_visibility="private", **teach)]
        lessons_tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
        ls_btn.click(h["lesson"], ls_in, ls_out, api_name="lesson", cancels=ls_open, **teach)
        ls_lesson.input(h["lesson_fields"], ls_lesson,
                        [ls_model, ls_prompt, ls_seed, ls_extend, ls_layer, ls_head, ls_look],
                        api_visibility="private", cancels=ls_open).then(h["lesson"], ls_in, ls_out,
                                                                        api_visibility="private", **teach)
        ls_teacher.change(lambda on: on, ls_teacher, teacher, api_visibility="private")
        ls_teacher.input(h["lesson"], ls_in, ls_out, api_visibility="private", cancels=ls_open,
                         **teach)  # restyle the view
        ls_teacher.change(None, ls_teacher, None, js=TEACHER_JS, api_visibility="private")
        ls_model.change(h["lesson_pickers"], [ls_model, ls_layer, ls_head], [ls_layer, ls_head],
                        api_visibility="private")
        ls_html.click(h["lesson_html"], ls_in, ls_file, api_name="lesson_html", **teach)
        ls_all_html.click(h["all_lessons_html"], [ls_model, ls_teacher], ls_file, api_name="all_lessons_html",
                          concurrency_id="export", concurrency_limit=1)  # six lessons: one such run at a time
    return h


__all__ = ["TEACHER_CSS", "add_teaching_tabs", "make_teaching_handlers", "LIVE"]
