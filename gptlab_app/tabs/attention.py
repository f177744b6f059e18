"""Attention explorer: a prompt (cropped to the model's context) as one head's heatmap, the grid of all
heads of a layer on one colour scale, their average, and the model's top guesses for the next token at
any position. Drawn when the page opens; the pickers follow the chosen model."""

from __future__ import annotations

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.figures import attention_heatmap, head_average, head_grid, top_predictions_bar
from gptlab.inside import AttentionView, attention_view, label_heads
from gptlab.markdown import code_span
from gptlab.prompts import ATTENTION_PROMPT, fit_builtin

from .. import follow, follow_open
from ..common import (
    ATTENTION_CONCURRENCY,
    MAX_PROMPT_CHARS,
    REFIT_PLOTS_JS,
    bind,
    checked_prompt,
    layer_and_head,
    library_errors,
    plot,
    quietly,
    token_position,
)
from ..pickers import layer_head_sliders, model_picker, picker_updates
from ..teacher import PAGE_TEACHER_JS

# the follow events' js=: their last input, a hidden checkbox, becomes whether the page is in teacher mode now
# (this tab is built before the visitor's shared teacher state exists)
FOLLOW_TEACHER_JS = f"(...values) => [...values.slice(0, 6), {PAGE_TEACHER_JS}]"


def show(catalog: Catalog, model, prompt, layer, head, query) -> tuple:
    """Attention of one head, all heads of the layer, their average, and next-token guesses."""
    with library_errors():
        prompt = checked_prompt(prompt)
        checkpoint = catalog.get(model)
        layer, head = layer_and_head(checkpoint.config, layer, head, model)  # before doing any work
        query = token_position(query, "query position")
        fit = fit_builtin(checkpoint.tokenizer, prompt)
        view = attention_view(checkpoint.model, checkpoint.tokenizer, fit.text)
    n = len(view.ids)
    q = n - 1 if query < 0 or query >= n else query  # out of range means "the last token"
    patterns = view.patterns[layer]
    titles = [label.panel_title for label in label_heads([patterns], view.tokens, view.ids)[0]]  # as Look closer
    return (
        note(view, model, q, query) + (f"\n\n⚠️ {fit.note(code_span)}" if fit.changed else ""),
        plot(attention_heatmap(patterns[head], view.labels, f"{model} · layer {layer} · head {head}")),
        plot(head_grid(patterns, view.labels, f"All heads of layer {layer} (one colour scale)", panel_titles=titles)),
        plot(attention_heatmap(head_average(patterns), view.labels, f"Layer {layer}: average of heads")),
        plot(top_predictions_bar(view.predictions[q], f"Next token after {view.labels[q]}")),
    )


def show_on_open(catalog: Catalog, model, prompt, layer, head, query) -> tuple:
    """The explorer drawn when the page opens, with the default model and prompt (no click needed)."""
    return quietly(lambda: show(catalog, model, prompt, layer, head, query), 5)  # the note and four plots


def note(view: AttentionView, model: str, q: int, asked: int) -> str:
    """What the model saw: token count, cropping, and which query position the bars are for (Markdown)."""
    lines = [f"{code_span(model)} sees {len(view.ids)} token(s) (context {view.block_size})."]
    if view.cropped:
        lines.append(
            f"⚠️ The prompt was cropped to the model's context: the first {view.dropped} token(s) were "
            f"dropped and only the last {view.block_size} are shown."
        )
    if asked >= len(view.ids):
        lines.append(f"Query position {asked} is past the end; showing the last token instead.")
    lines.append(f"Tokens: {' '.join(code_span(label) for label in view.labels[:80])}"
                 + (" …" if len(view.labels) > 80 else ""))
    lines.append(f"Next-token guesses shown for query {code_span(view.labels[q])}.")
    return "\n\n".join(lines)


def fit_pickers(catalog: Catalog, name) -> tuple[dict, dict]:
    """Layer and head sliders fitted to the chosen model, back at 0."""
    return picker_updates(catalog.get(name).config if name in catalog.names else None)


