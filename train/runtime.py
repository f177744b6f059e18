"""Process-wide CPU settings the training loop applies before its first step.

Each one was measured on a 2-core CPU (docs/TRAINING.md, bench/RESULTS.md): they change how
fast a step runs, never what it computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc serve large tensors from its heap and keep memory it gets back.

    By default glibc gives every allocation above 32 MB (a classic-size attention matrix is
    100 MB at batch 64) fresh pages from mmap and unmaps them at free, so each training step
    pays a page fault per 4 KB to zero them again: the classic GPT trained 27-37% slower for it.
    The cost is that the process keeps its peak memory until it exits. False where not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl and other libcs without these knobs return 0 or lack it
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def tune_cpu_process() -> dict[str, bool]:
    """Flush denormal floats to zero and keep freed memory; returns what took effect."""
    # Tiny values (Newton-Schulz, Adam moments late in training) become denormal floats,
    # which x86 CPUs process ~100x slower; flushing them to zero changes nothing measurable.
    return {"flush_denormal": torch.set_flush_denormal(True), "keep_freed_memory": keep_freed_memory()}
