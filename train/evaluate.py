"""Evaluation and saving: loss estimates, samples, best-val checkpoints, snapshots, the final score."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import torch

from gptlab import GenerationSettings, TokenSplits, generate, get_batch, load_checkpoint, save_checkpoint
from gptlab.checkpoint import METRICS_FILE
from gptlab.data import EVAL_SEED
from gptlab.fileio import write_text_atomic
from gptlab.prompts import sample_start

from . import distributed
from .config import TrainConfig
from .optim import lr_factor
from .push import push
from .run import DTYPES, Run
from .state import STATE_FILE, save_state


def evaluate_and_save(run: Run, step: int) -> None:
    """Estimate both losses (every rank takes part), then on rank 0 write the sample and the metrics,
    the checkpoint when val improved, a snapshot where one is asked, and the resumable state."""
    state, config = run.state, run.config
    state.wall_s = run.wall_before + time.perf_counter() - run.wall_start
    losses = estimate_loss(run.raw_model, run.splits, config, run.device, run.autocast)
    row = {"step": step, "train_loss": distributed.mean_across(losses["train"], run.info),
           "val_loss": distributed.mean_across(losses["val"], run.info), "tokens": state.tokens,
           "time_s": round(state.train_time_s, 2), "wall_s": round(state.wall_s, 2),
           "lr": lr_factor(step, config, state.train_time_s) * config.lr}  # the rate this step trained at
    if not run.info.is_main:
        return
    row["sample"] = sample_text(run.raw_model, run.tokenizer, config)
    state.history = [r for r in state.history if r["step"] < step] + [row]
    samples = run.out / "samples"
    samples.mkdir(exist_ok=True)
    (samples / f"step_{step:06d}.txt").write_text(row["sample"], encoding="utf-8")
    metrics = {**run.meta, "history": state.history, "best": state.best, "train_time_s": state.train_time_s}
    if not state.best or row["val_loss"] < state.best["val_loss"]:
        state.best = {k: row[k] for k in ("step", "val_loss", "train_loss", "tokens", "time_s")}
        metrics.update(best=state.best, sample=row["sample"])
        save_checkpoint(run.out, run.raw_model, run.tokenizer, metrics=metrics, info={"data": config.data})
    else:
        write_text_atomic(run.out / METRICS_FILE, json.dumps(metrics, indent=2))
    if step in run.snapshots:
        save_checkpoint(run.out / "snapshots" / f"step_{step:06d}", run.raw_model, run.tokenizer,
                        metrics={**metrics, "best": {**row, "sample": None}}, info={"data": config.data},
                        dtype=torch.bfloat16)
    save_resumable(run)


def save_resumable(run: Run) -> None:
    """Write <out>/training_state.safetensors: weights, optimizer moments, RNG, RunState, setup and data."""
    save_state(run.out / STATE_FILE, run.raw_model, run.optimizers,
               {"run": vars(run.state), "setup": run.setup, "data": run.data})


def finish(run: Run) -> dict[str, Any]:
    """Once every rank is done: score and store the best checkpoint, push it where asked; its metrics
    on rank 0, {} on the others."""
    metrics = score_best(run) if run.info.is_main else {}
    distributed.teardown(run.info)
    if run.info.is_main and run.config.push_to_hub:
        push(run.out, run.config.push_to_hub)
    return metrics


def score_best(run: Run) -> dict[str, Any]:
    """Score the best checkpoint on the whole val split, store it in save_dtype (measuring what
    the rounding costs), and write the final metrics and model card."""
    config, state, val = run.config, run.state, run.splits.val
    best = load_checkpoint(run.out, device=run.device)  # saved in float32 during the run
    full_fp32 = full_split_loss(best.model, val, run.device)
    best.model.to(DTYPES[config.save_dtype]).float()  # round the weights the way the file will
    full = full_split_loss(best.model, val, run.device)
    bits_per_char = full * len(val) / len(run.tokenizer.decode(val.tolist())) / math.log(2)  # nats/token -> bits/char
    metrics = {**run.meta, "history": state.history, "best": {**state.best, "val_loss_full": full},
               "val_loss_full_float32": full_fp32, "save_dtype": config.save_dtype,
               "bits_per_char": bits_per_char, "train_time_s": state.train_time_s, "tokens": state.tokens,
               "sample": next((r["sample"] for r in state.history if r["step"] == state.best.get("step")), "")}
    save_checkpoint(run.out, best.model, run.tokenizer, metrics=metrics, info={"data": config.data},
                    dtype=DTYPES[config.save_dtype])
    rounded = "" if config.save_dtype == "float32" else f" in {config.save_dtype}, {full_fp32:.4f} before rounding"
    print(f"best val loss {state.best['val_loss']:.4f} at step {state.best['step']} (whole val split {full:.4f}"
          f"{rounded}; {bits_per_char:.3f} bits/char); saved to {run.out}")
    return metrics


@torch.no_grad()
def estimate_loss(model, splits: TokenSplits, config: TrainConfig, device, autocast) -> dict[str, float]:
    """Mean loss on eval_iters fixed random batches of each split."""
    out = {}
    for name in ("train", "val"):
        generator = torch.Generator().manual_seed(EVAL_SEED)
        total = 0.0
        for _ in range(config.eval_iters):
            x, y = get_batch(splits.split(name), config.batch_size, config.model.block_size, generator)
            with autocast:
                _, loss = model(x.to(device), y.to(device))
            total += float(loss)
        out[name] = total / config.eval_iters
    return out


@torch.no_grad()
def full_split_loss(model, data: torch.Tensor, device, batch_size: int = 32) -> float:
    """Mean next-token loss over a whole split, in consecutive windows of block_size."""
    block = model.config.block_size
    n = (len(data) - 1) // block
    x = data[: n * block].view(n, block)
    y = data[1 : n * block + 1].view(n, block)
    total = 0.0
    for i in range(0, n, batch_size):
        _, loss = model(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
        total += float(loss) * len(x[i : i + batch_size])
    return total / n


def sample_text(model, tokenizer, config: TrainConfig) -> str:
    """A seeded sample from a start the tokenizer knows (a newline unless the corpus has none)."""
    settings = GenerationSettings(max_new_tokens=config.sample_tokens, temperature=0.8, seed=config.seed)
    return "".join(generate(model, tokenizer, sample_start(tokenizer), settings))
