"""Knock out heads: switch chosen attention heads off and see what the model loses. The view shows the
next-token probabilities before and after, the change in bits on each character (BPE: token) of the prompt and
the change in validation loss; a second button ranks every head by how much the validation loss rises without it."""

from __future__ import annotations

import time

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.data import EVAL_SEED
from gptlab.errors import InputError
from gptlab.figures import before_after_bars, bits_change_bar, head_ranking_bar
from gptlab.inside.ablation import (
    MODES,
    VAL_BATCHES,
    VAL_ROWS,
    AblationView,
    ablation_view,
    all_heads,
    attention_shape,
    check_mode,
    head_choices,
    head_name,
    heads_from_names,
    rank_heads,
    shakespeare_val_batches,
)
from gptlab.inside.heads import unit_for
from gptlab.markdown import code_span
from gptlab.prompts import ATTENTION_PROMPT

from ..common import MAX_PROMPT_CHARS, TEACH, bind, checked_prompt, fitted_prompt, library_errors, plot
from ..pickers import Visitor, get_model, model_picker

RANK_TIME_LIMIT_S = 60.0  # the ranking stops measuring heads after this long and shows those measured
RANK_COLUMNS = ["rank", "head", "rise in val loss (nats/token)"]


def batches_note(checkpoint: Checkpoint) -> str:
    """Which batches the validation loss is measured on (Markdown)."""
    return (f"Validation loss: mean over the first {VAL_BATCHES} fixed evaluation batches of Tiny Shakespeare's "
            f"validation split (seed {EVAL_SEED}), {VAL_ROWS} rows of {checkpoint.config.block_size} tokens each.")


def show(catalog: Catalog, model, prompt, heads, mode, teacher=False, live: Checkpoint | None = None) -> tuple:
    """Switch the checked heads off (``heads``: names such as 'L0 H1', or 'all attention'; ``mode``: zero or mean)
    and show a note (the change in validation loss, nats/token), the next-token probabilities before and after,
    and the change in bits on each character (BPE: token) of the prompt. A head the model lacks is refused by name.
    """
    with library_errors():
        prompt = checked_prompt(prompt)
        mode = check_mode(mode)
        checkpoint = get_model(catalog, model, live)
        chosen = heads_from_names(checkpoint.model, heads, model)
        text, fit_note = fitted_prompt(checkpoint.tokenizer, prompt)
        batches = shakespeare_val_batches(checkpoint)
        found = ablation_view(checkpoint.model, checkpoint.tokenizer, text, chosen, mode, batches)
    off = "every head" if chosen == "all" else ", ".join(head_name(*pair) for pair in found.heads) or "no head"
    title = f"{model} · {off} off ({mode})"
    return (
        "\n\n".join(part for part in (note(found, off, model, checkpoint), fit_note) if part),
        plot(before_after_bars(found.next_tokens, f"next token · {title}"), teacher),
        plot(bits_change_bar(found.labels[1:], found.delta_bits,
                             f"change in bits per {unit_for(checkpoint.tokenizer.kind)} · {title}"), teacher),
    )


def note(found: AblationView, off: str, model: str, checkpoint: Checkpoint) -> str:
    """What was switched off, the change in bits on the prompt and in validation loss (Markdown)."""
    n, unit = len(found.labels) - 1, unit_for(checkpoint.tokenizer.kind)
    lines = [f"Switched off: {off} ({found.mode} mode)."]
    if n:
        lines.append(f"On the prompt's {n} predicted {unit}s: {float(found.bits_before.mean()):.3f} → "
                     f"{float(found.bits_after.mean()):.3f} bits per {unit} on average.")
    if found.delta_loss is None:
        lines.append(f"Validation loss not measured: {code_span(model)} does not say it was trained on Tiny "
                     "Shakespeare, the only text this app holds.")
    else:
        lines.append(f"{batches_note(checkpoint)} {found.loss_before:.4f} → {found.loss_after:.4f} nats/token "
                     f"({found.delta_loss:+.4f}).")
    if found.dropped:
        lines.append(f"⚠️ The prompt was cropped to the model's context: the first {found.dropped} token(s) "
                     "were dropped.")
    return "\n\n".join(lines)


