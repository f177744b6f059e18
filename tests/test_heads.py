"""Head labels: synthetic patterns built to match each label get that label, with the right score."""

from __future__ import annotations

import math

import pytest
import torch

from gptlab.inside.heads import LABELS, describe, label_heads, reference_masks, score_head, synthetic_pattern

TEXT = ("First Citizen:\nBefore we proceed any further, hear me.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die.\n")
TOKENS = list(TEXT)


@pytest.mark.parametrize("label", list(LABELS))
def test_a_pattern_built_for_a_label_gets_that_label(label):
    pattern = synthetic_pattern(TOKENS, label, strength=0.9)
    assert torch.allclose(pattern.sum(dim=1), torch.ones(len(TOKENS)), atol=1e-5)  # a real attention pattern
    [[result]] = label_heads([pattern[None]], TOKENS)
    assert result.label == label, result.scores
    assert result.score > 0.85


def test_sharp_previous_head_scores_its_exact_share_and_reads_as_a_sentence():
    n = len(TOKENS)
    pattern = torch.zeros(n, n)
    pattern[0, 0] = 1.0
    for q in range(1, n):  # 71% on the previous character, the rest on the token itself
        pattern[q, q - 1], pattern[q, q] = 0.71, 0.29
    labels = label_heads([torch.stack([torch.eye(n), pattern])] * 3, TOKENS)
    head = labels[2][1]
    assert head.label == "previous" and head.score == pytest.approx(0.71, abs=1e-6)
    assert labels[0][0].label == "self" and labels[0][0].score == pytest.approx(1.0)
    assert describe(head) == "Layer 2, head 1 puts 71% of its weight on the previous character."
    assert describe(head, "token").endswith("the previous token.")
    assert head.short == "prev 71%"


def test_even_attention_is_broad_and_no_mask_gets_lift():
    pattern = synthetic_pattern(TOKENS, "broad")
    scored = score_head(pattern, reference_masks(TOKENS))
    assert scored["broad"][0] == pytest.approx(1.0)
    for name, (score, chance) in scored.items():
        if name != "broad":
            assert score == pytest.approx(chance, abs=1e-5)  # even attention scores exactly chance
    [[result]] = label_heads([pattern[None]], TOKENS)
    assert "spreads its weight broadly" in describe(result)


def test_masks_mark_the_keys_each_label_means():
    masks = reference_masks(list("AB:\nhi\n"))
    assert masks["speaker"][6].nonzero().flatten().tolist() == [0, 1, 2]  # 'AB:' is a speaker line
    assert masks["line_start"][6].nonzero().flatten().tolist() == [3, 4, 6]  # newlines and the char after
    assert masks["same_earlier"][6].nonzero().flatten().tolist() == [3]  # the earlier newline
    assert not masks["previous"].triu().any()  # causal: never a future key


def test_a_prompt_too_short_to_judge_says_so():
    [[result]] = label_heads([torch.ones(1, 2, 2).tril() / torch.tensor([[1.0], [2.0]])], ["a", "b"])
    assert math.isnan(result.score)
    assert "too short" in describe(result)


def test_a_head_no_reference_fits_is_mixed_and_says_what_comes_closest():
    n = len(TOKENS)
    pattern = torch.zeros(n, n)
    for q in range(n):  # a third each on 3, 5 and 7 back: no reference pattern, and no single offset
        for d in (3, 5, 7):
            pattern[q, max(q - d, 0)] += 1 / 3
    [[result]] = label_heads([pattern[None]], TOKENS)
    assert result.label == "mixed" and result.short == "mixed"
    assert describe(result).startswith("Layer 0, head 0 follows none of the reference patterns on this prompt; "
                                       "the closest is ")


def test_induction_keys_follow_earlier_copies_of_the_query_token_by_id():
    masks = reference_masks(list("abcab"))
    assert masks["induction"][3].nonzero().flatten().tolist() == [1]  # 'a' at 0 was followed by key 1
    assert masks["induction"][4].nonzero().flatten().tolist() == [2]  # 'b' at 1 was followed by key 2
    assert not masks["induction"][:3].any()  # nothing repeats before position 3
    doubled = reference_masks(list("aa"))["induction"]
    assert doubled.tolist() == [[False, False], [False, True]]  # k - 1 < q allows k = q
    # byte tokens of a BPE all read as U+FFFD: identity is the id, not the text
    by_id = reference_masks(["\ufffd"] * 4, ids=[7, 8, 7, 9])["induction"]
    assert by_id.nonzero().tolist() == [[2, 1]]


def test_a_perfect_induction_head_on_a_repeated_random_string_is_labelled_and_titled():
    ids = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:20].tolist() * 2  # 20 distinct, twice
    n = len(ids)
    tokens = ["\ufffd"] * n  # every token reads the same: only the ids can tell them apart
    pattern = synthetic_pattern(tokens, "induction", strength=0.63, ids=ids)
    for q in range(20, n):  # the second copy: 63% on the key right after the earlier copy
        assert pattern[q, q - 19] >= 0.63 and pattern[q].sum() == pytest.approx(1.0)
    [[result]] = label_heads([pattern[None]], tokens, ids)
    assert result.label == "induction"
    assert result.short.startswith("induct ") and result.panel_title.startswith("head 0 · induct ")
    assert describe(result).startswith("Layer 0, head 0 puts ")
    assert describe(result).endswith("of its weight on the character after each earlier copy of the current one "
                                      "(induction).")
