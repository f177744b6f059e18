"""Follow one character through a real server on 127.0.0.1 (gradio_client): the shading /follow returns is
the library's attention row for one head, the layer's average and rollout, on a char and a byte-level BPE
model and on the visitor's live-trained one; teacher mode is large and Cividis; bad choices are refused
clearly."""

from __future__ import annotations

import json
import re

import pytest
import torch
from app_client import shelf_catalog, shelf_client  # noqa: F401 (the catalog and client fixtures)
from conftest import app_shelf
from gradio_client.exceptions import AppError

from gptlab.inside import attention_view, rollout

PROMPT = "First Citizen:\nAll speak."  # every character is in the tiny corpus's vocabulary


@pytest.fixture(scope="module")
def shelf(tmp_path_factory, tiny_checkpoints, tiny_text):
    return app_shelf(tmp_path_factory.mktemp("follow-shelf"), tiny_checkpoints, tiny_text)


def shading(text: str) -> tuple[list[float], int, int]:
    """(each visible token's data-weight, how many are unavailable, the followed position) of the HTML."""
    weights = [float(w) for w in re.findall(r'data-weight="([0-9.]+)"', text)]
    position = int(re.search(r'class="gl-follow" data-n="\d+" data-position="(\d+)"', text).group(1))
    return weights, text.count('aria-disabled="true"'), position


def outlined_row(heatmap: dict) -> float:
    (shape,) = json.loads(heatmap["plot"])["layout"]["shapes"]
    return (shape["y0"] + shape["y1"]) / 2


@pytest.mark.parametrize("model", ["gpt", "gpt-bpe"])
@pytest.mark.parametrize(("layer", "head", "by"), [(0, 1, "head"), (0, 0, "mean"), (0, 0, "rollout")])
def test_the_shading_is_the_librarys_attention_row(client, catalog, model, layer, head, by):
    checkpoint = catalog.get(model)
    view = attention_view(checkpoint.model, checkpoint.tokenizer, PROMPT)
    matrix = {"head": view.patterns[layer][head], "mean": view.patterns[layer].mean(0),
              "rollout": rollout(view.patterns)[-1]}[by]
    n = len(view.ids)
    for q in (3, n - 1):
        text, heatmap = client.predict(model, PROMPT, layer, head, by, q, False, api_name="/follow")
        weights, unavailable, position = shading(text)
        assert position == q and unavailable == n - q - 1 and outlined_row(heatmap) == q
        assert torch.allclose(torch.tensor(weights), matrix[q, : q + 1], atol=1e-3)


def test_a_position_past_the_end_follows_the_last_token_and_says_so(client):
    text, heatmap = client.predict("gpt", "All:", 0, 0, "head", 10, False, api_name="/follow")
    weights, unavailable, position = shading(text)
    assert position == 3 and len(weights) == 4 and unavailable == 0 and outlined_row(heatmap) == 3
    assert "Position 10 is past the end of this text (4 tokens): following the last one, 3." in text


def test_teacher_mode_is_large_and_cividis(client):
    plain, _ = client.predict("gpt", PROMPT, 0, 0, "head", 5, False, api_name="/follow")
    text, heatmap = client.predict("gpt", PROMPT, 0, 0, "head", 5, True, api_name="/follow")
    assert "font-size:28px" in text and "font-size:20px" in plain
    assert json.loads(heatmap["plot"])["data"][0]["colorscale"][0][1] == "#00224e"  # Cividis starts dark blue
    assert shading(text)[0] == shading(plain)[0]  # the same weights, drawn larger


def test_the_live_model_is_followed_once_trained(client):
    with pytest.raises(AppError, match="You have not trained a model yet"):
        client.predict("live", PROMPT, 0, 0, "head", 5, False, api_name="/follow")
    status, *_ = client.predict("Tiny Shakespeare", "", 2, api_name="/live")
    assert status.startswith("**done"), status
    text, heatmap = client.predict("live", PROMPT, 0, 0, "head", 5, False, api_name="/follow")
    weights, unavailable, position = shading(text)
    assert position == 5 and len(weights) == 6 and abs(sum(weights) - 1) < 1e-3 and outlined_row(heatmap) == 5


@pytest.mark.parametrize(("args", "message"), [
    (("bigram", PROMPT, 0, 0, "head", 1), "not in the list of choices"),  # the bigram has no attention
    (("gpt", PROMPT, 0, 0, "rollouts", 1), "not in the list of choices"),
    (("gpt", PROMPT, 0, 9, "head", 1), "greater than maximum"),
    (("gpt-bpe", PROMPT, 0, 3, "head", 1), "head must be a whole number in 0..1 for gpt-bpe"),
    (("gpt", "", 0, 0, "head", 1), "The prompt is empty"),
    (("gpt", "日本", 0, 0, "head", 1), "never seen these characters"),
])
def test_bad_choices_are_refused_clearly(client, args, message):
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(*args, False, api_name="/follow")
