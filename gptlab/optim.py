"""Muon: momentum whose update is orthogonalised, for the 2-D weight matrices inside the blocks.

In the core so that both ``train`` (python -m train) and the classroom's live trainer use the one
implementation; ``train.optim`` pairs it with AdamW for everything else, as the Muon authors recommend.
"""

from __future__ import annotations

import torch


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise a matrix (push its singular values towards 1); same shape out.

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
