"""Section 6, the app: start-up time, attention and first-token latency on loopback, peak memory.

``python app.py`` runs as a subprocess on 127.0.0.1; requests go through gradio_client like
any API caller, one at a time (a bounded number), so the latencies are those of an idle server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from gptlab.prompts import GENERATE_PROMPT, fit_text
from gptlab.tokenizers import load_tokenizer

from .common import REPO, Options, Row, judge, median, percentile
from .models import DEFAULT_CHECKPOINT, default_model
from .quality import corpus

FOLLOW_TARGET_MS = 300.0  # a move along the text (issue 14): the shading follows a held arrow key
START_LIMIT_S = 180  # give up on a server that has not answered by then (a loaded machine is slow)
# /surprise scores a 2,000-character text window by window (two models for A minus B): a class waits ~1 s
TARGETS = {"start": 10.0, "attention_p50": 150.0, "first_token": 200.0, "surprise_p50": 1500.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shelf(options: Options) -> tuple[Path, str]:
    """The folder of checkpoints the app serves: ./checkpoints when it holds gpt, else a random gpt."""
    if DEFAULT_CHECKPOINT.is_dir():
        return DEFAULT_CHECKPOINT.parent, "./checkpoints (every shipped model; measured on gpt)"
    from gptlab import CharTokenizer, load_text, save_checkpoint

    folder = options.workdir / "app-checkpoints"
    model, label = default_model(options)
    tokenizer = CharTokenizer.train(load_text(corpus(options)))
    save_checkpoint(folder / "gpt", model, tokenizer, metrics={"best": {}, "history": []})
    return folder, f"a temporary folder holding only {label}"


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the resident set's high-water mark) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def wait_for_page(url: str, process: subprocess.Popen) -> float:
    """Poll the page until it answers 200; the time is measured by the caller."""
    deadline = time.perf_counter() + START_LIMIT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the app did not answer within {START_LIMIT_S} s")


def requests(url: str, block_size: int, n: int, text: str, gen_prompt: str) -> dict[str, Any]:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    prompt = (text * (block_size // max(1, len(text)) + 1))[:block_size]  # exactly the full context
    attention: list[float] = []
    first_token: list[float] = []
    client.predict("gpt", prompt, 0, 0, -1, api_name="/attention")  # warm-up: first call builds the plots
    for _ in range(n):
        start = time.perf_counter()
        client.predict("gpt", prompt, 0, 0, -1, api_name="/attention")
        attention.append(time.perf_counter() - start)
    for _ in range(n):
        start = time.perf_counter()
        job = client.submit("gpt", gen_prompt, 20, 0.8, 0, 1.0, 0, api_name="/generate")
        first = None
        for text_so_far in job:  # each value is the prompt plus the text so far
            if first is None and len(text_so_far) > len(gen_prompt):
                first = time.perf_counter() - start
        first_token.append(first if first is not None else float("nan"))
    client.close()
    return {"attention_s": attention, "first_token_s": first_token, "prompt_chars": len(prompt)}


def surprise_requests(url: str, n: int, text: str, against: bool) -> dict[str, Any]:
    """/surprise on ``text`` (the cap, 2,000 characters): gpt minus bigram when ``against``, else gpt's bits."""
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    args = (text, "gpt", "bigram" if against else "gpt", "A minus B" if against else "bits of A", False)
    client.predict(*args, api_name="/surprise")  # warm-up
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        client.predict(*args, api_name="/surprise")
        seconds.append(time.perf_counter() - start)
    client.close()
    return {"surprise_s": seconds, "surprise_chars": len(text), "surprise_against": against}


