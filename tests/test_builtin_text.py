"""Text gptlab writes itself runs on any model it can load; a person's own text is never changed."""

from __future__ import annotations

import pytest
from teaching_shelf import PARAGRAPH

from gptlab import BPETokenizer, CharTokenizer, GenerationSettings, ModelConfig, build_model, generate
from gptlab.classroom.lessons import LESSONS
from gptlab.errors import UnknownCharactersError
from gptlab.markdown import code_span
from gptlab.prompts import (
    ATTENTION_PROMPT,
    EXAMPLES,
    GENERATE_PROMPT,
    LOOK_PROMPT,
    SURPRISE_PROMPT,
    builtin_texts,
    fit_builtin,
    fit_text,
    sample_start,
)


def test_every_built_in_text_is_listed():
    expected = {"\n", GENERATE_PROMPT, ATTENTION_PROMPT, LOOK_PROMPT, SURPRISE_PROMPT, *EXAMPLES,
                *(x.prompt for x in LESSONS.values())}
    assert builtin_texts() == expected


@pytest.mark.parametrize("text", sorted(builtin_texts()))
def test_a_built_in_text_runs_on_a_model_of_one_paragraph(text):
    """A model trained on one paragraph lacks newlines and most capitals: each built-in text still runs."""
    tokenizer = CharTokenizer.train(PARAGRAPH)
    model = build_model(ModelConfig(kind="bigram", vocab_size=tokenizer.vocab_size, block_size=8))
    fit = fit_builtin(tokenizer, text)
    assert fit.text and set(fit.text) <= set(PARAGRAPH)
    assert set(fit.left_out) == set(text) - set(PARAGRAPH)
    assert len("".join(generate(model, tokenizer, fit.text, GenerationSettings(max_new_tokens=5, seed=0)))) == 5
    if fit.changed:  # said, in plain text and in Markdown
        assert fit.note().startswith("This model has never seen ") and repr(fit.text) in fit.note()
        assert code_span(fit.text) in fit.note(code_span)
    else:
        assert fit.text == text and fit.note() == ""


def test_what_is_left_out_is_named_and_nothing_left_falls_back_to_a_start():
    paragraph = CharTokenizer.train(PARAGRAPH)
    fit = fit_builtin(paragraph, "ROMEO:\n")
    assert (fit.text, fit.left_out) == (":", ("R", "O", "M", "E", "\n"))
    assert fit.note() == ("This model has never seen 'R', 'O', 'M', 'E', '↵': the built-in text leaves them out "
                          "and reads ':'.")
    assert fit_text(CharTokenizer("xyz"), "ROMEO:\n").text == "x"  # nothing known: the vocabulary's first


def test_a_persons_own_text_is_never_changed():
    tokenizer = CharTokenizer.train(PARAGRAPH)
    own = "ROMEO, wherefore art thou?"
    fit = fit_builtin(tokenizer, own)
    assert fit.text == own and not fit.changed and fit.note() == ""
    with pytest.raises(UnknownCharactersError, match="never seen"):
        tokenizer.encode(fit.text)


def test_samples_start_where_the_model_can():
    assert sample_start(CharTokenizer.train("ab\ncd")) == "\n"
    assert sample_start(CharTokenizer.train(PARAGRAPH)) == " "
    assert sample_start(CharTokenizer.train("ab.cd")) == "."
    assert sample_start(CharTokenizer("xyz")) == "x"
    assert sample_start(BPETokenizer.train(PARAGRAPH, vocab_size=260)) == "\n"  # bytes: every text is known
