"""Optimizers and the learning-rate schedule.

AdamW decays 2-D weights only (matrices and embeddings), never biases or LayerNorm gains.
optimizer=muon hands the 2-D weights inside the blocks to Muon (orthogonalised momentum) and
keeps AdamW for embeddings, the LM head, biases and norms, as the Muon authors recommend.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise a matrix (push its singular values towards 1).

    Quintic iteration with the coefficients from the Muon write-up; run in float32 because
    bfloat16 matmuls are several times slower than float32 on CPUs without bf16 units.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    transposed = x.size(0) > x.size(1)
    if transposed:  # iterate on the wide orientation: X X^T is the smaller Gram matrix
        x = x.T
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b*G + c*G@G in one call
        x = torch.addmm(x, poly, x, beta=a)  # a*X + poly@X
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalised by Newton-Schulz; for 2-D weight matrices only."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 nesterov: bool = True, ns_steps: int = 5) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(p.grad)
                update = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_steps"])
                # tall matrices get a larger step so every shape moves by a similar RMS amount
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-group["lr"] * scale)


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
