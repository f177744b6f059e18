"""Plotly figures, grouped by what is drawn (not for whom); tensors and strings in, ``go.Figure`` out.

- ``attention.py``: every attention matrix (one head, a grid of heads, rollout, a step's rows, a head
  across training)
- ``charts.py``: bars (next tokens, rollout, one head's q·k and weights), the logit lens, loss curves, the ladder
- ``text.py``: text coloured token by token (a model's surprise in bits, or A minus B)
- ``follow.py``: follow one character: the text as HTML shaded by one attention row, that row outlined
- ``style.py``: colour scales, fonts, the Plotly toolbar, teacher style, figure JSON, ``escape_markup`` (text
  from outside shown as written, never read as Plotly's HTML-like markup)
- ``export.py``: CSV/JSON of a matrix, PNG/SVG through kaleido (``kaleido_worker.py`` renders, in its
  own process)

No Gradio here, and nothing from ``gptlab.inside``: a view object's tensors go in, a figure comes out.
"""

from .attention import (
    attention_heatmap,
    head_average,
    head_grid,
    masked,
    rollout_heatmap,
    step_attention_figure,
    training_strip,
)
from .charts import (
    before_after_bars,
    bits_change_bar,
    candidates_figure,
    contribution_bar,
    head_math_bars,
    head_ranking_bar,
    ladder_chart,
    live_loss_figure,
    logit_lens_figure,
    loss_curves,
    top_predictions_bar,
)
from .follow import follow_heatmap, follow_text_html, outline_row
from .style import (
    COLORSCALE,
    PLOT_CONFIG,
    TEACHER_COLORSCALE,
    escape_markup,
    figure_json,
    teacher_style,
    unique_labels,
)
from .text import surprise_text_figure

__all__ = [
    "COLORSCALE", "PLOT_CONFIG", "TEACHER_COLORSCALE", "attention_heatmap", "candidates_figure", "contribution_bar",
    "escape_markup", "figure_json", "head_average", "head_grid", "head_math_bars", "ladder_chart", "live_loss_figure",
    "logit_lens_figure", "loss_curves", "masked", "rollout_heatmap", "step_attention_figure", "surprise_text_figure",
    "teacher_style",
    "top_predictions_bar", "training_strip", "unique_labels", "before_after_bars", "bits_change_bar",
    "head_ranking_bar", "follow_heatmap", "follow_text_html", "outline_row",
]
