"""Every CSV the app writes is safe to open in a spreadsheet: a text cell starting with = + - @ becomes text
(a leading apostrophe), so a prompt like '=HYPERLINK(...)' is never run as a formula; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import torch

from gptlab.figures.export import attention_csv, table_csv

HOSTILE = ["=1+2", "+A1", "-2+3", "@SUM(A1)", "\t=1"]


def test_table_csv_guards_every_text_cell_and_keeps_negative_numbers():
    rows = [{"key": token, "q·k": -1.5, "position": i} for i, token in enumerate(HOSTILE)]
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows))))
    assert [row["key"] for row in parsed] == [f"'{token}" for token in HOSTILE]
    assert all(row["q·k"] == "-1.500000" for row in parsed)


def test_attention_csv_guards_its_labels():
    labels = ["0:=cmd", "+x", "ab"]
    parsed = list(csv.reader(io.StringIO(attention_csv(torch.eye(3), labels))))
    assert parsed[0][1:] == ["0:=cmd", "'+x", "ab"]
    assert [row[0] for row in parsed[1:]] == ["0:=cmd", "'+x", "ab"]
