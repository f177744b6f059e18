"""Where does context pay? A model's surprise at every token of a text, and two models compared.

Surprise is −log2 p(true next token): bits. The text is scored in windows of the model's context
(``windows``): each token after the first is predicted exactly once, from as many earlier tokens as the
window allows, so a bigram, a one-head model and the GPT can be compared token by token on one text.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data import TokenSplits
from ..errors import InputError
from ..tokenizers import Errors, Tokenizer, visible_tokens
from .explore import TOP_K, token_labels

CAPTION_CHARS = 2000  # the lesson scores the first 2,000 characters of the val split: a few seconds on a CPU


@dataclass(frozen=True)
class Surprise:
    """A model's surprise at each token of a text, with the true token's rank and the model's top-k guesses.

    The text has N tokens (``ids``, ``tokens``, ``labels`` are ``[N]``); the first has nothing before it,
    so T = N − 1 tokens are predicted. Index t of every ``[T]`` or ``[T, k]`` field is the prediction made
    at position t of token t + 1 (``labels[t + 1]``): ``bits`` (float32, −log2 p(true token)), ``ranks``
    (int64, how many tokens the model found likelier than the true one: 0 = its first choice; the app shows it
    1-based, '1st guess'),
    ``context`` (int64, how many tokens the prediction saw, 1..block_size), ``top_ids`` and ``top_probs``
    (``[T, k]``, likeliest first, probabilities at temperature 1) and ``top_labels`` (``[T][k]``).
    """

    text: str
    ids: list[int]
    tokens: list[str]  # each token readable (␣ space, ↵ newline, <E6> a lone byte)
    labels: list[str]  # unique "position:token" labels (explore.token_labels)
    bits: torch.Tensor
    ranks: torch.Tensor
    context: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_labels: list[list[str]]
    windows: list[tuple[int, int]]  # (first input position, first scored position) of each window, in order
    stride: int
    block_size: int
    model_kind: str
    tokenizer_digest: str  # tells tokenizers apart: two Surprises compare only under the same one

    @property
    def mean_bits(self) -> float:
        """Bits per predicted token on average: the cross-entropy in nats ÷ ln 2."""
        return float(self.bits.double().mean())


@dataclass(frozen=True)
class SurpriseDifference:
    """Model A minus model B on one text: ``bits`` ``[T]`` is ``a.bits − b.bits`` (negative where A is less
    surprised, i.e. where A's extra context pays); ``a`` and ``b`` keep both models' ranks and top-k."""

    a: Surprise
    b: Surprise
    bits: torch.Tensor

    @property
    def mean_bits(self) -> float:
        return float(self.bits.double().mean())


@dataclass(frozen=True)
class ContextPays:
    """The average bits that context saves (``without`` minus ``with``) on two kinds of letter of one text.

    A word is a run of letters (``str.isalpha``): ``inside_word`` averages the letters that follow a
    letter, ``word_start`` those that follow anything else (space, newline, punctuation, the apostrophe).
    """

    inside_word: float
    word_start: float
    n_inside_word: int
    n_word_start: int
    with_context: str  # the model kinds compared, for the caption
    without_context: str

    @property
    def caption(self) -> str:
        """One paragraph whose conclusion follows the numbers (a text where context does not pay says so)."""
        inside = f"{_letters(self.n_inside_word)} inside a word"
        start = f"{_letters(self.n_word_start)} at the start of a word"
        if self.inside_word > max(self.word_start, 0.0):
            return (f"Context pays inside words: the {self.with_context} model saves {self.inside_word:.2f} bits per "
                    f"letter over the {self.without_context} on letters inside a word ({inside}), but only "
                    f"{self.word_start:.2f} bits on the first letter of a word ({start}): once a word has begun, "
                    "its spelling is nearly fixed; which word comes next is still open.")
        numbers = (f"the {self.with_context} model {_saves(self.inside_word)} per letter over the "
                   f"{self.without_context} on letters inside a word ({inside}) and {_saves(self.word_start)} on the "
                   f"first letter of a word ({start})")
        if self.inside_word <= 0 and self.word_start <= 0:
            return (f"Context does not pay on this text: {numbers}. What came before misleads the model here more "
                    "than it helps (a text unlike the one it learned from).")
        return (f"On this text context pays no more inside words than at their start: {numbers}. On ordinary prose "
                "the saving inside words is the larger one.")


def _letters(n: int) -> str:
    return f"{n:,} letter" if n == 1 else f"{n:,} letters"


def _saves(bits: float) -> str:
    return f"saves {bits:.2f} bits" if bits >= 0 else f"loses {-bits:.2f} bits"


def windows(n_inputs: int, block_size: int, stride: int) -> list[tuple[int, int]]:
    """The windows that score input positions 0..n_inputs−1, as (first input, first scored input) pairs.

    Windows are ``block_size`` long (shorter only when the whole text is) and start every ``stride``
    positions; the last is moved back to end at the text's end. Each window scores only the positions
    that no earlier window scored, so every position is scored once, and each position past the first
    window sees at least block_size − stride + 1 tokens. stride = block_size gives the consecutive windows
    of train.evaluate.full_split_loss (plus one for the tail it leaves out); stride = 1 gives every
    position its full block_size of context, at block_size times the cost.
    """
    width = min(block_size, n_inputs)
    out: list[tuple[int, int]] = []
    scored = 0  # positions below this one are scored already
    start = 0
    while scored < n_inputs:
        start = min(start, n_inputs - width)
        out.append((start, scored))
        scored = start + width
        start += stride
    return out


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    """A short fingerprint of a tokenizer's kind and vocabulary: equal for the same tokenizer."""
    vocabulary = "\x00".join(visible_tokens(tokenizer, list(range(tokenizer.vocab_size))))
    kind = getattr(tokenizer, "kind", type(tokenizer).__name__)
    return hashlib.sha256(f"{kind}\x00{vocabulary}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


@torch.no_grad()
def surprise(model: nn.Module, tokenizer: Tokenizer, text: str, stride: int | None = None, top_k: int = TOP_K,
             errors: Errors = "strict") -> Surprise:
    """Score every token of ``text`` after the first: bits, rank of the true token and the top-k guesses.

    ``stride`` (1..block_size, default block_size // 2) is how far apart windows start (``windows``).
    Raises InputError for a text of fewer than two tokens or a stride or top_k out of range, and
    UnknownCharactersError for characters a char model has never seen.
    """
    block_size = model.config.block_size
    stride = max(1, block_size // 2) if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= block_size:
        raise InputError(f"stride must be a whole number in 1..{block_size} (the model's context), got {stride!r}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= tokenizer.vocab_size:
        raise InputError(f"top_k must be a whole number in 1..{tokenizer.vocab_size}, got {top_k!r}.")
    ids = tokenizer.encode(text, errors)
    if len(ids) < 2:
        raise InputError(f"The text has {len(ids)} token(s): surprise needs at least two (one to read, one to "
                         "predict). Give a longer text.")
    data = torch.tensor(ids)
    n_inputs = len(ids) - 1
    device = next(model.parameters()).device
    logprobs, context = [], []
    plan = windows(n_inputs, block_size, stride)
    for start, first in plan:
        x = data[start : start + min(block_size, n_inputs)]
        logits, _ = model(x[None].to(device))
        keep = slice(first - start, None)  # the positions no earlier window scored
        logprobs.append(torch.log_softmax(logits[0, keep].float().cpu(), dim=-1))  # [scored, vocab]
        context.append(torch.arange(first, start + len(x)) - start + 1)
    logp = torch.cat(logprobs)  # [T, vocab]
    targets = data[1:]
    true = logp.gather(1, targets[:, None])[:, 0]
    top_logp, top_ids = logp.topk(top_k, dim=-1)  # [T, k], likeliest first
    return Surprise(
        text=text, ids=ids, tokens=visible_tokens(tokenizer, ids), labels=token_labels(visible_tokens(tokenizer, ids)),
        bits=-true / math.log(2), ranks=(logp > true[:, None]).sum(dim=-1), context=torch.cat(context),
        top_ids=top_ids, top_probs=top_logp.exp(),
        top_labels=[visible_tokens(tokenizer, row) for row in top_ids.tolist()],
        windows=plan, stride=stride, block_size=block_size, model_kind=model.config.kind,
        tokenizer_digest=tokenizer_digest(tokenizer),
    )


def surprise_difference(a: Surprise, b: Surprise) -> SurpriseDifference:
    """A minus B, token by token: both must score the same text with the same tokenizer (InputError if not)."""
    if a.tokenizer_digest != b.tokenizer_digest:
        raise InputError("A and B use different tokenizers, so their tokens do not line up: compare models that "
                         "share a tokenizer (two rungs of the char ladder, or two snapshots of one run).")
    if a.ids != b.ids:
        raise InputError(f"A and B scored different texts ({len(a.ids)} and {len(b.ids)} tokens): score the same "
                         "text with both models.")
    return SurpriseDifference(a=a, b=b, bits=a.bits - b.bits)


def context_pays(with_context: Surprise, without_context: Surprise,
                 names: tuple[str, str] | None = None) -> ContextPays:
    """The bits ``with_context`` saves over ``without_context`` on letters inside words and on first letters.

    ``names`` (with, without) name the two models in the caption; their model kinds by default.
    Needs one character per token (a char tokenizer) and the same text (InputError otherwise).
    """
    saved = -surprise_difference(with_context, without_context).bits  # [T]: without minus with
    chars = with_context.text
    if len(chars) != len(with_context.ids):
        raise InputError("Letters inside words and first letters need one token per character: use char models, "
                         "not byte-pair ones.")
    inside = [t for t in range(len(saved)) if chars[t + 1].isalpha() and chars[t].isalpha()]
    start = [t for t in range(len(saved)) if chars[t + 1].isalpha() and not chars[t].isalpha()]
    if not inside or not start:
        raise InputError("The text needs letters inside words and at the start of words to compare them: give prose.")
    return ContextPays(
        inside_word=float(saved[inside].double().mean()), word_start=float(saved[start].double().mean()),
        n_inside_word=len(inside), n_word_start=len(start),
        with_context=names[0] if names else with_context.model_kind,
        without_context=names[1] if names else without_context.model_kind,
    )


def context_pays_caption(with_context: Surprise, without_context: Surprise) -> str:
    """The lesson's caption, computed: ``context_pays(...).caption``."""
    return context_pays(with_context, without_context).caption


def validation_text(text: str, tokenizer: Tokenizer, n_tokens: int = CAPTION_CHARS) -> str:
    """The first ``n_tokens`` tokens of the val split (the last 10% of the encoded text, as in training), as text."""
    val = TokenSplits.from_ids(tokenizer.encode(text)).val
    return tokenizer.decode(val[:n_tokens].tolist())
