"""Where context pays opens Follow one character in the Attention explorer on its model A: the explorer lists
only the catalog's models with attention, so a snapshot, the bigram or the visitor's live model is swapped for
one it lists, and a warning says which and why."""

from __future__ import annotations

import json

from gptlab.classroom.catalog import Catalog
from gptlab.errors import InputError

from .common import MAX_PROMPT_CHARS, library_errors, token_position, warning
from .pickers import LIVE, opening_model
from .rungs import SNAPSHOT_VALUE, Rungs


def explorer_model(catalog: Catalog, value) -> tuple[str, str]:
    """(the explorer's model for model A's dropdown value ``value``, '' or a sentence saying why it differs)."""
    names = catalog.attention_names
    if value in names:
        return value, ""
    fallback = opening_model(catalog)
    match = SNAPSHOT_VALUE.match(value) if isinstance(value, str) else None
    if match and match["name"] in names:
        return match["name"], (f"The Attention explorer lists no training snapshots: it shows {match['name']} "
                               f"as trained, not {Rungs.name(value)}.")
    if value == LIVE:
        return fallback, (f"The Attention explorer cannot show your live model; it shows {fallback} "
                          "(Look closer and Inside a head can show yours).")
    shown = Rungs.name(value) if isinstance(value, str) and len(value) <= 60 else "model A"
    return fallback, f"{shown} has no attention heads to follow; the Attention explorer shows {fallback}."


def open_at(catalog: Catalog, wanted) -> tuple[str, str, int]:
    """``wanted``, JSON ``{"model": A's value, "prompt": text, "position": query}``, as the explorer's (model,
    prompt, followed position); a warning when the model differs from A. InputError for anything else."""
    with library_errors():
        try:
            asked = json.loads(wanted) if isinstance(wanted, str) and len(wanted) <= 4 * MAX_PROMPT_CHARS else None
        except ValueError:
            asked = None
        if not isinstance(asked, dict) or not isinstance(asked.get("prompt"), str):
            raise InputError("Open the explorer with JSON {\"model\", \"prompt\", \"position\"}.")
        position = token_position(asked.get("position", -1), "position")
        model, why = explorer_model(catalog, asked.get("model"))
    if why:
        warning(why)
    return model, asked["prompt"][:MAX_PROMPT_CHARS], position
