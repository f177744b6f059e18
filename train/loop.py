"""The training loop, read top to bottom like nanoGPT's train.py: prepare, then step after step
with an evaluation every eval_interval steps, then finish.

Each phase is a function of one Run (train/run.py): prepare builds it, train_step and
evaluate_and_save (train/evaluate.py) update it, finish scores and stores the best checkpoint.
A resume is exact: every batch is a pure function of (seed, step, micro-batch), and the state
file holds the weights, the optimizer moments and the RNG. Under torchrun the processes share
each step's micro-batches and average their gradients (DistributedDataParallel).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gptlab import TokenSplits, get_batch, load_text, train_tokenizer
from gptlab.checkpoint import CARD_FILE, CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE
from gptlab.errors import CheckpointError, DataError, GptlabError
from gptlab.fileio import remove_stale_temporaries, write_atomic, write_text_atomic
from gptlab.models import build_model, count_parameters
from gptlab.prompts import SAMPLE_START, sample_start
from gptlab.tokenizers import TOKENIZER_FILE, Tokenizer, load_tokenizer

from . import distributed
from .config import TrainConfig, snapshot_steps, to_dict
from .distributed import Distributed
from .evaluate import evaluate_and_save, finish, save_resumable
from .optim import lr_factor, make_optimizers, set_lr
from .run import DTYPES, Run, RunState
from .runtime import tune_cpu_process
from .state import STATE_FILE, data_identity, load_state, resumed_ids, run_setup


def train(config: TrainConfig, command: str = "") -> dict[str, Any]:
    """Run (or resume) a training; returns the metrics also written to <out>/metrics.json ({} off rank 0).

    Raises GptlabError for what the user can fix (data, output folder, a resume that does not
    match) before the first step. Ctrl-C saves a resumable state, then raises KeyboardInterrupt.
    """
    try:
        return finish(loop(prepare(config, command)))
    finally:
        # prepare() flushes denormal floats to zero on CPU (train/runtime.py); hand the process back
        # with IEEE subnormals, so code that runs after train() in the same process (a notebook, tests) sees them
        torch.set_flush_denormal(False)


def loop(run: Run) -> Run:
    """Step until the end (steps or clock), evaluating and saving on the way; Ctrl-C saves and re-raises."""
    try:
        while True:
            step = run.state.step
            if run.config.max_time and run.training_time() > run.config.max_time:
                run.end = step  # out of time: evaluate and save here, then stop
            if run.evaluates_at(step):
                with run.paused():  # evaluating and saving is not training time
                    evaluate_and_save(run, step)
            if step >= run.end:
                break
            loss = train_step(run, step)
            show_progress(run, loss)
    except KeyboardInterrupt:
        save_interrupted(run)
        raise
    finally:
        if run.progress is not None:
            run.progress.close()
    return run


def train_step(run: Run, step: int) -> torch.Tensor:
    """One optimizer step; returns the step's loss as a tensor (reading it would wait for the device)."""
    config, info = run.config, run.info
    # the learning rate for this step: linear warmup, then decay over the steps (or the clock)
    set_lr(run.optimizers, lr_factor(step, config, run.training_time()))
    micro_steps = config.grad_accum // info.world_size  # this process's share of the micro-batches
    loss_sum = 0.0
    # forward backward update, accumulating the gradients of several micro-batches into one step
    for m in range(micro_steps):
        micro = info.rank * micro_steps + m  # the micro-batch's index in the whole step, over all processes
        generator = torch.Generator().manual_seed(batch_seed(config.seed, step, micro))
        random_vocab = config.model.vocab_size if config.repeat_random else 0  # 0: repeat passages of the text
        x, y = get_batch(run.splits.train, config.batch_size, config.model.block_size, generator, config.repeat_share,
                         random_vocab)
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        # under torchrun, only the last micro-batch averages the gradients between processes
        sync = contextlib.nullcontext() if not info.enabled or m == micro_steps - 1 else run.model.no_sync()
        with sync, run.autocast:
            _, loss = run.model(x, y)
            loss = loss / micro_steps  # each micro-batch adds its share of the step's mean loss
        run.scaler.scale(loss).backward()  # float16: a scaled loss keeps small gradients from vanishing
        loss_sum += loss.detach()
    # clip the gradient (unscaled first, so the limit applies to the true norm)
    if config.grad_clip:
        for opt in run.optimizers:
            run.scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), config.grad_clip)
    # step the optimizers, then flush the gradients: their memory is free until the next backward
    for opt in run.optimizers:
        run.scaler.step(opt)
    run.scaler.update()
    for opt in run.optimizers:
        opt.zero_grad(set_to_none=True)
    run.state.step += 1
    run.state.tokens += run.tokens_per_step
    return loss_sum


