"""Named hook points (TransformerLens-style) and run_with_cache.

A HookPoint is an identity module wrapped around a tensor worth seeing. Its name is its
dotted module path (e.g. ``transformer.h.0.attn.hook_pattern``), which is also the cache key.
Hooks live only inside ``run_with_cache`` / ``hooks`` and are removed on exit, even on error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .errors import GptlabError, InputError


class HookPoint(nn.Module):
    """Identity module: forward hooks registered on it see (and may replace) the tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by name_hook_points() once the model is built

    @property
    def active(self) -> bool:
        """True while some hook listens here (attention then takes the explicit softmax path)."""
        return bool(self._forward_hooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def name_hook_points(model: nn.Module) -> None:
    """Give every HookPoint its module path as its name."""
    hook_points(model)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of a model, by module path, in forward order (each HookPoint's name set to its path).

    Walked on each call (about 0.1 ms for the shipped gpt), so a block added, replaced, moved or deleted since
    the model was built (``model.transformer.h[1] = block``, ``insert``) is found under its path as it is now.
    """
    points = {path: m for path, m in model.named_modules() if isinstance(m, HookPoint)}
    for path, point in points.items():
        point.name = path
    return points


def _select(model: nn.Module, names: Sequence[str] | Callable[[str], bool] | None,
            points: dict[str, HookPoint] | None = None) -> dict[str, HookPoint]:
    points = hook_points(model) if points is None else points
    if names is None:
        return points
    if callable(names):
        return {n: p for n, p in points.items() if names(n)}
    if isinstance(names, str):  # one name, not a sequence of one-letter names
        names = [names]
    given, names = names, list(names) if isinstance(names, Iterable) else [names]
    if not all(isinstance(n, str) for n in names):
        raise InputError(f"names must be a hook point name, a list of names, a predicate or None; got {given!r:.80}.")
    unknown = [n for n in names if n not in points]
    if unknown:
        raise GptlabError(f"No hook point named {unknown}. This model has: {', '.join(points)}")
    return {n: points[n] for n in names}


@contextmanager
def hooks(model: nn.Module, fns: dict[str, Callable[[torch.Tensor], torch.Tensor | None]]) -> Iterator[None]:
    """Run ``fns[name](tensor)`` at each named hook point while the context is open.

    A function may return a tensor to replace the value (ablation, patching). Hooks fire only
    for forward passes made by the thread that opened the context, so a model shared by a
    web server's worker threads is safe: another request never lands in this cache.
    """
    points = _select(model, list(fns))
    owner = threading.get_ident()
    handles = []
    try:
        for name, point in points.items():
            fn = fns[name]

            def hook(_module, _inputs, output, fn=fn):
                if threading.get_ident() == owner:
                    return fn(output)
                return None

            handles.append(point.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_ids(model: nn.Module, idx: object) -> None:
    """InputError unless ``idx`` is a (batch, pos) tensor of whole-number token ids inside the model's vocabulary."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.long, torch.int):
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else None
        raise InputError(f"Token ids must be a (batch, pos) tensor of dtype torch.long, e.g. torch.tensor([ids]); got "
                         f"{type(idx).__name__}" + (f" of shape {shape} and dtype {idx.dtype}." if shape else "."))
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and idx.numel() and not (0 <= int(idx.min()) and int(idx.max()) < vocab):
        raise InputError(f"Token ids must be in 0..{vocab - 1} for this model, got ids from {int(idx.min())} to "
                         f"{int(idx.max())}.")


def run_with_cache(
    model: nn.Module,
    idx: torch.Tensor,
    names: Sequence[str] | Callable[[str], bool] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run the model on token ids ``idx`` (batch, pos) and return (logits (batch, pos, vocab), {hook name: captured
    tensor}); each hook point's shape is given where the model makes it (``[batch, head, query_pos, key_pos]`` for
    ``hook_pattern``).

    ``names`` picks the hook points: a list of names, a predicate on names, or None for all. Captured tensors
    are detached. They are copies only while another hook listens at one of the model's hook points (an
    ablation, say, that could change a tensor after it was captured) or under torch.inference_mode; otherwise
    each is the tensor the forward made there, which it never writes to afterwards, so no time goes into copying
    (a hook on some other module that writes into a captured tensor raises GptlabError). Entries may share
    memory (q, k and v are views of one projection): clone one before changing it in place. Hooks are removed
    when the call returns or raises.
    InputError for ids that are not a (batch, pos) integer tensor, ids outside the vocabulary or more positions
    than the model's context; GptlabError for a name the model has no hook point for.
    """
    _check_ids(model, idx)
    cache: dict[str, torch.Tensor] = {}
    versions: dict[str, int] = {}  # each uncopied entry's count of in-place writes when it was captured
    points = hook_points(model)
    selected = _select(model, names, points)
    copying = any(p._forward_hooks for p in points.values())

    def store(name: str) -> Callable[[torch.Tensor], None]:
        def fn(t: torch.Tensor) -> None:
            if copying or t.is_inference():  # inference tensors count no writes
                cache[name] = t.detach().clone()
            else:
                cache[name], versions[name] = t.detach(), t._version

        return fn

    with hooks(model, {n: store(n) for n in selected}), torch.no_grad():
        logits, _ = model(idx)
    changed = [name for name, version in versions.items() if cache[name]._version != version]
    if changed:
        raise GptlabError(f"Something wrote in place into {', '.join(changed)} (or memory it shares) after it was "
                          "captured. Have hooks return a changed copy instead (t = t.clone(), change t, return t).")
    return logits, cache
