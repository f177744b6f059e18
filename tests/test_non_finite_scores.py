"""Next-token scores with NaN or infinity are refused with a clear message, not drawn from: the exponential
race's argmax picks token 0 from a row of NaN, where torch.multinomial refused."""

from __future__ import annotations

import pytest
import torch

from gptlab import GenerationSettings, GptlabError, ModelConfig, generate
from gptlab.models import build_model
from gptlab.sampling import sample_rows
from gptlab.tokenizers import CharTokenizer

NAN, INF = float("nan"), float("inf")
GREEDY, SAMPLED = GenerationSettings(temperature=0.0), GenerationSettings(temperature=0.8, top_k=3, top_p=0.9)


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED])
@pytest.mark.parametrize("bad", [[NAN] * 5, [0.0, 1.0, NAN, 2.0, 0.5], [0.0, INF, 1.0, 2.0, 0.5], [-INF] * 5])
def test_a_row_without_a_distribution_is_refused(settings, bad):
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], bad])
    generators = [torch.Generator().manual_seed(0) for _ in range(2)]
    with pytest.raises(GptlabError, match="NaN or infinite"):
        sample_rows(logits, [settings, settings], generators)


def test_masked_scores_are_still_drawn_from():
    """-inf for some tokens is a mask (probability 0), not a fault."""
    logits = torch.tensor([[-INF, 1.0, -INF, 3.0, -INF]])
    for settings in (GREEDY, SAMPLED):
        assert sample_rows(logits, [settings], [torch.Generator().manual_seed(1)])[0] in (1, 3)


@pytest.mark.parametrize("batched", [False, True])
def test_a_model_with_nan_weights_is_refused_batched_or_not(batched):
    tokenizer = CharTokenizer.train("abcdefgh ")
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16,
                                    block_size=8)).eval()
    with torch.no_grad():
        model.lm_head.weight[0, 0] = NAN
    with pytest.raises(GptlabError, match="NaN or infinite"):
        "".join(generate(model, tokenizer, "abc", GenerationSettings(max_new_tokens=5, seed=1), batched=batched))
