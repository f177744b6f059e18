"""Knock heads out: switch attention heads off and see how much the model needed them.

Ablation patches a head's output at ``hook_z`` (``[batch, pos, head, head_size]``, the heads side
by side before ``c_proj`` mixes them), through ``hooks.hooks``: only the thread that opened the
context sees its ablation, so a web server's requests cannot see each other's.

- ``zero``: the head's output is 0 at every position, as if its slice of ``c_proj``'s input
  columns were zero (the projection's bias stays: it belongs to no head).
- ``mean``: the head's output at every position is its mean over the positions of that sequence,
  so the head still adds its average but no longer says anything position-specific. The mean
  includes later positions, so it is not causal; use it to ask "does the variation matter?". It
  needs each whole sequence in one forward pass: with a KV cache a call sees only its new positions.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import Checkpoint
from ..data import TINY_SHAKESPEARE, TokenSplits, eval_batches, load_text
from ..errors import InputError
from ..hooks import hook_points, hooks, run_with_cache
from ..tokenizers import Tokenizer, visible_tokens
from .explore import encode_prompt, token_labels

Mode = Literal["zero", "mean"]
MODES = ("zero", "mean")
NEXT_TOKENS = 10  # candidates an AblationView lists: the likeliest before or after


def attention_shape(model: nn.Module) -> tuple[int, int]:
    """(layers with attention, heads per layer); (0, 0) for a model without attention (the bigram)."""
    layers = [name for name in hook_points(model) if name.endswith("attn.hook_z")]
    return (len(layers), model.config.n_head) if layers else (0, 0)


def all_heads(model: nn.Module) -> list[tuple[int, int]]:
    """Every (layer, head) of the model, layer by layer."""
    n_layer, n_head = attention_shape(model)
    return [(layer, head) for layer in range(n_layer) for head in range(n_head)]


def check_heads(model: nn.Module, heads: Iterable[tuple[int, int]] | str) -> set[tuple[int, int]]:
    """The heads as a set of (layer, head); InputError naming the valid ranges for any the model lacks."""
    n_layer, n_head = attention_shape(model)
    if isinstance(heads, str):
        if heads != "all":
            raise InputError(f"heads must be 'all' or a set of (layer, head) pairs, got {heads!r}.")
        if not n_layer:
            raise InputError("This model has no attention heads to switch off (the bigram looks at one token).")
        return set(all_heads(model))
    if not isinstance(heads, Iterable):
        raise InputError(f"heads must be 'all' or a set of (layer, head) pairs, got {heads!r}.")
    chosen = set()
    for pair in heads:
        ok = isinstance(pair, Sequence) and len(pair) == 2 and all(
            isinstance(v, Integral) and not isinstance(v, bool) for v in pair)
        if not ok or not (0 <= pair[0] < n_layer and 0 <= pair[1] < n_head):
            where = (f"layer in 0..{n_layer - 1} and head in 0..{n_head - 1}" if n_layer
                     else "none: this model has no attention heads")
            raise InputError(f"No head {pair!r} in this model: give (layer, head) pairs with {where}.")
        chosen.add((int(pair[0]), int(pair[1])))
    return chosen


@contextmanager
def ablate(model: nn.Module, heads: Iterable[tuple[int, int]] | str, mode: Mode = "zero") -> Iterator[None]:
    """Inside the context, forward passes of this thread run with ``heads`` switched off.

    ``heads``: a set of (layer, head) pairs, or "all" for every head of every layer. ``mode``:
    "zero" or "mean" (over positions, per sequence). InputError for a head the model lacks or an
    unknown mode. An empty set changes nothing (no hook is registered).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    chosen = check_heads(model, heads)
    by_layer: dict[int, list[int]] = {}
    for layer, head in sorted(chosen):
        by_layer.setdefault(layer, []).append(head)

    def patch(head_list: list[int]):
        def fn(z: torch.Tensor) -> torch.Tensor:  # z: [batch, pos, head, head_size]
            z = z.clone()
            if mode == "zero":
                z[:, :, head_list] = 0.0
            else:
                z[:, :, head_list] = z[:, :, head_list].mean(dim=1, keepdim=True)
            return z

        return fn

    with hooks(model, {f"transformer.h.{layer}.attn.hook_z": patch(hs) for layer, hs in by_layer.items()}):
        yield


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean next-token cross-entropy (nats per token) over (x, y) batches, each (batch, block)."""
    if not batches:
        raise InputError("Give at least one (x, y) batch to measure a loss on.")
    block = model.config.block_size if attention_shape(model)[0] else None  # the bigram reads any length
    for x, y in batches:
        if x.dim() != 2 or x.shape != y.shape or not 1 <= x.size(1) <= (block or x.size(1)):
            raise InputError(f"Each (x, y) batch must be two (batch, positions) tensors of the same shape with at "
                             f"most the model's context of {block} positions, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}.")
    return sum(float(model(x, y)[1]) for x, y in batches) / len(batches)


def ablated_loss(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 heads: Iterable[tuple[int, int]] | str, mode: Mode = "zero") -> float:
    """mean_loss with ``heads`` switched off (see ablate)."""
    with ablate(model, heads, mode):
        return mean_loss(model, batches)


@torch.no_grad()
def rank_heads(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
               mode: Mode = "zero", time_limit_s: float | None = None) -> list[tuple[int, int, float]]:
    """Every head as (layer, head, delta_loss), most needed first: delta_loss is how much the mean
    loss on ``batches`` (nats per token) rises when that head alone is switched off.

    A head of layer L changes nothing before layer L, so the residual stream entering each layer is
    computed once and only layers L.. run again per head: about 40% less work for a 6-layer model.
    With ``time_limit_s``, heads are measured in layer order until that many seconds have passed and
    only those measured are returned (fewer rows than ``all_heads(model)`` means it stopped early).
    InputError for a model without attention heads, a non-positive ``time_limit_s``, or batches that
    are not (batch, positions) pairs within the model's context.
    """
    if time_limit_s is not None and (isinstance(time_limit_s, bool) or not isinstance(time_limit_s, Real)
                                     or not time_limit_s > 0):
        raise InputError(f"time_limit_s must be a positive number of seconds (or None: no limit), got "
                         f"{time_limit_s!r}.")
    n_layer, n_head = attention_shape(model)
    if not n_layer:
        raise InputError("This model has no attention heads to rank (the bigram looks at one token).")
    start = time.monotonic()
    base = mean_loss(model, batches)
    entering = ["hook_embed"] + [f"transformer.h.{layer}.hook_resid_post" for layer in range(n_layer - 1)]
    caches = [run_with_cache(model, x, entering)[1] for x, _ in batches]  # [batch, pos, n_embd] each
    rows = []
    for layer in range(n_layer):
        for head in range(n_head):
            if time_limit_s is not None and time.monotonic() - start > time_limit_s:
                return sorted(rows, key=lambda row: -row[2])
            with ablate(model, {(layer, head)}, mode):
                loss = sum(_loss_from(model, layer, cache[entering[layer]], y)
                           for cache, (_, y) in zip(caches, batches, strict=True)) / len(batches)
            rows.append((layer, head, loss - base))
    return sorted(rows, key=lambda row: -row[2])


def _loss_from(model: nn.Module, start: int, resid: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean loss of running layers ``start``.. on the residual stream entering layer ``start``."""
    for layer in model.transformer.h[start:]:
        resid = layer(resid)
    logits = model.unembed(resid)  # (B, T, vocab)
    return float(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))


