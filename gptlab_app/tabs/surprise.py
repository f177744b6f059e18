"""Where context pays: a text coloured character by character by how surprised a model is (bits, −log2 of the
probability it gave the true next character), or by model A minus model B (any rung, snapshot or the visitor's
live model), so a class sees where a longer context helps; hovering a character shows its bits, its rank among
the model's guesses and the top five; clicking one opens Follow one character (in the Attention explorer) on the
text up to that character."""

from __future__ import annotations

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import GptlabError, InputError
from gptlab.figures import surprise_text_figure
from gptlab.inside.context import SurpriseView, surprise_view
from gptlab.inside.surprise import tokenizer_digest
from gptlab.prompts import SURPRISE_PROMPT

from ..common import (
    MAX_PROMPT_CHARS,
    TEACH,
    bind,
    checked_prompt,
    fitted_prompt,
    library_errors,
    plot,
    quietly,
    warning,
)
from ..follow_js import open_follow_js
from ..pickers import Visitor
from ..rungs import Rungs

BITS, MINUS = "bits of A", "A minus B"
MODES = (BITS, MINUS)
# Wires a click on a coloured character (each time a figure is drawn; once per Plotly element): the cell's hover
# text starts with its token position p; the figure's meta holds the text, where each token ends in it and model
# A's context. Character p was predicted at query p - 1: the explorer opens on the text up to p (p greyed, the
# future) following p - 1, counted in the tokens the explorer keeps (the last block of them). The first
# character was not predicted (its hover says so): a click on it opens nothing.
FOLLOW_ON_CLICK_JS = f"""() => {{
  const follow = {open_follow_js()};
  const wire = (tries) => {{
    const plot = document.querySelector('#surprise-plot .js-plotly-plot');
    if (!plot || !plot.on) {{ if (tries > 0) setTimeout(() => wire(tries - 1), 200); return; }}
    if (plot.dataset.follows) return;
    plot.dataset.follows = '1';
    plot.on('plotly_click', (event) => {{
      const point = (event.points || [])[0];
      const meta = plot.layout && plot.layout.meta;
      if (!point || !meta || !meta.ends) return;
      const [row, col] = point.pointIndex || [];
      const cell = ((point.data.customdata || [])[row] || [])[col];
      const position = parseInt(cell, 10);  // '12:o<br>...' -> 12
      if (!(position >= 1 && position < meta.ends.length)) return;
      const dropped = Math.max(0, position + 1 - (meta.block || Infinity));
      follow(meta.text.slice(0, meta.ends[position]), position - 1 - dropped, meta.model);
    }});
  }};
  wire(25);
}}"""


def show(rungs: Rungs, text, model_a, model_b, mode, teacher=False, live: Checkpoint | None = None) -> tuple:
    """Colour ``text`` (at most MAX_PROMPT_CHARS characters) by model A's bits per token, or, with ``mode``
    'A minus B', by A's bits minus B's (A and B must share a tokenizer): a summary (Markdown) and the figure.
    Hovering a token shows its bits, its rank among the model's guesses ('1st guess': the likeliest) and the top five.
    """
    with library_errors():
        text = checked_prompt(text, "text")
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}.")
        a = rungs.get(model_a, live)
        b = rungs.get(model_b, live) if mode == MINUS else None
        text, fit_note = fitted_prompt(a.tokenizer, text)
        names = (Rungs.name(model_a), Rungs.name(model_b) if b is not None else "")
        found = surprise_view(a.model, a.tokenizer, text, b and b.model, b and b.tokenizer, names)
    fig = figure(found)
    fig.update_layout(meta={"text": found.a.text, "ends": found.ends, "block": found.a.block_size,
                            "model": model_a})  # for a click: see FOLLOW_ON_CLICK_JS
    return "\n\n".join(part for part in (found.summary, fit_note) if part), plot(fig, teacher)


def show_on_open(rungs: Rungs, text, model_a, model_b, mode, teacher=False, live: Checkpoint | None = None) -> tuple:
    """The view drawn when the tab opens with its defaults (left empty if they cannot be drawn)."""
    return quietly(lambda: show(rungs, text, model_a, model_b, mode, teacher, live), 2)


