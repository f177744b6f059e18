"""Streaming text for Generate and Bigram vs GPT: the prompt and its growing continuation, sent at most
20 times a second, and stopped (keeping its text) at the app's time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from gptlab.classroom.catalog import Catalog
from gptlab.generate import generate
from gptlab.prompts import fit_builtin
from gptlab.sampling import GenerationSettings

from . import common
from .common import MAX_NEW_TOKENS, library_errors, warning


def stream_text(catalog: Catalog, name: str, prompt: str, settings: GenerationSettings) -> Iterator[str]:
    """The prompt followed by the growing continuation (a built-in prompt fitted to the model, with a warning)."""
    with library_errors():
        checkpoint = catalog.get(name)
        fit = fit_builtin(checkpoint.tokenizer, prompt)  # an example fitted to this model; a visitor's own as typed
        if fit.changed:
            warning(f"{name}: {fit.note()}")
        text = prompt = fit.text
        # batched: decoded together with every other visitor's request to this model (gptlab.generate.engine)
        for piece in generate(checkpoint.model, checkpoint.tokenizer, prompt, settings,
                              max_new_tokens_limit=MAX_NEW_TOKENS, batched=True):
            text += piece
            yield text


def pairs(streams: Iterator[tuple], prompt: str) -> Iterator[tuple[str, str]]:
    """(left, right) texts; the side that finished first keeps its final text."""
    texts = (prompt, prompt)
    for a, b in streams:
        texts = (a if a is not None else texts[0], b if b is not None else texts[1])
        yield texts


class _Streaming:
    """How many throttled streams are running now (the app's worker threads share it)."""

    def __init__(self) -> None:
        self.count, self.lock = 0, threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.count += n


STREAMING = _Streaming()


def throttled(texts: Iterator, interval: float | None = None) -> Iterator:
    """Pass on values at most every ``interval`` seconds, always including the first and the last one.

    By default the interval is common.STREAM_INTERVAL_S, widened while many streams run so that together
    they send at most common.STREAM_UPDATES_PER_S updates a second. Between pulls it naps (at most
    common.STREAM_INTERVAL_S), so ``texts`` should hand over everything made since the last pull, as
    gptlab.generate's batched streams do: the worker thread then wakes a few times a second, not once a token.
    """
    last_sent, value, pending = 0.0, None, False
    STREAMING.add(1)
    try:
        for value in texts:
            pending = True
            now = time.monotonic()
            wait = interval if interval is not None else max(
                common.STREAM_INTERVAL_S, STREAMING.count / common.STREAM_UPDATES_PER_S)
            if now - last_sent >= wait:
                last_sent, pending = now, False
                yield value
            time.sleep(max(0.0, min(common.STREAM_INTERVAL_S, last_sent + wait - time.monotonic())))
        if pending:
            yield value
    finally:
        STREAMING.add(-1)


def time_limited(texts: Iterator) -> Iterator:
    """Pass values on until common.GENERATION_TIME_LIMIT_S has passed, then stop with a warning."""
    limit = common.GENERATION_TIME_LIMIT_S  # read when the stream starts (a test lowers it)
    deadline = time.monotonic() + limit
    for value in texts:
        yield value
        if time.monotonic() > deadline:
            warning(f"Stopped after {limit:.0f} s, the time limit of one request.")
            return