@contextmanager
def served_app(folder: Path) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """``python app.py`` serving ``folder`` on a free loopback port: (url, process, seconds to its first page).
    The app's log is printed if the body fails; the app is stopped on the way out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if k not in ("GPTLAB_HUB_MODELS", "GPTLAB_CHECKPOINTS")}
    env |= {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port),
                                "--checkpoints", str(folder)], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        yield url, process, wait_for_page(url, process) - start
    except Exception:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def follow_requests(url: str, n: int, text: str, block_size: int) -> dict[str, Any]:
    """/follow as a visitor moves along a prompt of the full context with → (one position per request, gpt layer 0
    head 0): each move re-reads the prompt's kept attention; the first request, which captures it, is a warm-up."""
    from gradio_client import Client

    prompt = (text * (block_size // max(1, len(text)) + 1))[:block_size]

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    client.predict("gpt", prompt, 0, 0, "head", 0, False, api_name="/follow")
    moves = []
    for i in range(n):
        start = time.perf_counter()
        client.predict("gpt", prompt, 0, 0, "head", (i + 1) % len(prompt), False, api_name="/follow")
        moves.append(time.perf_counter() - start)
    client.close()
    return {"follow_move_s": moves, "follow_chars": len(prompt)}


def follow_rows(row: Any, timings: dict[str, Any], options: Options) -> list[Row]:
    """The Follow one character rows: p50 (judged against FOLLOW_TARGET_MS) and p95 per move."""
    ms = [1e3 * t for t in timings["follow_move_s"]]
    return [row(f"/follow, follow one character: p50 per move at {timings['follow_chars']} characters",
                round(median(ms)), "ms", f"≤ {FOLLOW_TARGET_MS:g} ms",
                judge(median(ms), FOLLOW_TARGET_MS, False, options)),
            row("/follow: p95 per move", round(percentile(ms, 95)), "ms")]


def run(options: Options, done: dict[str, Any]) -> dict[str, Any]:
    folder, served = shelf(options)
    model, label = default_model(options)
    n = 3 if options.quick else 30
    with served_app(folder) as (url, process, start_s):
        start_load = Row("", None, "").load1
        text = _corpus_head(corpus(options))
        # the app's default prompt, without any character the served model has never seen
        gen_prompt = fit_text(load_tokenizer(folder / "gpt"), GENERATE_PROMPT).text
        timings = requests(url, model.config.block_size, n, text, gen_prompt)
        from gptlab_app.common import MAX_PROMPT_CHARS  # the server's cap on a text

        against = (folder / "bigram").is_dir()
        timings |= surprise_requests(url, max(3, n // 3), text[:MAX_PROMPT_CHARS], against)
        timings |= follow_requests(url, n, text, model.config.block_size)
        rss = peak_rss_mib(process.pid)
    att_ms = [1e3 * t for t in timings["attention_s"]]
    ttft_ms = [1e3 * t for t in timings["first_token_s"]]
    load = Row("", None, "").load1
    stats = {"start_s": start_s, "attention_p50_ms": median(att_ms), "attention_p95_ms": percentile(att_ms, 95),
             "first_token_p50_ms": median(ttft_ms), "first_token_p95_ms": percentile(ttft_ms, 95),
             "peak_rss_mib": rss, "surprise_p50_ms": median([1e3 * t for t in timings["surprise_s"]])}
    row = partial(Row, threads=os.cpu_count() or 1, load1=load)  # the app runs one PyTorch thread per core
    rows = [
        row("start to first page", round(start_s, 2), "s", f"≤ {TARGETS['start']:g} s",
            judge(start_s, TARGETS["start"], False, options), load1=start_load),
        row(f"/attention at full context ({timings['prompt_chars']} chars): p50", round(stats["attention_p50_ms"]),
            "ms", f"≤ {TARGETS['attention_p50']:g} ms",
            judge(stats["attention_p50_ms"], TARGETS["attention_p50"], False, options)),
        row("/attention: p95", round(stats["attention_p95_ms"]), "ms"),
        row("/generate: time to first token, p50", round(stats["first_token_p50_ms"]), "ms",
            f"≤ {TARGETS['first_token']:g} ms",
            judge(stats["first_token_p50_ms"], TARGETS["first_token"], False, options)),
        row("/generate: time to first token, p95", round(stats["first_token_p95_ms"]), "ms"),
        row(f"/surprise on {timings['surprise_chars']:,} chars ({'gpt − bigram' if against else 'gpt'}): p50",
            round(stats["surprise_p50_ms"]), "ms", f"≤ {TARGETS['surprise_p50']:g} ms",
            judge(stats["surprise_p50_ms"], TARGETS["surprise_p50"], False, options)),
        *follow_rows(row, timings, options),
        row("peak memory of the app process (VmHWM)", round(rss, 1) if rss else None, "MiB"),
    ]
    notes = [f"Served: {served}; model {label}. {n} requests of each kind, one at a time, through gradio_client "
             "on 127.0.0.1, after one warm-up request; latencies are client round trips."]
    notes.append(f"/follow: {len(timings['follow_move_s'])} moves of one position (→), after one warm-up request "
                 "that captures the prompt's attention; a move re-reads it.")
    notes.append(f"/surprise: {len(timings['surprise_s'])} requests after one warm-up, the first "
                 f"{timings['surprise_chars']:,} characters of the corpus (the server's cap on a text).")
    return {"rows": [r.to_dict() for r in rows], "raw": {**stats, **timings}, "notes": notes}


def _corpus_head(path: str) -> str:
    from gptlab import load_text

    return load_text(path)[:5000]
