"""Optional section 9, ``python -m bench --peer-nanogpt PATH``: gptlab beside nanoGPT, in one run, one at a time.

The user brings an unmodified nanoGPT checkout (bench/nanogpt.py runs it without writing to it); CI runs
without it. Two comparisons, each contender with the same threads:

1. Val loss at equal wall time: gptlab's gpt-mini preset trains for the budget as section 3 does (its
   schedule follows the clock); nanoGPT trains at the same shapes (layers, heads, width, context, batch,
   dropout) with its best recipe found for this budget (AdamW, learning rate 3e-3 cosine-decayed to 3e-4,
   warm-up 100) for as many iterations as fill the same share of the budget at its step time, measured
   first in a short calibration run. Both are scored on the whole val split by the same rule.
2. Seconds per step at equal shapes: the classic 6L/6H/384C/T256, batch 64, dropout 0.2, AdamW on both
   sides; nanoGPT's per-iteration times from its own log, gptlab's step as section 2 times it in a process
   with python -m train's settings; rounds alternate which goes first.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gptlab import load_text
from train.presets import make_preset

from .common import Options, Row
from .models import SIZES
from .nanogpt import check_checkout, commit_of, prepare, run_nanogpt, score
from .quality import TRAIN_SHARE, corpus, timed_run
from .training import gptlab_step, in_tuned_process, random_tokens

BUDGET_S = {"full": 150, "quick": 6}
RECIPE = {"learning_rate": 3e-3, "min_lr": 3e-4}  # nanoGPT's best for a 150 s CPU budget at gpt-mini's size
CALIBRATE_ITERS = {"full": 30, "quick": 5}
SPEED = {"full": (2, 4), "quick": (1, 2)}  # (rounds, timed steps per round) at the classic shapes


def gptlab_step_seconds(options: Options, steps: int) -> list[float]:
    """Seconds of each of ``steps`` gptlab training steps at the classic shapes, after one warm-up step."""
    step = gptlab_step(SIZES["classic"], options, random_tokens())[0]
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def quality(checkout, work, options: Options) -> tuple[list[Row], dict[str, Any]]:
    budget = BUDGET_S[options.mode]
    data = corpus(options)
    prepare(checkout, work, load_text(data))
    config = make_preset("gpt-mini")
    m = config.model
    shapes = {"n_layer": m.n_layer, "n_head": m.n_head, "n_embd": m.n_embd, "block_size": m.block_size,
              "batch_size": config.batch_size, "dropout": float(m.dropout)}
    quiet = {"eval_iters": 1, "eval_interval": 10**9, "always_save_checkpoint": False}
    calibration = run_nanogpt(checkout, work, options, **shapes, **RECIPE, **quiet,
                              max_iters=CALIBRATE_ITERS[options.mode])
    step_s = statistics.median(calibration["step_s"])
    iters = max(2, int(TRAIN_SHARE * budget / step_s))
    eval_iters = 2 if options.quick else config.eval_iters
    theirs = run_nanogpt(checkout, work, options, **shapes, **RECIPE, max_iters=iters, lr_decay_iters=iters,
                         warmup_iters=min(100, iters // 10), eval_interval=iters, eval_iters=eval_iters,
                         always_save_checkpoint=True)
    their_loss, their_iter = score(checkout, work)
    quick = {"eval_interval": 10, "eval_iters": 2, "sample_tokens": 10} if options.quick else {}
    ours = timed_run("gpt-mini", budget, options, data, **quick)
    our_loss = ours["best"].get("val_loss_full")
    shape = f"{m.n_layer}L/{m.n_head}H/{m.n_embd}C/T{m.block_size}, batch {config.batch_size}"
    rows = [
        Row(f"gpt-mini shapes ({shape}), {budget} s: gptlab whole-split val loss", _round(our_loss, 3), "loss",
            note=f"{ours['best']['step']} steps kept of the run, {ours['wall_total_s']:.0f} s wall; "
                 f"load 1/5/15 min at the end {'/'.join(f'{v:g}' for v in ours['load_end'])}"),
        Row(f"gpt-mini shapes, {budget} s: nanoGPT whole-split val loss", round(their_loss, 3), "loss",
            note=f"{their_iter} iterations ({step_s * 1e3:.0f} ms each in calibration), lr {RECIPE['learning_rate']:g}"
                 f" → {RECIPE['min_lr']:g}, {theirs['wall_s']:.0f} s wall; load at the end "
                 f"{'/'.join(f'{v:g}' for v in theirs['load_end'])}"),
        Row(f"gpt-mini shapes, {budget} s: val loss nanoGPT / gptlab", _ratio(their_loss, our_loss), "×",
            note="above 1: gptlab reaches a lower loss in the same wall time"),
    ]
    raw = {"budget_s": budget, "calibration": calibration, "iters": iters, "nanogpt": theirs,
           "nanogpt_val_loss": their_loss, "gptlab": ours, "gptlab_val_loss": our_loss, "shapes": shapes}
    return rows, raw


def speed(checkout, work, options: Options) -> tuple[list[Row], dict[str, Any]]:
    rounds, steps = SPEED[options.mode]
    config = SIZES["classic"].train_config(options)
    m = config.model
    shapes = {"n_layer": m.n_layer, "n_head": m.n_head, "n_embd": m.n_embd, "block_size": m.block_size,
              "batch_size": config.batch_size, "dropout": float(m.dropout), "learning_rate": float(config.lr)}
    quiet = {"eval_iters": 1, "eval_interval": 10**9, "always_save_checkpoint": False}
    theirs, ours, loads = [], [], []
    for r in range(rounds):
        for who in ("nanogpt", "gptlab") if r % 2 == 0 else ("gptlab", "nanogpt"):
            if who == "nanogpt":
                theirs += run_nanogpt(checkout, work, options, **shapes, **quiet, max_iters=steps)["step_s"]
            else:
                ours += in_tuned_process(options, gptlab_step_seconds, options, steps)
        loads.append(Row("", None, "").load1)
    their_s, our_s = statistics.median(theirs), statistics.median(ours)
    shape = f"{m.n_layer}L/{m.n_head}H/{m.n_embd}C/T{m.block_size}, batch {config.batch_size}, dropout {m.dropout}"
    load = statistics.median(loads)
    rows = [
        Row(f"classic shapes ({shape}): gptlab seconds per step", round(our_s, 3), "s", load1=load,
            note=f"median of {len(ours)} steps, AdamW, python -m train's process settings"),
        Row("classic shapes: nanoGPT seconds per step", round(their_s, 3), "s", load1=load,
            note=f"median of {len(theirs)} iterations from its log (iteration 0 left out), AdamW"),
        Row("classic shapes: seconds per step nanoGPT / gptlab", _ratio(their_s, our_s), "×", load1=load,
            note="above 1: gptlab's step is faster"),
    ]
    return rows, {"gptlab_step_s": ours, "nanogpt_step_s": theirs, "rounds": rounds, "load1": loads}


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    checkout = check_checkout(options.peer_nanogpt)
    commit = commit_of(checkout)
    with tempfile.TemporaryDirectory(prefix="gptlab-nanogpt-") as tmp:
        work = Path(tmp)
        quality_rows, quality_raw = quality(checkout, work, options)
        speed_rows, speed_raw = speed(checkout, work, options)
    notes = [f"nanoGPT at {commit} ({checkout}), unmodified, run as a subprocess from a temporary folder. "
             "Val losses: both on the whole val split in consecutive windows of the context (nanoGPT's saved "
             "checkpoint read by its own model.py). Shapes are equal; each side keeps its own architecture "
             "(gpt-mini: ReLU², rotary positions, Muon + AdamW; nanoGPT: GELU, learned positions, AdamW)."]
    if options.quick:
        notes.append("--quick: 6-second budget on 100k characters and the small classic stand-in; nothing judged.")
    return {"rows": [r.to_dict() for r in quality_rows + speed_rows], "commit": commit,
            "raw": {"quality": quality_raw, "speed": speed_raw}, "notes": notes}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)
