"""Step-through generation: one token at a time, with the distribution and the attention behind it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .explore import encode_prompt, pattern_names, token_labels
from .hooks import run_with_cache
from .sampling import GenerationSettings, next_token_probs
from .tokenizers import Tokenizer, visible_token

CANDIDATES = 10  # bars shown: the likeliest tokens before the settings are applied


@dataclass
class Step:
    """One generated token and why: the candidates' probabilities and every head's attention row."""

    text: str  # the text with the new token appended
    token: str  # the new token (visible form)
    candidates: list[tuple[str, float, float]]  # (visible token, p at temperature 1, p after settings)
    attention: torch.Tensor  # [layer, head, key]: the attention of the position that chose the token
    key_labels: list[str]  # one label per key position
    chosen_p: float  # the new token's probability under the settings


@torch.no_grad()
def step_once(model: nn.Module, tokenizer: Tokenizer, text: str, settings: GenerationSettings,
              candidates: int = CANDIDATES) -> Step:
    """Append one sampled token to ``text``.

    The draw is seeded by (seed, number of tokens so far), so pressing Next on the same text
    with the same settings always gives the same token: a class can follow along.
    """
    ids, _ = encode_prompt(tokenizer, text, model.config.block_size)
    names = pattern_names(model)
    device = next(model.parameters()).device
    logits, cache = run_with_cache(model, torch.tensor([ids], device=device), names=names)
    last = logits[0, -1].float()
    raw = torch.softmax(last, dim=-1)
    shaped = next_token_probs(last, settings)
    if settings.temperature == 0.0:
        token = int(shaped.argmax())
    else:
        generator = torch.Generator().manual_seed(((settings.seed or 0) * 1_000_003 + len(text)) % 2**63)
        token = int(torch.multinomial(shaped, 1, generator=generator))
    top = raw.topk(min(candidates, raw.numel())).indices.tolist()
    if token not in top:
        top = top[:-1] + [token]  # the chosen token always has its bar
    strings = tokenizer.token_strings(top)
    rows = [(visible_token(s), float(raw[i]), float(shaped[i])) for s, i in zip(strings, top, strict=True)]
    attention = torch.stack([cache[n][0, :, -1, :].float().cpu() for n in names]) if names else torch.zeros(0)
    piece = tokenizer.decode([token])
    return Step(text=text + piece, token=visible_token(tokenizer.token_strings([token])[0]), candidates=rows,
                attention=attention, key_labels=token_labels(tokenizer.token_strings(ids)),
                chosen_p=float(shaped[token]))
