"""gptlab app: generate text, compare a bigram with a GPT, look at attention, browse the models.

Thin UI: each tab calls one gptlab function and draws what it returns. Runs as a Hugging Face
Space (``python app.py``) and on a laptop:

    python app.py --checkpoints checkpoints --port 7860
"""

from __future__ import annotations

import os

# Before gradio is imported: no usage analytics unless the deployer turns them on.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Before torch starts OpenMP: many requests share 2 vCPUs, and spinning worker threads then
# starve each other (measured 7-10x slower steps than with passive waiting).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from itertools import zip_longest  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
from gradio.components.plot import PlotData  # noqa: E402

from gptlab.classroom.catalog import CHECKPOINTS_ENV, TABLE_HEADERS, Catalog, hub_ids_from_env  # noqa: E402
from gptlab.errors import GptlabError, UnknownCharactersError  # noqa: E402
from gptlab.figures import (  # noqa: E402
    attention_heatmap,
    figure_json,
    head_average,
    head_grid,
    loss_curves,
    top_predictions_bar,
)
from gptlab.generate import generate  # noqa: E402
from gptlab.inside.explore import attention_view  # noqa: E402
from gptlab.markdown import code_span  # noqa: E402
from gptlab.prompts import ATTENTION_PROMPT, EXAMPLES, GENERATE_PROMPT, fit_builtin  # noqa: E402
from gptlab.sampling import GenerationSettings  # noqa: E402
from gptlab_app import TEACHER_CSS, add_teaching_tabs  # noqa: E402
from gptlab_app.common import REFIT_PLOTS_JS, quietly  # noqa: E402

# Server-side limits: a visitor (or a script calling the API) cannot ask for more than this.
MAX_NEW_TOKENS = 1000
MAX_PROMPT_CHARS = 2000  # generation and attention only use the last block_size tokens anyway
MAX_TOP_K = 1000
# Concurrency for a class of 30 on 2 vCPUs: a tiny model streams a token in a few ms, so four
# streams at once keep both cores busy without starving the attention tab; the rest wait in line.
SAMPLE_CONCURRENCY = 4
ATTENTION_CONCURRENCY = 4
QUEUE_SIZE = 90  # 30 learners x 3 requests each; beyond that a visitor is told the queue is full
STREAM_INTERVAL_S = 0.05  # send the growing text at most 20 times a second
# Gradio's own event time_limit only applies to .stream() events, so generation enforces its own: a
# stream stops (keeping its text) after this long, whatever the load. Attention is one forward pass
# on at most block_size tokens, bounded by the prompt limit and the crop.
GENERATION_TIME_LIMIT_S = 60.0
MAX_UPLOAD = "1mb"  # the app takes no files, but Gradio's /upload route is always open

DEFAULT_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
CSS = ".token-note {font-size: 0.95em} #gen-out textarea, .cmp-out textarea {font-family: monospace}"


def checked_prompt(prompt: str | None) -> str:
    """The prompt, or a gr.Error saying why it cannot be used."""
    if not prompt:
        raise gr.Error("The prompt is empty: type a few words (or click an example) first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise gr.Error(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it.")
    return prompt


def user_error(exc: GptlabError) -> gr.Error:
    """A library error as a message for the app (no library-only advice such as errors='drop')."""
    if isinstance(exc, UnknownCharactersError):
        shown = ", ".join(repr(c) for c in exc.unknown[:10])
        return gr.Error(f"This model has never seen these characters: {shown}. Remove them and try again.")
    return gr.Error(str(exc))


def settings_from(max_new_tokens, temperature, top_k, top_p, seed) -> GenerationSettings:
    """Generation settings from UI/API values, validated against the app's limits."""
    try:
        settings = GenerationSettings(
            max_new_tokens=_whole(max_new_tokens, "max_new_tokens"),
            temperature=temperature,
            top_k=_whole(top_k, "top_k"),
            top_p=top_p,
            seed=None if seed is None else _whole(seed, "seed"),
        )
        settings.validate(MAX_NEW_TOKENS)
    except GptlabError as exc:
        raise gr.Error(str(exc)) from None
    if settings.top_k > MAX_TOP_K:
        raise gr.Error(f"top_k must be in 0..{MAX_TOP_K}, got {settings.top_k}.")
    return settings


