"""Step through: generation one token per click, with the top candidates before and after temperature,
top-k and top-p, and where every head looked to choose the new token."""

from __future__ import annotations

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.figures import candidates_figure, step_attention_figure
from gptlab.inside import step_once
from gptlab.markdown import code_span
from gptlab.prompts import GENERATE_PROMPT

from ..common import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    TEACH,
    bind,
    checked_prompt,
    fitted_prompt,
    library_errors,
    plot,
    sampling_settings,
    whole,
)
from ..pickers import Visitor, config_of, get_model, model_picker, sampling_controls, top_k_update

STEP_TOP_K = 100  # the top-k slider goes this far, or to the vocabulary if smaller: the bars show 10


def next_token(catalog: Catalog, model, text, temperature, top_k, top_p, seed, teacher=False,
               live: Checkpoint | None = None, ids: list[int] | None = None) -> tuple:
    """Append one token; show candidates before/after the settings and every head's attention.

    ``ids`` (a session state) are the tokens behind the text from the last step: they keep a
    character split over byte tokens whole until its last byte comes.
    """
    with library_errors():
        text = checked_prompt(text, "text so far")
        checkpoint = get_model(catalog, model, live)
        text, fit_note = fitted_prompt(checkpoint.tokenizer, text)
        settings = sampling_settings(1, temperature, top_k, top_p, whole(seed, "seed", 0, MAX_SEED))
        step = step_once(checkpoint.model, checkpoint.tokenizer, text, settings,
                         ids=ids if isinstance(ids, list) else None)
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
        plot(candidates_figure(step.candidates, step.chosen_index, f"Candidates for the next token → {step.token}"),
             teacher),
        plot(step_attention_figure(step.attention, step.key_labels, f"Where every head looked to choose {step.token}"),
             teacher),
        step.ids,
    )


def reset() -> tuple[str, None]:
    """The default text again, and no tokens carried over from the last step."""
    return GENERATE_PROMPT, None


def fit_top_k(catalog: Catalog, model, top_k, live: Checkpoint | None = None) -> dict:
    """Step through's top-k slider up to this model's vocabulary (at most STEP_TOP_K)."""
    return top_k_update(config_of(catalog, model, live), top_k, STEP_TOP_K)


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Step through tab: the text and settings, the candidates' bars, then every head's attention."""
    with gr.Tab("Step through", id="step"):
        gr.Markdown("Generate one token at a time. The bars show how temperature, top-k and top-p reshape the "
                    "model's probabilities; the heatmap shows where every head looked to choose the new token.")
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(catalog, "step-model", live=True)
                text = gr.Textbox(GENERATE_PROMPT, lines=4, label="text so far", elem_id="step-text",
                                  max_length=MAX_PROMPT_CHARS)
                temperature, top_k, top_p, seed = sampling_controls("step", STEP_TOP_K, "seed")
                with gr.Row():
                    button = gr.Button("Next token", variant="primary", elem_id="step-next")
                    restart = gr.Button("Reset", elem_id="step-reset")
                note = gr.Markdown(elem_id="step-note")
            with gr.Column(scale=2):
                bars = gr.Plot(show_label=False, elem_id="step-bars")
        attention = gr.Plot(show_label=False, elem_id="step-attn")
        ids = gr.State(None)  # the tokens behind the text: a character split over byte tokens waits whole
    button.click(bind(next_token, catalog), [model, text, temperature, top_k, top_p, seed, visitor.teacher,
                                             visitor.live, ids], [text, note, bars, attention, ids],
                 api_name="step", **TEACH)
    restart.click(reset, None, [text, ids], api_visibility="private")
    gr.on([model.change, visitor.live.change, visitor.demo.load], bind(fit_top_k, catalog),
          [model, top_k, visitor.live], top_k, api_visibility="private")
