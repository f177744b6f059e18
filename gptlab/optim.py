"""Muon: momentum whose update is orthogonalised, for the 2-D weight matrices inside the blocks.

In the core so that both ``train`` (python -m train) and the classroom's live trainer use the one
implementation; ``train.optim`` pairs it with AdamW for everything else, as the Muon authors recommend.
"""

from __future__ import annotations

import torch


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise a matrix (push its singular values towards 1); same shape out.

    ``g`` is one matrix (rows, cols) or a stack of same-shape matrices (n, rows, cols), each
    orthogonalised on its own: a stack runs one batched matmul chain instead of n small ones, which is
    what a step of Muon costs on a CPU, where a tiny model's matmuls are mostly per-call overhead.
    Quintic iteration with the coefficients from the Muon write-up; run in float32 because
    bfloat16 matmuls are several times slower than float32 on CPUs without bf16 units.
    Raises ValueError for a tensor that is not 2-D or 3-D.
    """
    if g.dim() not in (2, 3):
        raise ValueError(f"newton_schulz takes a matrix or a stack of matrices, got shape {tuple(g.shape)}.")
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float() if g.dim() == 3 else g.float()[None]  # (n, rows, cols)
    transposed = x.size(1) > x.size(2)
    if transposed:  # iterate on the wide orientation: X X^T is the smaller Gram matrix
        x = x.mT
    x = x / (torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True) + 1e-7)  # spectral <= Frobenius <= 1, each
    for _ in range(steps):
        gram = x @ x.mT  # (n, r, r)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b*G + c*G@G in one call
        x = torch.baddbmm(x, poly, x, beta=a)  # a*X + poly@X
    if transposed:
        x = x.mT
    return x if g.dim() == 3 else x[0]


class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalised by Newton-Schulz; for 2-D weight matrices only."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 nesterov: bool = True, ns_steps: int = 5) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            grads = [p.grad for p in params]
            momentum, lr = group["momentum"], group["lr"]
            # the same element-wise moves for every matrix, one call each (torch's _foreach ops)
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads)
            updates = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            # matrices of one shape (a tall one counted as its wide transpose) are orthogonalised as one stack
            stacks: dict[tuple, list[int]] = {}
            for i, p in enumerate(params):
                stacks.setdefault((min(p.shape), max(p.shape), p.dtype, p.device), []).append(i)
            for index in stacks.values():
                members = [params[i] for i in index]
                tall = [p.size(0) > p.size(1) for p in members]
                wide = torch.stack([updates[i].mT if t else updates[i] for i, t in zip(index, tall, strict=True)])
                orthogonal = newton_schulz(wide, group["ns_steps"]).unbind(0)  # each (rows, cols), wide
                moves = [(o.mT if t else o).to(p.dtype) for p, t, o in zip(members, tall, orthogonal, strict=True)]
                # tall matrices get a larger step so every shape moves by a similar RMS amount
                torch._foreach_mul_(moves, [-lr * max(1.0, p.size(0) / p.size(1)) ** 0.5 for p in members])
                torch._foreach_add_(members, moves)
