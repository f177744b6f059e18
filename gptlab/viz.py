"""Plotly figure builders: attention heatmaps, head grids, next-token bars, loss curves.

Plotly only (no Gradio), so tests can check the figures' data directly. Attention matrices
are drawn in matrix orientation: query positions down the side (first token at the top),
key positions across, the masked future (key after query) left blank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

COLORSCALE = "Viridis"  # perceptually uniform, readable in grey, colour-blind safe
GRID_MAX_TOKENS = 96  # small multiples show at most the last 96 positions: more cells than pixels is only bytes
HOVER = "query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"
FONT = dict(family="Inter, DejaVu Sans, sans-serif", size=13)

# The modebar's camera button downloads a PNG at twice the screen size (sharp on slides).
PLOT_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "filename": "gptlab", "scale": 2},
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def masked(pattern: torch.Tensor) -> np.ndarray:
    """A [q, k] pattern as float32 with the future (k > q) as NaN: Plotly draws no cell there.

    A numpy array travels as a compact typed array (base64), ~8x smaller than a JSON list of floats.
    """
    q, k = pattern.shape
    future = torch.ones(q, k, dtype=torch.bool).triu(diagonal=1)
    return pattern.detach().float().cpu().masked_fill(future, float("nan")).numpy().astype(np.float32)


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


def _axis_font(n: int) -> int:
    """Tick label size that still fits when there are many tokens."""
    return 12 if n <= 24 else 10 if n <= 64 else 8


def attention_heatmap(
    pattern: torch.Tensor, labels: Sequence[str], title: str = "", zmax: float = 1.0
) -> go.Figure:
    """One head's causal attention [query, key] as a heatmap; hover shows both tokens and the weight."""
    if pattern.dim() != 2 or pattern.size(0) != len(labels) or pattern.size(1) != len(labels):
        raise ValueError(f"pattern {tuple(pattern.shape)} does not match {len(labels)} labels")
    labels = unique_labels(labels)
    fig = go.Figure(
        go.Heatmap(
            z=masked(pattern), x=labels, y=labels, zmin=0.0, zmax=zmax, colorscale=COLORSCALE,
            hoverongaps=False, hovertemplate=HOVER, colorbar=dict(title=dict(text="weight"), thickness=14),
        )
    )
    size = _axis_font(len(labels))
    fig.update_layout(
        title=dict(text=title), font=FONT, height=560, margin=dict(l=70, r=20, t=60, b=70),
        plot_bgcolor="white",  # masked cells show the background: make it plainly empty
        xaxis=dict(title="key (attended to)", type="category", tickfont=dict(size=size), tickangle=-60),
        yaxis=dict(title="query (attending)", type="category", autorange="reversed", tickfont=dict(size=size)),
    )
    return fig


def head_average(patterns: torch.Tensor) -> torch.Tensor:
    """Mean over heads of a [head, q, k] tensor: where the layer as a whole looks."""
    return patterns.float().mean(dim=0)


def _panel_axes(n_panels: int, cols: int, gap_x: float = 0.04, gap_y: float = 0.12) -> list[dict[str, Any]]:
    """Axis domains of a rows x cols grid of panels, filled row by row from the top.

    What plotly's make_subplots computes, without its cost (a third of the attention request).
    """
    rows = math.ceil(n_panels / cols)
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    panels = []
    for i in range(n_panels):
        r, c = divmod(i, cols)
        x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
        panels.append({"x": [x0, x0 + width], "y": [y1 - height, y1]})
    return panels