@dataclass(frozen=True)
class AblationView:
    """One prompt with and without ``heads`` switched off: what the model predicts next, how surprised it is
    by each character of the prompt, and its mean loss on fixed validation batches.

    ``ids``, ``tokens`` and ``labels`` are ``[pos]`` for the prompt's last block_size tokens (``dropped``
    were cut from its start); ``before``/``after`` are the next-token probabilities after the last token,
    ``[vocab]``; ``bits_before``/``bits_after`` are ``[pos - 1]``: at position t, -log2 of the probability
    given to token t + 1 (the prompt's own next character), in bits. ``loss_before``/``loss_after``: mean
    cross-entropy in nats per token on the batches given, None when none were given. ``next_tokens`` lists
    the tokens likeliest before or after, likeliest before first.
    """

    heads: tuple[tuple[int, int], ...]  # sorted (layer, head) pairs switched off
    mode: Mode
    ids: list[int]
    tokens: list[str]  # visible_tokens: ␣ for a space, ↵ for a newline, bytes as <E5>
    labels: list[str]  # "position:token", unique
    dropped: int
    before: torch.Tensor  # [vocab]
    after: torch.Tensor  # [vocab]
    bits_before: torch.Tensor  # [pos - 1]
    bits_after: torch.Tensor  # [pos - 1]
    loss_before: float | None
    loss_after: float | None
    next_tokens: list[tuple[str, float, float]]  # the NEXT_TOKENS likeliest before or after: (token, before, after)

    @property
    def delta_bits(self) -> torch.Tensor:
        """[pos - 1]: how many more bits each next character of the prompt costs with the heads off."""
        return self.bits_after - self.bits_before

    @property
    def delta_loss(self) -> float | None:
        """How much the mean validation loss rises with the heads off (nats per token); None without batches."""
        return None if self.loss_before is None else self.loss_after - self.loss_before


