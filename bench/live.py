"""Section 7, Watch it learn: the live trainer's validation loss after 30 s and 60 s on one thread.

Each budget is its own run of ``gptlab.classroom.live.train_live`` with the tab's settings
(``LiveConfig(max_seconds=budget)``: one thread, a report every 3 s, each drawn as the tab draws
it) on the tab's text, Tiny Shakespeare's first 200,000 characters. The judged figure is the one
the tab shows when the run ends: the final report's val loss, over the whole val split (its last
10%, 20,000 characters, in consecutive windows of the context). Each row also gives the steps,
wall time and the thread's CPU-seconds; a second pair of runs uses the thread's CPU clock as the
budget, which takes most of the load out (not all: on a busy machine a CPU-second does less work).
"""

from __future__ import annotations

import time
from typing import Any

from gptlab.classroom.live import MAX_CHARS, LiveConfig, LiveReport, train_live
from gptlab.data import TINY_SHAKESPEARE, load_text
from gptlab.figures import attention_heatmap, live_loss_figure
from gptlab.inside import attention_view

from .common import Options, Row, judge, load

TARGETS = {30: 1.70, 60: 1.62}  # issue 16: val loss after 30 s and after 60 s of live training
QUICK_BUDGETS = {2: None}


def draw(report: LiveReport) -> None:
    """The tab's figures for one report (its loss curve and layer 0 head 0's heatmap), for the same cost."""
    view = attention_view(report.model, report.tokenizer, report.probe)
    attention_heatmap(view.patterns[0][0], view.labels, f"step {report.step:,}")
    live_loss_figure(report.history)


def live_run(text: str, budget: float, clock=time.monotonic) -> dict[str, Any]:
    """One live run for ``budget`` seconds of ``clock``: the tab's final val loss, steps, wall and CPU time."""
    config = LiveConfig(max_seconds=budget)
    wall0, cpu0, load0 = time.monotonic(), time.thread_time(), load()
    for report in train_live(text, config, clock=clock):
        draw(report)  # what the tab does with each report, on the same clock
    wall, cpu = time.monotonic() - wall0, time.thread_time() - cpu0
    return {"budget_s": budget, "val_loss": report.history[-1]["val_loss"], "steps": report.step,
            "wall_s": wall, "cpu_s": cpu, "reports": len(report.history), "load_start": load0, "load_end": load(),
            "val_chars": len(text) - int(len(text) * 0.9)}


def row(run: dict[str, Any], clock_name: str, target: float | None, options: Options) -> Row:
    what = (f"Watch it learn: val after {run['budget_s']:g} s, one thread" if clock_name == "wall" else
            f"Watch it learn: val after {run['budget_s']:g} CPU-s of its thread")
    note = (f"the tab's figure: the whole val split ({run['val_chars']:,} chars); {run['steps']:,} steps, "
            f"{run['reports']} reports; wall {run['wall_s']:.1f} s, CPU {run['cpu_s']:.1f} s; load 1/5/15 min "
            "{:g}/{:g}/{:g} at the start, {:g}/{:g}/{:g} at the end".format(*run["load_start"], *run["load_end"]))
    value = round(run["val_loss"], 3)
    judged = judge(value, target, False, options) if target is not None and clock_name == "wall" else None
    shown_target = f"≤ {target}" if target is not None and clock_name == "wall" else ""
    return Row(what, value, "loss", shown_target, judged, threads=1, note=note)


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    text = load_text(TINY_SHAKESPEARE)[:MAX_CHARS]
    budgets = QUICK_BUDGETS if options.quick else TARGETS
    rows, runs = [], []
    for clock_name, clock in (("wall", time.monotonic), ("cpu", time.thread_time)):
        for budget, target in budgets.items():
            result = live_run(text, budget, clock) | {"clock": clock_name}
            runs.append(result)
            rows.append(row(result, clock_name, target, options))
    notes = ["Each budget is a separate run (the learning rates fall with the clock to the end of the budget). "
             "The val loss is the tab's: the mean over every character of the val split, the last 10% of the "
             "200,000 characters, scored in consecutive windows of the context (no sampling). The machine is "
             "shared: a one-thread run slows when other work competes for the cores, so the CPU-clock rows say "
             "roughly what the recipe reaches on a core of its own (a little less: under contention a CPU-second "
             "does fewer steps)."]
    if options.quick:
        notes.append("--quick: 2-second runs exercising the same code; the targets are not judged.")
    return {"rows": [r.to_dict() for r in rows], "runs": runs, "notes": notes}
