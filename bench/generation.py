"""Section 4, generation: tokens/s for 500 new tokens at batch 1, with and without the KV cache."""

from __future__ import annotations

import time
from typing import Any

import torch

from gptlab import GenerationSettings, generate_ids

from .common import Options, Row, judge, median
from .models import classic_model, default_model

PROMPT_TOKENS = 16
TARGET_SPEEDUP = 8.0


def one_generation(model: torch.nn.Module, ids: list[int], n: int, use_cache: bool) -> tuple[float, float]:
    """(seconds to the first token, tokens/s over all n) for one call of generate_ids."""
    settings = GenerationSettings(max_new_tokens=n, temperature=1.0, seed=0)
    start = time.perf_counter()
    first = None
    for count, _ in enumerate(generate_ids(model, ids, settings, use_cache=use_cache), 1):
        if count == 1:
            first = time.perf_counter() - start
    return first, n / (time.perf_counter() - start)


def measure(model: torch.nn.Module, n: int, repeats: int) -> dict[str, Any]:
    """Cached and uncached generation, alternated, `repeats` times each."""
    vocab = model.config.vocab_size
    ids = torch.randint(vocab, (PROMPT_TOKENS,), generator=torch.Generator().manual_seed(0)).tolist()
    one_generation(model, ids, 5, True)  # warm-up
    runs: dict[str, list[tuple[float, float]]] = {"cache": [], "no cache": []}
    loads = []
    for r in range(repeats):
        for use_cache in (True, False) if r % 2 == 0 else (False, True):
            runs["cache" if use_cache else "no cache"].append(one_generation(model, ids, n, use_cache))
        loads.append(Row("", None, "").load1)
    result = {k: {"tokens_per_s": median([t for _, t in v]), "first_token_s": median([f for f, _ in v]),
                  "runs": v} for k, v in runs.items()}
    result["speedup"] = median([c[1] / u[1] for c, u in zip(runs["cache"], runs["no cache"], strict=True)])
    result["load1"] = median(loads)
    return result


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    n, repeats = (20, 1) if options.quick else (500, 3)
    rows, raw = [], {}
    for key, (model, label) in (("default", default_model(options)), ("classic", classic_model(options))):
        result = measure(model, n, repeats)
        load = result["load1"]
        target = key == "classic"
        rows += [
            Row(f"{label}: KV cache", round(result["cache"]["tokens_per_s"]), "tokens/s", load1=load),
            Row(f"{label}: no cache", round(result["no cache"]["tokens_per_s"]), "tokens/s", load1=load),
            Row(f"{label}: speed-up from the cache", round(result["speedup"], 2), "×",
                f"≥ {TARGET_SPEEDUP:g}×" if target else "",
                judge(result["speedup"], TARGET_SPEEDUP, True, options) if target else None, load1=load),
            Row(f"{label}: time to first token (cache, {PROMPT_TOKENS}-token prompt)",
                round(1e3 * result["cache"]["first_token_s"], 1), "ms", load1=load),
        ]
        raw[key] = {"model": label, **result}
    notes = [f"{n} new tokens at batch 1, temperature 1, {repeats} alternated runs each, medians. Past the "
             "context the cached path restarts from the last half-context (absolute positions cannot slide); "
             "the uncached path re-reads the whole context every token."]
    return {"rows": [r.to_dict() for r in rows], "raw": raw, "new_tokens": n, "notes": notes}
