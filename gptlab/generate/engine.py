"""One generation engine per model: every active request decoded together (continuous batching).

A background thread runs while any request is active. Each step it prefills the rows that joined
(one forward each, on their own prompt) or whose cache reached the context (restarting from the last
half of it, as ``generate_ids`` does), then runs ONE forward for every row's newest token, each row at
its own position (``BatchKVCache``). Every row samples with its own settings and seeded generator, so a
request's tokens do not depend on who else is in the batch: they are ``generate_ids``'s tokens. A request
whose stream is closed (the app's Stop, a time limit) leaves at the next step.

Where the time goes, and what uses the second core: a plain GPT decodes through the scripted step
(gptlab.generate.scripted), which computes without holding Python's lock; a big batch decodes as two halves
at once; and in a step where some rows need a prefill while others can decode, the prefill runs on the
helper thread beside the others' decode (the prefilled rows skip that step's decode, which changes when
their tokens come, not which). 30 learners of the shipped gpt, 200 tokens each, this engine alone on 2
cores: 2.4 s through the modules, 1.95 s scripted, 1.65 s with the prefills beside the decode.

The engine assumes the model is in eval mode (dropout off), as ``load_checkpoint`` returns it: in training
mode every row's dropout masks come from one random stream over the whole batch, so a row's text would
depend on its neighbours. ``stream`` and ``stream_chunks`` refuse a model in training mode with dropout > 0
(SettingsError).
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import GptlabError, SettingsError
from ..models.batch_cache import BatchKVCache
from ..sampling import GenerationSettings, sample_rows
from .scripted import ScriptedSteps, dropout_now, scripted_steps_for
from .threads import set_own_threads

MAX_ROWS = 64  # rows decoded together; later requests join as rows leave
ENGINE_THREADS = 1  # intra-op threads of the engine's own thread (see _run)
SPLIT_ROWS = 8  # from this many rows on, a step's forward runs as two halves at once (see _decode)
_END = object()


@dataclass(eq=False)
class _Row:
    """One request: its tokens so far, how many it still wants, and where its own tokens go."""

    context: list[int]
    remaining: int
    settings: GenerationSettings
    generator: torch.Generator
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    prefilled: bool = False


class GenerationEngine:
    """Decodes every active request of one model together; ``stream`` is its thread-safe entry point.

    ``max_rows`` requests share one forward per step; more wait for a row to leave. Use ``engine_for(model)``,
    the model's one shared engine: a second engine of the same model would decode its rows apart.
    """

    def __init__(self, model: nn.Module, max_rows: int = MAX_ROWS) -> None:
        # a weak reference: engine_for keeps one engine per model for as long as the model lives, so the engine
        # must not keep its model alive (the engine thread holds it only while it has rows)
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise SettingsError(f"max_rows must be a whole number of at least 1, got {max_rows!r}.")
        self._model, self.max_rows = weakref.ref(model), max_rows
        self.block = model.config.block_size
        # stateless: every next token depends on the last one alone (bigram), or the context is one token
        self.stateless = model.new_cache() is None or self.block == 1
        self.device, self._placed, self.cache = None, None, None
        self._place(model)
        self.rows: list[_Row] = []  # row i of the batch is cache row i (engine thread only)
        self.peak_rows = 0  # the most rows decoded together so far
        self.scripted_steps = 0  # decode forwards that took the scripted step (gptlab.generate.scripted)
        self.overlapped_steps = 0  # steps whose prefills ran beside the other rows' decode (_step)
        self._waiting: deque[_Row] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None  # the helper thread for the second half of a big batch

    @property
    def model(self) -> nn.Module:
        model = self._model()
        if model is None:
            # a notebook's engine_for(load_checkpoint(...).model): the checkpoint, and its model, were dropped
            raise GptlabError(
                "This engine's model no longer exists: an engine holds its model by weak reference, so keep the "
                "model in a variable (model = load_checkpoint(...).model) while you generate from it."
            )
        return model

    def _place(self, model: nn.Module) -> None:
        """Follow the model's device and dtype (read while no row is active): a fresh cache when they changed."""
        weight = next(model.parameters())
        if (weight.device, weight.dtype) != self._placed:
            self.device, self._placed = weight.device, (weight.device, weight.dtype)
            if not self.stateless:
                self.cache = BatchKVCache(model.config.n_layer, self.block, self.device, self.max_rows)

    @property
    def active(self) -> int:
        """Requests in the batch now (for tests and reports)."""
        return len(self.rows)

    def stream(self, ids: list[int], settings: GenerationSettings) -> Iterator[int]:
        """New token ids (ints) after the prompt ``ids`` (a list of ints or a 1-D integer tensor, cropped to the
        last block_size), one at a time: the same ones ``generate_ids`` yields for these ids and settings (logits
        equal within float tolerance). Blocks until each is made. Closing the iterator frees its row.

        Raises SettingsError for ids ``checked_ids`` refuses, out-of-range settings or a model in training mode
        with dropout > 0 (call ``model.eval()`` first), before any work.
        """
        with closing(self.stream_chunks(ids, settings)) as chunks:  # closing this iterator frees the row at once
            for chunk in chunks:
                yield from chunk

    def stream_chunks(self, ids: list[int], settings: GenerationSettings) -> Iterator[list[int]]:
        """``stream``'s tokens in lists: each list holds every token made since the previous one (at least one;
        waits for it). A reader that comes back every so often (the app sends text a few times a second) then
        wakes once per visit instead of once per token. Same errors as ``stream``."""
        model = self.model
        dropping = [p for p in map(dropout_now, model.modules()) if p > 0]
        if dropping:  # the model, or one of its parts (model.transformer.h[0].train()), in training mode
            raise SettingsError(
                f"The model is in training mode with dropout {max(dropping)}: its batched rows would "
                "share one stream of dropout masks, so a request's text would depend on the others in its batch. "
                "Call model.eval() before generating."
            )
        # checked here, not in the engine thread, where a bad row would fail every request in its batch
        ids = checked_ids(ids, model.config.vocab_size)
        settings.validate()
        if settings.max_new_tokens == 0:
            return
        with self._lock:
            if self._thread is None:
                self._place(model)  # idle: the model may have moved to another device or dtype since
            row = _Row(list(ids[-self.block:]), settings.max_new_tokens, settings,
                       settings.make_generator(self.device))
            self._waiting.append(row)
            if self._thread is None:
                # not a daemon: at exit Python waits for it, instead of killing it inside a PyTorch call (which
                # aborts the process); _end_all_rows ends its rows first, so the wait is at most one step
                self._thread = threading.Thread(target=self._run, name="gptlab-generate")
                self._thread.start()
                _running.add(self)
        try:
            while True:
                items = [row.out.get()]  # waits for the next token
                while not row.out.empty():
                    items.append(row.out.get())
                end = next((i for i, item in enumerate(items) if not isinstance(item, int)), len(items))
                if end:  # the tokens before the first end or error; nothing after it is this request's
                    yield items[:end]
                if end < len(items):
                    if items[end] is _END:
                        return
                    raise items[end]
        finally:
            row.cancelled = True  # read by the engine thread at its next step

    def end_all(self) -> None:
        """End every request now, as if each reader had closed its stream; their readers get no more tokens."""
        with self._lock:
            for row in [*self._waiting, *self.rows]:
                row.cancelled = True
                row.out.put(_END)
            self._waiting.clear()

    def _run(self) -> None:
        # one intra-op thread, for the reasons decode_threads gives; the second core serves the requests' streams
        # and, from SPLIT_ROWS rows on, half of each step (_decode)
        set_own_threads(ENGINE_THREADS)
        while True:
            with self._lock:
                while self._waiting and len(self.rows) < self.max_rows:
                    self.rows.append(self._waiting.popleft())
                self.peak_rows = max(self.peak_rows, len(self.rows))
                if not self.rows:
                    self._thread = None  # the next request starts a new thread
                    return
            try:
                with torch.no_grad():
                    self._step()
            except BaseException as exc:  # noqa: BLE001 - a failed forward ends the requests in it, not the engine
                # (a KeyboardInterrupt or SystemExit raised here would end this thread, leaving every reader and
                # every later request waiting forever). Each reader gets an Exception: the interrupt was this
                # thread's, and re-raised as such in a server's worker thread it could stop the server
                error = exc if isinstance(exc, Exception) else _interrupted(exc)
                for row in self.rows:
                    if row.remaining > 0:  # a row that has all its tokens got its end already
                        row.out.put(error)
                self.rows.clear()
                # the storage may hold what the failed step wrote (NaN keys from weights that hold NaN, say),
                # past the lengths of later rows: under the mask's -inf a NaN stays NaN, so start afresh
                self._placed = None
                model = self._model()
                try:
                    if model is not None:
                        self._place(model)
                except Exception:  # noqa: BLE001 - never end this thread here; a request arriving idle places it
                    pass

    def _step(self) -> None:
        self._leave(lambda row: row.cancelled)
        need = [] if self.stateless else [i for i, row in enumerate(self.rows) if self._needs_prefill(i, row)]
        steps = None if self.stateless else scripted_steps_for(self.model)  # None: the model's own forward
        if need:
            self.cache.reserve(len(self.rows))  # one growth for every row of this step, before any prefill
        if need and steps is not None and len(need) < len(self.rows):
            # rows that can decode now go first and decode on this thread while the helper prefills the others:
            # the scripted steps let go of Python's lock, so both run at once; the prefilled rows sit this step's
            # decode out (their prefill made their token), which changes no row's tokens, only when they come
            self._pack_first(need)
            self.overlapped_steps += 1
            ready = len(self.rows) - len(need)
            prefill = self._helper().submit(self._prefill_rows, range(ready, len(self.rows)), steps)
            try:
                self._decode(ready, steps, split=False)
            finally:
                prefill.result()
        else:
            self._prefill_rows(need, steps, parallel=True)
            self._leave(lambda row: row.remaining == 0)
            if self.rows:
                self._decode(len(self.rows), steps)
        self._leave(lambda row: row.remaining == 0)

    def _pack_first(self, need: list[int]) -> None:
        """Put the rows in ``need`` last (each swapped with a later row that decodes now: that row's keys and
        values move into the place of the needing row, whose own are about to be replaced by its prefill)."""
        needing = set(need)
        last = len(self.rows) - 1
        for i in sorted(need):
            while last in needing and last > i:
                last -= 1
            if last <= i:
                break
            length = self.cache.row_length(i)  # a full cache is what makes a row restart: it goes with the row
            self.cache.move(last, i)
            self.cache.lengths[last] = length
            self.rows[i], self.rows[last] = self.rows[last], self.rows[i]
            needing.discard(i)
            needing.add(last)
            last -= 1

    def _prefill_rows(self, indices, steps: ScriptedSteps | None, parallel: bool = False) -> None:
        """Prefill the rows ``indices`` that need it: new rows, and rows whose cache is full (they restart from the
        last half of it); rows whose windows have one length share a forward. A prompt that fills the context
        restarts at once, so at most two rounds. ``parallel`` with the scripted steps: half of the forwards run
        on the helper thread (a class that joins together has prompts of several lengths)."""
        while need := [i for i in indices if self._needs_prefill(i, self.rows[i])]:
            by_length: dict[int, list[int]] = {}
            for i in need:
                by_length.setdefault(len(self._window(self.rows[i])), []).append(i)
            groups = list(by_length.values())
            if parallel and steps is not None and len(groups) > 1:
                other = self._helper().submit(self._prefill_groups, groups[1::2], steps)
                try:
                    self._prefill_groups(groups[0::2], steps)
                finally:
                    other.result()
            else:
                self._prefill_groups(groups, steps)

    def _needs_prefill(self, i: int, row: _Row) -> bool:
        return row.remaining > 0 and (not row.prefilled or self.cache.row_length(i) >= self.block)

    def _window(self, row: _Row) -> list[int]:
        """What a row's prefill reads: its prompt (cropped to the context), else the last half of its context."""
        return row.context if not row.prefilled else row.context[-max(1, self.block // 2):]

    def _prefill_groups(self, groups: list[list[int]], steps: ScriptedSteps | None) -> None:
        """Each group (rows whose windows have one length): one forward on a fresh cache, copied into their rows."""
        with torch.no_grad():  # per thread: this may run on the helper
            for group in groups:
                ids = torch.tensor([self._window(self.rows[i]) for i in group], device=self.device)
                if steps is not None:
                    logits, kv = steps.prefill(ids)
                else:
                    kv = self.model.new_cache()
                    logits, _ = self.model(ids, cache=kv)  # (len(group), T, vocab)
                self.cache.put_rows(group, kv)
                rows = [self.rows[i] for i in group]
                for row in rows:
                    row.prefilled = True
                self._sample(rows, logits, steps)

    def _decode(self, n: int, steps: ScriptedSteps | None, split: bool = True) -> None:
        """One forward for the newest token of rows 0..n-1, each at its own position. From SPLIT_ROWS rows on (and
        ``split``), the rows are split in two halves whose forwards run at once, one on a helper thread: each
        decodes on one intra-op thread, so two halves use two cores. With the scripted steps (a plain GPT), the
        forwards let go of Python's lock while they compute, so the halves do not take turns at it."""
        rows = self.rows[:n]
        last = torch.tensor([[row.context[-1]] for row in rows], device=self.device)  # (n, 1)
        model = self.model
        if self.stateless:
            logits, _ = model(last)
        else:
            self.scripted_steps += steps is not None
            cache = self.cache
            step = steps.decode if steps is not None else (
                lambda idx, cache, lo, hi: model(idx, cache=cache.rows_view(lo, hi))[0])
            if n < SPLIT_ROWS or not split:
                logits = step(last, cache, 0, n)
            else:
                half = n // 2
                second = self._helper().submit(_forward, step, last[half:], cache, half, n)
                try:
                    first = step(last[:half], cache, 0, half)
                finally:  # the helper's half is done (or failed) before this step ends, whatever happened here
                    logits = second.result()
                logits = torch.cat([first, logits])
        self._sample(rows, logits, steps)

    def _sample(self, rows: list[_Row], logits: torch.Tensor, steps: ScriptedSteps | None) -> None:
        """Each row's next token from its last position's logits (len(rows), T, vocab), with its own settings
        and generator (the scripted draw where there are scripted steps), handed to its reader."""
        tokens = sample_rows(logits[:, -1], [row.settings for row in rows], [row.generator for row in rows],
                             race=steps.race if steps is not None else None)
        for row, token in zip(rows, tokens, strict=True):
            self._emit(row, token)

    def _helper(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="gptlab-generate-half",
                                            initializer=set_own_threads, initargs=(ENGINE_THREADS,))
        return self._pool

    def _emit(self, row: _Row, token: int) -> None:
        row.context.append(token)
        row.remaining -= 1
        row.out.put(token)
        if row.remaining == 0:
            row.out.put(_END)

    def _leave(self, gone) -> None:
        """Drop the rows for which gone(row) holds; the last row fills each gap, so rows stay packed."""
        i = 0
        while i < len(self.rows):
            if not gone(self.rows[i]):
                i += 1
                continue
            last = len(self.rows) - 1
            if i != last and self.cache is not None and self.rows[last].prefilled:
                self.cache.move(last, i)
            self.rows[i] = self.rows[last]
            self.rows.pop()


@contextmanager
def decode_threads() -> Iterator[None]:
    """Run the block with ENGINE_THREADS intra-op threads in this thread, then restore its setting.

    Decoding multiplies small matrices, one token (or one token per row) at a time: a second thread gains
    little, and when the cores are busy its waits at every op cost far more (300 tokens of gpt, batch 1, at
    load 2.5 on 2 cores: 5-10 s on two threads, 0.9 s on one). Threads started meanwhile keep the process's
    count (set_own_threads); entering costs a round trip to its helper thread (about 22 us).
    """
    previous = set_own_threads(ENGINE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def checked_ids(ids, vocab_size: int) -> list[int]:
    """A prompt's token ids as a list of ints: a list or tuple of ints, or a 1-D integer tensor or array.

    Raises SettingsError for no ids, another shape or type, or an id outside 0..vocab_size - 1.
    """
    if hasattr(ids, "tolist"):  # a tensor or a NumPy array
        if getattr(ids, "ndim", None) != 1 or (isinstance(ids, torch.Tensor) and ids.is_floating_point()):
            raise SettingsError(f"Token ids must be one row of whole numbers (a 1-D integer tensor); got shape "
                                f"{tuple(ids.shape)}, {ids.dtype}.")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
        raise SettingsError(f"Token ids must be a list of whole numbers, not {type(ids).__name__} (encode text with "
                            "the tokenizer first).")
    if not ids:
        raise SettingsError("The prompt encodes to no tokens; give at least one character.")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size for i in ids):
        raise SettingsError(f"Token ids must be whole numbers in 0..{vocab_size - 1} for this model.")
    return list(ids)


def _interrupted(exc: BaseException) -> RuntimeError:
    error = RuntimeError(f"Generation was interrupted inside the engine's thread ({exc!r}); try again.")
    error.__cause__ = exc
    return error


def _forward(step, last: torch.Tensor, cache: BatchKVCache, lo: int, hi: int) -> torch.Tensor:
    """The logits of rows lo..hi-1 (no_grad is per thread, so the helper thread sets it too)."""
    with torch.no_grad():
        return step(last, cache, lo, hi)


_running: weakref.WeakSet[GenerationEngine] = weakref.WeakSet()  # engines that have started a thread


def _end_all_rows() -> None:
    """At interpreter exit, before Python waits for non-daemon threads: a script that stopped reading an
    unfinished stream would otherwise wait for all its tokens."""
    for engine in list(_running):
        engine.end_all()


# threading's own exit hook runs before the wait for threads (atexit would run after it); concurrent.futures
# uses the same one
getattr(threading, "_register_atexit", atexit.register)(_end_all_rows)

_engines: weakref.WeakKeyDictionary[nn.Module, GenerationEngine] = weakref.WeakKeyDictionary()
_engines_lock = threading.Lock()


def engine_for(model: nn.Module) -> GenerationEngine:
    """The one engine of ``model`` (made on first use, gone with the model); safe to call from any thread."""
    with _engines_lock:
        engine = _engines.get(model)
        if engine is None:
            engine = _engines[model] = GenerationEngine(model)
        return engine
