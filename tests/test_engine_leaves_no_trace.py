"""The generation engine changes nothing outside itself: threads started later keep the process's intra-op
thread count, and its batch cache holds no more rows than the engine decodes together."""

from __future__ import annotations

import threading

import torch

from gptlab import GenerationSettings, ModelConfig
from gptlab.generate import GenerationEngine
from gptlab.models import build_model


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=20)).eval()


def count_in_a_new_thread() -> int:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_threads_started_after_the_engine_keep_the_process_intra_op_count():
    """torch.set_num_threads in the engine thread also sets the count every later thread starts from (a server's
    worker threads for the other tabs computed on one thread after the first Generate)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a process count the engine's one thread differs from, on any machine
    try:
        assert count_in_a_new_thread() == 2
        model = tiny_model()  # the engine holds its model by weak reference
        tokens = list(GenerationEngine(model).stream([1, 2, 3], GenerationSettings(max_new_tokens=5, seed=0)))
        assert len(tokens) == 5
        assert count_in_a_new_thread() == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_batch_cache_holds_no_more_rows_than_the_engine_decodes_together():
    """Its storage grew in steps of at least four rows (and doubled), past max_rows, and stays for the
    model's life: 64 rows of the shipped gpt are 75 MB, up to 126 were allocated."""
    model = tiny_model()
    engine = GenerationEngine(model, max_rows=2)
    settings = GenerationSettings(max_new_tokens=6, seed=1)
    streams = [engine.stream([1, 2, 3][: n + 1], settings) for n in range(3)]
    firsts = [next(stream) for stream in streams]  # three requests in flight, two rows at a time
    assert len(firsts) == 3 and all(len(list(stream)) == 5 for stream in streams)
    assert engine.peak_rows == 2
    assert len(engine.cache.lengths) <= 2
    assert all(layer.k.size(0) <= 2 and layer.v.size(0) <= 2 for layer in engine.cache.storage)


def test_a_forked_child_sets_its_own_count_without_waiting_for_the_parents_helper():
    """The helper thread that puts the process's count back does not exist in a forked child (as DataLoader
    workers or multiprocessing's fork start): the child must start its own, not wait forever for the parent's."""
    import os
    import time

    from gptlab.generate.threads import set_own_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        set_own_threads(1)  # the parent's helper exists now
        torch.set_num_threads(2)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 once its own count is set
            os._exit(0 if set_own_threads(1) == 2 and torch.get_num_threads() == 1 else 1)
        deadline = time.monotonic() + 60
        while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if waited[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert waited[0] == pid and os.waitstatus_to_exitcode(waited[1]) == 0
    finally:
        torch.set_num_threads(before)