def build(catalog: Catalog, demo: gr.Blocks) -> None:
    """The Attention explorer tab: inputs and the head's heatmap, then the layer's grid, average and guesses."""
    with gr.Tab("Attention explorer", id="attention") as tab:
        gr.Markdown(
            "Each row is a query position, each column a key it may look at; the upper triangle is "
            "blank because a token cannot see the future. Prompts longer than the model's context are "
            "cropped to their last tokens."
        )
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(catalog, "att-model")
                prompt = gr.Textbox(ATTENTION_PROMPT, lines=3, label="prompt", elem_id="att-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                layer, head = layer_head_sliders(catalog, "att")
                query = gr.Number(-1, precision=0, label="query position for next-token bars (-1 = last)",
                                  elem_id="att-query")
                button = gr.Button("Show attention", variant="primary", elem_id="att-btn")
                shown = gr.Markdown(elem_classes="token-note", elem_id="att-note")
            with gr.Column(scale=2):
                heatmap = gr.Plot(show_label=False, elem_id="att-heatmap")
        with gr.Row():
            grid = gr.Plot(show_label=False, elem_id="att-grid")
        with gr.Row():
            average = gr.Plot(show_label=False, elem_id="att-avg", scale=2)
            bars = gr.Plot(show_label=False, elem_id="att-bars", scale=1)
        by, position, text, followed = follow.follow_section("att")
        teacher = gr.Checkbox(False, label="teacher mode", visible="hidden", elem_id="att-teacher")
        wanted = gr.Textbox(label="open at (JSON)", visible="hidden", elem_id="att-open")  # follow_js.open_follow_js
    inputs, outputs = [model, prompt, layer, head, query], [shown, heatmap, grid, average, bars]
    draw = dict(concurrency_id="attention", concurrency_limit=ATTENTION_CONCURRENCY)
    # drawn when the page opens (the tab mounts at full width when first shown); every draw the
    # visitor asks for cancels it, so a late answer never replaces their own view
    on_open = demo.load(bind(show_on_open, catalog), inputs, outputs, api_visibility="private", **draw)
    tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
    button.click(bind(show, catalog), inputs, outputs, api_name="attention", cancels=[on_open], **draw)
    # moving a slider or pressing Enter redraws at once (user actions only: range updates do not loop)
    gr.on([layer.release, head.release, query.submit, prompt.submit], bind(show, catalog), inputs, outputs,
          api_visibility="private", cancels=[on_open], **draw)
    # per visitor: fit the sliders to the default model (API callers keep the widest ranges)
    demo.load(bind(fit_pickers, catalog), model, [layer, head], api_visibility="private")
    # follow one character: drawn on open, then again on every draw, pick of what to shade by, and move
    chosen = [model, prompt, layer, head, by, position, teacher]
    on_open_follow = demo.load(bind(follow.show_on_open, catalog), chosen, [text, followed], api_visibility="private",
                               **draw)
    redraw_follow = dict(api_visibility="private", js=FOLLOW_TEACHER_JS, **draw)
    gr.on([button.click, layer.release, head.release, prompt.submit, by.change, position.change],
          bind(follow.show, catalog), chosen, [text, followed], cancels=[on_open_follow], trigger_mode="always_last",
          **redraw_follow)
    # another model: the sliders back at 0 and every plot redrawn for it, so what is shown matches the controls
    model.input(bind(fit_pickers, catalog), model, [layer, head], api_visibility="private", cancels=[on_open]).then(
        bind(show, catalog), inputs, outputs, api_visibility="private", **draw).then(
        bind(follow.show, catalog), chosen, [text, followed], **redraw_follow)
    # another tab opens the explorer on its model (or the nearest one listed here), text and position
    wanted.change(bind(follow_open.open_at, catalog), wanted, [model, prompt, position], api_visibility="private",
                  cancels=[on_open, on_open_follow]).then(
        bind(fit_pickers, catalog), model, [layer, head], api_visibility="private").then(
        bind(show, catalog), inputs, outputs, api_visibility="private", **draw).then(
        bind(follow.show, catalog), chosen, [text, followed], **redraw_follow)
