"""Export: CSV/JSON of an attention matrix with its labels, PNG/SVG through kaleido."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from gptlab import viz
from gptlab.errors import GptlabError
from gptlab.explore import token_labels
from gptlab.export import attention_csv, attention_json, figure_image, safe_name, write_exports

TOKENS = list("a,a\n")
LABELS = token_labels(TOKENS)
PATTERN = torch.tensor([[1.0, 0, 0, 0], [0.25, 0.75, 0, 0], [0.5, 0.25, 0.25, 0], [0.1, 0.2, 0.3, 0.4]])


def test_csv_has_token_labels_and_leaves_the_future_empty():
    rows = list(csv.reader(io.StringIO(attention_csv(PATTERN, LABELS))))
    assert rows[0] == ["query \\ key", "0:a", "1:,", "2:a", "3:↵"]
    assert [r[0] for r in rows[1:]] == LABELS
    assert rows[2][1:] == ["0.250000", "0.750000", "", ""]
    assert float(rows[4][4]) == pytest.approx(0.4)


def test_json_round_trips_with_meta():
    data = json.loads(attention_json(PATTERN, LABELS, TOKENS, {"model": "gpt", "layer": 1, "head": 2}))
    assert data["labels"] == LABELS and data["tokens"] == TOKENS and data["layer"] == 1
    assert data["weights"][1] == [0.25, 0.75, None, None]
    assert sum(data["weights"][3]) == pytest.approx(1.0)


def test_images_render_with_kaleido(tmp_path):
    fig = viz.attention_heatmap(PATTERN, LABELS, "gpt · layer 1 · head 2")
    paths = write_exports(tmp_path, "gpt · layer 1 · head 2", fig, PATTERN, LABELS, TOKENS)
    assert {p.name for p in paths.values()} == {f"gpt-layer-1-head-2.{e}" for e in ("png", "svg", "csv", "json")}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["svg"].read_text()
    assert svg.lstrip().startswith("<svg") and "layer 1" in svg and "0:a" in svg
    with pytest.raises(GptlabError, match="must be one of"):
        figure_image(fig, "gif")


def test_safe_names():
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("") == "gptlab"
