"""Where does context pay, as one view: a text scored by model A, and by model B when given, with the sentences
that sum it up. The "Where context pays" tab and the "Where does context pay?" lesson draw this object."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import InputError
from ..markdown import code_span
from ..tokenizers import Tokenizer
from .heads import unit_for
from .surprise import (
    ContextPays,
    Surprise,
    SurpriseDifference,
    context_pays,
    surprise,
    surprise_difference,
    tokenizer_digest,
)


@dataclass(frozen=True)
class SurpriseView:
    """Model A's surprise at a text (``a``: ``bits``, ``ranks`` ``[T]``, top-k ``[T, k]``, see ``Surprise``) and,
    when B is given, B's on the same tokens (``b``), A minus B (``difference.bits`` ``[T]``, bits; negative where
    A is less surprised) and, for char models on prose, what A's context saves inside words and at their start
    (``pays``). ``names`` are the two models' names as shown; ``unit`` is 'character' or 'token'; ``ends`` ``[N]``
    is where each token ends in ``a.text`` (characters: ``a.text[:ends[i]]`` is the text up to token i)."""

    a: Surprise
    b: Surprise | None
    difference: SurpriseDifference | None
    pays: ContextPays | None
    names: tuple[str, str]
    unit: str
    ends: list[int]

    @property
    def summary(self) -> str:
        """The view in words (Markdown): mean bits, how often the first guess was right, A against B overall and,
        when ``pays`` is known, on letters inside words and on first letters (in bits, A − B: negative where A
        is less surprised)."""
        a_name, b_name = (code_span(name) for name in self.names)
        a, unit, n = self.a, self.unit, len(self.a.bits)
        units = unit if n == 1 else f"{unit}s"
        first = float((a.ranks == 0).double().mean())
        low, high = int(a.context.min()), int(a.context.max())
        seen = f"{low}–{high} earlier {unit}s" if high > 1 else f"1 earlier {unit}"  # the first prediction sees 1
        lines = [f"{a_name}: {a.mean_bits:.2f} bits per {unit} on average over {n:,} predicted {units}; its first "
                 f"guess was right on {first:.0%} of them. Each prediction saw {seen} (windows of {a.block_size}, "
                 f"one every {a.stride})."]
        if self.difference is not None and self.b is not None:
            better = float((self.difference.bits < 0).double().mean())
            lines.append(f"{a_name} − {b_name}: {self.difference.mean_bits:+.2f} bits per {unit} on average "
                         f"({a_name} {a.mean_bits:.2f}, {b_name} {self.b.mean_bits:.2f}); {a_name} is less surprised "
                         f"on {better:.0%} of the {n:,} {units} (blue).")
        if self.pays is not None:
            pays = self.pays
            lines.append(f"{a_name} − {b_name} on letters inside a word: {-pays.inside_word:+.2f} bits per letter "
                         f"({pays.n_inside_word:,} letters); on the first letter of a word: {-pays.word_start:+.2f} "
                         f"({pays.n_word_start:,} letters).")
        return "\n\n".join(lines)


def surprise_view(model_a: nn.Module, tokenizer_a: Tokenizer, text: str, model_b: nn.Module | None = None,
                  tokenizer_b: Tokenizer | None = None, names: tuple[str, str] = ("A", "B"),
                  stride: int | None = None) -> SurpriseView:
    """Score ``text`` with A (and with B when given) at each model's default stride unless ``stride`` is given.

    Raises InputError for a text of fewer than two tokens or two models with different tokenizers (their tokens
    do not line up), and UnknownCharactersError for characters a char model has never seen.
    """
    a = surprise(model_a, tokenizer_a, text, stride)
    b = difference = pays = None
    if model_b is not None:
        if tokenizer_b is None:
            raise InputError("Model B needs its tokenizer.")
        if tokenizer_digest(tokenizer_a) != tokenizer_digest(tokenizer_b):  # said before B meets the text
            raise InputError(f"{names[0]} and {names[1]} use different tokenizers, so their tokens do not line up: "
                             "compare models that share a tokenizer (two rungs of the char ladder, or two snapshots "
                             "of one run).")
        b = surprise(model_b, tokenizer_b, text, None if stride is None else min(stride, model_b.config.block_size))
        difference = surprise_difference(a, b)
        try:
            pays = context_pays(a, b, names)
        except InputError:  # BPE tokens, or a text with no word to split: the view stands without it
            pays = None
    if len(a.ids) == len(text):  # one token per character
        ends = list(range(1, len(text) + 1))
    else:  # decoded prefixes: a byte-level token that ends inside a character ends where its character does
        ends = [len(tokenizer_a.decode(a.ids[: i + 1])) for i in range(len(a.ids))]
    return SurpriseView(a, b, difference, pays, names, unit_for(getattr(tokenizer_a, "kind", "char")), ends)
