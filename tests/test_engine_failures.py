"""A failure inside the generation engine's thread reaches every reader of the failed step, none is left
waiting, and the engine serves the next request."""

from __future__ import annotations

import threading

import pytest
import torch

from gptlab import GenerationSettings, ModelConfig, SettingsError
from gptlab.generate import GenerationEngine
from gptlab.models import build_model

WAIT_S = 60  # far longer than the few steps of a tiny model; a reader still waiting then is hung


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=20)).eval()


def read_in_threads(engine: GenerationEngine, seeds: range) -> list[object]:
    """What each reader ended with: its tokens, the exception it got, or 'hung'."""
    results: list[object] = ["hung"] * len(seeds)

    def read(i: int, seed: int) -> None:
        try:
            results[i] = list(engine.stream([1, 2], GenerationSettings(max_new_tokens=12, seed=seed)))
        except BaseException as exc:  # noqa: BLE001 - the test looks at what each reader got
            results[i] = exc

    threads = [threading.Thread(target=read, args=(i, s), daemon=True) for i, s in enumerate(seeds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    return results


@pytest.mark.parametrize("error", [RuntimeError("the fifth forward fails"), KeyboardInterrupt(), SystemExit(3)])
def test_every_reader_gets_the_engine_threads_error_and_the_engine_goes_on(error):
    """A forward that raises on the fifth step, with four readers decoding together: each gets the error. A
    KeyboardInterrupt or SystemExit there used to end the engine thread, leaving every reader (and every
    later request to that model) waiting forever."""
    model = tiny_model()
    engine = GenerationEngine(model)
    forwards = []

    def fail_on_the_fifth(*_):
        forwards.append(1)
        if len(forwards) == 5:
            raise error

    handle = model.register_forward_hook(fail_on_the_fifth)
    try:
        results = read_in_threads(engine, range(4))
    finally:
        handle.remove()
    assert "hung" not in results
    # an Exception as it was; an interrupt of the engine's thread as a RuntimeError caused by it (re-raised as
    # itself in a server's worker thread it could stop the server)
    failed = [r for r in results if isinstance(r, BaseException)]
    if isinstance(error, Exception):
        assert failed and all(r is error for r in failed)
    else:
        assert failed and all(type(r) is RuntimeError and r.__cause__ is error for r in failed)
        assert "interrupted inside the engine's thread" in str(failed[0])
    assert all(isinstance(r, BaseException) or len(r) == 12 for r in results)
    assert [len(result) for result in read_in_threads(engine, range(2))] == [12, 12]


def test_an_engine_whose_model_was_dropped_says_to_keep_the_model():
    """engine_for(load_checkpoint(...).model) in one line leaves nothing holding the model (the engine's
    reference is weak): the stream says what to do, as a GptlabError, instead of a bare RuntimeError."""
    import gc

    from gptlab import GptlabError
    from gptlab.generate import engine_for

    engine = engine_for(tiny_model())
    gc.collect()
    with pytest.raises(GptlabError, match="keep the model in a variable"):
        list(engine.stream([1, 2], GenerationSettings(max_new_tokens=3, seed=0)))


def test_a_request_that_has_all_its_tokens_is_not_failed_by_a_later_error_in_its_step():
    """Row A's last token comes from the decode of a step whose prefill of another request (B, whose prompt
    meets a NaN embedding row) fails on the helper thread beside it. A has all its tokens and its end: A's
    reader, coming back only every 0.3 s as the app's does, ends with them and no error; B gets the error."""
    import time

    from gptlab import GptlabError, generate_ids

    model = tiny_model()
    a_ids, a_settings = [1, 2, 3], GenerationSettings(max_new_tokens=3, temperature=0.0)
    a_alone = list(generate_ids(model, a_ids, a_settings))
    bad = next(t for t in range(20) if t not in a_ids + a_alone)
    with torch.no_grad():
        model.transformer.wte.weight[bad] = float("nan")
    engine = GenerationEngine(model)
    step = engine._step

    def slow_step() -> None:  # a slow step, so that B surely joins while A still decodes
        time.sleep(0.2)
        step()

    engine._step = slow_step
    got: dict[str, object] = {}

    def read_a() -> None:
        tokens: list[int] = []
        try:
            for chunk in engine.stream_chunks(a_ids, a_settings):
                tokens += chunk
                time.sleep(0.3)
            got["A"] = tokens
        except Exception as exc:  # noqa: BLE001 - compared below
            got["A"] = exc

    def read_b() -> None:
        try:
            got["B"] = list(engine.stream([4, bad, 5], GenerationSettings(max_new_tokens=5, seed=3)))
        except Exception as exc:  # noqa: BLE001 - compared below
            got["B"] = exc

    a = threading.Thread(target=read_a, daemon=True)
    a.start()
    time.sleep(0.05)  # A is in the first step
    b = threading.Thread(target=read_b, daemon=True)
    b.start()
    a.join(WAIT_S)
    b.join(WAIT_S)
    assert got["A"] == a_alone
    assert isinstance(got["B"], GptlabError)
    assert engine.overlapped_steps >= 1  # B's prefill ran beside A's decode


def test_an_engine_needs_room_for_a_row():
    with pytest.raises(SettingsError, match="max_rows"):
        GenerationEngine(tiny_model(), max_rows=0)
