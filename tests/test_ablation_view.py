"""ablation_view, the library half of the Knock out heads tab: nothing switched off changes nothing, the bits
and probabilities after are those of a model whose head weights were edited by hand, and ranking stops at its
time limit."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from test_ablation import head_columns, tiny

from gptlab import CharTokenizer, InputError
from gptlab.inside import AblationView, ablation_view
from gptlab.inside.ablation import NEXT_TOKENS, all_heads, rank_heads

TOKENIZER = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,\n")  # the tiny model's 30 tokens
PROMPT = "the cat sat on the mat.\n"  # 24 characters; the tiny model's context is 16


def batches(n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = torch.randint(30, (n, 2, 17), generator=torch.Generator().manual_seed(1))
    return [(row[:, :-1], row[:, 1:]) for row in data]


def manual_bits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0][0]
    probs = torch.softmax(logits.double(), -1)
    return torch.tensor([-math.log2(float(probs[t, ids[t + 1]])) for t in range(len(ids) - 1)])


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_nothing_switched_off_changes_nothing(mode):
    found = ablation_view(tiny(), TOKENIZER, PROMPT, set(), mode, batches())
    assert isinstance(found, AblationView) and found.heads == ()
    assert torch.equal(found.before, found.after) and torch.equal(found.bits_before, found.bits_after)
    assert found.delta_loss == 0.0 and not found.delta_bits.any()
    n = 16  # cropped to the context
    assert len(found.ids) == len(found.labels) == n and found.dropped == len(PROMPT) - n
    assert found.before.shape == (30,) and found.bits_before.shape == (n - 1,)
    assert [p for _, p, _ in found.next_tokens] == sorted((p for _, p, _ in found.next_tokens), reverse=True)
    assert len(found.next_tokens) == NEXT_TOKENS


def test_after_is_the_model_with_the_heads_columns_of_c_proj_zeroed():
    model = tiny()
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for layer, head in [(0, 1), (1, 3)]:
            edited.transformer.h[layer].attn.c_proj.weight[:, head_columns(head)] = 0.0
    found = ablation_view(model, TOKENIZER, PROMPT, {(0, 1), (1, 3)}, "zero", batches())
    ids = found.ids
    torch.testing.assert_close(found.bits_before, manual_bits(model, ids).float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(found.bits_after, manual_bits(edited, ids).float(), atol=1e-4, rtol=0)
    with torch.no_grad():
        expected_after = torch.softmax(edited(torch.tensor([ids]))[0][0, -1], -1)
        expected_loss = sum(float(edited(x, y)[1]) for x, y in batches()) / 2
    torch.testing.assert_close(found.after, expected_after, atol=1e-6, rtol=0)
    assert found.loss_after == pytest.approx(expected_loss, abs=1e-5) and found.delta_loss > 0
    top_after = int(found.after.argmax())
    assert TOKENIZER.chars[top_after].replace(" ", "␣").replace("\n", "↵") in [t for t, _, _ in found.next_tokens]


def test_without_batches_there_is_no_validation_loss():
    found = ablation_view(tiny(), TOKENIZER, PROMPT, "all", "mean")
    assert found.loss_before is None and found.delta_loss is None and found.heads == tuple(all_heads(tiny()))


def test_bad_heads_or_mode_are_refused():
    with pytest.raises(InputError, match=r"layer in 0\.\.1 and head in 0\.\.3"):
        ablation_view(tiny(), TOKENIZER, PROMPT, {(2, 0)})
    with pytest.raises(InputError, match="mode must be one of zero, mean"):
        ablation_view(tiny(), TOKENIZER, PROMPT, set(), "half")


def test_ranking_stops_at_its_time_limit():
    model = tiny()
    assert rank_heads(model, batches(), time_limit_s=1e-9) == []  # the base loss alone takes longer (0 is refused)
    assert len(rank_heads(model, batches(), time_limit_s=60.0)) == len(all_heads(model))
