"""How every gptlab figure looks: colour scales, fonts, the Plotly toolbar, teacher style, axis labels.

One module for the look, so that a heatmap, a bar chart and a lesson page agree with each other.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

COLORSCALE = "Viridis"  # perceptually uniform, readable in grey, colour-blind safe
TEACHER_COLORSCALE = "Cividis"  # designed for colour-vision deficiency, prints and projects well
FONT = dict(family="Inter, DejaVu Sans, sans-serif", size=13)
TEACHER_FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=20, color="#111111")

# The modebar's camera button downloads a PNG at twice the screen size (sharp on slides).
PLOT_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "filename": "gptlab", "scale": 2},
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def escape_markup(text: object) -> str:
    """Text from outside gptlab (a token, a prompt, a model's folder name) made safe for a Plotly figure.

    Plotly reads a subset of HTML in titles, tick labels, legends, annotations and hover text (``<b>``,
    ``<i>``, ``<br>``, ``<a href>``, ``<span style>``); with ``&``, ``<`` and ``>`` written as entities it
    shows the text exactly as typed. Escape such text once, where a figure builder takes it in, and add
    gptlab's own markup (a ``<br>`` between lines) after.
    """
    return html.escape(str(text), quote=False)


def escape_all(texts: Sequence[object]) -> list[str]:
    """``escape_markup`` of each text, in order."""
    return [escape_markup(text) for text in texts]


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Category labels made distinct: a repeat gets " (2)", " (3)"... Plotly draws equal categories as one.

    Labels that are already unique come back unchanged (heatmap labels carry their position).
    """
    out: list[str] = []
    used: set[str] = set()
    for label in labels:
        text, n = str(label), 1
        while text in used:
            n += 1
            text = f"{label} ({n})"
        used.add(text)
        out.append(text)
    return out


def axis_font(n: int) -> int:
    """Tick label size (points) that still fits ``n`` tokens along an axis."""
    return 12 if n <= 24 else 10 if n <= 64 else 8


def figure_json(fig: go.Figure, config: Mapping[str, Any] = PLOT_CONFIG) -> str:
    """The figure as JSON with a Plotly ``config`` block (toolbar, PNG download) beside data and layout."""
    return json.dumps({**json.loads(fig.to_json()), "config": dict(config)})


def teacher_style(fig: go.Figure) -> go.Figure:
    """Projector-safe, in place: large dark text on white, the Cividis colour scale, bigger ticks and margins."""
    fig.update_layout(font=TEACHER_FONT, paper_bgcolor="white", plot_bgcolor="white",
                      title=dict(font=dict(size=24)))
    fig.update_traces(colorscale=TEACHER_COLORSCALE, selector=dict(type="heatmap"))
    if fig.layout.coloraxis and fig.layout.coloraxis.colorscale is not None:
        fig.update_layout(coloraxis=dict(colorscale=TEACHER_COLORSCALE))
    for axis in ("xaxis", "yaxis"):
        for key in fig.layout:
            if key.startswith(axis):
                size = fig.layout[key].tickfont.size if fig.layout[key].tickfont else None
                fig.layout[key].tickfont.size = max(size or 12, 14) + 2
    if fig.layout.height:
        fig.update_layout(height=int(fig.layout.height * 1.15))
    margin = fig.layout.margin
    fig.update_layout(margin=dict(l=int((margin.l or 70) * 1.5), b=int((margin.b or 60) * 1.4)))  # bigger ticks
    return fig
