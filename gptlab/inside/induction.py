"""Does the model have an induction head? Probe it on random token strings repeated once.

A string of ``length`` random tokens, then the same string again: in the second copy each token
has occurred exactly ``length`` positions earlier, and the token that followed it there is the
next one here. An induction head, at query q of the second copy, attends to key q - length + 1
(the position right after the previous occurrence of its token), so the model can copy what
comes next. Random tokens carry no grammar, so only copying can predict the second copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..hooks import run_with_cache
from .explore import pattern_names

MAX_TRIALS = 256  # random strings per probe: 256 at context 256 with 6 x 6 heads hold ~2.4 GB of attention patterns


def whole(name: str, value: object, low: int, high: int, why: str) -> int:
    """``value`` as an int (Python or numpy integer, not bool) in low..high; InputError naming ``name`` else."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number in {low}..{high} ({why}), got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class InductionProbe:
    """Induction scores and copy bits of one model on repeated random strings.

    ``scores`` is ``[layer, head]``: each head's mean attention weight (0..1) from every position
    of the second copy to the position right after the previous occurrence of its token.
    ``chance`` is what a head spreading its weight evenly over the visible keys scores.
    ``first_copy_bits`` and ``second_copy_bits`` are the model's mean surprise, in bits per token
    (bits per character for a char model), on the tokens of each copy it could predict by copying:
    positions 1..length-1 of each copy (the first token of a copy follows nothing it repeats).
    """

    scores: torch.Tensor  # [layer, head]
    chance: float
    first_copy_bits: float
    second_copy_bits: float
    length: int  # tokens per copy
    trials: int  # random strings scored
    seed: int

    @property
    def best(self) -> tuple[int, int, float]:
        """(layer, head, score) of the head with the highest induction score."""
        flat = int(self.scores.argmax())
        layer, head = divmod(flat, self.scores.size(1))
        return layer, head, float(self.scores[layer, head])


def repeated_tokens(vocab_size: int, length: int, trials: int, seed: int) -> torch.Tensor:
    """``trials`` random strings of ``length`` token ids, each followed by itself: (trials, 2 * length).

    Ids are drawn uniformly from the whole vocabulary, 0..vocab_size-1, excluding nothing: for a
    char model that includes the newline and the rare characters, for BPE every byte and merge.
    """
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(vocab_size, (trials, length), generator=generator)
    return torch.cat([first, first], dim=1)


def induction_scores(patterns: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """[layer, head] induction scores from one ``[batch, head, query_pos, key_pos]`` pattern per layer
    over sequences of two copies of ``length`` tokens: mean weight from query q (second copy) to key
    q - length + 1."""
    queries = torch.arange(length, 2 * length)
    keys = queries - length + 1
    return torch.stack([p[:, :, queries, keys].float().mean(dim=(0, 2)) for p in patterns])


def induction_chance(length: int) -> float:
    """The score of even attention: query q sees q + 1 keys, so 1 / (q + 1) averaged over the second copy."""
    return sum(1.0 / (q + 1) for q in range(length, 2 * length)) / length


@torch.no_grad()
def induction_probe(model: nn.Module, length: int | None = None, trials: int = 16, seed: int = 0) -> InductionProbe:
    """Score every head of ``model`` on ``trials`` repeated random strings of ``length`` tokens
    (default: half the context, so both copies fit). Same seed, same strings, same result.

    InputError if the model has no attention, or ``length`` is not a whole number in 2..block_size // 2,
    ``trials`` not one in 1..MAX_TRIALS, or ``seed`` not one in 0..2**63-1 (numpy integers are accepted).
    """
    names = pattern_names(model)
    if not names:
        raise InputError("This model has no attention heads: an induction probe needs at least one layer of attention.")
    block = model.config.block_size
    length = whole("length", block // 2 if length is None else length, 2, block // 2,
                   f"two copies fill at most the context of {block} tokens")
    trials = whole("trials", trials, 1, MAX_TRIALS, "each trial's attention patterns are held in memory")
    seed = whole("seed", seed, 0, 2**63 - 1, "it seeds the random strings")
    idx = repeated_tokens(model.config.vocab_size, length, trials, seed)
    logits, cache = run_with_cache(model, idx, names)
    # surprise of token t+1 given tokens ..t, in bits: (trials, 2 * length - 1)
    bits = F.cross_entropy(logits[:, :-1].transpose(1, 2), idx[:, 1:], reduction="none") / math.log(2)
    # target positions 1..length-1 of each copy (bits index t predicts position t + 1)
    first = bits[:, : length - 1].mean()
    second = bits[:, length : 2 * length - 1].mean()
    return InductionProbe(
        scores=induction_scores([cache[n] for n in names], length),
        chance=induction_chance(length),
        first_copy_bits=float(first),
        second_copy_bits=float(second),
        length=length,
        trials=trials,
        seed=seed,
    )


@torch.no_grad()
def copy_bits(model: nn.Module, ids: Sequence[int]) -> tuple[float, float] | None:
    """(first-copy bits, second-copy bits) per token when ``ids`` is one string written twice, else None.

    Scored as ``induction_probe`` scores its strings: the model's mean surprise, in bits, on positions
    1..n-1 of each copy of n tokens. None for an odd length, halves that differ, copies of fewer than 2
    tokens, or two copies longer than the model's context. InputError for an id that is not a whole
    number in 0..vocab_size-1.
    """
    vocab = model.config.vocab_size
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < vocab]
    if bad:
        raise InputError(f"ids must be token ids, whole numbers in 0..{vocab - 1}; got {bad[0]!r}.")
    n = len(ids) // 2
    if len(ids) % 2 or n < 2 or list(ids[:n]) != list(ids[n:]) or len(ids) > model.config.block_size:
        return None
    idx = torch.tensor([list(ids)])
    logits, _ = model(idx)
    bits = F.cross_entropy(logits[0, :-1], idx[0, 1:], reduction="none") / math.log(2)  # bits[t]: token t + 1
    return float(bits[: n - 1].mean()), float(bits[n : 2 * n - 1].mean())
