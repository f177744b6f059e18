"""Section 5, attention capture: a forward pass with every hook captured vs a plain forward."""

from __future__ import annotations

from typing import Any

import torch

from gptlab import run_with_cache

from .common import Options, Row, judge, median, time_call
from .models import classic_model, default_model

TARGET = 1.5


def measure(model: torch.nn.Module, repeats: int, min_time: float) -> dict[str, Any]:
    """Plain forward, all hook points, and attention patterns only, interleaved, at full context."""
    config = model.config
    idx = torch.randint(config.vocab_size, (1, config.block_size), generator=torch.Generator().manual_seed(0))
    patterns = lambda name: name.endswith("hook_pattern")  # what the app's attention tab captures

    def plain():
        with torch.no_grad():
            model(idx)

    contenders = {"plain": plain, "all hooks": lambda: run_with_cache(model, idx),
                  "patterns": lambda: run_with_cache(model, idx, names=patterns)}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()
    loads = []
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(time_call(fn, min_time))
        loads.append(Row("", None, "").load1)
    med = {k: median(v) for k, v in times.items()}
    ratio = {k: median([a / b for a, b in zip(times[k], times["plain"], strict=True)]) for k in ("all hooks",
                                                                                                  "patterns")}
    return {"seconds": med, "ratio": ratio, "times": times, "load1": median(loads)}


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    repeats, min_time = (2, 0.0) if options.quick else (9, 0.5)
    rows, raw = [], {}
    for key, (model, label) in (("default", default_model(options)), ("classic", classic_model(options))):
        result = measure(model, repeats, min_time)
        load = result["load1"]
        rows += [
            Row(f"{label}: plain forward at full context", round(1e3 * result["seconds"]["plain"], 2), "ms",
                load1=load),
            Row(f"{label}: all hooks captured / plain", round(result["ratio"]["all hooks"], 2), "×",
                f"≤ {TARGET:g}×", judge(result["ratio"]["all hooks"], TARGET, False, options), load1=load),
            Row(f"{label}: attention patterns only / plain", round(result["ratio"]["patterns"], 2), "×",
                load1=load),
        ]
        raw[key] = {"model": label, **result}
    notes = ["Batch 1 at the model's full context; run_with_cache copies every captured tensor (all hooks: each "
             "attention's q, k, v, scores and pattern, and the residual stream). Capture takes the explicit "
             "softmax path, the plain forward PyTorch's fused attention."]
    return {"rows": [r.to_dict() for r in rows], "raw": raw, "notes": notes}
