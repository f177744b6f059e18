"""Which model a view shows, and the pickers that follow it: shipped models, the visitor's own live model,
layer, head and top-k sliders fitted to the chosen model's shape."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import InputError
from gptlab.models.config import ModelConfig

LIVE = "live"  # the dropdown value of the visitor's own live-trained model
LIVE_LABEL = "your model (trained in 'Watch it learn')"


@dataclass(frozen=True)
class Visitor:
    """What the teaching tabs of one page share: the page itself, teacher mode and the visitor's live model."""

    demo: gr.Blocks  # the page: its load event draws views and fits pickers for each visitor
    live: gr.State  # this visitor's live-trained model (a Checkpoint), None until they train one
    teacher: gr.Checkbox  # hidden; mirrors the Lessons tab's visible checkbox

    @classmethod
    def create(cls, demo: gr.Blocks) -> Visitor:
        """Make the shared components; call inside a tab (one between two gr.Tab blocks splits the tab bar)."""
        return cls(demo, live=gr.State(None), teacher=gr.Checkbox(False, visible=False))


def model_choices(catalog: Catalog) -> list[tuple[str, str]]:
    """Attention models offered, plus the visitor's live-trained model."""
    return catalog.choices(catalog.attention_names) + [(LIVE_LABEL, LIVE)]


def opening_model(catalog: Catalog) -> str | None:
    """The model the views open with: 'gpt' if offered, else the most capable model with attention."""
    return catalog.default("gpt", catalog.attention_names)


def model_picker(catalog: Catalog, elem_id: str, live: bool = False) -> gr.Dropdown:
    """A view's model dropdown: every model with attention (and the visitor's own when ``live``)."""
    choices = model_choices(catalog) if live else catalog.choices(catalog.attention_names)
    return gr.Dropdown(choices, value=opening_model(catalog), label="model", elem_id=elem_id)


def sampling_controls(prefix: str, top_k_most: int, seed_label: str) -> tuple[gr.Component, ...]:
    """Temperature, top-k (0..top_k_most, elem_id ``{prefix}-topk``) and top-p sliders and the seed field."""
    return (gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="temperature (0 = greedy)"),
            gr.Slider(0, top_k_most, value=0, step=1, label="top-k (0 = off)", elem_id=f"{prefix}-topk"),
            gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (1 = off)"),
            gr.Number(1337, precision=0, label=seed_label))


def get_model(catalog: Catalog, name: str, live: Checkpoint | None) -> Checkpoint:
    """The checkpoint for a dropdown value; the live model only exists once this visitor trained one."""
    if name == LIVE:
        if live is None:
            raise InputError("You have not trained a model yet: open 'Watch it learn', train one, then come back.")
        return live
    if name not in catalog.attention_names:
        raise InputError(f"No attention model named {name!r}; choose one from the list.")
    return catalog.get(name)


def config_of(catalog: Catalog, name: str, live: Checkpoint | None = None) -> ModelConfig | None:
    """The chosen model's config, or None while there is none (the live model before training)."""
    if name == LIVE:
        return live.config if live is not None else None
    return catalog.get(name).config if name in catalog.attention_names else None


def picker_updates(config: ModelConfig | None, layer=None, head=None, best: bool = False) -> tuple[dict, dict]:
    """Layer and head pickers fitted to a model's config; a value still in range is kept, else the lowest.

    Sliders run 0..top; one from 0 to 0 cannot be drawn, so it keeps 0..1 and is locked when there is
    one choice. With ``best`` (the Lessons tab's number fields) -1 means "the best head" and is the lowest.
    ``config`` None (no such model yet) leaves both as they are. A value kept is not sent back: the values
    passed in were read when the model changed, and a draw that answered since (a lesson resolving "the best
    head" to layer 0, say) must not be overwritten by them.
    """
    if config is None:
        return gr.update(), gr.update()
    low = -1 if best else 0

    def fit(value, top: int) -> dict:
        keep = isinstance(value, (int, float)) and low <= value <= top and float(value).is_integer()
        bounds = {"maximum": top} if best else {"maximum": max(top, 1), "interactive": top > 0}
        return gr.update(**bounds) if keep else gr.update(**bounds, value=low)

    return fit(layer, config.n_layer - 1), fit(head, config.n_head - 1)


def top_k_update(config: ModelConfig | None, top_k, most: int) -> dict:
    """A top-k slider up to the model's vocabulary (at most ``most``); a value out of range becomes 0 (off)."""
    if config is None:
        return gr.update()
    top = min(most, config.vocab_size)
    return gr.update(maximum=top, value=top_k if isinstance(top_k, (int, float)) and 0 <= top_k <= top else 0)


def layer_head_sliders(catalog: Catalog, prefix: str) -> tuple[gr.Slider, gr.Slider]:
    """Layer and head sliders (elem_ids ``{prefix}-layer``, ``{prefix}-head``) over the widest model offered:
    an API caller may ask for any layer of any model; a visitor's sliders are fitted to theirs on load."""
    configs = [catalog.get(n).config for n in catalog.attention_names]
    top_layer = max((c.n_layer for c in configs), default=1) - 1
    top_head = max((c.n_head for c in configs), default=1) - 1
    layer = gr.Slider(0, max(top_layer, 1), value=0, step=1, label="layer", elem_id=f"{prefix}-layer")
    head = gr.Slider(0, max(top_head, 1), value=0, step=1, label="head", elem_id=f"{prefix}-head")
    return layer, head
