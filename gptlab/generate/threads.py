"""One thread's own intra-op thread count, without changing the count of threads started later.

``torch.set_num_threads(n)`` sets two things: the calling thread's OpenMP/MKL count (per thread) and a
process-wide count that every thread started later takes on its first parallel op. Decoding wants the first
only: after the generation engine's thread set itself to one, every thread started later (a server's worker
threads, which run the other tabs) computed on one thread too. ``set_own_threads`` sets the caller's count
and has a helper thread, whose own count does not matter, put the process-wide one back.
"""

from __future__ import annotations

import os
import queue
import threading

import torch

_lock = threading.Lock()
_helper: tuple[threading.Thread, queue.SimpleQueue] | None = None  # the helper and its (count, done) requests


def _serve(requests: queue.SimpleQueue) -> None:
    while True:
        count, done = requests.get()
        torch.set_num_threads(count)  # this helper's own count, and the process-wide one
        done.set()


def _set_process_count(count: int) -> None:
    """The count threads started from now on begin with, set from the helper thread (started on first use)."""
    global _helper
    if _helper is None or not _helper[0].is_alive():
        requests: queue.SimpleQueue = queue.SimpleQueue()
        # a daemon: it only ever waits for a request, and holds nothing the interpreter's exit needs
        thread = threading.Thread(target=_serve, args=(requests,), name="gptlab-thread-count", daemon=True)
        thread.start()
        _helper = (thread, requests)
    done = threading.Event()
    _helper[1].put((count, done))
    done.wait()


def _after_fork_in_child() -> None:
    """A forked child has no helper thread, and may have copied the lock held by another thread."""
    global _lock, _helper
    _lock, _helper = threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_own_threads(count: int) -> int:
    """Set the calling thread's intra-op thread count to ``count`` (a whole number >= 1) and return its previous
    count; threads started later keep beginning with that previous count (in a fresh thread, the process's)."""
    # one at a time: a fresh thread's first call reads the process-wide count, which another caller's
    # torch.set_num_threads would otherwise have changed until its helper put it back
    with _lock:
        previous = torch.get_num_threads()
        if previous != count:
            torch.set_num_threads(count)
            try:
                _set_process_count(previous)
            except BaseException:  # e.g. Ctrl-C during the wait: the caller's own count goes back too
                torch.set_num_threads(previous)
                raise
    return previous
