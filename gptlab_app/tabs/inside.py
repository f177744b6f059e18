"""Inside a head: why one head looks where it looks at one query. For every key the query may see, the
table shows q·k, the score after the scale 1/√head_size, the softmax weight and how far that key's value
moves the output; bars put q·k beside the weight, and the table downloads as CSV."""

from __future__ import annotations

import gradio as gr

from gptlab.checkpoint import Checkpoint
from gptlab.classroom.catalog import Catalog
from gptlab.errors import ExportError
from gptlab.figures import head_math_bars
from gptlab.figures.export import table_csv
from gptlab.inside import HeadMath, head_math
from gptlab.markdown import code_span
from gptlab.prompts import ATTENTION_PROMPT

from ..common import (
    MAX_PROMPT_CHARS,
    REFIT_PLOTS_JS,
    TEACH,
    bind,
    checked_prompt,
    fitted_prompt,
    layer_and_head,
    library_errors,
    plot,
    quietly,
    token_position,
)
from ..downloads import csv_file
from ..pickers import Visitor, config_of, get_model, layer_head_sliders, model_picker, picker_updates

# the table's columns, in the order of HeadMath.table()'s keys (its scale column is the same on every row,
# so the note says it once instead)
COLUMNS = [("key position", "position"), ("key", "token"), ("q·k", "q_dot_k"), ("scaled score", "score"),
           ("weight", "weight"), ("contribution size", "contribution_size")]
DECIMALS = 6  # as the CSV writes them: the weights shown still sum to 1 within 1e-5
SCALE_COLUMN = "scale (1/√head_size)"  # the CSV's one column more than the table's: the note says it once


def csv_rows(rows: list[dict]) -> list[dict]:
    """``HeadMath.table()`` rows under the table's own headers (COLUMNS), the scale last: the CSV's rows."""
    return [{name: row[key] for name, key in COLUMNS} | {SCALE_COLUMN: row["scale"]} for row in rows]


def show(catalog: Catalog, model, prompt, layer, head, query, teacher=False, live: Checkpoint | None = None) -> tuple:
    """One head at one query: a note (head size, its square root, the query), the keys sorted by weight
    (position, key, q·k, scaled score, weight, contribution size), the q·k and weight bars, and the table as CSV.

    ``query`` counts token positions from 0; -1 is the last. A layer, head or query the model or the prompt
    lacks is refused with a message saying what may be asked.
    """
    with library_errors():
        prompt = checked_prompt(prompt)
        checkpoint = get_model(catalog, model, live)
        layer, head = layer_and_head(checkpoint.config, layer, head, model)  # before doing any work
        query = token_position(query, "query position")
        text, fit_note = fitted_prompt(checkpoint.tokenizer, prompt)
        found = head_math(checkpoint.model, checkpoint.tokenizer, text, layer, head, query)
    rows = found.table()
    title = f"{model} · layer {layer} · head {head} · query {found.query_label}"
    try:
        path, written = csv_file(table_csv(csv_rows(rows)), title), ""
    except ExportError as exc:  # the view still stands; only the download is missing
        path, written = None, f"⚠️ {exc}"
    return (
        "\n\n".join(part for part in (note(found), fit_note, written) if part),
        [[round(row[key], DECIMALS) if isinstance(row[key], float) else row[key] for _, key in COLUMNS]
         for row in rows],
        plot(head_math_bars(found.labels, found.dot, found.weights, title), teacher),
        path,
    )


def show_on_open(catalog: Catalog, model, prompt, layer, head, query, teacher=False,
                 live: Checkpoint | None = None) -> tuple:
    """The head drawn when the page opens, with the default model and prompt (no click needed)."""
    return quietly(lambda: show(catalog, model, prompt, layer, head, query, teacher, live), 4)


def note(found: HeadMath) -> str:
    """The scale written out, the query and where its largest weight goes (Markdown)."""
    hs, top = found.head_size, found.order[0]
    lines = [
        f"head_size = {hs}, √{hs} = {found.sqrt_head_size:.2f}, so each q·k is multiplied by "
        f"1/{found.sqrt_head_size:.2f} = {found.scale:.4f} before the softmax.",
        f"Query: position {found.query}, {code_span(found.tokens[-1])}; it may look at keys 0..{found.query}. "
        f"Its largest weight, {float(found.weights[top]):.1%}, goes to key {top}, {code_span(found.tokens[top])}.",
    ]
    if found.dropped:
        lines.append(f"⚠️ The prompt was cropped to the model's context: the first {found.dropped} token(s) "
                     "were dropped, and positions count from the first one kept.")
    return "\n\n".join(lines)


def fit_pickers(catalog: Catalog, model, layer, head, live: Checkpoint | None = None) -> tuple[dict, dict]:
    """Inside a head's layer and head sliders fitted to the chosen model."""
    return picker_updates(config_of(catalog, model, live), layer, head)


def build(catalog: Catalog, visitor: Visitor) -> None:
    """The Inside a head tab: inputs and the note, the table sorted by weight, the bars, the CSV download."""
    with gr.Tab("Inside a head", id="inside") as tab:
        gr.Markdown("Why a head looks where it looks: the query's dot product q·k with every key it may see, "
                    "scaled by 1/√head_size, becomes a weight through the softmax; the head's output is the "
                    "weighted sum of the keys' value vectors. A key's contribution size is the length of its "
                    "weight × its value vector: how far that key moves the head's output.")
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(catalog, "inside-model", live=True)
                prompt = gr.Textbox(ATTENTION_PROMPT, lines=3, label="prompt", elem_id="inside-prompt",
                                    max_length=MAX_PROMPT_CHARS)
                layer, head = layer_head_sliders(catalog, "inside")
                query = gr.Number(-1, precision=0, label="query position (-1 = last)", elem_id="inside-query")
                button = gr.Button("Look inside", variant="primary", elem_id="inside-btn")
                shown = gr.Markdown(elem_id="inside-note")
            with gr.Column(scale=2):
                bars = gr.Plot(show_label=False, elem_id="inside-bars")
        table = gr.Dataframe(headers=[name for name, _ in COLUMNS], datatype=["number", "str"] + ["number"] * 4,
                             interactive=False, label="keys, largest weight first", elem_id="inside-table")
        csv = gr.File(label="the table as CSV", interactive=False, elem_id="inside-csv")
    teacher, live, demo = visitor.teacher, visitor.live, visitor.demo
    inputs, outputs = [model, prompt, layer, head, query, teacher, live], [shown, table, bars, csv]
    # drawn when the page opens; the visitor's own draws cancel it, so a late answer never replaces them
    on_open = demo.load(bind(show_on_open, catalog), inputs, outputs, api_visibility="private", **TEACH)
    tab.select(None, js=REFIT_PLOTS_JS, api_visibility="private")
    button.click(bind(show, catalog), inputs, outputs, api_name="inside", cancels=[on_open], **TEACH)
    gr.on([layer.release, head.release, query.submit, prompt.submit], bind(show, catalog), inputs, outputs,
          api_visibility="private", cancels=[on_open], **TEACH)
    # the sliders follow the chosen model (and the visitor's live model once it is trained)
    gr.on([model.change, live.change, demo.load], bind(fit_pickers, catalog), [model, layer, head, live],
          [layer, head], api_visibility="private")
