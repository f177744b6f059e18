"""Look inside a model on one prompt: per-head causal attention and next-token guesses.

The data flow is one way: prompt -> token ids -> crop to block_size -> run_with_cache on the
``hook_pattern`` points -> tensors ``[head, query, key]`` per layer. Figures of it live in gptlab.figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import GptlabError, InputError
from ..hooks import hook_points, run_with_cache
from ..tokenizers import Errors, Tokenizer, visible_token, visible_tokens
from .heads import HeadLabel

TOP_K = 5  # next-token guesses kept per position: enough to show a ranking, small to read


@dataclass
class AttentionView:
    """What one forward pass on a prompt shows: tokens, attention per layer, next-token guesses."""

    ids: list[int]  # the token ids the model saw (after cropping)
    tokens: list[str]  # each token as text
    labels: list[str]  # unique, visible labels "position:token", a lone byte as <E6> (tick labels must be unique)
    patterns: list[torch.Tensor]  # one [head, query, key] tensor per layer; rows sum to 1
    predictions: list[list[tuple[str, float]]]  # per query position: (visible token, probability), best first
    dropped: int  # tokens cut from the start because the prompt was longer than the context
    block_size: int

    @property
    def cropped(self) -> bool:
        return self.dropped > 0

    @property
    def n_layer(self) -> int:
        return len(self.patterns)

    @property
    def n_head(self) -> int:
        return self.patterns[0].size(0) if self.patterns else 0

    def head_pattern(self, layer: int, head: int) -> torch.Tensor:
        """One head's [query, key] pattern; InputError naming the valid range for a layer or head the model lacks."""
        for name, value, count in (("layer", layer, self.n_layer), ("head", head, self.n_head)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
                raise InputError(f"{name} must be a whole number in 0..{count - 1} for this model, got {value!r}.")
        return self.patterns[layer][head]


@dataclass(frozen=True)
class HeadView:
    """One chosen head of an AttentionView, with every head's label: what Look closer and Across training share.

    ``view.patterns`` holds one ``[head, query, key]`` tensor per layer, ``head_labels`` is ``[layer][head]``.
    """

    view: AttentionView
    layer: int
    head: int
    head_labels: list[list[HeadLabel]]
    sentence: str  # the chosen head's label as one sentence for a class ('Layer 1, head 2 puts 71% ...')

    @property
    def pattern(self) -> torch.Tensor:
        """The chosen head's attention, [query, key]."""
        return self.view.patterns[self.layer][self.head]

    @property
    def panel_titles(self) -> list[str]:
        """One title per head of the chosen layer, 'head 2 · prev 71%' (for figures.head_grid)."""
        return [label.panel_title for label in self.head_labels[self.layer]]


def pattern_names(model: nn.Module) -> list[str]:
    """Names of the attention-pattern hook points, in layer order (empty for the bigram)."""
    return [name for name in hook_points(model) if name.endswith("attn.hook_pattern")]


def has_attention(model: nn.Module) -> bool:
    return bool(pattern_names(model))


def token_labels(tokens: list[str]) -> list[str]:
    """Unique, readable labels: the position makes repeated tokens distinct (␣ for space, ↵ for newline).

    Give it ``visible_tokens(tokenizer, ids)`` rather than the tokens' text, so byte tokens differ.
    """
    return [f"{i}:{visible_token(tok)}" for i, tok in enumerate(tokens)]


def encode_prompt(
    tokenizer: Tokenizer, prompt: str, block_size: int, errors: Errors = "strict"
) -> tuple[list[int], int]:
    """Token ids of the prompt's last ``block_size`` tokens and how many were cut from the start."""
    if not prompt:
        raise GptlabError("The prompt is empty: type some text to look at.")
    ids = tokenizer.encode(prompt, errors)
    if not ids:
        raise GptlabError("The prompt encodes to no tokens (every character was dropped): type some text.")
    dropped = max(0, len(ids) - block_size)
    return ids[dropped:], dropped


def attention_view(
    model: nn.Module, tokenizer: Tokenizer, prompt: str, errors: Errors = "strict", top_k: int = TOP_K
) -> AttentionView:
    """Run the model once on the prompt (cropped to its context) and capture every head's pattern.

    Raises GptlabError for an empty prompt or a model without attention, and
    UnknownCharactersError for characters a char model has never seen.
    """
    names = pattern_names(model)
    if not names:
        raise GptlabError(
            f"The {model.config.kind} model has no attention layers to look at; pick an attention model."
        )
    ids, dropped = encode_prompt(tokenizer, prompt, model.config.block_size, errors)
    return attention_view_ids(model, tokenizer, ids, top_k, dropped)


def attention_view_ids(
    model: nn.Module, tokenizer: Tokenizer, ids: list[int], top_k: int = TOP_K, dropped: int = 0
) -> AttentionView:
    """``attention_view`` of token ids the caller already holds, such as ids a model generated.

    Analyse generated text by its ids, never by re-encoding the decoded text: a byte-level BPE text
    re-encodes to other ids, and an unfinished last character decodes to U+FFFD. Keeps the last
    block_size ids (``dropped`` counts those cut, plus any the caller cut before). Raises GptlabError
    for no ids or a model without attention, InputError for ids outside the vocabulary.
    """
    names = pattern_names(model)
    if not names:
        raise GptlabError(
            f"The {model.config.kind} model has no attention layers to look at; pick an attention model."
        )
    if not ids:
        raise GptlabError("There are no tokens to look at: give at least one.")
    bad = [i for i in ids if not 0 <= i < tokenizer.vocab_size]
    if bad:
        raise InputError(f"Token ids must be in 0..{tokenizer.vocab_size - 1} for this tokenizer, got {bad[:5]}.")
    block_size = model.config.block_size
    dropped += max(0, len(ids) - block_size)
    ids = list(ids[-block_size:])
    device = next(model.parameters()).device
    logits, cache = run_with_cache(model, torch.tensor([ids], device=device), names=names)
    patterns = [cache[name][0].float().cpu() for name in names]  # [batch, head, q, k] -> [head, q, k]
    tokens = tokenizer.token_strings(ids)
    return AttentionView(
        ids=ids,
        tokens=tokens,
        labels=token_labels(visible_tokens(tokenizer, ids)),
        patterns=patterns,
        predictions=top_predictions(logits[0], tokenizer, top_k),
        dropped=dropped,
        block_size=block_size,
    )


def top_predictions(logits: torch.Tensor, tokenizer: Tokenizer, k: int = TOP_K) -> list[list[tuple[str, float]]]:
    """For each position of logits (T, vocab): the k likeliest next tokens at temperature 1.

    Each token is its ``visible_tokens`` label, so two byte tokens never share a bar's name.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    values, indices = probs.topk(min(k, probs.size(-1)), dim=-1)  # (T, k)
    return [
        [(label, float(p)) for label, p in zip(visible_tokens(tokenizer, row.tolist()), vals.tolist(), strict=True)]
        for row, vals in zip(indices, values, strict=True)
    ]
