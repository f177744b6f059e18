"""Continuous batching: rows decoded together get the logits and the tokens they would get alone."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from conftest import train_tiny

from gptlab import GenerationSettings, ModelConfig, SettingsError, UnknownCharactersError, generate, generate_ids
from gptlab.generate import GenerationEngine
from gptlab.hooks import hooks
from gptlab.models.batch_cache import BatchKVCache

CONFIGS = {
    "gpt": ModelConfig(kind="gpt", n_layer=2, n_head=2, n_embd=32, block_size=16),
    "rope": ModelConfig(kind="gpt", n_layer=2, n_head=2, n_embd=16, block_size=16, pos="rope", qk_norm=True),
    "blocks": ModelConfig(kind="blocks", n_layer=2, n_head=4, n_embd=32, block_size=8),
    "multi_head": ModelConfig(kind="multi_head", n_layer=1, n_head=4, n_embd=32, block_size=8),
    "single_head": ModelConfig(kind="single_head", n_layer=1, n_head=1, n_embd=32, block_size=8),
    "bigram": ModelConfig(kind="bigram", block_size=8),
    "block1": ModelConfig(kind="gpt", n_layer=1, n_head=2, n_embd=16, block_size=1),
}
PROMPTS = ["F", "First Citizen:", "Before we proceed any further, hear me"]  # 1 token, short, over the context


@pytest.fixture(scope="module")
def models(tiny_text):
    return {name: train_tiny(config, tiny_text, steps=15) for name, config in CONFIGS.items()}


def crowd(engine: GenerationEngine, jobs: list[tuple[list[int], GenerationSettings]]) -> list[list[int]]:
    """Every job's tokens, all started before any is read on, so they are decoded together."""
    streams = [engine.stream(ids, s) for ids, s in jobs]
    firsts = [[next(stream)] for stream in streams]
    return [first + list(stream) for first, stream in zip(firsts, streams, strict=True)]


@pytest.mark.parametrize("name", ["gpt", "rope"])
@pytest.mark.parametrize("listening", [False, True])
def test_batched_logits_equal_one_sequence_logits(models, name, listening):
    """Rows of different lengths, one forward: each row's logits equal its own cached forward (<= 1e-5),
    on the fused path and on the written-out one (a hook listening)."""
    model, tok = models[name]
    rows = [tok.encode(p)[-12:] for p in PROMPTS]  # 1, 12 and 12 tokens: different positions
    rows[1] = rows[1][:7]
    alone = [model.new_cache() for _ in rows]
    batch = BatchKVCache(model.config.n_layer, model.config.block_size)
    with torch.no_grad():
        for i, (ids, kv) in enumerate(zip(rows, alone, strict=True)):
            model(torch.tensor([ids]), cache=kv)
            batch.put(i, kv)
        seen = {}
        listen = {f"transformer.h.{i}.attn.hook_pattern": (lambda t, i=i: seen.__setitem__(i, t))
                  for i in range(model.config.n_layer)} if listening else {}
        for step in range(4):  # row 2 reaches the context limit (16) at the last step
            new = [[(7 * step + 3 * i) % tok.vocab_size] for i in range(len(rows))]
            batch.begin(len(rows))
            with hooks(model, listen):
                together, _ = model(torch.tensor(new), cache=batch)
            for i, kv in enumerate(alone):
                own, _ = model(torch.tensor([new[i]]), cache=kv)
                torch.testing.assert_close(together[i, -1], own[0, -1], atol=1e-5, rtol=1e-5)
    assert bool(seen) == listening


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tokens_alone_and_in_a_crowd_equal_generate_ids(models, name):
    """Same ids, settings and seed: the engine's tokens are generate_ids's, alone or in a crowd, across
    the cache restarts at the context limit (60 tokens on a context of 16 or less)."""
    model, tok = models[name]
    settings = [GenerationSettings(max_new_tokens=60, temperature=t, top_k=k, top_p=p, seed=seed)
                for t, k, p, seed in [(0.8, 0, 1.0, 1), (1.2, 5, 1.0, 2), (1.0, 0, 0.9, 3), (0.0, 0, 1.0, 4)]]
    jobs = [(tok.encode(PROMPTS[i % len(PROMPTS)]), s) for i, s in enumerate(settings * 2)]
    expected = [list(generate_ids(model, ids, s)) for ids, s in jobs]
    engine = GenerationEngine(model)
    assert [list(engine.stream(ids, s)) for ids, s in jobs[:2]] == expected[:2]  # alone
    assert crowd(engine, jobs) == expected
    assert engine.peak_rows > 1  # they were decoded together


