"""A classroom at once: N concurrent gradio_client users against the app, on loopback only.

    python -m bench.load --users 30 --seconds 60
    python -m bench.class_load                    # 30 learners press Generate together (section 6b)

Starts ``app.py`` as a subprocess on a free 127.0.0.1 port (or targets ``--url`` on loopback),
runs N user threads that mix generation, side-by-side and attention requests with a short think
time between them, and stops by itself: no new request after ``--seconds``, at most
``--max-requests`` in all, each request given ``--request-timeout`` seconds. Reports requests
served and failed, p50/p95 latency per endpoint, the app's peak RSS (VmHWM) and its RSS over
time (first- and last-quarter means), and writes ``bench/load_results.json`` and ``bench/LOAD.md``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gptlab.prompts import ATTENTION_PROMPT, EXAMPLES, LOOK_PROMPT

from .common import percentile

REPO = Path(__file__).resolve().parent.parent
RESULTS_JSON = REPO / "bench" / "load_results.json"
RESULTS_MD = REPO / "bench" / "LOAD.md"
# the app's own examples and defaults: the app fits them to any model it serves (gptlab.prompts)
PROMPTS = [*EXAMPLES, ATTENTION_PROMPT, LOOK_PROMPT]
ENDPOINTS = ("/generate", "/compare", "/attention")
MIX = (0.5, 0.25, 0.25)  # a class mostly generates; a quarter compares, a quarter looks at attention
ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}


def require_loopback(url: str) -> str:
    """The URL if its host is a loopback address; anything else is refused (this tool never leaves the machine)."""
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"error: --url must be on loopback (127.0.0.1, ::1 or localhost), got {host or url!r}.")
    return url.rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(checkpoints: str, models: str, log: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free loopback port; returns the process and its URL once it answers."""
    import httpx

    port = free_port()
    cmd = [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--checkpoints", checkpoints] if checkpoints else []
    cmd += ["--models", models] if models else []
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **ENV}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"error: the app exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"error: the app did not answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")
    except BaseException:  # Ctrl-C while waiting too: no app is left running behind the caller's back
        stop_app(proc)
        raise


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return values


class MemorySampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (monotonic time, RSS MiB)
        self.peak = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                mem = proc_memory(self.pid)
            except (OSError, ValueError):
                return  # the process is gone
            self.samples.append((time.monotonic(), mem.get("VmRSS", 0.0)))
            self.peak = max(self.peak, mem.get("VmHWM", 0.0))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


@dataclass
class Models:
    """What the running app offers, read from its /models endpoint."""

    names: list[str]
    attention: dict[str, tuple[int, int]]  # name -> (n_layer, n_head)

    @classmethod
    def read(cls, client) -> Models:
        table, _ = client.predict(api_name="/models")
        names, attention = [], {}
        for row in table["data"]:
            name, kind, shape = row[0], row[1], row[4]
            if kind in ("—", None):  # failed to load: not offered
                continue
            names.append(name)
            if kind != "bigram" and "×" in str(shape):
                layers, heads, _ = (int(n) for n in str(shape).split("×"))
                attention[name] = (layers, heads)
        if not names:
            raise SystemExit("error: the app offers no models; give --checkpoints with trained models.")
        return cls(names, attention)


