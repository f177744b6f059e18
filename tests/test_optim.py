"""Muon's Newton-Schulz runs same-shape matrices as one stack, and its update stays the per-matrix one."""

from __future__ import annotations

import pytest
import torch

from gptlab.classroom.live import LiveConfig, _optimizers
from gptlab.models import ModelConfig, build_model
from gptlab.optim import Muon, newton_schulz

# the live model's block matrices: c_attn (192, 64), attn.c_proj (64, 64), c_fc (256, 64), mlp.c_proj (64, 256)
SHAPES = [(192, 64), (64, 64), (256, 64), (64, 256), (3, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_stack_is_orthogonalised_matrix_by_matrix(shape):
    torch.manual_seed(0)
    stack = torch.randn(3, *shape) * torch.tensor([1e-3, 1.0, 50.0])[:, None, None]  # each its own scale
    together = newton_schulz(stack)
    assert together.shape == stack.shape
    for g, out in zip(stack, together, strict=True):
        torch.testing.assert_close(out, newton_schulz(g), atol=1e-6, rtol=0)


def test_newton_schulz_pushes_singular_values_towards_one():
    torch.manual_seed(0)
    for g in (torch.randn(64, 256), torch.randn(256, 64), torch.randn(2, 64, 192)):
        s = torch.linalg.svdvals(newton_schulz(g))
        assert s.min() > 0.5 and s.max() < 1.3  # the quintic's band, not exactly 1


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5)])
def test_newton_schulz_takes_matrices_or_a_stack_only(shape):
    with pytest.raises(ValueError, match="stack of matrices"):
        newton_schulz(torch.randn(*shape))


def _muon_by_hand(params, grads_per_step, lr, momentum, weight_decay):
    """The textbook per-matrix Muon step (Nesterov), one matrix at a time, for comparison."""
    bufs = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, g, buf in zip(params, grads, bufs, strict=True):
            buf.mul_(momentum).add_(g)
            update = newton_schulz(g + momentum * buf)
            p.mul_(1 - lr * weight_decay)
            p.add_(update, alpha=-lr * max(1.0, p.size(0) / p.size(1)) ** 0.5)


def test_muons_stacked_step_equals_the_per_matrix_step():
    torch.manual_seed(0)
    shapes = SHAPES[:4] * 2  # two layers' worth: stacks of 2, and tall with wide in one stack
    start = [torch.randn(*s) * 0.02 for s in shapes]
    grads_per_step = [[torch.randn(*s) for s in shapes] for _ in range(6)]
    params = [torch.nn.Parameter(w.clone()) for w in start]
    optimizer = Muon(params, lr=0.02, momentum=0.95, weight_decay=0.2)
    for grads in grads_per_step:
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
    expected = [w.clone() for w in start]
    _muon_by_hand(expected, grads_per_step, lr=0.02, momentum=0.95, weight_decay=0.2)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e, atol=1e-6, rtol=0)


def test_muon_leaves_a_matrix_without_a_gradient_alone():
    a, b = torch.nn.Parameter(torch.randn(4, 8)), torch.nn.Parameter(torch.randn(4, 8))
    before = b.detach().clone()
    a.grad = torch.randn(4, 8)
    Muon([a, b], weight_decay=0.1).step()
    assert torch.equal(b.detach(), before)


def test_the_live_trainers_fused_adamw_matches_the_plain_one():
    """The live trainer uses PyTorch's fused CPU AdamW (a third of the plain loop's time): same updates."""
    config = LiveConfig()
    model = build_model(ModelConfig(kind="gpt", vocab_size=20, block_size=16, n_layer=2, n_head=4, n_embd=64,
                                    mlp="relu2", pos="rope"))
    adamw = _optimizers(model, config)[0]
    assert adamw.defaults["fused"] is True
    plain = build_model(model.config)
    plain.load_state_dict(model.state_dict())
    by_name = dict(plain.named_parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    reference = torch.optim.AdamW([{"params": [by_name[names[id(p)]] for p in g["params"]],
                                    "weight_decay": g["weight_decay"], "lr": g["lr"]} for g in adamw.param_groups],
                                  lr=config.lr, betas=(0.9, 0.99), fused=False)
    torch.manual_seed(1)
    pairs = [(p, q) for g, h in zip(adamw.param_groups, reference.param_groups, strict=True)
             for p, q in zip(g["params"], h["params"], strict=True)]
    for _ in range(20):
        for p, q in pairs:
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        adamw.step()
        reference.step()
    for p, q in pairs:
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-6, rtol=0)


def test_the_live_recipe_gives_each_parameter_one_group_and_the_embedding_its_own_rate():
    """The token embedding learns at embedding_lr, the other AdamW weights at lr, the block matrices with Muon
    at muon_lr and muon_momentum; every parameter is in exactly one group."""
    config = LiveConfig(lr=1e-3, embedding_lr=5e-2, muon_lr=0.03, muon_momentum=0.8)
    model = build_model(ModelConfig(kind="gpt", vocab_size=20, block_size=16, n_layer=2, n_head=4, n_embd=64,
                                    mlp="relu2", pos="rope"))
    adamw, muon = _optimizers(model, config)
    rate = {id(p): g["lr"] for o in (adamw, muon) for g in o.param_groups for p in g["params"]}
    assert sum(len(g["params"]) for o in (adamw, muon) for g in o.param_groups) == len(list(model.parameters()))
    assert rate[id(model.transformer.wte.weight)] == 5e-2
    assert rate[id(model.lm_head.weight)] == 1e-3
    assert rate[id(model.transformer.h[0].attn.c_attn.weight)] == 0.03
    assert {g["momentum"] for g in muon.param_groups} == {0.8}


@pytest.mark.parametrize("field, value", [("embedding_lr", -1.0), ("embedding_lr", float("nan")), ("lr", float("inf")),
                                          ("muon_lr", -0.02), ("weight_decay", -0.1), ("muon_momentum", 1.0),
                                          ("muon_momentum", 1.5), ("muon_momentum", None), ("embedding_lr", True),
                                          ("lr", "3e-3" * 1000)])
def test_a_live_recipe_setting_out_of_range_is_refused_by_name(field, value):
    """Before any work: a negative embedding rate trained on (upside down), a momentum of 1.5 diverged silently."""
    from gptlab.classroom.live import train_live
    from gptlab.errors import SettingsError

    config = LiveConfig(max_seconds=0.1, **{field: value})
    with pytest.raises(SettingsError, match=f"LiveConfig.{field} must be") as caught:
        next(train_live("To be, or not to be. " * 60, config))
    assert len(str(caught.value)) < 200  # a huge value is shown shortened
