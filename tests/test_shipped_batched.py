"""Every shipped checkpoint writes the same text batched (the app's and the CLI's path, many requests decoded
together) as alone, seed for seed: prompts shorter than, exactly as long as, and longer than the context, greedy
and sampled rows side by side, and for the byte-level BPE model characters of several bytes."""

from __future__ import annotations

from pathlib import Path
from threading import Thread

import pytest

from gptlab import GenerationSettings, generate, load_checkpoint

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = sorted(p.parent for p in CHECKPOINTS.glob("*/metrics.json"))
SETTINGS = [GenerationSettings(max_new_tokens=40, temperature=0.0), GenerationSettings(max_new_tokens=40, seed=1),
            GenerationSettings(max_new_tokens=40, temperature=1.3, top_k=5, top_p=0.9, seed=2),
            GenerationSettings(max_new_tokens=1, seed=3)]
TEXT = "ROMEO:\nWherefore art thou, my love? Hark, the lark sings; café, naïve, «adieu» — ’tis done.\n" * 40


def prompts(checkpoint) -> list[str]:
    """A short prompt, one of the context's tokens (or one more), and one three times longer."""
    tok, block = checkpoint.tokenizer, checkpoint.config.block_size
    text = TEXT if tok.kind != "char" else "".join(c for c in TEXT if tok.encode(c, "drop"))
    # the first characters that encode to at least the context's tokens: exactly as many for a char model, and
    # for BPE where a cut allows it (a prefix's last merge may jump past)
    exact = next(text[:n] for n in range(1, len(text)) if len(tok.encode(text[:n])) >= block)
    return ["ROMEO:", exact, text[: 3 * block]]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_batched_text_equals_the_text_alone(folder):
    checkpoint = load_checkpoint(folder)
    jobs = [(prompt, settings) for prompt in prompts(checkpoint) for settings in SETTINGS]
    alone = ["".join(generate(checkpoint.model, checkpoint.tokenizer, p, s)) for p, s in jobs]
    together: list[str | None] = [None] * len(jobs)

    def run(i: int) -> None:
        together[i] = "".join(generate(checkpoint.model, checkpoint.tokenizer, *jobs[i], batched=True))

    threads = [Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert together == alone