def prepare(config: TrainConfig, command: str) -> Run:
    """Everything before the first step: device and processes, data and tokenizer, model and optimizers,
    a resumed run's state, and what every metrics.json of the run carries."""
    device, info, cpu_settings = place(config)
    out, resume_from = Path(config.out), resume_folder(config)
    text = load_text(config.data)
    tokenizer = (load_tokenizer(resume_from) if resume_from  # a resumed run keeps its vocabulary
                 else train_tokenizer(config.tokenizer, text, config.bpe_vocab_size))
    config = replace(config, model=replace(config.model, vocab_size=tokenizer.vocab_size))
    config.model.validate()
    torch.manual_seed(config.seed)  # every process starts from the same weights
    model = build_model(config.model, device)
    optimizers = make_optimizers(model, config)
    n_params = count_parameters(model)
    setup, data = run_setup(config, config.model), data_identity(config.data, text)  # what a resume must match
    state = resumed_state(config, resume_from, model, optimizers, setup) if resume_from else RunState()
    # a resumed run keeps training on its own text: another text, or a character its vocabulary lacks, is refused
    ids = resumed_ids(resume_from / STATE_FILE, tokenizer, text, data) if resume_from else tokenizer.encode(text)
    splits = TokenSplits.from_ids(ids)
    check_long_enough(splits, config)  # get_batch's own refusal, before anything is written
    if info.is_main:  # out is written to only now: a refused resume leaves no folder behind
        preflight(out, n_params)
        if resume_from:
            carry_best(resume_from, out)
    first_command, resumed = command_history(resume_from, command)
    if info.is_main:
        write_text_atomic(out / "train_config.json", json.dumps(to_dict(config), indent=2))
    example = splits.train[: config.model.block_size].view(1, -1).to(device)  # for torch.compile's first call
    wrapped = wrap(model, config, example, device, info)
    meta = {"command": first_command, "resumed_with": resumed, "data": config.data, "tokenizer": tokenizer.kind,
            "sample_start": checked_sample_start(tokenizer, info), "n_params": n_params,
            "hardware": _hardware(device, info), "cpu_settings": cpu_settings, "preset_config": to_dict(config)}
    end, _ = end_step(config)
    wrapped.train()
    return Run(config=config, out=out, info=info, device=device, tokenizer=tokenizer, splits=splits,
               raw_model=model, model=wrapped, optimizers=optimizers, autocast=_autocast(device, config.dtype),
               scaler=torch.amp.GradScaler(device.type, enabled=config.dtype == "float16"), setup=setup, data=data,
               meta=meta, state=state, end=end, snapshots=set(snapshot_steps(config)),
               progress=_progress(config, info, state.step, end), wall_before=state.wall_s, rate_step=state.step)


def check_long_enough(splits: TokenSplits, config: TrainConfig) -> None:
    """DataError unless both splits hold a window of block_size + 1 tokens (a batch row and its targets)."""
    need = config.model.block_size + 1
    for name in ("train", "val"):
        have = len(splits.split(name))
        if have < need:
            raise DataError(f"{config.data}: its {name} split has {have} tokens, fewer than model.block_size + 1 = "
                            f"{need}; use a longer text or a smaller model.block_size.")


def place(config: TrainConfig) -> tuple[torch.device, Distributed, dict[str, bool]]:
    """The device, this process's place among torchrun's processes, and the CPU settings that took effect."""
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
    return device, info, cpu_settings


def end_step(config: TrainConfig) -> tuple[int, str]:
    """The step this run stops at and the key that sets it: stop_at when it ends the run early, else max_iters."""
    return (config.stop_at, "stop_at") if 0 < config.stop_at < config.max_iters else (config.max_iters, "max_iters")


