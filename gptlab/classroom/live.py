"""Live training for a classroom: a tiny GPT trained for a bounded time, reporting as it learns.

No web framework here: ``train_live`` is a generator of progress reports (``live_slots.LiveSlots``
enforces "one run per visitor, at most N at once" for whatever server drives it). The recipe is the
presets': Muon for the matrices inside the blocks, rotary positions, ReLU², and learning rates that fall
with the clock to the end of the chosen time.
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
from ..data import TINY_SHAKESPEARE, TokenSplits, get_batch, load_text
from ..errors import GptlabError, InputError, SettingsError, shown_value
from ..generate import generate
from ..generate.threads import set_own_threads
from ..models import ModelConfig, build_model
from ..optim import Muon
from ..prompts import sample_start
from ..sampling import GenerationSettings
from ..tokenizers import CharTokenizer

MIN_CHARS = 1_000  # below this the 10% validation split cannot hold one context window
MAX_CHARS = 200_000  # a pasted text larger than Tiny Shakespeare's first fifth is not needed to see learning
MAX_SECONDS = 60.0  # a live run never trains longer than this, whatever a caller asks


@dataclass(frozen=True)
class LiveConfig:
    """A model small enough to learn visibly in a minute on one CPU thread, and the recipe that trains it."""

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64
    mlp: str = "relu2"  # ReLU squared: the gpt-mini preset's sweep found it beats GELU at this size
    pos: str = "rope"  # rotary positions: nothing to learn for them, so early steps go to the text
    dropout: float = 0.0  # 0.1 cost a third of the steps and 0.23 in val loss after 30 s
    # 24 rows: at 60 s a mean 1.613 against 1.622 for 16 over four seeds, at 30 s even (docs/TRAINING.md,
    # "Watch it learn"); 32 was worse at both
    batch_size: int = 24
    lr: float = 3e-3  # peak AdamW learning rate (LM head, norms, biases)
    # the token embedding's own peak AdamW rate: 1e-2 with Muon momentum 0.9 took 1,200 steps from 1.707 to
    # 1.675 (mean of 2 seeds; docs/TRAINING.md, "Watch it learn")
    embedding_lr: float = 1e-2
    muon_lr: float = 0.02  # peak Muon learning rate (the 2-D weights inside the blocks)
    muon_momentum: float = 0.9  # 0.95 (Muon's usual) averages over too many of a 30 s run's ~1,200 steps
    warmup_steps: int = 20
    final_lr_ratio: float = 0.0  # the learning rate falls linearly with the clock to this share of the peak
    # decoupled, on 2-D weights only (matrices, embeddings): 0.2 took a 60 s run from 1.66 to 1.61, as
    # a minute reads the 180k training characters about 11 times (docs/TRAINING.md, "Watch it learn")
    weight_decay: float = 0.2
    max_seconds: float = 30.0  # clamped to MAX_SECONDS
    report_every_s: float = 3.0  # a fresh loss point, sample and heatmap this often
    eval_batches: int = 4  # train-loss batches per report (the val loss is the whole val split)
    eval_logits: int = 1 << 24  # at most this many logits (tokens x vocabulary) per split and report
    sample_tokens: int = 160
    seed: int = 1337
    threads: int = 1  # torch threads while training (per calling thread, restored after)


@dataclass
class LiveReport:
    """Where a live run stands: loss history, latest sample, the model itself (still training until done)."""

    step: int
    elapsed_s: float
    history: list[dict[str, float]]  # {"step", "time_s", "train_loss", "val_loss", "lr_scale"}; losses in nats
    sample: str
    model: torch.nn.Module
    tokenizer: CharTokenizer
    probe: str  # a short text from the corpus, for a heatmap that every report draws the same way
    done: bool = False
    reason: str = ""  # why it ended: "time limit", "stopped", "" while running
    config: LiveConfig = field(default_factory=LiveConfig)
    data: str = ""  # TINY_SHAKESPEARE when the text was the corpus's opening (its val split unseen), else ""

    def checkpoint(self) -> Checkpoint:
        """The trained model as a Checkpoint, so other views can use it like a shipped one."""
        best = self.history[-1] if self.history else {}
        metrics = {"best": {"step": self.step, "val_loss": best.get("val_loss")}, "history": self.history}
        info = {"data": self.data} if self.data else {}  # ablation's val loss needs to know the text
        return Checkpoint(model=self.model, tokenizer=self.tokenizer, folder=Path("live"), info=info,
                          metrics=metrics)


def source_of(text: str) -> str:
    """TINY_SHAKESPEARE when ``text`` is an opening of Tiny Shakespeare that stays inside its train split (the
    tab's 'Tiny Shakespeare' is the first MAX_CHARS characters), so its val split is text the model never saw
    and ranks it fairly; "" for any other text (or when the corpus cannot be read)."""
    try:
        corpus = load_text(TINY_SHAKESPEARE)
    except GptlabError:
        return ""
    inside_train = len(text) <= int(len(corpus) * 0.9)  # TokenSplits' split: the last 10% is val
    return TINY_SHAKESPEARE if inside_train and corpus.startswith(text) else ""


def check_text(text: str | None) -> str:
    """The text to train on, or InputError saying how to fix its size."""
    if not text or len(text) < MIN_CHARS:
        got = len(text or "")
        raise InputError(f"Paste at least {MIN_CHARS:,} characters to train on (got {got:,}): "
                         "a few paragraphs are enough.")
    if len(text) > MAX_CHARS:
        raise InputError(f"The text has {len(text):,} characters; the limit is {MAX_CHARS:,}. Paste less.")
    return text


def check_recipe(config: LiveConfig) -> LiveConfig:
    """The config, or SettingsError naming the first optimiser setting out of range: the learning rates and the
    weight decay must be finite numbers >= 0, and Muon's momentum in 0..1 (1 excluded)."""
    for name in ("lr", "embedding_lr", "muon_lr", "weight_decay", "muon_momentum"):
        value = getattr(config, name)
        top = 1.0 if name == "muon_momentum" else math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < top:
            shown = "a number >= 0 and below 1" if top == 1.0 else "a finite number >= 0"
            raise SettingsError(f"LiveConfig.{name} must be {shown}, got {shown_value(value)}.")
    return config


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's CPU thread count for this thread only, restored on exit (a server reuses its threads); threads
    started meanwhile keep the process's count (set_own_threads)."""
    before = set_own_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lr_scale(step: int, elapsed_s: float, budget_s: float, config: LiveConfig) -> float:
    """The share of the peak learning rates to use now, in 0..1: a linear warmup over ``warmup_steps``,
    times a linear fall with the clock from 1 at the start to ``final_lr_ratio`` when ``budget_s`` seconds
    have passed. The clock, not a step count, drives it, so a run of 30 s and one of 60 s each end on a
    low learning rate however fast the machine is."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    progress = min(1.0, max(0.0, elapsed_s / budget_s)) if budget_s > 0 else 1.0
    return warm * (1.0 - progress * (1.0 - config.final_lr_ratio))


def _optimizers(model: torch.nn.Module, config: LiveConfig) -> list[torch.optim.Optimizer]:
    """Muon for the 2-D weights inside the blocks, AdamW for the rest: the token embedding at ``embedding_lr``,
    the LM head, norms and biases at ``lr``."""
    matrices = [p for name, p in model.named_parameters() if name.startswith("transformer.h.") and p.dim() == 2]
    embedding = model.transformer.wte.weight
    inside = {id(p) for p in matrices} | {id(embedding)}
    rest = [p for p in model.parameters() if id(p) not in inside]
    groups = [{"params": [embedding], "weight_decay": config.weight_decay, "lr": config.embedding_lr},
              {"params": [p for p in rest if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]
    # fused: PyTorch's one-kernel CPU AdamW, a third of the plain loop's time on this model, same updates
    optimizers = [torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=True)]
    if matrices:
        optimizers.append(Muon(matrices, lr=config.muon_lr, momentum=config.muon_momentum,
                               weight_decay=config.weight_decay))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def train_live(text: str, config: LiveConfig = LiveConfig(), stop: threading.Event | None = None,
               clock=time.monotonic) -> Iterator[LiveReport]:
    """Train a tiny GPT on ``text`` and yield a report every ``report_every_s`` seconds and at the end.

    Stops at ``max_seconds`` of ``clock`` (never above MAX_SECONDS; the reports' evaluations count) or
    when ``stop`` is set; the learning rates follow ``lr_scale`` of the same clock. Batches and the
    initial weights follow ``config.seed``; the number of steps depends on the machine's speed.
    Raises InputError for a text too short or too long (``check_text``), SettingsError for an optimiser
    setting out of range (``check_recipe``).
    """
    check_recipe(config)
    text = check_text(text)
    data = source_of(text)
    limit = max(0.0, min(float(config.max_seconds), MAX_SECONDS))
    with _threads(config.threads):
        torch.manual_seed(config.seed)
        tokenizer = CharTokenizer.train(text)
        splits = TokenSplits.from_ids(tokenizer.encode(text))
        block = min(config.block_size, len(splits.val) - 1)
        model_config = ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, block_size=block,
                                   n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                                   mlp=config.mlp, pos=config.pos, dropout=config.dropout)
        model = build_model(model_config)
        optimizers = _optimizers(model, config)
        generator = torch.Generator().manual_seed(config.seed)
    probe = _probe(text, block)
    sample_from = sample_start(tokenizer)  # a pasted paragraph may hold no newline
    history: list[dict[str, float]] = []
    step, scale, start = 0, 0.0, clock()

    def report(done: bool, reason: str = "") -> LiveReport:
        with _threads(config.threads):
            model.eval()
            history.append({"step": step, "time_s": round(clock() - start, 2),
                            **_losses(model, splits, block, config), "lr_scale": round(scale, 4)})
            settings = GenerationSettings(max_new_tokens=config.sample_tokens, temperature=0.8, seed=config.seed)
            sample = "".join(generate(model, tokenizer, sample_from, settings))
            model.train(not done)  # a finished model stays in eval mode for the views that use it
        return LiveReport(step, clock() - start, list(history), sample, model, tokenizer, probe, done, reason, config,
                          data)

    yield report(False)  # the untrained model: loss near ln(vocab), gibberish, even attention
    # counted from the end of a report (and of the caller's drawing of it), so a report slower than
    # report_every_s on a busy machine still leaves that long for training before the next one
    reported_at, next_report = step, clock() + config.report_every_s
    reason = "time limit"
    while True:
        if stop is not None and stop.is_set():
            reason = "stopped"
            break
        now = clock()
        if now - start >= limit:
            break
        if now >= next_report and step > reported_at:  # at least one step between two reports
            yield report(False)
            reported_at, next_report = step, clock() + config.report_every_s
            continue  # the report took time: look at the clock again before the next step
        with _threads(config.threads):
            # one step: a random batch of windows, forward, backward, and the update at this moment's rate
            scale = lr_scale(step, now - start, limit, config)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["peak_lr"] * scale
            x, y = get_batch(splits.train, config.batch_size, block, generator)
            _, loss = model(x, y)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            step += 1
    model.eval()
    yield report(True, reason)


@torch.no_grad()
def _losses(model, splits: TokenSplits, block: int, config: LiveConfig) -> dict[str, float]:
    """Train loss on ``eval_batches`` fixed batches (seed 0: a smooth curve); val loss on the whole val split.

    A report scores at most ``eval_logits`` logits per split (tokens x vocabulary): every Tiny Shakespeare
    or English text fits whole, while a pasted text with thousands of distinct characters is scored on
    the val split's first windows, so its reports do not eat the time meant for training.
    """
    tokens = max(block, config.eval_logits // model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    train = [float(model(*get_batch(splits.train, config.batch_size, block, generator))[1])
             for _ in range(max(1, min(config.eval_batches, tokens // (config.batch_size * block))))]
    # the val windows go batch_size at a time: no more memory than a training step
    val = split_loss(model, splits.val[:tokens + 1], block, rows=config.batch_size)
    return {"train_loss": sum(train) / len(train), "val_loss": val}


@torch.no_grad()
def split_loss(model: torch.nn.Module, data: torch.Tensor, block: int, rows: int = 64) -> float:
    """Mean next-token loss (nats) over every token of ``data`` (1-D ids) that has a successor, scored in
    consecutive windows of ``block`` tokens, ``rows`` windows per forward pass; the last window may be
    shorter. No sampling: the same text gives the same number."""
    n = len(data) - 1
    starts = list(range(0, n, block))
    total = 0.0
    for i in range(0, len(starts), rows):
        chunk = starts[i:i + rows]
        full = [s for s in chunk if s + block <= n]
        if full:  # (rows, block) windows of inputs and their next-token targets
            x = torch.stack([data[s:s + block] for s in full])
            y = torch.stack([data[s + 1:s + block + 1] for s in full])
            total += float(model(x, y)[1]) * x.numel()
        for s in chunk[len(full):]:  # the text's last, shorter window
            x, y = data[s:n][None], data[s + 1:n + 1][None]
            total += float(model(x, y)[1]) * x.numel()
    return total / n


def _probe(text: str, block: int) -> str:
    """The first speaker turn-sized piece of the text (up to ~48 characters), for the heatmap."""
    start = text.find("\n", 0, 2000) + 1  # begin at a line start when one is near
    piece = text[start:start + min(48, block)]
    return piece if len(piece) >= 8 else text[: min(48, block)]


def nats_to_text(loss: float) -> str:
    """A loss as a teacher would say it: '2.31 (like choosing among ~10 characters)'."""
    return f"{loss:.2f} (like choosing among ~{math.exp(loss):.0f} characters)"
