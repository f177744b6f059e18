"""Inside a head through a real server on 127.0.0.1 (gradio_client): the table is the library's HeadMath
sorted by weight, the CSV holds the same rows, and a layer, head or query the model or prompt lacks is
refused with a message that says what may be asked."""

from __future__ import annotations

import csv
import io
import json
import math

import httpx
import pytest
from app_client import shelf_catalog, shelf_client  # noqa: F401 (the catalog and client fixtures)
from conftest import app_shelf
from gradio_client import Client
from gradio_client.exceptions import AppError

from gptlab.inside import head_math

PROMPT = "First Citizen:\nAll speak."  # every character is in the tiny corpus's vocabulary


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, tiny_checkpoints, tiny_text):
    return app_shelf(tmp_path_factory.mktemp("inside-shelf"), tiny_checkpoints, tiny_text)


def refusal(client: Client, *args) -> str:
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name="/inside")
    return str(caught.value)


@pytest.mark.parametrize(("layer", "head", "query"), [(1, 2, -1), (0, 3, 7), (1, 0, 0)])
def test_the_table_is_the_heads_math_sorted_by_weight(client, catalog, layer, head, query):
    note, table, bars, file = client.predict("gpt", PROMPT, layer, head, query, False, api_name="/inside")
    checkpoint = catalog.get("gpt")
    found = head_math(checkpoint.model, checkpoint.tokenizer, PROMPT, layer, head, query)
    rows = table["data"]
    assert table["headers"] == ["key position", "key", "q·k", "scaled score", "weight", "contribution size"]
    assert [row[0] for row in rows] == found.order and len(rows) == found.query + 1  # every visible key, once
    weights = [row[4] for row in rows]
    assert weights == sorted(weights, reverse=True)
    assert math.isclose(sum(weights), 1.0, abs_tol=1e-5)
    for position, key, dot, score, weight, size in rows:
        assert key == found.tokens[position]
        assert math.isclose(weight, float(found.weights[position]), abs_tol=1e-6)
        assert math.isclose(dot, float(found.dot[position]), abs_tol=1e-5)
        assert math.isclose(score, dot * found.scale, abs_tol=1e-5)  # the scaled score is q·k / sqrt(head_size)
        assert math.isclose(size, float(found.contribution_sizes[position]), abs_tol=1e-5)
    hs = checkpoint.config.head_size
    assert f"head_size = {hs}, √{hs} = {math.sqrt(hs):.2f}" in note and f"{1 / math.sqrt(hs):.4f}" in note
    assert f"Query: position {found.query}, " in note
    figure = json.loads(bars["plot"])
    assert [round(w, 6) for w in figure["data"][1]["x"]] == [round(float(w), 6) for w in found.weights]
    assert f"query {found.query_label}" in figure["layout"]["title"]["text"]
    response = httpx.get(file["url"], timeout=30)
    assert response.status_code == 200
    read = list(csv.DictReader(io.StringIO(response.text)))  # the CSV's columns are the table's, the scale after
    assert list(read[0]) == ["key position", "key", "q·k", "scaled score", "weight", "contribution size",
                             "scale (1/√head_size)"]
    assert [int(r["key position"]) for r in read] == found.order
    assert [[float(r[c]) for c in ("q·k", "weight", "contribution size")] for r in read] == [
        [float(f"{row[k]:.6f}") for k in ("q_dot_k", "weight", "contribution_size")] for row in found.table()]


def test_a_layer_head_or_query_the_model_lacks_is_refused_clearly(client):
    # gpt-bpe has 1 layer of 2 heads; the sliders reach the widest model's (the tiny gpt's 2 layers of 4 heads)
    assert "layer must be a whole number in 0..0 for gpt-bpe, got 1" in refusal(client, "gpt-bpe", PROMPT, 1, 0, -1,
                                                                                  False)
    assert "head must be a whole number in 0..1 for gpt-bpe, got 3" in refusal(client, "gpt-bpe", PROMPT, 0, 3, -1,
                                                                                 False)
    n = len(PROMPT)
    assert f"query must be a whole number in 0..{n - 1} (or -1 for the last) for this prompt of {n} tokens, got {n}" \
        in refusal(client, "gpt", PROMPT, 0, 0, n, False)
    assert "got -99" in refusal(client, "gpt", PROMPT, 0, 0, -99, False)
    assert "maximum value" in refusal(client, "gpt", PROMPT, 2, 0, -1, False)  # past every model: Gradio's bound
    assert "You have not trained a model yet" in refusal(client, "live", PROMPT, 0, 0, -1, False)
    assert "prompt is empty" in refusal(client, "gpt", "", 0, 0, -1, False)
    assert "has never seen these characters" in refusal(client, "gpt", "Zebra ☃", 0, 0, -1, False)


def test_a_negative_query_counts_from_the_end(client):
    last = client.predict("gpt", PROMPT, 1, 1, -1, False, api_name="/inside")
    same = client.predict("gpt", PROMPT, 1, 1, len(PROMPT) - 1, False, api_name="/inside")
    assert last[1]["data"] == same[1]["data"]
    second_last = client.predict("gpt", PROMPT, 1, 1, -2, False, api_name="/inside")
    assert len(second_last[1]["data"]) == len(PROMPT) - 1
