"""Bytes, labels and token identity: a character split over byte tokens stays whole piece by piece,
every categorical axis keeps look-alike labels apart, and byte tokens are labelled and compared by id."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from gradio_client import Client

from gptlab import (
    BPETokenizer,
    GenerationSettings,
    ModelConfig,
    TokenSplits,
    build_model,
    get_batch,
    load_checkpoint,
    save_checkpoint,
)
from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import draw_lesson, lesson_view
from gptlab.classroom.lessons.page import EXTEND_TEMPERATURE
from gptlab.figures import (
    attention_heatmap,
    candidates_figure,
    contribution_bar,
    head_grid,
    ladder_chart,
    logit_lens_figure,
    rollout_heatmap,
    step_attention_figure,
    top_predictions_bar,
    training_strip,
    unique_labels,
)
from gptlab.generate import generate, generate_ids
from gptlab.generate.__main__ import main as cli_main
from gptlab.inside.explore import attention_view, token_labels, top_predictions
from gptlab.inside.heads import label_heads, reference_masks, score_head
from gptlab.inside.lens import LensRow, logit_lens
from gptlab.inside.steps import step_once
from gptlab.snapshots import Snapshot
from gptlab.tokenizers import IncrementalDecoder, visible_tokens
from gptlab_app import build_app, launch_options

GPT_BPE = Path(__file__).resolve().parent.parent / "checkpoints" / "gpt-bpe"
GREEDY_12 = GenerationSettings(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def cjk_folder(tmp_path_factory, tiny_text) -> Path:
    """A tiny GPT on a byte-level BPE too small to merge whole CJK characters (each word became one)."""
    words = sorted(set(re.findall(r"[A-Za-z]+", tiny_text)))
    cjk = {w: chr(0x4E00 + 37 * i) for i, w in enumerate(words)}
    text = re.sub(r"[A-Za-z]+", lambda m: cjk[m.group()], tiny_text)
    tokenizer = BPETokenizer.train(text, 264)  # 8 merges: most characters stay 2-3 tokens
    torch.manual_seed(0)
    config = ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32)
    model = build_model(config)
    splits = TokenSplits.from_ids(tokenizer.encode(text))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):  # ~1 s: enough to write whole characters again
        _, loss = model(*get_batch(splits.train, 16, config.block_size, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("cjk") / "cjk-bpe"
    save_checkpoint(folder, model.eval(), tokenizer)
    (folder / "prompt.txt").write_text(text[:12], encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def cjk(cjk_folder):
    return load_checkpoint(cjk_folder), (cjk_folder / "prompt.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def gpt_bpe():
    return load_checkpoint(GPT_BPE)


def _is_partial(tokenizer, token_id: int) -> bool:
    """A token whose bytes end inside a character (or start in the middle of one)."""
    try:
        tokenizer.token_bytes(token_id).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# ---- kind 4: piece-by-piece decoding keeps a character's bytes together ------------------------------

def test_the_shared_decoder_holds_the_bytes_of_a_character_back(gpt_bpe):
    tok = gpt_bpe.tokenizer
    ids = tok.encode("日本")  # six byte tokens in gpt-bpe
    decoder = IncrementalDecoder(tok)
    assert [decoder.feed(i) for i in ids] == ["", "", "日", "", "", "本"]
    decoder.feed(ids[0])
    assert decoder.pending == "日".encode()[:1] and decoder.flush() == "\ufffd" and decoder.pending == b""


def test_step_through_stream_and_cli_keep_split_characters_whole(cjk, cjk_folder):
    checkpoint, prompt = cjk
    model, tok = checkpoint.model, checkpoint.tokenizer
    ids = tok.encode(prompt)
    expected = list(generate_ids(model, ids, GREEDY_12))
    reference = tok.decode(ids + expected)
    assert sum(_is_partial(tok, i) for i in expected) >= 3  # the case under test: characters split over tokens
    assert "\ufffd" not in reference

    text, carried, held = prompt, None, []
    for _ in range(12):  # Step through, greedily, one token per press
        step = step_once(model, tok, text, GREEDY_12, ids=carried)
        assert "\ufffd" not in step.text and reference.startswith(step.text)
        text, carried = step.text, step.ids
        held.append(step.held_back)
    assert carried == ids + expected  # the very tokens generate_ids picks, not a re-encoding of the text
    assert text == reference and any(held)  # some presses ended inside a character and waited

    pieces = list(generate(model, tok, prompt, GREEDY_12))  # streaming: the app's Generate tab and samples
    assert prompt + "".join(pieces) == reference and not any("\ufffd" in p for p in pieces)
    out = io.StringIO()  # the terminal CLI
    assert cli_main([str(cjk_folder), prompt, "max_new_tokens=12", "temperature=0"], out=out) == 0
    assert out.getvalue() == reference + "\n"


def test_step_through_starts_afresh_when_the_text_was_edited(cjk):
    checkpoint, prompt = cjk
    step = step_once(checkpoint.model, checkpoint.tokenizer, prompt, GREEDY_12)
    edited = step_once(checkpoint.model, checkpoint.tokenizer, prompt + "!", GREEDY_12, ids=step.ids)
    assert edited.ids[:-1] == checkpoint.tokenizer.encode(prompt + "!")  # stale ids are dropped


def test_the_app_step_through_keeps_split_characters_whole(cjk, cjk_folder):
    checkpoint, prompt = cjk
    ids = checkpoint.tokenizer.encode(prompt)
    reference = checkpoint.tokenizer.decode(ids + list(generate_ids(checkpoint.model, ids, GREEDY_12)))
    shelf = cjk_folder.parent
    demo = build_app(Catalog.from_sources(shelf).load_all(), str(shelf))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(shelf))
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        text, notes = prompt, []
        for _ in range(12):
            text, note, _, _ = client.predict("cjk-bpe", text, 0.0, 0, 1.0, 1, False, api_name="/step")
            assert "\ufffd" not in text
            notes.append(note)
    finally:
        demo.close()
    assert text == reference
    assert any("begin a character that needs more bytes" in note for note in notes)


# ---- kind 5: every categorical axis keeps colliding labels apart -------------------------------------

def _categories(fig) -> list[list]:
    """The category values of every categorical axis of every trace (x and y where they are labels)."""
    found = []
    for trace in fig.data:
        for axis in ("x", "y"):
            values = getattr(trace, axis, None)
            if values is not None and len(values) and all(isinstance(v, str) for v in values):
                found.append(list(values))
    return found


def test_every_figure_keeps_colliding_labels_apart(gpt_bpe):
    same = gpt_bpe.tokenizer.token_strings(gpt_bpe.tokenizer.encode("日"))  # the text of its three byte tokens
    assert same == ["\ufffd"] * 3  # what collides today
    n = len(same)
    pattern = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    heads = torch.stack([pattern, pattern])
    head_labels = label_heads([heads], ["a", "b", "c"])[0]
    snap = Snapshot(0, Path("step_000000"), None)
    figures = {
        "attention_heatmap": attention_heatmap(pattern, same),
        "head_grid": head_grid(heads, same),
        "top_predictions_bar": top_predictions_bar(list(zip(same, [0.5, 0.3, 0.2], strict=True))),
        "rollout_heatmap": rollout_heatmap(pattern, same),
        "contribution_bar": contribution_bar(pattern[2], same),
        "head_grid with panel titles": head_grid(heads, same, panel_titles=[lab.panel_title for lab in head_labels]),
        "candidates_figure": candidates_figure([(t, 0.3, 0.3) for t in same], 0),
        "step_attention_figure": step_attention_figure(heads[None, :, 2, :], same),
        "logit_lens_figure": logit_lens_figure([LensRow("embed", [("a", 0.5)])] * n),
        "training_strip": training_strip([(snap, pattern, same)] * 2),
        "ladder_chart": ladder_chart({"gpt": {"bits_per_char": 2.0}, "gpt ": {"bits_per_char": 2.1}}),
    }
    for name, fig in figures.items():
        axes = _categories(fig)
        assert axes, name
        for values in axes:
            assert len(set(values)) == len(values), f"{name}: {values}"  # one category per value


def test_unique_labels_leave_distinct_labels_alone():
    assert unique_labels(["a", "b"]) == ["a", "b"]
    assert unique_labels(["a", "a (2)", "a", "a"]) == ["a", "a (2)", "a (3)", "a (4)"]


# ---- kind 6: byte tokens are told apart and compared by id --------------------------------------------

def test_byte_tokens_get_distinct_labels_everywhere(gpt_bpe):
    tok = gpt_bpe.tokenizer
    view = attention_view(gpt_bpe.model, tok, "日本語")
    assert view.labels[:3] == ["0:<E6>", "1:<97>", "2:<A5>"]
    shown = [label.split(":", 1)[1] for label in view.labels]
    assert len(set(shown)) == len(set(view.ids))  # one label per distinct token, the same label for the same id
    everything = visible_tokens(tok, list(range(tok.vocab_size)))
    assert len(set(everything)) == tok.vocab_size  # no two tokens of the vocabulary read the same
    byte_ids = tok.encode("日本語")
    logits = torch.zeros(1, tok.vocab_size)
    logits[0, byte_ids[:3]] = torch.tensor([5.0, 4.0, 3.0])  # the likeliest guesses: the three bytes of 日
    assert [t for t, _ in top_predictions(logits, tok, 3)[0]] == ["<E6>", "<97>", "<A5>"]
    for row in logit_lens(gpt_bpe.model, tok, view.ids):
        assert all("\ufffd" not in t for t, _ in row.guesses)
    step = step_once(gpt_bpe.model, tok, "日本", GenerationSettings(temperature=0.0))
    assert [t for t, _, _ in step.candidates] == visible_tokens(tok, step.candidate_ids)


def test_same_token_compares_ids_not_text(gpt_bpe):
    tok = gpt_bpe.tokenizer
    view = attention_view(gpt_bpe.model, tok, "日本語")
    assert len(set(view.tokens)) == 1 and len(set(view.ids)) == 8  # nine "�" texts, eight tokens
    n = len(view.ids)
    expected = [[k < q and view.ids[k] == view.ids[q] for k in range(n)] for q in range(n)]
    same = reference_masks(view.tokens, view.ids)["same_earlier"]
    assert same.tolist() == expected  # only 日's and 本's shared lead byte E6 (positions 0 and 3)
    [labels] = label_heads(view.patterns[:1], view.tokens, view.ids)
    scored = score_head(view.patterns[0][0], reference_masks(view.tokens, view.ids))
    assert labels[0].scores["same_earlier"] == pytest.approx(scored["same_earlier"][0], nan_ok=True)
    with pytest.raises(ValueError, match="one id per token"):
        reference_masks(view.tokens, view.ids[:-1])
    fig = candidates_figure([("<E6>", 0.5, 0.5), ("a", 0.3, 0.3), ("a", 0.2, 0.2)], 2)
    assert list(fig.data[1].marker.color) == ["#4c72b0", "#4c72b0", "#c44e52"]  # the picked id, not its look-alike


# ---- a generated continuation is analysed by the ids the model wrote ---------------------------------

def test_the_own_words_lesson_shows_the_tokens_the_model_generated(cjk):
    checkpoint, prompt = cjk
    model, tok = checkpoint.model, checkpoint.tokenizer
    lesson = lesson_view("own-words", "cjk-bpe")  # 80 tokens written at temperature 0.8 before drawing
    block = model.config.block_size
    differ = 0
    for seed in range(6):
        page = draw_lesson(checkpoint, replace(lesson, prompt=prompt, seed=seed))
        settings = GenerationSettings(max_new_tokens=lesson.extend, temperature=EXTEND_TEMPERATURE, seed=seed)
        ids = (tok.encode(prompt) + list(generate_ids(model, tok.encode(prompt), settings)))[-block:]
        drawn = attention_heatmap(torch.zeros(len(ids), len(ids)), token_labels(visible_tokens(tok, ids)))
        assert list(page.heatmap.data[0].x) == list(drawn.data[0].x), f"seed {seed}"
        reencoded = tok.encode(prompt + "".join(generate(model, tok, prompt, settings)))[-block:]
        differ += reencoded != ids  # the text decoded and encoded again: other tokens, a trailing U+FFFD
    assert differ >= 3  # 4 of these 6 seeds: the check means something on this model
