"""Watch it learn: a tiny GPT trained right here for up to a minute on Tiny Shakespeare or pasted text, its
loss curve, a fresh sample and a heatmap refreshed every few seconds; the trained model then serves this
visitor in Look closer and Step through. One run per visitor, LIVE_CAP on the whole server."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import gradio as gr

from gptlab.classroom.live import MAX_CHARS, MAX_SECONDS, LiveConfig, LiveReport, nats_to_text, train_live
from gptlab.classroom.live_slots import LiveSlots
from gptlab.data import TINY_SHAKESPEARE, load_text
from gptlab.errors import GptlabError
from gptlab.figures import attention_heatmap, live_loss_figure
from gptlab.inside import attention_view

from ..common import bind, error, library_errors, plot, whole
from ..pickers import Visitor

LIVE_CAP = 2  # live trainings at once on the whole server: each takes one CPU thread
REPORT_EVERY_S = 3.0


@functools.lru_cache(maxsize=1)
def shakespeare() -> str:
    """Tiny Shakespeare's first MAX_CHARS characters (the shipped copy, read once)."""
    return load_text(TINY_SHAKESPEARE)[:MAX_CHARS]


def visitor_id(request: gr.Request | None) -> str:
    """The visitor's session: one live run each."""
    return (request.session_hash if request is not None else None) or "anonymous"


def train(slots: LiveSlots, source, text, seconds, request: gr.Request) -> Iterator[tuple]:
    """Train a tiny GPT for a bounded time, streaming loss, sample and heatmap; keeps the model."""
    with library_errors():
        seconds = whole(seconds, "seconds", 1, int(MAX_SECONDS))
    if source == "Tiny Shakespeare":
        try:
            text = shakespeare()
        except GptlabError as exc:
            raise error(f"Tiny Shakespeare is not available here ({exc}). Choose 'My text' and paste "
                        "some text instead.") from None
    config = LiveConfig(max_seconds=seconds, report_every_s=REPORT_EVERY_S)
    with library_errors(), slots.claim(visitor_id(request)) as stopping:
        for report in train_live(text, config, stopping):
            yield _outputs(report)


def stop(slots: LiveSlots, request: gr.Request) -> str:
    """Stop this visitor's live training; the model keeps what it learned so far."""
    stopped = slots.stop(visitor_id(request))
    return "Stopping… the model keeps what it learned so far." if stopped else "No training of yours is running."


def _outputs(report: LiveReport) -> tuple:
    """Status, loss curve, sample and layer 0 head 0's heatmap; the model itself once the run is done."""
    last = report.history[-1]
    state = "done" if report.done else "training"
    why = f" ({report.reason})" if report.done else ""
    status = (f"**{state}{why}** · {report.elapsed_s:.0f} s · step {report.step:,} · validation loss "
              f"{nats_to_text(last['val_loss'])}")
    if report.done:
        status += "\n\nYour model is ready: pick *your model* in 'Look closer' or 'Step through'."
    view = attention_view(report.model, report.tokenizer, report.probe)
    heat = attention_heatmap(view.patterns[0][0], view.labels, f"step {report.step:,} · layer 0 · head 0")
    return (status, plot(live_loss_figure(report.history)), report.sample, plot(heat),
            report.checkpoint() if report.done else gr.skip())


def build(visitor: Visitor) -> None:
    """The Watch it learn tab: what to train on and for how long, then the curve, sample and heatmap."""
    slots = LiveSlots(LIVE_CAP)
    with gr.Tab("Watch it learn", id="live"):
        shape = LiveConfig()
        gr.Markdown(f"Train a tiny GPT ({shape.n_layer} layers, {shape.n_head} heads, {shape.n_embd} wide) right "
                    f"here, for up to {MAX_SECONDS:.0f} seconds on one CPU thread, with the recipe of the bigger "
                    "presets: Muon, rotary positions, ReLU², weight decay and a learning rate that falls with the "
                    "clock to the end of the time you choose. The loss curve, a sample and a heatmap refresh "
                    "every few seconds. "
                    f"One run per visitor, {LIVE_CAP} at once on this server.")
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio(["Tiny Shakespeare", "My text"], value="Tiny Shakespeare", label="train on",
                                  elem_id="live-source")
                text = gr.Textbox(lines=6, label=f"your text (1,000 to {MAX_CHARS:,} characters)",
                                  elem_id="live-text", max_length=MAX_CHARS)
                seconds = gr.Slider(1, MAX_SECONDS, value=30, step=1, label="seconds of training",
                                    elem_id="live-seconds")
                with gr.Row():
                    start = gr.Button("Start training", variant="primary", elem_id="live-start")
                    halt = gr.Button("Stop", variant="stop", elem_id="live-stop")
                status = gr.Markdown(elem_id="live-status")
            with gr.Column(scale=2):
                loss = gr.Plot(show_label=False, elem_id="live-loss")
        with gr.Row():
            sample = gr.Textbox(lines=8, label="a fresh sample", elem_id="live-sample")
            heatmap = gr.Plot(show_label=False, elem_id="live-heatmap")
    start.click(bind(train, slots), [source, text, seconds], [status, loss, sample, heatmap, visitor.live],
                api_name="live", concurrency_id="live", concurrency_limit=LIVE_CAP + 2)
    halt.click(bind(stop, slots), None, status, api_name="live_stop", concurrency_limit=None)
