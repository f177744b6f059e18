"""The training loop: batches, AdamW/Muon, schedule, evaluation, best-val checkpoints, resume."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from gptlab import GenerationSettings, TokenSplits, generate, get_batch, load_text, save_checkpoint, train_tokenizer
from gptlab.checkpoint import METRICS_FILE
from gptlab.errors import GptlabError
from gptlab.fileio import remove_stale_temporaries, write_text_atomic
from gptlab.models import build_model, count_parameters
from gptlab.prompts import SAMPLE_START, sample_start
from gptlab.tokenizers import load_tokenizer

from . import distributed
from .config import TrainConfig, snapshot_steps, to_dict
from .optim import lr_factor, make_optimizers, set_lr
from .runtime import tune_cpu_process
from .state import STATE_FILE, load_state, run_setup, save_state

EVAL_SEED = 20_240_601  # evaluation batches are the same at every eval, so curves are comparable


def pick_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def batch_seed(seed: int, step: int, micro: int) -> int:
    """Each micro-batch is a pure function of (seed, step, micro-batch index): resume and
    torchrun see exactly the batches a single uninterrupted process would."""
    return (seed * 1_000_003 + step * 4_099 + micro) % (2**63)


@dataclass
class RunState:
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_time_s: float = 0.0  # wall time spent training, over all resumed pieces
    wall_s: float = 0.0  # wall time including evaluation and saving, over all resumed pieces
    tokens: int = 0


def preflight(out: Path, n_params: int) -> None:
    """Fail before training, with a clear message, if the output folder cannot take a checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise GptlabError(f"Cannot write checkpoints to {out}: {exc.strerror or exc}. Choose another out=.") from None
    remove_stale_temporaries(out)  # a killed run may have left half-written temporaries
    needed = n_params * 4 * 4 + (10 << 20)  # weights + two Adam moments + best copy, plus slack
    free = shutil.disk_usage(out).free
    if free < needed:
        raise GptlabError(f"Only {free >> 20} MiB free at {out}; a checkpoint needs about {needed >> 20} MiB.")


