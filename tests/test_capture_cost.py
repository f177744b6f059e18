"""Capturing costs no tensor copies and no per-forward mask, yet every captured value stays the one seen at its hook.

The bench row "all hooks captured / plain" (bench/capture.py, target <= 1.5x) rests on this: run_with_cache keeps
the forward's own tensors (detached) instead of cloning each, and the written-out attention adds a cached causal
bias instead of building a 0/-inf matrix in every layer of every forward pass.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gptlab import GptlabError, ModelConfig, build_model, hook_points, hooks, run_with_cache
from gptlab.models.attention import causal_bias

BASE = dict(vocab_size=30, block_size=24, n_layer=2, n_head=4, n_embd=32)
RUNGS = {
    "single_head": ModelConfig(**{**BASE, "kind": "single_head", "n_layer": 1, "n_head": 1}),
    "multi_head": ModelConfig(**{**BASE, "kind": "multi_head", "n_layer": 1}),
    "blocks": ModelConfig(**{**BASE, "kind": "blocks"}),
    "gpt": ModelConfig(**{**BASE, "kind": "gpt"}),
    "gpt_rope_qk_norm": ModelConfig(**{**BASE, "kind": "gpt", "pos": "rope", "qk_norm": True}),
}
COPIES_AND_MASKS = {"clone", "full", "triu", "tril", "zeros", "ones", "masked_fill", "copy_", "contiguous", "empty"}


class Calls(TorchFunctionMode):
    """Names of the torch functions and tensor methods called while the mode is on."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def model_of(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(RUNGS[name]).eval()


def ids(T: int = 20) -> torch.Tensor:
    return torch.randint(30, (2, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", RUNGS)
def test_a_capture_of_every_hook_copies_nothing_and_builds_no_mask(name):
    model = model_of(name)
    run_with_cache(model, ids())  # the first explicit forward may make the cached causal bias
    with Calls() as plain, torch.no_grad():
        model(ids())
    with Calls() as capture:
        _, cache = run_with_cache(model, ids())
    assert set(cache) == set(hook_points(model))
    assert set(capture.names) & COPIES_AND_MASKS <= set(plain.names), sorted(set(capture.names) & COPIES_AND_MASKS)


@pytest.mark.parametrize("name", RUNGS)
def test_captured_values_are_the_values_at_each_hook(name):
    model = model_of(name)
    seen: dict[str, torch.Tensor] = {}
    names = list(hook_points(model))
    copy_at = {n: (lambda t, n=n: seen.__setitem__(n, t.detach().clone())) for n in names}
    _, cache = run_with_cache(model, ids())
    with hooks(model, copy_at), torch.no_grad():
        model(ids())
    for n in names:
        assert torch.equal(cache[n], seen[n]), n


def test_an_in_place_ablation_around_the_capture_does_not_change_what_was_captured():
    model = model_of("gpt")
    q_name, v_name = "transformer.h.0.attn.hook_q", "transformer.h.0.attn.hook_v"
    _, plain = run_with_cache(model, ids(), [q_name])
    # v is a view of the same projection as q: writing into it bumps q's write count too
    with hooks(model, {v_name: lambda v: v.mul_(0)}):
        _, ablated = run_with_cache(model, ids(), [q_name, v_name])
    assert torch.equal(ablated[q_name], plain[q_name])
    assert not ablated[v_name].any()


def test_a_write_into_a_captured_tensor_from_outside_the_hook_points_is_a_clear_error():
    model = model_of("gpt")
    ln = model.transformer.h[1].ln_1  # its input is layer 0's residual stream, captured at hook_resid_post

    def double_in_place(_module, args):
        args[0].mul_(2)

    handle = ln.register_forward_pre_hook(double_in_place)
    try:
        with pytest.raises(GptlabError, match=r"transformer\.h\.0\.hook_resid_post.*return a changed copy"):
            run_with_cache(model, ids(), ["transformer.h.0.hook_resid_post"])
    finally:
        handle.remove()
    assert not any(p._forward_hooks for p in hook_points(model).values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_causal_bias_is_the_future_triangle_for_every_offset(dtype):
    for past, T in [(0, 1), (0, 7), (3, 1), (3, 5), (0, 40), (17, 30), (2, 3)]:  # grows past its first square
        S = past + T
        expected = torch.full((T, S), float("-inf"), dtype=dtype).triu(diagonal=past + 1)
        got = causal_bias(past, T, S, dtype, torch.device("cpu"))
        assert got.dtype == dtype and got.shape == (T, S)
        assert torch.equal(got, expected), (past, T)
