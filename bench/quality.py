"""Section 3, time to quality: how low the CPU preset's val loss gets in 150 s, 5 and 15 minutes.

Each budget is its own run of ``train.loop.train`` (its learning-rate schedule follows the
clock, so a run cut at 150 s ends on a low learning rate). Wall time counts everything from
the call on (start-up and evaluations included): each evaluation writes its sample file, whose
modification time says when that evaluation finished.
"""

from __future__ import annotations

import time
from typing import Any

from gptlab.data import TINY_SHAKESPEARE, load_text
from gptlab.settings import with_values
from train.presets import make_preset

from .common import Options, Row, judge, load

THRESHOLDS = (1.80, 1.70, 1.60)
# (preset, wall budget in s, target for the best whole-split val loss within it, on 2 cores): the figures users
# feel (issue 16). The 15-minute target is for any preset: gpt-mini's run carries it, gpt-small's is for comparison
FULL_RUNS = [("gpt-mini", 150, 1.50), ("gpt-mini", 300, None), ("gpt-mini", 900, 1.42), ("gpt-small", 900, None)]
QUICK_RUNS = [("gpt-mini", 4, None)]
TRAIN_SHARE = 0.9  # max_time is training time; leave a tenth of the budget for the evaluations


def corpus(options: Options) -> str:
    """Tiny Shakespeare as shipped; --quick trains on its first 100k characters."""
    if not options.quick:
        return TINY_SHAKESPEARE
    small = options.workdir / "quality-corpus.txt"
    small.write_text(load_text(TINY_SHAKESPEARE)[:100_000], encoding="utf-8")
    return str(small)


def timed_run(preset: str, budget: float, options: Options, data: str, **overrides: Any) -> dict[str, Any]:
    """Train one preset for a budget; return its history with wall-clock times and the final metrics."""
    from train.loop import train

    out = options.workdir / f"quality-{preset}-{int(budget)}s"
    settings = dict(data=data, out=str(out), max_time=budget * TRAIN_SHARE, max_iters=1_000_000, snapshots="",
                    progress=False, threads=options.threads) | overrides
    config = with_values(make_preset(preset), settings)  # dotted keys: "model.mlp" sets config.model.mlp
    start = time.time()
    metrics = train(config, command=f"bench: {preset} for {budget} s")
    wall_total = time.time() - start
    history = []
    for row in metrics["history"]:
        sample = out / "samples" / f"step_{row['step']:06d}.txt"
        history.append({"step": row["step"], "val_loss": row["val_loss"], "train_time_s": row["time_s"],
                        "wall_s": sample.stat().st_mtime - start})
    return {"preset": preset, "budget_s": budget, "history": history, "wall_total_s": wall_total, "load_end": load(),
            "best": metrics["best"], "n_params": metrics["n_params"]}


def summarise(run: dict[str, Any], target: float | None, options: Options) -> list[Row]:
    budget, name = run["budget_s"], run["preset"]
    within = [r for r in run["history"] if r["wall_s"] <= budget]
    best_row = min(within, key=lambda r: r["val_loss"], default=None)
    full = run["best"].get("val_loss_full")
    # the judged figure is the whole val split (as the reference numbers are), when the best
    # checkpoint's evaluation finished within the budget; otherwise the 20-batch figure within it
    best_in_time = best_row is not None and best_row["step"] == run["best"]["step"]
    value = full if full is not None and best_in_time else (best_row["val_loss"] if best_row else None)
    scored = "whole val split" if full is not None and best_in_time else f"{len(within)} evaluations of 20 batches"
    note = f"scored on the {scored}; best on 20 batches {run['best']['val_loss']:.3f} at step {run['best']['step']}"
    note += "; load 1/5/15 min at the end {:g}/{:g}/{:g}".format(*run["load_end"])
    any_preset = ", any preset" if budget >= 900 else ""
    whole = full is not None and best_in_time  # a target is judged on the whole val split only
    rows = [Row(f"{name}: best val loss within {budget:g} s", round(value, 3) if value is not None else None, "loss",
                f"≤ {target:.2f} (whole val split, 2 cores{any_preset})" if target else "",
                judge(value, target, False, options) if target and whole else None, note=note)]
    for threshold in THRESHOLDS:  # the schedule follows the budget, so each run has its own times
        reached = next((r for r in run["history"] if r["val_loss"] <= threshold), None)
        rows.append(Row(f"{name}: wall time to val loss {threshold:.2f} (run of {budget:g} s)",
                        round(reached["wall_s"], 1) if reached else None, "s",
                        note=f"step {reached['step']}" if reached else "not reached within the run"))
    return rows


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    data = corpus(options)
    quick_settings = dict(eval_interval=10, eval_iters=2, sample_tokens=10)
    rows, runs = [], []
    for preset, budget, target in QUICK_RUNS if options.quick else FULL_RUNS:
        result = timed_run(preset, budget, options, data, **(quick_settings if options.quick else {}))
        runs.append(result)
        rows += summarise(result, target, options)
    notes = [f"Each budget is a separate run with max_time = {TRAIN_SHARE:.0%} of the budget and "
             "max_iters unbounded, so the schedule decays with the clock; wall time includes start-up "
             "and evaluation. The best val loss is the best checkpoint's loss on the whole val split (as nanoGPT's "
             "reference figures are scored); the times to 1.80/1.70/1.60 use the evaluations during the run, "
             "on eval_iters batches (±0.03)."]
    if options.quick:
        notes.append("--quick: a 4-second run on 100k characters, exercising the same code; thresholds "
                     "are not expected to be reached.")
    return {"rows": [r.to_dict() for r in rows], "runs": runs, "data": data, "notes": notes}