def test_a_closed_stream_frees_its_row(models):
    model, tok = models["gpt"]
    engine = GenerationEngine(model)
    long = GenerationSettings(max_new_tokens=20_000, seed=1)
    stream, other = engine.stream(tok.encode("First"), long), engine.stream(tok.encode("Be"), long)
    next(stream), next(other)
    stream.close()  # the app's Stop closes the stream the same way
    wait_for(lambda: engine.active == 1)
    other.close()
    wait_for(lambda: engine.active == 0 and engine._thread is None)  # the thread ends with the last row


def test_errors_come_before_any_work(models):
    model, tok = models["gpt"]
    engine = GenerationEngine(model)
    with pytest.raises(SettingsError, match="no tokens"):
        next(engine.stream([], GenerationSettings()))
    with pytest.raises(UnknownCharactersError):
        next(generate(model, tok, "First \u2603", GenerationSettings(), batched=True))
    with pytest.raises(SettingsError, match="temperature"):
        next(generate(model, tok, "First", GenerationSettings(temperature=-1.0), batched=True))
    for bad_ids in ([-1], [tok.vocab_size], [1, None], [True]):  # one bad row must not fail a whole batch
        with pytest.raises(SettingsError, match="Token ids must be whole numbers"):
            next(engine.stream(bad_ids, GenerationSettings()))
    with pytest.raises(SettingsError, match="top_p"):
        next(engine.stream([1], GenerationSettings(top_p=0.0)))
    assert engine.active == 0 and engine._thread is None
    assert list(engine.stream(tok.encode("First"), GenerationSettings(max_new_tokens=0))) == []


def test_token_ids_as_a_tensor_or_a_bad_kind_are_one_check_for_both_paths(models):
    model, tok = models["gpt"]
    engine = GenerationEngine(model)
    settings = GenerationSettings(max_new_tokens=8, seed=3)
    ids = tok.encode("First")
    expected = list(generate_ids(model, ids, settings))
    assert list(generate_ids(model, torch.tensor(ids), settings)) == expected  # a 1-D integer tensor is taken
    assert list(engine.stream(torch.tensor(ids), settings)) == expected
    bad = {  # each with the words its message must say
        "no tokens": [], "whole numbers in 0..": [tok.vocab_size], "1-D integer tensor": torch.tensor([ids]),
        "one row of whole numbers": torch.tensor([0.5, 1.0]), "not str": "First",
    }
    for message, bad_ids in bad.items():
        for start in (generate_ids, lambda _, ids, s: engine.stream(ids, s)):
            with pytest.raises(SettingsError, match=message):
                next(start(model, bad_ids, settings))
    wait_for(lambda: engine.active == 0)  # the finished row leaves at the engine's next step; no bad one joined


def test_batched_text_equals_the_one_sequence_text(models):
    model, tok = models["rope"]
    settings = GenerationSettings(max_new_tokens=50, seed=5)
    assert "".join(generate(model, tok, "First", settings, batched=True)) == "".join(
        generate(model, tok, "First", settings))


