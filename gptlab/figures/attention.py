"""Every attention-matrix figure: one head, a grid of heads, rollout, a head across training, a step's rows.

Plotly only (no Gradio), and tensors and strings in (never a view object), so tests and notebooks
check the figures' data directly. Every string that comes in (labels, titles) is shown as written:
``style.escape_markup`` keeps Plotly from reading a token such as ``<i>`` as markup. Matrices are
drawn in matrix orientation: query positions down the side (first token at the top), key positions
across, the masked future (key after query) blank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from .style import COLORSCALE, FONT, axis_font, escape_all, escape_markup, unique_labels

GRID_MAX_TOKENS = 96  # small multiples show at most the last 96 positions: more cells than pixels is only bytes
STEP_MAX_KEYS = 64  # the step-through attention shows at most the last 64 keys
HOVER = "query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"


def masked(pattern: torch.Tensor) -> np.ndarray:
    """A [q, k] pattern as float32 with the future (k > q) as NaN: Plotly draws no cell there.

    A numpy array travels as a compact typed array (base64), ~8x smaller than a JSON list of floats.
    """
    q, k = pattern.shape
    future = torch.ones(q, k, dtype=torch.bool).triu(diagonal=1)
    return pattern.detach().float().cpu().masked_fill(future, float("nan")).numpy().astype(np.float32)


def attention_heatmap(
    pattern: torch.Tensor, labels: Sequence[str], title: str = "", zmax: float = 1.0
) -> go.Figure:
    """One head's causal attention [query, key] as a heatmap; hover shows both tokens and the weight."""
    if pattern.dim() != 2 or pattern.size(0) != len(labels) or pattern.size(1) != len(labels):
        raise ValueError(f"pattern {tuple(pattern.shape)} does not match {len(labels)} labels")
    labels = unique_labels(escape_all(labels))
    fig = go.Figure(
        go.Heatmap(
            z=masked(pattern), x=labels, y=labels, zmin=0.0, zmax=zmax, colorscale=COLORSCALE,
            hoverongaps=False, hovertemplate=HOVER, colorbar=dict(title=dict(text="weight"), thickness=14),
        )
    )
    size = axis_font(len(labels))
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, height=560, margin=dict(l=70, r=20, t=60, b=70),
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
    rows = max(1, math.ceil(n_panels / cols))
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    panels = []
    for i in range(n_panels):
        r, c = divmod(i, cols)
        x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
        panels.append({"x": [x0, x0 + width], "y": [y1 - height, y1]})
    return panels


def _add_panel(layout: dict[str, Any], i: int, domain: dict[str, Any], title: str,
               axis: dict[str, Any]) -> dict[str, str]:
    """Give panel ``i`` its axes at ``domain`` and its title centred above it; the axis names for its trace."""
    suffix = "" if i == 0 else str(i + 1)  # plotly names axes x, x2, x3...
    layout[f"xaxis{suffix}"] = dict(axis, domain=domain["x"], anchor=f"y{suffix}", tickangle=-60)
    layout[f"yaxis{suffix}"] = dict(axis, domain=domain["y"], anchor=f"x{suffix}", autorange="reversed")
    layout["annotations"].append(dict(
        text=title, x=sum(domain["x"]) / 2, y=domain["y"][1], xref="paper", yref="paper",
        xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=16)))
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def head_grid(
    patterns: torch.Tensor, labels: Sequence[str], title: str = "", cols: int = 4,
    panel_titles: Sequence[str] | None = None,
) -> go.Figure:
    """Small multiples of a [head, q, k] tensor, one heatmap per head, all on ONE colour scale.

    ``panel_titles`` name the panels (e.g. each head's label, ``HeadLabel.panel_title``);
    by default 'head 0', 'head 1', ...
    """
    n_head = patterns.size(0)
    titles = escape_all(panel_titles) if panel_titles is not None else [f"head {h}" for h in range(n_head)]
    if len(titles) != n_head:
        raise ValueError(f"{len(titles)} panel titles for {n_head} heads: give one per head")
    rows = math.ceil(n_head / cols)
    labels, title = unique_labels(escape_all(labels)), escape_markup(title)
    if len(labels) > GRID_MAX_TOKENS:  # zoom on the latest positions, and say so
        title = f"{title} (last {GRID_MAX_TOKENS} of {len(labels)} positions)"
        labels, patterns = labels[-GRID_MAX_TOKENS:], patterns[:, -GRID_MAX_TOKENS:, -GRID_MAX_TOKENS:]
    top = float(patterns.max()) if patterns.numel() else 1.0
    # few tokens: show them; many: they would overlap in a small panel, hover tells instead
    tick = dict(type="category", showticklabels=len(labels) <= 16, tickfont=dict(size=9))
    # always `cols` columns, unused cells left empty: one or two heads keep the size of a panel of four
    layout: dict[str, Any] = dict(
        title=dict(text=title), font=FONT, height=max(320, 280 * rows), plot_bgcolor="white",
        coloraxis=dict(colorscale=COLORSCALE, cmin=0.0, cmax=max(top, 1e-6), colorbar=dict(title=dict(text="weight"))),
        margin=dict(l=50, r=20, t=70, b=40), annotations=[],
    )
    traces = [
        go.Heatmap(z=masked(patterns[h]), x=labels, y=labels, coloraxis="coloraxis", hoverongaps=False,
                   hovertemplate=f"head {h}<br>" + HOVER, name=f"head {h}",
                   **_add_panel(layout, h, domain, titles[h], tick))
        for h, domain in enumerate(_panel_axes(n_head, cols, gap_y=0.12 / rows))
    ]
    return go.Figure(data=traces, layout=layout)