def head_grid(
    patterns: torch.Tensor, labels: Sequence[str], title: str = "", cols: int = 4
) -> go.Figure:
    """Small multiples, one heatmap per head, all on ONE colour scale so heads compare fairly."""
    n_head = patterns.size(0)
    rows = math.ceil(n_head / cols)
    labels = unique_labels(labels)
    if len(labels) > GRID_MAX_TOKENS:  # zoom on the latest positions, and say so
        title = f"{title} (last {GRID_MAX_TOKENS} of {len(labels)} positions)"
        labels, patterns = labels[-GRID_MAX_TOKENS:], patterns[:, -GRID_MAX_TOKENS:, -GRID_MAX_TOKENS:]
    top = float(patterns.max()) if patterns.numel() else 1.0
    # few tokens: show them; many: they would overlap in a small panel, hover tells instead
    show_ticks = len(labels) <= 16
    tick = dict(type="category", showticklabels=show_ticks, tickfont=dict(size=9))
    # always `cols` columns, unused cells left empty: one or two heads keep the size of a panel of four
    layout: dict[str, Any] = dict(
        title=dict(text=title), font=FONT, height=max(320, 280 * rows), plot_bgcolor="white",
        coloraxis=dict(colorscale=COLORSCALE, cmin=0.0, cmax=max(top, 1e-6), colorbar=dict(title=dict(text="weight"))),
        margin=dict(l=50, r=20, t=70, b=40), annotations=[],
    )
    traces = []
    for h, domain in enumerate(_panel_axes(n_head, cols, gap_y=0.12 / rows)):
        suffix = "" if h == 0 else str(h + 1)  # plotly names axes x, x2, x3...
        layout[f"xaxis{suffix}"] = dict(tick, domain=domain["x"], anchor=f"y{suffix}", tickangle=-60)
        layout[f"yaxis{suffix}"] = dict(tick, domain=domain["y"], anchor=f"x{suffix}", autorange="reversed")
        layout["annotations"].append(dict(  # the panel's title, centred above it
            text=f"head {h}", x=sum(domain["x"]) / 2, y=domain["y"][1], xref="paper", yref="paper",
            xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=16)))
        traces.append(go.Heatmap(
            z=masked(patterns[h]), x=labels, y=labels, coloraxis="coloraxis", xaxis=f"x{suffix}",
            yaxis=f"y{suffix}", hoverongaps=False, hovertemplate=f"head {h}<br>" + HOVER, name=f"head {h}",
        ))
    return go.Figure(data=traces, layout=layout)


def top_predictions_bar(predictions: Sequence[tuple[str, float]], title: str = "") -> go.Figure:
    """Horizontal bars of the likeliest next tokens, the most likely on top."""
    # unique (two tokens may look alike), and a trailing space keeps "1" from becoming a number axis
    tokens = [f"{tok} " for tok in unique_labels([tok for tok, _ in predictions])]
    probs = [p for _, p in predictions]
    fig = go.Figure(
        go.Bar(
            x=probs, y=tokens, orientation="h", text=[f"{p:.1%}" for p in probs], textposition="auto",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>", marker_color="#4c72b0",
        )
    )
    fig.update_layout(
        title=dict(text=title), font=FONT, height=320, margin=dict(l=80, r=20, t=60, b=40),
        xaxis=dict(title="probability", range=[0, 1]),
        yaxis=dict(type="category", autorange="reversed", tickfont=dict(size=14)),
    )
    return fig


def loss_curves(metrics: Mapping[str, Mapping[str, Any]], x: str = "step") -> go.Figure:
    """Train (dashed) and validation (solid) loss per model from metrics.json ``history`` lists."""
    fig = go.Figure()
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    for i, (name, m) in enumerate(metrics.items()):
        history = [row for row in (m.get("history") or []) if x in row]
        colour = palette[i % len(palette)]
        for key, dash in (("val_loss", "solid"), ("train_loss", "dash")):
            points = [(row[x], row[key]) for row in history if row.get(key) is not None]
            if not points:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=f"{name} {key[:-5]}",
                    line=dict(color=colour, dash=dash), legendgroup=name,
                )
            )
    if not fig.data:
        fig.add_annotation(text="No training history in these checkpoints' metrics.json", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=16))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    fig.update_layout(
        title=dict(text="Loss during training (solid: validation, dashed: train)"), font=FONT, height=460,
        xaxis=dict(title=x), yaxis=dict(title="cross-entropy loss (nats/token)"),
        margin=dict(l=70, r=20, t=60, b=50), legend=dict(groupclick="toggleitem"),
    )
    return fig


def figure_json(fig: go.Figure, config: Mapping[str, Any] = PLOT_CONFIG) -> str:
    """The figure as JSON with a Plotly ``config`` block (toolbar, PNG download) beside data and layout."""
    return json.dumps({**json.loads(fig.to_json()), "config": dict(config)})


def ladder_chart(metrics: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Val bits per character of each model, in ladder order: one unit for char and BPE models alike."""
    names = unique_labels(metrics)
    bits = [m.get("bits_per_char", math.nan) for m in metrics.values()]
    params = [m.get("n_params", 0) for m in metrics.values()]
    fig = go.Figure(
        go.Bar(
            x=names, y=bits, marker_color="#4c72b0",
            text=[f"{b:.3f}<br>{n / 1e6:.2f}M params" if n >= 1e5 else f"{b:.3f}<br>{n:,} params"
                  for b, n in zip(bits, params, strict=True)],
            textposition="outside", cliponaxis=False,
        )
    )
    fig.update_layout(
        title=dict(text="Tiny Shakespeare, whole val split: bits per character, one rung at a time (lower is better)"),
        font=FONT, yaxis=dict(title="val bits per character", range=[0, max(bits, default=1) * 1.25]),
        margin=dict(l=70, r=20, t=60, b=50), plot_bgcolor="white",
    )
    return fig
