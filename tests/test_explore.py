"""explore.attention_view: labels, cropping, captured patterns, predictions, char and BPE models."""

from __future__ import annotations

import pytest
import torch

from gptlab import (
    BPETokenizer,
    GptlabError,
    ModelConfig,
    UnknownCharactersError,
    build_model,
    load_checkpoint,
    run_with_cache,
    visible_token,
)
from gptlab.inside.explore import attention_view, encode_prompt, has_attention, pattern_names

PROMPT = "First Citizen:\nSpeak, speak."


@pytest.fixture(scope="module")
def gpt(tiny_checkpoints):
    return load_checkpoint(tiny_checkpoints["gpt"])


def test_labels_are_unique_visible_and_one_per_token(gpt):
    view = attention_view(gpt.model, gpt.tokenizer, PROMPT)
    assert len(view.labels) == len(view.ids) == len(PROMPT)
    assert len(set(view.labels)) == len(view.labels)  # "e", "k", "a" repeat in the prompt
    assert view.labels[5] == "5:␣" and view.labels[14] == "14:↵"
    assert not any(ch in label for label in view.labels for ch in " \n\t")


def test_patterns_match_a_direct_run_with_cache(gpt):
    view = attention_view(gpt.model, gpt.tokenizer, PROMPT)
    names = pattern_names(gpt.model)
    _, cache = run_with_cache(gpt.model, torch.tensor([gpt.tokenizer.encode(PROMPT)]), names=names)
    assert view.n_layer == gpt.config.n_layer and view.n_head == gpt.config.n_head
    for layer, name in enumerate(names):
        torch.testing.assert_close(view.patterns[layer], cache[name][0])


def test_patterns_are_causal_distributions(gpt):
    pattern = attention_view(gpt.model, gpt.tokenizer, PROMPT).patterns[0]  # [head, q, k]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:2]))
    assert torch.all(pattern.triu(diagonal=1) == 0)
    assert not torch.allclose(pattern[0], pattern[1])  # trained heads differ


def test_long_prompt_is_cropped_to_the_context_and_reported(gpt):
    block = gpt.config.block_size
    prompt = "All:\nSpeak, speak.\n" * 10
    view = attention_view(gpt.model, gpt.tokenizer, prompt)
    assert view.cropped and view.dropped == len(prompt) - block
    assert view.ids == gpt.tokenizer.encode(prompt)[-block:]
    assert view.patterns[0].shape[-1] == block
    short = attention_view(gpt.model, gpt.tokenizer, "All:")
    assert not short.cropped and short.dropped == 0


def test_predictions_are_the_top_k_of_the_softmax(gpt):
    view = attention_view(gpt.model, gpt.tokenizer, PROMPT, top_k=3)
    logits, _ = gpt.model(torch.tensor([view.ids]))
    probs = torch.softmax(logits[0], dim=-1)
    assert len(view.predictions) == len(view.ids)
    for q in (0, len(view.ids) - 1):
        best = probs[q].topk(3)
        assert [p for _, p in view.predictions[q]] == pytest.approx(best.values.tolist(), abs=1e-6)
        expected = [visible_token(s) for s in gpt.tokenizer.token_strings(best.indices.tolist())]
        assert [t for t, _ in view.predictions[q]] == expected

def test_bad_prompts_raise_project_errors(gpt):
    with pytest.raises(GptlabError, match="empty"):
        attention_view(gpt.model, gpt.tokenizer, "")
    with pytest.raises(UnknownCharactersError, match="日"):
        attention_view(gpt.model, gpt.tokenizer, "日本")
    with pytest.raises(GptlabError, match="no tokens"):
        encode_prompt(gpt.tokenizer, "日本", 8, errors="drop")


def test_bigram_has_no_attention(tiny_checkpoints):
    bigram = load_checkpoint(tiny_checkpoints["bigram"])
    assert not has_attention(bigram.model)
    with pytest.raises(GptlabError, match="no attention"):
        attention_view(bigram.model, bigram.tokenizer, "All:")


def test_bpe_model_works_with_any_text(tiny_text):
    tokenizer = BPETokenizer.train(tiny_text, vocab_size=300)
    config = ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=32)
    torch.manual_seed(0)
    model = build_model(config).eval()
    prompt = "First Citizen: 日本 speak, speak"  # byte-level BPE knows every character
    view = attention_view(model, tokenizer, prompt)
    assert view.ids == tokenizer.encode(prompt)
    assert len(view.ids) < len(prompt)  # merges made multi-character tokens
    assert len(set(view.labels)) == len(view.labels)
    assert any(len(tok) > 1 for tok in view.tokens)
    assert view.patterns[0].shape == (2, len(view.ids), len(view.ids))
