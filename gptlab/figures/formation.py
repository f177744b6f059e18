"""A score and a loss across training on one chart: the best head's induction score (left axis) and the val
loss (right axis) at each snapshot, with the step range where the score climbs shaded."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from .style import FONT, escape_markup

SCORE_COLOUR, LOSS_COLOUR, BITS_COLOUR = "#c44e52", "#4c72b0", "#55a868"


def induction_across_figure(steps: Sequence[int], scores: Sequence[float], val_loss: Sequence[float | None],
                            chance: float, rise: tuple[int, int] | None = None,
                            second_copy_bits: Sequence[float] | None = None, title: str = "",
                            unit: str = "token") -> go.Figure:
    """Induction score (0..1, left axis) and val loss in nats per token (right axis) against training step.

    ``rise`` (start step, end step) shades where the score climbs; ``chance`` is drawn as a dotted line;
    ``second_copy_bits`` (bits per ``unit``, 'character' or 'token', on the repeated copy) joins the right
    axis when given. A loss of None (not recorded at that snapshot) leaves a gap.
    """
    fig = go.Figure()
    if rise is not None:
        fig.add_vrect(x0=rise[0], x1=rise[1], fillcolor="#f2c14e", opacity=0.25, line_width=0, layer="below")
    fig.add_trace(go.Scatter(x=list(steps), y=list(scores), mode="lines+markers", name="induction score",
                             line=dict(color=SCORE_COLOUR, width=3),
                             hovertemplate="step %{x:,}: score %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[chance, chance], mode="lines", name="chance",
                             line=dict(color=SCORE_COLOUR, dash="dot", width=1), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=list(steps), y=list(val_loss), mode="lines+markers", name="val loss", yaxis="y2",
                             line=dict(color=LOSS_COLOUR), connectgaps=False,
                             hovertemplate="step %{x:,}: val loss %{y:.3f}<extra></extra>"))
    if second_copy_bits is not None:
        fig.add_trace(go.Scatter(x=list(steps), y=list(second_copy_bits), mode="lines+markers", yaxis="y2",
                                 name="second-copy bits", line=dict(color=BITS_COLOUR, dash="dash"),
                                 hovertemplate=f"step %{{x:,}}: %{{y:.2f}} bits per {unit} on the copy<extra></extra>"))
    fig.update_layout(
        title=dict(text=escape_markup(title or "Induction score and loss across training")), font=FONT, height=420,
        xaxis=dict(title="training step"),
        yaxis=dict(title="best head's induction score", range=[0, 1], color=SCORE_COLOUR),
        yaxis2=dict(title=f"val loss (nats/token) · copy bits per {unit}", overlaying="y", side="right",
                    rangemode="tozero", color=LOSS_COLOUR, showgrid=False, tickformat=".1f"),
        legend=dict(orientation="h", y=-0.2), margin=dict(l=70, r=70, t=60, b=80),
    )
    return fig