def rollout_heatmap(matrix: torch.Tensor, labels: Sequence[str], title: str = "") -> go.Figure:
    """A [q, k] rollout matrix drawn like attention, its colour scale fitted to the largest value off the diagonal."""
    off = matrix.clone().float()
    off.fill_diagonal_(0)
    top = float(off.max()) if off.numel() > 1 else 1.0
    return attention_heatmap(matrix, labels, title, zmax=max(top, 1e-6))


def step_attention_figure(attention: torch.Tensor, key_labels: Sequence[str], title: str = "") -> go.Figure:
    """Every head's attention [layer, head, key] from the position that chose a new token: one row per head."""
    n_layer, n_head, n_keys = attention.shape
    keep = min(n_keys, STEP_MAX_KEYS)
    rows = attention[:, :, -keep:].reshape(n_layer * n_head, keep).numpy()
    names = [f"L{layer} H{head}" for layer in range(n_layer) for head in range(n_head)]
    fig = go.Figure(go.Heatmap(
        z=rows, x=unique_labels(escape_all(list(key_labels)[-keep:])), y=names, zmin=0, zmax=1, colorscale=COLORSCALE,
        hovertemplate="%{y} → key %{x}: %{z:.3f}<extra></extra>", colorbar=dict(title=dict(text="weight")),
    ))
    fig.update_layout(title=dict(text=escape_markup(title)), font=FONT, height=max(260, 90 + 24 * len(names)),
                      xaxis=dict(title="key (earlier tokens)", type="category", tickangle=-60,
                                 tickfont=dict(size=axis_font(keep))),
                      yaxis=dict(type="category", autorange="reversed"), margin=dict(l=70, r=20, t=60, b=80))
    return fig


def training_strip(frames: Sequence[tuple[Any, torch.Tensor, Sequence[str]]], title: str = "") -> go.Figure:
    """One head at several training steps, side by side on one colour scale.

    Each frame is (snapshot, [q, k] pattern, token labels); a snapshot is anything with a ``step``
    and a ``label`` (``gptlab.snapshots.Snapshot``, as ``inside.head_across_training`` returns).
    """
    layout: dict[str, Any] = dict(
        title=dict(text=escape_markup(title)), font=FONT, height=330, plot_bgcolor="white",
        coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=1, colorbar=dict(title=dict(text="weight"))),
        margin=dict(l=20, r=20, t=120, b=20), annotations=[],
    )
    tick = dict(type="category", showticklabels=False)
    traces = []
    domains = _panel_axes(len(frames), max(len(frames), 1), gap_x=0.02)
    for i, ((snap, pattern, labels), domain) in enumerate(zip(frames, domains, strict=True)):
        labels = unique_labels(escape_all(labels))
        axes = _add_panel(layout, i, domain, escape_markup(snap.label).replace(" · ", "<br>"), tick)
        traces.append(go.Heatmap(z=masked(pattern), x=labels, y=labels, coloraxis="coloraxis", hoverongaps=False,
                                 hovertemplate=f"step {snap.step}<br>" + HOVER, **axes))
    return go.Figure(data=traces, layout=layout)