def rank(catalog: Catalog, model, mode, teacher=False, live: Checkpoint | None = None) -> tuple:
    """Rank every head of the model by how much the validation loss (nats/token) rises when it alone is switched
    off: a note, the bars (most needed on top) and the table. Stops after RANK_TIME_LIMIT_S seconds and shows
    the heads measured by then."""
    with library_errors():
        mode = check_mode(mode)
        checkpoint = get_model(catalog, model, live)
        batches = shakespeare_val_batches(checkpoint)
        if batches is None:
            raise InputError(f"{model} does not say it was trained on Tiny Shakespeare, the only text this app "
                             "holds, so there is no validation loss to rank its heads by.")
        start = time.monotonic()
        rows = rank_heads(checkpoint.model, batches, mode, time_limit_s=RANK_TIME_LIMIT_S)
    seconds, total = time.monotonic() - start, len(all_heads(checkpoint.model))
    lines = [f"{len(rows)} of {total} heads of {code_span(model)} ranked ({mode} mode) in {seconds:.1f} s. "
             f"{batches_note(checkpoint)}"]
    if len(rows) < total:
        lines.append(f"⚠️ Stopped at the {RANK_TIME_LIMIT_S:.0f} s limit: the heads not listed were not measured.")
    named = [(head_name(layer, head), delta) for layer, head, delta in rows]
    return (
        "\n\n".join(lines),
        plot(head_ranking_bar(named, f"{model} · every head, most needed first ({mode})"), teacher),
        [[i + 1, name, round(delta, 5)] for i, (name, delta) in enumerate(named)],
    )


def fit_heads(catalog: Catalog, model, heads, live: Checkpoint | None = None) -> dict:
    """The checkboxes fitted to the chosen model's heads; checked heads it also has stay checked."""
    if model == "live" and live is None or model != "live" and model not in catalog.attention_names:
        return gr.update()
    checkpoint = live if model == "live" else catalog.get(model)
    choices = head_choices(*attention_shape(checkpoint.model))
    return gr.update(choices=choices, value=[h for h in heads or [] if h in choices])


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Knock out heads tab: model, prompt, heads and mode; the note and the two charts; the ranking."""
    widest = max((attention_shape(catalog.get(n).model) for n in catalog.attention_names), default=(1, 1))
    with gr.Tab("Knock out heads", id="ablate"):
        gr.Markdown("Switch attention heads off and see what the model needed them for. *zero* makes a head's "
                    "output 0; *mean* replaces it by its average over the prompt's positions, so only what it "
                    "says about each position is lost.")
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(catalog, "ablate-model", live=True)
                prompt = gr.Textbox(ATTENTION_PROMPT, lines=3, label="prompt", elem_id="ablate-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                heads = gr.CheckboxGroup(head_choices(*widest), value=[], label="heads to switch off",
                                         elem_id="ablate-heads")
                mode = gr.Radio(list(MODES), value="zero", label="mode", elem_id="ablate-mode")
                button = gr.Button("Knock out", variant="primary", elem_id="ablate-btn")
                shown = gr.Markdown(elem_id="ablate-note")
            with gr.Column(scale=2):
                after = gr.Plot(show_label=False, elem_id="ablate-next")
                bits = gr.Plot(show_label=False, elem_id="ablate-bits")
        ranking = gr.Button("Rank every head", elem_id="ablate-rank-btn")
        ranked = gr.Markdown(elem_id="ablate-rank-note")
        with gr.Row():
            bars = gr.Plot(show_label=False, elem_id="ablate-rank")
            table = gr.Dataframe(headers=RANK_COLUMNS, datatype=["number", "str", "number"], interactive=False,
                                 label="every head, most needed first", elem_id="ablate-rank-table")
    teacher, live, demo = visitor.teacher, visitor.live, visitor.demo
    button.click(bind(show, catalog), [model, prompt, heads, mode, teacher, live], [shown, after, bits],
                 api_name="ablate", **TEACH)
    ranking.click(bind(rank, catalog), [model, mode, teacher, live], [ranked, bars, table], api_name="rank", **TEACH)
    gr.on([model.change, live.change, demo.load], bind(fit_heads, catalog), [model, heads, live], [heads],
          api_visibility="private")
