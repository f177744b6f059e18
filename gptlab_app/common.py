"""What the app's tabs share: its limits, the input checks, the one error conversion, plots.

Handlers check their input with the functions here, which raise the library's own errors
(gptlab.errors); ``library_errors()`` shows any such error to the visitor as a gr.Error. Every toast
the app raises goes through ``error()`` or ``warning()``, which make its text read literally in the page.
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gradio as gr
from gradio.components.plot import PlotData

from gptlab.errors import GptlabError, InputError, UnknownCharactersError, shown_value
from gptlab.figures import figure_json, teacher_style
from gptlab.markdown import code_span
from gptlab.models.config import ModelConfig
from gptlab.prompts import fit_builtin
from gptlab.sampling import GenerationSettings

# Server-side limits: a visitor (or a script calling the API) cannot ask for more than this.
MAX_NEW_TOKENS = 1000
MAX_PROMPT_CHARS = 2000  # generation and attention only use the last block_size tokens anyway
MAX_TOP_K = 1000
MAX_SEED = 2**31 - 1  # the seed fields of Step through and Lessons
# Gradio's own event time_limit only applies to .stream() events, so generation enforces its own: a
# stream stops (keeping its text) after this long, whatever the load. Attention is one forward pass
# on at most block_size tokens, bounded by the prompt limit and the crop.
GENERATION_TIME_LIMIT_S = 60.0
STREAM_INTERVAL_S = 0.05  # send the growing text at most 20 times a second
# ... and all streams together at most this often: each update costs the server about a millisecond of CPU
# (measured: 30 streams at 20 a second took twice the CPU of their decoding), so in a class of 30 each text
# grows about 3 times a second while the tokens come as fast as the batch makes them.
STREAM_UPDATES_PER_S = 80
# Concurrency for a class of 30 on 2 vCPUs. Generation (Generate, Bigram vs GPT) is decoded in one batch per
# model (gptlab.generate.engine): a request waiting in Gradio's queue would wait for nothing, so a whole class
# and a few more join the batch at once. Each such request holds one of Gradio's worker threads while it
# streams, hence MAX_THREADS above SAMPLE_CONCURRENCY plus the other events' limits.
SAMPLE_CONCURRENCY = 32
ATTENTION_CONCURRENCY = 4
TEACH_CONCURRENCY = 4
TEACH = {"concurrency_id": "teach", "concurrency_limit": TEACH_CONCURRENCY}  # the teaching tabs' views, together
QUEUE_SIZE = 90  # 30 learners x 3 requests each; beyond that a visitor is told the queue is full
MAX_THREADS = 80  # Gradio's worker threads (its default, 40, would all be held by streaming generations)
# Run when a tab whose views are drawn at page load is shown. A Plotly chart drawn while its tab was
# hidden (opened, then left before the draw came back) keeps Plotly's default 700 px width until the
# window resizes; a resize event makes every chart on the page fit its box again (checked in Chromium).
REFIT_PLOTS_JS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"


def literal(message: str) -> str:
    """``message`` escaped so a toast shows it as typed: Gradio renders a gr.Error, gr.Warning or gr.Info
    message as HTML, and messages carry a visitor's or a model's text (link values, characters, names)."""
    return html.escape(message, quote=False)


def error(message: str) -> gr.Error:
    """A gr.Error for the visitor (raise it) whose message shows literally, markup and all."""
    return gr.Error(literal(message))


def warning(message: str, **options) -> None:
    """A gr.Warning toast whose message shows literally; ``options`` go to gr.Warning (``duration``)."""
    gr.Warning(literal(message), **options)


@contextmanager
def library_errors() -> Iterator[None]:
    """Show any library error (a GptlabError) raised inside to the visitor as a gr.Error with its message."""
    try:
        yield
    except UnknownCharactersError as exc:  # without the library-only advice (errors='drop')
        shown = ", ".join(repr(c) for c in exc.unknown[:10])
        raise error(f"This model has never seen these characters: {shown}. Remove them and try again.") from None
    except GptlabError as exc:
        raise error(str(exc)) from None


def bind(fn: Callable, *first) -> Callable:
    """``fn`` with its first arguments given (the catalog, a tab's state), read by Gradio as ``fn`` itself.

    Gradio takes an endpoint's description from the docstring, its parameters from the signature,
    gr.Request from the type hints and streaming from ``inspect.isgeneratorfunction``; a bare
    functools.partial hides the docstring and the type hints.
    """
    if inspect.isgeneratorfunction(fn):
        def bound(*args, **kwargs):
            yield from fn(*first, *args, **kwargs)
    else:
        def bound(*args, **kwargs):
            return fn(*first, *args, **kwargs)
    functools.update_wrapper(bound, fn)
    bound.__signature__ = inspect.signature(functools.partial(fn, *first))
    return bound


def checked_prompt(prompt: str | None, box: str = "prompt") -> str:
    """The prompt, else InputError saying why it cannot be used (empty, or over MAX_PROMPT_CHARS), naming the
    box it is about as the page labels it (``box``: 'prompt', 'text', 'text so far')."""
    if not prompt:
        raise InputError(f"The {box} is empty: type a few words (or click an example) first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"The {box} has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it.")
    return prompt


def as_int(value, name: str):
    """Sliders send 5.0 for 5: a whole float as an int, another float refused (InputError), the rest as given."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        raise InputError(f"{name} must be a whole number, got {shown_value(value)}.")
    return value


def whole(value, name: str, low: int, high: int, where: str = "") -> int:
    """A whole number in low..high from a slider or number field, else InputError (``where``: ' for gpt')."""
    value = as_int(value, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number in {low}..{high}{where}, got {shown_value(value)}.")
    return value


def token_position(value, name: str) -> int:
    """A token position: empty or -1 means the last token, as does one past the end; else InputError."""
    value = -1 if value is None else as_int(value, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number (-1 = the last token), got {shown_value(value)}.")
    return value


def layer_and_head(config: ModelConfig, layer, head, model: str) -> tuple[int, int]:
    """(layer, head) checked against the model's shape, before any work; else InputError naming the model."""
    where = f" for {model}"
    return whole(layer, "layer", 0, config.n_layer - 1, where), whole(head, "head", 0, config.n_head - 1, where)


def sampling_settings(max_new_tokens, temperature, top_k, top_p, seed) -> GenerationSettings:
    """Generation settings from UI/API values, checked against the app's limits (else a GptlabError)."""
    settings = GenerationSettings(
        max_new_tokens=as_int(max_new_tokens, "max_new_tokens"), temperature=temperature,
        top_k=as_int(top_k, "top_k"), top_p=top_p, seed=None if seed is None else as_int(seed, "seed"),
    ).validate(MAX_NEW_TOKENS)
    if settings.top_k > MAX_TOP_K:
        raise InputError(f"top_k must be in 0..{MAX_TOP_K}, got {shown_value(settings.top_k)}.")
    return settings


def fitted_prompt(tokenizer, prompt: str) -> tuple[str, str]:
    """(the text to run, a Markdown note): a built-in prompt loses the characters this model never saw
    (the note says which; '' when none); a visitor's own prompt is kept as typed."""
    fit = fit_builtin(tokenizer, prompt)
    return fit.text, (f"⚠️ {fit.note(code_span)}" if fit.changed else "")


def plot(fig, teacher: bool = False) -> PlotData:
    """A figure for gr.Plot (PNG toolbar button included), in teacher style when asked."""
    return PlotData(type="plotly", plot=figure_json(teacher_style(fig) if teacher else fig))


def quietly(draw: Callable[[], tuple], n_outputs: int) -> tuple:
    """A view drawn when the page opens, which nobody clicked for: ``draw()``'s outputs, or, when its default
    inputs cannot be drawn (say a model that cannot read the default prompt), ``n_outputs`` skips, so the view
    stays empty instead of greeting the visitor with an error; the tab's own button then says what is wrong."""
    try:
        return draw()
    except gr.Error:
        return tuple(gr.skip() for _ in range(n_outputs))