def wait_for(condition, limit_s: float = 30.0) -> None:
    """Poll until condition() holds (the engine thread acts at its next step); fail after limit_s."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the engine did not get there"
        time.sleep(0.01)


def test_many_threads_each_get_their_own_seed(models):
    model, tok = models["gpt"]
    engine = GenerationEngine(model)
    results: dict[int, list[int]] = {}

    def one(seed: int) -> None:
        results[seed] = list(engine.stream(tok.encode("First"), GenerationSettings(max_new_tokens=40, seed=seed)))

    threads = [threading.Thread(target=one, args=(seed,)) for seed in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, tokens in results.items():
        alone = generate_ids(model, tok.encode("First"), GenerationSettings(max_new_tokens=40, seed=seed))
        assert tokens == list(alone)


def test_a_reader_that_comes_back_late_gets_everything_made_meanwhile_in_one_chunk(models):
    """stream_chunks: a reader that visits a few times a second wakes once a visit, not once a token."""
    model, tok = models["gpt"]
    engine = GenerationEngine(model)
    settings = GenerationSettings(max_new_tokens=30, seed=3)
    chunks = engine.stream_chunks(tok.encode("First"), settings)
    first = next(chunks)
    wait_for(lambda: engine.active == 0)  # the row has made all its tokens while nobody read
    rest = list(chunks)
    assert len(rest) == 1 and first + rest[0] == list(generate_ids(model, tok.encode("First"), settings))


def test_the_engine_thread_computes_on_one_thread_and_leaves_the_callers_setting_alone(models):
    """OpenMP's thread count is per thread: the engine's forward runs on ENGINE_THREADS, the caller keeps its own."""
    from gptlab.generate.engine import ENGINE_THREADS

    model, tok = models["gpt"]
    seen = []
    caller = torch.get_num_threads()
    handle = model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))  # runs in the engine thread
    try:
        list(GenerationEngine(model).stream(tok.encode("First"), GenerationSettings(max_new_tokens=3, seed=1)))
    finally:
        handle.remove()
    assert seen and set(seen) == {ENGINE_THREADS}
    assert torch.get_num_threads() == caller


def test_an_engine_does_not_keep_its_model_alive():
    """engine_for keeps one engine per model while the model lives; the engine must not be what keeps it."""
    import gc
    import weakref

    from gptlab.generate import engine_for
    from gptlab.models import build_model

    model = build_model(ModelConfig(kind="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=20)).eval()
    assert len(list(engine_for(model).stream([1, 2], GenerationSettings(max_new_tokens=12, seed=0)))) == 12
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_a_model_moved_to_another_dtype_between_requests_is_followed(models):
    """model.double() after the engine's first request: the next request gets the float64 model's tokens."""
    import copy

    model = copy.deepcopy(models["rope"][0])
    tok = models["rope"][1]
    engine = GenerationEngine(model)
    settings = GenerationSettings(max_new_tokens=40, seed=9)
    ids = tok.encode("First")
    assert list(engine.stream(ids, settings)) == list(generate_ids(model, ids, settings))
    model.double()
    assert list(engine.stream(ids, settings)) == list(generate_ids(model, ids, settings))


def test_a_script_that_stops_reading_an_unfinished_stream_exits_at_once(tmp_path):
    """The engine thread is not a daemon (killing it inside PyTorch aborts the process), so at exit its rows are
    ended: a script that read one token of 20,000 and returned must not wait for the other 19,999."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "stops_reading.py"
    script.write_text(
        "from gptlab import GenerationSettings, load_checkpoint, generate\n"
        "checkpoint = load_checkpoint('checkpoints/gpt')\n"
        "pieces = generate(checkpoint.model, checkpoint.tokenizer, 'ROMEO:', GenerationSettings(max_new_tokens=20000),"
        " batched=True)\n"
        "print(next(pieces), flush=True)\n"  # the generator stays referenced, unfinished, to the end
        "ENDED = True\n")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, str(script)], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)  # the 20,000 tokens take about 90 s on 2 cores
    assert done.returncode == 0, done.stderr[-2000:]


def test_generate_ids_decodes_on_one_thread_and_the_caller_keeps_its_setting_between_tokens(models):
    """decode_threads: each step's forward on ENGINE_THREADS; between tokens the caller's thread count is its own."""
    from gptlab.generate.engine import ENGINE_THREADS

    model, tok = models["gpt"]
    inside, between = [], []
    caller = torch.get_num_threads()
    handle = model.register_forward_hook(lambda *_: inside.append(torch.get_num_threads()))
    try:
        for _ in generate_ids(model, tok.encode("First"), GenerationSettings(max_new_tokens=20, seed=2)):
            between.append(torch.get_num_threads())
    finally:
        handle.remove()
    assert len(inside) == 20 and set(inside) == {ENGINE_THREADS}
    assert set(between) == {caller}


@pytest.mark.parametrize("name", ["gpt", "rope"])
def test_a_big_batch_decoded_in_two_halves_at_once_gets_each_rows_own_tokens(models, name):
    """From SPLIT_ROWS rows on, a step's forward runs as two halves (the second on a helper thread), each half
    a view of its own rows: every row still gets generate_ids's tokens, across cache restarts."""
    from gptlab.generate.engine import SPLIT_ROWS

    model, tok = models[name]
    jobs = [(tok.encode(PROMPTS[i % len(PROMPTS)])[: 3 + i], GenerationSettings(max_new_tokens=40, seed=50 + i))
            for i in range(SPLIT_ROWS + 3)]
    engine = GenerationEngine(model)
    assert crowd(engine, jobs) == [list(generate_ids(model, ids, s)) for ids, s in jobs]
    assert engine.peak_rows >= SPLIT_ROWS and engine._pool is not None  # the halves ran
