"""Text coloured token by token: a model's surprise (bits) at each character, or model A minus model B.

The text is laid out as it reads, a line per line of text (wrapped at ``width`` tokens), as one heatmap
whose cells are the tokens; hovering a cell shows its bits, the true token's rank and the top guesses.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch

from .style import COLORSCALE, FONT, escape_all, escape_markup

MIN_HEIGHT = 240  # px: shorter, a one- or two-line text leaves Plotly no room for the plot and colour bar


def _lines(tokens: Sequence[str], width: int) -> list[list[int]]:
    """Token positions grouped into display lines: a new line after each ↵ and after ``width`` tokens."""
    lines: list[list[int]] = [[]]
    for i, token in enumerate(tokens):
        if len(lines[-1]) == width:
            lines.append([])
        lines[-1].append(i)
        if token.endswith("↵"):
            lines.append([])
    return [line for line in lines if line]


def surprise_text_figure(
    tokens: Sequence[str], bits: torch.Tensor, ranks: torch.Tensor, top_labels: Sequence[Sequence[str]],
    top_probs: torch.Tensor, title: str = "", *, baseline_bits: torch.Tensor | None = None,
    names: tuple[str, str] = ("A", "B"), width: int = 64,
) -> go.Figure:
    """The text with each predicted token coloured by its bits, or by A − B when ``baseline_bits`` is given.

    ``tokens`` is ``[N]`` readable tokens (``Surprise.tokens``); ``bits``, ``ranks`` and ``baseline_bits``
    are ``[T]`` with T = N − 1 and ``top_labels``/``top_probs`` ``[T, k]``: index t is about token t + 1
    (``gptlab.inside.Surprise``). The first token has no colour: nothing comes before it. A − B is drawn
    on a diverging scale centred on 0: blue where A (``names[0]``) is less surprised than B.
    """
    shown = escape_all(tokens)
    a_name, b_name = escape_all(names)
    values = bits.float() if baseline_bits is None else bits.float() - baseline_bits.float()
    lines = _lines(tokens, width)
    z, text, hover = [], [], []
    for line in lines:
        pad = width - len(line)
        z.append([float(values[i - 1]) if i > 0 else None for i in line] + [None] * pad)
        text.append([shown[i] for i in line] + [""] * pad)
        hover.append([_hover(i, shown, bits, ranks, top_labels, top_probs, baseline_bits, a_name, b_name)
                      for i in line] + [""] * pad)
    difference = baseline_bits is not None
    limit = float(values.abs().max()) if difference and values.numel() else None
    fig = go.Figure(go.Heatmap(
        z=z, text=text, texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
        hoverongaps=False, xgap=1, ygap=3,
        colorscale="RdBu_r" if difference else COLORSCALE, zmid=0 if difference else None,
        zmin=-limit if limit else None, zmax=limit if limit else None,
        colorbar=dict(title=f"{a_name} − {b_name}<br>bits" if difference else "bits"),
    ))
    fig.update_layout(
        title=dict(text=escape_markup(title)), font=FONT, height=max(MIN_HEIGHT, 90 + 26 * len(lines)),
        margin=dict(l=20, r=20, t=60, b=20),
        xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"),
    )
    return fig


def _hover(i: int, shown: Sequence[str], bits: torch.Tensor, ranks: torch.Tensor, top_labels: Sequence[Sequence[str]],
           top_probs: torch.Tensor, baseline_bits: torch.Tensor | None, a_name: str, b_name: str) -> str:
    """One cell's hover text (already escaped tokens, gptlab's own <br> between lines)."""
    if i == 0:
        return f"{i}:{shown[i]}<br>not predicted: nothing comes before it"
    t = i - 1
    guesses = ", ".join(f"{escape_markup(label)} {float(p):.0%}" for label, p in zip(top_labels[t], top_probs[t],
                                                                                       strict=True))
    if baseline_bits is None:
        head = f"{float(bits[t]):.2f} bits · {guess_rank(int(ranks[t]))}"
    else:
        head = (f"{a_name} {float(bits[t]):.2f} bits, {b_name} {float(baseline_bits[t]):.2f} bits: "
                f"{a_name} − {b_name} = {float(bits[t] - baseline_bits[t]):+.2f}<br>"
                f"{guess_rank(int(ranks[t]))} of {a_name}")
    return f"{i}:{shown[i]}<br>{head}<br>top guesses: {guesses}"


def guess_rank(rank: int) -> str:
    """A 0-based rank (how many tokens the model found likelier than the true one) as read: 0 -> '1st guess',
    1 -> '2nd guess', 10 -> '11th guess'."""
    n = rank + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} guess"
