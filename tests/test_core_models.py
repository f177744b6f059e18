"""The model ladder: every rung builds, has GPT-2 names, starts near ln(V); one attention, two equal paths."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gptlab import ConfigError, ModelConfig, build_model, count_parameters, hooks
from gptlab.models import CausalSelfAttention

V = 40
BASE = dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32)
CONFIGS = {
    "bigram": ModelConfig(kind="bigram", vocab_size=V, block_size=16),
    "single_head": ModelConfig(**{**BASE, "kind": "single_head", "n_layer": 1, "n_head": 1}),
    "multi_head": ModelConfig(**{**BASE, "kind": "multi_head", "n_layer": 1}),
    "blocks": ModelConfig(**{**BASE, "kind": "blocks"}),
    "gpt": ModelConfig(**{**BASE, "kind": "gpt"}),
    "gpt_rope": ModelConfig(**{**BASE, "kind": "gpt", "pos": "rope"}),
    "gpt_qk_norm": ModelConfig(**{**BASE, "kind": "gpt", "qk_norm": True}),
    "gpt_relu2": ModelConfig(**{**BASE, "kind": "gpt", "mlp": "relu2"}),
    "gpt_tied": ModelConfig(**{**BASE, "kind": "gpt", "tie_weights": True}),
    "gpt_nobias": ModelConfig(**{**BASE, "kind": "gpt", "bias": False}),
    "gpt_everything": ModelConfig(**{**BASE, "kind": "gpt", "pos": "rope", "qk_norm": True, "mlp": "relu2",
                                     "tie_weights": True, "bias": False}),
}


def batch(seed: int = 0, T: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(V, (3, T), generator=g), torch.randint(V, (3, T), generator=g)


@pytest.mark.parametrize("name", CONFIGS)
def test_builds_with_logits_and_initial_loss_near_ln_v(name):
    torch.manual_seed(0)
    model = build_model(CONFIGS[name]).eval()
    x, y = batch()
    logits, loss = model(x, y)
    assert logits.shape == (3, 16, V)
    # bigram tables start at N(0, 1), the others at std 0.02: both near uniform in expectation
    assert abs(loss.item() - math.log(V)) < (0.8 if name == "bigram" else 0.1)
    logits_only, no_loss = model(x)
    assert no_loss is None and torch.equal(logits_only, logits)


def test_gpt2_parameter_names():
    names = set(dict(build_model(CONFIGS["gpt"]).named_parameters()))
    for expected in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                     "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
                     "transformer.h.1.ln_2.bias", "transformer.ln_f.weight", "lm_head.weight"]:
        assert expected in names, expected
    rope = set(dict(build_model(CONFIGS["gpt_rope"]).named_parameters()))
    assert "transformer.wpe.weight" not in rope


def test_tied_weights_are_one_tensor_counted_once():
    tied, untied = build_model(CONFIGS["gpt_tied"]), build_model(CONFIGS["gpt"])
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert count_parameters(untied) - count_parameters(tied) == V * 32
    # the estimate leaves out LayerNorms and biases; the rest must match exactly
    small = sum(p.numel() for n, p in untied.named_parameters() if n.endswith("bias") or "ln_" in n)
    assert count_parameters(untied) == CONFIGS["gpt"].estimated_params() + small


def test_no_nn_multihead_attention_anywhere():
    for config in CONFIGS.values():
        assert not any(isinstance(m, nn.MultiheadAttention) for m in build_model(config).modules())
    source = "".join(p.read_text() for p in (Path(__file__).parent.parent / "gptlab").rglob("*.py"))
    assert "MultiheadAttention" not in source and "nn.Transformer" not in source


@pytest.mark.parametrize("bad", [dict(n_embd=30, n_head=4), dict(kind="lstm"), dict(pos="alibi"), dict(n_layer=0),
                                 dict(kind="single_head", n_head=2), dict(dropout=1.0), dict(n_embd=10**9)])
def test_invalid_configs_fail_before_building(bad):
    with pytest.raises(ConfigError):
        build_model(ModelConfig(**{**BASE, **bad}))


def test_input_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="exceed the context"):
        build_model(CONFIGS["gpt"])(torch.zeros(1, 17, dtype=torch.long))


ATTENTION_CONFIGS = ["single_head", "multi_head", "gpt", "gpt_rope", "gpt_qk_norm", "gpt_nobias", "gpt_everything"]


@pytest.mark.parametrize("name", ATTENTION_CONFIGS)
def test_sdpa_and_explicit_paths_agree_in_the_model(name):
    torch.manual_seed(1)
    model = build_model(CONFIGS[name]).eval()
    x, _ = batch(2)
    fast, _ = model(x)
    listen = {f"transformer.h.{i}.attn.hook_pattern": (lambda t: None) for i in range(model.config.n_layer)}
    with hooks(model, listen):
        assert all(layer.attn.hook_pattern.active for layer in model.transformer.h)
        exact, _ = model(x)
    torch.testing.assert_close(exact, fast, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ATTENTION_CONFIGS)
def test_sdpa_and_explicit_paths_agree_in_the_module(name):
    torch.manual_seed(2)
    attn = CausalSelfAttention(CONFIGS[name]).eval()
    with torch.no_grad():  # larger weights than the init, so the pattern is far from uniform
        for p in attn.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(2, 16, 32)
    fast = attn(x)
    seen = []
    handle = attn.hook_pattern.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        exact = attn(x)
    finally:
        handle.remove()
    torch.testing.assert_close(exact, fast, atol=1e-5, rtol=1e-5)
    pattern = seen[0]
    assert pattern.shape == (2, attn.n_head, 16, 16)
    assert pattern.max() > 0.5  # not uniform: the comparison means something


@pytest.mark.parametrize("name", ["gpt", "gpt_rope", "gpt_qk_norm"])
def test_kv_cached_forward_matches_full_forward(name):
    torch.manual_seed(3)
    model = build_model(CONFIGS[name]).eval()
    x, _ = batch(4)
    full, _ = model(x)
    cache = model.new_cache()
    prefix, _ = model(x[:, :9], cache=cache)  # a prompt of 9 tokens (SDPA, causal)
    chunk, _ = model(x[:, 9:12], cache=cache)  # 3 more at once: explicit path with an offset mask
    steps = [model(x[:, t : t + 1], cache=cache)[0] for t in range(12, 16)]  # one at a time
    torch.testing.assert_close(torch.cat([prefix, chunk, *steps], dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        model(x[:, :1], cache=cache)  # the cache is full: 16 + 1 > block_size


def test_rotary_tables_made_while_generating_in_inference_mode_still_train():
    # the rotary tables are made once per (head size, start, length) and shared: one first made inside
    # torch.inference_mode must not be an inference tensor, or the training forward that reuses it fails backward
    config = ModelConfig(kind="gpt", vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8, pos="rope")
    model = build_model(config)
    idx = torch.randint(0, 11, (2, 13))  # a length no other test uses, so this call makes the tables
    with torch.inference_mode():
        model(idx)
    _, loss = model(idx, targets=idx)
    loss.backward()
    assert model.lm_head.weight.grad is not None and torch.isfinite(model.lm_head.weight.grad).all()