def _whole(value, name: str):
    """Sliders send 5.0 for 5: accept whole floats as ints, leave anything else for validate() to reject."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        raise gr.Error(f"{name} must be a whole number, got {value!r}.")
    return value


def stream_text(catalog: Catalog, name: str, prompt: str, settings: GenerationSettings) -> Iterator[str]:
    """The prompt followed by the growing continuation, raising gr.Error on bad input."""
    checkpoint = _checkpoint(catalog, name)
    fit = fit_builtin(checkpoint.tokenizer, prompt)  # an example fitted to this model; a visitor's own as typed
    if fit.changed:
        gr.Warning(f"{name}: {fit.note()}")
    text = prompt = fit.text
    try:
        for piece in generate(checkpoint.model, checkpoint.tokenizer, prompt, settings,
                              max_new_tokens_limit=MAX_NEW_TOKENS):
            text += piece
            yield text
    except GptlabError as exc:
        raise user_error(exc) from None


def _checkpoint(catalog: Catalog, name: str):
    try:
        return catalog.get(name)
    except GptlabError as exc:
        raise gr.Error(str(exc)) from None


def _pairs(streams: Iterator[tuple], prompt: str) -> Iterator[tuple[str, str]]:
    """(left, right) texts; the side that finished first keeps its final text."""
    texts = (prompt, prompt)
    for a, b in streams:
        texts = (a if a is not None else texts[0], b if b is not None else texts[1])
        yield texts


def throttled(texts: Iterator, interval: float = STREAM_INTERVAL_S) -> Iterator:
    """Pass on values at most every ``interval`` seconds, always including the last one."""
    last_sent, value, pending = 0.0, None, False
    for value in texts:
        pending = True
        now = time.monotonic()
        if now - last_sent >= interval:
            last_sent, pending = now, False
            yield value
    if pending:
        yield value


def time_limited(texts: Iterator) -> Iterator:
    """Pass values on until GENERATION_TIME_LIMIT_S has passed, then stop with a warning."""
    deadline = time.monotonic() + GENERATION_TIME_LIMIT_S
    for value in texts:
        yield value
        if time.monotonic() > deadline:
            gr.Warning(f"Stopped after {GENERATION_TIME_LIMIT_S:.0f} s, the time limit of one request.")
            return


def make_handlers(catalog: Catalog):
    """The event functions, closed over the catalog (kept apart from layout so tests can read them)."""

    def generate_fn(model, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Stream a continuation of the prompt from one model."""
        prompt = checked_prompt(prompt)
        settings = settings_from(max_new_tokens, temperature, top_k, top_p, seed)
        yield from throttled(time_limited(stream_text(catalog, model, prompt, settings)))

    def compare_fn(left, right, prompt, max_new_tokens, temperature, seed):
        """Stream two models' continuations of one prompt side by side, same seed and settings."""
        prompt = checked_prompt(prompt)
        settings = settings_from(max_new_tokens, temperature, 0, 1.0, seed)
        streams = zip_longest(stream_text(catalog, left, prompt, settings),
                              stream_text(catalog, right, prompt, settings))
        yield from throttled(time_limited(_pairs(streams, prompt)))

    def attention_fn(model, prompt, layer, head, query):
        """Attention of one head, all heads of the layer, their average, and next-token guesses."""
        prompt = checked_prompt(prompt)
        checkpoint = _checkpoint(catalog, model)
        config = checkpoint.config
        layer, head = _whole(layer, "layer"), _whole(head, "head")
        query = -1 if query is None else _whole(query, "query")
        # check the pickers against this model before doing any work
        if not (isinstance(layer, int) and 0 <= layer < config.n_layer):
            raise gr.Error(f"layer must be in 0..{config.n_layer - 1} for {model}, got {layer!r}.")
        if not (isinstance(head, int) and 0 <= head < config.n_head):
            raise gr.Error(f"head must be in 0..{config.n_head - 1} for {model}, got {head!r}.")
        if not isinstance(query, int):
            raise gr.Error(f"query position must be a whole number, got {query!r}.")
        fit = fit_builtin(checkpoint.tokenizer, prompt)
        try:
            view = attention_view(checkpoint.model, checkpoint.tokenizer, fit.text)
        except GptlabError as exc:
            raise user_error(exc) from None
        n = len(view.ids)
        q = n - 1 if query < 0 or query >= n else query  # out of range means "the last token"
        patterns = view.patterns[layer]
        note = attention_note(view, model, q, query)
        return (
            note + (f"\n\n⚠️ {fit.note(code_span)}" if fit.changed else ""),
            plot(attention_heatmap(patterns[head], view.labels, f"{model} · layer {layer} · head {head}")),
            plot(head_grid(patterns, view.labels, f"All heads of layer {layer} (one colour scale)")),
            plot(attention_heatmap(head_average(patterns), view.labels, f"Layer {layer}: average of heads")),
            plot(top_predictions_bar(view.predictions[q], f"Next token after {view.labels[q]}")),
        )

    def models_fn():
        """The models table and their loss curves."""
        return catalog.table(), plot(loss_curves(catalog.metrics()))

    def info_fn(name):
        return gr.update(label=catalog.label(name) if name in catalog.names else "no model")

    def attention_ranges_fn(name):
        config = catalog.get(name).config if name in catalog.names else None
        top_layer = config.n_layer - 1 if config else 0
        top_head = config.n_head - 1 if config else 0
        # a slider from 0 to 0 cannot be drawn: keep 0..1 and lock it when there is only one choice
        return (gr.update(maximum=max(top_layer, 1), value=0, interactive=top_layer > 0),
                gr.update(maximum=max(top_head, 1), value=0, interactive=top_head > 0))

    def top_k_range_fn(name, top_k):
        """The top-k slider up to the chosen model's vocabulary (at most MAX_TOP_K)."""
        if name not in catalog.names:
            return gr.update()
        top = min(MAX_TOP_K, catalog.get(name).config.vocab_size)
        return gr.update(maximum=top, value=top_k if isinstance(top_k, (int, float)) and 0 <= top_k <= top else 0)

    def attention_on_open_fn(model, prompt, layer, head, query):
        """The explorer drawn when the page opens, with the default model and prompt (no click needed)."""
        return quietly(lambda: attention_fn(model, prompt, layer, head, query), 5)  # the note and four plots

    return dict(generate=generate_fn, compare=compare_fn, attention=attention_fn, models=models_fn,
                info=info_fn, attention_ranges=attention_ranges_fn, top_k_range=top_k_range_fn,
                attention_on_open=attention_on_open_fn)


