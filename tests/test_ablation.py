"""Ablation: switching heads off at hook_z is exactly a weight edit, changes nothing when it switches
nothing off, stays in its own thread, and costs the shipped models what their attention gives them."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from gptlab import InputError, ModelConfig, TokenSplits, build_model, load_checkpoint, run_with_cache
from gptlab.data import EVAL_SEED, eval_batches, get_batch
from gptlab.inside.ablation import ablate, ablated_loss, all_heads, check_heads, mean_loss, rank_heads

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
N_HEAD, HEAD_SIZE = 4, 8


def tiny(kind: str = "gpt") -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, vocab_size=30, block_size=16, n_layer=2, n_head=N_HEAD,
                                    n_embd=N_HEAD * HEAD_SIZE, dropout=0.0)).eval()
    with torch.no_grad():  # sharper attention and larger head outputs than the init gives
        for layer in model.transformer.h:
            layer.attn.c_attn.weight.mul_(10)
            layer.attn.c_proj.weight.mul_(10)
            layer.attn.c_proj.bias.normal_()
    return model


def idx(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.randint(30, (batch, 16), generator=torch.Generator().manual_seed(seed))


def no_hooks_left(model) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def logits(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(x)[0]


def head_columns(head: int) -> slice:
    return slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)


def test_hook_z_holds_each_heads_output_before_c_proj():
    model = tiny()
    _, cache = run_with_cache(model, idx(), ["transformer.h.0.attn.hook_z", "transformer.h.0.attn.hook_pattern"])
    z = cache["transformer.h.0.attn.hook_z"]
    assert z.shape == (2, 16, N_HEAD, HEAD_SIZE)  # [batch, pos, head, head_size]
    # head 1's output at a position is its pattern times its values: nonzero, and different per head
    assert not torch.equal(z[:, :, 0], z[:, :, 1])


@pytest.mark.parametrize("heads", [set(), [], frozenset()])
def test_ablating_nothing_leaves_the_logits_bit_identical(heads):
    model = tiny()
    x = idx()
    plain = logits(model, x)
    with ablate(model, heads):
        same = logits(model, x)
    assert torch.equal(same, plain)
    assert no_hooks_left(model)


@pytest.mark.parametrize("kind", ["gpt", "multi_head"])
@pytest.mark.parametrize("heads", [{(0, 1)}, {(1, 0), (1, 3)}, {(0, 2), (1, 2)}, "all"], ids=str)
def test_zero_ablation_equals_zeroing_the_heads_columns_of_c_proj(kind, heads):
    model = tiny(kind)
    x = idx(1)
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for layer, head in all_heads(model) if heads == "all" else heads:
            edited.transformer.h[layer].attn.c_proj.weight[:, head_columns(head)] = 0.0
    with ablate(model, heads, mode="zero"):
        ablated = logits(model, x)
    expected = logits(edited, x)
    assert not torch.allclose(expected, logits(model, x), atol=1e-3)  # the edit matters
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("heads", [{(1, 2)}, {(0, 0), (0, 3)}], ids=str)
def test_mean_ablation_equals_a_constant_head_output_folded_into_c_proj(heads):
    """One sequence, heads of one layer: the mean output m of a head is a constant, so mean ablation is
    zeroing the head's columns and adding W[:, head] @ m to c_proj's bias."""
    model = tiny()
    x = idx(2, batch=1)
    (layer,) = {layer for layer, _ in heads}
    name = f"transformer.h.{layer}.attn.hook_z"
    _, cache = run_with_cache(model, x, [name])  # layers before this one are not ablated: same z
    mean = cache[name][0].mean(dim=0)  # [head, head_size]
    edited = copy.deepcopy(model)
    with torch.no_grad():
        proj = edited.transformer.h[layer].attn.c_proj
        for _, head in heads:
            proj.bias += proj.weight[:, head_columns(head)] @ mean[head]
            proj.weight[:, head_columns(head)] = 0.0
    with ablate(model, heads, mode="mean"):
        ablated = logits(model, x)
    torch.testing.assert_close(ablated, logits(edited, x), atol=1e-5, rtol=0)
    with ablate(model, heads, mode="zero"):
        assert not torch.allclose(ablated, logits(model, x), atol=1e-3)  # mean is not zero


def test_two_threads_do_not_see_each_others_ablations():
    model = tiny()
    x = idx(3)
    plain = logits(model, x)
    with ablate(model, {(0, 1)}):
        want_a = logits(model, x)
    with ablate(model, {(1, 3)}, mode="mean"):
        want_b = logits(model, x)
    a_open, b_done = threading.Event(), threading.Event()
    seen: dict[str, torch.Tensor] = {}

    def a():
        with ablate(model, {(0, 1)}):
            a_open.set()
            b_done.wait(30)  # B runs both its passes while A's ablation is open
            seen["a"] = logits(model, x)

    def b():
        a_open.wait(30)
        seen["b_plain"] = logits(model, x)
        with ablate(model, {(1, 3)}, mode="mean"):
            seen["b"] = logits(model, x)
        b_done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    torch.testing.assert_close(seen["b_plain"], plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(seen["b"], want_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(seen["a"], want_a, atol=1e-6, rtol=0)
    assert no_hooks_left(model)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_rank_heads_lists_every_head_by_how_much_the_loss_rises(mode):
    """rank_heads reruns only the layers after the head's own; its numbers are the full ablated loss's."""
    model = tiny()
    batches = [(x[:, :-1], x[:, 1:]) for x in (idx(4, batch=3), idx(5, batch=2))]
    ranking = rank_heads(model, batches, mode)
    assert sorted((layer, head) for layer, head, _ in ranking) == all_heads(model)
    deltas = [delta for _, _, delta in ranking]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0
    base = mean_loss(model, batches)
    for layer, head, delta in ranking:
        assert delta == pytest.approx(ablated_loss(model, batches, {(layer, head)}, mode) - base, abs=1e-6)


def test_bad_heads_or_mode_are_clear_errors():
    model = tiny()
    with pytest.raises(InputError, match=r"No head \(2, 0\).*layer in 0..1 and head in 0..3"):
        with ablate(model, {(2, 0)}):
            pass
    with pytest.raises(InputError, match="No head"):
        with ablate(model, [(0, True)]):
            pass
    with pytest.raises(InputError, match="mode must be one of zero, mean"):
        with ablate(model, "all", mode="half"):
            pass
    with pytest.raises(InputError, match="'all' or a set"):
        with ablate(model, "some"):
            pass
    with pytest.raises(InputError, match="'all' or a set"):
        with ablate(model, 3):
            pass
    assert check_heads(model, [(np.int64(1), 2)]) == {(1, 2)}  # any whole number type: Python int, numpy, ...
    bigram = build_model(ModelConfig(kind="bigram", vocab_size=30, block_size=16))
    with pytest.raises(InputError, match="no attention heads"):
        with ablate(bigram, "all"):
            pass
    assert no_hooks_left(model)


def test_eval_batches_are_the_ones_training_evaluates_on():
    from train.evaluate import EVAL_SEED as TRAIN_SEED

    data = torch.arange(500)
    generator = torch.Generator().manual_seed(TRAIN_SEED)
    expected = [get_batch(data, 4, 8, generator) for _ in range(3)]
    got = eval_batches(data, 3, 4, 8)
    assert TRAIN_SEED == EVAL_SEED
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("name", ["blocks", "gpt"])
def test_all_attention_off_costs_a_shipped_model_everything_its_context_gave(name, shakespeare_text):
    """On the first 4 of the README's fixed val batches (nats/token), measured: blocks 2.060 -> 3.240
    (3.050 with mean ablation) and gpt 1.499 -> 3.293 (3.240) with every head off, against the bigram's
    2.488 and 2.494 on the same batches. Without attention a model sees one token, so it can do no
    better than the bigram; it does worse, since its later layers expect what attention wrote."""
    checkpoint = load_checkpoint(CHECKPOINTS / name)
    bigram = load_checkpoint(CHECKPOINTS / "bigram")
    splits = TokenSplits.from_ids(checkpoint.tokenizer.encode(shakespeare_text))
    batches = eval_batches(splits.val, 4, 32, checkpoint.model.config.block_size)
    base = mean_loss(checkpoint.model, batches)
    bigram_loss = mean_loss(bigram.model, batches)  # the bigram reads one token: any window length works
    off = ablated_loss(checkpoint.model, batches, "all")
    assert base < bigram_loss - 0.3  # attention is worth a lot ...
    assert off > bigram_loss  # ... and without it the model is no better than the bigram


def test_zero_ablation_holds_token_by_token_under_a_kv_cache():
    """Generation feeds one token at a time through the KV cache: hook_z then sees one position, and
    zero ablation (position by position) must give what the whole sequence gives."""
    model = tiny()
    x = idx(6, batch=1)
    with ablate(model, {(0, 1), (1, 2)}):
        whole = logits(model, x)
        cache = model.new_cache()
        with torch.no_grad():
            steps = [model(x[:, :4], cache=cache)[0]] + [model(x[:, t : t + 1], cache=cache)[0] for t in range(4, 16)]
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=0)
    assert not torch.allclose(whole, logits(model, x), atol=1e-3)
