"""Section 1, the machine's limit: float32 matmul GFLOP/s at the shapes training uses."""

from __future__ import annotations

from typing import Any

import torch

from .common import VOCAB, Options, Row, median, time_call
from .models import SIZES

SQUARE = 2048


def training_shapes(batch: int, block: int, n_embd: int, vocab: int) -> dict[str, tuple[int, int, int]]:
    """(M, K, N) of the Linear layers of one forward pass: tokens x in-features x out-features."""
    tokens = batch * block
    return {
        "qkv": (tokens, n_embd, 3 * n_embd),
        "mlp up": (tokens, n_embd, 4 * n_embd),
        "mlp down": (tokens, 4 * n_embd, n_embd),
        "lm head": (tokens, n_embd, vocab),
    }


def gflops(m: int, k: int, n: int, repeats: int, min_time: float) -> float:
    """Median GFLOP/s of (m, k) @ (k, n) into a preallocated output."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)  # warm-up: first call pays for allocation and dispatch setup
    seconds = [time_call(lambda: torch.mm(a, b, out=out), min_time) for _ in range(repeats)]
    return 2 * m * k * n / median(seconds) / 1e9


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    repeats, min_time = (2, 0.02) if options.quick else (7, 0.3)
    square = 256 if options.quick else SQUARE
    rows, raw = [], {}
    for size, spec in SIZES.items():
        config = spec.model_config(options)
        for name, (m, k, n) in training_shapes(spec.batch(options), config.block_size, config.n_embd, VOCAB).items():
            value = gflops(m, k, n, repeats, min_time)
            raw[f"{size} {name}"] = {"m": m, "k": k, "n": n, "gflops": value}
            rows.append(Row(f"{size}: {name} ({m}x{k} @ {k}x{n})", round(value, 1), "GFLOP/s"))
    value = gflops(square, square, square, repeats, min_time)
    raw[f"square {square}"] = {"m": square, "k": square, "n": square, "gflops": value}
    rows.append(Row(f"square {square}x{square}", round(value, 1), "GFLOP/s"))
    threads = torch.get_num_threads()
    if threads > 1:  # the single-thread figure shows how much the second core adds
        torch.set_num_threads(1)
        try:
            one = gflops(square, square, square, repeats, min_time)
        finally:
            torch.set_num_threads(threads)
        raw[f"square {square}, 1 thread"] = {"m": square, "k": square, "n": square, "gflops": one, "threads": 1}
        rows.append(Row(f"square {square}x{square}, 1 thread", round(one, 1), "GFLOP/s", threads=1))
    peak = max(v["gflops"] for k, v in raw.items() if "1 thread" not in k)
    return {
        "rows": [r.to_dict() for r in rows],
        "raw": raw,
        "peak_gflops": peak,
        "notes": [f"Peak = the best of these ({peak:.1f} GFLOP/s at {threads} threads): the MFU denominator."],
    }
