"""Live training for a classroom: a tiny GPT trained for a bounded time, reporting as it learns.

No web framework here: ``train_live`` is a generator of progress reports, and ``LiveSlots``
enforces "one run per visitor, at most N at once" for whatever server drives it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import Checkpoint
from ..data import TokenSplits, get_batch
from ..errors import GptlabError, InputError
from ..generate import generate
from ..models import ModelConfig, build_model
from ..prompts import sample_start
from ..sampling import GenerationSettings
from ..tokenizers import CharTokenizer

MIN_CHARS = 1_000  # below this the 10% validation split cannot hold one context window
MAX_CHARS = 200_000  # a pasted text larger than Tiny Shakespeare's first fifth is not needed to see learning
MAX_SECONDS = 60.0  # a live run never trains longer than this, whatever a caller asks


class BusyError(GptlabError):
    """A live training cannot start now (this visitor already runs one, or the server is full)."""


@dataclass(frozen=True)
class LiveConfig:
    """A model small enough to learn visibly in a minute on one CPU thread."""

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64
    batch_size: int = 16
    lr: float = 3e-3
    max_seconds: float = 30.0  # clamped to MAX_SECONDS
    report_every_s: float = 3.0  # a fresh loss point, sample and heatmap this often
    eval_batches: int = 4
    sample_tokens: int = 160
    seed: int = 1337
    threads: int = 1  # torch threads while training (per calling thread, restored after)


@dataclass
class LiveReport:
    """Where a live run stands: loss history, latest sample, the model itself (still training until done)."""

    step: int
    elapsed_s: float
    history: list[dict[str, float]]  # {"step", "time_s", "train_loss", "val_loss"}
    sample: str
    model: torch.nn.Module
    tokenizer: CharTokenizer
    probe: str  # a short text from the corpus, for a heatmap that every report draws the same way
    done: bool = False
    reason: str = ""  # why it ended: "time limit", "stopped", "" while running
    config: LiveConfig = field(default_factory=LiveConfig)

    def checkpoint(self) -> Checkpoint:
        """The trained model as a Checkpoint, so other views can use it like a shipped one."""
        best = self.history[-1] if self.history else {}
        metrics = {"best": {"step": self.step, "val_loss": best.get("val_loss")}, "history": self.history}
        return Checkpoint(model=self.model, tokenizer=self.tokenizer, folder=Path("live"), metrics=metrics)


def check_text(text: str | None) -> str:
    """The text to train on, or InputError saying how to fix its size."""
    if not text or len(text) < MIN_CHARS:
        got = len(text or "")
        raise InputError(f"Paste at least {MIN_CHARS:,} characters to train on (got {got:,}): "
                         "a few paragraphs are enough.")
    if len(text) > MAX_CHARS:
        raise InputError(f"The text has {len(text):,} characters; the limit is {MAX_CHARS:,}. Paste less.")
    return text


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's CPU thread count for this thread only, restored on exit (a server reuses its threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_live(text: str, config: LiveConfig = LiveConfig(), stop: threading.Event | None = None,
               clock=time.monotonic) -> Iterator[LiveReport]:
    """Train a tiny GPT on ``text`` and yield a report every ``report_every_s`` seconds and at the end.

    Stops at ``max_seconds`` (never above MAX_SECONDS) or when ``stop`` is set. Batches and the
    initial weights follow ``config.seed``; the number of steps depends on the machine's speed.
    """
    text = check_text(text)
    limit = max(0.0, min(float(config.max_seconds), MAX_SECONDS))
    with _threads(config.threads):
        torch.manual_seed(config.seed)
        tokenizer = CharTokenizer.train(text)
        splits = TokenSplits.from_ids(tokenizer.encode(text))
        block = min(config.block_size, len(splits.val) - 1)
        model_config = ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, block_size=block,
                                   n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd)
        model = build_model(model_config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
        generator = torch.Generator().manual_seed(config.seed)
    probe = _probe(text, block)
    sample_from = sample_start(tokenizer)  # a pasted paragraph may hold no newline
    history: list[dict[str, float]] = []
    step, start = 0, clock()

    def report(done: bool, reason: str = "") -> LiveReport:
        with _threads(config.threads):
            model.eval()
            history.append({"step": step, "time_s": round(clock() - start, 2),
                            **_losses(model, splits, block, config)})
            settings = GenerationSettings(max_new_tokens=config.sample_tokens, temperature=0.8, seed=config.seed)
            sample = "".join(generate(model, tokenizer, sample_from, settings))
            model.train()
        return LiveReport(step, clock() - start, list(history), sample, model, tokenizer, probe, done, reason, config)

    yield report(False)  # the untrained model: loss near ln(vocab), gibberish, even attention
    next_report = start + config.report_every_s
    reason = "time limit"
    while True:
        if stop is not None and stop.is_set():
            reason = "stopped"
            break
        if clock() - start >= limit:
            break
        with _threads(config.threads):
            model.train()
            for _ in range(10):  # a few steps between clock checks: a step takes milliseconds
                x, y = get_batch(splits.train, config.batch_size, block, generator)
                _, loss = model(x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
        if clock() >= next_report and clock() - start < limit:
            next_report = clock() + config.report_every_s
            yield report(False)
    model.eval()
    yield report(True, reason)


@torch.no_grad()
def _losses(model, splits: TokenSplits, block: int, config: LiveConfig) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)  # the same batches every time: a smooth curve
    out = {}
    for name in ("train", "val"):
        total = 0.0
        for _ in range(config.eval_batches):
            x, y = get_batch(splits.split(name), config.batch_size, block, generator)
            total += float(model(x, y)[1])
        out[f"{name}_loss"] = total / config.eval_batches
    return out


def _probe(text: str, block: int) -> str:
    """The first speaker turn-sized piece of the text (up to ~48 characters), for the heatmap."""
    start = text.find("\n", 0, 2000) + 1  # begin at a line start when one is near
    piece = text[start:start + min(48, block)]
    return piece if len(piece) >= 8 else text[: min(48, block)]


class LiveSlots:
    """At most ``cap`` live runs at once, one per visitor; ``stop(visitor)`` ends that visitor's run."""

    def __init__(self, cap: int = 2) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._runs: dict[str, threading.Event] = {}

    @contextmanager
    def claim(self, visitor: str) -> Iterator[threading.Event]:
        """A stop event for the visitor's run, held until the block ends; BusyError if none is free."""
        with self._lock:
            if visitor in self._runs:
                raise BusyError("You already have a training running: wait for it or press Stop first.")
            if len(self._runs) >= self.cap:
                raise BusyError(f"The server is busy: {len(self._runs)} trainings are running (the limit is "
                                f"{self.cap}). Try again in a minute.")
            event = self._runs[visitor] = threading.Event()
        try:
            yield event
        finally:
            with self._lock:
                self._runs.pop(visitor, None)

    def stop(self, visitor: str) -> bool:
        """Ask the visitor's run to end at its next check; False if it has none."""
        with self._lock:
            event = self._runs.get(visitor)
        if event is None:
            return False
        event.set()
        return True

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._runs)


def nats_to_text(loss: float) -> str:
    """A loss as a teacher would say it: '2.31 (like choosing among ~10 characters)'."""
    return f"{loss:.2f} (like choosing among ~{math.exp(loss):.0f} characters)"
