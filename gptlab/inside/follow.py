"""Follow one character: how much one chosen position weighs every earlier token, in one head, the layer's
average or the whole model's rollout.

``follow`` reads a row of an ``AttentionView`` already captured, with no new forward pass, so moving along
the text costs only the reading; ``follow_view`` captures the view and reads it in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import InputError
from ..tokenizers import Errors, Tokenizer
from .explore import AttentionView, attention_view
from .lens import rollout

Head = int | Literal["mean", "rollout"]  # one head, the average of the layer's heads, or rollout through all layers


@dataclass(frozen=True)
class FollowView:
    """One query position of a prompt and the weight it gives every key, with the text laid out to shade.

    With N the tokens the model saw (after cropping to its context): ``matrix`` is the followed
    ``[query, key]`` matrix (rows sum to 1), ``weights`` its row at ``position``, ``[N]`` floats in 0..1, 0
    on the future; ``available`` ``[N]`` bool, True for keys at or before ``position`` (a causal model never
    sees later ones); ``tokens`` ``[N]`` readable tokens (space ␣, newline ↵, a lone byte <E6>); ``spans``
    ``[N]`` (start, end) character offsets of each token into ``text``, the text the model saw (for a
    byte-level BPE token holding only part of a character, the character goes to the token it starts in,
    so a later piece has an empty span).
    """

    text: str
    tokens: list[str]
    spans: list[tuple[int, int]]
    matrix: torch.Tensor
    position: int  # the followed query position, 0..N-1
    asked: int  # the position asked for (-1 = the last token)
    layer: int
    head: Head
    dropped: int  # tokens cut from the prompt's start to fit the context

    @property
    def weights(self) -> torch.Tensor:
        """[N]: the weight the followed position gives each key (0 on the future)."""
        return self.matrix[self.position]

    @property
    def available(self) -> torch.Tensor:
        """[N] bool: keys the followed position may see (itself and every earlier one)."""
        return torch.arange(len(self.tokens)) <= self.position

    @property
    def clamped(self) -> bool:
        """True when the asked position was past the end of the text, so the last token is followed."""
        return self.asked >= len(self.tokens)

    @property
    def source(self) -> str:
        """What the weights are, in words: 'layer 1, head 2', 'layer 1, average of heads', 'rollout ...'."""
        if self.head == "rollout":
            return "rollout through every layer (0.5·A + 0.5·I, heads averaged)"
        return f"layer {self.layer}, " + ("average of heads" if self.head == "mean" else f"head {self.head}")


def followed_matrix(view: AttentionView, layer: int, head: Head) -> torch.Tensor:
    """The [query, key] matrix that ``head`` names: one head's pattern, the layer's mean, or the whole rollout.

    Raises InputError for a layer or head the model lacks, or a ``head`` that is none of these.
    """
    if head == "rollout":
        view.head_pattern(layer, 0)  # the layer is still checked: the same inputs mean the same everywhere
        return rollout(view.patterns)[-1]
    if head == "mean":
        view.head_pattern(layer, 0)
        return view.patterns[layer].float().mean(dim=0)
    if isinstance(head, str):
        raise InputError(f"head must be a head number, 'mean' or 'rollout', got {head!r}.")
    return view.head_pattern(layer, head).float()


def token_spans(tokenizer: Tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """(the text of ``ids``, each token's (start, end) character offsets into it).

    Byte-level tokens are joined as bytes and decoded once (an invalid byte reads U+FFFD), so a character
    split over two tokens is counted once, in the token where its first byte is.
    """
    token_bytes = getattr(tokenizer, "token_bytes", None)
    pieces = [token_bytes(i) for i in ids] if token_bytes is not None else []
    if not pieces or any(piece is None for piece in pieces):
        strings = tokenizer.token_strings(ids)
        ends = torch.tensor([len(s) for s in strings]).cumsum(0).tolist()
        return "".join(strings), [(end - len(s), end) for s, end in zip(strings, ends, strict=True)]
    raw = b"".join(pieces)
    starts, offset = [], 0
    for piece in pieces:
        starts.append(offset)
        offset += len(piece)
    # 'replace' reads an unfinished character at a prefix's end as one U+FFFD, so the count at a token's
    # start already holds the character its first byte begins: that token gets it, the later pieces none
    chars = [len(raw[:b].decode("utf-8", "replace")) for b in starts] + [len(raw.decode("utf-8", "replace"))]
    spans = [(chars[i], max(chars[i], chars[i + 1])) for i in range(len(pieces))]
    return raw.decode("utf-8", "replace"), spans


def follow(view: AttentionView, tokenizer: Tokenizer, layer: int, head: Head, position: int = -1) -> FollowView:
    """Follow ``position`` (-1, or any negative, = the last token; past the end = the last, ``clamped``) in a view.

    No forward pass: the weights are the view's own pattern row (``followed_matrix``). Raises InputError
    for a layer or head the model lacks, or a position that is not a whole number.
    """
    if isinstance(position, bool) or not isinstance(position, int):
        raise InputError(f"position must be a whole number (-1 = the last token), got {position!r}.")
    matrix = followed_matrix(view, layer, head)
    n = len(view.ids)
    text, spans = token_spans(tokenizer, view.ids)
    tokens = [label.split(":", 1)[1] for label in view.labels]  # the labels are 'position:token'
    q = n - 1 if position < 0 or position >= n else position
    return FollowView(text=text, tokens=tokens, spans=spans, matrix=matrix, position=q, asked=position,
                      layer=layer, head=head, dropped=view.dropped)


def follow_view(model: nn.Module, tokenizer: Tokenizer, prompt: str, layer: int, head: Head,
                position: int = -1, errors: Errors = "strict") -> FollowView:
    """Capture the prompt's attention (``attention_view``) and follow ``position`` in it.

    Raises GptlabError for an empty prompt or a model without attention (the bigram: nothing to follow),
    UnknownCharactersError for characters a char model has never seen, InputError as ``follow``.
    """
    return follow(attention_view(model, tokenizer, prompt, errors), tokenizer, layer, head, position)
