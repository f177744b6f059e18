"""Presets: one per rung of the ladder, and GPT sizes from laptop-minutes to GPU-classic.

The small rungs use the "Let's build GPT" tutorial's sizes (context 8, width 32), so their
val losses can be compared with the numbers learners have seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from gptlab.errors import ConfigError
from gptlab.models import ModelConfig

from .config import TrainConfig


def _tutorial(kind: str, **model: object) -> TrainConfig:
    shape = dict(block_size=8, n_layer=1, n_head=1, n_embd=32) | model
    return TrainConfig(model=ModelConfig(kind=kind, **shape), batch_size=32, max_iters=5000, lr=1e-3,
                       warmup_iters=0, decay="constant", weight_decay=0.0, eval_interval=500, eval_iters=200)


PRESETS: dict[str, tuple[str, Callable[[], TrainConfig]]] = {
    "bigram": ("bigram table, tutorial settings (~1 min on CPU)",
               lambda: replace(_tutorial("bigram"), lr=1e-2, max_iters=3000, eval_interval=300)),
    "single_head": ("one attention head, width 32, context 8",
                    lambda: replace(_tutorial("single_head"), lr=1e-2, decay="cosine")),
    "multi_head": ("4 heads of width 8, context 8, no MLP",
                   lambda: replace(_tutorial("multi_head", n_head=4), lr=1e-2, decay="cosine")),
    "blocks": ("3 transformer blocks, 4 heads, width 32, context 8",
               lambda: replace(_tutorial("blocks", n_layer=3, n_head=4), lr=3e-3, decay="cosine", warmup_iters=100)),
    # gpt-mini's shape and settings won a sweep of 150-second runs on 2 cores (docs/TRAINING.md):
    # context 128 over 64 (-0.04), ReLU^2 + rotary positions over GELU + learned (-0.013)
    "gpt-mini": ("a 0.8M GPT that learns in minutes on a laptop CPU (Muon + AdamW)",
                 lambda: TrainConfig(
                     model=ModelConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, mlp="relu2", pos="rope"),
                     optimizer="muon", batch_size=16, max_iters=2000, lr=3e-3, warmup_iters=50,
                     eval_interval=200)),
    "gpt-small": ("a 1.8M GPT for a 15-minute CPU run: gpt-mini's recipe, 1.5x wider",
                  lambda: TrainConfig(
                      model=ModelConfig(block_size=128, n_layer=4, n_head=4, n_embd=192, mlp="relu2", pos="rope"),
                      optimizer="muon", batch_size=16, max_iters=6000, max_time=900, lr=3e-3, warmup_iters=100,
                      eval_interval=250)),
    # gpt takes gpt-mini's recipe (ReLU^2, rotary positions, context 128) to 80 minutes: evaluations every
    # 500 steps keep the whole run under 90 minutes of wall time on 2 cores (docs/TRAINING.md)
    "gpt": ("the app's default GPT (2.7M): Muon + AdamW, ReLU^2, rotary positions, 80 minutes on 2 CPU cores",
            lambda: TrainConfig(
                model=ModelConfig(block_size=128, n_layer=6, n_head=6, n_embd=192, dropout=0.1, mlp="relu2",
                                  pos="rope"),
                optimizer="muon", lr=2e-3, muon_lr=0.02, batch_size=32, max_iters=30000, max_time=4800,
                warmup_iters=100, eval_interval=500, eval_iters=50, save_dtype="bfloat16",
                snapshots="0,50,150,400,1000,2500,5000")),
    "gpt-bpe": ("the default GPT's shape on byte-level BPE tokens (vocabulary 512), 25 minutes on 2 CPU cores",
                lambda: TrainConfig(
                    model=ModelConfig(block_size=128, n_layer=6, n_head=6, n_embd=192, dropout=0.1),
                    tokenizer="bpe", bpe_vocab_size=512, optimizer="muon", lr=2e-3, muon_lr=0.02,
                    batch_size=16, max_iters=30000, max_time=1500, warmup_iters=100, eval_interval=250,
                    eval_iters=50, save_dtype="bfloat16")),
    # induction: forms an induction head in minutes on 2 CPU cores (docs/TRAINING.md, "Induction head"): half of
    # each batch is random strings repeated to the end of the row, which only copying predicts; learned
    # positions, AdamW at 1e-3 without weight decay and 64 rows a step get it past the plateau quickly
    "induction": ("2 layers, context 64, half the rows a random string repeated (repeat_share=0.5 "
                  "repeat_random=true): forms an induction head",
                  lambda: TrainConfig(
                      model=ModelConfig(block_size=64, n_layer=2, n_head=4, n_embd=64, mlp_ratio=1),
                      lr=1e-3, weight_decay=0.0, batch_size=64, repeat_share=0.5, repeat_random=True,
                      max_iters=2000, max_time=600, warmup_iters=20, eval_interval=100, eval_iters=10,
                      snapshots=",".join(str(s) for s in range(0, 2001, 100)))),
    "gpt-classic": ("the classic 6-layer/6-head/384-wide/256-context GPT (10.7M) for a GPU",
                    lambda: TrainConfig(
                        model=ModelConfig(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
                        batch_size=64, max_iters=5000, lr=1e-3, warmup_iters=100, eval_interval=500,
                        eval_iters=200, beta2=0.99)),
}


def make_preset(name: str) -> TrainConfig:
    """A fresh TrainConfig for a preset name."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'. Presets: {', '.join(PRESETS)}.")
    config = PRESETS[name][1]()
    # a learner's run goes to runs/ (git-ignored), never over the shipped models the app serves;
    # out=checkpoints/<name> replaces a shipped one on purpose
    return replace(config, out=config.out or f"runs/{name}")
