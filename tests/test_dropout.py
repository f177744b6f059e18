"""The cheap CPU dropout: the right drop rate, the right scale, and attention that uses it correctly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gptlab import ModelConfig
from gptlab.models import CausalSelfAttention
from gptlab.models.dropout import Dropout, drop_mask, dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_mask_drops_p_of_the_elements_and_keeps_the_mean(p):
    torch.manual_seed(0)
    n = 400_000
    mask, scale = drop_mask((n,), p, torch.device("cpu"))
    dropped = mask.float().mean().item()
    # binomial standard deviation sqrt(p(1-p)/n) is below 0.0008: five of them
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert scale == pytest.approx(1 / (1 - p), rel=1e-4)
    y = dropout(torch.ones(n), p, training=True)
    assert set(torch.unique(y).tolist()) == {0.0, torch.tensor(scale).item()}  # scale in float32
    assert abs(y.mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)


def test_mask_bits_are_independent_across_lanes_and_positions():
    torch.manual_seed(1)
    mask, _ = drop_mask((100_000, 8), 0.5, torch.device("cpu"))
    m = mask.float()
    # neighbouring elements share an int64 draw: their decisions must still be uncorrelated
    for shift in (1, 2, 3, 4):
        a, b = m.flatten()[:-shift], m.flatten()[shift:]
        corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
        assert abs(corr.item()) < 0.01, (shift, corr)


def test_same_seed_same_mask_and_eval_or_zero_p_is_the_identity():
    x = torch.randn(64, 33)  # an odd element count: the last int64 draw is only partly used
    torch.manual_seed(5)
    a = dropout(x, 0.3, training=True)
    torch.manual_seed(5)
    b = dropout(x, 0.3, training=True)
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0, training=True) is x
    module = Dropout(0.3).eval()
    assert module(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_gradient_flows_only_through_kept_elements():
    x = torch.randn(1000, requires_grad=True)
    torch.manual_seed(7)
    y = dropout(x, 0.25, training=True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 65536 / (65536 - 16384)))
    assert torch.all(x.grad[~kept] == 0)


def test_attention_training_path_equals_the_written_out_formula_with_the_same_mask():
    config = ModelConfig(vocab_size=40, block_size=16, n_layer=1, n_head=4, n_embd=32, dropout=0.2)
    torch.manual_seed(2)
    attn = CausalSelfAttention(config).train()
    x = torch.randn(3, 16, 32)
    torch.manual_seed(11)
    y = attn(x)
    # by hand, drawing the attention mask then the residual mask from the same seed
    torch.manual_seed(11)
    B, T, C = x.shape
    q, k, v = attn.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, 4, 8).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    att = F.softmax(att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")), dim=-1)
    attn_mask, scale = drop_mask(att.shape, 0.2, x.device)
    out = (att.masked_fill(attn_mask, 0.0) * scale @ v).transpose(1, 2).reshape(B, T, C)
    out = attn.c_proj(out)
    resid_mask, _ = drop_mask(out.shape, 0.2, x.device)
    expected = out.masked_fill(resid_mask, 0.0) * scale
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    assert attn_mask.any() and resid_mask.any()  # the masks really dropped something
    y.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in attn.parameters())
