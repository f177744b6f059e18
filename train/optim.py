"""Optimizers and the learning-rate schedule.

AdamW decays 2-D weights only (matrices and embeddings), never biases or LayerNorm gains.
optimizer=muon hands the 2-D weights inside the blocks to Muon (orthogonalised momentum) and
keeps AdamW for embeddings, the LM head, biases and norms, as the Muon authors recommend.
Muon itself lives in the core (gptlab.optim), so the classroom's live trainer uses it too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gptlab.optim import Muon, newton_schulz

from .config import TrainConfig

__all__ = ["Muon", "lr_factor", "make_optimizers", "newton_schulz", "set_lr"]


def make_optimizers(model: nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW (and Muon, if asked) over the model's parameters, each parameter in exactly one group."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    muon_params, decay, no_decay = [], [], []
    for name, p in named:
        in_blocks = ".h." in f".{name}" or name.startswith("transformer.h.")
        if config.optimizer == "muon" and p.dim() == 2 and in_blocks:
            muon_params.append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))
    ]
    if muon_params:
        optimizers.append(Muon(muon_params, lr=config.muon_lr, weight_decay=config.weight_decay))
    for opt in optimizers:
        for group in opt.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def lr_factor(step: int, config: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Multiplier of the peak learning rate: linear warmup, then cosine/linear decay to min_lr_ratio.

    With a time budget (max_time), the decay follows whichever runs out first, steps or time,
    so a run cut by the clock still ends on a low learning rate (fair equal-time comparisons).
    """
    if step < config.warmup_iters:
        return (step + 1) / config.warmup_iters
    if config.decay == "constant":
        return 1.0
    span = max(1, config.max_iters - config.warmup_iters)
    progress = min(1.0, (step - config.warmup_iters) / span)
    if config.max_time:
        progress = max(progress, min(1.0, elapsed_s / config.max_time))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if config.decay == "cosine" else 1 - progress
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape


def set_lr(optimizers: list[torch.optim.Optimizer], factor: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["peak_lr"] * factor
