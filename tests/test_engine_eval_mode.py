"""The generation engine decodes in eval mode: a model left in training mode with dropout is refused."""

from __future__ import annotations

import pytest
import torch

from gptlab import CharTokenizer, GenerationSettings, ModelConfig, SettingsError, build_model, generate
from gptlab.generate import GenerationEngine

SETTINGS = GenerationSettings(max_new_tokens=5, seed=1)


def tiny(dropout: float):
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="gpt", vocab_size=10, n_layer=1, n_head=2, n_embd=16, block_size=8,
                                   dropout=dropout))


def test_a_model_training_with_dropout_is_refused_before_any_work():
    model = tiny(0.1).train()
    engine = GenerationEngine(model)
    with pytest.raises(SettingsError, match=r"training mode with dropout 0\.1.*model\.eval\(\)"):
        next(engine.stream([1, 2, 3], SETTINGS))
    assert engine._thread is None and not engine.rows  # refused before a row or the engine thread was made


def test_every_way_into_the_engine_is_refused():
    """stream_chunks (what generate(batched=True), the app and the CLI read) checks it too, not only stream."""
    model = tiny(0.1).train()
    engine = GenerationEngine(model)
    with pytest.raises(SettingsError, match="model.eval"):
        next(engine.stream_chunks([1, 2, 3], SETTINGS))
    tokenizer = CharTokenizer.train("abcdefghij")
    with pytest.raises(SettingsError, match="model.eval"):
        next(generate(model, tokenizer, "abc", SETTINGS, batched=True))


@pytest.mark.parametrize("dropout, training", [(0.1, False), (0.0, True), (0.0, False)])
def test_eval_mode_or_no_dropout_is_served(dropout, training):
    model = tiny(dropout).train(training)
    assert len(list(GenerationEngine(model).stream([1, 2, 3], SETTINGS))) == 5


def test_a_part_of_an_eval_model_left_training_with_dropout_is_refused():
    """model.eval() then one block back in training mode: that block's dropout would draw one mask stream
    over the whole batch, so it is refused as a model in training mode is."""
    model = tiny(0.1).eval()
    model.transformer.h[0].train()
    with pytest.raises(SettingsError, match=r"training mode with dropout 0\.1"):
        next(GenerationEngine(model).stream([1, 2, 3], SETTINGS))
