"""Look closer: one prompt read three ways at once (head labels, attention rollout, the logit lens).

``closer_look`` is the one call behind the app's Look closer tab, and works the same in a notebook;
the ``CloserLook`` it returns holds everything that tab draws (the figures come from gptlab.figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..markdown import code_span
from ..prompts import fit_builtin
from ..tokenizers import Tokenizer
from .explore import HeadView, attention_view
from .heads import describe, label_heads, unit_for
from .lens import LensRow, logit_lens, rollout


@dataclass(frozen=True)
class CloserLook(HeadView):
    """One head on one prompt, with the whole model's rollout, and the logit lens at one position.

    With T the prompt's tokens after cropping to the context: ``view.patterns`` holds one
    ``[head, query, key]`` tensor per layer, ``pattern`` is ``[query, key]``, ``rollout`` is the
    whole model's ``[query, key]`` (rows sum to 1), ``head_labels`` is ``[layer][head]``, and ``lens``
    has one row per depth (the embeddings, then after each layer) of the top guesses at ``position``.
    """

    position: int  # the query position that the rollout bar and the logit lens read, 0..T-1
    rollout: torch.Tensor
    lens: list[LensRow]
    prompt_note: str = ""  # Markdown: the characters of a built-in prompt this model never saw, left out

    @property
    def note(self) -> str:
        """Markdown: the head's sentence, the position the rollout and the lens read, the prompt's note."""
        text = f"{self.sentence}\n\nRollout and logit lens for position {code_span(self.view.labels[self.position])}."
        return text + (f"\n\n⚠️ {self.prompt_note}" if self.prompt_note else "")


def closer_look(model: nn.Module, tokenizer: Tokenizer, prompt: str, layer: int, head: int,
                position: int = -1) -> CloserLook:
    """Capture the prompt's attention once and read it closely: labels, one head, rollout, logit lens.

    ``position`` -1 (or one past the end) reads the last token. A prompt that gptlab supplies is
    fitted to the model (``prompts.fit_builtin``); a person's own prompt is kept as typed. Raises
    InputError for a layer or head the model lacks, GptlabError for an empty prompt or a model
    without attention, and UnknownCharactersError for characters a char model has never seen.
    """
    fit = fit_builtin(tokenizer, prompt)
    view = attention_view(model, tokenizer, fit.text)
    view.head_pattern(layer, head)  # the range check, before the heavier work
    q = len(view.ids) - 1 if position < 0 or position >= len(view.ids) else position
    labels = label_heads(view.patterns, view.tokens, view.ids)
    return CloserLook(
        view=view,
        layer=layer,
        head=head,
        position=q,
        head_labels=labels,
        sentence=describe(labels[layer][head], unit_for(tokenizer.kind)),
        rollout=rollout(view.patterns)[-1],
        lens=logit_lens(model, tokenizer, view.ids, q),
        prompt_note=fit.note(code_span) if fit.changed else "",
    )
