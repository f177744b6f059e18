"""gptlab app: generate text, compare a bigram with a GPT, look at attention, browse the models.

The Gradio door to gptlab (the only package that imports gradio): ``build_app(catalog)`` makes the
page, ``main()`` serves it (``python app.py``). Each tab, one module in gptlab_app/tabs/, checks its
inputs, calls one gptlab function and draws what it returns.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import gradio as gr

from gptlab.classroom.catalog import CHECKPOINTS_ENV, Catalog, hub_ids_from_env
from gptlab.errors import GptlabError
from gptlab.markdown import code_span

from .common import MAX_THREADS, QUEUE_SIZE, error
from .links import opening_tab
from .tabs import ablate, across, attention, closer, compare, generate, inside, lessons, live, models, step, surprise
from .teacher import TEACHER_CSS

DEFAULT_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"  # the checkout's shipped models
CSS = ".token-note {font-size: 0.95em} #gen-out textarea, .cmp-out textarea {font-family: monospace}"
DELETE_CACHE = (3600, 86400)  # (every s, older than s): Gradio deletes the download files it served
MAX_UPLOAD = "1mb"  # the app takes no files, but Gradio's /upload route is always open


def build_app(catalog: Catalog, checkpoints: str = "") -> gr.Blocks:
    """The page over the catalog's models: a header, then the tabs in page order, number inputs guarded
    and a queue sized for a class (the six teaching tabs need a model with attention)."""
    # download files (CSV, lesson pages) older than a day are deleted, checked every hour
    with gr.Blocks(title="gptlab", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# gptlab: a GPT from scratch, and a look inside")
        if not catalog.names:
            gr.Markdown(
                f"### ⚠️ No models found\nNo checkpoint folders in {code_span(checkpoints or '(none given)')} and "
                "no Hub models in `GPTLAB_HUB_MODELS`. Train one (`python -m train gpt`), then start the app with "
                "`--checkpoints DIR` or set `GPTLAB_CHECKPOINTS`.",
                elem_id="no-models",
            )
        with gr.Tabs() as tabs:
            generate.build(catalog, demo)
            compare.build(catalog)
            attention.build(catalog, demo)
            models.build(catalog)
            if catalog.attention_names:
                visitor = across.build(catalog, demo)  # the first teaching tab makes what they share
                live.build(visitor)
                closer.build(catalog, visitor)
                inside.build(catalog, visitor)
                ablate.build(catalog, visitor)
                surprise.build(catalog, visitor)
                step.build(catalog, visitor)
                lessons.build(catalog, visitor)
        if catalog.attention_names:  # a lesson link opens the Lessons tab
            demo.load(opening_tab, None, tabs, api_visibility="private")
    guard_inputs(demo)
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def guard_inputs(demo: gr.Blocks) -> None:
    """Make every event input refuse a value of the wrong type with a clear message.

    Gradio's Number and Slider preprocessing crash on None, strings, NaN or infinity sent through
    the API (int(nan), None < 0), and CheckboxGroup's on anything but a list (iterating None), which
    reaches the caller as an anonymous error. A whole-number field (precision=0: seeds, positions) would
    round 1.5 to 2 without a word: it refuses it instead.
    """
    for fn in demo.fns.values():
        for component in fn.inputs:
            if getattr(component, "_guarded", False):
                continue
            if isinstance(component, (gr.Number, gr.Slider)):
                component.preprocess = _numeric_preprocess(component, component.preprocess)
            elif isinstance(component, gr.CheckboxGroup):
                component.preprocess = _choices_preprocess(component, component.preprocess)
            component._guarded = True


def _numeric_preprocess(component, preprocess):
    optional = isinstance(component, gr.Number)  # an empty Number means "none" (e.g. a random seed)
    whole = getattr(component, "precision", None) == 0  # Gradio hands the handler int(round(value))
    name = (component.label or "a number input").split(" (")[0]  # 'seed (empty = random)' -> 'seed'

    def checked(payload):
        if payload is None and optional:
            return None
        shown = repr(payload) if len(repr(payload)) <= 40 else repr(payload)[:40] + "…"
        message = f"{component.label or 'a number input'} must be a finite number, got {shown}."
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise error(message)
        if whole and isinstance(payload, float) and math.isfinite(payload) and not payload.is_integer():
            # Gradio would round it (a seed of 1.5 became 2): refused like any other out-of-range setting
            raise error(f"{name} must be a whole number, got {shown}.")
        try:  # NaN passes Gradio's bounds check and reaches the handler's own check; int(nan) does not
            return preprocess(payload)
        except gr.Error:  # Gradio's own out-of-bounds message is already clear
            raise
        except (ValueError, OverflowError, TypeError):
            raise error(message) from None

    return checked


def _choices_preprocess(component, preprocess):
    def checked(payload):
        if payload is None:  # no box ticked
            return []
        if not isinstance(payload, list):
            shown = repr(payload) if len(repr(payload)) <= 40 else repr(payload)[:40] + "…"
            raise error(f"{component.label or 'a checkbox group'} must be a list of choices, got {shown}.")
        return preprocess(payload)

    return checked


def launch_options(checkpoints: str | Path = "") -> dict:
    """Arguments that Gradio 6 takes at launch(): look and feel, and what the server may serve.

    Gradio serves only files it created itself (a visitor's /upload, its cache); on purpose no
    allowed_paths, and the model folders and Hub cache blocked even if GRADIO_ALLOWED_PATHS widens it.
    """
    from huggingface_hub.constants import HF_HUB_CACHE

    blocked = [str(Path(p).resolve()) for p in (checkpoints or DEFAULT_CHECKPOINTS, HF_HUB_CACHE)]
    return dict(theme=gr.themes.Soft(), css=CSS + TEACHER_CSS, allowed_paths=[], blocked_paths=blocked,
                max_file_size=MAX_UPLOAD, max_threads=MAX_THREADS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python app.py`` (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="interface to listen on (default: Gradio's, 127.0.0.1 "
                        "or $GRADIO_SERVER_NAME, which Spaces set to 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--checkpoints", default=os.environ.get(CHECKPOINTS_ENV, str(DEFAULT_CHECKPOINTS)),
                        help=f"folder of checkpoint folders (default: ${CHECKPOINTS_ENV} or ./checkpoints)")
    parser.add_argument("--models", default="", help="comma-separated names to offer (default: all found)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the models named on the command line (a model that fails is reported and left out), then serve."""
    args = parse_args(argv)
    only = [m.strip() for m in args.models.split(",") if m.strip()] or None
    try:
        catalog = Catalog.from_sources(args.checkpoints, hub_ids_from_env(), only).load_all()
    except GptlabError as exc:
        raise SystemExit(f"error: {exc}") from None
    for entry in catalog.entries.values():
        if entry.error:
            print(f"warning: {entry.name} not offered: {entry.error}")
    demo = build_app(catalog, args.checkpoints)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(args.checkpoints))
