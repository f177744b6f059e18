"""Where does context pay: surprise in bits equals the model's own cross-entropy ÷ ln 2, token by token."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_TEXT

from gptlab import CharTokenizer, InputError, ModelConfig, UnknownCharactersError, build_model, load_checkpoint
from gptlab.data import load_text
from gptlab.figures import escape_markup, surprise_text_figure
from gptlab.inside import context_pays, context_pays_caption, surprise, surprise_difference, surprise_view
from gptlab.inside.surprise import CAPTION_CHARS, ContextPays, validation_text, windows

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = CharTokenizer.train(TINY_TEXT)
TEXT = TINY_TEXT[:300]
SHIPPED = ["bigram", "single_head", "multi_head", "blocks", "gpt", "gpt-bpe"]


def tiny(kind: str = "gpt", block_size: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, vocab_size=TOKENIZER.vocab_size, block_size=block_size, n_layer=2, n_head=2,
                         n_embd=32)
    return build_model(config).eval()


def cross_entropy_on_windows(model, ids: list[int], context: torch.Tensor) -> float:
    """Mean loss the model itself reports, window by window: a window starts context[t] − 1 before the first
    position it scores; the positions it does not score get the ignored target −100."""
    data = torch.tensor(ids)
    total, count = 0.0, 0
    starts = sorted({t - int(context[t]) + 1 for t in range(len(context))})
    for start in starts:
        mine = [t for t in range(len(context)) if t - int(context[t]) + 1 == start]
        end = min(start + model.config.block_size, len(ids) - 1)
        y = torch.full((end - start,), -100)
        y[torch.tensor(mine) - start] = data[torch.tensor(mine) + 1]
        with torch.no_grad():
            _, loss = model(data[start:end][None], y[None])
        total += float(loss) * len(mine)
        count += len(mine)
    assert count == len(context)
    return total / count


@pytest.mark.parametrize("stride", [1, 5, 16, 32])
def test_mean_bits_is_the_models_cross_entropy_over_ln2_for_a_tiny_gpt(stride):
    model = tiny()
    s = surprise(model, TOKENIZER, TEXT, stride=stride)
    assert abs(s.mean_bits - cross_entropy_on_windows(model, s.ids, s.context) / math.log(2)) <= 1e-5


@pytest.mark.parametrize("name", SHIPPED)
def test_mean_bits_is_the_cross_entropy_over_ln2_for_the_shipped_checkpoints(name):
    ck = load_checkpoint(REPO / "checkpoints" / name)
    text = validation_text(load_text(), ck.tokenizer, 300)
    s = surprise(ck.model, ck.tokenizer, text)
    assert abs(s.mean_bits - cross_entropy_on_windows(ck.model, s.ids, s.context) / math.log(2)) <= 1e-5


@pytest.mark.parametrize("n_inputs", [1, 7, 31, 32, 33, 100])
@pytest.mark.parametrize("stride", [1, 7, 16, 32])
def test_windows_score_every_position_once_with_as_much_context_as_the_stride_leaves(n_inputs, stride):
    block = 32
    plan = windows(n_inputs, block, stride)
    scored = []
    for i, (start, first) in enumerate(plan):
        end = plan[i + 1][1] if i + 1 < len(plan) else n_inputs
        assert start <= first and end - start <= block
        scored += range(first, end)
    assert scored == list(range(n_inputs))
    s = surprise(tiny(block_size=block), TOKENIZER, TINY_TEXT[: n_inputs + 1], stride=stride)
    expected = [min(t + 1, block) if t < block else None for t in range(n_inputs)]
    for t, c in enumerate(s.context.tolist()):
        assert (c == expected[t]) if expected[t] else block - stride + 1 <= c <= block
    if stride == 1:
        assert s.context.tolist() == [min(t + 1, block) for t in range(n_inputs)]  # the full context everywhere


def test_full_split_windows_are_stride_block_size():
    """stride = block_size scores the consecutive windows of train.evaluate.full_split_loss."""
    from train.evaluate import full_split_loss

    model = tiny(block_size=16)
    ids = TOKENIZER.encode(TEXT)[: 16 * 10 + 1]
    s = surprise(model, TOKENIZER, TOKENIZER.decode(ids), stride=16)
    assert abs(s.mean_bits * math.log(2) - full_split_loss(model, torch.tensor(ids), "cpu")) <= 1e-5


def test_the_bigram_surprise_is_minus_log2_of_its_tables_softmax():
    ck = load_checkpoint(REPO / "checkpoints" / "bigram")
    text = validation_text(load_text(), ck.tokenizer, 400)
    s = surprise(ck.model, ck.tokenizer, text)
    table = ck.model.token_embedding_table.weight.detach().float()  # [vocab, vocab]
    expected = [-math.log2(float(F.softmax(table[a], dim=-1)[b])) for a, b in zip(s.ids, s.ids[1:], strict=False)]
    assert torch.allclose(s.bits, torch.tensor(expected), atol=1e-5)


def test_ranks_and_top_k_follow_the_models_probabilities():
    model = tiny()
    s = surprise(model, TOKENIZER, TEXT, stride=32)
    assert s.bits.shape == s.ranks.shape == s.context.shape == (len(s.ids) - 1,)
    assert s.top_ids.shape == s.top_probs.shape == (len(s.ids) - 1, 5) and len(s.top_labels) == len(s.ids) - 1
    targets = torch.tensor(s.ids[1:])
    argmax = s.top_ids[:, 0] == targets
    assert argmax.any() and (s.ranks[argmax] == 0).all() and (s.ranks[~argmax] > 0).all()
    assert (s.top_probs[:, :-1] >= s.top_probs[:, 1:]).all()  # likeliest first
    in_top = s.ranks < 5
    assert torch.equal(s.top_ids[in_top, s.ranks[in_top]], targets[in_top])  # the rank-r guess is the true token
    assert torch.allclose(s.top_probs[in_top, s.ranks[in_top]], 2 ** -s.bits[in_top], atol=1e-6)
    assert s.top_labels[0] == [TOKENIZER.chars[i].replace(" ", "␣").replace("\n", "↵") for i in s.top_ids[0]]
    assert s.labels[:3] == [f"{i}:{c}" for i, c in enumerate(TEXT[:3])]


def test_a_minus_b_and_its_refusals():
    a = surprise(tiny("gpt"), TOKENIZER, TEXT)
    b = surprise(tiny("bigram"), TOKENIZER, TEXT)
    diff = surprise_difference(a, b)
    assert torch.equal(diff.bits, a.bits - b.bits) and diff.a is a and diff.b is b
    assert (surprise_difference(a, a).bits == 0).all()
    with pytest.raises(InputError, match="different texts"):
        surprise_difference(a, surprise(tiny("bigram"), TOKENIZER, TEXT[:-1]))
    other = CharTokenizer.train(TINY_TEXT + "#")
    with pytest.raises(InputError, match="different tokenizers"):
        surprise_difference(a, surprise(build_model(ModelConfig(kind="bigram", vocab_size=other.vocab_size)), other,
                                        TEXT))


def test_bad_input_is_refused_clearly():
    model = tiny()
    with pytest.raises(InputError, match="at least two"):
        surprise(model, TOKENIZER, "a")
    for stride in (0, 33, 2.5, True):
        with pytest.raises(InputError, match="stride must be a whole number in 1..32"):
            surprise(model, TOKENIZER, TEXT, stride=stride)
    with pytest.raises(InputError, match="top_k"):
        surprise(model, TOKENIZER, TEXT, top_k=0)
    with pytest.raises(UnknownCharactersError):
        surprise(model, TOKENIZER, "ab\u00e9cd")


@pytest.mark.slow  # scores 2,000 characters with the shipped gpt: ~10 s on 2 cores
def test_the_caption_reproduces_the_shipped_checkpoints_numbers_from_the_data():
    gpt, bigram = (load_checkpoint(REPO / "checkpoints" / name) for name in ("gpt", "bigram"))
    text = validation_text(load_text(), gpt.tokenizer)
    val = gpt.tokenizer.encode(load_text())
    assert text == load_text()[int(len(val) * 0.9):][:CAPTION_CHARS]  # the val split's first 2,000 characters
    with_context, without = surprise(gpt.model, gpt.tokenizer, text), surprise(bigram.model, bigram.tokenizer, text)
    caption = context_pays_caption(with_context, without)
    inside = [t for t in range(len(text) - 1) if text[t].isalpha() and text[t + 1].isalpha()]
    start = [t for t in range(len(text) - 1) if not text[t].isalpha() and text[t + 1].isalpha()]
    saved = without.bits - with_context.bits
    numbers = [float(x) for x in re.findall(r"(\d+\.\d+) bits", caption)]
    assert numbers == [round(float(saved[inside].mean()), 2), round(float(saved[start].mean()), 2)]
    assert f"({len(inside):,} letters inside a word)" in caption and f"({len(start):,} letters at the start" in caption
    assert numbers[0] > numbers[1] + 1  # context pays far more inside a word than at its start
    pays = context_pays(with_context, without)
    assert (pays.n_inside_word, pays.n_word_start) == (len(inside), len(start))


def test_the_caption_needs_one_token_per_character():
    ck = load_checkpoint(REPO / "checkpoints" / "gpt-bpe")
    s = surprise(ck.model, ck.tokenizer, "Good morrow, neighbour Baptista.")
    with pytest.raises(InputError, match="one token per character"):
        context_pays(s, s)


def test_the_figure_colours_each_predicted_character_and_escapes_the_text():
    text = "<i>x</i> & co\nsecond line"
    tokenizer = CharTokenizer.train(text)
    model = build_model(ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1,
                                    n_embd=16)).eval()
    s = surprise(model, tokenizer, text)
    fig = surprise_text_figure(s.tokens, s.bits, s.ranks, s.top_labels, s.top_probs, "<b>title</b>", width=10)
    [heat] = fig.data
    cells = [(r, c) for r, row in enumerate(heat.z) for c, v in enumerate(row) if v is not None]
    assert len(cells) == len(text) - 1  # every predicted character, and not the first one
    values = sorted(v for row in heat.z for v in row if v is not None)
    assert values == pytest.approx(sorted(s.bits.tolist()), abs=1e-6)
    shown = "".join(t for row in heat.text for t in row if t)
    assert shown == "".join(escape_markup(t) for t in s.tokens)  # shown as written, never as markup
    hover = [h for row in heat.customdata for h in row if h]
    assert any(" guess" in h and "bits" in h for h in hover)  # the true token's rank, read as "1st guess"
    assert not any("<i>" in h or "</i>" in h for h in [*hover, *(t for row in heat.text for t in row)])
    assert fig.layout.title.text == escape_markup("<b>title</b>")
    diff = surprise_text_figure(s.tokens, s.bits, s.ranks, s.top_labels, s.top_probs, "A − B",
                                baseline_bits=s.bits + 1, names=("gpt", "bigram"))
    assert [v for row in diff.data[0].z for v in row if v is not None] == pytest.approx([-1.0] * (len(text) - 1))
    assert diff.data[0].zmid == 0


@pytest.mark.parametrize("step", [0, 5000])
def test_mean_bits_is_the_cross_entropy_over_ln2_for_training_snapshots(step):
    """Snapshot against snapshot compares the same quantity: each snapshot's bits are its own loss ÷ ln 2."""
    ck = load_checkpoint(REPO / "checkpoints" / "gpt" / "snapshots" / f"step_{step:06d}")
    text = validation_text(load_text(), ck.tokenizer, 300)
    s = surprise(ck.model, ck.tokenizer, text)
    assert abs(s.mean_bits - cross_entropy_on_windows(ck.model, s.ids, s.context) / math.log(2)) <= 1e-5


