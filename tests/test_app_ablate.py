"""Knock out heads through a real server on 127.0.0.1 (gradio_client), on the shipped checkpoints: switching
nothing off changes nothing, switching every head of blocks off raises its validation loss, the ranking lists
every head most needed first, and heads a model lacks are refused by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab.classroom.catalog import Catalog
from gptlab.inside.ablation import ablation_view, rank_heads
from gptlab.inside.ablation import shakespeare_val_batches as val_batches
from gptlab_app import build_app, launch_options

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
PROMPT = "ROMEO:\nBut soft, what light"  # every character is in the shipped char models' vocabulary
LOSS = re.compile(r"(\d+\.\d{4}) → (\d+\.\d{4}) nats/token \(([+-]\d+\.\d{4})\)")


@pytest.fixture(scope="module")
def catalog():
    return Catalog.from_sources(CHECKPOINTS, only=["blocks", "gpt"]).load_all()


@pytest.fixture(scope="module")
def client(catalog):
    demo = build_app(catalog, str(CHECKPOINTS))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(CHECKPOINTS))
    yield Client(url, verbose=False, analytics_enabled=False, download_files=False)
    demo.close()


def losses(note: str) -> tuple[float, float, float]:
    found = LOSS.search(note)
    assert found, note
    return tuple(float(v) for v in found.groups())


def bars(figure: dict) -> list[list[float]]:
    traces = json.loads(figure["plot"])["data"]
    return [trace["x"] if trace.get("orientation") == "h" else trace["y"] for trace in traces]


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_switching_nothing_off_changes_nothing(client, mode):
    note, after, bits = client.predict("gpt", PROMPT, [], mode, False, api_name="/ablate")
    before_probs, after_probs = bars(after)
    assert before_probs == after_probs and len(before_probs) == 10
    (change,) = bars(bits)
    assert len(change) == len(PROMPT) - 1 and all(v == 0 for v in change)
    before, later, delta = losses(note)
    assert before == later and delta == 0
    assert "Switched off: no head" in note


def test_every_head_of_blocks_off_raises_its_validation_loss(client, catalog):
    note, after, bits = client.predict("blocks", PROMPT, ["all attention"], "zero", False, api_name="/ablate")
    before, later, delta = losses(note)
    checkpoint = catalog.get("blocks")
    found = ablation_view(checkpoint.model, checkpoint.tokenizer, PROMPT, "all", "zero", val_batches(checkpoint))
    assert later > before + 0.5  # measured: 2.0 -> 3.3 nats/token (the bigram's is 2.49)
    assert (before, later) == (round(found.loss_before, 4), round(found.loss_after, 4))
    assert "Switched off: every head (zero mode)" in note
    # the same twelve heads checked one by one are the same ablation
    each = [f"L{layer} H{head}" for layer in range(3) for head in range(4)]
    assert losses(client.predict("blocks", PROMPT, each, "zero", False, api_name="/ablate")[0]) == (before, later,
                                                                                                     delta)
    (change,) = bars(bits)
    assert [round(v, 4) for v in change] == [round(float(v), 4) for v in found.delta_bits]
    assert sum(change) > 0  # the prompt costs more bits without attention


def test_rank_lists_every_head_most_needed_first(client, catalog):
    note, figure, table = client.predict("blocks", "zero", False, api_name="/rank")
    rows = table["data"]
    assert table["headers"] == ["rank", "head", "rise in val loss (nats/token)"]
    assert [row[0] for row in rows] == list(range(1, 13)) and "12 of 12 heads" in note
    rises = [row[2] for row in rows]
    assert rises == sorted(rises, reverse=True)
    checkpoint = catalog.get("blocks")
    expected = rank_heads(checkpoint.model, val_batches(checkpoint), "zero")
    assert [row[1] for row in rows] == [f"L{layer} H{head}" for layer, head, _ in expected]
    assert bars(figure)[0] == pytest.approx([delta for _, _, delta in expected], abs=1e-6)


def refusal(client: Client, *args, api_name: str = "/ablate") -> str:
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api_name)
    return str(caught.value)


def test_heads_or_modes_the_model_lacks_are_refused_clearly(client):
    assert "blocks has no head 'L5 H5': its heads are L0 H0..L2 H3" in refusal(client, "blocks", PROMPT, ["L5 H5"],
                                                                               "zero", False)
    assert "not in the list of choices" in refusal(client, "gpt", PROMPT, ["L9 H0"], "zero", False)
    assert "not in the list of choices" in refusal(client, "gpt", PROMPT, [], "half", False)
    assert "prompt is empty" in refusal(client, "gpt", "", ["L0 H0"], "zero", False)
    assert "has never seen these characters" in refusal(client, "gpt", "Zebra ☃", [], "zero", False)
    assert "You have not trained a model yet" in refusal(client, "live", PROMPT, [], "zero", False)
    assert "You have not trained a model yet" in refusal(client, "live", "zero", False, api_name="/rank")


def test_the_which_head_lesson_shows_the_head_rank_puts_first(client):
    """The Lessons tab's "Which head matters?" and this tab's ranking measure the same thing the same way."""
    summary, heatmap, grid, layer, head, link = client.predict("which-head", "blocks", "", 0, 0, -1, -1, False,
                                                               api_name="/lesson")
    _, _, table = client.predict("blocks", "zero", False, api_name="/rank")
    _, top, rise = table["data"][0]
    assert f"L{layer} H{head}" == top
    shown = re.search(r"\(([+-]\d+\.\d{4})\): the most of all 12 heads", summary)
    assert shown and float(shown[1]) == pytest.approx(rise, abs=6e-5), summary  # the table keeps 5 decimals
    assert json.loads(heatmap["plot"])["data"][0]["type"] == "heatmap"
    assert "lesson=which-head" in link and f"layer={layer}" in link
