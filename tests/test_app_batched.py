"""Generation through the real server is batched: a class's requests share one decode per model, and each
learner still gets their own seed's text (gradio_client on 127.0.0.1)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import served_shelf
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab import GenerationSettings, generate
from gptlab.classroom.catalog import Catalog
from gptlab.generate import engine_for
from gptlab_app.common import MAX_THREADS, SAMPLE_CONCURRENCY

PROMPT = "First Citizen:\n"
CLASS = 30


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoints, tiny_text):
    with served_shelf(tmp_path_factory.mktemp("shelf"), tiny_checkpoints, tiny_text) as served_app:
        yield served_app


def library_text(catalog: Catalog, name: str, tokens: int, seed: int, temperature: float = 0.8) -> str:
    """What the library writes alone, one sequence, for this model and seed."""
    ck = catalog.get(name)
    settings = GenerationSettings(max_new_tokens=tokens, temperature=temperature, seed=seed)
    return PROMPT + "".join(generate(ck.model, ck.tokenizer, PROMPT, settings))


def test_a_class_fits_in_the_batch_at_once(served):
    _, demo, _ = served
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values() if fn.api_name in ("generate", "compare")}
    assert limits == {"generate": SAMPLE_CONCURRENCY, "compare": SAMPLE_CONCURRENCY} and SAMPLE_CONCURRENCY >= CLASS
    assert MAX_THREADS > SAMPLE_CONCURRENCY + 8  # streaming requests hold a worker thread each; others still run


def test_learners_at_once_each_get_their_own_seeds_text(served):
    catalog, _, url = served
    engine = engine_for(catalog.get("gpt").model)
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    generates = [(seed, client.submit("gpt", PROMPT, 300, 0.8, 0, 1.0, seed, api_name="/generate"))
                 for seed in range(6)]
    compares = [(seed, client.submit("bigram", "gpt", PROMPT, 200, 1.1, seed, api_name="/compare"))
                for seed in (20, 21)]
    refused = client.submit("gpt", "First \u2603", 50, 0.8, 0, 1.0, 1, api_name="/generate")
    for seed, job in generates:
        assert job.result(timeout=300) == library_text(catalog, "gpt", 300, seed)
    for seed, job in compares:
        left, right = job.result(timeout=300)
        assert (left, right) == (library_text(catalog, "bigram", 200, seed, 1.1),
                                 library_text(catalog, "gpt", 200, seed, 1.1))
    with pytest.raises(AppError, match="never seen these characters"):
        refused.result(timeout=60)
    assert engine.peak_rows > 1  # decoded together, not one after another
    assert engine.active == 0


def test_many_clients_at_once(served):
    """Each learner with their own client, as a class would come: all served, each their seed's text."""
    catalog, _, url = served

    def one(seed: int) -> str:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        return client.predict("gpt", PROMPT, 200, 0.8, 0, 1.0, seed, api_name="/generate")

    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(one, range(100, 106)))
    assert texts == [library_text(catalog, "gpt", 200, seed) for seed in range(100, 106)]


def test_many_streams_share_the_update_rate():
    """With a class streaming, each stream sends fewer updates: together at most STREAM_UPDATES_PER_S a second
    (each update costs the server CPU the decoding needs). The first and the last value always go."""
    from gptlab_app import common
    from gptlab_app.streams import STREAMING, throttled

    def slow(n: int):
        for i in range(n):
            yield i
            time.sleep(1.5 * common.STREAM_INTERVAL_S)

    assert list(throttled(slow(4))) == [0, 1, 2, 3]  # alone: every value (each later than the interval)
    others = 100 * common.STREAM_UPDATES_PER_S  # as many streams as 100 s of the shared rate
    STREAMING.add(others)
    try:
        assert list(throttled(slow(4))) == [0, 3]
    finally:
        STREAMING.add(-others)
    assert STREAMING.count == 0
