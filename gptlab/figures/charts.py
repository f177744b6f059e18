"""Charts that are not attention matrices: next-token bars, rollout bars, one head's q·k and weights, the
logit lens, loss curves, the ladder, and ablation's before/after bars, bits per character and head ranking.

Plotly only (no Gradio); every function returns a ``go.Figure`` that also shows in Jupyter (``fig.show()``).
Tokens, titles and model names are shown as written (``style.escape_markup``), never read as Plotly markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import torch

from .style import COLORSCALE, FONT, escape_all, escape_markup, unique_labels

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def top_predictions_bar(predictions: Sequence[tuple[str, float]], title: str = "") -> go.Figure:
    """Horizontal bars of the likeliest next tokens (token, probability), the most likely on top."""
    # unique (two tokens may look alike), and a trailing space keeps "1" from becoming a number axis
    tokens = [f"{tok} " for tok in unique_labels(escape_all([tok for tok, _ in predictions]))]
    probs = [p for _, p in predictions]
    fig = go.Figure(
        go.Bar(
            x=probs, y=tokens, orientation="h", text=[f"{p:.1%}" for p in probs], textposition="auto",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>", marker_color=PALETTE[0],
        )
    )
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, height=320, margin=dict(l=80, r=20, t=60, b=40),
        xaxis=dict(title="probability", range=[0, 1]),
        yaxis=dict(type="category", autorange="reversed", tickfont=dict(size=14)),
    )
    return fig


def contribution_bar(values: torch.Tensor, labels: Sequence[str], title: str = "", top: int = 12) -> go.Figure:
    """The largest entries of one rollout row [key] as bars: which input positions feed this position."""
    k = min(top, values.numel())
    vals, idx = values.float().topk(k)
    fig = top_predictions_bar([(labels[i], float(v)) for v, i in zip(vals, idx.tolist(), strict=True)], title)
    fig.update_layout(xaxis=dict(title="share of the rollout"), height=max(320, 60 + 24 * k))
    return fig


def head_math_bars(labels: Sequence[str], dot: torch.Tensor, weights: torch.Tensor, title: str = "") -> go.Figure:
    """Two bar panels for one query of one head, a row per visible key: q·k (unscaled) left, softmax weight right.

    ``labels``, ``dot`` and ``weights`` are ``[S]`` for the S keys the query sees, in position order
    (``gptlab.inside.head.HeadMath``); the keys read top to bottom as the prompt does.
    """
    # unique categories (equal labels would share a bar); a trailing space keeps "1" from becoming a number
    keys = [f"{label} " for label in unique_labels(escape_all(labels))]
    dots, probs = [float(d) for d in dot], [float(w) for w in weights]
    fig = go.Figure([
        go.Bar(x=dots, y=keys, orientation="h", name="q·k", marker_color=PALETTE[0], xaxis="x", yaxis="y",
               hovertemplate="%{y}: q·k = %{x:.3f}<extra></extra>"),
        go.Bar(x=probs, y=keys, orientation="h", name="weight", marker_color=PALETTE[1], xaxis="x2", yaxis="y",
               text=[f"{p:.1%}" for p in probs], textposition="auto",
               hovertemplate="%{y}: weight %{x:.3f}<extra></extra>"),
    ])
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, showlegend=False, height=max(320, 90 + 22 * len(keys)),
        xaxis=dict(domain=[0, 0.46], title="q·k (before the scale)", zeroline=True),
        xaxis2=dict(domain=[0.54, 1], title="softmax weight", range=[0, 1]),
        yaxis=dict(type="category", autorange="reversed", title="key", tickfont=dict(size=12)),
        margin=dict(l=90, r=20, t=60, b=50),
    )
    return fig


def logit_lens_figure(rows: Sequence, title: str = "") -> go.Figure:
    """Depth down the side, guesses ranked across: each cell shows a token and its probability.

    Each row has a ``name`` (where it reads) and ``guesses`` [(token, probability)], best first
    (``gptlab.inside.lens.LensRow``).
    """
    names = unique_labels(escape_all([r.name for r in rows]))
    k = max((len(r.guesses) for r in rows), default=0)
    z = [[g[1] for g in r.guesses] + [None] * (k - len(r.guesses)) for r in rows]
    text = [[f"{escape_markup(g[0])}<br>{g[1]:.0%}" for g in r.guesses] + [""] * (k - len(r.guesses)) for r in rows]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"#{i + 1}" for i in range(k)], y=names, text=text, texttemplate="%{text}", zmin=0, zmax=1,
        colorscale=COLORSCALE, hovertemplate="%{y}, guess %{x}: %{text}<extra></extra>",
        colorbar=dict(title=dict(text="p"), thickness=14),
    ))
    fig.update_layout(title=dict(text=escape_markup(title)), font=FONT, height=120 + 60 * len(rows),
                      xaxis=dict(title="guess (best first)", side="top"),
                      yaxis=dict(title="read from the residual stream", autorange="reversed", type="category"),
                      margin=dict(l=120, r=20, t=90, b=30))
    return fig


def candidates_figure(candidates: Sequence[tuple[str, float, float]], chosen: int, title: str = "") -> go.Figure:
    """Grouped bars: each candidate's probability at temperature 1 and after temperature/top-k/top-p.

    ``chosen`` is the index of the picked token in ``candidates`` (``Step.chosen_index``): by
    position, since two different tokens can have the same text.
    """
    # unique names (look-alike tokens keep their own bars); a trailing space keeps digits categorical
    tokens = [f"{t} " for t in unique_labels(escape_all([t for t, _, _ in candidates]))]
    colours = [PALETTE[3] if i == chosen else PALETTE[0] for i in range(len(candidates))]
    fig = go.Figure([
        go.Bar(x=tokens, y=[r for _, r, _ in candidates], name="model (temperature 1)", marker_color="#a6a6a6",
               hovertemplate="%{x}: %{y:.3f}<extra>before</extra>"),
        go.Bar(x=tokens, y=[s for _, _, s in candidates], name="after your settings", marker_color=colours,
               text=[f"{s:.0%}" for _, _, s in candidates], textposition="outside",
               hovertemplate="%{x}: %{y:.3f}<extra>after</extra>"),
    ])
    fig.update_layout(title=dict(text=escape_markup(title)), font=FONT, barmode="group", height=380,
                      yaxis=dict(title="probability", range=[0, 1.1]), xaxis=dict(type="category"),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=60, r=20, t=60, b=80))
    return fig


def loss_curves(metrics: Mapping[str, Mapping[str, Any]], x: str = "step") -> go.Figure:
    """Train (dashed) and validation (solid) loss per model from metrics.json ``history`` lists."""
    fig = go.Figure()
    for i, (name, m) in enumerate(metrics.items()):
        history = [row for row in (m.get("history") or []) if x in row]
        colour, name = PALETTE[i % len(PALETTE)], escape_markup(name)  # a folder name, shown as written
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


def live_loss_figure(history: Sequence[dict[str, float]], title: str = "Live training: loss") -> go.Figure:
    """Train and validation loss (nats/char) against seconds of training, updated as a live run reports."""
    fig = go.Figure()
    for key, dash in (("train_loss", "dash"), ("val_loss", "solid")):
        fig.add_trace(go.Scatter(x=[r["time_s"] for r in history], y=[r[key] for r in history],
                                 mode="lines+markers", name=key[:-5], line=dict(dash=dash),
                                 customdata=[r["step"] for r in history],
                                 hovertemplate="%{x:.0f} s, step %{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=dict(text=escape_markup(title)), font=FONT, height=360,
                      xaxis=dict(title="seconds of training", rangemode="tozero"),
                      yaxis=dict(title="cross-entropy loss (nats/char)", rangemode="tozero"),
                      margin=dict(l=70, r=20, t=60, b=50))
    return fig


def ladder_chart(metrics: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Val bits per character of each model, in ladder order: one unit for char and BPE models alike."""
    names = unique_labels(escape_all(list(metrics)))
    bits = [m.get("bits_per_char", math.nan) for m in metrics.values()]
    params = [m.get("n_params", 0) for m in metrics.values()]
    fig = go.Figure(
        go.Bar(
            x=names, y=bits, marker_color=PALETTE[0],
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


def before_after_bars(candidates: Sequence[tuple[str, float, float]], title: str = "") -> go.Figure:
    """Next-token probabilities with every head (before) and with some switched off (after), a row of two
    bars per candidate (token, p before, p after), likeliest before on top."""
    tokens = [f"{tok} " for tok in unique_labels(escape_all([tok for tok, _, _ in candidates]))]
    fig = go.Figure([
        go.Bar(x=[b for _, b, _ in candidates], y=tokens, orientation="h", name="before", marker_color=PALETTE[0],
               hovertemplate="%{y}: %{x:.3f} before<extra></extra>"),
        go.Bar(x=[a for _, _, a in candidates], y=tokens, orientation="h", name="after", marker_color=PALETTE[1],
               hovertemplate="%{y}: %{x:.3f} after<extra></extra>"),
    ])
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, barmode="group", height=max(320, 80 + 34 * len(tokens)),
        xaxis=dict(title="probability", range=[0, 1]), legend=dict(orientation="h", y=-0.15),
        yaxis=dict(type="category", autorange="reversed", tickfont=dict(size=14)),
        margin=dict(l=80, r=20, t=60, b=80),
    )
    return fig


def bits_change_bar(labels: Sequence[str], delta_bits: torch.Tensor, title: str = "") -> go.Figure:
    """One bar per predicted token of a prompt: how many more bits (red) or fewer (blue) it costs after a change.

    ``labels`` are the tokens predicted, ``[pos - 1]`` like ``delta_bits`` (position t's bar is token t + 1).
    """
    names = [f"{label} " for label in unique_labels(escape_all(labels))]
    values = [float(v) for v in delta_bits]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=[PALETTE[3] if v > 0 else PALETTE[0] for v in values],
                           hovertemplate="%{x}: %{y:+.2f} bits<extra></extra>"))
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, height=340, margin=dict(l=60, r=20, t=60, b=80),
        xaxis=dict(type="category", title="predicted token", tickangle=-60), yaxis=dict(title="change in bits"),
    )
    return fig


def head_ranking_bar(rows: Sequence[tuple[str, float]], title: str = "") -> go.Figure:
    """Heads as horizontal bars (name, rise in loss), in the order given (most needed first, on top)."""
    names = [f"{name} " for name, _ in rows]
    values = [v for _, v in rows]
    fig = go.Figure(go.Bar(x=values, y=unique_labels(escape_all(names)), orientation="h",
                           marker_color=[PALETTE[3] if v > 0 else PALETTE[0] for v in values],
                           hovertemplate="%{y}: %{x:+.4f} nats/token<extra></extra>"))
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, height=max(320, 80 + 20 * len(rows)),
        xaxis=dict(title="rise in val loss without the head (nats/token)"),
        yaxis=dict(type="category", autorange="reversed"), margin=dict(l=80, r=20, t=60, b=50),
    )
    return fig
