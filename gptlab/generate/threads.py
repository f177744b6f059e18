"""One thread's own intra-op thread count, without changing the count of threads started later.

``torch.set_num_threads(n)`` sets two things: the calling thread's OpenMP/MKL count (per thread) and a
process-wide count that every thread started later takes on its first parallel op. Decoding wants the first
only: after the generation engine's thread set itself to one, every thread started later (a server's worker
threads, which run the other tabs) computed on one thread too. ``set_own_threads`` sets the caller's count
and has a helper thread, whose own count does not matter, put the process-wide one back.
"""

from __future__ import annotations

import queue
import threading

import torch

_requests: queue.SimpleQueue = queue.SimpleQueue()  # (count, done event) for the helper
_lock = threading.Lock()
_helper: threading.Thread | None = None


def _serve() -> None:
    while True:
        count, done = _requests.get()
        torch.set_num_threads(count)  # this helper's own count, and the process-wide one
        done.set()


def _set_process_count(count: int) -> None:
    """The count threads started from now on begin with, set from the helper thread (started on first use)."""
    global _helper
    if _helper is None:
        # a daemon: it only ever waits for a request, and holds nothing the interpreter's exit needs
        _helper = threading.Thread(target=_serve, name="gptlab-thread-count", daemon=True)
        _helper.start()
    done = threading.Event()
    _requests.put((count, done))
    done.wait()


def set_own_threads(count: int) -> int:
    """Set the calling thread's intra-op thread count to ``count`` (a whole number >= 1) and return its previous
    count; threads started later keep beginning with that previous count (in a fresh thread, the process's)."""
    # one at a time: a fresh thread's first call reads the process-wide count, which another caller's
    # torch.set_num_threads would otherwise have changed until its helper put it back
    with _lock:
        previous = torch.get_num_threads()
        if previous != count:
            torch.set_num_threads(count)
            _set_process_count(previous)
    return previous
