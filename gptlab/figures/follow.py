"""Follow one character: the text shaded by the weight one position gives each earlier token, and the
matching attention row outlined in its heatmap.

Strings and tensors in: the text comes out as HTML (every token escaped, each a ``<span data-pos=i>`` a page
can click), the heatmap as a ``go.Figure``. Tokens after the followed one are greyed: a causal model cannot
see them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.colors import sample_colorscale

from .attention import attention_heatmap, rollout_heatmap
from .style import COLORSCALE, TEACHER_COLORSCALE, escape_markup

OUTLINE = "#e4572e"  # the followed token and its heatmap row: an orange-red that neither scale contains
SELECTED = "gl-sel"  # class of the followed token's span (a page's script looks for it)
FUTURE = "gl-future"  # class of tokens the followed one cannot see
FUTURE_STYLE = "background:#f0f0f0;color:#a3a3a3"


def _attr(text: object) -> str:
    """Text for an HTML attribute value: ``escape_markup`` with quotes escaped too."""
    return html.escape(str(text), quote=True)


def _ink(rgb: str) -> str:
    """Black or white text, whichever reads on the background ``'rgb(r, g, b)'``."""
    r, g, b = (int(v) for v in rgb[4:-1].split(","))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def shade_colors(weights: torch.Tensor, zmax: float = 1.0, colorscale: str = COLORSCALE) -> list[str]:
    """One 'rgb(r, g, b)' per weight ([N], 0..zmax), on the same scale as the heatmap drawn with ``zmax``."""
    top = max(float(zmax), 1e-9)
    return sample_colorscale(colorscale, [min(max(float(w) / top, 0.0), 1.0) for w in weights.tolist()])


def follow_text_html(tokens: Sequence[str], weights: torch.Tensor, position: int, caption: str = "",
                     zmax: float = 1.0, teacher: bool = False) -> str:
    """The text as HTML: token i a ``<span data-pos="i">`` shaded by ``weights[i]``, the followed one outlined.

    ``tokens`` ``[N]`` readable tokens (␣ ↵ shown; a line break follows each ↵), ``weights`` ``[N]`` in
    0..``zmax`` (the heatmap's colour range), ``position`` in 0..N-1. Each visible token carries its weight
    as ``data-weight``; later ones are greyed, marked unavailable. ``caption`` is plain text (escaped).
    Teacher style: large type and the Cividis scale. Raises ValueError when the sizes disagree.
    """
    if weights.dim() != 1 or weights.numel() != len(tokens) or not 0 <= position < len(tokens):
        raise ValueError(f"{len(tokens)} tokens, weights {tuple(weights.shape)}, position {position}: they disagree")
    scale = TEACHER_COLORSCALE if teacher else COLORSCALE
    colors = shade_colors(weights, zmax, scale)
    spans = []
    for i, (token, weight, color) in enumerate(zip(tokens, weights.tolist(), colors, strict=True)):
        shown = escape_markup(token)
        if i > position:
            spans.append(f'<span class="gl-tok {FUTURE}" data-pos="{i}" aria-disabled="true" '
                         f'title="{i}:{_attr(token)} · unavailable: after the followed character" '
                         f'style="{FUTURE_STYLE}">{shown}</span>')
        else:
            selected = f" {SELECTED}" if i == position else ""
            outline = f";outline:3px solid {OUTLINE};outline-offset:1px" if i == position else ""
            spans.append(f'<span class="gl-tok{selected}" data-pos="{i}" data-weight="{weight:.6f}" '
                         f'title="{i}:{_attr(token)} · weight {weight:.3f}" '
                         f'style="background:{color};color:{_ink(color)}{outline}">{shown}</span>')
        spans.append("<br>" * token.count("↵"))
    size = 28 if teacher else 20
    legend = ", ".join(sample_colorscale(scale, [0, 0.25, 0.5, 0.75, 1]))
    return (
        f'<div class="gl-follow" data-n="{len(tokens)}" data-position="{position}" '
        f'style="font-size:{size}px;line-height:1.9">'
        f'<div class="gl-follow-caption" style="font-size:0.8em;margin-bottom:4px">{escape_markup(caption)}</div>'
        f'<div class="gl-follow-text" style="font-family:DejaVu Sans Mono,monospace;cursor:pointer;'
        f'word-break:break-all;overflow-wrap:anywhere">'  # a long line wraps between any two tokens
        f'{"".join(spans)}</div>'
        f'<div style="font-size:0.7em;margin-top:6px">weight 0 '
        f'<span style="display:inline-block;width:120px;height:0.8em;background:linear-gradient(to right,{legend})">'
        f'</span> {float(zmax):.2f} · <span style="{FUTURE_STYLE}">unavailable</span> (the future)</div></div>'
    )


def outline_row(fig: go.Figure, row: int, n: int) -> go.Figure:
    """Outline row ``row`` of an n x n heatmap on category axes (in place): a rectangle named 'follow'."""
    fig.add_shape(type="rect", xref="x", yref="y", x0=-0.5, x1=n - 0.5, y0=row - 0.5, y1=row + 0.5,
                  line=dict(color=OUTLINE, width=3), fillcolor="rgba(0,0,0,0)", name="follow")
    return fig


def follow_heatmap(matrix: torch.Tensor, labels: Sequence[str], position: int, title: str = "",
                   rollout: bool = False) -> go.Figure:
    """The followed [query, key] matrix as the explorer draws it (``rollout_heatmap`` for rollout), row
    ``position`` outlined."""
    fig = rollout_heatmap(matrix, labels, title) if rollout else attention_heatmap(matrix, labels, title)
    return outline_row(fig, position, len(labels))


def heatmap_zmax(fig: go.Figure) -> float:
    """The top of a heatmap's colour range: the text is shaded on the same scale."""
    return float(fig.data[0].zmax)
