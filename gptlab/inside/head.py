"""Inside one head: the arithmetic behind one row of its attention pattern, one key at a time.

For a chosen query position the head scores every key it may see (positions 0..query) with the dot
product q·k, multiplies by the scale 1/sqrt(head_size), turns the scores into weights with a softmax,
and outputs the weighted sum of the value vectors. ``head_math`` reads each of those numbers at the
attention's hook points (``hook_q``, ``hook_k``, ``hook_v``, ``hook_attn_scores``, ``hook_pattern``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import GptlabError, InputError
from ..hooks import run_with_cache
from ..tokenizers import Errors, Tokenizer, visible_tokens
from .explore import encode_prompt, pattern_names, token_labels

POINTS = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern")  # read at the chosen layer


@dataclass(frozen=True)
class HeadMath:
    """One head at one query position: q·k, scale, score, softmax weight and value of every visible key.

    With S = query + 1 visible keys (positions 0..query) and hs = ``head_size``: ``q`` is ``[hs]``,
    ``keys`` and ``values`` are ``[S, hs]``, ``dot`` (q·k, unscaled), ``scores`` (q·k times ``scale``, what the
    softmax sees), ``weights`` (the softmax, summing to 1: the head's ``hook_pattern`` row) and
    ``contribution_sizes`` (‖weight·v‖, how much each value vector moves the output) are ``[S]``, and
    ``output`` is ``[hs]``: the head's output at the query, ``weights @ values``, before the output projection.
    """

    layer: int
    head: int
    query: int  # position of the query token in the (cropped) prompt, 0..T-1
    head_size: int
    scale: float  # 1 / sqrt(head_size), exactly as the attention uses it
    labels: list[str]  # unique key labels "position:token" for positions 0..query (the query is the last)
    tokens: list[str]  # each visible key as readable text (␣ for a space, ↵ for a newline)
    q: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    dot: torch.Tensor
    scores: torch.Tensor
    weights: torch.Tensor
    output: torch.Tensor
    contribution_sizes: torch.Tensor
    dropped: int  # tokens cut from the start because the prompt was longer than the context

    @property
    def sqrt_head_size(self) -> float:
        return math.sqrt(self.head_size)

    @property
    def query_label(self) -> str:
        return self.labels[-1]

    @property
    def order(self) -> list[int]:
        """Key positions by weight, largest first (ties: the earlier position first)."""
        return sorted(range(len(self.labels)), key=lambda k: (-float(self.weights[k]), k))

    def table(self) -> list[dict[str, Any]]:
        """One row per visible key, sorted by weight (largest first): what the CSV export writes."""
        return [
            {"position": k, "token": self.tokens[k], "q_dot_k": float(self.dot[k]), "scale": self.scale,
             "score": float(self.scores[k]), "weight": float(self.weights[k]),
             "contribution_size": float(self.contribution_sizes[k])}
            for k in self.order
        ]


def _check_index(name: str, value: object, count: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -count <= value < count:
        raise InputError(f"{name} must be a whole number in 0..{count - 1} {hint}, got {value!r}.")
    return value % count


def head_math(model: nn.Module, tokenizer: Tokenizer, prompt: str, layer: int, head: int, query: int = -1,
              errors: Errors = "strict") -> HeadMath:
    """Run the model once on the prompt (cropped to its context) and take apart one head's row at ``query``.

    ``query`` counts token positions from 0; -1 (the default) is the last token, as in Python indexing.
    Raises InputError for a layer, head or query the model or prompt lacks, GptlabError for an empty
    prompt or a model without attention, and UnknownCharactersError for characters a char model has never seen.
    """
    if not pattern_names(model):
        raise GptlabError(
            f"The {model.config.kind} model has no attention layers to look inside; pick an attention model."
        )
    config = model.config
    layer = _check_index("layer", layer, config.n_layer, "for this model")
    head = _check_index("head", head, config.n_head, "for this model")
    ids, dropped = encode_prompt(tokenizer, prompt, config.block_size, errors)
    query = _check_index("query", query, len(ids), f"(or -1 for the last) for this prompt of {len(ids)} tokens")

    prefix = f"transformer.h.{layer}.attn."
    device = next(model.parameters()).device
    _, cache = run_with_cache(model, torch.tensor([ids], device=device), names=[prefix + p for p in POINTS])
    q, k, v, scores, pattern = (cache[prefix + p][0, head].float().cpu() for p in POINTS)  # drop [batch, head]
    keys, values = k[: query + 1], v[: query + 1]  # [S, hs]: the future is not visible
    weights = pattern[query, : query + 1]
    contributions = weights[:, None] * values  # [S, hs]: what each key's value adds to the output
    visible = visible_tokens(tokenizer, ids)
    return HeadMath(
        layer=layer, head=head, query=query, head_size=config.head_size, scale=1.0 / math.sqrt(config.head_size),
        labels=token_labels(visible)[: query + 1], tokens=visible[: query + 1],
        q=q[query], keys=keys, values=values, dot=keys @ q[query], scores=scores[query, : query + 1],
        weights=weights, output=weights @ values, contribution_sizes=contributions.norm(dim=-1),
        dropped=dropped,
    )
