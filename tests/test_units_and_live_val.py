"""Bits are named per character for char models and per token for BPE in every caption that states them,
and a live model trained on Tiny Shakespeare's opening is ranked on Tiny Shakespeare's val batches (the
last 10% of the corpus, text it never saw), while one trained on pasted text is not (issue 15's breaker)."""

from __future__ import annotations

from pathlib import Path

from gptlab import load_checkpoint
from gptlab.classroom.live import MAX_CHARS, LiveConfig, train_live
from gptlab.data import TINY_SHAKESPEARE, load_text
from gptlab.inside.ablation import ablation_view, rank_heads, shakespeare_val_batches
from gptlab.inside.formation import InductionAcross, ScoreRise
from gptlab_app.tabs.ablate import note

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def test_the_ablation_note_names_tokens_for_a_bpe_model_and_characters_for_a_char_model():
    for name, unit, other in (("gpt-bpe", "token", "character"), ("gpt", "character", "token")):
        checkpoint = load_checkpoint(CHECKPOINTS / name)
        found = ablation_view(checkpoint.model, checkpoint.tokenizer, "ROMEO: what light", {(0, 0)})
        said = note(found, "L0 H0", name, checkpoint)
        assert f"bits per {unit}" in said and f"predicted {unit}s" in said and f"per {other}" not in said


def test_the_induction_across_caption_names_its_unit():
    rise = ScoreRise(start=0, end=10, low=0.1, high=0.9, sharp=True, formed=True)
    found = InductionAcross(steps=[0, 10], scores=[0.1, 0.9], heads=[(0, 0), (1, 2)], first_copy_bits=[6.0, 6.0],
                            second_copy_bits=[6.0, 0.5], val_loss=[None, None], chance=0.05, length=8, rise=rise,
                            unit="character")
    assert "bits per character" in found.caption and "bits per token" not in found.caption


def first_report(text: str):
    return next(iter(train_live(text, LiveConfig(max_seconds=1))))


def test_a_live_model_on_tiny_shakespeares_opening_is_ranked_on_its_val_batches():
    report = first_report(load_text(TINY_SHAKESPEARE)[:MAX_CHARS])
    checkpoint = report.checkpoint()
    assert checkpoint.info["data"] == TINY_SHAKESPEARE
    batches = shakespeare_val_batches(checkpoint)  # encodes although 'X', '3', '$' are not in the opening
    assert batches and len(rank_heads(checkpoint.model, batches[:1])) == 8


def test_a_live_model_on_pasted_text_is_not():
    report = first_report("A pasted text of my own, not Shakespeare at all. " * 40)
    assert shakespeare_val_batches(report.checkpoint()) is None


def test_a_lesson_call_without_a_lesson_or_a_prompt_names_the_missing_lesson():
    import pytest

    from gptlab.errors import InputError
    from gptlab_app.tabs.lessons import page_of

    for lesson in (None, ""):
        with pytest.raises(InputError, match="No lesson is chosen and the prompt is empty: choose a lesson"):
            page_of(None, lesson, "induction", "", 0, 0, -1, -1, False)  # refused before any model is needed
    with pytest.raises(InputError, match="No lesson 'nope'"):
        page_of(None, "nope", "induction", "ROMEO:", 0, 0, -1, -1, False)
