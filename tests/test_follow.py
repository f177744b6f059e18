"""Follow one character (gptlab.inside.follow, gptlab.figures.follow): the shading is the attention row itself,
for every rung of the ladder with attention, the layer's average and rollout, on char and byte-level BPE text;
the bigram says it has nothing to follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from gptlab import load_checkpoint
from gptlab.errors import GptlabError, InputError
from gptlab.figures import follow_heatmap, follow_text_html
from gptlab.inside import attention_view, follow, follow_view, rollout, token_spans

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
RUNGS = ["single_head", "multi_head", "blocks", "gpt", "gpt-bpe"]  # every shipped model with attention
PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"


@pytest.fixture(scope="module")
def shipped():
    return {name: load_checkpoint(CHECKPOINTS / name) for name in RUNGS + ["bigram"]}


def shaded(html: str) -> tuple[list[float], int]:
    """(the data-weight of each token the followed one can see, how many tokens are marked unavailable)."""
    return [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', html)], html.count('aria-disabled="true"')


def expected_row(view, layer: int, head, q: int) -> torch.Tensor:
    if head == "rollout":
        return rollout(view.patterns)[-1][q]
    if head == "mean":
        return view.patterns[layer].mean(dim=0)[q]
    return view.patterns[layer][head][q]


@pytest.mark.parametrize("name", RUNGS)
@pytest.mark.parametrize("head", [0, "last", "mean", "rollout"])
def test_the_shading_is_the_attention_row(shipped, name, head):
    checkpoint = shipped[name]
    view = attention_view(checkpoint.model, checkpoint.tokenizer, PROMPT)
    n, config = len(view.ids), checkpoint.config
    layer = config.n_layer - 1
    head = config.n_head - 1 if head == "last" else head
    for q in (0, n // 3, n - 1):
        found = follow(view, checkpoint.tokenizer, layer, head, q)
        weights, unavailable = shaded(follow_text_html(found.tokens, found.weights, found.position))
        row = expected_row(view, layer, head, q)
        assert len(weights) == q + 1 and unavailable == n - q - 1
        assert torch.allclose(torch.tensor(weights), row[: q + 1].float(), atol=1e-3)
        assert float(row[q + 1:].abs().sum()) < 1e-6  # nothing shaded on the future: there is no weight there
        assert found.available.tolist() == [k <= q for k in range(n)]


def test_follow_view_is_follow_of_the_prompts_view(shipped):
    checkpoint = shipped["gpt"]
    one = follow_view(checkpoint.model, checkpoint.tokenizer, PROMPT, 2, 3, 17)
    view = attention_view(checkpoint.model, checkpoint.tokenizer, PROMPT)
    assert torch.equal(one.matrix, view.patterns[2][3]) and one.position == 17 and one.source == "layer 2, head 3"


def test_the_bigram_says_it_has_no_attention_to_follow(shipped):
    with pytest.raises(GptlabError, match="bigram model has no attention"):
        follow_view(shipped["bigram"].model, shipped["bigram"].tokenizer, PROMPT, 0, 0)


def test_positions_past_the_end_or_negative_follow_the_last_token(shipped):
    checkpoint = shipped["gpt"]
    view = attention_view(checkpoint.model, checkpoint.tokenizer, "ROMEO:")
    assert follow(view, checkpoint.tokenizer, 0, 0, 99).position == 5 and follow(view, checkpoint.tokenizer,
                                                                                  0, 0, 99).clamped
    assert follow(view, checkpoint.tokenizer, 0, 0, -1).position == 5
    assert not follow(view, checkpoint.tokenizer, 0, 0, 5).clamped


@pytest.mark.parametrize(("layer", "head", "position", "message"), [
    (0, "max", 1, "'mean' or 'rollout'"), (0, 6, 1, "head must be a whole number in 0..5"),
    (6, "mean", 1, "layer must be a whole number in 0..5"), (9, "rollout", 1, "layer must be"),
    (0, 0, 1.5, "position must be a whole number"), (0, 0, None, "position must be a whole number"),
])
def test_bad_choices_are_refused_clearly(shipped, layer, head, position, message):
    checkpoint = shipped["gpt"]
    view = attention_view(checkpoint.model, checkpoint.tokenizer, "ROMEO:")
    with pytest.raises(InputError, match=re.escape(message)):
        follow(view, checkpoint.tokenizer, layer, head, position)


def test_spans_cover_the_text_and_show_whitespace(shipped):
    char = follow_view(shipped["gpt"].model, shipped["gpt"].tokenizer, "A b\nc", 0, 0)
    assert char.tokens == ["A", "␣", "b", "↵", "c"] and char.text == "A b\nc"
    assert [char.text[a:b] for a, b in char.spans] == list("A b\nc")
    text = "O, 日本 é!\n"
    bpe = follow_view(shipped["gpt-bpe"].model, shipped["gpt-bpe"].tokenizer, text, 0, 0)
    assert bpe.text == text and "".join(bpe.text[a:b] for a, b in bpe.spans) == text
    assert all(a <= b for a, b in bpe.spans) and bpe.spans[0][0] == 0 and bpe.spans[-1][1] == len(text)
    # 日 is three byte tokens: the first holds the character, the other two hold none of it
    text2, spans = token_spans(shipped["gpt-bpe"].tokenizer, shipped["gpt-bpe"].tokenizer.encode("日"))
    assert text2 == "日" and spans == [(0, 1), (1, 1), (1, 1)]


def test_the_html_shows_text_as_written_and_greys_the_future():
    tokens = ['<i>x</i>', '"&', "↵", "<script>alert(1)</script>"]
    html = follow_text_html(tokens, torch.tensor([0.25, 0.75, 0.0, 0.0]), 1, caption="<b>caption</b>")
    assert "<i>" not in html and "<script>" not in html and "<b>caption" not in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html and "&lt;script&gt;" in html and "&lt;b&gt;caption" in html
    assert 'data-pos="1" data-weight="0.750000"' in html and 'class="gl-tok gl-sel" data-pos="1"' in html
    assert html.count('aria-disabled="true"') == 2 and "↵</span><br>" in html
    teacher = follow_text_html(tokens, torch.tensor([0.25, 0.75, 0.0, 0.0]), 1, teacher=True)
    assert "font-size:28px" in teacher and teacher != html  # large type, and the Cividis colours
    with pytest.raises(ValueError):
        follow_text_html(tokens, torch.tensor([1.0]), 0)


def test_the_heatmap_outlines_the_followed_row():
    matrix = torch.tril(torch.ones(4, 4))
    matrix = matrix / matrix.sum(-1, keepdim=True)
    fig = follow_heatmap(matrix, ["0:a", "1:b", "2:c", "3:d"], 2, "t")
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1, shape.x0, shape.x1, shape.name) == (1.5, 2.5, -0.5, 3.5, "follow")
