"""Snapshots, lessons and captions, step-through, teacher style: the library behind the teaching tabs."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from teaching_shelf import NARROW, PARAGRAPH, SNAPSHOT_STEPS, make_shelf, write_snapshots

from gptlab import CharTokenizer, GenerationSettings, ModelConfig, build_model, load_checkpoint
from gptlab.classroom.lessons import (
    LESSONS,
    LessonView,
    caption,
    draw_lesson,
    lesson_view,
    resolve_head,
    view_from_query,
)
from gptlab.errors import CheckpointError, InputError, UnknownCharactersError
from gptlab.figures import (
    TEACHER_COLORSCALE,
    candidates_figure,
    head_grid,
    live_loss_figure,
    step_attention_figure,
    teacher_style,
    training_strip,
)
from gptlab.inside import across_view, closer_look, describe, rollout
from gptlab.inside.across import head_across_training
from gptlab.inside.explore import attention_view
from gptlab.inside.heads import label_heads, synthetic_pattern
from gptlab.inside.steps import step_once
from gptlab.prompts import LOOK_PROMPT
from gptlab.snapshots import SnapshotCache, find_snapshots, snapshot_sample


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tiny_checkpoints, tiny_text):
    folder = tmp_path_factory.mktemp("snap") / "gpt"
    shutil.copytree(make_shelf(tmp_path_factory, tiny_checkpoints, tiny_text) / "gpt", folder)
    (folder / "snapshots" / "step_000999").mkdir()  # a snapshot still being written: skipped
    (folder / "snapshots" / "notes").mkdir()
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    return load_checkpoint(tiny_checkpoints["gpt"])


def test_snapshots_are_found_sorted_with_their_val_loss_and_sample(model_folder):
    found = find_snapshots(model_folder)
    assert [s.step for s in found] == list(SNAPSHOT_STEPS)
    assert all(s.val_loss is not None for s in found)
    assert found[-1].val_loss < found[0].val_loss  # training helped
    assert found[1].label.startswith("step 10 · val loss ")
    cache = SnapshotCache(size=2)
    first = cache.get(found[0])
    assert cache.get(found[0]) is first  # loaded once
    assert snapshot_sample(first, 0) == "sample at step 0"
    cache.get(found[1]), cache.get(found[2])
    assert cache.get(found[0]) is not first  # the least recently used was dropped
    assert find_snapshots(model_folder / "nowhere") == []


def test_attention_sharpens_across_snapshots(model_folder):
    """What the across-training view shows: the untrained model attends evenly, the trained one does not."""
    cache = SnapshotCache()
    prompt = "First Citizen:\nBefore we proceed"
    spread = []
    for snap in find_snapshots(model_folder):
        ck = cache.get(snap)
        view = attention_view(ck.model, ck.tokenizer, prompt)
        broad = [lab.scores["broad"] for row in label_heads(view.patterns, view.tokens) for lab in row]
        spread.append(sum(broad) / len(broad))
    assert spread[0] > 0.95 and spread[-1] < spread[0]
    frames = head_across_training(find_snapshots(model_folder), cache, prompt, 0, 1, most=2)
    assert [snap.step for snap, _, _ in frames] == [SNAPSHOT_STEPS[0], SNAPSHOT_STEPS[-1]]  # first and last
    fig = training_strip(frames, "head 1")
    assert len(fig.data) == 2 and fig.layout.coloraxis.cmax == 1


def test_query_parameters_restore_a_view_and_bad_ones_are_refused():
    view = view_from_query({"lesson": "speaker", "layer": "1", "head": "2", "teacher": "1"})
    assert (view.lesson, view.layer, view.head, view.teacher) == ("speaker", 1, 2, True)
    assert view.prompt == LESSONS["speaker"].prompt
    again = view_from_query(dict(pair.split("=") for pair in view.query()[1:].split("&")))
    assert (again.layer, again.head, again.teacher, again.lesson) == (1, 2, True, "speaker")
    assert view_from_query({}).lesson == "previous-char" and view_from_query({"lesson": "nope"}).lesson
    with pytest.raises(InputError, match="layer='x' is not a whole number"):
        view_from_query({"layer": "x"})
    with pytest.raises(InputError, match="outside 0..200"):
        view_from_query({"extend": "5000"})
    assert "prompt=ROMEO%3A%0A" in LessonView("x", "gpt", "ROMEO:\n", 0, 0, 0, 0).query()


def test_a_lesson_finds_the_head_that_fits_its_label_and_captions_it():
    tokens = list("ROMEO:\nBut soft, what light\nthrough yonder\n")
    prev = synthetic_pattern(tokens, "previous")
    even = synthetic_pattern(tokens, "broad")
    patterns = [torch.stack([even, even]), torch.stack([even, prev])]
    labels = label_heads(patterns, tokens)
    assert resolve_head(labels, -1, -1, "previous") == (1, 1)
    assert resolve_head(labels, -1, -1, "broad") == (0, 0)  # a tie goes to the lowest layer and head
    assert resolve_head(labels, 0, 1, "previous") == (0, 1)  # explicit values win
    text = caption(prev, tokens, [f"{i}:{t}" for i, t in enumerate(tokens)], labels[1][1])
    assert re.match(r"Layer 1, head 1 puts 9\d% of its weight on the previous character\. ", text)
    lookback = float(re.search(r"looks back ([\d.]+) characters", text).group(1))
    assert 1.0 <= lookback < 3.0  # one step back, plus the 10% spread evenly


def test_a_view_given_in_part_is_searched_only_where_it_was_left_open():
    """A layer alone: its best head; a head alone: its best layer; neither: every head (issue 17, kind 9)."""
    tokens = list("ROMEO:\nBut soft, what light\nthrough yonder\n")
    prev, even = synthetic_pattern(tokens, "previous"), synthetic_pattern(tokens, "broad")
    half = synthetic_pattern(tokens, "previous", strength=0.6)
    patterns = [torch.stack([even, even, half]), torch.stack([even, prev, even])]
    labels = label_heads(patterns, tokens)
    assert resolve_head(labels, -1, -1, "previous") == (1, 1)
    assert resolve_head(labels, 0, -1, "previous") == (0, 2)  # layer 0 given: its own best head
    assert resolve_head(labels, -1, 2, "previous") == (0, 2)  # head 2 given: the layer where it fits best
    assert resolve_head(labels, 1, -1, "") == (1, 0)  # nothing to look for: the given layer, head 0
    assert resolve_head(labels, -1, 1, "no-such-label") == (0, 1)


def test_step_through_is_reproducible_and_shows_the_settings_effect(tiny):
    greedy = GenerationSettings(temperature=0.0, seed=1)
    step = step_once(tiny.model, tiny.tokenizer, "All:\nSpeak", greedy)
    assert step.text == "All:\nSpeak" + step.token.replace("␣", " ").replace("↵", "\n")
    assert step.chosen_p == 1.0 and step.candidates[0][0] == step.token  # greedy takes the likeliest
    assert step.attention.shape == (2, 4, len("All:\nSpeak"))
    torch.testing.assert_close(step.attention.sum(-1), torch.ones(2, 4))
    hot = GenerationSettings(temperature=1.5, top_k=3, seed=5)
    a = step_once(tiny.model, tiny.tokenizer, "All:\nSpeak", hot)
    b = step_once(tiny.model, tiny.tokenizer, "All:\nSpeak", hot)
    assert a.text == b.text  # the same Next press gives the same token
    after = [p for _, _, p in a.candidates]
    assert sum(p > 0 for p in after) <= 3 and sum(after) == pytest.approx(1.0, abs=1e-5)  # top-k 3
    fig = candidates_figure(a.candidates, a.chosen_index)
    assert [t.name for t in fig.data] == ["model (temperature 1)", "after your settings"]
    att = step_attention_figure(a.attention, a.key_labels)
    assert list(att.data[0].y) == [f"L{la} H{he}" for la in range(2) for he in range(4)]


def test_teacher_style_and_other_figures(tiny):
    view = attention_view(tiny.model, tiny.tokenizer, "All:\nSpeak.")
    labels = label_heads(view.patterns, view.tokens)
    grid = head_grid(view.patterns[0], view.labels, panel_titles=[label.panel_title for label in labels[0]])
    assert [a.text for a in grid.layout.annotations] == [f"head {h} · {labels[0][h].short}" for h in range(4)]
    styled = teacher_style(grid)
    assert styled.layout.font.size >= 20 and styled.layout.coloraxis.colorscale[0][1] != ""
    assert TEACHER_COLORSCALE == "Cividis"
    loss = live_loss_figure([{"step": 0, "time_s": 0, "train_loss": 4.0, "val_loss": 4.1},
                             {"step": 90, "time_s": 3, "train_loss": 2.5, "val_loss": 2.6}])
    assert [t.name for t in loss.data] == ["train", "val"] and list(loss.data[1].y) == [4.1, 2.6]


# ---- the one library call behind each teaching tab ------------------------------------------------------

def test_closer_look_reads_one_head_the_rollout_and_the_lens_at_one_position(tiny):
    """What the Look closer tab draws, reachable without a server: one call, one view object."""
    prompt = "All:\nSpeak."
    look = closer_look(tiny.model, tiny.tokenizer, prompt, 1, 2, 4)
    view = attention_view(tiny.model, tiny.tokenizer, prompt)
    labels = label_heads(view.patterns, view.tokens, view.ids)
    torch.testing.assert_close(look.pattern, view.patterns[1][2])
    torch.testing.assert_close(look.rollout, rollout(view.patterns)[-1])
    torch.testing.assert_close(look.rollout.sum(-1), torch.ones(len(view.ids)))
    assert look.position == 4 and look.sentence == describe(labels[1][2])
    assert look.panel_titles == [f"head {h} · {labels[1][h].short}" for h in range(4)]
    assert [row.name for row in look.lens] == ["embed", "after layer 0", "after layer 1"]
    assert look.lens[-1].guesses[0][0] == view.predictions[4][0][0]  # the last depth is the model's own guess
    assert look.note == f"{look.sentence}\n\nRollout and logit lens for position `4:↵`." and look.prompt_note == ""
    last = len(view.ids) - 1
    assert closer_look(tiny.model, tiny.tokenizer, prompt, 0, 0).position == last  # -1: the last token
    assert closer_look(tiny.model, tiny.tokenizer, prompt, 0, 0, 99).position == last
    with pytest.raises(InputError, match=r"head must be a whole number in 0\.\.3 for this model, got 4"):
        closer_look(tiny.model, tiny.tokenizer, prompt, 0, 4)
    with pytest.raises(InputError, match=r"layer must be a whole number in 0\.\.1"):
        closer_look(tiny.model, tiny.tokenizer, prompt, -1, 0)


def test_closer_look_fits_a_built_in_prompt_and_keeps_a_persons_own(tiny):
    tokenizer = CharTokenizer.train(PARAGRAPH)
    model = build_model(ModelConfig(kind="gpt", vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16,
                                    block_size=64)).eval()
    look = closer_look(model, tokenizer, LOOK_PROMPT, 0, 1)
    assert look.prompt_note.startswith("This model has never seen ") and set(look.view.tokens) <= set(PARAGRAPH)
    assert look.note.endswith(f"\n\n⚠️ {look.prompt_note}")
    with pytest.raises(UnknownCharactersError):
        closer_look(model, tokenizer, "ROMEO, art thou", 0, 1)


def test_across_view_reads_the_chosen_snapshot_and_the_head_at_every_step(model_folder):
    """What the Across training tab draws: the snapshot the slider points at, and the strip of one head."""
    found, cache = find_snapshots(model_folder), SnapshotCache()
    prompt = "First Citizen:\nBefore we proceed"
    first = across_view(found, cache, prompt, 0, 1, 0)
    ck = cache.get(found[0])
    view = attention_view(ck.model, ck.tokenizer, prompt)
    torch.testing.assert_close(first.pattern, view.patterns[0][1])
    assert (first.snapshot.step, first.sample) == (SNAPSHOT_STEPS[0], "sample at step 0")
    assert first.sentence == describe(label_heads(view.patterns, view.tokens, view.ids)[0][1])
    assert [snap.step for snap, _, _ in first.frames] == list(SNAPSHOT_STEPS)
    torch.testing.assert_close(first.frames[0][1], first.pattern)
    steps = ", ".join(f"{s:,}" for s in SNAPSHOT_STEPS)
    assert first.note == f"**Snapshot 1 of {len(found)}: {found[0].label}** (steps saved: {steps})"
    assert across_view(found, cache, prompt, 0, 1, 99).index == across_view(found, cache, prompt, 0, 1).index == 2
    with pytest.raises(InputError, match="head must be a whole number in 0..3"):
        across_view(found, cache, prompt, 0, 9)
    with pytest.raises(CheckpointError, match="No training snapshots found"):
        across_view([], cache, prompt, 0, 0)


def test_across_view_makes_a_seeded_sample_where_none_was_stored(tmp_path):
    found = [find_snapshots(folder.parent.parent)[0] for folder in
             write_snapshots(tmp_path / "gpt", PARAGRAPH, steps=(0,), shape=NARROW, samples=False)]
    one, again = (across_view(found, SnapshotCache(), LOOK_PROMPT, 0, 1) for _ in range(2))
    assert one.sample and one.sample == again.sample and set(one.sample) <= set(PARAGRAPH)
    assert "never seen" in one.prompt_note and one.note.endswith(f"⚠️ {one.prompt_note}")


def test_a_lesson_page_says_what_the_lessons_tab_shows(tiny):
    page = draw_lesson(tiny, lesson_view("speaker", "gpt"))
    assert page.summary.startswith(f"**3. Who is speaking?** Look for {LESSONS['speaker'].look_for}\n\n{page.caption}")
    assert page.summary.endswith(f"\n\n⚠️ {page.note}" if page.note else page.caption)
    titles = [a.text for a in page.grid.layout.annotations]
    assert len(titles) == 4 and all(title.startswith(f"head {h} · ") for h, title in enumerate(titles))
