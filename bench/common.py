"""What every section shares: timing, medians, the machine's load, and result rows."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
VOCAB = 65  # Tiny Shakespeare's characters: the vocabulary of every random-weight model here


@dataclass
class Options:
    """How a section should run: quick (smoke sizes) or full, and with how many threads."""

    quick: bool = False
    threads: int = 0
    workdir: Path = Path(".")
    peer_nanogpt: Path | None = None  # a nanoGPT checkout to run beside gptlab (bench/peer.py), if given

    @property
    def thread_count(self) -> int:
        """PyTorch threads to use: the --threads value, or one per core."""
        return self.threads or os.cpu_count() or 1

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def load() -> tuple[float, float, float]:
    """1-, 5- and 15-minute load averages (this process's own work included)."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


@dataclass
class Row:
    """One measured figure, with its target, whether the target is met, and the load it ran under."""

    what: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target, or not judged (quick run, not reached)
    threads: int = field(default_factory=torch.get_num_threads)
    load1: float = field(default_factory=lambda: load()[0])
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(value: float | None, target: float, higher_is_better: bool, options: Options) -> bool | None:
    """Met or not; quick runs are smoke tests at other sizes, so they judge nothing."""
    if options.quick or value is None or not math.isfinite(value):
        return None
    return value >= target if higher_is_better else value <= target


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a small sample; None for no values (every request failed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def time_call(fn: Callable[[], Any], min_time: float = 0.0) -> float:
    """Seconds per call of fn, repeating until at least min_time has passed (one call at least)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def machine() -> dict[str, Any]:
    """CPU model, cores, threads, versions and load: printed at the top of RESULTS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma") if f" {f}" in flags]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "simd": simd,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_at_start": list(load()),
    }
