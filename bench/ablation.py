"""Section 8, knocking heads out in the app: one /ablate request, and /rank over every head of gpt.

``python app.py`` runs as a subprocess on 127.0.0.1 serving the shipped checkpoints (as in section 6) and
requests go through gradio_client one at a time. /ablate switches one head off and measures the prompt and
the validation loss on the fixed batches both ways; /rank switches every head off in turn (gpt: 36 heads).
"""

from __future__ import annotations

import os
import re
import time
from functools import partial
from typing import Any

from .app_bench import served_app, shelf
from .common import Options, Row, judge, median, percentile

TARGETS = {"ablate_p50": 1.0, "rank_s": 30.0}  # seconds, on 2 cores
PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?"
RANKED = re.compile(r"(\d+) of (\d+) heads")


def rank_model(folder, options: Options) -> str:
    """gpt (36 heads); a quick run ranks the 12 heads of blocks when it is served."""
    return "blocks" if options.quick and (folder / "blocks").is_dir() else "gpt"


def requests(url: str, n: int, ranked: str, rank_runs: int) -> dict[str, Any]:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    client.predict("gpt", PROMPT, ["L0 H0"], "zero", False, api_name="/ablate")  # warm-up: caches the val batches
    ablate = []
    for i in range(n):  # a different head each time, as a class ticks boxes
        start = time.perf_counter()
        client.predict("gpt", PROMPT, [f"L{i % 6} H{(i // 6) % 6}"], "zero", False, api_name="/ablate")
        ablate.append(time.perf_counter() - start)
    rank, notes = [], []
    for _ in range(rank_runs):
        start = time.perf_counter()
        try:
            note = client.predict(ranked, "zero", False, api_name="/rank")[0]
        except Exception as exc:  # e.g. a served gpt with random weights records no corpus: nothing to rank on
            notes.append(f"/rank refused: {exc}"[:300])
            break
        rank.append(time.perf_counter() - start)
        notes.append(note)
    client.close()
    return {"ablate_s": ablate, "rank_s": rank, "rank_notes": notes}


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    folder, served = shelf(options)
    n, rank_runs = (3, 1) if options.quick else (30, 3)
    ranked = rank_model(folder, options)
    with served_app(folder) as (url, _, _):
        timings = requests(url, n, ranked, rank_runs)
    load = Row("", None, "").load1
    row = partial(Row, threads=os.cpu_count() or 1, load1=load)  # the app runs one PyTorch thread per core
    ablate_ms = [1e3 * t for t in timings["ablate_s"]]
    p50_s = median(ablate_ms) / 1e3
    rank_s = median(timings["rank_s"]) if timings["rank_s"] else None
    found = RANKED.search(timings["rank_notes"][-1])
    measured, total = (int(found[1]), int(found[2])) if found else (0, 0)
    whole = measured == total > 0  # a ranking cut short by the app's 60 s limit does not count as met
    rows = [
        row("/ablate on gpt, one head off (prompt and val loss both ways): p50", round(1e3 * p50_s), "ms",
            f"≤ {TARGETS['ablate_p50'] * 1e3:g} ms", judge(p50_s, TARGETS["ablate_p50"], False, options)),
        row("/ablate: p95", round(percentile(ablate_ms, 95)), "ms"),
        row(f"/rank on {ranked}: every head switched off in turn ({measured} of {total} heads)",
            round(rank_s, 1) if rank_s is not None else None, "s",
            f"≤ {TARGETS['rank_s']:g} s" if ranked == "gpt" else "",
            (judge(rank_s, TARGETS["rank_s"], False, options) and whole) if ranked == "gpt" else None,
            note=(f"median of {len(timings['rank_s'])}: " + ", ".join(f"{t:.1f}" for t in timings["rank_s"]) + " s"
                  if rank_s is not None else timings["rank_notes"][-1])),
    ]
    notes = [f"Served: {served}. {n} /ablate requests (a different head each), then {rank_runs} /rank requests, one "
             "at a time through gradio_client on 127.0.0.1 after one warm-up; each measures its loss on the first 4 "
             "fixed evaluation batches of Tiny Shakespeare's val split (8 rows × block_size tokens)."]
    return {"rows": [r.to_dict() for r in rows], "raw": timings, "notes": notes}
