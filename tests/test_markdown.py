"""Model and user text inside Markdown shows exactly as written (CommonMark, as Gradio, the Hub and GitHub read it)."""

from __future__ import annotations

import html

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from gptlab.card import model_card
from gptlab.classroom.lessons import caption
from gptlab.inside.heads import label_heads, synthetic_pattern
from gptlab.markdown import code_block, code_span
from gptlab.models import ModelConfig

MD = MarkdownIt("commonmark").enable("table")
MARKUP = "`*_[]()#<>|\\~$!- "  # characters that mean something to Markdown, HTML or LaTeX


def inline_codes(markdown: str) -> list[str]:
    """The text of every <code> element, in order."""
    rendered = MD.render(markdown)
    return [html.unescape(part.split("</code>")[0]) for part in rendered.split("<code>")[1:]]


@given(st.text(alphabet=MARKUP + "ab", min_size=1, max_size=12))
def test_a_code_span_shows_any_text_verbatim(text):
    assert inline_codes(f"before {code_span(text)} after **bold**") == [text]


@pytest.mark.parametrize("token", ["`", "``", "*", "_", "2:*", "3:`", "<E6>", "**", "$$", "a|b"])
def test_tokens_in_a_sentence_stay_tokens(token):
    markdown = f"Picked {code_span(token)} with probability 50%, then {code_span('*')}."
    assert inline_codes(markdown) == [token, "*"]
    assert "<strong>" not in MD.render(markdown) and "<em>" not in MD.render(markdown)


@given(st.text(alphabet="`~ab\n", max_size=30))
def test_a_code_block_holds_any_text(text):
    rendered = MD.render(code_block(text) + "\n\nafter")
    assert rendered.count("<pre>") == 1 and rendered.endswith("<p>after</p>\n")
    assert html.unescape(rendered.split("<code>")[1].split("</code>")[0]) == text + "\n"


def test_a_table_cell_keeps_a_pipe():
    """GitHub-flavoured tables end a cell at an unescaped pipe, even inside a code span."""
    cell = code_span("data=a|b.txt", in_table=True)
    rendered = MD.render(f"| data |\n|---|\n| {cell} |")
    assert rendered.count("<td>") == 1


def test_a_model_card_keeps_a_sample_with_fences_in_one_block():
    """A model trained on Markdown writes ``` in its sample: the card's code block must not end there."""
    config = ModelConfig(kind="gpt", vocab_size=10, n_layer=1, n_head=1, n_embd=8, block_size=8)
    sample = "text\n```\n# not a heading\n```"
    card = model_card(config, {"tokenizer": "char"}, {"sample": sample, "data": "my|data.txt",
                                                      "command": "python -m train gpt data=`x`"}, 100)
    rendered = MD.render(card.split("---", 2)[2])
    assert "<h1>gptlab" in rendered and "<h1># not a heading" not in rendered and "<h1>not a heading" not in rendered
    assert html.escape(sample, quote=False) in rendered  # the whole sample, in one code block
    assert "python -m train gpt data=`x`" in html.unescape(rendered)
    assert "<td><code>my|data.txt</code></td>" in rendered


def test_a_lesson_caption_shows_a_markdown_token_as_itself():
    tokens = list("a*b*c*d*e*")
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    pattern = synthetic_pattern(tokens, "same_earlier")
    label = label_heads([pattern[None]], tokens)[0][0]
    text = caption(pattern, tokens, labels, label)
    codes = inline_codes(text)
    assert len(codes) == 1 and codes[0] in labels and "<em>" not in MD.render(text)