def ablation_view(model: nn.Module, tokenizer: Tokenizer, prompt: str, heads: Iterable[tuple[int, int]] | str,
                  mode: Mode = "zero",
                  batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None) -> AblationView:
    """The prompt (cropped to the model's context) run with all heads and with ``heads`` switched off, and
    the mean loss on ``batches`` both ways (see AblationView).

    InputError for a head the model lacks or an unknown mode (before any work); GptlabError for an empty
    prompt or characters the tokenizer lacks.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    chosen = check_heads(model, heads)
    ids, dropped = encode_prompt(tokenizer, prompt, model.config.block_size)
    x = torch.tensor([ids])
    logits_before = _logits(model, x)
    loss_before = mean_loss(model, batches) if batches else None
    with ablate(model, chosen, mode):
        logits_after = _logits(model, x)
        loss_after = mean_loss(model, batches) if batches else None
    tokens = visible_tokens(tokenizer, ids)
    before, after = torch.softmax(logits_before[-1], -1), torch.softmax(logits_after[-1], -1)
    top = torch.maximum(before, after).topk(min(NEXT_TOKENS, before.numel())).indices.tolist()
    top.sort(key=lambda i: -float(before[i]))
    return AblationView(
        heads=tuple(sorted(chosen)), mode=mode, ids=ids, tokens=tokens, labels=token_labels(tokens), dropped=dropped,
        before=before, after=after, bits_before=_bits(logits_before, ids), bits_after=_bits(logits_after, ids),
        loss_before=loss_before, loss_after=loss_after,
        next_tokens=[(label, float(before[i]), float(after[i]))
                     for label, i in zip(visible_tokens(tokenizer, top), top, strict=True)],
    )


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(pos, vocab) float logits of one sequence."""
    return model(x)[0][0].float()


def _bits(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """[pos - 1]: -log2 p(ids[t + 1]) under the logits at position t."""
    log_probs = torch.log_softmax(logits[:-1], -1)
    return -log_probs.gather(1, torch.tensor(ids[1:])[:, None])[:, 0] / torch.log(torch.tensor(2.0))


# --- heads by name and the validation batches, as the app's "Knock out heads" tab asks for them

ALL_ATTENTION = "all attention"  # the name that switches off every head of every layer
# Validation loss on the first VAL_BATCHES of training's fixed evaluation draws (seed EVAL_SEED) with
# VAL_ROWS rows of block_size tokens each: cheap enough to rank every head of the shipped gpt in seconds.
VAL_BATCHES, VAL_ROWS = 4, 8
_batches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {block_size: batches}
_batches_lock = threading.Lock()


def head_name(layer: int, head: int) -> str:
    """A head's short name, 'L0 H3'."""
    return f"L{layer} H{head}"


def head_choices(n_layer: int, n_head: int) -> list[str]:
    """Every name a model of this shape answers to: 'all attention', then every head layer by layer."""
    return [ALL_ATTENTION] + [head_name(layer, head) for layer in range(n_layer) for head in range(n_head)]


def heads_from_names(model: nn.Module, names, label: str = "this model") -> set[tuple[int, int]] | str:
    """Names such as 'L0 H1' as (layer, head) pairs, or 'all' for 'all attention'; None is no head.

    Raises InputError naming the model's heads (``label`` names the model) for a name it lacks.
    """
    if names is None:
        return set()
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise InputError(f"heads must be a list of head names such as 'L0 H1' (or {ALL_ATTENTION!r}), got {names!r}.")
    if ALL_ATTENTION in names:
        return "all"
    n_layer, n_head = attention_shape(model)
    chosen = set()
    for name in names:
        found = re.fullmatch(r"L([0-9]{1,4}) H([0-9]{1,4})", name) if isinstance(name, str) else None  # ASCII
        if not found or not (int(found[1]) < n_layer and int(found[2]) < n_head):
            heads = (f"its heads are L0 H0..L{n_layer - 1} H{n_head - 1}" if n_layer
                     else "it has no attention heads (the bigram looks at one token)")
            raise InputError(f"{label} has no head {name!r}: {heads}.")
        chosen.add((int(found[1]), int(found[2])))
    return chosen


def check_mode(mode) -> str:
    """The ablation mode, else InputError listing the modes."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    return mode


def shakespeare_val_batches(checkpoint: Checkpoint) -> list | None:
    """The first VAL_BATCHES fixed evaluation batches of Tiny Shakespeare's validation split for this model,
    or None when its config does not say it was trained on Tiny Shakespeare (the one text that ships). A live
    model trained on the corpus's opening (data set by LiveReport) gets them too: the val split is unseen text."""
    if checkpoint.info.get("data") != TINY_SHAKESPEARE:
        return None
    tokenizer, block = checkpoint.tokenizer, checkpoint.config.block_size
    with _batches_lock:
        held = _batches.setdefault(tokenizer, {})
        if block not in held:
            corpus = load_text(TINY_SHAKESPEARE)
            # one token per character: encode only the val split (the same ids), so a char vocabulary built on the
            # corpus's opening (Watch it learn) needs only the val split's characters
            val = (torch.tensor(tokenizer.encode(corpus[int(len(corpus) * 0.9):])) if tokenizer.kind == "char"
                   else TokenSplits.from_ids(tokenizer.encode(corpus)).val)
            held[block] = eval_batches(val, VAL_BATCHES, VAL_ROWS, block)
        return held[block]
