"""Generation settings and the next-token distribution they define (temperature, top-k, top-p)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import GptlabError, SettingsError, shown_value

MAX_NEW_TOKENS = 20_000  # library-wide bound; the app sets a smaller one
MAX_TEMPERATURE = 10.0


@dataclass(frozen=True)
class GenerationSettings:
    """How to pick each next token. temperature 0 means greedy; top_k 0 and top_p 1 mean off."""

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None  # same seed, same text; None draws a fresh one

    def validate(self, max_new_tokens: int | None = MAX_NEW_TOKENS) -> GenerationSettings:
        """Return self if every setting is in range, else raise SettingsError saying which and why.
        ``max_new_tokens`` caps the count (None: any whole number of tokens)."""
        _check_int("max_new_tokens", self.max_new_tokens, 0, max_new_tokens)
        _check_float("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        _check_int("top_k", self.top_k, 0, None)
        _check_float("top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0.0:
            raise SettingsError(
                "top_p must be above 0 (it keeps the smallest set of tokens whose probability reaches "
                "top_p); use 1 to turn it off."
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise SettingsError(f"seed must be a whole number or empty, got {shown_value(self.seed)}.")
        return self

    def make_generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        generator = torch.Generator(device=device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed % 2**64)  # any integer is a valid seed
        return generator


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} must be a whole number, got {shown_value(value)}.")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"{low} or more"
        raise SettingsError(f"{name} must be in {bound}, got {shown_value(value)}.")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{name} must be a number in {low}..{high}, got {shown_value(value)}.")
    if not low <= value <= high:
        raise SettingsError(f"{name} must be in {low}..{high}, got {shown_value(value)}.")


def next_token_probs(logits: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """Probabilities (..., vocab) after temperature, top-k and top-p; zeros where filtered out.

    Temperature 0 puts all the mass on the argmax (greedy decoding).
    """
    logits = logits.float()
    if settings.temperature == 0.0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).float()
    # shift so the largest logit is 0 before dividing, and keep the divisor a positive float32: a
    # tiny temperature then sends the others to -inf (probability 0) instead of inf - inf or 0 / 0 = NaN
    temperature = max(settings.temperature, torch.finfo(logits.dtype).tiny)
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if 0 < settings.top_k < logits.size(-1):
        kth = torch.topk(logits, settings.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already reach top_p (the top one always stays)
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= settings.top_p
        drop_sorted[..., 0] = False  # even when top_p rounds to 0 in float32
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator) -> int:
    """One token id drawn from the last position's logits (vocab,)."""
    return sample_rows(logits[None], [settings], [generator])[0]


def sample_rows(logits: torch.Tensor, settings: list[GenerationSettings], generators: list[torch.Generator],
                race=None) -> list[int]:
    """One token id per row of ``logits`` (rows, vocab), row r drawn with ``settings[r]`` and ``generators[r]``.

    The draw is an exponential race: with E_i ~ Exp(1) from the row's generator, argmax p_i / E_i is token i
    with probability p_i. It is the draw ``torch.multinomial(p, 1)`` makes (the same token and the same
    generator state afterwards, checked in tests/test_sampling.py), written out so that rows sharing their
    settings are filtered and drawn in one go: a row's token depends only on its logits, settings and generator.
    Greedy rows (temperature 0) take the argmax and leave their generator untouched.

    ``race(probs, generators) -> ids`` may replace the draw for the rows of one setting with one that draws the
    same numbers (the generation engine passes its TorchScript loop, gptlab.generate.scripted).

    Raises GptlabError when a row's logits hold NaN or +inf, or are all -inf: there is no distribution to draw
    from (the race's argmax would silently pick token 0, where torch.multinomial refuses).
    """
    if not torch.isfinite(logits.amax(dim=-1)).all():  # the max is NaN if any logit is, inf if any is
        raise GptlabError(
            "The model's next-token scores hold NaN or infinite values, so no token can be drawn: its weights "
            "hold NaN or infinity (a training run that diverged?), or its numbers overflow its dtype. Check the "
            "weights, or use float32."
        )
    tokens = [0] * len(settings)
    groups: dict[tuple[float, int, float], list[int]] = {}
    for r, s in enumerate(settings):
        groups.setdefault((s.temperature, s.top_k, s.top_p), []).append(r)
    for rows in groups.values():
        probs = next_token_probs(logits[rows], settings[rows[0]])  # (len(rows), vocab)
        if settings[rows[0]].temperature == 0.0:
            picked = probs.argmax(dim=-1)
        elif race is not None:
            picked = race(probs, [generators[r] for r in rows])
        else:
            draws = torch.empty_like(probs)
            for j, r in enumerate(rows):
                draws[j].exponential_(1.0, generator=generators[r])
            picked = (probs / draws).argmax(dim=-1)
        for r, token in zip(rows, picked.tolist(), strict=True):
            tokens[r] = token
    return tokens