def resumed_state(config: TrainConfig, resume_from: Path, model: nn.Module, optimizers: list[torch.optim.Optimizer],
                  setup: dict[str, Any]) -> RunState:
    """Load the saved state into ``model`` and ``optimizers``; return its step, history and clocks.

    Raises CheckpointError (load_state's, or) when the state is already past this run's end, or at
    it while resuming into another folder: there is nothing left to train.
    """
    state = RunState(**load_state(resume_from / STATE_FILE, model, optimizers, setup)["run"])
    end, key = end_step(config)
    # at the end in its own folder is allowed: it finishes a run killed between its last save and its scoring
    if state.step > end or (state.step == end and resume_from.resolve() != Path(config.out).resolve()):
        raise CheckpointError(f"{resume_from / STATE_FILE}: the saved state is already at step {state.step} of "
                              f"{key}={end}, so there is nothing to train; raise {key} to train on (the model "
                              f"trained so far is in {resume_from}).")
    return state


def carry_best(resume_from: Path, out: Path) -> None:
    """Resuming into another folder starts it with the saved run's best checkpoint, the run's best until an
    evaluation beats it (the final scoring reads the best from out)."""
    if resume_from.resolve() == out.resolve():
        return
    for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, METRICS_FILE, CARD_FILE):
        if (resume_from / name).is_file():
            write_atomic(out / name, lambda path, name=name: shutil.copyfile(resume_from / name, path))


def resume_folder(config: TrainConfig) -> Path | None:
    """The folder to resume from: None (resume=false), out (resume=true) or the path given."""
    flag = config.resume.lower()
    if flag in ("false", "no", "0", ""):
        return None
    return Path(config.out) if flag in ("true", "yes", "1") else Path(config.resume)


def command_history(resume_from: Path | None, command: str) -> tuple[str, list[str]]:
    """(the command that started the run, the commands that resumed it), read from a resumed run's metrics."""
    if not (resume_from and (resume_from / METRICS_FILE).is_file()):
        return command, []
    previous = json.loads((resume_from / METRICS_FILE).read_text(encoding="utf-8"))
    return previous.get("command", command), [*previous.get("resumed_with", []), command]


def checked_sample_start(tokenizer: Tokenizer, info: Distributed) -> str:
    """Where samples start: a newline, or what the tokenizer has instead (said once, on rank 0)."""
    start = sample_start(tokenizer)  # a corpus without newlines gives a tokenizer without "\n"
    if start != SAMPLE_START and info.is_main:
        print(f"note: the corpus has no {SAMPLE_START!r}, so samples start from {start!r} instead.")
    return start


def wrap(model: nn.Module, config: TrainConfig, example: torch.Tensor, device: torch.device,
         info: Distributed) -> nn.Module:
    """What a step calls: the model, compiled where asked and possible, inside DDP under torchrun."""
    if config.compile:
        model = _try_compile(model, example)
    if info.enabled:
        model = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    return model


def show_progress(run: Run, loss: torch.Tensor) -> None:
    """Every tenth step and the last: the loss, the best val loss and tokens/s on the progress bar."""
    step = run.state.step
    if run.progress is None or not (step % 10 == 0 or step == run.end):
        return
    now = time.perf_counter()
    rate = run.tokens_per_step * (step - run.rate_step) / max(now - run.rate_clock, 1e-9)
    run.rate_clock, run.rate_step = now, step
    run.progress.set_postfix(loss=f"{float(loss):.3f}", val=f"{run.state.best.get('val_loss', math.nan):.3f}",
                             tok_s=f"{rate:,.0f}")
    run.progress.update(step - run.progress.n)


def save_interrupted(run: Run) -> None:
    """Ctrl-C: save a resumable state on rank 0, then leave the process group without waiting for the others."""
    run.state.train_time_s = run.training_time()
    if run.info.is_main:
        save_resumable(run)
        print(f"\nInterrupted at step {run.state.step}; saved. Continue with resume=true out={run.out}")
    distributed.teardown(run.info, wait_for_all=False)


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


def _autocast(device: torch.device, dtype: str):
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


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
