"""The induction probe: a perfect induction pattern scores 1, even attention scores chance, the same
seed gives the same result, and the shipped gpt, which has no induction head, scores near chance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gptlab import InputError, ModelConfig, build_model, hooks, load_checkpoint
from gptlab.inside.induction import induction_chance, induction_probe, induction_scores, repeated_tokens

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
LENGTH = 8


def perfect(batch: int, heads: int, length: int) -> torch.Tensor:
    """[batch, head, q, k]: the first copy on itself, each query of the second copy on key q - length + 1."""
    n = 2 * length
    pattern = torch.eye(n)
    for q in range(length, n):
        pattern[q] = 0.0
        pattern[q, q - length + 1] = 1.0
    return pattern.expand(batch, heads, n, n).clone()


def even(batch: int, heads: int, length: int) -> torch.Tensor:
    n = 2 * length
    visible = torch.ones(n, n).tril()
    return (visible / visible.sum(dim=1, keepdim=True)).expand(batch, heads, n, n).clone()


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="gpt", vocab_size=30, block_size=2 * LENGTH, n_layer=2, n_head=3,
                                   n_embd=24, dropout=0.0)).eval()


def test_hand_built_patterns_score_one_and_chance():
    scores = induction_scores([perfect(2, 3, LENGTH), even(2, 3, LENGTH)], LENGTH)
    assert scores.shape == (2, 3)  # [layer, head]
    assert torch.equal(scores[0], torch.ones(3))
    torch.testing.assert_close(scores[1], torch.full((3,), induction_chance(LENGTH)), atol=1e-6, rtol=0)
    assert induction_chance(LENGTH) == pytest.approx(sum(1 / q for q in range(9, 17)) / 8)


def test_a_model_forced_to_an_induction_pattern_scores_one_on_that_layer():
    model = tiny()

    def force(pattern: torch.Tensor) -> torch.Tensor:  # the probe's cache sees what this hook returns
        return perfect(pattern.size(0), pattern.size(1), LENGTH)

    with hooks(model, {"transformer.h.1.attn.hook_pattern": force}):
        probe = induction_probe(model, length=LENGTH, trials=4, seed=1)
    assert torch.equal(probe.scores[1], torch.ones(3))
    assert probe.best[:2] == (1, 0) and probe.best[2] == 1.0
    assert probe.scores[0].max() < 0.5  # layer 0 of a random model copies nothing

    def flatten(pattern: torch.Tensor) -> torch.Tensor:
        return even(pattern.size(0), pattern.size(1), LENGTH)

    with hooks(model, {f"transformer.h.{i}.attn.hook_pattern": flatten for i in range(2)}):
        probe = induction_probe(model, length=LENGTH, trials=4, seed=1)
    torch.testing.assert_close(probe.scores, torch.full((2, 3), probe.chance), atol=1e-6, rtol=0)


def test_the_same_seed_gives_the_same_probe():
    model = tiny()
    a, b = (induction_probe(model, length=LENGTH, trials=3, seed=5) for _ in range(2))
    assert torch.equal(a.scores, b.scores) and (a.first_copy_bits, a.second_copy_bits) == (b.first_copy_bits,
                                                                                            b.second_copy_bits)
    c = induction_probe(model, length=LENGTH, trials=3, seed=6)
    assert not torch.equal(a.scores, c.scores)
    ids = repeated_tokens(30, LENGTH, 3, seed=5)
    assert ids.shape == (3, 2 * LENGTH) and torch.equal(ids[:, :LENGTH], ids[:, LENGTH:])


def test_bad_arguments_are_clear_errors():
    model = tiny()
    with pytest.raises(InputError, match=r"length must be a whole number in 2\.\.8"):
        induction_probe(model, length=9)
    with pytest.raises(InputError, match="trials must be"):
        induction_probe(model, length=4, trials=0)
    bigram = build_model(ModelConfig(kind="bigram", vocab_size=30, block_size=16))
    with pytest.raises(InputError, match="no attention heads"):
        induction_probe(bigram)


def test_the_shipped_gpt_has_no_induction_head():
    """Measured (length 32, 16 trials, seed 0): best head 0.023 (layer 1, head 2) against chance 0.021;
    14.0 bits per character on the first copy, 14.2 on the second: copying does not help it at all."""
    probe = induction_probe(load_checkpoint(CHECKPOINTS / "gpt").model, length=32, trials=16, seed=0)
    assert probe.scores.shape == (6, 6)
    assert probe.best[2] < 0.1
    assert probe.second_copy_bits > 0.9 * probe.first_copy_bits
