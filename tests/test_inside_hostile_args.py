"""Hostile arguments to the induction probe, the ablation ranking and their helpers are refused with
InputError naming the fix (issue 15's breaker report), and numpy integers are taken like Python ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptlab import InputError, ModelConfig, build_model
from gptlab.inside.ablation import check_heads, heads_from_names, rank_heads
from gptlab.inside.formation import score_rise
from gptlab.inside.induction import copy_bits, induction_probe


def model(kind: str = "gpt") -> torch.nn.Module:
    torch.manual_seed(0)
    layers = 0 if kind == "bigram" else 1
    return build_model(ModelConfig(kind=kind, vocab_size=20, block_size=8, n_layer=layers or 1, n_head=2,
                                   n_embd=8, dropout=0.0)).eval()


@pytest.mark.parametrize("seed", [None, 1.5, 2**64, -1, "3"])
def test_a_seed_that_is_not_a_whole_number_in_range_is_an_input_error(seed):
    with pytest.raises(InputError, match="seed must be a whole number"):
        induction_probe(model(), seed=seed)


def test_trials_are_capped_before_anything_is_allocated():
    with pytest.raises(InputError, match="trials must be a whole number in 1..256"):
        induction_probe(model(), trials=10**6)


def test_numpy_integers_are_taken_like_python_ones():
    m = model()
    a = induction_probe(m, length=np.int64(3), trials=np.int32(2), seed=np.int64(5))
    b = induction_probe(m, length=3, trials=2, seed=5)
    assert torch.equal(a.scores, b.scores) and a.length == 3 and type(a.length) is int
    assert check_heads(m, [(np.int64(0), np.int64(1))]) == {(0, 1)}


def test_ranking_a_model_without_heads_says_so():
    with pytest.raises(InputError, match="no attention heads"):
        rank_heads(model("bigram"), [(torch.zeros(1, 4, dtype=torch.long),) * 2])


def test_a_batch_longer_than_the_context_is_an_input_error():
    x = torch.zeros(1, 9, dtype=torch.long)
    with pytest.raises(InputError, match="context of 8 positions"):
        rank_heads(model(), [(x, x)])


@pytest.mark.parametrize("limit", [0, -1.0, float("nan")])
def test_a_time_limit_that_is_not_positive_is_refused(limit):
    x = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(InputError, match="time_limit_s must be a positive number"):
        rank_heads(model(), [(x, x)], time_limit_s=limit)


@pytest.mark.parametrize("scores", [[float("nan"), 0.5], [float("inf"), 0.1], [0.1, 0.5, float("nan")]])
def test_a_score_that_is_not_finite_is_refused(scores):
    with pytest.raises(InputError, match="finite"):
        score_rise(list(range(len(scores))), scores)


def test_head_names_of_a_model_without_heads_say_it_has_none():
    with pytest.raises(InputError, match="it has no attention heads") as refused:
        heads_from_names(model("bigram"), ["L0 H0"], "bigram")
    assert "L-1" not in str(refused.value)


def test_head_names_take_only_ascii_digits():
    with pytest.raises(InputError, match="has no head"):
        heads_from_names(model(), ["L\u0660 H\u0661"], "gpt")  # Arabic-Indic zero and one


@pytest.mark.parametrize("ids", [[-1, 2, -1, 2], [25, 2, 25, 2], [1.0, 2, 1.0, 2], [True, 2, True, 2]])
def test_copy_bits_refuses_what_is_not_a_token_id(ids):
    with pytest.raises(InputError, match="token ids"):
        copy_bits(model(), ids)
