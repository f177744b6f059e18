"""Shared pieces of the teaching tabs: model lookup (shipped or live-trained), plots, errors."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
from gradio.components.plot import PlotData

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import GptlabError, UnknownCharactersError
from gptlab.figures import figure_json, teacher_style
from gptlab.markdown import code_span
from gptlab.prompts import fit_builtin

# Run when a tab whose views are drawn at page load is shown. A Plotly chart drawn while its tab was
# hidden (opened, then left before the draw came back) keeps Plotly's default 700 px width until the
# window resizes; a resize event makes every chart on the page fit its box again (checked in Chromium).
REFIT_PLOTS_JS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"
LIVE = "live"  # the dropdown value of the visitor's own live-trained model
LIVE_LABEL = "your model (trained in 'Watch it learn')"
MAX_PROMPT_CHARS = 2000
TEACH_CONCURRENCY = 4


def model_choices(catalog: Catalog) -> list[tuple[str, str]]:
    """Attention models offered, plus the visitor's live-trained model."""
    return catalog.choices(catalog.attention_names) + [(LIVE_LABEL, LIVE)]


def get_model(catalog: Catalog, name: str, live: Checkpoint | None) -> Checkpoint:
    """The checkpoint for a dropdown value; the live model only exists once this visitor trained one."""
    if name == LIVE:
        if live is None:
            raise gr.Error("You have not trained a model yet: open 'Watch it learn', train one, then come back.")
        return live
    if name not in catalog.attention_names:
        raise gr.Error(f"No attention model named {name!r}; choose one from the list.")
    return catalog.get(name)


def error(exc: GptlabError) -> gr.Error:
    """A library error as an app message."""
    if isinstance(exc, UnknownCharactersError):
        shown = ", ".join(repr(c) for c in exc.unknown[:10])
        return gr.Error(f"This model has never seen these characters: {shown}. Remove them and try again.")
    return gr.Error(str(exc))


def checked_prompt(prompt: str | None) -> str:
    if not prompt:
        raise gr.Error("The prompt is empty: type a few words first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise gr.Error(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it.")
    return prompt


def fitted_prompt(tokenizer, prompt: str) -> tuple[str, str]:
    """(the text to run, a Markdown note): a built-in prompt loses the characters this model never saw
    (the note says which; '' when none); a visitor's own prompt is kept as typed."""
    fit = fit_builtin(tokenizer, prompt)
    return fit.text, (f"⚠️ {fit.note(code_span)}" if fit.changed else "")


def picker_updates(config, layer=None, head=None) -> tuple[dict, dict]:
    """Layer and head sliders fitted to a model's config; a value still in range is kept, else 0.

    A slider from 0 to 0 cannot be drawn: it keeps 0..1 and is locked when there is one choice.
    ``config`` None (no such model yet) leaves both sliders as they are.
    """
    if config is None:
        return gr.update(), gr.update()

    def fit(value, top: int) -> dict:
        keep = isinstance(value, (int, float)) and 0 <= value <= top and float(value).is_integer()
        return gr.update(maximum=max(top, 1), value=int(value) if keep else 0, interactive=top > 0)

    return fit(layer, config.n_layer - 1), fit(head, config.n_head - 1)


def whole(value, name: str, low: int, high: int) -> int:
    """A whole number in low..high from a slider/number value, else gr.Error."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise gr.Error(f"{name} must be a whole number in {low}..{high}, got {value!r}.")
    return value


def quietly(draw: Callable[[], tuple], n_outputs: int) -> tuple:
    """A view drawn when the page opens, which nobody clicked for: ``draw()``'s outputs, or, when its default
    inputs cannot be drawn (say a model that cannot read the default prompt), ``n_outputs`` skips, so the view
    stays empty instead of greeting the visitor with an error; the tab's own button then says what is wrong."""
    try:
        return draw()
    except gr.Error:
        return tuple(gr.skip() for _ in range(n_outputs))


def plot(fig, teacher: bool = False) -> PlotData:
    """A figure for gr.Plot (PNG toolbar button included), in teacher style when asked."""
    return PlotData(type="plotly", plot=figure_json(teacher_style(fig) if teacher else fig))
