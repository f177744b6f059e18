"""The lesson "Where does context pay?": its text coloured by the model's bits minus those of a model without
context (the bigram), with a caption computed from the data (``gptlab.inside.context.surprise_view``)."""

from __future__ import annotations

import plotly.graph_objects as go

from ...checkpoint import Checkpoint
from ...figures.style import FONT, escape_markup
from ...figures.text import surprise_text_figure
from ...inside.context import surprise_view
from ...inside.heads import unit_for
from ...inside.surprise import tokenizer_digest
from ...markdown import code_span


def context_lesson(checkpoint: Checkpoint, baseline: Checkpoint | None, text: str, model: str,
                   baseline_name: str) -> tuple[str, go.Figure, go.Figure]:
    """(caption in Markdown, first figure, second figure) for a lesson that compares ``model`` with ``baseline``.

    The caption opens with what context saves inside words and on first letters (``ContextPays.caption``, for
    char models), then the view's numbers (``SurpriseView.summary``).
    The first figure colours each token of ``text`` by model − baseline (bits; blue where the model is less
    surprised), the second by the model's own bits. Without a baseline that reads the text in the same tokens
    (none offered, or another tokenizer) the first figure shows the model's own bits, the second says why,
    and the caption gives the model's numbers alone. Raises what ``surprise_view`` raises.
    """
    unit = unit_for(checkpoint.tokenizer.kind)
    problem = ""
    if baseline is None:
        problem = f"{code_span(baseline_name)} is not among the models here, so there is nothing to compare with."
    elif tokenizer_digest(baseline.tokenizer) != tokenizer_digest(checkpoint.tokenizer):
        problem = (f"{code_span(baseline_name)} reads text in other tokens than {code_span(model)}, so the two "
                   "cannot be compared token by token.")
    other = None if problem else baseline
    found = surprise_view(checkpoint.model, checkpoint.tokenizer, text, other and other.model,
                          other and other.tokenizer, (model, baseline_name))
    a = found.a
    own = surprise_text_figure(a.tokens, a.bits, a.ranks, a.top_labels, a.top_probs, f"{model} · bits per {unit}")
    if found.b is None:
        missing = go.Figure(layout=dict(title=dict(text=escape_markup(f"no {baseline_name} to compare with")),
                                        font=FONT, height=120, xaxis=dict(visible=False), yaxis=dict(visible=False)))
        return f"{found.summary}\n\n⚠️ {problem}", own, missing
    difference = surprise_text_figure(a.tokens, a.bits, a.ranks, a.top_labels, a.top_probs,
                                      f"{model} − {baseline_name} · bits per {unit}", baseline_bits=found.b.bits,
                                      names=(model, baseline_name))
    words = f"{found.pays.caption}\n\n{found.summary}" if found.pays is not None else found.summary
    return words, difference, own