def attention_note(view, model: str, q: int, asked: int) -> str:
    """What the model saw: token count, cropping, and which query position the bars are for."""
    lines = [f"{code_span(model)} sees {len(view.ids)} token(s) (context {view.block_size})."]
    if view.cropped:
        lines.append(
            f"⚠️ The prompt was cropped to the model's context: the first {view.dropped} token(s) were "
            f"dropped and only the last {view.block_size} are shown."
        )
    if asked >= len(view.ids):
        lines.append(f"Query position {asked} is past the end; showing the last token instead.")
    lines.append(f"Tokens: {' '.join(code_span(label) for label in view.labels[:80])}"
                 + (" …" if len(view.labels) > 80 else ""))
    lines.append(f"Next-token guesses shown for query {code_span(view.labels[q])}.")
    return "\n\n".join(lines)


def plot(fig) -> PlotData:
    """A Plotly figure for gr.Plot, carrying its toolbar config (PNG download button)."""
    return PlotData(type="plotly", plot=figure_json(fig))


def build_app(catalog: Catalog, checkpoints: str = "") -> gr.Blocks:
    """The four-tab Blocks app over the catalog's models."""
    h = make_handlers(catalog)
    names, attn_names = catalog.names, catalog.attention_names
    configs = [catalog.get(n).config for n in attn_names]
    max_layer = max((c.n_layer for c in configs), default=1) - 1
    max_head = max((c.n_head for c in configs), default=1) - 1
    gpt_default = catalog.default("gpt")

    with gr.Blocks(title="gptlab") as demo:
        gr.Markdown("# gptlab: a GPT from scratch, and a look inside")
        if not names:
            gr.Markdown(
                f"### ⚠️ No models found\nNo checkpoint folders in {code_span(checkpoints or '(none given)')} and "
                "no Hub models in `GPTLAB_HUB_MODELS`. Train one (`python -m train gpt`), then start the app with "
                "`--checkpoints DIR` or set `GPTLAB_CHECKPOINTS`.",
                elem_id="no-models",
            )

        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    gen_model = gr.Dropdown(catalog.choices(), value=gpt_default, label="model", elem_id="gen-model")
                    gen_prompt = gr.Textbox(GENERATE_PROMPT, lines=3, label="prompt", elem_id="gen-prompt",
                                            max_length=MAX_PROMPT_CHARS)
                    gr.Examples(list(EXAMPLES), inputs=[gen_prompt], label="examples (click one)")
                    gen_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=300, step=1, label="max new tokens")
                    gen_temp = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="temperature (0 = greedy)")
                    gen_topk = gr.Slider(0, MAX_TOP_K, value=0, step=1, label="top-k (0 = off)", elem_id="gen-topk")
                    gen_topp = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (1 = off)")
                    gen_seed = gr.Number(1337, precision=0, label="seed (empty = random)")
                    with gr.Row():
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="gen-btn")
                        gen_stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
                with gr.Column(scale=2):
                    gen_out = gr.Textbox(lines=22, label="text", elem_id="gen-out", buttons=["copy"])
            gen_event = gen_btn.click(
                h["generate"], [gen_model, gen_prompt, gen_tokens, gen_temp, gen_topk, gen_topp, gen_seed], gen_out,
                api_name="generate", concurrency_id="sample", concurrency_limit=SAMPLE_CONCURRENCY,
            )
            gen_stop.click(None, cancels=[gen_event], api_visibility="private")
            gr.on([gen_model.change, demo.load], h["top_k_range"], [gen_model, gen_topk], gen_topk,
                  api_visibility="private")

        with gr.Tab("Bigram vs GPT", id="compare"):
            gr.Markdown("One prompt, one seed, two models: the bigram sees one character; the GPT sees the context.")
            with gr.Row():
                cmp_prompt = gr.Textbox(GENERATE_PROMPT, lines=2, label="prompt", elem_id="cmp-prompt", scale=2,
                                        max_length=MAX_PROMPT_CHARS)
                cmp_seed = gr.Number(1337, precision=0, label="seed (empty = random)", scale=1)
                cmp_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=250, step=1, label="max new tokens", scale=1)
                cmp_temp = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="temperature", scale=1)
            with gr.Row():
                left_default, right_default = catalog.default("bigram"), gpt_default
                with gr.Column():
                    cmp_left = gr.Dropdown(catalog.choices(), value=left_default, label="left model")
                    left_out = gr.Textbox(lines=16, elem_classes="cmp-out", elem_id="cmp-left",
                                          label=catalog.label(left_default) if left_default else "left")
                with gr.Column():
                    cmp_right = gr.Dropdown(catalog.choices(), value=right_default, label="right model")
                    right_out = gr.Textbox(lines=16, elem_classes="cmp-out", elem_id="cmp-right",
                                           label=catalog.label(right_default) if right_default else "right")
            with gr.Row():
                cmp_btn = gr.Button("Generate both", variant="primary", elem_id="cmp-btn")
                cmp_stop = gr.Button("Stop", variant="stop")
            cmp_event = cmp_btn.click(
                h["compare"], [cmp_left, cmp_right, cmp_prompt, cmp_tokens, cmp_temp, cmp_seed], [left_out, right_out],
                api_name="compare", concurrency_id="sample", concurrency_limit=SAMPLE_CONCURRENCY,
            )
            cmp_stop.click(None, cancels=[cmp_event], api_visibility="private")
            cmp_left.change(h["info"], cmp_left, left_out, api_visibility="private")
            cmp_right.change(h["info"], cmp_right, right_out, api_visibility="private")

        with gr.Tab("Attention explorer", id="attention") as att_tab:
            gr.Markdown(
                "Each row is a query position, each column a key it may look at; the upper triangle is "
                "blank because a token cannot see the future. Prompts longer than the model's context are "
                "cropped to their last tokens."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    att_model = gr.Dropdown(catalog.choices(attn_names), value=catalog.default("gpt", attn_names),
                                            label="model", elem_id="att-model")
                    att_prompt = gr.Textbox(ATTENTION_PROMPT, lines=3, label="prompt", elem_id="att-prompt",
                                            max_length=MAX_PROMPT_CHARS)
                    att_layer = gr.Slider(0, max(max_layer, 1), value=0, step=1, label="layer", elem_id="att-layer")
                    att_head = gr.Slider(0, max(max_head, 1), value=0, step=1, label="head", elem_id="att-head")
                    att_query = gr.Number(-1, precision=0, label="query position for next-token bars (-1 = last)",
                                          elem_id="att-query")
                    att_btn = gr.Button("Show attention", variant="primary", elem_id="att-btn")
                    att_note = gr.Markdown(elem_classes="token-note", elem_id="att-note")
                with gr.Column(scale=2):
                    att_heatmap = gr.Plot(show_label=False, elem_id="att-heatmap")
            with gr.Row():
                att_grid = gr.Plot(show_label=False, elem_id="att-grid")
            with gr.Row():
                att_avg = gr.Plot(show_label=False, elem_id="att-avg", scale=2)
                att_bars = gr.Plot(show_label=False, elem_id="att-bars", scale=1)
            att_inputs = [att_model, att_prompt, att_layer, att_head, att_query]
            att_outputs = [att_note, att_heatmap, att_grid, att_avg, att_bars]
            # drawn when the page opens (the tab mounts at full width when first shown); every draw the
            # visitor asks for cancels it, so a late answer never replaces their own view
            att_open = demo.load(h["attention_on_open"], att_inputs, att_outputs, api_visibility="private",
                                 concurrency_id="attention", concurrency_limit=ATTENTION_CONCURRENCY)
            att_tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
            att_btn.click(h["attention"], att_inputs, att_outputs, api_name="attention", cancels=[att_open],
                          concurrency_id="attention", concurrency_limit=ATTENTION_CONCURRENCY)
            # moving a slider or pressing Enter redraws at once (user actions only: range updates do not loop)
            redraw = dict(fn=h["attention"], inputs=att_inputs, outputs=att_outputs, api_visibility="private",
                          cancels=[att_open], concurrency_id="attention", concurrency_limit=ATTENTION_CONCURRENCY)
            att_layer.release(**redraw)
            att_head.release(**redraw)
            att_query.submit(**redraw)
            att_prompt.submit(**redraw)
            att_model.input(h["attention_ranges"], att_model, [att_layer, att_head], api_visibility="private")
            # per visitor: fit the sliders to the default model (API callers keep the widest ranges)
            demo.load(h["attention_ranges"], att_model, [att_layer, att_head], api_visibility="private")

        with gr.Tab("Models", id="models") as models_tab:
            gr.Markdown("Every model offered here, smallest first. Loss is cross-entropy on held-out text.")
            models_table = gr.Dataframe(catalog.table(), headers=TABLE_HEADERS, interactive=False,
                                        elem_id="models-table", wrap=True)
            loss_plot = gr.Plot(show_label=False, elem_id="loss-plot")
            # drawn when the tab opens: a Plotly chart drawn inside a hidden tab comes out too narrow
            models_tab.select(h["models"], None, [models_table, loss_plot], api_name="models")

        # the teaching tabs (across training, live training, look closer, step through, lessons)
        if attn_names:
            add_teaching_tabs(catalog, demo=demo)

    guard_inputs(demo)
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def guard_inputs(demo: gr.Blocks) -> None:
    """Make every event input refuse a value of the wrong type with a clear message.

    Gradio's Number and Slider preprocessing crash on None, strings, NaN or infinity sent through
    the API (int(nan), None < 0), which reaches the caller as an anonymous error.
    """
    for fn in demo.fns.values():
        for component in fn.inputs:
            if isinstance(component, (gr.Number, gr.Slider)) and not getattr(component, "_guarded", False):
                component.preprocess = _numeric_preprocess(component, component.preprocess)
                component._guarded = True


def _numeric_preprocess(component, preprocess):
    optional = isinstance(component, gr.Number)  # an empty Number means "none" (e.g. a random seed)

    def checked(payload):
        if payload is None and optional:
            return None
        shown = repr(payload) if len(repr(payload)) <= 40 else repr(payload)[:40] + "…"
        message = f"{component.label or 'a number input'} must be a finite number, got {shown}."
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise gr.Error(message)
        try:  # NaN passes Gradio's bounds check and reaches the handler's own check; int(nan) does not
            return preprocess(payload)
        except gr.Error:  # Gradio's own out-of-bounds message is already clear
            raise
        except (ValueError, OverflowError, TypeError):
            raise gr.Error(message) from None

    return checked


def launch_options(checkpoints: str | Path = "") -> dict:
    """Arguments that Gradio 6 takes at launch(): look and feel, and what the server may serve.

    Gradio serves only files it created itself (a visitor's /upload, its cache); on purpose no
    allowed_paths, and the model folders and Hub cache blocked even if GRADIO_ALLOWED_PATHS widens it.
    """
    from huggingface_hub.constants import HF_HUB_CACHE

    blocked = [str(Path(p).resolve()) for p in (checkpoints or DEFAULT_CHECKPOINTS, HF_HUB_CACHE)]
    return dict(theme=gr.themes.Soft(), css=CSS + TEACHER_CSS, allowed_paths=[], blocked_paths=blocked,
                max_file_size=MAX_UPLOAD)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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


if __name__ == "__main__":
    main()