def train(config: TrainConfig, command: str = "") -> dict[str, Any]:
    """Run (or resume) a training; returns the metrics dict also written to <out>/metrics.json."""
    device = pick_device(config.device)
    info = distributed.setup(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    cpu_settings = tune_cpu_process() if device.type == "cpu" else {}
    if device.type == "cpu":
        # torchrun starts one process per core share: split the cores between them
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // info.world_size))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if config.grad_accum % info.world_size:
        raise GptlabError(f"grad_accum={config.grad_accum} must be a multiple of the {info.world_size} processes.")
    out = Path(config.out)
    resume_from = None if config.resume.lower() in ("false", "no", "0", "") else (
        out if config.resume.lower() in ("true", "yes", "1") else Path(config.resume))

    text = load_text(config.data)
    tokenizer = load_tokenizer(resume_from) if resume_from else train_tokenizer(
        config.tokenizer, text, config.bpe_vocab_size)
    splits = TokenSplits.from_ids(tokenizer.encode(text, errors="replace"))
    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)
    model_config.validate()
    torch.manual_seed(config.seed)
    model = build_model(model_config, device)
    optimizers = make_optimizers(model, config)
    n_params = count_parameters(model)
    if info.is_main:
        preflight(out, n_params)

    run = RunState()
    setup = run_setup(config, model_config)  # what a later resume must match
    if resume_from:
        extra = load_state(resume_from / STATE_FILE, model, optimizers, setup)
        run = RunState(**extra["run"])
    if resume_from and (resume_from / METRICS_FILE).is_file():
        previous = json.loads((resume_from / METRICS_FILE).read_text(encoding="utf-8"))
        command, resumed = previous.get("command", command), [*previous.get("resumed_with", []), command]
    else:
        resumed = []
    if info.is_main:
        write_text_atomic(out / "train_config.json", json.dumps(to_dict(config), indent=2))

    raw_model = model
    if config.compile:
        model = _try_compile(model, splits.train[: config.model.block_size].view(1, -1).to(device))
    if info.enabled:
        model = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    autocast = _autocast(device, config.dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=config.dtype == "float16")
    micro_per_rank = config.grad_accum // info.world_size
    tokens_per_step = config.batch_size * config.model.block_size * config.grad_accum
    end = config.stop_at if 0 < config.stop_at < config.max_iters else config.max_iters
    snapshots = set(snapshot_steps(config))

    start = sample_start(tokenizer)  # a corpus without newlines gives a tokenizer without "\n"
    if start != SAMPLE_START and info.is_main:
        print(f"note: the corpus has no {SAMPLE_START!r}, so samples start from {start!r} instead.")
    meta = {"command": command, "resumed_with": resumed, "data": config.data, "tokenizer": tokenizer.kind,
            "sample_start": start, "n_params": n_params, "hardware": _hardware(device, info),
            "cpu_settings": cpu_settings, "preset_config": to_dict(config)}

    wall_start, wall_base = time.perf_counter(), run.wall_s

    def evaluate_and_save(step: int) -> None:
        run.wall_s = wall_base + time.perf_counter() - wall_start
        losses = estimate_loss(raw_model, splits, config, device, autocast)
        row = {"step": step, "train_loss": mean_(losses["train"], info), "val_loss": mean_(losses["val"], info),
               "tokens": run.tokens, "time_s": round(run.train_time_s, 2),
               "wall_s": round(run.wall_s, 2), "lr": lr_factor(step, config) * config.lr}
        if not info.is_main:
            return
        row["sample"] = sample_text(raw_model, tokenizer, config)
        run.history = [r for r in run.history if r["step"] < step] + [row]
        samples = out / "samples"
        samples.mkdir(exist_ok=True)
        (samples / f"step_{step:06d}.txt").write_text(row["sample"], encoding="utf-8")
        metrics = {**meta, "history": run.history, "best": run.best, "train_time_s": run.train_time_s}
        if not run.best or row["val_loss"] < run.best["val_loss"]:
            run.best = {k: row[k] for k in ("step", "val_loss", "train_loss", "tokens", "time_s")}
            metrics["best"] = run.best
            metrics["sample"] = row["sample"]
            save_checkpoint(out, raw_model, tokenizer, metrics=metrics, info={"data": config.data})
        else:
            write_text_atomic(out / METRICS_FILE, json.dumps(metrics, indent=2))
        if step in snapshots:
            save_checkpoint(out / "snapshots" / f"step_{step:06d}", raw_model, tokenizer,
                            metrics={**metrics, "best": {**row, "sample": None}}, info={"data": config.data},
                            dtype=torch.bfloat16)
        save_state(out / STATE_FILE, raw_model, optimizers, {"run": vars(run), "setup": setup})

    progress = _progress(config, info, run.step, end)
    model.train()
    started = time.perf_counter()
    last_time, last_step = started, run.step
    try:
        while True:
            step = run.step
            if config.max_time and run.train_time_s + time.perf_counter() - last_time > config.max_time:
                end = step  # out of time: evaluate and save here, then stop
            if step % config.eval_interval == 0 or step in snapshots or step == end:
                run.train_time_s += time.perf_counter() - last_time
                model.eval()
                evaluate_and_save(step)
                model.train()
                last_time = time.perf_counter()
            if step >= end:
                break
            set_lr(optimizers, lr_factor(step, config, run.train_time_s + time.perf_counter() - last_time))
            loss_sum = 0.0
            for m in range(micro_per_rank):
                micro = info.rank * micro_per_rank + m
                generator = torch.Generator().manual_seed(batch_seed(config.seed, step, micro))
                x, y = get_batch(splits.train, config.batch_size, config.model.block_size, generator)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = contextlib.nullcontext() if (not info.enabled or m == micro_per_rank - 1) else model.no_sync()
                with sync, autocast:
                    _, loss = model(x, y)
                    loss = loss / micro_per_rank
                scaler.scale(loss).backward()
                loss_sum += loss.detach()
            if config.grad_clip:
                for opt in optimizers:
                    scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
            for opt in optimizers:
                scaler.step(opt)
            scaler.update()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            run.step += 1
            run.tokens += tokens_per_step
            if progress is not None and (run.step % 10 == 0 or run.step == end):
                now = time.perf_counter()
                rate = tokens_per_step * (run.step - last_step) / max(now - started, 1e-9)
                started, last_step = now, run.step
                progress.set_postfix(loss=f"{float(loss_sum):.3f}", val=f"{run.best.get('val_loss', math.nan):.3f}",
                                     tok_s=f"{rate:,.0f}")
                progress.update(run.step - progress.n)
    except KeyboardInterrupt:
        run.train_time_s += time.perf_counter() - last_time
        if info.is_main:
            save_state(out / STATE_FILE, raw_model, optimizers, {"run": vars(run), "setup": setup})
            print(f"\nInterrupted at step {run.step}; saved. Continue with resume=true out={out}")
        distributed.teardown(info, wait_for_all=False)
        raise
    finally:
        if progress is not None:
            progress.close()

    metrics = finish(out, raw_model, tokenizer, splits, text, config, meta, run, device) if info.is_main else {}
    distributed.teardown(info)
    if info.is_main and config.push_to_hub:
        from .push import push

        push(out, config.push_to_hub)
    return metrics


