"""Attention rollout and the logit lens: two ways to read a model across its layers.

Rollout (Abnar & Zuidema, 2020): average each layer's heads, add the residual connection as an
identity (0.5 A + 0.5 I), renormalise the rows and multiply the layers together, so row q says how
much each input position flows into position q at the top. The logit lens (nostalgebraist, 2020)
reads the residual stream after each layer through the final LayerNorm and LM head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import run_with_cache
from ..tokenizers import Tokenizer, visible_tokens


def rollout(patterns: Sequence[torch.Tensor], residual: float = 0.5) -> list[torch.Tensor]:
    """Cumulative rollout after each layer: ``patterns`` holds one [head, q, k] tensor per layer.

    Returns one [q, k] tensor per layer; the last is the whole model's rollout. Rows sum to 1.
    """
    result: list[torch.Tensor] = []
    total: torch.Tensor | None = None
    for heads in patterns:
        attn = heads.float().mean(dim=0)  # [q, k]: the layer as a whole
        eye = torch.eye(attn.size(0))
        mixed = (1 - residual) * attn + residual * eye  # the residual stream carries each token forward
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        total = mixed if total is None else mixed @ total  # later layers act on what earlier ones mixed
        result.append(total)
    return result


@dataclass
class LensRow:
    """The logit lens at one depth: where it reads and the top guesses (``visible_tokens`` label, probability)."""

    name: str  # 'embed', 'layer 0', ...
    guesses: list[tuple[str, float]]


def resid_names(model: nn.Module) -> list[str]:
    """The residual stream hook points in depth order: embeddings, then after each layer."""
    return ["hook_embed"] + [f"transformer.h.{i}.hook_resid_post" for i in range(model.config.n_layer)]


@torch.no_grad()
def logit_lens(model: nn.Module, tokenizer: Tokenizer, ids: Sequence[int], position: int = -1,
               top_k: int = 5) -> list[LensRow]:
    """Top next-token guesses read from the residual stream at ``position`` before/after each layer.

    The last row reads the final residual, so it equals the model's own prediction.
    """
    names = resid_names(model)
    device = next(model.parameters()).device
    _, cache = run_with_cache(model, torch.tensor([list(ids)], device=device), names=names)
    rows = []
    for i, name in enumerate(names):
        resid = cache[name][0, position]  # [n_embd]
        probs = torch.softmax(model.unembed(resid).float(), dim=-1)
        values, indices = probs.topk(min(top_k, probs.numel()))
        labels = visible_tokens(tokenizer, indices.tolist())  # byte tokens as <E6>: guesses stay apart
        rows.append(LensRow("embed" if i == 0 else f"after layer {i - 1}",
                            [(label, float(p)) for label, p in zip(labels, values.tolist(), strict=True)]))
    return rows