@dataclass
class Tally:
    """Every request's outcome, shared by the user threads."""

    max_requests: int
    started: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    failures: dict[str, list[str]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        """Reserve one request from the budget; False once it is spent."""
        with self.lock:
            if self.started >= self.max_requests:
                return False
            self.started += 1
            return True

    def record(self, endpoint: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[endpoint].append(seconds)
            else:
                self.failures[endpoint].append(error)


def request_args(endpoint: str, models: Models, rng: random.Random, prompts: list[str]) -> tuple:
    """What a learner would send: the app's default settings, a prompt from the examples, any seed."""
    prompt, seed = rng.choice(prompts), rng.randrange(2**31)
    if endpoint == "/generate":
        return (rng.choice(models.names), prompt, rng.choice([100, 200, 300]), 0.8, 0, 1.0, seed)
    if endpoint == "/compare":
        left = "bigram" if "bigram" in models.names else models.names[0]
        return (left, rng.choice(models.names), prompt, rng.choice([100, 250]), 0.8, seed)
    name = rng.choice(list(models.attention))
    layers, heads = models.attention[name]
    return (name, prompt, rng.randrange(layers), rng.randrange(heads), -1)


def user(url: str, models: Models, tally: Tally, end: float, think: tuple[float, float], timeout: float,
         seed: int, prompts: list[str]) -> None:
    """One learner: request, read the answer for a moment, request again, until the time or budget runs out."""
    from gradio_client import Client

    rng = random.Random(seed)
    endpoints = [e for e in ENDPOINTS if e != "/attention" or models.attention]
    weights = [w for e, w in zip(ENDPOINTS, MIX, strict=True) if e in endpoints]
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    except Exception as exc:  # a user who cannot even connect counts as a failed request
        tally.record("/generate", 0.0, f"connect: {type(exc).__name__}: {exc}")
        return
    time.sleep(rng.uniform(0, think[1]))  # learners do not all click at the same instant
    while time.monotonic() < end and tally.take():
        endpoint = rng.choices(endpoints, weights)[0]
        args = request_args(endpoint, models, rng, prompts)
        start = time.monotonic()
        try:
            client.submit(*args, api_name=endpoint).result(timeout=timeout)
            error = None
        except Exception as exc:  # every failure is recorded with its type and message, then the user goes on
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        tally.record(endpoint, time.monotonic() - start, error)
        time.sleep(rng.uniform(*think))


def quarter_means(samples: list[tuple[float, float]], start: float, end: float) -> tuple[float | None, float | None]:
    """Mean RSS over the first and the last quarter of [start, end]."""
    quarter = (end - start) / 4
    first = [m for t, m in samples if start <= t <= start + quarter]
    last = [m for t, m in samples if end - quarter <= t <= end]
    mean = (lambda xs: round(sum(xs) / len(xs), 1) if xs else None)
    return mean(first), mean(last)


def run_load(users: int = 30, seconds: float = 60.0, url: str | None = None, checkpoints: str = "",
             models: str = "", think: tuple[float, float] = (0.5, 2.0), request_timeout: float = 120.0,
             max_requests: int | None = None, pid: int | None = None, seed: int = 0,
             prompts: list[str] | None = None) -> dict[str, Any]:
    """Run the load and return its results (see the module docstring)."""
    from gradio_client import Client

    log = Path(tempfile.mkdtemp(prefix="gptlab-load-")) / "app.log"
    proc = None
    if url is not None:
        url = require_loopback(url)  # before any request
    else:
        proc, url = start_app(checkpoints, models, log)
        pid = proc.pid
    sampler = None
    try:
        offered = Models.read(Client(url, verbose=False, analytics_enabled=False, download_files=False))
        tally = Tally(max_requests or int(users * seconds))
        if pid is not None:
            sampler = MemorySampler(pid)
            sampler.start()
        load_before = os.getloadavg()
        start = time.monotonic()
        end = start + seconds
        threads = [threading.Thread(target=user, args=(url, offered, tally, end, think, request_timeout, seed + i,
                                                            prompts or PROMPTS),
                                    daemon=True) for i in range(users)]
        for t in threads:
            t.start()
        for t in threads:  # each user stops by itself: no request after `end`, none longer than the timeout
            t.join(max(0.0, end - time.monotonic()) + request_timeout + think[1] + 30)
        stopped = time.monotonic()
        load_after = os.getloadavg()
    finally:
        if sampler is not None:
            sampler.stop()
        if proc is not None:
            stop_app(proc)
    stuck = sum(t.is_alive() for t in threads)
    per_endpoint = {}
    for endpoint in ENDPOINTS:
        lat = tally.latencies[endpoint]
        per_endpoint[endpoint] = {
            "served": len(lat), "failed": len(tally.failures[endpoint]),
            "p50_s": _round(percentile(lat, 50)), "p95_s": _round(percentile(lat, 95)),
            "max_s": _round(max(lat) if lat else None),
        }
    first_q, last_q = quarter_means(sampler.samples, start, stopped) if sampler else (None, None)
    all_lat = [x for lat in tally.latencies.values() for x in lat]
    return {
        "users": users, "seconds": seconds, "ran_s": round(stopped - start, 1), "think_s": list(think),
        "request_timeout_s": request_timeout, "max_requests": tally.max_requests,
        "url": url if proc is None else "app.py subprocess on 127.0.0.1",
        "models": offered.names, "attention_models": list(offered.attention),
        "served": len(all_lat), "failed": sum(len(f) for f in tally.failures.values()), "users_stuck": stuck,
        "p50_s": _round(percentile(all_lat, 50)), "p95_s": _round(percentile(all_lat, 95)),
        "per_endpoint": per_endpoint,
        "errors": [e for f in tally.failures.values() for e in f][:10],
        "memory": {
            "peak_rss_mib": round(sampler.peak, 1) if sampler else None,
            "rss_first_quarter_mib": first_q, "rss_last_quarter_mib": last_q,
            "rss_samples_mib": [[round(t - start, 1), round(m, 1)] for t, m in sampler.samples] if sampler else [],
        },
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def markdown(result: dict[str, Any]) -> str:
    """A section for bench/RESULTS.md."""
    mem = result["memory"]
    load = result["load_average"]
    lines = [
        f"## Load: {result['users']} learners for {result['seconds']:.0f} s",
        "",
        f"{result['when']} · {result['cpus']} CPU cores · models {', '.join(result['models'])} · "
        f"think time {result['think_s'][0]}–{result['think_s'][1]} s between requests · "
        f"load average before {load['before'][0]}, after {load['after'][0]} (1 min).",
        "",
        f"**{result['served']} requests served, {result['failed']} failed**; p50 {result['p50_s']} s, "
        f"p95 {result['p95_s']} s over all endpoints.",
        "",
        "| endpoint | served | failed | p50 (s) | p95 (s) | max (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for endpoint, row in result["per_endpoint"].items():
        lines.append(f"| `{endpoint}` | {row['served']} | {row['failed']} | {row['p50_s']} | {row['p95_s']} | "
                     f"{row['max_s']} |")
    lines += [
        "",
        f"App memory: peak RSS {mem['peak_rss_mib']} MiB; mean RSS {mem['rss_first_quarter_mib']} MiB in the "
        f"first quarter of the run, {mem['rss_last_quarter_mib']} MiB in the last.",
    ]
    if result.get("note"):
        lines += ["", result["note"]]
    if result["errors"]:
        lines += ["", "First errors:", "", *[f"- `{e}`" for e in result["errors"]]]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], json_path: Path = RESULTS_JSON, md_path: Path = RESULTS_MD) -> None:
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown(result))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30, help="concurrent learners (threads)")
    parser.add_argument("--seconds", type=float, default=60.0, help="no new request after this many seconds")
    parser.add_argument("--url", default=None, help="a running app on loopback (default: start app.py)")
    parser.add_argument("--pid", type=int, default=None, help="with --url: the app's process id, for memory")
    parser.add_argument("--checkpoints", default="", help="checkpoint folder for the started app")
    parser.add_argument("--models", default="", help="comma-separated models for the started app")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                        help="seconds a learner waits between requests")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="a request slower than this fails")
    parser.add_argument("--max-requests", type=int, default=None, help="budget in all (default users x seconds)")
    parser.add_argument("--prompt", action="append", default=None, help="a prompt to send (repeatable; "
                        "default: the app's examples)")
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else ran on the machine)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON)
    parser.add_argument("--md", type=Path, default=RESULTS_MD)
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds <= 0:
        parser.error("--users must be at least 1 and --seconds above 0")
    if args.url:
        require_loopback(args.url)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_load(args.users, args.seconds, args.url, args.checkpoints, args.models, tuple(args.think),
                      args.request_timeout, args.max_requests, args.pid, prompts=args.prompt)
    result["note"] = args.note
    write_results(result, args.json, args.md)
    print(markdown(result))
    print(f"wrote {args.json} and {args.md}")
    return 1 if result["failed"] or result["users_stuck"] else 0


if __name__ == "__main__":
    from gptlab.cli import run_cli

    raise SystemExit(run_cli(main))
