"""The "Which head matters?" lesson: every head ranked by how much the validation loss rises when that head
alone is switched off (``gptlab.inside.ablation.rank_heads``), and a caption that says so in numbers.

A model that records Tiny Shakespeare is scored on the same fixed validation batches as the "Knock out heads"
tab (so the two agree to the digit); any other model on the lesson's own text, the only text it is known to read.
Ranking the shipped gpt's 36 heads takes about 10 s on 2 cores, so a ranking is kept per model and measured
again only when the model's weights change.
"""

from __future__ import annotations

import statistics
import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from ...checkpoint import Checkpoint
from ...errors import InputError
from ...inside.ablation import VAL_BATCHES, VAL_ROWS, mean_loss, rank_heads, shakespeare_val_batches

NEEDED = "needed"  # the ``find`` of the lesson that shows the head the model needs most
_rankings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (weights' versions, HeadRanking)
_lock = threading.Lock()


@dataclass(frozen=True)
class HeadRanking:
    """Every head of a model by how much it is needed: ``rows`` are (layer, head, delta_loss), most needed first,
    delta_loss in nats per token; ``base_loss`` the mean loss with every head on; ``scored_on`` says on what."""

    rows: tuple[tuple[int, int, float], ...]
    base_loss: float
    scored_on: str

    @property
    def median(self) -> float:
        """The median head's delta_loss (nats per token)."""
        return statistics.median(row[2] for row in self.rows)

    def place(self, layer: int, head: int) -> tuple[int, float]:
        """(1-based rank, delta_loss) of one head; InputError for a head the model lacks."""
        for rank, (row_layer, row_head, delta) in enumerate(self.rows, start=1):
            if (row_layer, row_head) == (layer, head):
                return rank, delta
        raise InputError(f"No head L{layer} H{head} in this model's ranking.")

    def resolve(self, layer: int, head: int) -> tuple[int, int]:
        """The head to show: what is given (>= 0) is kept; what is left open (-1) is the most needed that fits."""
        for row_layer, row_head, _ in self.rows:  # most needed first
            if layer in (-1, row_layer) and head in (-1, row_head):
                return row_layer, row_head
        return max(layer, 0), max(head, 0)


def head_ranking(checkpoint: Checkpoint, ids: list[int]) -> HeadRanking:
    """Rank every head of ``checkpoint``'s model (see the module docstring); ``ids`` are the lesson's tokens,
    scored only for a model that does not record Tiny Shakespeare. InputError for a model without heads."""
    model = checkpoint.model
    batches = shakespeare_val_batches(checkpoint)
    if batches is None:
        if len(ids) < 2:
            raise InputError("Give the lesson at least two tokens of text to measure the loss on.")
        window = torch.tensor(ids[-(model.config.block_size + 1):])
        return _rank(model, [(window[None, :-1], window[None, 1:])],
                     f"this lesson's own text ({len(window) - 1} predicted tokens)")
    scored_on = (f"the first {VAL_BATCHES} fixed evaluation batches of Tiny Shakespeare's validation split "
                 f"({VAL_ROWS} rows × {model.config.block_size} tokens each, as in Knock out heads)")
    versions = tuple(p._version for p in model.parameters())  # bumped by every in-place update of the weights
    with _lock:
        held = _rankings.get(model)
        if held is None or held[0] != versions:
            held = (versions, _rank(model, batches, scored_on))
            _rankings[model] = held
        return held[1]


def _rank(model: nn.Module, batches: list, scored_on: str) -> HeadRanking:
    rows = rank_heads(model, batches)
    if not rows:
        raise InputError("This model has no attention heads to switch off (the bigram looks at one token).")
    return HeadRanking(tuple(rows), mean_loss(model, batches), scored_on)


def ranking_caption(ranking: HeadRanking, layer: int, head: int) -> str:
    """Markdown: how much the loss rises without this head, its place among all heads, against the median head."""
    rank, delta = ranking.place(layer, head)
    n, median = len(ranking.rows), ranking.median
    before = ranking.base_loss
    place = f"the most of all {n} heads" if rank == 1 else f"{_ordinal(rank)} of {n} heads"
    text = (f"Switching off layer {layer}, head {head} alone takes the validation loss from {before:.4f} to "
            f"{before + delta:.4f} nats per token ({delta:+.4f}): {place}.")
    if rank > 1:
        top_layer, top_head, top_delta = ranking.rows[0]
        text += f" The most needed is layer {top_layer}, head {top_head} ({top_delta:+.4f})."
    text += f" The median head adds {median:+.4f}"
    if median > 1e-4 and delta > 0:
        text += f", so this head matters {delta / median:.0f}× as much as a typical one."
    else:
        text += "."
    return text + f" Measured on {ranking.scored_on}."


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
