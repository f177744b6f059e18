"""The batch sampler's repeated passages (repeat_share): that share of the rows reads a passage and then
the same text again from its start, at lengths that vary by row; the other rows, and repeat_share=0,
are the plain windows; out-of-range shares are refused with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptlab import DataError, ModelConfig, get_batch
from gptlab.card import model_card
from gptlab.errors import ConfigError
from train.config import apply_overrides
from train.loop import train
from train.presets import make_preset

DATA = torch.arange(5_000)  # every token is its own position, so a row shows where it read from
BLOCK = 32


def passage_length(row: torch.Tensor) -> int | None:
    """n if the row reads tokens s..s+n-1 and then s, s+1, ... again; None for a plain window."""
    start = int(row[0])
    for n in range(2, BLOCK // 2 + 1):
        expected = start + torch.cat([torch.arange(n), torch.arange(len(row) - n)])
        if torch.equal(row, expected):
            return n
    return None


def test_a_share_of_rows_repeats_a_passage_and_the_rest_are_plain():
    x, y = get_batch(DATA, 8, BLOCK, torch.Generator().manual_seed(0), repeat_share=0.25)
    window = torch.cat([x, y[:, -1:]], dim=1)  # y is x shifted by one: together the block + 1 tokens
    assert torch.equal(x[:, 1:], y[:, :-1])
    for r in range(2):  # round(0.25 * 8) = 2 rows, the first ones
        assert passage_length(window[r]) is not None
    for r in range(2, 8):
        assert torch.equal(window[r], window[r, 0] + torch.arange(BLOCK + 1))


def test_passage_lengths_vary_so_no_fixed_offset_predicts_the_copy():
    x, y = get_batch(DATA, 64, BLOCK, torch.Generator().manual_seed(1), repeat_share=1.0)
    window = torch.cat([x, y[:, -1:]], dim=1)
    lengths = {passage_length(row) for row in window}
    assert None not in lengths and len(lengths) >= 8 and lengths <= set(range(2, BLOCK // 2 + 1))


def test_no_share_draws_exactly_the_plain_windows():
    plain = get_batch(DATA, 8, BLOCK, torch.Generator().manual_seed(2))
    zero = get_batch(DATA, 8, BLOCK, torch.Generator().manual_seed(2), repeat_share=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(DataError, match="repeat_share .* must be in 0..1"):
        get_batch(DATA, 8, BLOCK, repeat_share=share)
    with pytest.raises(ConfigError, match="repeat_share must be"):  # nan: 'must be a number'
        apply_overrides(make_preset("gpt"), [f"repeat_share={share}"])


def test_a_context_too_short_for_a_passage_and_its_copy_is_refused():
    with pytest.raises(DataError, match="block_size of at least 4"):
        get_batch(DATA, 8, 3, repeat_share=0.5)


def test_the_model_card_says_how_much_of_the_training_repeated_passages():
    config = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=8)
    with_share = model_card(config, {}, {"preset_config": {"repeat_share": 0.25}}, 1000)
    assert "25% of training rows" in with_share and "repeat_share=0.25" in with_share
    assert "repeated passages" not in model_card(config, {}, {"preset_config": {"repeat_share": 0.0}}, 1000)


@pytest.mark.parametrize(("share", "batch", "said"), [(0.5, 3, "2 of each batch's 3 rows (67%)"),
                                                       (0.3, 4, "1 of each batch's 4 rows (25%)")])
def test_the_model_card_states_the_rows_that_actually_repeated_not_the_share_asked(share, batch, said):
    """get_batch rounds repeat_share * batch_size: 0.5 of 3 rows is 2 rows (67%), not 50%."""
    config = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=8)
    card = model_card(config, {}, {"preset_config": {"repeat_share": share, "batch_size": batch}}, 1000)
    assert said in card
    assert "repeated passages" not in model_card(config, {}, {"preset_config": {"repeat_share": 0.5, "batch_size": 1}},
                                                 1000)  # round(0.5) = 0 rows: nothing repeated


@pytest.mark.parametrize(("overrides", "said"), [
    (["model.block_size=2"], "block_size of at least 4"), (["model.block_size=3"], "block_size of at least 4"),
    (["batch_size=1"], "rounds to 0 repeated rows"), (["repeat_share=0.004"], "rounds to 0 repeated rows"),
    (["repeat_share=0"], "repeat_random=true does nothing")])
def test_a_repeat_setting_the_batches_cannot_hold_is_refused_before_the_run(overrides, said):
    with pytest.raises(ConfigError, match=said):
        apply_overrides(make_preset("induction"), overrides)


def test_random_strings_repeat_to_the_end_of_their_rows_and_leave_the_plain_rows_as_they_were():
    """random_vocab: the repeating rows are a random string of ids below it, read again and again."""
    x, y = get_batch(DATA, 16, BLOCK, torch.Generator().manual_seed(3), repeat_share=0.5, random_vocab=65)
    window = torch.cat([x, y[:, -1:]], dim=1)
    periods = set()
    for row in window[:8]:
        assert int(row.max()) < 65
        n = next(n for n in range(2, BLOCK // 2 + 1) if torch.equal(row[n:], row[:-n]))  # the row's period
        periods.add(n)
    assert len(periods) >= 4  # lengths vary by row: no fixed offset predicts the copy
    _, passages = get_batch(DATA, 16, BLOCK, torch.Generator().manual_seed(3), repeat_share=0.5)
    assert torch.equal(y[8:], passages[8:])  # the same plain windows as without random strings


@pytest.mark.parametrize("vocab", [-1, 2.5, True, "65"])
def test_a_random_vocabulary_that_is_not_a_whole_number_is_refused(vocab):
    with pytest.raises(DataError, match="random_vocab .* whole number >= 0"):
        get_batch(DATA, 8, BLOCK, repeat_share=0.5, random_vocab=vocab)


def test_the_model_card_says_how_much_of_the_training_repeated_random_strings():
    config = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=8, vocab_size=65)
    card = model_card(config, {}, {"preset_config": {"repeat_share": 0.5, "repeat_random": True}}, 1000)
    assert "50% of training rows are a random string" in card and "repeat_random=true" in card
    assert "repeated passages" not in card


def test_the_cli_refuses_a_context_too_short_for_repeats_with_rc_2_and_writes_nothing(tmp_path):
    out = tmp_path / "bs2"
    done = subprocess.run([sys.executable, "-m", "train", "induction", "max_iters=5", "model.block_size=2",
                           f"out={out}", "progress=false"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2 and "block_size of at least 4" in done.stderr
    assert not out.exists()


def test_a_text_too_short_for_one_window_is_refused_before_anything_is_written(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abcdef", encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(DataError, match="fewer than model.block_size"):
        train(apply_overrides(make_preset("induction"), [f"data={short}", f"out={out}", "progress=false"]))
    assert not out.exists()
