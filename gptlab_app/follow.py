"""Follow one character, in the Attention explorer and Look closer: the prompt as text, each earlier token
shaded by the weight the followed one gives it (the chosen head, the layer's average or rollout), and the
matching heatmap row outlined.

A click on a character, or ← / → with the text focused, writes its position into the hidden number
``#{prefix}-follow-pos`` and triggers its change; the server then only re-reads a row of the prompt's
attention, kept per model and prompt, with no new forward pass. Another tab opens the view at a prompt and
position with ``follow_js.open_follow_js()`` as its event's ``js=``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import InputError
from gptlab.figures import follow_heatmap, follow_text_html
from gptlab.figures.follow import heatmap_zmax
from gptlab.inside import AttentionView, attention_view, follow
from gptlab.prompts import fit_builtin

from .common import checked_prompt, layer_and_head, library_errors, plot, quietly, token_position
from .follow_js import on_load_js
from .links import linked_view
from .pickers import get_model

BY = [("this head", "head"), ("average of the layer's heads", "mean"), ("rollout (all layers)", "rollout")]
CACHED_VIEWS = 32  # prompts kept for moving along them; gpt at full context holds 6x6x128x128 floats, 2.4 MB
_views: OrderedDict[tuple[int, str], tuple[Checkpoint, AttentionView]] = OrderedDict()
_lock = threading.Lock()


def cached_view(checkpoint: Checkpoint, text: str, keep: bool = True) -> AttentionView:
    """The prompt's AttentionView, captured once per (shipped model, text) and kept for the next move.

    ``keep`` False (a visitor's live model, whose weights change while it trains) captures it afresh.
    """
    key = (id(checkpoint), text)
    with _lock:
        hit = _views.get(key)
        if hit is not None and hit[0] is checkpoint:  # the same object, not a new one at a reused id
            _views.move_to_end(key)
            return hit[1]
    view = attention_view(checkpoint.model, checkpoint.tokenizer, text)
    if keep:
        with _lock:
            _views[key] = (checkpoint, view)
            while len(_views) > CACHED_VIEWS:
                _views.popitem(last=False)
    return view


def checked_by(by) -> str:
    """'head', 'mean' or 'rollout', else InputError naming them."""
    if by not in {value for _, value in BY}:
        raise InputError(f"Shade by must be one of 'head', 'mean' or 'rollout', got {by!r}.")
    return by


def show(catalog: Catalog, model, prompt, layer, head, by, position, teacher=False,
         live: Checkpoint | None = None) -> tuple:
    """Follow one character: the text as HTML, every token before ``position`` (-1 = last) shaded by the
    weight it gets (by 'head': the chosen head; 'mean': the layer's average; 'rollout': all layers), each
    token's weight in ``data-weight``; and the matching heatmap with that row outlined."""
    with library_errors():
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = layer_and_head(checkpoint.config, layer, head, model)
        position = token_position(position, "position")
        by = checked_by(by)
        fit = fit_builtin(checkpoint.tokenizer, prompt)
        view = cached_view(checkpoint, fit.text, keep=checkpoint is not live)
        found = follow(view, checkpoint.tokenizer, layer, head if by == "head" else by, position)
    label = view.labels[found.position]
    short = "rollout" if by == "rollout" else found.source  # the caption says what rollout is
    fig = follow_heatmap(found.matrix, view.labels, found.position, f"{model} · {short} · row {label}",
                         rollout=by == "rollout")
    caption = [f"Following {label}: shaded by {found.source}, the weight it gives each earlier token."]
    if found.position + 1 < len(found.tokens):  # the query at position t predicts token t + 1
        caption.append(f"This is the attention that predicted ‘{found.tokens[found.position + 1]}’.")
    caption.append("Click a character, or click the text and press ← / →.")
    if found.clamped:
        caption.append(f"Position {position} is past the end of this text ({len(view.ids)} tokens): "
                       f"following the last one, {found.position}.")
    if view.cropped:
        caption.append(f"Cropped to the model's context: the first {view.dropped} token(s) are not shown.")
    if fit.changed:
        caption.append(fit.note())
    text = follow_text_html(found.tokens, found.weights, found.position, " ".join(caption),
                            zmax=heatmap_zmax(fig), teacher=bool(teacher))
    return text, plot(fig, bool(teacher))


def show_on_open(catalog: Catalog, model, prompt, layer, head, by, position, teacher=False,
                 live: Checkpoint | None = None, request: gr.Request = None) -> tuple:
    """The followed character drawn when the page opens (the last one), quietly if the defaults cannot be; in
    teacher style when the link asks (?teacher=1)."""
    teacher = bool(teacher) or linked_view(catalog, request, warn=False).teacher
    return quietly(lambda: show(catalog, model, prompt, layer, head, by, position, teacher, live), 2)


def follow_section(prefix: str) -> tuple[gr.Radio, gr.Number, gr.HTML, gr.Plot]:
    """The section's components (elem_ids ``{prefix}-follow-by``, ``-follow-pos`` (hidden), ``-follow``,
    ``-follow-heatmap``): call inside the tab's layout."""
    gr.Markdown("### Follow one character\nEvery earlier character shaded by the weight the chosen one gives "
                "it; later ones are greyed, a causal model cannot see them.")
    by = gr.Radio(BY, value="head", label="shade by", elem_id=f"{prefix}-follow-by")
    position = gr.Number(-1, precision=0, label="followed position (-1 = last)", visible="hidden",
                         elem_id=f"{prefix}-follow-pos")
    with gr.Row():
        text = gr.HTML(elem_id=f"{prefix}-follow", js_on_load=on_load_js(prefix), padding=True)
        heatmap = gr.Plot(show_label=False, elem_id=f"{prefix}-follow-heatmap")
    return by, position, text, heatmap
