"""gptlab.figures: the figures show exactly the captured attention, masked, labelled, on shared scales."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from renderer_marks import NEEDS_RENDERER

from gptlab import figures, load_checkpoint
from gptlab.figures.attention import GRID_MAX_TOKENS
from gptlab.inside.explore import attention_view

PROMPT = "All:\nSpeak, speak."


@pytest.fixture(scope="module")
def view(tiny_checkpoints):
    ck = load_checkpoint(tiny_checkpoints["gpt"])
    return attention_view(ck.model, ck.tokenizer, PROMPT)


def test_heatmap_values_equal_the_captured_attention(view):
    pattern = view.patterns[1][2]
    trace = figures.attention_heatmap(pattern, view.labels, "layer 1 head 2").data[0]
    n = len(view.labels)
    for q in range(n):
        for k in range(n):
            if k <= q:
                assert trace.z[q][k] == pytest.approx(float(pattern[q, k]), abs=1e-7)
            else:
                assert math.isnan(trace.z[q][k])  # the future: a gap, no cell drawn


def test_heatmap_axes_labels_orientation_and_hover(view):
    fig = figures.attention_heatmap(view.patterns[0][0], view.labels, "t")
    trace = fig.data[0]
    assert list(trace.x) == view.labels and list(trace.y) == view.labels
    assert len(set(trace.x)) == len(trace.x)
    assert fig.layout.yaxis.autorange == "reversed"  # query 0 at the top, as in a matrix
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert "query %{y}" in trace.hovertemplate and "key %{x}" in trace.hovertemplate
    assert "%{z" in trace.hovertemplate
    assert trace.hoverongaps is False
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)


def test_heatmap_rejects_labels_that_do_not_fit(view):
    with pytest.raises(ValueError, match="labels"):
        figures.attention_heatmap(view.patterns[0][0], view.labels[:-1])


def test_masked_turns_the_upper_triangle_into_gaps():
    z = figures.masked(torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    np.testing.assert_array_equal(z, np.array([[1.0, np.nan], [0.25, 0.75]], dtype=np.float32))


def test_matrices_travel_as_compact_typed_arrays(view):
    data = json.loads(figures.figure_json(figures.attention_heatmap(view.patterns[0][0], view.labels)))
    z = data["data"][0]["z"]
    assert z["dtype"] == "f4" and "bdata" in z  # base64, not a list of decimal floats


def test_grid_zooms_on_the_last_positions_of_a_long_context():
    n = GRID_MAX_TOKENS + 10
    patterns = torch.softmax(torch.randn(2, n, n).masked_fill(torch.ones(n, n).triu(1).bool(), -torch.inf), -1)
    labels = [f"{i}:x" for i in range(n)]
    fig = figures.head_grid(patterns, labels, "grid")
    assert list(fig.data[0].x) == labels[-GRID_MAX_TOKENS:]
    assert f"last {GRID_MAX_TOKENS} of {n}" in fig.layout.title.text
    assert fig.data[1].z[-1][-1] == pytest.approx(float(patterns[1, -1, -1]))


def test_head_grid_has_one_trace_per_head_on_one_colour_scale(view):
    patterns = view.patterns[0]
    fig = figures.head_grid(patterns, view.labels, "grid")
    assert len(fig.data) == patterns.size(0)
    assert {trace.coloraxis for trace in fig.data} == {"coloraxis"}
    assert fig.layout.coloraxis.cmin == 0.0
    assert fig.layout.coloraxis.cmax == pytest.approx(float(patterns.max()))
    for h, trace in enumerate(fig.data):
        assert trace.z[3][1] == pytest.approx(float(patterns[h, 3, 1]))
        assert math.isnan(trace.z[1][3])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"head {h}" for h in range(patterns.size(0))]


def test_head_average_is_the_mean_over_heads(view):
    avg = figures.head_average(view.patterns[1])
    torch.testing.assert_close(avg, view.patterns[1].mean(0))
    torch.testing.assert_close(avg.sum(-1), torch.ones(avg.size(0)))


def test_top_predictions_bar_keeps_order_and_labels(view):
    fig = figures.top_predictions_bar(view.predictions[-1], "next")
    bar = fig.data[0]
    assert [y.strip() for y in bar.y] == [tok for tok, _ in view.predictions[-1]]
    assert list(bar.x) == [p for _, p in view.predictions[-1]]
    assert list(bar.x) == sorted(bar.x, reverse=True)


def test_loss_curves_draw_train_and_val_per_model():
    history = [{"step": s, "train_loss": 3 - s / 100, "val_loss": 3.1 - s / 100, "tokens": s, "time_s": s}
               for s in (0, 50, 100)]
    fig = figures.loss_curves({"bigram": {"history": history}, "gpt": {"history": history[:2]}})
    names = [t.name for t in fig.data]
    assert names == ["bigram val", "bigram train", "gpt val", "gpt train"]
    assert list(fig.data[0].x) == [0, 50, 100] and list(fig.data[0].y) == [3.1, 2.6, 2.1]
    assert fig.data[1].line.dash == "dash"


def test_loss_curves_say_when_there_is_no_history():
    fig = figures.loss_curves({"gpt": {"best": {"val_loss": 2.0}}})
    assert not fig.data
    assert "No training history" in fig.layout.annotations[0].text


def test_figure_json_carries_the_png_download_config(view):
    data = json.loads(figures.figure_json(figures.attention_heatmap(view.patterns[0][0], view.labels)))
    assert data["config"]["toImageButtonOptions"]["format"] == "png"
    assert go.Figure(data["data"], data["layout"]).data[0].type == "heatmap"


HOSTILE = '<i>x</i> <a href="https://e.invalid">link</a> & co'  # a folder name, prompt or token, as typed
SHOWN = 'x&lt;/i&gt; &lt;a href="https://e.invalid"&gt;link&lt;/a&gt; &amp; co'  # its escaped tail


def _strings(node) -> list[str]:
    """Every string anywhere in a figure's JSON (data, layout, annotations)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _hostile_figures() -> dict[str, go.Figure]:
    from gptlab.inside.lens import LensRow
    from gptlab.snapshots import Snapshot

    labels = [HOSTILE, "b", "c"]
    pattern = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    heads = torch.stack([pattern, pattern])
    snap = Snapshot(100, Path("step_000100"), 2.5)
    history = [{"step": 0, "time_s": 0.0, "train_loss": 2.1, "val_loss": 2.0}]
    return {
        "attention_heatmap": figures.attention_heatmap(pattern, labels, HOSTILE),
        "head_grid": figures.head_grid(heads, labels, HOSTILE, panel_titles=[HOSTILE, "head 1"]),
        "rollout_heatmap": figures.rollout_heatmap(pattern, labels, HOSTILE),
        "follow_heatmap": figures.follow_heatmap(pattern, labels, 1, HOSTILE, rollout=True),
        "step_attention_figure": figures.step_attention_figure(heads[None, :, 2, :], labels, HOSTILE),
        "training_strip": figures.training_strip([(snap, pattern, labels)], HOSTILE),
        "top_predictions_bar": figures.top_predictions_bar([(HOSTILE, 0.5), ("b", 0.3)], HOSTILE),
        "contribution_bar": figures.contribution_bar(pattern[2], labels, HOSTILE),
        "head_math_bars": figures.head_math_bars(labels, torch.ones(3), pattern[2], HOSTILE),
        "before_after_bars": figures.before_after_bars([(HOSTILE, 0.5, 0.2), ("b", 0.3, 0.4)], HOSTILE),
        "bits_change_bar": figures.bits_change_bar(labels, torch.tensor([0.5, -0.2, 1.0]), HOSTILE),
        "head_ranking_bar": figures.head_ranking_bar([(HOSTILE, 0.2), ("L0 H1", 0.1)], HOSTILE),
        "logit_lens_figure": figures.logit_lens_figure([LensRow(HOSTILE, [(HOSTILE, 0.5)])], HOSTILE),
        "candidates_figure": figures.candidates_figure([(HOSTILE, 0.3, 0.3), ("b", 0.2, 0.2)], 0, HOSTILE),
        "loss_curves": figures.loss_curves({HOSTILE: {"history": history}}),
        "live_loss_figure": figures.live_loss_figure(history, HOSTILE),
        "ladder_chart": figures.ladder_chart({HOSTILE: {"bits_per_char": 2.0, "n_params": 1000}}),
    }


def test_text_from_outside_is_shown_as_written_never_read_as_markup():
    for name, fig in _hostile_figures().items():
        strings = _strings(json.loads(fig.to_json()))
        assert any(SHOWN in s for s in strings), name
        assert not [s for s in strings if "<i>" in s or "<a " in s or "</a>" in s], name
    own = _hostile_figures()
    assert "<br>" in own["logit_lens_figure"].data[0].text[0][0]  # gptlab's own line break still works
    assert own["training_strip"].layout.annotations[0].text == "step 100<br>val loss 2.500"
    assert "<br>" in own["attention_heatmap"].data[0].hovertemplate
    assert figures.escape_markup("a<b>&c") == "a&lt;b&gt;&amp;c"


@NEEDS_RENDERER
def test_plotly_draws_escaped_markup_as_plain_text():
    from gptlab.figures.export import figure_image

    svg = figure_image(_hostile_figures()["attention_heatmap"], "svg").decode()
    assert "e.invalid" in svg and "link" in svg  # the text is there, as text
    assert "font-style:italic" not in svg and not re.search(r"<a[\s>]", svg)  # no italics, no link element
