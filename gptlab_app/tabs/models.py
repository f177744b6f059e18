"""Models: every model offered, smallest first, with its size, losses, training time and source, and the
loss curves of their trainings."""

from __future__ import annotations

import gradio as gr

from gptlab.classroom.catalog import TABLE_HEADERS, Catalog
from gptlab.figures import loss_curves

from ..common import bind, plot


def show(catalog: Catalog) -> tuple:
    """The models table and their loss curves."""
    return catalog.table(), plot(loss_curves(catalog.metrics()))


def build(catalog: Catalog) -> None:
    """The Models tab: the table, then the curves (drawn when the tab opens, so the chart fits its box)."""
    with gr.Tab("Models", id="models") as tab:
        gr.Markdown("Every model offered here, smallest first. Loss is cross-entropy on held-out text.")
        table = gr.Dataframe(catalog.table(), headers=TABLE_HEADERS, interactive=False, elem_id="models-table",
                             wrap=True)
        curves = gr.Plot(show_label=False, elem_id="loss-plot")
    # drawn when the tab opens: a Plotly chart drawn inside a hidden tab comes out too narrow
    tab.select(bind(show, catalog), None, [table, curves], api_name="models")
