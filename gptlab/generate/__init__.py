"""Streaming text generation: prompt text in, text pieces out.

The app streams these pieces; ``python -m gptlab.generate`` (this package's ``__main__``) prints them.
The library never imports its command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..prompts import sample_start
from ..sampling import MAX_NEW_TOKENS, GenerationSettings, sample
from ..tokenizers import Errors, IncrementalDecoder, Tokenizer
from .engine import GenerationEngine, checked_ids, decode_threads, engine_for

__all__ = ["GenerationEngine", "engine_for", "generate", "generate_ids", "stream_text"]


@torch.no_grad()
def generate_ids(
    model: nn.Module, ids: list[int], settings: GenerationSettings, use_cache: bool = True
) -> Iterator[int]:
    """Yield new token ids one at a time after the prompt ``ids``.

    Context is cropped to the model's block_size. With the KV cache, each step feeds only the
    newest token; when the cache is full it restarts from the last half of the context (absolute
    position embeddings cannot slide), so outputs match the uncached path up to block_size tokens.
    ``ids``: a list of ints or a 1-D integer tensor. Raises SettingsError for ids ``checked_ids`` refuses (none,
    another type, outside the vocabulary) or a setting of the wrong type or out of range (a seed of 1.5), before
    any work; the count is not capped here (``generate`` and the app cap it). Each step's forward runs on
    ``decode_threads`` (one intra-op thread), as the generation engine's do.
    """
    ids = checked_ids(ids, model.config.vocab_size)
    settings.validate(max_new_tokens=None)
    block = model.config.block_size
    device = next(model.parameters()).device
    generator = settings.make_generator(device)
    context = list(ids[-block:])
    cache = model.new_cache() if use_cache else None
    pending = context
    for _ in range(settings.max_new_tokens):
        with decode_threads():  # the caller's own setting is back before each yield
            if cache is None:
                logits, _ = model(torch.tensor([context[-block:]], device=device))
            else:
                if cache.length + len(pending) > block:
                    cache = model.new_cache()
                    pending = context[-max(1, block // 2) :]  # block_size 1 keeps the last token
                logits, _ = model(torch.tensor([pending], device=device), cache=cache)
        token = sample(logits[0, -1], settings, generator)
        context.append(token)
        pending = [token]
        yield token


def generate(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt: str,
    settings: GenerationSettings = GenerationSettings(),
    *,
    errors: Errors = "strict",
    use_cache: bool = True,
    max_new_tokens_limit: int = MAX_NEW_TOKENS,
    batched: bool = False,
) -> Iterator[str]:
    """Yield the continuation of ``prompt`` (without the prompt) as str pieces, as soon as each is complete.

    ``settings.max_new_tokens`` counts tokens (characters for a char model), at most ``max_new_tokens_limit``
    (20,000 unless given; the app passes 1000). An empty prompt starts where the model can start (a fresh
    line). ``batched`` decodes through the model's shared GenerationEngine (engine.py), together with every
    other request to that model at the time; the text is the same. Any number of threads may generate batched
    at once; closing the iterator early frees its row. Raises, at the first ``next()`` and before any work,
    UnknownCharactersError for characters a char model has never seen (unless errors says to drop or replace
    them) and SettingsError for out-of-range settings or, batched, a model in training mode with dropout (call
    ``model.eval()``).
    """
    settings.validate(max_new_tokens_limit)
    # an empty prompt starts on a fresh line, as the tutorials do (or where the model can start)
    ids = tokenizer.encode(prompt, errors) or tokenizer.encode(sample_start(tokenizer))
    # batched: the engine hands over every token made since the last visit, so a slow reader gets one piece per visit
    tokens = (engine_for(model).stream_chunks(ids, settings) if batched
              else generate_ids(model, ids, settings, use_cache))
    yield from stream_text(tokenizer, tokens)


def stream_text(tokenizer: Tokenizer, tokens: Iterable[int | list[int]]) -> Iterator[str]:
    """Text pieces for a stream of token ids, or of lists of them (one piece per list); the pieces' concatenation
    is ``tokenizer.decode(all ids)``.

    A byte-level BPE token may end inside a multi-byte character: ``IncrementalDecoder`` holds an
    unfinished character back until its last byte comes.
    """
    decoder = IncrementalDecoder(tokenizer)
    for item in tokens:
        piece = "".join(decoder.feed(t) for t in item) if isinstance(item, list) else decoder.feed(item)
        if piece:
            yield piece
    tail = decoder.flush()  # bytes of a character that never got finished
    if tail:
        yield tail

