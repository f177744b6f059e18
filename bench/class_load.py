"""A class presses Generate together: N learners fire /generate at the same instant (issue 16).

    python -m bench.class_load [--users 30] [--note TEXT]   # or: python -m bench --only class

``python app.py`` on a free 127.0.0.1 port serves the shipped ``gpt``. Each learner talks to it as a browser
tab does (Gradio's queue: join, then the session's event stream), all from one asyncio thread of this
process, so the learners cost the 2 cores almost nothing (their CPU time is reported): in a classroom each
browser runs on its own laptop. Each learner first opens the page (its session's first event, as the page's
load events are; Gradio builds a session's state then, about 30 ms of the server's event loop each for this
app's 245 components), then all N press Generate together, each their own prompt and seed. One learner alone
first asks a few times (time to the first streamed piece). Reports the first streamed piece and the completion
per learner (p50/p95/max, seconds from the release) and failures, beside the figures of the code before the
generation engine (each request its own batch-1 decode, four at a time), measured on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .common import Options, Row, judge, median, percentile
from .load import PROMPTS, REPO, start_app, stop_app

BEFORE = {"first_p50_s": 5.8, "first_p95_s": 12.5, "done_p50_s": 7.6, "done_max_s": 13.3}  # the figures
TARGETS = {"first_p95_s": 1.0, "done_p95_s": 2.5, "alone_first_ms": 200.0}
OPEN_PAGE = "opening_tab"  # a load event of the page with no inputs: the learner's session's first event


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def press(http, url: str, session: str, fn_index: int, data: list, timeout: float) -> dict[str, Any]:
    """One event in one session, as a browser tab sends it: join Gradio's queue, then read the session's
    stream until the event completes. Seconds to its first streamed piece and to its end, or an error."""
    start = time.monotonic()
    first, pieces = None, 0
    try:
        joined = await http.post(f"{url}/gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        async with asyncio.timeout(timeout), http.stream(
                "GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id:
                    continue
                if message.get("msg") == "process_generating":
                    pieces += 1
                    first = first if first is not None else time.monotonic() - start
                elif message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(str(message.get("output"))[:200])
                    return {"first_s": first, "done_s": time.monotonic() - start, "pieces": pieces}
        raise RuntimeError("the stream ended before the event completed")
    except Exception as exc:  # recorded, then the report counts it
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


async def _class(url: str, users: int, chars: int, model: str, alone_repeats: int, timeout: float, app_pid: int
                 ) -> tuple[list[float], list[dict[str, Any]], float, float]:
    import httpx

    config = httpx.get(f"{url}/config", timeout=30).json()
    index = {d.get("api_name"): d["id"] for d in config["dependencies"]}
    generate, open_page = index["generate"], index[OPEN_PAGE]
    settings = lambda i, seed: [model, PROMPTS[i % len(PROMPTS)], chars, 0.8, 0, 1.0, seed]  # noqa: E731
    limits = httpx.Limits(max_connections=4 * users + 8, max_keepalive_connections=4 * users + 8)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        alone = []
        for seed in range(alone_repeats + 1):  # the first one warms up
            session = uuid.uuid4().hex
            await press(http, url, session, open_page, [], timeout)
            result = await press(http, url, session, generate, settings(0, seed), timeout)
            if seed and result.get("first_s") is not None:
                alone.append(result["first_s"])
        sessions = [uuid.uuid4().hex for _ in range(users)]
        await asyncio.gather(*(press(http, url, s, open_page, [], timeout) for s in sessions))  # pages open
        cpu, app_cpu = own_cpu_seconds(), cpu_seconds(app_pid)
        results = await asyncio.gather(*(press(http, url, s, generate, settings(i, 1000 + i), timeout)
                                         for i, s in enumerate(sessions)))
        return alone, list(results), own_cpu_seconds() - cpu, cpu_seconds(app_pid) - app_cpu


def class_at_once(users: int = 30, chars: int = 200, model: str = "gpt", alone_repeats: int = 5,
                  timeout: float = 120.0, checkpoints: str = "") -> dict[str, Any]:
    """Run the single-learner probe, then the class released together; return the figures."""
    log = Path(tempfile.mkdtemp(prefix="gptlab-class-")) / "app.log"
    proc, url = start_app(checkpoints, model, log)
    try:
        load_before, cpu_before = os.getloadavg(), cpu_seconds(proc.pid)
        alone, results, learners_cpu, class_cpu = asyncio.run(
            _class(url, users, chars, model, alone_repeats, timeout, proc.pid))
        load_after, app_cpu = os.getloadavg(), cpu_seconds(proc.pid) - cpu_before
    finally:
        stop_app(proc)
    firsts = [r["first_s"] for r in results if r.get("first_s") is not None]
    dones = [r["done_s"] for r in results if "done_s" in r]
    failed = [r.get("error", "no answer") for r in results if "done_s" not in r]
    rounded = (lambda x: None if x is None else round(x, 3))
    return {
        "users": users, "chars": chars, "model": model, "temperature": 0.8, "served": len(dones),
        "failed": len(failed), "errors": failed[:5],
        "first_p50_s": rounded(percentile(firsts, 50)), "first_p95_s": rounded(percentile(firsts, 95)),
        "done_p50_s": rounded(percentile(dones, 50)), "done_p95_s": rounded(percentile(dones, 95)),
        "done_max_s": rounded(max(dones, default=None)),
        "pieces_p50": median([r["pieces"] for r in results if "pieces" in r]) if dones else None,
        "alone_first_ms": rounded(1e3 * median(alone)) if alone else None, "app_cpu_s": round(app_cpu, 2),
        "app_cpu_class_s": round(class_cpu, 2),
        "learners_cpu_s": round(learners_cpu, 2),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "before_engine": BEFORE, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def rows(result: dict[str, Any], options: Options) -> list[Row]:
    """The class row's figures beside the ones before the engine, each with its target."""
    load = result["load_average"]["before"][0]
    n, was = result["users"], result["before_engine"]
    return [
        Row(f"{n} learners at once: first streamed piece, p95", result["first_p95_s"], "s",
            f"p95 ≤ {TARGETS['first_p95_s']:g} s", judge(result["first_p95_s"], TARGETS["first_p95_s"], False, options),
            load1=load, note=f"p50 {result['first_p50_s']} s; before the engine {was['first_p50_s']} / "
                             f"{was['first_p95_s']} s"),
        Row(f"{n} learners at once: completion, p95", result["done_p95_s"], "s",
            f"p95 ≤ {TARGETS['done_p95_s']:g} s", judge(result["done_p95_s"], TARGETS["done_p95_s"], False, options),
            load1=load, note=f"p50 {result['done_p50_s']} s, last {result['done_max_s']} s; the app used "
                             f"{result['app_cpu_s']} CPU-s in all, {result.get('app_cpu_class_s')} of them while the "
                             f"class ran, the learners {result['learners_cpu_s']}; "
                             f"before the engine p50 {was['done_p50_s']} s, last {was['done_max_s']} s"),
        Row(f"{n} learners at once: failures", result["failed"], "", "0",
            None if options.quick else result["failed"] == 0, load1=load),
        Row("one learner alone: time to the first streamed piece", result["alone_first_ms"], "ms",
            f"≤ {TARGETS['alone_first_ms']:g} ms",
            judge(result["alone_first_ms"], TARGETS["alone_first_ms"], False, options), load1=load),
    ]


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    """Section 'class' of python -m bench (quick: 3 learners, 20 characters)."""
    users, chars = (3, 20) if options.quick else (30, 200)
    result = class_at_once(users, chars, alone_repeats=2 if options.quick else 5)
    load = result["load_average"]
    notes = [f"{users} learners, each a browser session (Gradio's queue protocol, from one asyncio thread), page "
             f"opened first, then Generate released together: `{result['model']}`, {chars} characters, temperature "
             f"0.8, each their own prompt (the app's examples) and seed; app.py on 127.0.0.1 on this machine's "
             f"cores (load {load['before'][0]} before, {load['after'][0]} after). 'Before the engine': the issue's "
             "figures for the same test with gradio_client learners, each request its own batch-1 decode, four "
             "at a time."]
    return {"rows": [r.to_dict() for r in rows(result, options)], "raw": result, "notes": notes}


def class_at_once_main(users: int, timeout: float, checkpoints: str, note: str) -> int:
    """Run bench/class_load.py's test once; write bench/class.json and bench/CLASS.md."""
    from .report import table

    result = class_at_once(users, timeout=timeout, checkpoints=checkpoints)
    result["note"] = note
    (REPO / "bench" / "class.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join([f"## A class presses Generate together ({result['when']}, {os.cpu_count()} cores)", "",
                      *table([r.to_dict() for r in rows(result, Options())], False), "", note]).rstrip() + "\n"
    (REPO / "bench" / "CLASS.md").write_text(text)
    print(text)
    return 1 if result["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.class_load", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30, help="learners released together")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="a request slower than this fails")
    parser.add_argument("--checkpoints", default="", help="checkpoint folder for the started app")
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else ran on the machine)")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be at least 1")
    return class_at_once_main(args.users, args.request_timeout, args.checkpoints, args.note)


if __name__ == "__main__":
    from gptlab.cli import run_cli

    raise SystemExit(run_cli(main))
