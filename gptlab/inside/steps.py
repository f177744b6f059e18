"""Step-through generation: one token at a time, with the distribution and the attention behind it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import GptlabError
from ..hooks import run_with_cache
from ..sampling import GenerationSettings, next_token_probs
from ..tokenizers import IncrementalDecoder, Tokenizer, visible_tokens
from .explore import encode_prompt, pattern_names, token_labels

CANDIDATES = 10  # bars shown: the likeliest tokens before the settings are applied


@dataclass
class Step:
    """One generated token and why: the candidates' probabilities and every head's attention row."""

    text: str  # the text so far, new token included once its characters are whole (see held_back)
    token: str  # the new token (visible form: a byte that is not a whole character reads <E6>)
    candidates: list[tuple[str, float, float]]  # (visible token, p at temperature 1, p after settings)
    attention: torch.Tensor  # [layer, head, key]: the attention of the position that chose the token
    key_labels: list[str]  # one label per key position
    chosen_p: float  # the new token's probability under the settings
    token_id: int  # the new token's id
    candidate_ids: list[int]  # one id per candidate, in the same order
    ids: list[int]  # every token so far, the new one last: pass them to the next step_once
    held_back: bytes  # bytes of an unfinished character, not yet in ``text``

    @property
    def chosen_index(self) -> int:
        """Where the new token is among the candidates (found by id: two tokens may look the same)."""
        return self.candidate_ids.index(self.token_id)


def complete_text(tokenizer: Tokenizer, ids: list[int]) -> tuple[str, bytes]:
    """(the text of ``ids`` up to the last whole character, the bytes held back after it)."""
    decoder = IncrementalDecoder(tokenizer)
    return "".join(decoder.feed(i) for i in ids), decoder.pending


@torch.no_grad()
def step_once(model: nn.Module, tokenizer: Tokenizer, text: str, settings: GenerationSettings,
              candidates: int = CANDIDATES, ids: list[int] | None = None) -> Step:
    """Append one sampled token to ``text``.

    ``ids`` are the previous Step's ``ids``: they carry a character whose bytes are split over
    several tokens (shown once its last byte comes) and the exact tokens generated so far, so
    stepping equals ``generate_ids``. They are ignored when they do not spell ``text`` (the text
    was edited, or the model changed). The draw is seeded by (seed, number of tokens so far), so
    pressing Next on the same text with the same settings always gives the same token.
    Raises GptlabError for an empty text, UnknownCharactersError for characters a char model lacks.
    """
    if ids is None or not _spells(tokenizer, ids, text):
        ids, _ = encode_prompt(tokenizer, text, 10**9)  # every token: the model's crop comes below
    context = ids[-model.config.block_size:]
    names = pattern_names(model)
    device = next(model.parameters()).device
    logits, cache = run_with_cache(model, torch.tensor([context], device=device), names=names)
    last = logits[0, -1].float()
    raw = torch.softmax(last, dim=-1)
    shaped = next_token_probs(last, settings)
    if settings.temperature == 0.0:
        token = int(shaped.argmax())
    else:
        generator = torch.Generator().manual_seed(((settings.seed or 0) * 1_000_003 + len(ids)) % 2**63)
        token = int(torch.multinomial(shaped, 1, generator=generator))
    top = raw.topk(min(candidates, raw.numel())).indices.tolist()
    if token not in top:
        top = top[:-1] + [token]  # the chosen token always has its bar
    rows = [(label, float(raw[i]), float(shaped[i])) for label, i in zip(visible_tokens(tokenizer, top), top,
                                                                            strict=True)]
    attention = torch.stack([cache[n][0, :, -1, :].float().cpu() for n in names]) if names else torch.zeros(0)
    ids = [*ids, token]
    new_text, held_back = complete_text(tokenizer, ids)
    return Step(text=new_text, token=visible_tokens(tokenizer, [token])[0], candidates=rows, attention=attention,
                key_labels=token_labels(visible_tokens(tokenizer, context)), chosen_p=float(shaped[token]),
                token_id=token, candidate_ids=top, ids=ids, held_back=held_back)


def _spells(tokenizer: Tokenizer, ids: list[int], text: str) -> bool:
    """Whether ``ids`` are this tokenizer's tokens for ``text`` (held-back bytes allowed at the end)."""
    try:
        return bool(ids) and complete_text(tokenizer, ids)[0] == text
    except GptlabError:  # ids from another model's vocabulary
        return False
