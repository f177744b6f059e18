"""What a training run holds between its phases: RunState (saved and resumed) and Run (this process's run)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlab import TokenSplits
from gptlab.tokenizers import Tokenizer

from .config import TrainConfig
from .distributed import Distributed

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class RunState:
    """What a resumed run continues from; saved as JSON inside the training state file."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_time_s: float = 0.0  # wall time spent training, over all resumed pieces
    wall_s: float = 0.0  # wall time including evaluation and saving, over all resumed pieces
    tokens: int = 0


@dataclass
class Run:
    """One process's training run: what prepare builds and the later phases read and update."""

    config: TrainConfig  # its model.vocab_size is the tokenizer's
    out: Path
    info: Distributed  # this process's rank among torchrun's processes (rank 0 of 1 without torchrun)
    device: torch.device
    tokenizer: Tokenizer
    splits: TokenSplits
    raw_model: nn.Module  # the model itself: evaluated, sampled and saved
    model: nn.Module  # what a step calls: raw_model, compiled and/or wrapped by DistributedDataParallel
    optimizers: list[torch.optim.Optimizer]
    scaler: torch.amp.GradScaler  # scales float16 losses so small gradients survive; a no-op otherwise
    autocast: contextlib.AbstractContextManager
    setup: dict[str, Any]  # what a later resume must match (state.run_setup)
    data: dict[str, Any]  # the text trained on (state.data_identity), which a later resume must train on too
    meta: dict[str, Any]  # what every metrics.json carries: command, data, hardware, config, ...
    state: RunState
    end: int  # the step to stop at: stop_at, max_iters, or where max_time ran out
    snapshots: set[int]  # steps at which a bfloat16 copy goes to <out>/snapshots/
    progress: Any = None  # a tqdm bar on rank 0 with progress=true
    clock: float = field(default_factory=time.perf_counter)  # start of the training stretch under way
    wall_start: float = field(default_factory=time.perf_counter)  # start of this process's piece of the run
    wall_before: float = 0.0  # wall time of the pieces before a resume
    rate_clock: float = field(default_factory=time.perf_counter)  # the progress bar's tokens/s window
    rate_step: int = 0

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step over all processes: batch_size * block_size * grad_accum."""
        return self.config.batch_size * self.config.model.block_size * self.config.grad_accum

    def training_time(self) -> float:
        """Seconds spent training so far over all resumed pieces, the stretch under way included."""
        return self.state.train_time_s + time.perf_counter() - self.clock

    def evaluates_at(self, step: int) -> bool:
        """Evaluate every eval_interval steps, at each snapshot step, and at the last step."""
        return step % self.config.eval_interval == 0 or step in self.snapshots or step == self.end

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the training clock and put the model in eval mode (dropout off); both resume on exit."""
        self.state.train_time_s = self.training_time()
        self.model.eval()
        try:
            yield
        finally:
            self.model.train()
            self.clock = time.perf_counter()