def fit_mode(rungs: Rungs, model_a, model_b, mode, live: Checkpoint | None = None) -> str:
    """The mode to draw after model A changes: 'bits of A', with one warning, when 'A minus B' cannot line up
    A's and B's tokens (their tokenizers differ); else ``mode`` unchanged (``show`` names any other fault)."""
    if mode != MINUS:
        return mode
    try:
        a, b = rungs.get(model_a, live), rungs.get(model_b, live)
    except GptlabError:
        return mode
    if tokenizer_digest(a.tokenizer) == tokenizer_digest(b.tokenizer):
        return mode
    warning(f"{Rungs.name(model_a)} and {Rungs.name(model_b)} use different tokenizers, so A minus B cannot line "
            f"up their tokens: showing the bits of A. For A minus B, choose a B with {Rungs.name(model_a)}'s "
            "tokenizer.")
    return BITS


def figure(found: SurpriseView):
    """The text coloured by A's bits, or by A − B when the view has B."""
    a, (a_name, b_name) = found.a, found.names
    if found.b is None:
        return surprise_text_figure(a.tokens, a.bits, a.ranks, a.top_labels, a.top_probs,
                                    f"{a_name} · bits per {found.unit}")
    return surprise_text_figure(a.tokens, a.bits, a.ranks, a.top_labels, a.top_probs,
                                f"{a_name} − {b_name} · bits per {found.unit} (blue: {a_name} less surprised)",
                                baseline_bits=found.b.bits, names=found.names)


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Where context pays tab: text, models A and B, the mode; the summary and the coloured text."""
    rungs = Rungs(catalog)
    first = catalog.default("gpt")
    second = "bigram" if "bigram" in catalog.names else first
    with gr.Tab("Where context pays", id="surprise") as tab:
        gr.Markdown("How surprised is a model by each character of a text? Bits = −log2 of the probability it gave "
                    "the true next character: 0 when it was sure, about 6 for a blind guess among 65 characters. "
                    "Colour by A's bits, or by A minus B to see where A's longer context pays. Hover over a "
                    "character for its bits, its rank among the model's guesses and the top five.")
        with gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox(SURPRISE_PROMPT, lines=8, label="text", elem_id="surprise-text",
                                  max_length=MAX_PROMPT_CHARS)
                model_a = gr.Dropdown(rungs.choices(), value=first, label="model A", elem_id="surprise-a")
                model_b = gr.Dropdown(rungs.choices(), value=second, label="model B (for A minus B)",
                                      elem_id="surprise-b")
                mode = gr.Radio(list(MODES), value=MINUS if second != first else BITS, label="colour by",
                                elem_id="surprise-mode")
                button = gr.Button("Colour the text", variant="primary", elem_id="surprise-btn")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="surprise-note")
                shown = gr.Plot(show_label=False, elem_id="surprise-plot")
    inputs, outputs = [text, model_a, model_b, mode, visitor.teacher, visitor.live], [summary, shown]
    # drawn when the tab is opened (not at page load: a class of 30 opens the page at once)
    on_open = tab.select(bind(show_on_open, rungs), inputs, outputs, api_visibility="private", **TEACH)
    button.click(bind(show, rungs), inputs, outputs, api_name="surprise", cancels=[on_open], **TEACH)
    gr.on([mode.input, model_b.input, text.submit], bind(show, rungs), inputs, outputs,
          api_visibility="private", cancels=[on_open], **TEACH)
    # another A: back to 'bits of A' (one warning) when B cannot be subtracted from it, then one draw
    model_a.input(bind(fit_mode, rungs), [model_a, model_b, mode, visitor.live], mode, api_visibility="private",
                  cancels=[on_open]).then(bind(show, rungs), inputs, outputs, api_visibility="private", **TEACH)
    shown.change(None, None, None, js=FOLLOW_ON_CLICK_JS, api_visibility="private")
