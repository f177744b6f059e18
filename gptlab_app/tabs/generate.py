"""Generate: one model continues a prompt, streamed as it writes, with length, temperature, top-k, top-p
and seed; Stop keeps what was written."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.prompts import EXAMPLES, GENERATE_PROMPT

from ..common import (
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_TOP_K,
    SAMPLE_CONCURRENCY,
    bind,
    checked_prompt,
    library_errors,
    sampling_settings,
)
from ..pickers import sampling_controls, top_k_update
from ..streams import stream_text, throttled, time_limited


def stream(catalog: Catalog, model, prompt, max_new_tokens, temperature, top_k, top_p, seed) -> Iterator[str]:
    """Stream a continuation of the prompt from one model."""
    with library_errors():
        prompt = checked_prompt(prompt)
        settings = sampling_settings(max_new_tokens, temperature, top_k, top_p, seed)
    yield from throttled(time_limited(stream_text(catalog, model, prompt, settings)))


def fit_top_k(catalog: Catalog, name, top_k) -> dict:
    """The top-k slider up to the chosen model's vocabulary (at most MAX_TOP_K)."""
    config = catalog.get(name).config if name in catalog.names else None
    return top_k_update(config, top_k, MAX_TOP_K)


def build(catalog: Catalog, demo: gr.Blocks) -> None:
    """The Generate tab: settings on the left, the streamed text on the right."""
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(catalog.choices(), value=catalog.default("gpt"), label="model", elem_id="gen-model")
                prompt = gr.Textbox(GENERATE_PROMPT, lines=3, label="prompt", elem_id="gen-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                gr.Examples(list(EXAMPLES), inputs=[prompt], label="examples (click one)")
                tokens = gr.Slider(1, MAX_NEW_TOKENS, value=300, step=1, label="max new tokens")
                temperature, top_k, top_p, seed = sampling_controls("gen", MAX_TOP_K, "seed (empty = random)")
                with gr.Row():
                    start = gr.Button("Generate", variant="primary", elem_id="gen-btn")
                    stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
            with gr.Column(scale=2):
                out = gr.Textbox(lines=22, label="text", elem_id="gen-out", buttons=["copy"])
    writing = start.click(bind(stream, catalog), [model, prompt, tokens, temperature, top_k, top_p, seed], out,
                          api_name="generate", concurrency_id="sample", concurrency_limit=SAMPLE_CONCURRENCY)
    stop.click(None, cancels=[writing], api_visibility="private")
    gr.on([model.change, demo.load], bind(fit_top_k, catalog), [model, top_k], top_k, api_visibility="private")
