"""Attention rollout (hand-checked on small matrices) and the logit lens on a tiny trained GPT."""

from __future__ import annotations

import pytest
import torch

from gptlab import load_checkpoint
from gptlab.figures import contribution_bar, logit_lens_figure, rollout_heatmap
from gptlab.inside.explore import attention_view
from gptlab.inside.lens import logit_lens, resid_names, rollout


def causal_random(heads: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(heads, n, n, generator=g).masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))
    return scores.softmax(dim=-1)


def test_rollout_matches_the_formula_by_hand():
    layers = [causal_random(2, 5, s) for s in range(3)]
    step = [0.5 * a.mean(0) + 0.5 * torch.eye(5) for a in layers]
    step = [s / s.sum(-1, keepdim=True) for s in step]
    expected = step[2] @ step[1] @ step[0]  # the last layer acts last
    result = rollout(layers)
    assert len(result) == 3
    torch.testing.assert_close(result[0], step[0])
    torch.testing.assert_close(result[-1], expected)
    torch.testing.assert_close(result[-1].sum(-1), torch.ones(5))
    assert not result[-1].triu(1).any()  # still causal


def test_rollout_of_self_attention_is_the_identity_and_residual_zero_is_the_plain_product():
    eye = torch.eye(4)[None].repeat(3, 1, 1)
    torch.testing.assert_close(rollout([eye, eye])[-1], torch.eye(4))
    a, b = causal_random(1, 4, 1), causal_random(1, 4, 2)
    torch.testing.assert_close(rollout([a, b], residual=0.0)[-1], b[0] @ a[0])


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    return load_checkpoint(tiny_checkpoints["gpt"])


def test_logit_lens_reads_every_depth_and_its_last_row_is_the_model_itself(tiny):
    prompt = "All:\nSpeak, speak."
    view = attention_view(tiny.model, tiny.tokenizer, prompt)
    rows = logit_lens(tiny.model, tiny.tokenizer, view.ids, position=4)
    assert [r.name for r in rows] == ["embed", "after layer 0", "after layer 1"]
    assert len(resid_names(tiny.model)) == tiny.config.n_layer + 1
    assert [t for t, _ in rows[-1].guesses] == [t for t, _ in view.predictions[4]]
    for (_, p), (_, q) in zip(rows[-1].guesses, view.predictions[4], strict=True):
        assert p == pytest.approx(q, abs=1e-5)
    assert all(len(r.guesses) == 5 and r.guesses[0][1] >= r.guesses[-1][1] for r in rows)
    fig = logit_lens_figure(rows, "lens")
    assert list(fig.data[0].y) == ["embed", "after layer 0", "after layer 1"]
    assert fig.data[0].text[2][0].startswith(rows[2].guesses[0][0])


def test_rollout_figures_on_a_real_model(tiny):
    view = attention_view(tiny.model, tiny.tokenizer, "All:\nSpeak.")
    rolled = rollout(view.patterns)[-1]
    fig = rollout_heatmap(rolled, view.labels, "rollout")
    assert fig.data[0].zmax <= 1.0 and list(fig.data[0].x) == view.labels
    bar = contribution_bar(rolled[-1], view.labels, "flows in", top=4)
    assert len(bar.data[0].y) == 4 and bar.data[0].x[0] == pytest.approx(float(rolled[-1].max()))
