"""Bigram vs GPT: one prompt and one seed, two models side by side, both streaming, each labelled with its
size and val loss; the bigram sees one character, the GPT the whole context."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest

import gradio as gr

from gptlab.classroom.catalog import Catalog
from gptlab.prompts import GENERATE_PROMPT

from ..common import (
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    SAMPLE_CONCURRENCY,
    bind,
    checked_prompt,
    library_errors,
    sampling_settings,
)
from ..streams import pairs, stream_text, throttled, time_limited


def stream(catalog: Catalog, left, right, prompt, max_new_tokens, temperature, seed) -> Iterator[tuple[str, str]]:
    """Stream two models' continuations of one prompt side by side, same seed and settings."""
    with library_errors():
        prompt = checked_prompt(prompt)
        settings = sampling_settings(max_new_tokens, temperature, 0, 1.0, seed)
    streams = zip_longest(stream_text(catalog, left, prompt, settings), stream_text(catalog, right, prompt, settings))
    yield from throttled(time_limited(pairs(streams, prompt)))


def label(catalog: Catalog, name) -> dict:
    """A text box labelled with the chosen model's size and val loss."""
    return gr.update(label=catalog.label(name) if name in catalog.names else "no model")


def build(catalog: Catalog) -> None:
    """The Bigram vs GPT tab: shared settings on top, the two models' texts below."""
    with gr.Tab("Bigram vs GPT", id="compare"):
        gr.Markdown("One prompt, one seed, two models: the bigram sees one character; the GPT sees the context.")
        with gr.Row():
            prompt = gr.Textbox(GENERATE_PROMPT, lines=2, label="prompt", elem_id="cmp-prompt", scale=2,
                                max_length=MAX_PROMPT_CHARS)
            seed = gr.Number(1337, precision=0, label="seed (empty = random)", scale=1)
            tokens = gr.Slider(1, MAX_NEW_TOKENS, value=250, step=1, label="max new tokens", scale=1)
            temperature = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="temperature", scale=1)
        with gr.Row():
            models, outs = [], []
            for side, default in (("left", catalog.default("bigram")), ("right", catalog.default("gpt"))):
                with gr.Column():
                    models.append(gr.Dropdown(catalog.choices(), value=default, label=f"{side} model"))
                    outs.append(gr.Textbox(lines=16, elem_classes="cmp-out", elem_id=f"cmp-{side}",
                                           label=catalog.label(default) if default else side))
        with gr.Row():
            start = gr.Button("Generate both", variant="primary", elem_id="cmp-btn")
            stop = gr.Button("Stop", variant="stop")
    writing = start.click(bind(stream, catalog), [*models, prompt, tokens, temperature, seed], outs,
                          api_name="compare", concurrency_id="sample", concurrency_limit=SAMPLE_CONCURRENCY)
    stop.click(None, cancels=[writing], api_visibility="private")
    for model, out in zip(models, outs, strict=True):
        model.change(bind(label, catalog), model, out, api_visibility="private")
