"""Hooks: captured patterns are causal distributions, capturing changes nothing, no hook outlives its context."""

from __future__ import annotations

import threading

import pytest
import torch

from gptlab import GptlabError, ModelConfig, build_model, hook_points, hooks, run_with_cache

CONFIG = ModelConfig(kind="gpt", vocab_size=30, block_size=16, n_layer=2, n_head=4, n_embd=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(CONFIG).eval()
    with torch.no_grad():  # sharper attention than the init gives
        for layer in m.transformer.h:
            layer.attn.c_attn.weight.mul_(20)
    return m


def no_hooks_left(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def idx(seed: int = 0, T: int = 12) -> torch.Tensor:
    return torch.randint(30, (2, T), generator=torch.Generator().manual_seed(seed))


def test_patterns_are_causal_distributions(model):
    names = [f"transformer.h.{i}.attn.hook_pattern" for i in range(2)]
    _, cache = run_with_cache(model, idx(), names)
    assert sorted(cache) == names
    for pattern in cache.values():
        assert pattern.shape == (2, 4, 12, 12)  # [batch, head, query_pos, key_pos]
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 4, 12), atol=1e-6, rtol=0)
        upper = torch.ones(12, 12, dtype=torch.bool).triu(1)
        assert (pattern[..., upper] == 0).all()  # exactly zero: no peeking at the future
        assert (pattern[..., ~upper] > 0).any()
    assert no_hooks_left(model)


def test_capturing_does_not_change_logits(model):
    x = idx(1)
    with torch.no_grad():
        plain, _ = model(x)
    cached, cache = run_with_cache(model, x)  # every hook point
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    assert set(cache) == set(hook_points(model))
    assert "transformer.h.1.hook_resid_post" in cache and "hook_embed" in cache
    assert no_hooks_left(model)


def test_names_as_predicate_or_single_string(model):
    _, by_predicate = run_with_cache(model, idx(), lambda n: n.endswith("hook_pattern"))
    assert len(by_predicate) == 2
    _, by_string = run_with_cache(model, idx(), "transformer.h.0.attn.hook_pattern")
    assert list(by_string) == ["transformer.h.0.attn.hook_pattern"]


def test_unknown_name_is_a_clear_error(model):
    with pytest.raises(GptlabError, match="No hook point named.*blocks.0.attn.hook_pattern") as info:
        run_with_cache(model, idx(), ["blocks.0.attn.hook_pattern"])
    assert "transformer.h.0.attn.hook_pattern" in str(info.value)  # lists what exists
    assert no_hooks_left(model)


def test_hooks_removed_when_forward_raises(model):
    with pytest.raises(ValueError, match="exceed"):
        run_with_cache(model, torch.zeros(1, 17, dtype=torch.long))  # longer than block_size
    assert no_hooks_left(model)

    def boom(t):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"), hooks(model, {"hook_embed": boom}):
        model(idx())
    assert no_hooks_left(model)


def test_hook_can_patch_and_is_gone_afterwards(model):
    x = idx(2)
    with torch.no_grad():
        plain, _ = model(x)
        with hooks(model, {"hook_embed": torch.zeros_like}):
            ablated, _ = model(x)
        after, _ = model(x)
    assert not torch.allclose(ablated, plain)
    torch.testing.assert_close(after, plain)
    assert no_hooks_left(model)


def test_a_hook_does_not_capture_another_threads_forward(model):
    seen: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def owner() -> None:
        with hooks(model, {"hook_embed": lambda t: seen.append(t.size(1))}):
            inside.set()
            release.wait(10)
            with torch.no_grad():
                model(idx(T=5))  # the owner's own forward is captured

    thread = threading.Thread(target=owner)
    thread.start()
    assert inside.wait(10)
    with torch.no_grad():
        other, _ = model(idx(T=9))  # another thread while the hook is registered
    release.set()
    thread.join(10)
    assert seen == [5]
    with torch.no_grad():
        torch.testing.assert_close(other, model(idx(T=9))[0], atol=1e-5, rtol=1e-5)
    assert no_hooks_left(model)