def finish(out: Path, model, tokenizer, splits, text: str, config: TrainConfig, meta: dict, run: RunState,
           device: torch.device) -> dict[str, Any]:
    """Score the best checkpoint on the whole val split, store it in save_dtype (measuring what
    the rounding costs), and write the final metrics and model card."""
    from gptlab import load_checkpoint

    best = load_checkpoint(out, device=device)  # saved in float32 during the run
    full_fp32 = full_split_loss(best.model, splits.val, device)
    best.model.to(_dtype(config.save_dtype)).float()  # round the weights the way the file will
    full = full_split_loss(best.model, splits.val, device)
    val_chars = len(tokenizer.decode(splits.val.tolist()))
    bits_per_char = full * len(splits.val) / val_chars / math.log(2)  # nats/token -> bits/char
    metrics = {**meta, "history": run.history, "best": {**run.best, "val_loss_full": full},
               "val_loss_full_float32": full_fp32, "save_dtype": config.save_dtype,
               "bits_per_char": bits_per_char, "train_time_s": run.train_time_s, "tokens": run.tokens,
               "sample": next((r["sample"] for r in run.history if r["step"] == run.best.get("step")), "")}
    save_checkpoint(out, best.model, tokenizer, metrics=metrics, info={"data": config.data},
                    dtype=_dtype(config.save_dtype))
    print(f"best val loss {run.best['val_loss']:.4f} at step {run.best['step']} (whole val split {full:.4f} "
          f"in {config.save_dtype}, {full_fp32:.4f} in float32; {bits_per_char:.3f} bits/char); saved to {out}")
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


def mean_(value: float, info) -> float:
    return distributed.mean_across(value, info)


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _autocast(device: torch.device, dtype: str):
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_dtype(dtype))


def _try_compile(model, example: torch.Tensor):
    """torch.compile, tried on one batch (compilation is lazy); the plain model where it fails."""
    try:
        compiled = torch.compile(model)
        compiled(example, example)
        return compiled
    except Exception as exc:  # a missing compiler or backend surfaces as many exception types
        print(f"warning: torch.compile unavailable here ({type(exc).__name__}: {str(exc)[:80]}); training uncompiled.")
        return model


def _hardware(device: torch.device, info) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{info.world_size} x {name}" if info.enabled else name


def _progress(config: TrainConfig, info, start: int, end: int):
    if not (config.progress and info.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=end, initial=start, unit="step", dynamic_ncols=True)