@pytest.mark.parametrize("inside, start, opening", [
    (2.41, 0.69, "Context pays inside words: the gpt model saves 2.41 bits per letter"),
    (-1.94, 4.06, "On this text context pays no more inside words than at their start: the gpt model loses 1.94 bits"),
    (-9.05, -2.25, "Context does not pay on this text: the gpt model loses 9.05 bits per letter"),
])
def test_the_caption_concludes_what_its_numbers_say(inside, start, opening):
    """A text where the model does worse with context (a breaker's 'xxxx xxxx', 'zq zq zq') is not told that
    context pays; counts read as counts ('1 letter', '1,163 letters')."""
    pays = ContextPays(inside_word=inside, word_start=start, n_inside_word=1163, n_word_start=1,
                       with_context="gpt", without_context="bigram")
    assert pays.caption.startswith(opening)
    assert "(1,163 letters inside a word)" in pays.caption and "(1 letter at the start of a word)" in pays.caption
    assert ("nearly fixed" in pays.caption) == (inside > max(start, 0))


def test_the_caption_names_the_models_as_the_view_names_them():
    """The induction model is a 'gpt' by kind: the caption uses the name it was picked by."""
    ck = load_checkpoint(REPO / "checkpoints" / "induction")
    bigram = load_checkpoint(REPO / "checkpoints" / "bigram")
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    view = surprise_view(ck.model, ck.tokenizer, text, bigram.model, bigram.tokenizer, ("induction", "bigram"))
    assert "the induction model" in view.pays.caption and "the gpt model" not in view.pays.caption
