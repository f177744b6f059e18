"""Look closer: what each head of a layer does, in words (head labels), where information flows through
every layer (attention rollout), and what the model would predict after each layer (logit lens), for
a shipped model or the visitor's own; the head's view exports as PNG, SVG, CSV and JSON."""

from __future__ import annotations

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import ExportError
from gptlab.figures import (
    attention_heatmap,
    contribution_bar,
    head_grid,
    logit_lens_figure,
    rollout_heatmap,
    teacher_style,
)
from gptlab.figures.export import write_data, write_images
from gptlab.inside import attention_view, closer_look
from gptlab.prompts import LOOK_PROMPT, fit_builtin

from .. import follow
from ..common import (
    MAX_PROMPT_CHARS,
    REFIT_PLOTS_JS,
    TEACH,
    bind,
    checked_prompt,
    layer_and_head,
    library_errors,
    plot,
    quietly,
    token_position,
    warning,
)
from ..downloads import download_folder, writing
from ..links import linked_view
from ..pickers import Visitor, config_of, get_model, layer_head_sliders, model_picker, picker_updates


def look(catalog: Catalog, model, prompt, layer, head, position, teacher=False,
         live: Checkpoint | None = None) -> tuple:
    """Head sentence, heatmap, labelled grid, rollout, rollout bar and logit lens at ``position``."""
    with library_errors():
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = layer_and_head(checkpoint.config, layer, head, model)
        position = token_position(position, "position")
        found = closer_look(checkpoint.model, checkpoint.tokenizer, prompt, layer, head, position)
    labels, at = found.view.labels, found.view.labels[found.position]
    return (
        found.note,
        plot(attention_heatmap(found.pattern, labels, f"{model} · layer {layer} · head {head}"), teacher),
        plot(head_grid(found.view.patterns[layer], labels, f"All heads of layer {layer}, labelled",
                       panel_titles=found.panel_titles), teacher),
        plot(rollout_heatmap(found.rollout, labels, "Attention rollout through all layers "
                             "(0.5·A + 0.5·I, heads averaged)"), teacher),
        plot(contribution_bar(found.rollout[found.position], labels, f"What flows into {at}"), teacher),
        plot(logit_lens_figure(found.lens, f"Logit lens at {at}: next-token guesses layer by layer"), teacher),
    )


def look_on_open(catalog: Catalog, model, prompt, layer, head, position, live: Checkpoint | None = None,
                 request: gr.Request = None) -> tuple:
    """Look closer drawn at page load with its defaults, in teacher style when the link asks (?teacher=1)."""
    teacher = linked_view(catalog, request, warn=False).teacher  # the link's other values do not matter here
    return quietly(lambda: look(catalog, model, prompt, layer, head, position, teacher, live), 6)


def export(catalog: Catalog, model, prompt, layer, head, teacher=False, live: Checkpoint | None = None) -> list[str]:
    """CSV, JSON, PNG and SVG of the head heatmap shown in 'Look closer' (same inputs, same figure)."""
    with library_errors(), writing("the CSV and JSON"):
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = layer_and_head(checkpoint.config, layer, head, model)
        fit = fit_builtin(checkpoint.tokenizer, prompt)
        if fit.changed:  # the files are the answer here: the note goes to a toast
            warning(fit.note())
        view = attention_view(checkpoint.model, checkpoint.tokenizer, fit.text)
        title = f"{model} · layer {layer} · head {head}"
        meta = {"model": model, "layer": layer, "head": head, "prompt": fit.text, "dropped": view.dropped}
        folder, pattern = download_folder(), view.patterns[layer][head]
        paths = write_data(folder, title, pattern, view.labels, view.tokens, meta)
    fig = attention_heatmap(pattern, view.labels, title)
    try:  # the images need a browser; without one the visitor still gets the CSV and JSON
        with writing("the images"):
            paths.update(write_images(folder, title, teacher_style(fig) if teacher else fig))
    except ExportError as exc:
        warning(f"Exported CSV and JSON only. {exc}", duration=30)
    return [str(paths[k]) for k in ("png", "svg", "csv", "json") if k in paths]


def fit_pickers(catalog: Catalog, model, layer, head, live: Checkpoint | None = None) -> tuple[dict, dict]:
    """Look closer's layer and head sliders fitted to the chosen model."""
    return picker_updates(config_of(catalog, model, live), layer, head)


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Look closer tab: inputs and the head's heatmap, the labelled grid, rollout, the lens, export."""
    with gr.Tab("Look closer", id="closer") as tab:
        gr.Markdown("What each head does (labelled), where information flows through all layers (rollout), "
                    "and what the model would predict after each layer (logit lens). Export any view.")
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(catalog, "closer-model", live=True)
                prompt = gr.Textbox(LOOK_PROMPT, lines=3, label="prompt", elem_id="closer-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                layer, head = layer_head_sliders(catalog, "closer")
                position = gr.Number(-1, precision=0, label="position for rollout and logit lens (-1 = last)",
                                     elem_id="closer-pos")
                button = gr.Button("Look", variant="primary", elem_id="closer-btn")
                sentence = gr.Markdown(elem_id="closer-sentence")
            with gr.Column(scale=2):
                heatmap = gr.Plot(show_label=False, elem_id="closer-heatmap")
        grid = gr.Plot(show_label=False, elem_id="closer-grid")
        with gr.Row():
            rollout = gr.Plot(show_label=False, elem_id="closer-rollout", scale=2)
            bar = gr.Plot(show_label=False, elem_id="closer-rollbar", scale=1)
        lens = gr.Plot(show_label=False, elem_id="closer-lens")
        by, spot, text, followed = follow.follow_section("closer")
        with gr.Row():
            to_files = gr.Button("Export this head: PNG, SVG, CSV, JSON", elem_id="closer-export")
            files = gr.File(label="downloads", file_count="multiple", elem_id="closer-files", interactive=False)
    teacher, live, demo = visitor.teacher, visitor.live, visitor.demo
    outputs = [sentence, heatmap, grid, rollout, bar, lens]
    # drawn when the page opens; the visitor's own draws cancel it, so a late answer never replaces them
    on_open = demo.load(bind(look_on_open, catalog), [model, prompt, layer, head, position, live], outputs,
                        api_visibility="private", **TEACH)
    tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
    inputs = [model, prompt, layer, head, position, teacher, live]
    button.click(bind(look, catalog), inputs, outputs, api_name="closer", cancels=[on_open], **TEACH)
    gr.on([layer.release, head.release], bind(look, catalog), inputs, outputs, api_visibility="private",
          cancels=[on_open], **TEACH)
    # the sliders follow the chosen model (and the visitor's live model once it is trained)
    gr.on([model.change, live.change, demo.load], bind(fit_pickers, catalog), [model, layer, head, live],
          [layer, head], api_visibility="private")
    chosen = [model, prompt, layer, head, by, spot, teacher, live]  # follow one character, the API's /follow
    on_open_follow = demo.load(bind(follow.show_on_open, catalog), chosen, [text, followed], api_visibility="private",
                               **TEACH)
    gr.on([button.click, layer.release, head.release, by.change, spot.change, teacher.change],
          bind(follow.show, catalog), chosen, [text, followed], api_name="follow", cancels=[on_open_follow],
          trigger_mode="always_last", **TEACH)
    to_files.click(bind(export, catalog), [model, prompt, layer, head, teacher, live], files, api_name="export",
                   concurrency_id="export", concurrency_limit=1)
