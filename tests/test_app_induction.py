"""The induction model through a real server on 127.0.0.1 (gradio_client), on the shipped checkpoints: Across
training's induction chart and caption are the library's, per snapshot; the lesson "Copying what came before"
shows the induction head and the copy bits of its prompt, computed from the data; bad requests are refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab.classroom.catalog import Catalog
from gptlab.classroom.lessons import LESSONS, resolve_head
from gptlab.inside.explore import attention_view
from gptlab.inside.formation import induction_across
from gptlab.inside.heads import label_heads
from gptlab.inside.induction import copy_bits
from gptlab.snapshots import SnapshotCache, find_snapshots
from gptlab_app import build_app, launch_options

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.fixture(scope="module")
def catalog():
    return Catalog.from_sources(SHIPPED, only=["bigram", "gpt", "induction"]).load_all()


@pytest.fixture(scope="module")
def client(catalog):
    demo = build_app(catalog, str(SHIPPED))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(SHIPPED))
    yield Client(url, verbose=False, analytics_enabled=False, download_files=False)
    demo.close()


def test_the_induction_chart_and_caption_are_the_librarys_per_snapshot(client, catalog):
    caption, plot = client.predict("induction", False, api_name="/across_induction")
    found = induction_across(find_snapshots(catalog.get("induction").folder), SnapshotCache(size=64))
    assert caption == found.caption and "The induction score jumps between step" in caption
    score, chance, loss, bits = json.loads(plot["plot"])["data"]
    assert score["x"] == found.steps and score["y"] == pytest.approx(found.scores)
    assert loss["y"] == pytest.approx(found.val_loss) and bits["y"] == pytest.approx(found.second_copy_bits)
    assert chance["y"] == pytest.approx([found.chance] * 2)


@pytest.mark.parametrize("model", ["bigram", "nope", "", None, "../induction"])
def test_a_model_without_snapshots_is_refused_with_the_ones_that_have_them(client, model):
    """The dropdown refuses a name it does not offer (Gradio's own message lists the choices); a script that sends
    none gets the handler's message, which lists them too."""
    with pytest.raises(AppError, match=r"(No model with training snapshots named .*choose one of: gpt, induction|"
                                       r"is not in the list of choices: \['gpt', 'induction'\])"):
        client.predict(model, False, api_name="/across_induction")


def test_the_copying_lesson_shows_the_induction_head_and_the_copy_bits(client, catalog):
    lesson = LESSONS["copying"]
    assert lesson.model == "induction" and lesson.prompt[:30] == lesson.prompt[30:]
    caption, _, grid, layer, head, link = client.predict("copying", "induction", "", 0, 0, -1, -1, False,
                                                         api_name="/lesson")
    checkpoint = catalog.get("induction")
    view = attention_view(checkpoint.model, checkpoint.tokenizer, lesson.prompt)
    labels = label_heads(view.patterns, view.tokens, view.ids)
    assert (layer, head) == resolve_head(labels, -1, -1, "induction")
    assert labels[layer][head].label == "induction"
    titles = [a["text"] for a in json.loads(grid["plot"])["layout"]["annotations"]]
    assert any(t.startswith(f"head {head} · induct ") for t in titles), titles
    first, second = copy_bits(checkpoint.model, checkpoint.tokenizer.encode(lesson.prompt))
    assert second <= first / 2
    assert f"**{first:.2f} bits per character** on the first copy" in caption
    assert f"**{second:.2f}** on the second" in caption and f"saves {1 - second / first:.0%}" in caption
    assert "lesson=copying" in link and "model=induction" in link


def test_the_copying_lesson_on_a_model_that_does_not_copy_says_so(client, catalog):
    """The shipped gpt has no induction head: its second copy costs more bits than the first, and the caption
    says the copy did not help instead of a negative saving."""
    caption, *_ = client.predict("copying", "gpt", "", 0, 0, -1, -1, False, api_name="/lesson")
    first, second = copy_bits(catalog.get("gpt").model, catalog.get("gpt").tokenizer.encode(LESSONS["copying"].prompt))
    assert second >= first and f"**{first:.2f} bits per character**" in caption
    assert "the earlier copy does not help" in caption and "saves" not in caption


def test_the_attention_explorer_grid_names_the_induction_heads_as_look_closer_does(client, catalog):
    """The grid's panel titles are the heads' labels ('head 0 · induct 81%'), the ones Look closer shows."""
    letters = random.Random(0).choices("abcdefghijklmnopqrstuvwxyz", k=30)
    prompt = "".join(letters) * 2  # a random string written twice: only copying predicts the second half
    _, _, grid, _, _ = client.predict("induction", prompt, 1, 0, -1, api_name="/attention")
    titles = [a["text"] for a in json.loads(grid["plot"])["layout"]["annotations"]]
    checkpoint = catalog.get("induction")
    view = attention_view(checkpoint.model, checkpoint.tokenizer, prompt)
    expected = [label.panel_title for label in label_heads(view.patterns, view.tokens, view.ids)[1]]
    assert titles[:len(expected)] == expected and any(" · induct " in t for t in expected), titles
    _, _, closer_grid, *_ = client.predict("induction", prompt, 1, 0, -1, False, api_name="/closer")
    closer_titles = [a["text"] for a in json.loads(closer_grid["plot"])["layout"]["annotations"]]
    assert closer_titles[:len(expected)] == expected  # the same words in both tabs


PROMPT = "ROMEO:\nBut soft, what light"
EVERY_TAB = {  # every endpoint that takes a model, asked about the induction model
    "/generate": ("induction", PROMPT, 20, 0.8, 0, 1.0, 1),
    "/compare": ("bigram", "induction", PROMPT, 20, 0.8, 1),
    "/attention": ("induction", PROMPT, 1, 0, -1),
    "/closer": ("induction", PROMPT, 1, 0, -1, False),
    "/follow": ("induction", PROMPT, 1, 0, "head", 10, False),
    "/inside": ("induction", PROMPT, 1, 0, -1, False),
    "/ablate": ("induction", PROMPT, ["L1 H0"], "zero", False),
    "/rank": ("induction", "zero", False),
    "/surprise": (PROMPT, "induction", "bigram", "A minus B", False),
    "/step": ("induction", PROMPT, 0.8, 0, 1.0, 1337, False),
    "/lesson": ("previous-char", "induction", "", 0, 0, -1, -1, False),
}


@pytest.mark.parametrize("api", EVERY_TAB)
def test_every_tab_answers_with_the_induction_model(client, api):
    result = client.predict(*EVERY_TAB[api], api_name=api)
    assert result is not None and result != ""
