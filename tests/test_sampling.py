"""Sampling: the exponential race draws what torch.multinomial draws, and rows drawn together draw what each
would draw alone (so a seeded text does not change with the engine, nor with who else is in its batch)."""

from __future__ import annotations

import torch

from gptlab.sampling import GenerationSettings, next_token_probs, sample, sample_rows

SETTINGS = [GenerationSettings(temperature=0.8), GenerationSettings(temperature=1.3, top_k=5),
            GenerationSettings(temperature=0.7, top_p=0.9), GenerationSettings(temperature=0.0),
            GenerationSettings(temperature=1e-30)]


def test_sample_is_torch_multinomial_draw_for_draw():
    """Same token and the same generator state afterwards, for 500 seeds and every kind of setting."""
    logits = torch.randn(500, 65, generator=torch.Generator().manual_seed(0)) * 3
    for seed, row in enumerate(logits):
        for settings in SETTINGS:
            ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            probs = next_token_probs(row, settings)
            expected = int(probs.argmax()) if settings.temperature == 0.0 else int(
                torch.multinomial(probs, 1, generator=theirs))
            assert sample(row, settings, ours) == expected
            assert torch.equal(ours.get_state(), theirs.get_state())


def test_rows_drawn_together_draw_what_each_draws_alone():
    """Mixed settings in one call: each row's token and generator state equal a call of its own."""
    logits = torch.randn(40, 65, generator=torch.Generator().manual_seed(1)) * 2
    settings = [SETTINGS[r % len(SETTINGS)] for r in range(40)]
    together = [torch.Generator().manual_seed(100 + r) for r in range(40)]
    alone = [torch.Generator().manual_seed(100 + r) for r in range(40)]
    for _ in range(5):  # a few steps: the generators move on by their own draws only
        tokens = sample_rows(logits, settings, together)
        assert tokens == [sample(logits[r], settings[r], alone[r]) for r in range(40)]
        assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(together, alone, strict=True))
    greedy = torch.Generator().manual_seed(7)
    before = greedy.get_state()
    sample_rows(logits[:1], [GenerationSettings(temperature=0.0)], [greedy])
    assert torch.equal(greedy.get_state(), before)  # a greedy row draws nothing
