"""Tokenizers: the 65-char Shakespeare vocabulary, round trips, unknown characters, BPE, hostile text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptlab import (
    BPETokenizer,
    CharTokenizer,
    CheckpointError,
    GptlabError,
    UnknownCharactersError,
    load_tokenizer,
    train_tokenizer,
)
from gptlab.errors import InputError

# emoji, combining marks, right-to-left scripts, control characters and NUL, CJK, astral planes
NASTY = (
    "😀👩\u200d👩\u200d👧🏳️\u200d🌈e\u0301\u0338ñ"  # emoji, ZWJ sequences, combining marks
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627\u200f"  # Hebrew, Arabic, RTL mark
    "\x00\x07\t\r\n\x1b\u2028中文𝔘\U0010fffd"  # NUL and controls, CJK, astral planes
)
hostile_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(NASTY)),
    st.text(alphabet=st.characters(codec="utf-8")),
)


@pytest.fixture(scope="module")
def bpe(tiny_text) -> BPETokenizer:
    return BPETokenizer.train(tiny_text + NASTY * 3, vocab_size=320)


def test_shakespeare_has_65_characters(shakespeare_text):
    text = shakespeare_text
    tok = CharTokenizer.train(text)
    assert tok.vocab_size == 65
    assert tok.chars == "".join(sorted(set(text)))
    sample = text[:2000]
    assert tok.decode(tok.encode(sample)) == sample


def test_unknown_characters_are_named(tiny_text):
    tok = CharTokenizer.train(tiny_text)
    with pytest.raises(UnknownCharactersError) as info:
        tok.encode("hello 😀 world \x00 zzZ")
    assert "😀" in info.value.unknown and "\x00" in info.value.unknown
    assert "'😀'" in str(info.value) and "U+0000" in str(info.value)  # named, and NUL made visible


def test_drop_and_replace_are_opt_in(tiny_text):
    tok = CharTokenizer.train(tiny_text)
    assert tok.decode(tok.encode("a😀e", errors="drop")) == "ae"
    assert tok.decode(tok.encode("a😀e", errors="replace")) == "a e"
    with pytest.raises(GptlabError, match="errors must be"):
        tok.encode("ab", errors="ignore")  # a typo is an error even when no character is unknown


def test_char_decode_rejects_ids_outside_the_vocabulary(tiny_text):
    tok = CharTokenizer.train(tiny_text)
    for bad in ([-1], [tok.vocab_size], ["a"]):
        with pytest.raises(InputError):
            tok.decode(bad)


def test_char_save_load(tmp_path, tiny_text):
    tok = CharTokenizer.train(tiny_text)
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars


@settings(max_examples=60, deadline=None)
@given(hostile_text)
def test_char_round_trip_on_its_own_text(text):
    tok = CharTokenizer.train(text) if text else None
    if tok is not None:
        assert tok.decode(tok.encode(text)) == text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_text)
def test_char_encode_hostile_text_is_ids_or_gptlab_error(tiny_text, text):
    tok = CharTokenizer.train(tiny_text)
    for errors in ("strict", "drop", "replace"):
        try:
            ids = tok.encode(text, errors)
        except UnknownCharactersError as exc:
            assert errors == "strict" and exc.unknown
            continue
        assert all(0 <= i < tok.vocab_size for i in ids)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_text)
def test_bpe_round_trips_any_unicode(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


def test_bpe_lone_surrogate_is_a_gptlab_error(bpe):
    with pytest.raises(InputError, match="surrogate"):
        bpe.encode("ok \ud800 no")


def test_bpe_decode_rejects_unknown_ids(bpe):
    with pytest.raises(InputError):
        bpe.decode([bpe.vocab_size + 5])


def test_huge_strings(bpe, tiny_text):
    text = (NASTY + tiny_text) * (100_000 // len(NASTY + tiny_text) + 1)
    text = text[:100_000]
    assert bpe.decode(bpe.encode(text)) == text
    char = CharTokenizer.train(text)
    assert char.decode(char.encode(text)) == text


def test_bpe_save_load(tmp_path, bpe):
    bpe.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, BPETokenizer) and loaded.vocab_size == bpe.vocab_size
    assert loaded.encode(NASTY) == bpe.encode(NASTY)
    assert loaded.decode(bpe.encode(NASTY)) == NASTY


def test_bpe_vocab_size_bounds_and_kind(tiny_text):
    with pytest.raises(GptlabError, match="vocab_size"):
        BPETokenizer.train(tiny_text, vocab_size=100)
    assert isinstance(train_tokenizer("char", tiny_text), CharTokenizer)
    with pytest.raises(GptlabError, match="tokenizer must be"):
        train_tokenizer("words", tiny_text)


@pytest.mark.parametrize(
    "content",
    [
        "", "{not json", "[" * 100_000, '{"gptlab_tokenizer": "char", "chars": 5}',
        '{"gptlab_tokenizer": "char", "chars": "aa"}', '{"model": {"type": "nonsense"}}', "[1, 2]",
    ],
)
def test_bad_tokenizer_files_are_checkpoint_errors(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="tokenizer.json: missing"):
        load_tokenizer(tmp_path)
