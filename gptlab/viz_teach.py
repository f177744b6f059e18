"""Figures for teaching: labelled head grids, rollout, logit lens, step-through, live loss, teacher style.

Plotly only (no Gradio); every function returns a ``go.Figure`` that also shows in Jupyter
(``fig.show()``).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from . import viz
from .heads import HeadLabel

TEACHER_COLORSCALE = "Cividis"  # designed for colour-vision deficiency, prints and projects well
TEACHER_FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=20, color="#111111")
STEP_MAX_KEYS = 64  # the step-through attention shows at most the last 64 keys


def labelled_head_grid(patterns: torch.Tensor, labels: Sequence[str], head_labels: Sequence[HeadLabel],
                       title: str = "", cols: int = 4) -> go.Figure:
    """viz.head_grid with each panel titled by the head's best label and score ('head 2 · prev 71%')."""
    fig = viz.head_grid(patterns, labels, title, cols)
    for annotation, label in zip(fig.layout.annotations, head_labels, strict=False):
        annotation.text = f"head {label.head} · {label.short}"
    return fig


def rollout_heatmap(matrix: torch.Tensor, labels: Sequence[str], title: str = "") -> go.Figure:
    """A rollout matrix drawn like attention, its colour scale fitted to the largest value off the diagonal."""
    off = matrix.clone().float()
    off.fill_diagonal_(0)
    top = float(off.max()) if off.numel() > 1 else 1.0
    return viz.attention_heatmap(matrix, labels, title, zmax=max(top, 1e-6))


def contribution_bar(values: torch.Tensor, labels: Sequence[str], title: str = "", top: int = 12) -> go.Figure:
    """The largest entries of one rollout row as bars: which input positions feed this position."""
    k = min(top, values.numel())
    vals, idx = values.float().topk(k)
    fig = viz.top_predictions_bar([(labels[i], float(v)) for v, i in zip(vals, idx.tolist(), strict=True)], title)
    fig.update_layout(xaxis=dict(title="share of the rollout"), height=max(320, 60 + 24 * k))
    return fig


def logit_lens_figure(rows: Sequence, title: str = "") -> go.Figure:
    """Depth down the side, guesses ranked across: each cell shows a token and its probability."""
    names = viz.unique_labels([r.name for r in rows])
    k = max((len(r.guesses) for r in rows), default=0)
    z = [[g[1] for g in r.guesses] + [None] * (k - len(r.guesses)) for r in rows]
    text = [[f"{g[0]}<br>{g[1]:.0%}" for g in r.guesses] + [""] * (k - len(r.guesses)) for r in rows]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"#{i + 1}" for i in range(k)], y=names, text=text, texttemplate="%{text}", zmin=0, zmax=1,
        colorscale=viz.COLORSCALE, hovertemplate="%{y}, guess %{x}: %{text}<extra></extra>",
        colorbar=dict(title=dict(text="p"), thickness=14),
    ))
    fig.update_layout(title=dict(text=title), font=viz.FONT, height=120 + 60 * len(rows),
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
    tokens = [f"{t} " for t in viz.unique_labels([t for t, _, _ in candidates])]
    colours = ["#c44e52" if i == chosen else "#4c72b0" for i in range(len(candidates))]
    fig = go.Figure([
        go.Bar(x=tokens, y=[r for _, r, _ in candidates], name="model (temperature 1)", marker_color="#a6a6a6",
               hovertemplate="%{x}: %{y:.3f}<extra>before</extra>"),
        go.Bar(x=tokens, y=[s for _, _, s in candidates], name="after your settings", marker_color=colours,
               text=[f"{s:.0%}" for _, _, s in candidates], textposition="outside",
               hovertemplate="%{x}: %{y:.3f}<extra>after</extra>"),
    ])
    fig.update_layout(title=dict(text=title), font=viz.FONT, barmode="group", height=380,
                      yaxis=dict(title="probability", range=[0, 1.1]), xaxis=dict(type="category"),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=60, r=20, t=60, b=80))
    return fig


def step_attention_figure(attention: torch.Tensor, key_labels: Sequence[str], title: str = "") -> go.Figure:
    """Every head's attention from the position that chose the new token: one row per (layer, head)."""
    n_layer, n_head, n_keys = attention.shape
    keep = min(n_keys, STEP_MAX_KEYS)
    rows = attention[:, :, -keep:].reshape(n_layer * n_head, keep).numpy()
    names = [f"L{layer} H{head}" for layer in range(n_layer) for head in range(n_head)]
    fig = go.Figure(go.Heatmap(
        z=rows, x=viz.unique_labels(list(key_labels)[-keep:]), y=names, zmin=0, zmax=1, colorscale=viz.COLORSCALE,
        hovertemplate="%{y} → key %{x}: %{z:.3f}<extra></extra>", colorbar=dict(title=dict(text="weight")),
    ))
    fig.update_layout(title=dict(text=title), font=viz.FONT, height=max(260, 90 + 24 * len(names)),
                      xaxis=dict(title="key (earlier tokens)", type="category", tickangle=-60,
                                 tickfont=dict(size=viz._axis_font(keep))),
                      yaxis=dict(type="category", autorange="reversed"), margin=dict(l=70, r=20, t=60, b=80))
    return fig


def live_loss_figure(history: Sequence[dict[str, float]], title: str = "Live training: loss") -> go.Figure:
    """Train and validation loss against seconds of training, updated as a live run reports."""
    fig = go.Figure()
    for key, dash in (("train_loss", "dash"), ("val_loss", "solid")):
        fig.add_trace(go.Scatter(x=[r["time_s"] for r in history], y=[r[key] for r in history],
                                 mode="lines+markers", name=key[:-5], line=dict(dash=dash),
                                 customdata=[r["step"] for r in history],
                                 hovertemplate="%{x:.0f} s, step %{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=dict(text=title), font=viz.FONT, height=360,
                      xaxis=dict(title="seconds of training", rangemode="tozero"),
                      yaxis=dict(title="cross-entropy loss (nats/char)", rangemode="tozero"),
                      margin=dict(l=70, r=20, t=60, b=50))
    return fig


def teacher_style(fig: go.Figure) -> go.Figure:
    """Projector-safe: large dark text on white, the Cividis colour scale, thicker bars."""
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


def training_strip(frames: Sequence[tuple], title: str = "") -> go.Figure:
    """One head at several training steps, side by side on one colour scale: (snapshot, pattern, labels) frames."""
    n = len(frames)
    fig = make_subplots(rows=1, cols=max(n, 1), horizontal_spacing=0.02,
                        subplot_titles=[snap.label.replace(" · ", "<br>") for snap, _, _ in frames])
    for i, (snap, pattern, labels) in enumerate(frames):
        labels = viz.unique_labels(labels)
        fig.add_trace(go.Heatmap(z=viz.masked(pattern), x=labels, y=labels, coloraxis="coloraxis",
                                 hoverongaps=False, hovertemplate=f"step {snap.step}<br>" + viz.HOVER),
                      row=1, col=i + 1)
    fig.update_xaxes(type="category", showticklabels=False)
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=False)
    fig.update_layout(title=dict(text=title), font=viz.FONT, height=330, plot_bgcolor="white",
                      coloraxis=dict(colorscale=viz.COLORSCALE, cmin=0, cmax=1,
                                     colorbar=dict(title=dict(text="weight"))),
                      margin=dict(l=20, r=20, t=120, b=20))
    return fig
